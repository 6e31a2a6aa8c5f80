"""Blinding audit: can real and synthetic cases be told apart without reading them?

Before a study goes live, a cross-validated classifier is trained on low-level statistics of exactly
the bytes the server will send (border rows, background, noise power, sharpness, total counts, file
size). Its out-of-fold AUC, with a DeLong 95 % CI, estimates how separable the two sources are by
things no physician should be judging; a high AUC means readers could beat chance on a tell, and a
"readers could not tell" result would not be trustworthy. A random forest is used because tells are
often thresholds (exactly-zero border rows, a narrower count range) that need neither scaling nor
linearity. Each feature's own AUC names the tell.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from synthscan.evaluation.stats import auc_ci
from synthscan.labels import VIEWS

log = logging.getLogger(__name__)

DEFAULT_MAX_AUC = 0.65
"""``create`` refuses a case set whose audit AUC exceeds this (# assumption: well above the ≈ 0.55
that chance reaches with 200 cases per side, well below the 0.94 of the tells that prompted it)."""
MIN_ENFORCED_PER_SIDE = 10
"""With fewer cases per side the audit cannot tell a tell from chance (a 2-vs-2 AUC is 1.0 one time in
six): it is computed and reported, but ``create`` does not refuse on it."""
BORDER_ROWS = 8
"""Rows at the top and bottom (and columns at each side) that count as the image border."""
BODY_FRACTION = 0.05
"""Smoothed counts above this fraction of their 99.5th percentile are body (as synthscan.render)."""


def case_counts(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """A served case file's bytes as (views, rows, columns) counts: little-endian uint16, views in order."""
    return np.frombuffer(data, dtype="<u2").reshape(len(VIEWS), *shape)


def view_features(view: np.ndarray) -> dict[str, float]:
    """Low-level statistics of one view that say nothing about disease but may betray its source."""
    counts = np.asarray(view, dtype=np.float64)
    smooth = ndimage.gaussian_filter(counts, 2.0)
    body = smooth > BODY_FRACTION * max(np.percentile(smooth, 99.5), 1e-9)
    background = ~ndimage.binary_dilation(body, iterations=3)
    border = np.concatenate(
        [
            counts[:BORDER_ROWS].ravel(),
            counts[-BORDER_ROWS:].ravel(),
            counts[:, :BORDER_ROWS].ravel(),
            counts[:, -BORDER_ROWS:].ravel(),
        ]
    )
    body_mean = float(counts[body].mean()) if body.any() else 0.0
    pairs = body[:, 1:] & body[:, :-1]
    differences = np.diff(counts, axis=1)[pairs]
    gradient = np.hypot(*np.gradient(smooth))
    return {
        "top_rows_mean": float(counts[:BORDER_ROWS].mean()),
        "bottom_rows_mean": float(counts[-BORDER_ROWS:].mean()),
        "border_zero_fraction": float((border == 0).mean()),
        "background_mean": float(counts[background].mean()) if background.any() else 0.0,
        "background_zero_fraction": float((counts[background] == 0).mean()) if background.any() else 0.0,
        # neighbour-difference variance over twice the mean: 1 for Poisson noise on a smooth rate
        "noise_power": float(differences.var() / (2 * body_mean)) if differences.size and body_mean else 0.0,
        "sharpness": float(gradient[body].mean() / smooth[body].mean()) if body.any() else 0.0,
        "log_total_counts": float(np.log1p(counts.sum())),
        "peak_over_body_mean": float(counts.max() / body_mean) if body_mean else 0.0,
        "body_fraction": float(body.mean()),
    }


def file_features(data: bytes, shape: tuple[int, int]) -> dict[str, float]:
    """Every feature of a served case file: per view, plus the file's size in bytes."""
    counts = case_counts(data, shape)
    features = {"file_bytes": float(len(data))}
    for index, view in enumerate(VIEWS):
        features.update({f"{view}_{name}": value for name, value in view_features(counts[index]).items()})
    return features


def blinding_audit(
    features: Mapping[str, Mapping[str, float]], truth: Mapping[str, str], *, seed: int = 0, folds: int = 5
) -> dict[str, Any]:
    """Out-of-fold AUC (DeLong 95 % CI) of a random forest telling synthetic from real; each feature's AUC.

    ``features`` maps a case name → feature dict (the same keys for every case), ``truth`` the name →
    ``"real"`` or ``"synthetic"``. Cases are taken in sorted name order, so for stable names (not the
    random case ids) the result is reproducible for a given ``seed``.
    """
    ids = sorted(features)
    names = sorted(features[ids[0]])
    matrix = np.array([[features[case][name] for name in names] for case in ids])
    target = np.array([truth[case] == "synthetic" for case in ids], dtype=int)
    folds = min(folds, int(np.bincount(target, minlength=2).min()))
    if folds < 2:
        raise ValueError("the blinding audit needs at least 2 real and 2 synthetic cases")
    model = RandomForestClassifier(n_estimators=200, min_samples_leaf=2, random_state=seed, n_jobs=1)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probability = cross_val_predict(model, matrix, target, cv=splitter, method="predict_proba")[:, 1]
    result = auc_ci(target, probability)
    per_feature = {}
    for column, name in enumerate(names):
        values = matrix[:, column]
        auc = float(roc_auc_score(target, values)) if np.ptp(values) > 0 else 0.5
        per_feature[name] = {
            "auc": auc,
            "real_median": float(np.median(values[target == 0])),
            "synthetic_median": float(np.median(values[target == 1])),
        }
    ranked = sorted(per_feature, key=lambda n: -abs(per_feature[n]["auc"] - 0.5))
    summary = {
        "method": f"{folds}-fold cross-validated random forest on {len(names)} low-level statistics of the "
        "served case files (border rows, background, noise power, sharpness, total counts, file size)",
        "n_cases": len(ids),
        "auc": result.auc,
        "ci95": [result.lower, result.upper],
        "strongest_features": ranked[:3],
    }
    log.info("blinding audit: AUC %.3f (95%% CI %.3f-%.3f)", result.auc, result.lower, result.upper)
    return {"summary": summary, "features": per_feature}


def has_tells(summary: Mapping[str, Any], max_auc: float, per_side: int) -> bool:
    """Whether the audit shows a tell: AUC above ``max_auc`` and its CI above chance, on enough cases."""
    return per_side >= MIN_ENFORCED_PER_SIDE and summary["auc"] > max_auc and summary["ci95"][0] > 0.5


def verdict(summary: Mapping[str, Any]) -> str:
    """What the audit means for the study, in a phrase for ``create``'s output and the report."""
    if summary["tells"]:
        return f"tells: above {summary['max_auc']} and above chance; created with --allow-tells"
    if not summary["enforced"]:
        return f"too few cases to enforce (under {MIN_ENFORCED_PER_SIDE} per side): a rough estimate only"
    return f"no tell above {summary['max_auc']}"


def describe_tells(audit: Mapping[str, Any], limit: int = 3) -> str:
    """The strongest features as 'name separates with AUC 0.97 (higher in synthetic: median 3.1 vs 0)'."""
    parts = []
    for name in audit["summary"]["strongest_features"][:limit]:
        entry = audit["features"][name]
        higher = "synthetic" if entry["auc"] >= 0.5 else "real"
        lower = "real" if higher == "synthetic" else "synthetic"
        parts.append(
            f"{name} separates with AUC {max(entry['auc'], 1 - entry['auc']):.2f} (higher in {higher}: "
            f"median {entry[f'{higher}_median']:.3g} vs {entry[f'{lower}_median']:.3g})"
        )
    return "; ".join(parts)

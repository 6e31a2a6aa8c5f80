"""How faithful are synthetic scans? Feature-distribution metrics, a two-sample test and count physics.

Every feature metric is reported beside a real-vs-real baseline computed from two disjoint halves
of the real set (split by patient), so a reader sees how far synthetic is from real relative to
how far real is from itself at the same sample size. The two-sample tests (features and image
detector) are also scored within conditions, over real-synthetic pairs of one condition only: a
synthetic set drawn a third per condition is told from a mostly normal real set by its mix alone
(``docs/condition_mix``).

Features are the classifier's penultimate layer when a classifier run is given; otherwise the
image-space embedding of :mod:`synthscan.evaluation.privacy` (stated in the report).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import linalg, stats
from scipy.ndimage import gaussian_filter, gaussian_filter1d
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from statsmodels.stats.proportion import proportion_confint

from synthscan.atomic import atomic_write_text
from synthscan.dataset import Dataset, DatasetError, Record, same_pixel_size
from synthscan.evaluation.detector import (
    DetectorConfig,
    dataset_detector_auc,
    repeats_text,
    where_text,
    within_condition_text,
)
from synthscan.evaluation.lesions import LesionDetector, lesion_fidelity, lesion_markdown
from synthscan.evaluation.privacy import fit_shape, image_embedding, study_batches
from synthscan.evaluation.stats import auc_by_stratum, joint_strata, pool_strata, stratified_auc
from synthscan.evaluation.tracer import dataset_tracer_effect, tracer_effect_text
from synthscan.generator.conditions import condition_keys
from synthscan.generator.config import HALF_HEAD_MM
from synthscan.generator.transform import AcquisitionWindow, body_rows
from synthscan.labels import LABELS, PATIENT_SOURCES, VIEWS

if TYPE_CHECKING:
    from synthscan.classifier.features import FeatureExtractor

log = logging.getLogger(__name__)

# Without a classifier, a coarse image embedding (2 x 32 x 8 = 512 values) keeps the covariance
# estimates of the Fréchet distance and the two-sample test tractable.
FALLBACK_SHAPE: tuple[int, int] = (32, 8)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature rows ``a`` and ``b`` (the FID formula).

    With fewer rows than feature dimensions the covariances are singular and scipy warns that their
    product has no exact square root; :func:`small_sample_caveats` says so in the report instead.
    """
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(root).all():
            eps = 1e-6 * np.eye(len(cov_a))
            root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    root = np.real(root)
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))
    return max(value, 0.0)


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) with k-NN ball radii."""
    k = min(k, len(real) - 1, len(fake) - 1)
    if k < 1:
        raise ValueError("PRDC needs at least two real and two synthetic samples")
    real_radius = NearestNeighbors(n_neighbors=k + 1).fit(real).kneighbors(real)[0][:, k]
    fake_radius = NearestNeighbors(n_neighbors=k + 1).fit(fake).kneighbors(fake)[0][:, k]
    dist = np.sqrt(np.maximum(_squared_distances(real, fake), 0.0))
    inside_real = dist < real_radius[:, None]
    return {
        "precision": float(inside_real.any(axis=0).mean()),
        "recall": float((dist < fake_radius[None, :]).any(axis=1).mean()),
        "density": float(inside_real.sum() / (k * len(fake))),
        "coverage": float((dist.min(axis=1) < real_radius).mean()),
    }


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T


def two_sample_scores(real: np.ndarray, fake: np.ndarray, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Cross-validated probability, from a logistic regression, that each row (``real``, then ``fake``)
    is synthetic."""
    x = np.concatenate([real, fake])
    y = np.concatenate([np.zeros(len(real)), np.ones(len(fake))])
    folds = min(folds, len(real), len(fake))
    if folds < 2:
        raise ValueError("the two-sample test needs at least two real and two synthetic samples")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]


def two_sample_auc(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    conditions: tuple[Sequence[str], Sequence[str]] | None = None,
    folds: int = 5,
    seed: int = 0,
) -> float:
    """ROC AUC of :func:`two_sample_scores` (0.5 = no difference).

    With ``conditions`` (the real rows', the fake rows'), only real and synthetic studies of the same
    condition are compared (:func:`~synthscan.evaluation.stats.stratified_auc`; ``ValueError`` when the
    two share none): a synthetic set drawn in other proportions than the real one (a third amyloidosis
    against a tenth) is otherwise told apart by its condition mix alone, which says nothing about how
    real each study looks. The regression still learns from both sets pooled; on the shipped default's
    sample sets that was the strictest of the variants tried (``docs/condition_mix``).
    """
    scores = two_sample_scores(real, fake, folds=folds, seed=seed)
    if conditions is None:
        return _auc_of_scores(scores, len(real))
    strata = joint_strata(*conditions)
    if strata is None:
        raise ValueError("the real and synthetic rows share no condition: nothing to compare within")
    return _auc_of_scores(scores, len(real), strata)


def _auc_of_scores(scores: np.ndarray, n_real: int, strata: np.ndarray | None = None) -> float:
    """AUC of two-sample scores, real rows first; within ``strata`` where given."""
    y = np.r_[np.zeros(n_real), np.ones(len(scores) - n_real)]
    return float(roc_auc_score(y, scores)) if strata is None else stratified_auc(y, scores, strata).auc


def _auc_within_strata(scores: np.ndarray, n_real: int, strata: np.ndarray) -> tuple[float, dict[str, dict]]:
    """AUC of two-sample scores within strata (pooled, as :func:`_auc_of_scores`), and each stratum's
    own where it holds real and synthetic rows, with a DeLong 95 % interval (strata of a few real
    studies are rough) and their counts; each stratum measured once for both."""
    y = np.r_[np.zeros(n_real), np.ones(len(scores) - n_real)]
    by_stratum = auc_by_stratum(y, scores, strata)
    return pool_strata(by_stratum).auc, {
        stratum: {
            "auc": r.auc,
            "ci95": [r.lower, r.upper],
            "n_real": r.n_negative,
            "n_synthetic": r.n_positive,
        }
        for stratum, r in by_stratum.items()
    }


def by_condition_text(rr: dict, rs: dict) -> str:
    """Each condition's two-sample AUC beside the real halves' (the pooled within-condition AUC weighs
    them by real × synthetic pairs, so a rare condition told apart at once barely moves it)."""
    key = "two_sample_auc_by_condition"
    cells = [
        f"{c} {row['auc']:.3f} [{row['ci95'][0]:.2f}, {row['ci95'][1]:.2f}]"
        + (f" (real vs real {rr[key][c]['auc']:.3f})" if c in rr.get(key, {}) else "")
        + f", {row['n_real']} real and {row['n_synthetic']} synthetic"
        for c, row in rs.get(key, {}).items()
    ]
    if not cells:
        return ""
    return (
        "Two-sample AUC within each condition [DeLong 95 % CI] (the within-condition AUC above weighs them "
        "by real × synthetic pairs): " + "; ".join(cells) + "."
    )


def patient_halves(records: Sequence[Record], seed: int = 0) -> tuple[list[Record], list[Record]]:
    """Two disjoint halves of ``records`` with no patient in both."""
    patients = sorted({r.patient_id for r in records})
    if len(patients) < 2:
        raise ValueError("a real-vs-real baseline needs studies from at least two patients")
    order = np.random.default_rng(seed).permutation(len(patients))
    first = {patients[i] for i in order[: len(patients) // 2]}
    return [r for r in records if r.patient_id in first], [r for r in records if r.patient_id not in first]


def feature_metrics(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    k: int = 5,
    seed: int = 0,
    conditions: tuple[Sequence[str], Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Fréchet distance, PRDC and the pooled two-sample AUC; with ``conditions``, also the
    within-condition one (``two_sample_auc_within_condition``, :func:`two_sample_auc`) and each
    condition's own (``two_sample_auc_by_condition``: a rare condition barely moves the former)."""
    scores = two_sample_scores(real, fake, seed=seed)
    out = {"frechet": frechet_distance(real, fake), **prdc(real, fake, k)}
    out["two_sample_auc"] = _auc_of_scores(scores, len(real))
    strata = None if conditions is None else joint_strata(*conditions)
    if strata is not None:
        within, by_condition = _auc_within_strata(scores, len(real), strata)
        out["two_sample_auc_within_condition"] = within
        out["two_sample_auc_by_condition"] = by_condition
    return out


def body_mask(view: np.ndarray, sigma: float = 2.0, fraction: float = 0.1) -> np.ndarray:
    """Pixels inside the patient: smoothed counts above ``fraction`` of the smoothed 99th percentile."""
    smooth = gaussian_filter(view.astype(np.float64), sigma)
    return smooth > fraction * max(np.percentile(smooth, 99), 1e-9)


def noise_power_spectrum(view: np.ndarray, bins: int = 16, sigma: float = 2.0) -> np.ndarray:
    """Radially averaged power spectrum of the high-pass residual, normalised by mean body counts.

    For pure Poisson noise the curve is flat at about 1; correlated (smoothed) noise falls off with
    frequency.  Bins span 0 to 0.5 cycles/pixel.
    """
    image = view.astype(np.float64)
    residual = image - gaussian_filter(image, sigma)
    mask = body_mask(view, sigma)
    mean = image[mask].mean() if mask.any() else max(image.mean(), 1e-9)
    power = np.abs(np.fft.fft2(residual * mask)) ** 2 / max(mask.sum(), 1)
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    radius = np.sqrt(fy**2 + fx**2).ravel()
    index = np.minimum((radius / 0.5 * bins).astype(int), bins)
    sums = np.bincount(index, power.ravel(), minlength=bins + 1)[:bins]
    counts = np.bincount(index, minlength=bins + 1)[:bins]
    return sums / np.maximum(counts, 1) / max(mean, 1e-9)


HIST_EDGES = np.concatenate([[0], np.logspace(0, 4, 33)])
BODY_FRACTION = AcquisitionWindow.body_fraction  # the body the generator's acquisition window is fitted on
# where the anterior view's skull and bladder peaks are searched, in mm from the field's top (rows 0-150
# and 300-600 of 2.4 mm pixels: docs/condition_mix/trunk_length.py)
HEAD_SEARCH_MM = 360.0
BLADDER_SEARCH_MM = (720.0, 1440.0)


def body_first_row(counts: np.ndarray) -> int:
    """First row of a study's body (either view), as the generator's acquisition window finds it."""
    return int(body_rows(counts, BODY_FRACTION)[0])


def head_to_bladder_mm(counts: np.ndarray, pixel_spacing_mm: float) -> float | None:
    """Distance from the anterior view's skull peak to its bladder peak (row profiles, σ = 3 rows).

    A trunk drawn too long starts at the right row, so body placement misses it; this distance shows it.
    ``None`` (not measured) where the field of view ends inside or before the bladder's search window.
    """
    profile = gaussian_filter1d(counts[VIEWS.index("anterior")].sum(axis=1).astype(np.float64), 3)
    head_end = round(HEAD_SEARCH_MM / pixel_spacing_mm)
    low, high = (round(mm / pixel_spacing_mm) for mm in BLADDER_SEARCH_MM)
    if high > len(profile):
        return None
    head, bladder = np.argmax(profile[:head_end]), low + np.argmax(profile[low:high])
    return float((bladder - head) * pixel_spacing_mm)


def count_statistics(dataset: Dataset, records: Sequence[Record]) -> dict[str, Any]:
    """Total counts per view, pooled body-pixel count histogram, mean NPS per view, first body rows,
    head-to-bladder distances."""
    totals = {view: [] for view in VIEWS}
    hist = np.zeros(len(HIST_EDGES) - 1)
    nps = {view: [] for view in VIEWS}
    first_rows, trunks = [], []
    spacing = dataset.info.pixel_spacing_mm
    for study in dataset.iter_studies(records):
        first_rows.append(body_first_row(study.counts))
        trunks.append(head_to_bladder_mm(study.counts, spacing))
        for v, view in enumerate(VIEWS):
            image = study.counts[v]
            totals[view].append(float(image.sum()))
            hist += np.histogram(image[body_mask(image)], bins=HIST_EDGES)[0]
            nps[view].append(noise_power_spectrum(image))
    return {
        "total_counts": totals,
        "body_pixel_histogram": (hist / max(hist.sum(), 1)).tolist(),
        "nps": {view: np.mean(nps[view], axis=0).tolist() for view in VIEWS},
        "body_first_row": first_rows,
        "head_to_bladder_mm": trunks,
    }


def compare_counts(real: dict[str, Any], fake: dict[str, Any]) -> dict[str, Any]:
    """Summaries and two-sample statistics of the count statistics (KS on totals, L1 on histograms)."""
    out: dict[str, Any] = {}
    for view in VIEWS:
        r, f = np.asarray(real["total_counts"][view]), np.asarray(fake["total_counts"][view])
        out[f"total_counts_{view}"] = {
            "real_mean": float(r.mean()),
            "real_std": float(r.std()),
            "synthetic_mean": float(f.mean()),
            "synthetic_std": float(f.std()),
            "ks_statistic": float(stats.ks_2samp(r, f).statistic),
        }
        rn, fn = np.asarray(real["nps"][view]), np.asarray(fake["nps"][view])
        out[f"nps_{view}"] = {
            "mean_abs_log_ratio": float(np.mean(np.abs(np.log((fn + 1e-12) / (rn + 1e-12)))))
        }
    out["body_pixel_histogram_l1"] = float(
        np.abs(np.asarray(real["body_pixel_histogram"]) - np.asarray(fake["body_pixel_histogram"])).sum()
    )
    return out


def misplaced_bodies(
    real_first: Sequence[int], fake_first: Sequence[int], conditions: Sequence[str], pixel_spacing_mm: float
) -> dict:
    """Share of synthetic studies whose body starts half a head lower than every real study's.

    A sample without a head, or with the body drawn down the image, is what a reader sees first and
    what feature-space metrics average away. The real studies set the limit, so it loosens as the real
    set grows (compare models against the same real set); the margin of half a head keeps a faint
    vertex a few rows lower from counting.
    """
    limit = int(max(real_first)) + round(HALF_HEAD_MM / pixel_spacing_mm)
    first = np.asarray(fake_first)
    keys = np.asarray(conditions)
    return {
        "limit_row": limit,
        "n": int(first.size),
        "share": float(np.mean(first > limit)),
        "per_condition": {
            key: {"n": int((keys == key).sum()), "share": float(np.mean(first[keys == key] > limit))}
            for key in sorted(set(conditions))
        },
    }


def redrawn_bodies(records: Sequence[Record]) -> dict | None:
    """Share of synthetic studies whose body the generator found misplaced and drew again (the manifest's
    ``redraws``), per condition; ``None`` for datasets of models without the check. The misplaced share
    the pipeline hides: a model drawing 10 % of its bodies down the image is a worse model."""
    if not records or any(r.get("redraws") == "" for r in records):
        return None
    redrawn = np.array([int(r.get("redraws")) > 0 for r in records])
    keys = np.asarray(condition_keys(records))
    return {
        "share": float(redrawn.mean()),
        "per_condition": {key: float(redrawn[keys == key].mean()) for key in sorted(set(keys))},
    }


def trunk_lengths(
    real_mm: Sequence[float | None],
    real_labels: Sequence[str],
    fake_mm: Sequence[float | None],
    fake_labels: Sequence[str],
) -> dict[str, Any]:
    """Per label, the share of synthetic studies whose head-to-bladder distance lies beyond the range of
    the real studies of that label (a trunk drawn too long or too short), beside both medians.

    Per label (grades pooled), because pelvic metastases can outshine the bladder. Like
    :func:`misplaced_bodies`, the limits loosen as the real set grows: compare models against the same
    real set. Studies not measured (``None``) are left out.
    """
    real = np.array([np.nan if v is None else v for v in real_mm], dtype=np.float64)
    fake = np.array([np.nan if v is None else v for v in fake_mm], dtype=np.float64)
    real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
    out: dict[str, Any] = {}
    for label in sorted(set(fake_labels) & set(real_labels), key=LABELS.get):
        r, f = real[real_labels == label], fake[fake_labels == label]
        r, f = r[np.isfinite(r)], f[np.isfinite(f)]
        if not r.size or not f.size:
            continue
        out[label] = {
            "n": int(f.size),
            "real_range_mm": [float(r.min()), float(r.max())],
            "real_median_mm": float(np.median(r)),
            "median_mm": float(np.median(f)),
            "share_longer": float(np.mean(f > r.max())),
            "share_shorter": float(np.mean(f < r.min())),
        }
    return out


def per_condition_fidelity(
    probabilities: np.ndarray, labels: Sequence[str], grades: Sequence[int | None] | None = None
) -> dict[str, Any]:
    """Share of studies whose most probable class is their condition, per condition, with its Wilson CI.

    Amyloidosis studies of Perugini grade 1 (``grades``) are left out: the classifier's amyloidosis
    output stands for grade >= 2, so reading one as normal is right (:func:`grade_ordering` scores them).
    An amyloidosis study without a grade counts as amyloidosis (a positive scan).
    """
    predicted = np.asarray(probabilities).argmax(axis=1)
    names = {i: n for n, i in LABELS.items()}
    grades = list(grades) if grades is not None else [None] * len(labels)
    scored = [
        i for i, (lab, g) in enumerate(zip(labels, grades, strict=True)) if (lab, g) != ("amyloidosis", 1)
    ]
    out: dict[str, Any] = {}
    for label in sorted({labels[i] for i in scored}, key=LABELS.get):
        rows = [i for i in scored if labels[i] == label]
        hits = predicted[rows] == LABELS[label]
        low, high = proportion_confint(int(hits.sum()), len(rows), alpha=0.05, method="wilson")
        assigned = {names[int(c)]: int((predicted[rows] == c).sum()) for c in np.unique(predicted[rows])}
        out[label] = {
            "n": len(rows),
            "share_correct": float(hits.mean()),
            "ci95": [float(low), float(high)],
            "assigned": assigned,
        }
    return out


def _labels_and_grades(records: Sequence[Record]) -> tuple[list[str], list[int | None]]:
    return [r.label for r in records], [r.perugini_grade for r in records]


def grade_ordering(probabilities: np.ndarray, grades: Sequence[int | None]) -> dict[str, Any]:
    """Mean amyloidosis probability, share read as amyloidosis and count per Perugini grade, and
    Spearman rho (higher grade → higher probability)."""
    p = np.asarray(probabilities)
    rows = [i for i, g in enumerate(grades) if g is not None]
    if len(rows) < 3:
        return {}
    g = np.array([grades[i] for i in rows])
    q = p[rows, LABELS["amyloidosis"]]
    read = p[rows].argmax(axis=1) == LABELS["amyloidosis"]
    means = {int(grade): float(q[g == grade].mean()) for grade in np.unique(g)}
    by_grade = {
        int(grade): {"n": int((g == grade).sum()), "share": float(read[g == grade].mean())}
        for grade in np.unique(g)
    }
    rho = stats.spearmanr(g, q).statistic if len(means) > 1 else float("nan")
    return {"mean_amyloidosis_probability": means, "by_grade": by_grade, "spearman_rho": float(rho)}


StudyReader = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


class FidelityModel:
    """Features and, from a classifier, label probabilities of studies, read in one pass.

    ``read`` maps counts ``(B, 2, H, W)`` to features ``(B, D)`` and label probabilities ``(B, 3)``
    (or ``None``); without it the features are a coarse image embedding and there are no probabilities.
    """

    def __init__(self, read: StudyReader | None = None, name: str = ""):
        self.read = read
        self.name = name or ("classifier features" if read else "image-space embedding")

    def __call__(self, dataset: Dataset, records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray | None]:
        """Features ``(N, D)`` and probabilities ``(N, 3)`` or ``None`` of ``records``."""
        read = self.read or _embedding_reader(fit_shape(dataset.info.matrix, FALLBACK_SHAPE))
        parts = [read(counts) for counts in study_batches(dataset, records)]
        features = np.concatenate([np.asarray(f, dtype=np.float64) for f, _ in parts])
        if parts[0][1] is None:
            return features, None
        return features, np.concatenate([np.asarray(p, dtype=np.float64) for _, p in parts])

    def embed(self, dataset: Dataset, records: Sequence[Record]) -> np.ndarray:
        """Features ``(N, D)`` of ``records``."""
        return self(dataset, records)[0]


def _embedding_reader(shape: tuple[int, int]) -> StudyReader:
    return lambda counts: (np.stack([image_embedding(c, shape) for c in counts]), None)


def classifier_model(run: str | Path, extractor: FeatureExtractor | None = None) -> FidelityModel:
    """Penultimate features and probabilities of a trained classifier run (``synthscan classifier train``);
    ``extractor``, that run already loaded, is reused."""
    from synthscan.classifier.features import FeatureExtractor

    extractor = extractor or FeatureExtractor(run)
    name = f"classifier penultimate features ({run})"
    return FidelityModel(extractor.features_and_probabilities, name=name)


def small_sample_caveats(sizes: dict[str, int], dimensions: int) -> list[str]:
    """Why some numbers are rough: sets smaller than the feature dimension give singular covariances."""
    small = {name: n for name, n in sizes.items() if n <= dimensions}
    if not small:
        return []
    listed = ", ".join(f"{name} {n}" for name, n in small.items())
    return [
        f"Fréchet distance from fewer studies than feature dimensions ({listed} studies; {dimensions} "
        "dimensions): the covariances are singular, so it is a rough, biased estimate; compare sets of "
        "several hundred studies"
    ]


def condition_mix_caveats(
    real_keys: Sequence[str], fake_keys: Sequence[str], tolerance: float = 0.1
) -> list[str]:
    """Why pooled numbers mislead when the two sets hold the conditions in other proportions, and which
    studies the within-condition AUCs leave out."""
    shares = [
        {k: n / len(keys) for k, n in zip(*np.unique(keys, return_counts=True), strict=True)}
        for keys in (real_keys, fake_keys)
    ]
    names = sorted(set(shares[0]) | set(shares[1]))
    distance = 0.5 * sum(abs(shares[0].get(k, 0.0) - shares[1].get(k, 0.0)) for k in names)
    caveats = []
    if distance > tolerance:
        mix = [", ".join(f"{k} {share.get(k, 0.0):.2f}" for k in names) for share in shares]
        caveats.append(
            f"the synthetic set holds the conditions in other proportions ({mix[1]}) than the real one "
            f"({mix[0]}; total variation {distance:.2f}): the pooled Fréchet distance, PRDC and two-sample "
            "AUCs count that difference in; the within-condition AUCs compare studies of one condition only"
        )
    alone = [sum(k not in shares[1 - i] for k in keys) for i, keys in enumerate((real_keys, fake_keys))]
    if any(alone):
        caveats.append(
            f"{alone[0]} real and {alone[1]} synthetic studies have no study of their condition (label and "
            "Perugini grade) in the other set: the within-condition AUCs leave them out"
        )
    return caveats


def model_fidelity(
    real: Dataset,
    real_records: Sequence[Record],
    synthetic: Dataset,
    fake_records: Sequence[Record],
    model: FidelityModel,
    k: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """What one feature model reads: feature metrics of the samples against half the real studies, beside
    the two real halves (split by patient, same sample size), and, from a classifier, each condition's
    share read as asked on both sides, per tracer and burden, and the Perugini grade ordering."""
    half_a, half_b = patient_halves(real_records, seed)
    log.info("features for %d real and %d synthetic studies", len(real_records), len(fake_records))
    real_x, real_probs = model(real, real_records)
    fake_x, probs = model(synthetic, fake_records)
    index = {r.study_id: i for i, r in enumerate(real_records)}
    a_x = real_x[[index[r.study_id] for r in half_a]]
    b_x = real_x[[index[r.study_id] for r in half_b]]
    a_keys, fake_keys = condition_keys(half_a), condition_keys(fake_records)
    results: dict[str, Any] = {
        "features": model.name,
        "n_real": len(real_records),
        "n_synthetic": len(fake_records),
        "real_vs_real": feature_metrics(
            a_x, b_x, k=k, seed=seed, conditions=(a_keys, condition_keys(half_b))
        ),
        "real_vs_synthetic": feature_metrics(a_x, fake_x, k=k, seed=seed, conditions=(a_keys, fake_keys)),
        "real_vs_synthetic_all_real": {"frechet": frechet_distance(real_x, fake_x)},
        "caveats": small_sample_caveats(
            {"real half A": len(a_x), "real half B": len(b_x), "synthetic": len(fake_x)}, real_x.shape[1]
        )
        + condition_mix_caveats(a_keys, fake_keys),
    }
    if probs is None:
        return results
    results["per_condition"] = per_condition_fidelity(probs, *_labels_and_grades(fake_records))
    # the classifier's own reading of real studies: the share a perfect generator would reach
    results["real_per_condition"] = per_condition_fidelity(real_probs, *_labels_and_grades(real_records))
    for factor in ("tracer", "burden"):
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(fake_records):
            if r.get(factor):
                groups.setdefault(r.get(factor), []).append(i)
        if groups:
            results[f"per_{factor}"] = {
                value: per_condition_fidelity(
                    probs[rows], *_labels_and_grades([fake_records[i] for i in rows])
                )
                for value, rows in sorted(groups.items())
            }
    for key, p, records in (
        ("grade_ordering", probs, fake_records),
        ("real_grade_ordering", real_probs, real_records),
    ):
        amyloid = [i for i, r in enumerate(records) if r.label == "amyloidosis"]
        if amyloid:
            results[key] = grade_ordering(p[amyloid], [records[i].perugini_grade for i in amyloid])
    return results


def fidelity_records(real: Dataset, synthetic: Dataset) -> tuple[list[Record], list[Record]]:
    """The studies fidelity compares: ``real``'s patient and simulated ones, ``synthetic``'s synthetic
    ones (all of them if it marks none); raises ``DatasetError`` for other matrices or too few studies."""
    if real.info.matrix != synthetic.info.matrix:
        raise DatasetError(
            f"real matrix {real.info.matrix} differs from synthetic matrix {synthetic.info.matrix}; "
            "compare datasets of the same matrix"
        )
    real_records = real.filter(source=PATIENT_SOURCES)
    fake_records = synthetic.filter(source="synthetic") or synthetic.records
    if len(real_records) < 4 or len(fake_records) < 2:
        raise DatasetError("fidelity needs at least 4 real and 2 synthetic studies")
    return real_records, fake_records


def evaluate_fidelity(
    real: Dataset,
    synthetic: Dataset,
    *,
    model: FidelityModel | None = None,
    k: int = 5,
    seed: int = 0,
    detector: DetectorConfig | None = None,
    lesions: LesionDetector | None = None,
) -> dict[str, Any]:
    """All fidelity numbers: synthetic studies of ``synthetic`` against real studies of ``real``.

    With a ``detector`` config, also the image-space detector's cross-validated AUC
    (:mod:`synthscan.evaluation.detector`) of all real against all synthetic studies; with a
    ``lesions`` detector, the hot lesions found per condition and requested burden
    (:mod:`synthscan.evaluation.lesions`).
    """
    real_records, fake_records = fidelity_records(real, synthetic)
    results = model_fidelity(real, real_records, synthetic, fake_records, model or FidelityModel(), k, seed)
    effect = dataset_tracer_effect(real, real_records, synthetic, fake_records, seed=seed)
    if effect is not None:
        results["tracer_effect"] = effect
    if lesions is not None:
        spacing = lesions.pixel_spacing_mm
        if spacing is not None and not same_pixel_size(spacing, real.info.pixel_spacing_mm):
            raise DatasetError(
                f"the lesion detector learnt lesions on {spacing} mm pixels but {real.root} has "
                f"{real.info.pixel_spacing_mm} mm; train one on simulated studies of that spacing"
            )
        results["lesions"] = lesion_fidelity(lesions, real, real_records, synthetic, fake_records)
        if lesions.training_studies is None:
            results["caveats"].append(
                "the lesion detector's training studies are unknown (no training.json): if it learnt from "
                "the real studies, its numbers on them are optimistic"
            )
        elif seen := sum(r.get("file_sha256") in lesions.training_studies for r in real_records):
            results["caveats"].append(
                f"the lesion detector was trained on {seen} of the real studies: its "
                "numbers on the real studies (sensitivity, marks per normal, the ceiling) are optimistic; "
                "train it on other studies of the site"
            )
    if detector is not None:
        results["image_detector"] = dataset_detector_auc(
            real, real_records, synthetic, fake_records, detector
        )
    real_counts = count_statistics(real, real_records)
    fake_counts = count_statistics(synthetic, fake_records)
    results["count_statistics"] = {
        "comparison": compare_counts(real_counts, fake_counts),
        "real": real_counts,
        "synthetic": fake_counts,
    }
    results["body_placement"] = misplaced_bodies(
        real_counts["body_first_row"],
        fake_counts["body_first_row"],
        condition_keys(fake_records),
        real.info.pixel_spacing_mm,
    )
    results["body_placement"]["redrawn"] = redrawn_bodies(fake_records)
    results["trunk_length"] = trunk_lengths(  # {} for fields too short to show the bladder
        real_counts["head_to_bladder_mm"],
        [r.label for r in real_records],
        fake_counts["head_to_bladder_mm"],
        [r.label for r in fake_records],
    )
    return results


def _plots(results: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = results["count_statistics"]
    names = []
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, view in zip(axes, VIEWS, strict=True):
        ax.hist(counts["real"]["total_counts"][view], bins=20, alpha=0.6, density=True, label="real")
        ax.hist(
            counts["synthetic"]["total_counts"][view], bins=20, alpha=0.6, density=True, label="synthetic"
        )
        ax.set_title(f"total counts, {view}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "total_counts.png", dpi=100)
    plt.close(fig)
    names.append("total_counts.png")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    centres = np.sqrt(np.maximum(HIST_EDGES[:-1], 0.5) * HIST_EDGES[1:])
    ax.semilogx(centres, counts["real"]["body_pixel_histogram"], label="real")
    ax.semilogx(centres, counts["synthetic"]["body_pixel_histogram"], label="synthetic")
    ax.set_xlabel("counts per body pixel")
    ax.set_ylabel("fraction of body pixels")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "body_pixel_histogram.png", dpi=100)
    plt.close(fig)
    names.append("body_pixel_histogram.png")

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for view in VIEWS:
        freq = (np.arange(len(counts["real"]["nps"][view])) + 0.5) / len(counts["real"]["nps"][view]) * 0.5
        ax.plot(freq, counts["real"]["nps"][view], label=f"real {view}")
        ax.plot(freq, counts["synthetic"]["nps"][view], "--", label=f"synthetic {view}")
    ax.set_xlabel("spatial frequency (cycles/pixel)")
    ax.set_ylabel("NPS / mean counts")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "noise_power_spectrum.png", dpi=100)
    plt.close(fig)
    names.append("noise_power_spectrum.png")
    if "where" in results.get("image_detector", {}):
        names.append(_detector_map(results["image_detector"]["where"], out / "image_detector_map.png"))
    return names


def _detector_map(where: dict[str, Any], path: Path) -> str:
    """The image detector's looks-synthetic map beside the real studies' mean, and its row profile."""
    import matplotlib.pyplot as plt

    difference, real_mean = np.asarray(where["difference"]), np.asarray(where["real_mean"])
    cell, (rows, cols) = where["cell_pixels"], difference.shape
    extent = (0, cols * cell, rows * cell, 0)
    limit = float(np.abs(difference).max()) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(7, 7), sharey=True, gridspec_kw={"width_ratios": [1, 1.25, 1.2]})
    axes[0].imshow(real_mean, cmap="gray_r", extent=extent, aspect="auto")
    axes[0].set_title("real studies, mean", fontsize=8)
    shown = axes[1].imshow(difference, cmap="RdBu_r", vmin=-limit, vmax=limit, extent=extent, aspect="auto")
    centres = (np.arange(rows) + 0.5) * cell
    if min(rows, cols) >= 2:  # the body's outline: above the mean input's level, mostly body
        level = [float(real_mean.mean())]
        axes[1].contour((np.arange(cols) + 0.5) * cell, centres, real_mean, level, colors="k", linewidths=0.6)
    axes[1].set_title("synthetic − real logit", fontsize=8)
    fig.colorbar(shown, ax=axes[1], fraction=0.08)
    axes[2].barh(centres, where["row_profile"], height=cell * 0.9, color="tab:red")
    axes[2].axvline(0, color="k", linewidth=0.5)
    axes[2].set_title("summed over columns", fontsize=8)
    for ax in axes[:2]:
        ax.set_xticks([])
    axes[0].set_ylabel("row (native pixels; posterior mirrored onto anterior)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def trunk_length_text(trunks: dict) -> str:
    """One report line for :func:`trunk_lengths`."""
    rows = "; ".join(
        f"{label} {v['share_longer']:.3f} longer, {v['share_shorter']:.3f} shorter (n={v['n']}; median "
        f"{v['median_mm']:.0f} mm, real {v['real_median_mm']:.0f} mm in {v['real_range_mm'][0]:.0f}-"
        f"{v['real_range_mm'][1]:.0f})"
        for label, v in trunks.items()
    )
    return (
        f"Trunk length (skull-to-bladder peaks, anterior view), share beyond the real studies' range: {rows}."
    )


def body_placement_text(placement: dict) -> str:
    """One report line for :func:`misplaced_bodies`."""
    rows = ", ".join(f"{key} {v['share']:.2f} (n={v['n']})" for key, v in placement["per_condition"].items())
    text = (
        f"Body placement: {placement['share']:.3f} of {placement['n']} synthetic studies start their body "
        f"half a head lower than every real study (below row {placement['limit_row']}: no head, or the "
        f"body drawn down the image); by condition: {rows}."
    )
    if redrawn := placement.get("redrawn"):
        rows = ", ".join(f"{key} {share:.2f}" for key, share in redrawn["per_condition"].items())
        text += (
            f" The generator found {redrawn['share']:.3f} of them misplaced against its training studies "
            f"and drew them again from their seeds; by condition: {rows}."
        )
    return text


def write_fidelity_report(
    results: dict[str, Any], out: str | Path, real_root: str, synthetic_root: str
) -> Path:
    """Write ``results.json``, ``report.md`` and plots into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(results, out)
    rr, rs = results["real_vs_real"], results["real_vs_synthetic"]
    lines = [
        "# Fidelity report",
        "",
        f"- real: `{real_root}` ({results['n_real']} real studies)",
        f"- synthetic: `{synthetic_root}` ({results['n_synthetic']} synthetic studies)",
        f"- features: {results['features']}",
        "",
        "Real-vs-real compares two patient-disjoint halves of the real set; real-vs-synthetic compares the"
        " first half with the synthetic set, so both rows share one reference sample.",
        "",
        *[f"**Caveat:** {caveat}\n" for caveat in results.get("caveats", [])],
        "| metric | real vs real | real vs synthetic | ideal |",
        "|---|---|---|---|",
    ]
    ideal = {
        "frechet": "0",
        "precision": "≈ baseline",
        "recall": "≈ baseline",
        "density": "≈ 1",
        "coverage": "≈ baseline",
        "two_sample_auc": "0.5",
        "two_sample_auc_within_condition": "0.5",
    }
    for key, target in ideal.items():
        if key in rr and key in rs:
            lines.append(f"| {key} | {rr[key]:.4g} | {rs[key]:.4g} | {target} |")
    if by_condition := by_condition_text(rr, rs):
        lines += ["", by_condition]
    if "image_detector" in results:
        d = results["image_detector"]
        lines += [
            "",
            f"Image-space detector (a small CNN on the count images, {d['folds']}-fold patient-disjoint"
            f" cross-validation, {d['n_real']} real vs {d['n_synthetic']} synthetic studies): AUC "
            f"{d['auc']:.3f} [DeLong 95 % CI {d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}]"
            " (0.5: indistinguishable)." + within_condition_text(d) + repeats_text(d) + where_text(d),
        ]
    if "body_placement" in results:
        lines += ["", body_placement_text(results["body_placement"])]
    if results.get("trunk_length"):
        lines += ["", trunk_length_text(results["trunk_length"])]
    if "per_condition" in results:
        lines += [
            "",
            "## Per-condition fidelity (share classified as the requested condition)",
            "",
            "Beside each condition's samples, the classifier's own reading of the real studies of that"
            " condition: what a perfect generator reaches (optimistic if the classifier learnt from those"
            " studies). Perugini grade-1 studies are left out of amyloidosis (the classifier's amyloidosis"
            " output stands for grade >= 2; the grade ordering below scores them).",
            "",
            "| condition | synthetic n | share [Wilson 95 % CI] | assigned | real n | real share |",
            "|---|---|---|---|---|---|",
        ]
        real_rows = results.get("real_per_condition", {})
        for label, row in results["per_condition"].items():
            ref = real_rows.get(label)
            reference = f"{ref['n']} | {ref['share_correct']:.3f}" if ref else "- | -"
            ci = " [{:.3f}, {:.3f}]".format(*row["ci95"]) if "ci95" in row else ""  # saved before 2026-12-05
            lines.append(
                f"| {label} | {row['n']} | {row['share_correct']:.3f}{ci} | {row['assigned']} | {reference} |"
            )
    for factor in ("tracer", "burden"):
        if f"per_{factor}" in results:
            lines += [
                "",
                f"## Per-{factor} fidelity (share classified as the requested condition)",
                "",
                f"| {factor} | condition | n | share |",
                "|---|---|---|---|",
            ]
            for value, table in results[f"per_{factor}"].items():
                for label, row in table.items():
                    lines.append(f"| {value} | {label} | {row['n']} | {row['share_correct']:.3f} |")
    if results.get("tracer_effect"):
        lines += ["", "## Tracer fidelity (each tracer's effect, samples against real studies)", ""]
        lines += tracer_effect_text(results["tracer_effect"])
    if results.get("grade_ordering"):
        go, real_go = results["grade_ordering"], results.get("real_grade_ordering")
        real_text = ""
        if real_go:
            means, rho = real_go["mean_amyloidosis_probability"], real_go["spearman_rho"]
            real_text = f" (real studies: {means}, rho {rho:.3f})"
        lines += [
            "",
            f"Amyloidosis grade ordering: mean P(amyloidosis) by grade {go['mean_amyloidosis_probability']},"
            f" Spearman rho {go['spearman_rho']:.3f}{real_text}.",
        ]
    if "lesions" in results:
        lines += ["", "## Lesions", "", *lesion_markdown(results["lesions"])]
    comp = results["count_statistics"]["comparison"]
    lines += [
        "",
        "## Count statistics",
        "",
        "| quantity | real | synthetic | difference |",
        "|---|---|---|---|",
    ]
    for view in VIEWS:
        t = comp[f"total_counts_{view}"]
        lines.append(
            f"| total counts {view} | {t['real_mean']:.4g} ± {t['real_std']:.3g} | "
            f"{t['synthetic_mean']:.4g} ± {t['synthetic_std']:.3g} | KS {t['ks_statistic']:.3f} |"
        )
        lines.append(
            f"| NPS {view} | | | mean abs log ratio {comp[f'nps_{view}']['mean_abs_log_ratio']:.3f} |"
        )
    lines.append(f"| body-pixel count histogram | | | L1 {comp['body_pixel_histogram_l1']:.3f} |")
    lines += ["", *[f"![{name}]({name})" for name in plots], ""]
    atomic_write_text(out / "results.json", json.dumps(results, indent=2))
    atomic_write_text(out / "report.md", "\n".join(lines))
    return out / "report.md"

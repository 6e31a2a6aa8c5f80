"""Whether samples carry their tracer: the diphosphonates' soft-tissue retention, measured on the counts.

MDP, HDP and DPD differ in how much tracer stays in soft tissue (DPD most) and, in ATTR amyloidosis,
in cardiac avidity. One study rarely shows which tracer it had, because patients' own soft-tissue
retention varies as much. On 600 held-out simulated studies a classifier on the measures below reads
the tracer in about half of them, near chance. A population does show its tracer. So tracer fidelity
asks whether each tracer's samples differ from the reference tracer's as much as the real studies
do (``docs/tracer_effect/``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from synthscan.dataset import Dataset, Record
from synthscan.evaluation.realism import Study, bone_soft_contrast, long_bones
from synthscan.evaluation.stats import stratified_auc
from synthscan.generator.conditions import condition_keys
from synthscan.labels import UNKNOWN

MEASURES = (
    "lumbar_spine_over_soft_post",
    "sternum_spine_over_soft_ant",
    "thigh_soft_over_femur_ant",
    "shin_soft_over_tibia_ant",
)


def soft_tissue_measures(counts: np.ndarray) -> np.ndarray:
    """Logs of the :data:`MEASURES` (bone-to-soft-tissue ratios) of one study ``(2, H, W)`` as stored;
    NaN where its landmarks are not found."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        study = Study(counts, counts)
        try:
            values = {**bone_soft_contrast(study), **long_bones(study)}
        except Exception:  # landmarks not found, or a region outside the image
            return np.full(len(MEASURES), np.nan)
        return np.array([math.log(v) if v > 0 else math.nan for v in map(values.get, MEASURES)])


def _auc(in_tracer: np.ndarray, score: np.ndarray, strata: np.ndarray) -> dict[str, float | int] | None:
    try:
        return stratified_auc(in_tracer, score, strata).to_dict()
    except ValueError:  # no condition holds both tracers
        return None


def _kept(real: dict | None, synthetic: dict | None) -> tuple[float | None, list[float] | None]:
    """(synthetic − 0.5) / (real − 0.5) with a delta-method 95 % CI from the two AUCs' DeLong standard
    errors (independent sets); ``None`` unless the real AUC's CI lies above 0.5."""
    if not real or not synthetic or real["lower"] <= 0.5:
        return None, None
    span = real["auc"] - 0.5
    kept = (synthetic["auc"] - 0.5) / span
    se = math.hypot(synthetic["se"], kept * real["se"]) / span
    return kept, [kept - 1.96 * se, kept + 1.96 * se]


def tracer_effect(
    real_values: np.ndarray,
    real_tracers: Sequence[str],
    real_groups: Sequence[str],
    real_strata: Sequence[str],
    fake_values: np.ndarray,
    fake_tracers: Sequence[str],
    fake_strata: Sequence[str],
    *,
    folds: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """How strongly each tracer shows in the samples, against how strongly it shows in real studies.

    ``*_values`` are :func:`soft_tissue_measures` rows (studies with NaN are left out and counted),
    ``*_strata`` the studies' conditions. A logistic regression learns the tracer from the real studies,
    which it scores out of fold (by patient); it scores the samples after a fit on all real studies.
    Tracer ``T``'s score is its log-odds against the reference tracer, the real set's most common. Per
    tracer, the AUC of that score between ``T``'s and the reference's studies is computed within
    conditions, on the real studies and on the samples. ``kept`` = (synthetic − 0.5) / (real − 0.5)
    is 1 where the samples show the tracer as strongly as real studies do, below 1 where weaker and
    above 1 where exaggerated, with a delta-method 95 % CI (``kept_ci95``). Both are ``None`` unless
    the real AUC's CI lies above 0.5. ``{}`` when
    the real set has fewer than two tracers with ``folds`` usable studies each.
    """
    real_values, fake_values = np.asarray(real_values, float), np.asarray(fake_values, float)
    for side, values, columns in (
        ("real", real_values, (real_tracers, real_groups, real_strata)),
        ("synthetic", fake_values, (fake_tracers, fake_strata)),
    ):
        if len({len(values), *map(len, columns)}) != 1:
            raise ValueError(
                f"{side} studies: {len(values)} measure rows but {[len(c) for c in columns]} tracers, "
                "groups or strata; give one of each per study"
            )
    real_ok, fake_ok = np.isfinite(real_values).all(1), np.isfinite(fake_values).all(1)
    rx, rt = real_values[real_ok], np.asarray(real_tracers)[real_ok]
    rg, rs = np.asarray(real_groups)[real_ok], np.asarray(real_strata)[real_ok]
    fx, ft, fs = fake_values[fake_ok], np.asarray(fake_tracers)[fake_ok], np.asarray(fake_strata)[fake_ok]
    names, counts = np.unique(rt, return_counts=True)
    if len(names) < 2 or counts.min() < folds:
        return {}
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    real_p = cross_val_predict(classifier, rx, rt, groups=rg, cv=splitter, method="predict_proba")
    fake_p = classifier.fit(rx, rt).predict_proba(fx) if len(fx) else np.empty((0, len(names)))
    classes = list(classifier.classes_)
    reference = str(names[counts.argmax()])
    out: dict[str, Any] = {
        "measures": list(MEASURES),
        "reference": reference,
        "n_real": len(rx),
        "n_synthetic": len(fx),
        "left_out": {"real": int((~real_ok).sum()), "synthetic": int((~fake_ok).sum())},
        "real_accuracy": float((np.asarray(classes)[real_p.argmax(1)] == rt).mean()),
        "chance": float(counts.max() / counts.sum()),
        "per_tracer": {},
    }
    log_p = {"real": np.log(real_p), "synthetic": np.log(np.clip(fake_p, 1e-300, None))}
    tracers, strata = {"real": rt, "synthetic": ft}, {"real": rs, "synthetic": fs}
    for name in map(str, names):
        if name == reference:
            continue
        row: dict[str, Any] = {}
        for side in ("real", "synthetic"):
            rows = np.isin(tracers[side], [name, reference])
            score = log_p[side][rows, classes.index(name)] - log_p[side][rows, classes.index(reference)]
            row[f"n_{side}"] = int((tracers[side] == name).sum())
            row[f"{side}_auc"] = _auc(tracers[side][rows] == name, score, strata[side][rows])
        row["kept"], row["kept_ci95"] = _kept(row["real_auc"], row["synthetic_auc"])
        out["per_tracer"][name] = row
    return out


def tracer_measures(dataset: Dataset, records: Sequence[Record]) -> tuple[np.ndarray, list[Record]]:
    """:func:`soft_tissue_measures` of those ``records`` that record a tracer, and those records."""
    known = [r for r in records if r.get("tracer") not in (None, "", UNKNOWN)]
    return np.array([soft_tissue_measures(study.counts) for study in dataset.iter_studies(known)]), known


def dataset_tracer_effect(
    real: Dataset,
    real_records: Sequence[Record],
    synthetic: Dataset,
    fake_records: Sequence[Record],
    *,
    seed: int = 0,
) -> dict[str, Any] | None:
    """:func:`tracer_effect` of the studies of ``real_records`` and ``fake_records`` that record a
    tracer, measured from their counts; ``None`` when either set has none."""
    fake_values, asked = tracer_measures(synthetic, fake_records)  # the smaller set first
    if not asked:
        return None
    real_values, known = tracer_measures(real, real_records)
    if not known:
        return None
    return measured_tracer_effect(real_values, known, fake_values, asked, seed=seed)


def measured_tracer_effect(
    real_values: np.ndarray,
    real_records: Sequence[Record],
    fake_values: np.ndarray,
    fake_records: Sequence[Record],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`tracer_effect` of :func:`tracer_measures` results (several sample sets' may be pooled)."""
    return tracer_effect(
        real_values,
        [r.get("tracer") for r in real_records],
        [r.patient_id for r in real_records],
        condition_keys(real_records),
        fake_values,
        [r.get("tracer") for r in fake_records],
        condition_keys(fake_records),
        seed=seed,
    )


def tracer_effect_text(effect: dict[str, Any]) -> list[str]:
    """Report lines for :func:`tracer_effect`."""
    lines = [
        f"Tracer effect against {effect['reference']} (bone-to-soft-tissue ratios; a classifier on them "
        f"reads one real study's tracer in {effect['real_accuracy']:.2f} of cases, chance "
        f"{effect['chance']:.2f}, so the tracers are compared as groups, within conditions). "
        f"Kept = (synthetic AUC − 0.5) / (real AUC − 0.5): 1 as in real studies, < 1 weaker, > 1 "
        f"exaggerated. Left out (landmarks not found): {effect['left_out']['real']} real, "
        f"{effect['left_out']['synthetic']} synthetic.",
        "",
        "| tracer | real n | real AUC [95 % CI] | synthetic n | synthetic AUC [95 % CI] | kept [95 % CI] |",
        "|---|---|---|---|---|---|",
    ]

    def auc(a: dict | None) -> str:
        return f"{a['auc']:.3f} [{a['lower']:.3f}, {a['upper']:.3f}]" if a else "n/a"

    for name, row in effect["per_tracer"].items():
        kept = (
            "n/a"
            if row["kept"] is None
            else f"{row['kept']:.2f} [{row['kept_ci95'][0]:.2f}, {row['kept_ci95'][1]:.2f}]"
        )
        lines.append(
            f"| {name} | {row['n_real']} | {auc(row['real_auc'])} | {row['n_synthetic']} | "
            f"{auc(row['synthetic_auc'])} | {kept} |"
        )
    return lines

"""ROC statistics for classifier evaluation: AUC with a DeLong CI, the paired DeLong test, operating points.

The DeLong et al. (1988) variance is computed with the midrank algorithm of Sun & Xu (2014), which
handles ties and several score columns at once. Confidence intervals use the normal approximation on
the AUC scale, clipped to [0, 1] (as pROC's ``ci.auc(method="delong")``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_curve
from statsmodels.stats.proportion import proportion_confint


@dataclass(frozen=True)
class AUCResult:
    """Empirical AUC with its DeLong standard error and confidence interval."""

    auc: float
    lower: float
    upper: float
    se: float
    n_positive: int
    n_negative: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class DeLongResult:
    """Paired comparison of two AUCs on the same cases (``difference`` = ``auc_b`` − ``auc_a``)."""

    auc_a: float
    auc_b: float
    difference: float
    se: float
    lower: float
    upper: float
    z: float
    p_value: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class OperatingPoint:
    """Sensitivity and specificity at a fixed threshold, with Wilson 95% intervals."""

    threshold: float
    sensitivity: float
    sensitivity_ci: tuple[float, float]
    specificity: float
    specificity_ci: tuple[float, float]
    tp: int
    fn: int
    tn: int
    fp: int

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["sensitivity_ci"] = list(self.sensitivity_ci)
        data["specificity_ci"] = list(self.specificity_ci)
        return data


def check_binary(y: np.ndarray) -> np.ndarray:
    """Return ``y`` as a 0/1 integer vector; raise ``ValueError`` unless both classes are present."""
    y = np.asarray(y).ravel()
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (negative) or 1 (positive)")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(
            f"an AUC needs positives and negatives; got {n_pos} positive(s) and {y.size - n_pos} negative(s)"
        )
    return y.astype(np.int64)


def _delong(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs of each row of ``scores`` (k, n) and their DeLong covariance matrix (k, k)."""
    y = check_binary(y)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if scores.shape[1] != y.size:
        raise ValueError(f"{scores.shape[1]} scores for {y.size} labels")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    positives, negatives = scores[:, y == 1], scores[:, y == 0]
    m, n = positives.shape[1], negatives.shape[1]
    tx = rankdata(positives, axis=1)
    ty = rankdata(negatives, axis=1)
    tz = rankdata(np.concatenate([positives, negatives], axis=1), axis=1)
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    v10 = (tz[:, :m] - tx) / n  # per positive: share of negatives it outscores (ties count one half)
    v01 = 1.0 - (tz[:, m:] - ty) / m  # per negative: share of positives that outscore it
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(aucs), len(aucs)))
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(aucs), len(aucs)))
    return aucs, s10 / m + s01 / n


def auc_ci(y: np.ndarray, score: np.ndarray, *, alpha: float = 0.05) -> AUCResult:
    """Empirical AUC (ties count one half) with a DeLong (1 − alpha) confidence interval."""
    y = check_binary(y)
    aucs, cov = _delong(y, np.asarray(score)[None, :])
    auc, se = float(aucs[0]), float(np.sqrt(max(cov[0, 0], 0.0)))
    half = norm.ppf(1 - alpha / 2) * se
    return AUCResult(
        auc=auc,
        lower=float(max(0.0, auc - half)),
        upper=float(min(1.0, auc + half)),
        se=se,
        n_positive=int(y.sum()),
        n_negative=int(y.size - y.sum()),
    )


def delong_test(
    y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, *, alpha: float = 0.05
) -> DeLongResult:
    """Two-sided paired DeLong test of AUC(b) = AUC(a) for two scores of the same cases."""
    aucs, cov = _delong(y, np.stack([np.asarray(score_a), np.asarray(score_b)]))
    difference = float(aucs[1] - aucs[0])
    variance = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = float(np.sqrt(max(variance, 0.0)))
    # identical scores (se = 0): no evidence of a difference, or an exact one
    exact = 0.0 if difference == 0.0 else float(np.sign(difference) * np.inf)
    z = difference / se if se > 0.0 else exact
    half = norm.ppf(1 - alpha / 2) * se
    return DeLongResult(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        difference=difference,
        se=se,
        lower=float(difference - half),
        upper=float(difference + half),
        z=z,
        p_value=float(2 * norm.sf(abs(z))),
    )


def youden_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """Threshold maximising sensitivity + specificity − 1 (predict positive when ``score >= threshold``)."""
    y = check_binary(y)
    fpr, tpr, thresholds = roc_curve(y, score)
    finite = np.isfinite(thresholds)
    best = int(np.argmax(np.where(finite, tpr - fpr, -np.inf)))
    return float(thresholds[best])


def operating_point(
    y: np.ndarray, score: np.ndarray, threshold: float, *, alpha: float = 0.05
) -> OperatingPoint:
    """Sensitivity/specificity of ``score >= threshold``, Wilson intervals (NaN where a class is absent)."""
    y = np.asarray(y).ravel().astype(bool)
    predicted = np.asarray(score).ravel() >= threshold
    tp, fn = int((predicted & y).sum()), int((~predicted & y).sum())
    tn, fp = int((~predicted & ~y).sum()), int((predicted & ~y).sum())

    def rate(hits: int, total: int) -> tuple[float, tuple[float, float]]:
        if total == 0:
            return float("nan"), (float("nan"), float("nan"))
        low, high = proportion_confint(hits, total, alpha=alpha, method="wilson")
        return hits / total, (float(low), float(high))

    sensitivity, sensitivity_ci = rate(tp, tp + fn)
    specificity, specificity_ci = rate(tn, tn + fp)
    return OperatingPoint(
        threshold=float(threshold),
        sensitivity=sensitivity,
        sensitivity_ci=sensitivity_ci,
        specificity=specificity,
        specificity_ci=specificity_ci,
        tp=tp,
        fn=fn,
        tn=tn,
        fp=fp,
    )

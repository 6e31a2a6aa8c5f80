"""Statistics of classifier evaluation: DeLong AUC CIs and tests, operating points, inference over draws.

The DeLong et al. (1988) variance is computed with the midrank algorithm of Sun & Xu (2014), which
handles ties and several score columns at once. Confidence intervals use the normal approximation on
the AUC scale, clipped to [0, 1] (as pROC's ``ci.auc(method="delong")``). With a single positive or
negative case the variance cannot be estimated (pROC gives NA): the SE, CI and p-value are NaN.

DeLong treats a trained model as fixed: it answers "is this model better on these cases", not "does
this training procedure help". :func:`across_draws` answers the second from many trained models: the
per-run quantity (e.g. an AUC gain over the real-only model of the same draw and seed) is averaged
over seeds within each independent draw of the training set, and the draw means give a t interval
(the paired test over draws; for a balanced draws x seeds design it equals the inference on the mean
of a random-intercept mixed model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import norm, rankdata
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_curve
from statsmodels.stats.proportion import proportion_confint
from statsmodels.stats.weightstats import DescrStatsW


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
    undefined = np.full((len(aucs), len(aucs)), np.nan)  # one case: its class's variance is unknown
    s10 = np.atleast_2d(np.cov(v10)) if m > 1 else undefined
    s01 = np.atleast_2d(np.cov(v01)) if n > 1 else undefined
    return aucs, s10 / m + s01 / n


def auc_ci(y: np.ndarray, score: np.ndarray, *, alpha: float = 0.05) -> AUCResult:
    """Empirical AUC (ties count one half) with a DeLong (1 − alpha) confidence interval."""
    y = check_binary(y)
    aucs, cov = _delong(y, np.asarray(score)[None, :])
    return _normal_interval(float(aucs[0]), float(cov[0, 0]), int(y.sum()), int(y.size - y.sum()), alpha)


def _normal_interval(
    auc: float, variance: float, n_positive: int, n_negative: int, alpha: float
) -> AUCResult:
    """``auc`` with its normal-approximation interval, clipped to [0, 1], and its cases' counts."""
    se = float(np.sqrt(np.maximum(variance, 0.0)))
    half = norm.ppf(1 - alpha / 2) * se
    return AUCResult(
        auc=auc,
        lower=float(np.clip(auc - half, 0.0, 1.0)),
        upper=float(np.clip(auc + half, 0.0, 1.0)),
        se=se,
        n_positive=n_positive,
        n_negative=n_negative,
    )


def joint_strata(first: Sequence[str], second: Sequence[str]) -> np.ndarray | None:
    """The strata of two sets' cases, ``first``'s then ``second``'s, for :func:`stratified_auc`;
    ``None`` when no stratum is in both (nothing to compare within)."""
    if not set(first) & set(second):
        return None
    return np.concatenate([np.asarray(first, dtype=str), np.asarray(second, dtype=str)])


def auc_by_stratum(
    y: np.ndarray, score: np.ndarray, strata: Sequence[str], *, alpha: float = 0.05
) -> dict[str, AUCResult]:
    """Each stratum's own AUC with its DeLong (1 − alpha) CI (:func:`auc_ci`: NaN SE and CI where the
    stratum holds a single case of a class), for the strata holding both classes, keyed by name."""
    y, strata, score = check_binary(y), np.asarray(strata), np.asarray(score)
    if not len(y) == len(strata) == len(score):
        raise ValueError(
            f"{len(y)} labels, {len(score)} scores and {len(strata)} strata: give one each per case"
        )
    return {
        str(stratum): auc_ci(y[rows], score[rows], alpha=alpha)
        for stratum in np.unique(strata)
        if 0 < y[rows := strata == stratum].sum() < rows.sum()
    }


def stratified_auc(
    y: np.ndarray, score: np.ndarray, strata: Sequence[str], *, alpha: float = 0.05
) -> AUCResult:
    """AUC over positive-negative pairs of the same stratum only, with a DeLong (1 − alpha) CI.

    The per-stratum AUCs (:func:`auc_by_stratum`) are averaged with weights proportional to their pair
    counts (the stratified Mann-Whitney statistic); strata are independent, so the variance is the
    weighted sum of their DeLong variances; a stratum with a single case of a class has no DeLong
    estimate and counts with the largest variance an AUC of its size can have, 1 / (4 min(m, n)) (van
    Dantzig's bound), so one small stratum widens the interval instead of blanking it. Strata holding
    one class only add no pairs, and their cases are not counted in ``n_positive``/``n_negative``. Why:
    when the two sets mix strata in different proportions (a synthetic set drawn one third per
    condition against a mostly normal real set), a pooled AUC rewards a score that only recognises the
    stratum; within strata it cannot.
    """
    return pool_strata(auc_by_stratum(y, score, strata), alpha=alpha)


def pool_strata(by_stratum: dict[str, AUCResult], *, alpha: float = 0.05) -> AUCResult:
    """:func:`stratified_auc` from strata already measured by :func:`auc_by_stratum`."""
    if not by_stratum:
        raise ValueError("no stratum holds both positives and negatives")
    results = list(by_stratum.values())
    pairs = np.array([r.n_positive * r.n_negative for r in results])
    fewest = np.array([min(r.n_positive, r.n_negative) for r in results])
    variances = np.where(fewest > 1, [r.se**2 for r in results], 0.25 / fewest)
    weights = pairs / pairs.sum()
    return _normal_interval(
        float(weights @ [r.auc for r in results]),
        float(weights**2 @ variances),
        sum(r.n_positive for r in results),
        sum(r.n_negative for r in results),
        alpha,
    )


def delong_test(
    y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, *, alpha: float = 0.05
) -> DeLongResult:
    """Two-sided paired DeLong test of AUC(b) = AUC(a) for two scores of the same cases."""
    aucs, cov = _delong(y, np.stack([np.asarray(score_a), np.asarray(score_b)]))
    difference = float(aucs[1] - aucs[0])
    variance = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    se = float(np.sqrt(np.maximum(variance, 0.0)))
    # identical scores (se = 0): no evidence of a difference, or an exact one; NaN se: unknown
    exact = 0.0 if difference == 0.0 else float(np.sign(difference) * np.inf)
    z = exact if se == 0.0 else difference / se
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


def wilson_rate(hits: int, total: int, *, alpha: float = 0.05) -> tuple[float, tuple[float, float]]:
    """``hits / total`` and its Wilson interval; NaN when ``total`` is 0."""
    if total == 0:
        return float("nan"), (float("nan"), float("nan"))
    low, high = proportion_confint(hits, total, alpha=alpha, method="wilson")
    return hits / total, (float(low), float(high))


def operating_point(
    y: np.ndarray, score: np.ndarray, threshold: float, *, alpha: float = 0.05
) -> OperatingPoint:
    """Sensitivity/specificity of ``score >= threshold``, Wilson intervals (NaN where a class is absent)."""
    y = np.asarray(y).ravel().astype(bool)
    predicted = np.asarray(score).ravel() >= threshold
    tp, fn = int((predicted & y).sum()), int((~predicted & y).sum())
    tn, fp = int((~predicted & ~y).sum()), int((predicted & ~y).sum())

    sensitivity, sensitivity_ci = wilson_rate(tp, tp + fn, alpha=alpha)
    specificity, specificity_ci = wilson_rate(tn, tn + fp, alpha=alpha)
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


@dataclass(frozen=True)
class DrawInference:
    """Mean of a per-run quantity with a t interval across independent training draws."""

    mean: float
    lower: float
    upper: float
    p_value: float  # two-sided, mean = 0
    sd_draws: float  # SD of the draw means (seeds averaged within a draw)
    sd_seeds: float  # pooled SD between seeds of one draw (NaN with one seed)
    n_draws: int
    n_seeds: int
    unit: str  # what the interval is across: "draws", or "seeds" when there is one draw only

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def across_draws(values: np.ndarray, *, alpha: float = 0.05) -> DrawInference:
    """Inference on the mean of ``values`` (draws, seeds) that treats the draws as the random units.

    Seeds are averaged within each draw (NaN entries are skipped), then the draw means give a
    one-sample t interval and test. With one draw the seeds are the units instead, and the result is
    conditional on that draw (``unit`` says so).
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    kept = values[~np.isnan(values).all(axis=1)]
    n_draws, n_seeds = kept.shape
    within = np.nanvar(kept, axis=1, ddof=1) if n_seeds > 1 else np.full(n_draws, np.nan)
    sd_seeds = float(np.sqrt(np.nanmean(within))) if n_seeds > 1 and np.isfinite(within).any() else np.nan
    if n_draws >= 2:
        units, unit = np.nanmean(kept, axis=1), "draws"
    elif n_draws == 1:
        units, unit = kept[0][~np.isnan(kept[0])], "seeds"
    else:
        units, unit = np.zeros(0), "draws"
    sd_draws = float(np.std(np.nanmean(kept, axis=1), ddof=1)) if n_draws >= 2 else np.nan
    mean = float(units.mean()) if units.size else np.nan
    lower = upper = p_value = np.nan
    if units.size >= 2:
        if np.ptp(units) == 0.0:  # no spread: the t statistic is undefined
            lower = upper = mean
            p_value = 1.0 if mean == 0.0 else 0.0
        else:
            stats = DescrStatsW(units)
            lower, upper = (float(v) for v in stats.tconfint_mean(alpha=alpha))
            p_value = float(stats.ttest_mean(0.0)[1])
    return DrawInference(mean, lower, upper, p_value, sd_draws, sd_seeds, n_draws, n_seeds, unit)


def effective_size(sizes: np.ndarray, curve: np.ndarray, target: float) -> tuple[float, str]:
    """The training-set size at which the ``curve`` (AUC at ``sizes``) reaches ``target``.

    The curve is made non-decreasing in log size (isotonic regression: more data does not hurt in
    expectation) and read linearly between measured sizes. Outside the measured range the answer is
    a bound: ``(max(sizes), ">")`` when the target lies above the curve, ``(min(sizes), "<")`` below.
    Returns the size and ``"="``, ``">"`` or ``"<"``.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    log_sizes = np.log(sizes)
    fitted = IsotonicRegression(increasing=True).fit_transform(log_sizes, np.asarray(curve, dtype=np.float64))
    if target > fitted[-1]:
        return float(sizes[-1]), ">"
    if target < fitted[0]:
        return float(sizes[0]), "<"
    grid = np.linspace(log_sizes[0], log_sizes[-1], 4001)
    reached = np.interp(grid, log_sizes, fitted) >= target
    return float(np.exp(grid[int(np.argmax(reached))])), "="

"""ROC statistics checked against independent computations: scikit-learn, brute force, a hand example."""

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from synthscan.evaluation.stats import (
    across_draws,
    auc_by_stratum,
    auc_ci,
    check_binary,
    delong_test,
    effective_size,
    operating_point,
    stratified_auc,
    youden_threshold,
)


def brute_force_delong(y, scores):
    """DeLong (1988) structural components by explicit double loops over (positive, negative) pairs."""
    y = np.asarray(y)
    scores = np.atleast_2d(scores)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)

    def psi(a, b):
        return 1.0 if a > b else 0.5 if a == b else 0.0

    v10 = np.array([[np.mean([psi(s[i], s[j]) for j in neg]) for i in pos] for s in scores])
    v01 = np.array([[np.mean([psi(s[i], s[j]) for i in pos]) for j in neg] for s in scores])
    aucs = v10.mean(axis=1)
    cov = np.cov(v10) / len(pos) + np.cov(v01) / len(neg)
    return aucs, np.atleast_2d(cov)


def tied_scores(rng, n=60):
    y = (rng.random(n) < 0.4).astype(int)
    y[:2] = [0, 1]
    a = np.round(y * 0.8 + rng.normal(size=n), 1)  # rounding makes ties
    b = np.round(0.6 * a + y * 0.5 + rng.normal(size=n) * 0.8, 1)  # correlated with a
    return y, a, b


def test_auc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        y, a, _ = tied_scores(rng)
        assert auc_ci(y, a).auc == pytest.approx(roc_auc_score(y, a), abs=1e-12)


def test_hand_computed_example():
    # Pairs (pos, neg): 0.9>0.6, 0.9>0.1, 0.4<0.6, 0.4>0.1 → AUC 3/4.
    # V10 = [1, 0.5], V01 = [0.5, 1]; var = var(V10)/2 + var(V01)/2 = 0.125/2 + 0.125/2 = 0.125.
    result = auc_ci([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1])
    assert result.auc == pytest.approx(0.75)
    assert result.se == pytest.approx(np.sqrt(0.125))
    assert result.lower == pytest.approx(max(0.0, 0.75 - norm.ppf(0.975) * np.sqrt(0.125)))
    assert result.upper == 1.0  # clipped
    assert (result.n_positive, result.n_negative) == (2, 2)


def test_delong_ci_and_paired_test_match_brute_force():
    rng = np.random.default_rng(1)
    y, a, b = tied_scores(rng)
    aucs, cov = brute_force_delong(y, np.stack([a, b]))
    single = auc_ci(y, a)
    assert single.se == pytest.approx(np.sqrt(cov[0, 0]), rel=1e-10)
    assert single.lower == pytest.approx(aucs[0] - norm.ppf(0.975) * np.sqrt(cov[0, 0]), rel=1e-10)
    test = delong_test(y, a, b)
    se = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    z = (aucs[1] - aucs[0]) / se
    assert test.difference == pytest.approx(aucs[1] - aucs[0], abs=1e-12)
    assert test.se == pytest.approx(se, rel=1e-10)
    assert test.z == pytest.approx(z, rel=1e-10)
    assert test.p_value == pytest.approx(2 * norm.sf(abs(z)), rel=1e-10)
    same = delong_test(y, a, a)
    assert same.difference == 0 and same.p_value == 1.0


def test_delong_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(2)
    y = (rng.random(400) < 0.5).astype(int)
    weak, strong = y * 0.3 + rng.normal(size=400), y * 2.0 + rng.normal(size=400)
    assert delong_test(y, weak, strong).p_value < 1e-6
    noise_a, noise_b = y * 1.0 + rng.normal(size=400), y * 1.0 + rng.normal(size=400)
    assert delong_test(y, noise_a, noise_b).p_value > 0.01


def test_single_class_is_refused():
    with pytest.raises(ValueError, match="positives and negatives"):
        auc_ci([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="must be 0"):
        check_binary([0, 2, 1])


def test_youden_and_operating_point():
    y = np.array([0, 0, 0, 1, 1, 1])
    score = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.9])
    threshold = youden_threshold(y, score)
    point = operating_point(y, score, threshold)
    # Best cut: >= 0.7 (sens 2/3, spec 1) and >= 0.4 (sens 1, spec 2/3) tie at J = 2/3.
    assert point.sensitivity - (1 - point.specificity) == pytest.approx(2 / 3)
    fixed = operating_point(y, score, 0.5)
    assert (fixed.tp, fixed.fn, fixed.tn, fixed.fp) == (2, 1, 2, 1)
    assert fixed.sensitivity_ci[0] < 2 / 3 < fixed.sensitivity_ci[1]


def test_one_positive_has_no_variance_estimate():
    """With one positive the DeLong variance is unknown (pROC: NA); it used to be 0, a [1, 1] CI."""
    result = auc_ci([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3])
    assert result.auc == 1.0 and np.isnan(result.se) and np.isnan(result.lower) and np.isnan(result.upper)
    test = delong_test([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3], [0.9, 0.1, 0.95, 0.3])
    assert np.isnan(test.p_value) and np.isnan(test.z)
    assert auc_ci([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1]).se > 0  # two of each: estimable


def test_across_draws_covers_a_known_gain_where_fixed_seeds_do_not():
    """Gains = 2 + draw effect (sd 3) + seed noise (sd 1): the draw-level interval covers the true 2 in
    ~95 % of studies; an interval that treats all 5 x 3 runs as independent covers it far less often."""
    rng = np.random.default_rng(0)
    truth, covered, naive, rejected = 2.0, 0, 0, 0
    repeats = 400
    for _ in range(repeats):
        gains = truth + rng.normal(0, 3, (5, 1)) + rng.normal(0, 1, (5, 3))
        result = across_draws(gains)
        covered += result.lower <= truth <= result.upper
        flat = across_draws(gains.reshape(1, -1))  # one "draw" of 15 seeds: units are the seeds
        naive += flat.lower <= truth <= flat.upper
        null = across_draws(rng.normal(0, 3, (5, 1)) + rng.normal(0, 1, (5, 3)))
        rejected += null.p_value < 0.05
        assert result.n_draws == 5 and result.n_seeds == 3 and result.unit == "draws"
    assert 0.92 <= covered / repeats <= 0.98
    assert naive / repeats < 0.8
    assert 0.02 <= rejected / repeats <= 0.08  # the test holds its level under no gain
    one = across_draws(np.array([[1.0, 2.0, 3.0]]))
    assert one.unit == "seeds" and one.mean == 2.0 and one.lower < 2.0 < one.upper
    same = across_draws(np.full((3, 2), 0.5))
    assert same.lower == same.upper == 0.5 and same.p_value == 0.0


def test_effective_size_inverts_the_learning_curve():
    sizes = np.array([25, 50, 100, 200, 400])
    curve = 0.6 + 0.05 * np.log(sizes)  # AUC rises linearly in log size
    n, bound = effective_size(sizes, curve, 0.6 + 0.05 * np.log(150))
    assert bound == "=" and n == pytest.approx(150, rel=0.01)
    assert effective_size(sizes, curve, 0.99) == (400.0, ">")
    assert effective_size(sizes, curve, 0.5) == (25.0, "<")
    bumpy = np.array([0.70, 0.75, 0.74, 0.80, 0.82])  # a dip is smoothed (more data does not hurt)
    n, bound = effective_size(sizes, bumpy, 0.75)
    assert bound == "=" and 100 < n < 200  # 50 and 100 both pool to 0.745


def test_stratified_auc_ignores_a_stratum_mix_and_weights_strata_by_pairs():
    rng = np.random.default_rng(7)
    # positives mostly in stratum "b", whose scores are higher; within "a" the positives score higher
    strata = np.r_[np.repeat(["a", "b"], [300, 100]), np.repeat(["a", "b"], [50, 300])]
    y = np.r_[np.zeros(400, int), np.ones(350, int)]
    score = (strata == "b") * 2.0 + rng.normal(size=750) + ((strata == "a") & (y == 1)) * 1.0
    a, b = strata == "a", strata == "b"
    auc_a, auc_b = auc_ci(y[a], score[a]), auc_ci(y[b], score[b])
    assert auc_a.auc > 0.7 and abs(auc_b.auc - 0.5) < 0.07
    assert auc_by_stratum(y, score, strata) == {"a": auc_a, "b": auc_b}
    within = stratified_auc(y, score, strata)
    pairs = np.array([300 * 50, 100 * 300])  # 15,000 and 30,000 pairs; 350 and 400 cases
    assert within.auc == pytest.approx(pairs @ [auc_a.auc, auc_b.auc] / pairs.sum())
    assert within.auc != pytest.approx(np.array([350, 400]) @ [auc_a.auc, auc_b.auc] / 750, abs=1e-3)
    weights = pairs / pairs.sum()
    assert within.se == pytest.approx(np.sqrt(weights**2 @ [auc_a.se**2, auc_b.se**2]))
    assert within.n_positive == 350 and within.n_negative == 400
    # a pooled AUC mistakes the strata's mix for a difference: all of stratum b's positives outrank a
    assert roc_auc_score(y, score) > within.auc + 0.1
    # a stratum holding one side only adds no pairs and no cases
    extra = stratified_auc(np.r_[y, 1], np.r_[score, 99.0], np.append(strata, "c"))
    assert extra.auc == pytest.approx(within.auc) and extra.n_positive == 350
    # one case of a class: no DeLong estimate, so the bound 1 / (4 min(m, n)) keeps the interval finite
    single = stratified_auc(np.r_[y, 0, 1, 1], np.r_[score, 0.0, 1.0, 2.0], np.append(strata, ["d"] * 3))
    w = np.r_[pairs, 2] / (pairs.sum() + 2)
    assert single.se == pytest.approx(np.sqrt(w**2 @ [auc_a.se**2, auc_b.se**2, 0.25]))
    assert np.isfinite([single.lower, single.upper]).all()
    with pytest.raises(ValueError, match="no stratum"):
        stratified_auc(np.array([0, 1]), np.array([0.1, 0.2]), np.array(["a", "b"]))
    with pytest.raises(ValueError, match="one each per case"):
        stratified_auc(y, score, strata[:-1])

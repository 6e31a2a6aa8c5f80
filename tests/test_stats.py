"""ROC statistics checked against independent computations: scikit-learn, brute force, a hand example."""

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from synthscan.evaluation.stats import (
    auc_ci,
    check_binary,
    delong_test,
    operating_point,
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

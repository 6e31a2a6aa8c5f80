"""Tracer fidelity: the simulator's tracers in the measures, and the effect's ratio on known answers."""

import numpy as np
import pytest

from synthscan.evaluation.tracer import MEASURES, soft_tissue_measures, tracer_effect, tracer_effect_text
from synthscan.simulator import load_site, simulate_study


@pytest.mark.parametrize("seed", [0, 1])
def test_dpd_keeps_more_soft_tissue_than_mdp_in_the_same_patient(seed):
    """One simulated patient scanned with MDP and with DPD (1.4x soft tissue, 0.95x bone): every
    bone-to-soft-tissue measure falls with DPD, by about the simulator's factor."""
    measures = {}
    for tracer in ("MDP", "DPD"):
        weights = {name: float(name == tracer) for name in ("MDP", "HDP", "DPD")}
        study = simulate_study(load_site("centre_a", {"tracer_weights": weights}), seed)
        assert study.meta["tracer"] == tracer
        measures[tracer] = soft_tissue_measures(study.counts)
    assert np.isfinite(measures["MDP"]).all() and len(measures["MDP"]) == len(MEASURES)
    bone_over_soft = np.array([1, 1, -1, -1])  # the last two are soft tissue over bone
    shift = (measures["MDP"] - measures["DPD"]) * bone_over_soft
    assert np.all(shift > 0.1) and np.all(shift < np.log(1.4 / 0.95) + 0.15), shift


def test_soft_tissue_measures_are_nan_without_landmarks():
    assert np.isnan(soft_tissue_measures(np.zeros((2, 64, 16), np.uint16))).all()


def _studies(rng, tracers, strata, effect):
    """Four log ratios: patients vary (sd 0.3), the tracer shifts them by ``effect`` × its own shift
    (one DPD study shows its tracer about as poorly as a simulated one: AUC about 0.7), a condition
    ('g3') shifts them by 0.8 whatever the tracer."""
    shift = {"MDP": 0.0, "HDP": 0.03, "DPD": 0.1}
    x = rng.normal(scale=0.3, size=(len(tracers), 4))
    x += effect * np.array([shift[t] for t in tracers])[:, None]
    x += 0.8 * (np.asarray(strata) == "g3")[:, None]
    return x


def test_tracer_effect_is_one_when_samples_carry_the_real_effect_and_tracks_its_size():
    rng = np.random.default_rng(0)
    n = 3000
    tracers = list(rng.choice(["MDP", "HDP", "DPD"], n, p=[0.5, 0.25, 0.25]))
    strata = list(rng.choice(["normal", "g3"], n, p=[0.8, 0.2]))
    real = _studies(rng, tracers, strata, 1.0)
    real[0] = np.nan  # a study without landmarks
    groups = [f"p{i // 2}" for i in range(n)]
    # samples: DPD drawn mostly with the condition that raises every measure, MDP mostly without
    asked = ["DPD"] * 600 + ["MDP"] * 600 + ["HDP"] * 300
    fake_strata = ["g3"] * 480 + ["normal"] * 120 + ["g3"] * 120 + ["normal"] * 480 + ["normal"] * 300
    result = {
        effect: tracer_effect(
            real, tracers, groups, strata, _studies(rng, asked, fake_strata, effect), asked, fake_strata
        )
        for effect in (0.0, 1.0, 2.0)
    }
    same = result[1.0]
    assert same["reference"] == "MDP" and same["left_out"] == {"real": 1, "synthetic": 0}
    assert same["n_real"] == n - 1 and same["per_tracer"]["DPD"]["n_synthetic"] == 600
    dpd = [result[e]["per_tracer"]["DPD"] for e in (0.0, 1.0, 2.0)]
    assert dpd[1]["real_auc"]["lower"] > 0.6 and dpd[1]["real_auc"]["upper"] < 0.8
    assert dpd[1]["kept"] == pytest.approx(1.0, abs=0.2), "the confounded condition mix is stratified out"
    assert abs(dpd[0]["kept"]) < 0.25 and dpd[2]["kept"] > 1.4
    low, high = dpd[1]["kept_ci95"]
    assert low < 1 < high and high - low < 1.2, "the CI holds the true ratio and says how far to trust it"
    assert dpd[2]["kept_ci95"][0] > 1 and dpd[0]["kept_ci95"][1] < 1
    assert 0.4 < same["real_accuracy"] < 0.75, "one study shows its tracer poorly"
    text = "\n".join(tracer_effect_text(same))
    assert "| DPD | " in text and "kept" in text


def test_tracer_effect_needs_two_tracers_with_enough_studies():
    x = np.zeros((20, 4))
    assert tracer_effect(x, ["MDP"] * 20, list(range(20)), ["n"] * 20, x, ["MDP"] * 20, ["n"] * 20) == {}


def test_tracer_effect_refuses_rows_and_labels_of_different_lengths():
    x = np.zeros((20, 4))
    with pytest.raises(ValueError, match="synthetic studies: 20 measure rows but"):
        tracer_effect(x, ["MDP"] * 20, list(range(20)), ["n"] * 20, x, ["MDP"] * 19, ["n"] * 20)

"""Fidelity metrics: known-answer math on Gaussians, and an end-to-end report on tiny datasets."""

import dataclasses
import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from synthscan.dataset import Dataset
from synthscan.evaluation.detector import DetectorConfig
from synthscan.evaluation.fidelity import (
    FALLBACK_SHAPE,
    FidelityModel,
    body_placement_text,
    by_condition_text,
    condition_mix_caveats,
    count_statistics,
    evaluate_fidelity,
    feature_metrics,
    frechet_distance,
    grade_ordering,
    head_to_bladder_mm,
    misplaced_bodies,
    noise_power_spectrum,
    patient_halves,
    per_condition_fidelity,
    prdc,
    redrawn_bodies,
    trunk_length_text,
    trunk_lengths,
    two_sample_auc,
    write_fidelity_report,
)
from synthscan.evaluation.privacy import fit_shape, image_embedding

MATRIX = (64, 16)


def test_frechet_known_values():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # Shift by 2 in every dimension: distance = |mu|^2 = 12 (covariances equal).
    assert frechet_distance(a, a + 2) == pytest.approx(12, rel=1e-6)
    # Scaled covariance: trace(I) + trace(4I) - 2 trace(2I) = 3 * (1 + 4 - 4) = 3.
    assert frechet_distance(a, 2 * rng.normal(size=(4000, 3))) == pytest.approx(3, rel=0.1)


def test_prdc_and_two_sample_auc_separate_good_from_bad():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 4))
    good = rng.normal(size=(300, 4))
    collapsed = rng.normal(scale=0.1, size=(300, 4))
    shifted = rng.normal(size=(300, 4)) + 3
    same = prdc(real, good)
    assert same["precision"] > 0.8 and same["recall"] > 0.8 and same["coverage"] > 0.8
    assert 0.7 < same["density"] < 1.3
    mode = prdc(real, collapsed)
    assert mode["precision"] > 0.95 and mode["recall"] < 0.3 and mode["coverage"] < 0.3
    far = prdc(real, shifted)
    assert far["precision"] < 0.1 and far["coverage"] < 0.1
    assert abs(two_sample_auc(real, good) - 0.5) < 0.1
    assert two_sample_auc(real, shifted) > 0.95


def test_within_condition_two_sample_auc_sees_studies_not_the_condition_mix():
    rng = np.random.default_rng(5)

    def draw(n_normal: int, n_amyloid: int, shift: float = 0.0) -> tuple[np.ndarray, list[str]]:
        x = rng.normal(size=(n_normal + n_amyloid, 4))
        x[n_normal:, 0] += 4.0  # the condition shows in the features
        x[:, 1] += shift
        return x, ["normal"] * n_normal + ["amyloidosis-g3"] * n_amyloid

    real, real_keys = draw(270, 30)
    same, same_keys = draw(100, 100)  # the real studies' look, drawn a half per condition
    assert two_sample_auc(real, same) > 0.65, "the mix alone separates the pooled sets"
    within = two_sample_auc(real, same, conditions=(real_keys, same_keys))
    assert abs(within - 0.5) < 0.08
    unlike, unlike_keys = draw(100, 100, shift=2.0)
    assert two_sample_auc(real, unlike, conditions=(real_keys, unlike_keys)) > 0.9
    metrics = feature_metrics(real, same, conditions=(real_keys, same_keys))
    assert metrics["two_sample_auc_within_condition"] == pytest.approx(within)
    by = metrics["two_sample_auc_by_condition"]
    assert {c: (r["n_real"], r["n_synthetic"]) for c, r in by.items()} == {
        "amyloidosis-g3": (30, 100),
        "normal": (270, 100),
    }
    assert all(abs(r["auc"] - 0.5) < 0.15 for r in by.values())
    unlike_by = feature_metrics(real, unlike, conditions=(real_keys, unlike_keys))[
        "two_sample_auc_by_condition"
    ]
    assert all(r["auc"] > 0.85 for r in unlike_by.values()), "each condition shows the shift on its own"
    text = by_condition_text(metrics, {"two_sample_auc_by_condition": unlike_by})
    assert text.count("(real vs real ") == 2 and "30 real and 100 synthetic" in text
    rare, rare_keys = draw(100, 100)
    rare[100:, 1] += 3.0  # only the rare condition's studies look different
    rare_metrics = feature_metrics(real, rare, conditions=(real_keys, rare_keys))
    rare_by = rare_metrics["two_sample_auc_by_condition"]
    assert rare_by["amyloidosis-g3"]["auc"] > 0.8 and abs(rare_by["normal"]["auc"] - 0.5) < 0.15
    assert rare_metrics["two_sample_auc_within_condition"] < 0.65, (
        "the pairs' weights hide the rare condition"
    )
    low, high = rare_by["amyloidosis-g3"]["ci95"]
    assert low < rare_by["amyloidosis-g3"]["auc"] < high and high - low > 0.05, (
        "30 real studies: a wide interval"
    )
    assert "two_sample_auc_within_condition" not in feature_metrics(
        real, same, conditions=(real_keys, ["metastasis"] * len(same))
    ), "no shared condition: nothing to compare within"
    with pytest.raises(ValueError, match="share no condition"):
        two_sample_auc(real, same, conditions=(real_keys, ["metastasis"] * len(same)))
    mix, alone = condition_mix_caveats(real_keys, [*same_keys, "metastasis"])
    assert "other proportions" in mix and alone.startswith("0 real and 1 synthetic")
    assert condition_mix_caveats(real_keys, real_keys[::-1]) == []


def test_nps_flat_for_poisson_and_falls_for_smoothed_noise():
    rng = np.random.default_rng(2)
    white = rng.poisson(200, size=(256, 64)).astype(float)
    nps = noise_power_spectrum(white)
    assert np.all(np.abs(nps[6:] - 1) < 0.15)  # above the high-pass cut-off
    smooth = 200 + gaussian_filter(rng.normal(0, 14, size=(256, 64)), 1.5)
    sm = noise_power_spectrum(smooth)
    assert sm[-1] < 0.1 * sm[3]


def test_per_condition_and_grade_ordering():
    probs = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    out = per_condition_fidelity(probs, ["normal", "metastasis", "metastasis", "amyloidosis"])
    assert out["metastasis"]["share_correct"] == 0.5
    assert out["metastasis"]["assigned"] == {"normal": 1, "metastasis": 1}
    # a grade-1 amyloidosis study read as normal is read right: it is left out, grade 2 is scored
    both = per_condition_fidelity(probs[[0, 3]], ["amyloidosis", "amyloidosis"], [1, 2])
    assert both["amyloidosis"]["n"] == 1 and both["amyloidosis"]["assigned"] == {"amyloidosis": 1}
    assert per_condition_fidelity(probs[:1], ["amyloidosis"], [1]) == {}
    # without a grade an amyloidosis study is a positive scan: read as normal, it is read wrong
    assert per_condition_fidelity(probs[:1], ["amyloidosis"], [None])["amyloidosis"]["share_correct"] == 0
    low, high = out["metastasis"]["ci95"]  # Wilson's interval for 1 of 2
    assert low == pytest.approx(0.0945, abs=1e-3) and high == pytest.approx(0.9055, abs=1e-3)
    grades = [1, 1, 2, 2, 3, 3]
    amy = np.array([[1 - p, 0, p] for p in (0.3, 0.4, 0.6, 0.5, 0.9, 0.8)])
    ordering = grade_ordering(amy, grades)
    assert ordering["spearman_rho"] > 0.8
    shares = {grade: row["share"] for grade, row in ordering["by_grade"].items()}
    assert shares == {1: 0.0, 2: 0.5, 3: 1.0}  # grade 2: one read amyloidosis, one a tie read normal


def test_a_trunk_drawn_too_long_lies_beyond_the_real_range():
    """Skull and bladder peaks of the anterior view; a sample whose bladder sits 40 cm lower than any real
    one's is counted longer, per label, and a field too short to reach the bladder is not measured."""

    def study(head: int, bladder: int, rows: int = 1024) -> np.ndarray:
        rate = np.full((2, rows, 32), 2.0)
        rate[0, head - 10 : head + 10] += 30.0  # skull
        rate[0, bladder - 6 : bladder + 6, 12:20] += 80.0  # bladder, anterior only
        return rate

    assert head_to_bladder_mm(study(50, 400), 2.4) == pytest.approx(350 * 2.4)
    assert head_to_bladder_mm(study(40, 550), 2.4) == pytest.approx(510 * 2.4)
    assert head_to_bladder_mm(study(20, 40, rows=64), 2.4) is None
    assert head_to_bladder_mm(study(50, 400, rows=500), 2.4) is None, "the bladder's window cut off"
    real = [head_to_bladder_mm(study(50, b), 2.4) for b in (380, 400, 420)]
    fake = [head_to_bladder_mm(study(50, b), 2.4) for b in (390, 410, 560, 400)]
    out = trunk_lengths([*real, None], ["normal"] * 4, [*fake, 40.0], [*["normal"] * 4, "metastasis"])
    assert set(out) == {"normal"}, "no real metastasis study to compare with"
    assert out["normal"]["share_longer"] == 0.25 and out["normal"]["share_shorter"] == 0.0
    assert out["normal"]["real_range_mm"] == [330 * 2.4, 370 * 2.4] and out["normal"]["n"] == 4
    assert (
        "normal 0.250 longer, 0.000 shorter (n=4; median 852 mm, real 840 mm in 792-888)"
        in trunk_length_text(out)
    )


def test_fidelity_reports_a_trunk_drawn_too_long_per_label(tmp_path):
    """`evaluate_fidelity` pairs each study's trunk with its own label: one normal sample of six has its
    bladder 40 cm below every real normal's; no metastasis sample is outside the real metastases' range."""
    rng = np.random.default_rng(0)

    def dataset(root, source, bladders):
        data = Dataset.create(root, matrix=(1024, 32))
        with data.writer() as w:
            for i, (label, bladder) in enumerate(bladders):
                rate = np.full((2, 1024, 32), 2.0)
                rate[0, 40:60] += 30.0  # skull
                rate[:, 60:800, 10:22] += 6.0  # body
                rate[0, bladder - 6 : bladder + 6, 12:20] += 80.0
                w.add(rng.poisson(rate), study_id=f"{source}{i}", patient_id=f"{source}p{i}", label=label,
                      source=source)  # fmt: skip
        return data

    real = dataset(tmp_path / "r", "simulated", [("normal", 380 + 4 * i) for i in range(10)]
                   + [("metastasis", 390 + 4 * i) for i in range(6)])  # fmt: skip
    synthetic = dataset(tmp_path / "s", "synthetic", [("normal", b) for b in (390, 400, 560, 410, 395, 405)]
                        + [("metastasis", b) for b in (395, 398, 402, 405)])  # fmt: skip
    results = evaluate_fidelity(real, synthetic)
    trunks = results["trunk_length"]
    assert trunks["normal"]["share_longer"] == pytest.approx(1 / 6) and trunks["normal"]["n"] == 6
    assert trunks["metastasis"]["share_longer"] == trunks["metastasis"]["share_shorter"] == 0.0
    text = write_fidelity_report(results, tmp_path / "rep", "real", "synth").read_text()
    assert "normal 0.167 longer" in text and "metastasis 0.000 longer" in text


def test_a_body_drawn_down_the_image_is_counted_as_misplaced(tmp_path):
    """A study whose body starts half a head (12 cm: 20 rows of 6 mm) below every real one's is flagged,
    per condition; a vertex a few rows lower than the real ones is not."""
    rng = np.random.default_rng(0)
    dataset = Dataset.create(tmp_path / "d", matrix=(256, 32))
    with dataset.writer() as w:
        for i, first in enumerate([4, 6, 8, 10, 12, 90]):
            mean = np.zeros((256, 32))
            mean[first : first + 120, 8:24] = 40.0
            counts = rng.poisson(mean)
            w.add(
                np.stack([counts, counts]).astype(np.uint16),
                study_id=f"s{i}",
                patient_id=f"p{i}",
                label="normal",
            )
    first_rows = count_statistics(dataset, dataset.records)["body_first_row"]
    assert abs(first_rows[0] - 4) <= 2 and abs(first_rows[-1] - 90) <= 2
    placement = misplaced_bodies(first_rows[:3], first_rows[3:], ["normal", "metastasis", "normal"], 6.0)
    assert placement["share"] == pytest.approx(1 / 3)
    assert placement["per_condition"] == {
        "metastasis": {"n": 1, "share": 0.0},
        "normal": {"n": 2, "share": 0.5},
    }


def test_the_bodies_a_generator_drew_again_are_reported_per_condition(tmp_path):
    """The manifest's ``redraws`` of each sample: the misplaced share the generator's own check hid."""
    dataset = Dataset.create(tmp_path / "d", matrix=(64, 16))
    with dataset.writer() as w:
        drawn = [("normal", 0), ("normal", 2), ("metastasis", 0), ("normal", 0)]
        for i, (label, redraws) in enumerate(drawn):
            w.add(
                np.zeros((2, 64, 16), np.uint16),
                study_id=f"s{i}",
                patient_id=f"p{i}",
                label=label,
                source="synthetic",
                extra={"redraws": redraws},
            )
    redrawn = redrawn_bodies(dataset.records)
    assert redrawn == {"share": 0.25, "per_condition": {"metastasis": 0.0, "normal": pytest.approx(1 / 3)}}
    placement = {"share": 0.0, "n": 4, "limit_row": 70, "per_condition": {}, "redrawn": redrawn}
    assert "found 0.250 of them misplaced" in body_placement_text(placement)
    assert redrawn_bodies([dataclasses.replace(r, extra={}) for r in dataset.records]) is None


def make(root, rng, n, source, blur, hot=0.0):
    dataset = Dataset.create(root, matrix=MATRIX)
    with dataset.writer() as w:
        for i in range(n):
            mean = gaussian_filter(rng.gamma(2.0, size=MATRIX), 2) * 300
            mean[40:48, 4:12] += hot
            counts = rng.poisson(mean)
            if blur:
                counts = gaussian_filter(counts.astype(float), blur)
            label = ("normal", "metastasis", "amyloidosis")[i % 3]
            w.add(
                np.round(np.stack([counts, counts[:, ::-1]])).astype(np.uint16),
                study_id=f"{source}{i}",
                patient_id=f"{source}p{i // 2}",
                label=label,
                perugini_grade=1 + i % 3 if label == "amyloidosis" else None,
                source=source,
                tracer=("MDP", "DPD")[i % 2],
                extra={"burden": "1-3" if label == "metastasis" else "none"} if source == "synthetic" else {},
            )
    return dataset


def test_report_end_to_end(tmp_path):
    rng = np.random.default_rng(3)
    real = make(tmp_path / "real", rng, 40, "real", 0)
    synth = make(tmp_path / "synth", rng, 20, "synthetic", 1.0, hot=300.0)
    a, b = patient_halves(real.records)
    assert not {r.patient_id for r in a} & {r.patient_id for r in b}

    def probabilities(batch):  # reads "metastasis" where the hot patch shows, "normal" elsewhere
        patch = batch[:, 0, 40:48, 4:12].mean(axis=(1, 2)) / batch[:, 0].mean(axis=(1, 2))
        return np.where((patch > 1.25)[:, None], [0.2, 0.7, 0.1], [0.7, 0.2, 0.1])

    shape = fit_shape(real.info.matrix, FALLBACK_SHAPE)

    def read(batch):  # the image embedding beside the stand-in classifier's reading
        return np.stack([image_embedding(c, shape) for c in batch]), probabilities(batch)

    detector = DetectorConfig(bin_factor=1, channels=(8, 16), epochs=6, folds=3)
    results = evaluate_fidelity(real, synth, model=FidelityModel(read), detector=detector)
    assert results["image_detector"]["ci95"][0] > 0.5, "blurred studies with a hot spot are told apart"
    nps = results["count_statistics"]["comparison"]["nps_anterior"]["mean_abs_log_ratio"]
    assert nps > 0.5  # blurred synthetic noise is detected
    fake, base = results["real_vs_synthetic"], results["real_vs_real"]
    assert fake["two_sample_auc"] > 0.8 > base["two_sample_auc"]
    assert fake["two_sample_auc_within_condition"] > 0.8, "the blur shows within every condition too"
    assert "within_condition" in results["image_detector"]
    assert fake["frechet"] > 1.3 * base["frechet"]
    assert results["per_condition"]["metastasis"]["share_correct"] == 1.0
    assert results["per_condition"]["normal"]["share_correct"] == 0.0  # every sample shows the patch
    real_reading = results["real_per_condition"]  # no real study does: the classifier's own reading
    assert real_reading["normal"]["assigned"] == {"normal": 14}
    assert real_reading["normal"]["ci95"][0] > 0.75 > results["per_condition"]["normal"]["ci95"][1]
    assert real_reading["metastasis"]["share_correct"] == 0.0
    assert set(results["per_tracer"]) == {"MDP", "DPD"} and set(results["per_burden"]) == {"none", "1-3"}
    assert results["per_burden"]["1-3"] == {"metastasis": results["per_condition"]["metastasis"]}
    report = write_fidelity_report(results, tmp_path / "rep", "real", "synth")
    text = report.read_text()
    assert "| frechet |" in text and "Image-space detector" in text and "Per-tracer fidelity" in text
    assert "| two_sample_auc_within_condition |" in text and "Within conditions" in text
    assert "| normal | 7 | 0.000 [0.000, 0.354] | {'metastasis': 7} | 14 | 1.000 |" in text
    # a report of results saved before the real studies' reading shows its cells empty
    older = {k: v for k, v in results.items() if k != "real_per_condition"}
    older["per_condition"] = {
        label: {key: value for key, value in row.items() if key != "ci95"}
        for label, row in results["per_condition"].items()
    }
    older_text = write_fidelity_report(older, tmp_path / "older", "real", "synth").read_text()
    assert "| normal | 7 | 0.000 | {'metastasis': 7} | - | - |" in older_text
    assert results["body_placement"]["n"] == 20 and "Body placement" in text
    assert results["body_placement"]["redrawn"] is None, "studies that record no redraws: not reported"
    assert results["trunk_length"] == {} and "Trunk length" not in text, "a 64-row field shows no bladder"
    # toy studies have no skeleton to measure soft tissue against: no tracer effect to report
    assert results["tracer_effect"] == {} and "Tracer fidelity" not in text
    assert json.loads((tmp_path / "rep" / "results.json").read_text())["n_synthetic"] == 20
    assert (tmp_path / "rep" / "noise_power_spectrum.png").is_file()
    assert "Where it looks" in text and (tmp_path / "rep" / "image_detector_map.png").is_file()


def test_cli_fidelity(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from synthscan.cli import main
    from synthscan.evaluation import tracer

    # toy studies have no skeleton: stand-in measures (each view's log total, twice) let the tracer
    # effect run end to end, though a toy study's tracer leaves no trace in them
    monkeypatch.setattr(tracer, "soft_tissue_measures", lambda c: np.log(c.reshape(2, -1).sum(1)).repeat(2))
    rng = np.random.default_rng(4)
    real = make(tmp_path / "real", rng, 12, "real", 0)
    synth = make(tmp_path / "synth", rng, 6, "synthetic", 0)
    args = ["evaluate", "fidelity", "--real", str(real.root), "--synthetic", str(synth.root)]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "rep"), "--detector-repeats", "2"])
    assert result.exit_code == 0, result.output
    assert "two-sample AUC" in result.output and "Image detector AUC" in result.output
    assert "AUC of 2 trainings' averaged out-of-fold scores" in result.output
    assert "AUC of 2 trainings' averaged" in (tmp_path / "rep" / "report.md").read_text()
    # 6 MDP and 6 DPD studies: the reference is the first of the tied tracers
    assert "Tracer effect kept against DPD (1 = as in the real studies): n/a." in result.output
    assert "## Tracer fidelity" in (tmp_path / "rep" / "report.md").read_text()
    refused = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "r0"), "--detector-repeats", "0"])
    assert refused.exit_code == 2 and "--detector-repeats" in refused.output


def test_small_sets_get_a_caveat_instead_of_linear_algebra_warnings():
    import warnings

    from scipy.linalg import LinAlgWarning

    from synthscan.evaluation.fidelity import frechet_distance, small_sample_caveats

    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LinAlgWarning)
        assert frechet_distance(rng.normal(size=(5, 12)), rng.normal(size=(6, 12))) >= 0
    (caveat,) = small_sample_caveats({"real half A": 5, "synthetic": 40}, 12)
    assert "real half A 5 studies; 12 dimensions" in caveat and "synthetic" not in caveat
    assert small_sample_caveats({"real half A": 50, "synthetic": 40}, 12) == []

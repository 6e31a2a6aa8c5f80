"""`synthscan evaluate augmentation` end to end on tiny data: draws, arms, inference, shards, bad input."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import ttest_1samp
from sklearn.metrics import roc_auc_score
from toy_scans import MATRIX, add_toy_study, toy_dataset

from synthscan.classifier.config import ClassifierConfig
from synthscan.classifier.predict import read_predictions
from synthscan.classifier.synthetic import SEED_STRIDE, SyntheticGenerator
from synthscan.cli import main
from synthscan.config import builtin_config, load_config
from synthscan.dataset import Dataset
from synthscan.evaluation.augmentation import (
    Run,
    StudyDesign,
    _headline,
    draw_patients,
    parse_ratios,
    parse_shard,
    parse_sizes,
    patient_strata,
    run_augmentation_study,
)
from synthscan.evaluation.augmentation_report import EXTERNAL

MIXED = [
    ("normal", 0),
    ("metastasis", 0),
    ("amyloidosis", 3),
    ("normal", 0),
    ("amyloidosis", 2),
    ("metastasis", 0),
]
TASKS = ["metastasis", "amyloidosis"]
TINY = ["--config", "tiny", "--set", "train.max_steps=16", "--set", "train.eval_every=8"]
DESIGN = ["--ratios", "0,1", "--real-sizes", "12,24", "--draws", "3", "--seeds", "1"]


def toy(root, n, *, seed, prefix, source="real", site="a", cycle=MIXED):
    return toy_dataset(root, n, cycle=cycle, seed=seed, prefix=prefix, source=source, site=site)


def tiny_config(**overrides):
    settings = {"train.max_steps": 16, "train.eval_every": 8, **overrides}
    return load_config(ClassifierConfig, builtin_config("classifier", "tiny"), settings)


def fake_sampler(calls):
    """Stands in for ``sample_to_dataset``: study i gets seed + i; reruns add only missing studies."""

    def sample(out, *, condition, n, grade, seed):
        calls.append((condition, grade, n, seed))
        dataset = Dataset.create(out, matrix=MATRIX, exist_ok=True)
        with dataset.writer() as writer:
            for i in range(n):
                study_id = f"syn-{condition}-{grade}-{i:05d}"
                if study_id not in dataset:
                    rng = np.random.default_rng(seed + i)
                    add_toy_study(
                        writer,
                        rng,
                        condition,
                        grade or 0,
                        study_id=study_id,
                        patient_id=study_id,
                        source="synthetic",
                        seed=seed + i,
                    )
        return dataset

    return sample


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("augmentation")
    real = toy(root / "real", 90, seed=0, prefix="r")
    synthetic = toy(root / "synthetic", 90, seed=1, prefix="y", source="synthetic")
    oracle = toy(root / "oracle", 60, seed=2, prefix="o", site="o")
    cohorts = [toy(root / f"site{k}", 36, seed=10 + k, prefix=f"e{k}", site=f"s{k}") for k in (1, 2)]
    out = root / "report"
    args = ["evaluate", "augmentation", "--real", str(real.root), "--synthetic", str(synthetic.root)]
    args += ["--oracle", str(oracle.root), "--test", str(cohorts[0].root), str(cohorts[1].root), *DESIGN]
    args += [*TINY]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return {
        "root": root,
        "out": out,
        "args": args,
        "real": real,
        "synthetic": synthetic,
        "cohorts": cohorts,
        "result": result,
    }


def results_of(out):
    return json.loads((out / "results.json").read_text())


def test_report_files_and_headline(study):
    out = study["out"]
    for name in (
        "report.md",
        "results.json",
        "curves-metastasis.png",
        "curves-amyloidosis.png",
        "study.json",
    ):
        assert (out / name).is_file(), name
    for name in ("run.json", "config.yaml", "metrics.jsonl"):  # the study folder describes itself
        assert (out / name).is_file(), name
    results = results_of(out)
    assert len(results["runs"]) == 2 * 3 * 3  # sizes x draws x (real, synthetic 1, oracle 1)
    assert set(results["cohorts"]) == {"internal", "site1", "site2"}
    assert {(h["task"], h["size"]) for h in results["headline"]} == {(t, n) for t in TASKS for n in (12, 24)}
    for row in results["headline"]:
        assert row["synthetic"]["cohort"] == EXTERNAL and row["synthetic"]["gain_rel"]["n_draws"] == 3
        assert row["oracle"]["ratio"] == row["ratio"]
    assert {m["arm"] for m in results["multipliers"]} == {"synthetic", "oracle"}
    report = (out / "report.md").read_text()
    assert "## Headline" in report and "headroom closed" in report and "across draws" in report
    assert "effective-sample multiplier" in report and "Stouffer" not in report
    assert "metastasis, 12 real patients" in study["result"].output and "Report:" in study["result"].output


def test_draws_are_nested_independent_and_patient_disjoint(study):
    out, real = study["out"], study["real"]

    def members(name):
        data = json.loads((out / "runs" / name / "data.json").read_text())
        drawn = sorted(s for s in data["train_real"] if s.startswith("r"))  # the real pool's studies
        return drawn, data

    for draw in range(3):
        small, _ = members(f"n12-d{draw}-s0-real")
        large, _ = members(f"n24-d{draw}-s0-real")
        assert len(small) == 12 and len(large) == 24 and set(small) <= set(large)  # nested in size
        for arm in ("synthetic1", "oracle1"):
            drawn, data = members(f"n24-d{draw}-s0-{arm}")
            assert drawn == large  # every arm of a draw and seed: the same real studies
        _, data = members(f"n24-d{draw}-s0-synthetic1")
        assert len(data["train_synthetic"]) == 24
        _, data = members(f"n24-d{draw}-s0-oracle1")
        assert len([s for s in data["train_real"] if s.startswith("o")]) == 24
    assert len({tuple(members(f"n24-d{d}-s0-real")[0]) for d in range(3)}) == 3  # draws differ
    splits = json.loads((real.root / "splits.json").read_text())
    assert splits["stratified_by"].startswith("label and task targets")
    drawn = {real.record(s).patient_id for d in range(3) for s in members(f"n24-d{d}-s0-real")[0]}
    assert drawn <= set(splits["patients"]["train"])
    internal = read_predictions(out / "runs" / "n12-d0-s0-real" / "predictions" / "internal.csv")[0]
    assert {real.record(s).patient_id for s in internal} == set(splits["patients"]["test"])


def test_draws_are_stratified_by_task_targets():
    strata = {f"p{i}": (0, 0, 0) for i in range(80)} | {f"m{i}": (1, 1, 0) for i in range(15)}
    strata |= {f"a{i}": (2, 0, 1) for i in range(5)}
    for draw in range(5):
        chosen = draw_patients(strata, 20, draw, seed=0)
        assert sum(p.startswith("m") for p in chosen) == 3 and sum(p.startswith("a") for p in chosen) == 1
        assert set(chosen) <= set(draw_patients(strata, 40, draw, seed=0))
    assert draw_patients(strata, 20, 0, seed=0) != draw_patients(strata, 20, 1, seed=0)


def test_statistics_match_independent_computations(study):
    out = study["out"]
    results = results_of(out)
    for entry in results["per_run"][:40]:
        _, targets, probabilities = read_predictions(
            out / "runs" / entry["run"] / "predictions" / f"{entry['cohort']}.csv"
        )
        k = TASKS.index(entry["task"])
        assert entry["auc"]["auc"] == pytest.approx(roc_auc_score(targets[:, k], probabilities[:, k]))
    auc = {(e["task"], e["cohort"], e["run"]): e["auc"]["auc"] for e in results["per_run"]}
    for row in results["gains"]:
        if row["cohort"] != EXTERNAL or row["arm"] != "synthetic":
            continue
        per_draw = []
        for draw in range(3):
            base = f"n{row['size']}-d{draw}-s0-"
            gains = [
                100
                * (auc[(row["task"], c, base + "synthetic1")] - auc[(row["task"], c, base + "real")])
                / auc[(row["task"], c, base + "real")]
                for c in ("site1", "site2")
            ]
            per_draw.append(np.mean(gains))
        assert row["gain_rel"]["mean"] == pytest.approx(np.mean(per_draw))
        if np.ptp(per_draw) > 0:
            expected = ttest_1samp(per_draw, 0.0)
            interval = expected.confidence_interval()
            assert row["gain_rel"]["p_value"] == pytest.approx(expected.pvalue)
            assert (row["gain_rel"]["lower"], row["gain_rel"]["upper"]) == pytest.approx(
                (interval.low, interval.high)
            )


def test_shards_and_a_resumed_run_give_the_same_results(study, tmp_path):
    """Two shards sharing one folder (and a rerun after a lost run) reproduce the single-process results."""
    expected = results_of(study["out"])
    out = tmp_path / "sharded"
    runner = CliRunner()
    first = runner.invoke(main, [*study["args"], "--out", str(out), "--shard", "1/2"])
    assert first.exit_code == 0, first.output
    assert "partly done" in first.output and not (out / "results.json").exists()
    assert len(list((out / "runs").iterdir())) == 9
    second = runner.invoke(main, [*study["args"], "--out", str(out), "--shard", "2/2"])
    assert second.exit_code == 0, second.output
    assert results_of(out) == expected
    shutil.rmtree(out / "runs" / "n24-d1-s0-synthetic1")  # a run lost (or never finished)
    (out / "runs" / "n12-d2-s0-real" / "predictions" / "site2.csv").unlink()
    model = out / "runs" / "n12-d2-s0-real" / "model.safetensors"
    before = model.stat().st_mtime_ns
    again = runner.invoke(main, [*study["args"], "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert model.stat().st_mtime_ns == before  # finished runs are not retrained, only re-predicted
    assert results_of(out) == expected
    changed = runner.invoke(main, [*study["args"], "--out", str(out), "--ratios", "0,2"])
    assert changed.exit_code != 0 and "other ratios" in changed.output


def test_the_grid_shards_itself_over_accelerate_processes(study, tmp_path):
    """`accelerate launch -m synthscan evaluate augmentation` (2 CPU processes): one process's results."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "synthscan", *study["args"], "--out", str(tmp_path / "launched"),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    # cwd away from a source checkout, whose synthscan/ folder would shadow the installed package
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("Report:") == 1, "the main process alone reports"
    assert results_of(tmp_path / "launched") == results_of(study["out"])


def test_headline_ratio_is_chosen_per_task_on_that_tasks_validation():
    """Metastasis validation prefers ratio 2, amyloidosis ratio 5: each headline follows its own task."""
    runs = [Run(50, d, 0, "synthetic", r) for d in range(2) for r in (2.0, 5.0)]
    runs += [Run(50, d, 0, "real", 0.0) for d in range(2)]
    preferred = {"metastasis": 2.0, "amyloidosis": 5.0}
    table = {}
    for run in runs:
        table[run.name] = {
            "validation": {
                task: {"auc": 0.9 if run.ratio == best else 0.8, "loss": 0.3}
                for task, best in preferred.items()
            }
        }
    gains = [
        {"task": t, "cohort": EXTERNAL, "size": 50, "arm": "synthetic", "ratio": r, "gain_rel": {"mean": r}}
        for t in TASKS
        for r in (2.0, 5.0)
    ]
    headline = {row["task"]: row for row in _headline(gains, [], table, runs)}
    assert headline["metastasis"]["ratio"] == 2.0 and headline["amyloidosis"]["ratio"] == 5.0
    assert headline["amyloidosis"]["synthetic"]["gain_rel"]["mean"] == 5.0
    for run in runs:  # a tie in AUC goes to the lower validation loss of that task, not of the other
        table[run.name]["validation"]["amyloidosis"] = {"auc": 0.8, "loss": 0.2 if run.ratio == 2.0 else 0.4}
    headline = {row["task"]: row for row in _headline(gains, [], table, runs)}
    assert headline["amyloidosis"]["ratio"] == 2.0 and headline["metastasis"]["ratio"] == 2.0


def test_validation_without_positives_is_refused(tmp_path):
    """Grade-1 amyloidosis only: no amyloidosis positive anywhere, so no threshold or ratio can be chosen."""
    real = toy(
        tmp_path / "real",
        60,
        seed=0,
        prefix="r",
        cycle=[("normal", 0), ("metastasis", 0), ("amyloidosis", 1)],
    )
    cohort = toy(tmp_path / "site", 24, seed=1, prefix="e", site="s")
    synthetic = toy(tmp_path / "syn", 30, seed=2, prefix="y", source="synthetic")
    args = ["evaluate", "augmentation", "--real", str(real.root), "--synthetic", str(synthetic.root)]
    args += ["--test", str(cohort.root), "--out", str(tmp_path / "o"), *DESIGN, *TINY]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert "amyloidosis 0 positive" in result.output and "at least 5" in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error:") and "Traceback" not in result.output
    assert not (tmp_path / "o" / "runs").exists()


def test_old_splits_file_is_reused_and_refused_only_when_validation_lacks_positives(tmp_path):
    """A splits.json written before task stratification keeps being used as written (read compatibly)."""
    real = toy(tmp_path / "real", 90, seed=0, prefix="r")
    patients = sorted({r.patient_id for r in real})
    amyloid = {r.patient_id for r in real if r.label == "amyloidosis" and r.perugini_grade >= 2}
    val = [p for p in patients if p not in amyloid][:18]  # a label-stratified split could do this
    old = {
        "seed": 0,
        "fractions": {"train": 0.6, "val": 0.2, "test": 0.2},
        "sources": ["real", "simulated"],
        "patients": {
            "train": [p for p in patients if p not in val][:54],
            "val": val,
            "test": [p for p in patients if p not in val][54:],
        },
    }
    (real.root / "splits.json").write_text(json.dumps(old))
    cohort = toy(tmp_path / "site", 24, seed=1, prefix="e", site="s")
    design = StudyDesign(ratios=(0.0,), real_sizes=(12,), draws=2, seeds=1)
    with pytest.raises(ValueError, match=r"amyloidosis 0 positive.*predates stratification"):
        run_augmentation_study(real, [cohort], tmp_path / "o", tiny_config(), design, progress=False)
    assert json.loads((real.root / "splits.json").read_text()) == old  # never rewritten behind the user


def test_simulated_cohorts_sharing_seeds_with_training_are_refused(tmp_path):
    """Simulated patients are their seeds: the same seed at two sites is the same patient."""

    def simulated(root, seeds, site):
        dataset = Dataset.create(root, matrix=MATRIX)
        with dataset.writer() as writer:
            for i, seed in enumerate(seeds):
                label, grade = MIXED[i % len(MIXED)]
                add_toy_study(
                    writer,
                    np.random.default_rng(seed),
                    label,
                    grade,
                    study_id=f"{site}-{i}",
                    patient_id=f"{site}-P{i}",
                    source="simulated",
                    site=site,
                    seed=seed,
                )
        return dataset

    real = simulated(tmp_path / "real", range(90), "centre_b")
    cohort = simulated(tmp_path / "ext", range(85, 115), "external_1")
    design = StudyDesign(ratios=(0.0,), real_sizes=(12,), draws=2, seeds=1)
    with pytest.raises(ValueError, match=r"shares 5 patient.*simulation seed 85"):
        run_augmentation_study(real, [cohort], tmp_path / "o", tiny_config(), design, progress=False)


def test_generator_samples_on_the_fly_once_with_recorded_seeds(study, tmp_path):
    calls = []
    design = StudyDesign(ratios=(0.0, 2.0), real_sizes=(12, 24), draws=2, seeds=1, synthetic_seed=100)
    args = {"generator": SyntheticGenerator(fake_sampler(calls)), "progress": False}
    out = tmp_path / "r"
    real, cohorts = study["real"], study["cohorts"][:1]
    with pytest.raises(ValueError, match="--prepare-only"):
        run_augmentation_study(real, cohorts, out, tiny_config(), design, shard=(1, 2), **args)
    assert (
        run_augmentation_study(real, cohorts, out, tiny_config(), design, prepare_only=True, **args) is None
    )
    assert not (out / "runs").exists()
    generated = {(c, g): (n, s) for c, g, n, s in calls}
    assert sum(n for n, _ in generated.values()) == 2 * 24  # the largest run: ratio 2 x 24 patients
    assert generated[("normal", None)][0] == generated[("metastasis", None)][0]  # balanced mix
    assert {g for c, g in generated if c == "amyloidosis"} == {1, 2, 3}
    assert generated[("normal", None)][1] == 100 and generated[("metastasis", None)][1] == 100 + SEED_STRIDE
    syn = Dataset.open(out / "synthetic" / "metastasis")
    assert sorted(r.seed for r in syn) == list(range(100 + SEED_STRIDE, 100 + SEED_STRIDE + len(syn)))
    calls.clear()
    results = run_augmentation_study(real, cohorts, out, tiny_config(), design, shard=(1, 1), **args)
    assert calls == [] and results is not None  # prepared: shards only read the sampled studies
    members = json.loads((out / "runs" / "n24-d1-s0-synthetic2" / "data.json").read_text())
    assert len(members["train_synthetic"]) == 48


@pytest.mark.slow
def test_on_the_fly_with_the_real_generator_uses_only_its_conditions(tiny_generator, tmp_path):
    """End to end through `sample_to_dataset`: the tiny generator knows amyloidosis grades 1 and 3 only."""
    datasets = [
        toy_dataset(tmp_path / name, n, cycle=MIXED, seed=seed, matrix=(128, 32), prefix=name, site=name)
        for name, n, seed in (("real", 90, 0), ("external", 24, 1))
    ]
    out = tmp_path / "report"
    args = ["evaluate", "augmentation", "--real", str(datasets[0].root), "--synthetic", str(tiny_generator)]
    args += ["--test", str(datasets[1].root), "--ratios", "0,1", "--real-sizes", "20", "--draws", "1"]
    args += ["--out", str(out), *TINY]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    generated = sorted(p.name for p in (out / "synthetic").iterdir() if p.is_dir())
    assert generated == ["amyloidosis-g1", "amyloidosis-g3", "metastasis", "normal"]
    studies = [r for name in generated for r in Dataset.open(out / "synthetic" / name)]
    assert all(r.source == "synthetic" and r.seed is not None for r in studies)
    members = json.loads((out / "runs" / "n20-d0-s0-synthetic1" / "data.json").read_text())
    assert len(members["train_synthetic"]) == len(members["train_real"]) == len(studies) == 20


def test_bad_input_fails_clearly(study, tmp_path):
    runner = CliRunner()
    real, synthetic, cohort = study["real"].root, study["synthetic"].root, study["cohorts"][0].root

    def run(*extra, synthetic_path=synthetic, test=cohort):
        args = ["evaluate", "augmentation", "--real", str(real), "--synthetic", str(synthetic_path)]
        args += ["--test", str(test), "--out", str(tmp_path / "o"), *TINY, *DESIGN]
        return runner.invoke(main, [*args, *extra])

    normal_only = toy(tmp_path / "normal_only", 10, seed=3, prefix="n", cycle=[("normal", 0)])
    cases = [
        (run(test=normal_only.root), "no task has both positive and negative"),
        (run(synthetic_path=tmp_path), "is not a synthscan dataset"),
        (
            run(synthetic_path=toy(tmp_path / "no_synthetic", 6, seed=4, prefix="z").root),
            "holds no synthetic",
        ),
        (run(test=real), "is the real training dataset"),
        (run("--ratios", "0,20"), "too few synthetic studies"),
        (run("--ratios", "1,x"), "comma-separated numbers"),
        (run("--real-sizes", "12,500"), "exceeds the 54 training patients"),
        (run("--real-sizes", "all"), "every draw of the whole training split is the same set"),
        (run("--real-sizes", "ten"), "positive whole numbers"),
        (run("--shard", "3/2"), "I/N with 1 <= I <= N"),
        (run("--guidance", "-1"), "-1.0 is not in the range x>0"),
        (run("--mix", "odd"), "'odd' is not one of 'balanced', 'matched'"),
    ]
    wide = Dataset.create(tmp_path / "wide", matrix=(128, 32))
    with wide.writer() as writer:
        writer.add(
            np.ones((2, 128, 32), int), study_id="w", patient_id="w", label="normal", source="synthetic"
        )
    cases.append((run(synthetic_path=wide.root), "real matrix"))
    info = study["real"].info
    finer = Dataset.create(tmp_path / "finer", matrix=info.matrix, pixel_spacing_mm=info.pixel_spacing_mm / 2)
    with finer.writer() as writer:
        writer.add(
            np.ones((2, *info.matrix), int), study_id="f", patient_id="f", label="normal", source="synthetic"
        )
    cases.append((run(synthetic_path=finer.root), "use synthetic studies of the real data's pixel size"))
    for result, message in cases:
        assert result.exit_code != 0 and message in result.output, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "o" / "runs").exists()  # every check runs before any training


def test_parsers():
    assert parse_ratios("1, 2,5") == (0.0, 1.0, 2.0, 5.0)
    with pytest.raises(ValueError):
        parse_ratios("-1")
    assert parse_sizes("50,25,all") == (0, 25, 50)
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) is None
    assert patient_strata([]) == {}

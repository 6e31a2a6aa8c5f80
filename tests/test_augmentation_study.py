"""`synthscan evaluate augmentation` end to end on tiny data, its statistics, resumption and bad input."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import combine_pvalues, norm
from sklearn.metrics import roc_auc_score
from toy_scans import MATRIX, add_toy_study, toy_dataset

from synthscan.classifier.config import ClassifierConfig
from synthscan.classifier.predict import read_predictions
from synthscan.classifier.synthetic import SEED_STRIDE, SyntheticGenerator
from synthscan.cli import main
from synthscan.config import builtin_config, load_config
from synthscan.dataset import Dataset
from synthscan.evaluation.augmentation import parse_ratios, run_augmentation_study
from synthscan.evaluation.stats import delong_test

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


def toy(root, n, *, seed, prefix, source="real", site="a", cycle=MIXED):
    return toy_dataset(root, n, cycle=cycle, seed=seed, prefix=prefix, source=source, site=site)


def predictions(out, seed, ratio, cohort):
    return read_predictions(out / "runs" / f"seed{seed}-ratio{ratio:g}" / "predictions" / f"{cohort}.csv")


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
    real = toy(root / "real", 60, seed=0, prefix="r")
    synthetic = toy(root / "synthetic", 90, seed=1, prefix="y", source="synthetic")
    cohorts = [toy(root / f"site{k}", 36, seed=10 + k, prefix=f"e{k}", site=f"s{k}") for k in (1, 2)]
    out = root / "report"
    args = ["evaluate", "augmentation", "--real", str(real.root), "--synthetic", str(synthetic.root)]
    args += ["--test", str(cohorts[0].root), str(cohorts[1].root), "--ratios", "0,1", "--seeds", "2"]
    args += ["--out", str(out), *TINY]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return {
        "out": out,
        "args": args,
        "real": real,
        "synthetic": synthetic,
        "cohorts": cohorts,
        "result": result,
    }


def test_report_files_and_headline(study):
    out = study["out"]
    for name in ("report.md", "results.json", "roc-metastasis.png", "roc-amyloidosis.png", "study.json"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    assert set(results["runs"]) == {"seed0-ratio0", "seed0-ratio1", "seed1-ratio0", "seed1-ratio1"}
    assert set(results["cohorts"]) == {"internal", "site1", "site2"}
    assert set(results["headline"]) == {"metastasis", "amyloidosis"}
    assert results["headline"]["metastasis"]["cohorts"] == ["site1", "site2"]  # external cohorts only
    report = (out / "report.md").read_text()
    assert "## Headline" in report and "relative gain %" in report and "Stouffer" in report
    assert "metastasis:" in study["result"].output and "Report:" in study["result"].output


def test_arms_share_splits_and_keep_test_patients_out(study):
    members = {
        name: json.loads((study["out"] / "runs" / name / "data.json").read_text())
        for name in ("seed0-ratio0", "seed0-ratio1", "seed1-ratio0", "seed1-ratio1")
    }
    real_train = {name: sorted(m["train_real"]) for name, m in members.items()}
    assert len({tuple(v) for v in real_train.values()}) == 1  # identical real training set in every arm
    assert len({tuple(sorted(m["val"])) for m in members.values()}) == 1  # identical validation set
    assert members["seed0-ratio0"]["train_synthetic"] == []
    n_real = len(real_train["seed0-ratio0"])
    assert len(members["seed0-ratio1"]["train_synthetic"]) == n_real  # ratio 1: as many synthetic as real
    assert set(members["seed0-ratio1"]["train_synthetic"]) != set(members["seed1-ratio1"]["train_synthetic"])
    splits = json.loads((study["real"].root / "splits.json").read_text())["patients"]
    test_patients = set(splits["test"])
    train_patients = {study["real"].record(s).patient_id for s in real_train["seed0-ratio0"]}
    assert not test_patients & train_patients
    internal = predictions(study["out"], 0, 0, "internal")[0]
    assert {study["real"].record(s).patient_id for s in internal} == test_patients


def test_statistics_match_independent_computations(study):
    out = study["out"]
    results = json.loads((out / "results.json").read_text())
    for entry in results["per_run"]:
        _, targets, probabilities = predictions(out, entry["seed"], entry["ratio"], entry["cohort"])
        k = TASKS.index(entry["task"])
        assert entry["auc"]["auc"] == pytest.approx(roc_auc_score(targets[:, k], probabilities[:, k]))
    for row in results["per_ratio"]:
        if row["ratio"] == 0:
            continue
        k = TASKS.index(row["task"])
        scores = {}
        for ratio in (0, 1):
            runs = [predictions(out, s, ratio, row["cohort"]) for s in (0, 1)]
            y = runs[0][1][:, k]
            scores[ratio] = np.mean([r[2][:, k] for r in runs], axis=0)
        expected = delong_test(y, scores[0], scores[1])
        assert row["ensemble_delong"]["p_value"] == pytest.approx(expected.p_value)
        auc = {
            (e["seed"], e["ratio"]): e["auc"]["auc"]
            for e in results["per_run"]
            if (e["task"], e["cohort"]) == (row["task"], row["cohort"])
        }
        gains = [100 * (auc[(s, 1)] - auc[(s, 0)]) / auc[(s, 0)] for s in (0, 1)]
        assert row["gain_rel_mean"] == pytest.approx(np.mean(gains))
    for row in results["pooled"]:
        z = [
            x["ensemble_delong"]["z"]
            for x in results["per_ratio"]
            if x["task"] == row["task"] and x["ratio"] == row["ratio"] and x["external"]
        ]
        stouffer = combine_pvalues(norm.sf(z), method="stouffer").statistic
        assert row["stouffer_z"] == pytest.approx(stouffer)


def test_learned_something_on_external_cohorts(study):
    results = json.loads((study["out"] / "results.json").read_text())
    aucs = [row["auc_mean"] for row in results["per_ratio"] if row["external"]]
    assert min(aucs) > 0.5 and np.mean(aucs) > 0.75


def test_rerun_skips_finished_runs_and_refuses_other_settings(study):
    out = study["out"]
    model = out / "runs" / "seed1-ratio1" / "model.safetensors"
    before = model.stat().st_mtime_ns
    (out / "runs" / "seed1-ratio1" / "predictions" / "site2.csv").unlink()
    result = CliRunner().invoke(main, study["args"])
    assert result.exit_code == 0, result.output
    assert model.stat().st_mtime_ns == before  # not retrained
    assert (out / "runs" / "seed1-ratio1" / "predictions" / "site2.csv").is_file()  # only re-predicted
    changed = CliRunner().invoke(main, [*study["args"], "--set", "train.learning_rate=0.01"])
    assert changed.exit_code != 0 and "other config" in changed.output


def test_generator_samples_on_the_fly_with_recorded_seeds(study, tmp_path):
    calls = []
    config = load_config(
        ClassifierConfig, builtin_config("classifier", "tiny"), {"train.max_steps": 4, "train.eval_every": 4}
    )
    args = {
        "ratios": (0, 2),
        "seeds": 1,
        "generator": SyntheticGenerator(fake_sampler(calls)),
        "synthetic_seed": 100,
        "progress": False,
    }
    run_augmentation_study(study["real"], study["cohorts"][:1], tmp_path / "r", config, **args)
    data = json.loads((tmp_path / "r" / "runs" / "seed0-ratio0" / "data.json").read_text())
    n_train = len(data["train_real"])
    generated = {(c, g): (n, s) for c, g, n, s in calls}
    assert sum(n for n, _ in generated.values()) == 2 * n_train
    assert generated[("normal", None)][0] == generated[("metastasis", None)][0]  # balanced mix
    assert {g for c, g in generated if c == "amyloidosis"} == {1, 2, 3}
    assert generated[("normal", None)][1] == 100 and generated[("metastasis", None)][1] == 100 + SEED_STRIDE
    syn = Dataset.open(tmp_path / "r" / "synthetic" / "metastasis")
    assert sorted(r.seed for r in syn) == list(range(100 + SEED_STRIDE, 100 + SEED_STRIDE + len(syn)))
    assert json.loads((tmp_path / "r" / "synthetic" / "synthetic.json").read_text())["blocks"]
    members = json.loads((tmp_path / "r" / "runs" / "seed0-ratio2" / "data.json").read_text())
    assert len(members["train_synthetic"]) == 2 * n_train
    calls.clear()
    run_augmentation_study(study["real"], study["cohorts"][:1], tmp_path / "r", config, **args)
    assert len(calls) == 5  # asked again, but the fake (like sample_to_dataset) adds nothing new
    assert len(Dataset.open(tmp_path / "r" / "synthetic" / "metastasis")) == len(syn)


@pytest.mark.slow
def test_on_the_fly_with_the_real_generator_uses_only_its_conditions(tiny_generator, tmp_path):
    """End to end through `sample_to_dataset`: the tiny generator knows amyloidosis grades 1 and 3 only."""
    datasets = [
        toy_dataset(tmp_path / name, n, cycle=MIXED, seed=seed, matrix=(128, 32), prefix=name, site=name)
        for name, n, seed in (("real", 40, 0), ("external", 24, 1))
    ]
    out = tmp_path / "report"
    args = ["evaluate", "augmentation", "--real", str(datasets[0].root), "--synthetic", str(tiny_generator)]
    args += ["--test", str(datasets[1].root), "--ratios", "0,1", "--seeds", "1", "--out", str(out), *TINY]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    generated = sorted(p.name for p in (out / "synthetic").iterdir() if p.is_dir())
    assert generated == ["amyloidosis-g1", "amyloidosis-g3", "metastasis", "normal"]
    studies = [r for name in generated for r in Dataset.open(out / "synthetic" / name)]
    assert all(r.source == "synthetic" and r.seed is not None for r in studies)
    members = json.loads((out / "runs" / "seed0-ratio1" / "data.json").read_text())
    assert len(members["train_synthetic"]) == len(members["train_real"]) == len(studies)


def test_bad_input_fails_clearly(study, tmp_path):
    runner = CliRunner()
    real, synthetic, cohort = study["real"].root, study["synthetic"].root, study["cohorts"][0].root

    def run(*extra, synthetic_path=synthetic, test=cohort):
        args = ["evaluate", "augmentation", "--real", str(real), "--synthetic", str(synthetic_path)]
        return runner.invoke(main, [*args, "--test", str(test), "--out", str(tmp_path / "o"), *TINY, *extra])

    normal_only = toy(tmp_path / "normal_only", 10, seed=3, prefix="n", cycle=[("normal", 0)])
    result = run(test=normal_only.root)
    assert result.exit_code != 0 and "no task has both positive and negative" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(synthetic_path=empty)
    assert result.exit_code != 0 and "is not a synthscan dataset" in result.output
    no_synthetic = toy(tmp_path / "no_synthetic", 6, seed=4, prefix="z")
    result = run(synthetic_path=no_synthetic.root)
    assert result.exit_code != 0 and "holds no synthetic studies" in result.output
    wide = Dataset.create(tmp_path / "wide", matrix=(128, 32))
    with wide.writer() as writer:
        writer.add(
            np.ones((2, 128, 32), int), study_id="w", patient_id="w", label="normal", source="synthetic"
        )
    result = run(synthetic_path=wide.root)
    assert result.exit_code != 0 and "real matrix" in result.output
    result = run(test=real)
    assert result.exit_code != 0 and "is the real training dataset" in result.output
    result = run("--ratios", "0,20")
    assert result.exit_code != 0 and "too few synthetic studies" in result.output
    result = run("--ratios", "1,x")
    assert result.exit_code != 0 and "comma-separated numbers" in result.output
    result = run("--guidance", "-1")
    assert result.exit_code != 0 and "-1.0 is not in the range x>0" in result.output
    assert not (tmp_path / "o" / "runs").exists()  # every check runs before any training


def test_parse_ratios():
    assert parse_ratios("1, 2,5") == (0.0, 1.0, 2.0, 5.0)
    with pytest.raises(ValueError):
        parse_ratios("-1")

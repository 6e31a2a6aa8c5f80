"""The two-view classifier on tiny Poisson data: binning, augmentation, learning, determinism, CLI."""

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch
import toy_scans
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from synthscan.classifier.config import ClassifierConfig
from synthscan.classifier.data import (
    BinomialThinning,
    bin_counts,
    build_transforms,
    check_grid,
    load_arrays,
    normalise_batch,
    targets_for,
)
from synthscan.classifier.features import FeatureExtractor, label_probabilities
from synthscan.classifier.model import load_model
from synthscan.classifier.predict import Classifier, read_predictions
from synthscan.classifier.synthetic import (
    StudyPool,
    SyntheticGenerator,
    allocate,
    generate_synthetic,
    plan_blocks,
)
from synthscan.classifier.train import real_split_records, train_classifier
from synthscan.cli import main
from synthscan.config import builtin_config, load_config, to_dict
from synthscan.dataset import Dataset, DatasetError, Record
from synthscan.evaluation.augmentation import _prepared

CYCLE = [
    ("normal", 0),
    ("metastasis", 0),
    ("amyloidosis", 3),
    ("normal", 0),
    ("amyloidosis", 1),
    ("metastasis", 0),
]


def toy_dataset(root, n, *, cycle=CYCLE, **kwargs):
    return toy_scans.toy_dataset(root, n, cycle=cycle, **kwargs)


def tiny(**overrides):
    return load_config(ClassifierConfig, builtin_config("classifier", "tiny"), overrides)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("classifier")
    return {
        "real": toy_dataset(root / "real", 60),
        "test": toy_dataset(root / "test", 48, seed=7, prefix="t", site="b"),
        "root": root,
    }


@pytest.fixture(scope="module")
def trained(data):
    out = data["root"] / "run"
    result = train_classifier(data["real"], out, tiny(), progress=False)
    return out, result


def test_default_yaml_lists_every_field_with_the_dataclass_defaults():
    import yaml

    path = builtin_config("classifier", "default")
    assert load_config(ClassifierConfig, path) == ClassifierConfig()
    listed = yaml.safe_load(path.read_text())
    fields = to_dict(ClassifierConfig())
    assert {k: set(v) for k, v in listed.items()} == {k: set(v) for k, v in fields.items()}
    with pytest.raises(ValueError, match=r"train\.workers must be >= 0"):
        tiny(**{"train.workers": -1})


def test_reference_classifier_is_the_default_network_trained_longer():
    """The instrument that measures generators sees the same inputs with the same network; only its
    training budget differs, so its readings are comparable with the default's."""
    import yaml

    path = builtin_config("classifier", "reference")
    reference, default = load_config(ClassifierConfig, path), ClassifierConfig()
    listed = yaml.safe_load(path.read_text())
    assert {k: set(v) for k, v in listed.items()} == {k: set(v) for k, v in to_dict(default).items()}
    assert (reference.network, reference.preprocess, reference.augment) == (
        default.network,
        default.preprocess,
        default.augment,
    )
    assert reference.train.max_steps >= 10 * default.train.max_steps
    budget = {"max_steps", "eval_every", "patience"}
    differing = {k for k, v in to_dict(reference.train).items() if to_dict(default.train)[k] != v}
    assert differing == budget


def test_targets_and_binning_keep_counts_and_mirror_posterior():
    record = Record("a", "p", "studies/a.npz", "amyloidosis", perugini_grade=1)
    assert targets_for(record).tolist() == [0, 0]  # grade 1 is equivocal: negative
    assert targets_for(Record("b", "p", "x", "amyloidosis", perugini_grade=2)).tolist() == [0, 1]
    assert targets_for(Record("c", "p", "x", "metastasis", perugini_grade=0)).tolist() == [1, 0]
    counts = np.zeros((2, 64, 16), np.uint16)
    counts[0, 10, 1] = 7  # anterior, patient's right side of the image
    counts[1, 10, 14] = 5  # posterior as acquired: the same side appears mirrored
    binned = bin_counts(counts, (32, 8))
    assert binned.shape == (2, 32, 8) and binned.sum() == 12
    assert binned[0, 5, 0] == 7 and binned[1, 5, 0] == 5  # same pixel after mirroring
    batch = bin_counts(np.stack([counts, counts]), (16, 4))
    assert batch.shape == (2, 2, 16, 4) and batch.sum() == 24


def test_grid_check_refuses_distorting_matrices():
    check_grid((1024, 256), (256, 64), "ok")
    check_grid((2048, 512), (256, 64), "finer matrix")
    with pytest.raises(ValueError, match="aspect ratio"):
        check_grid((256, 1024), (256, 64), "transposed")
    with pytest.raises(ValueError, match="aspect ratio"):
        check_grid((128, 32), (256, 64), "too small")


def test_binomial_thinning_is_a_lower_count_acquisition():
    counts = np.full((2, 64, 16), 40.0, np.float32)
    thinning = BinomialThinning(prob=1.0, min_fraction=0.3)
    thinning.set_random_state(0)
    out = thinning(counts)
    assert np.all(out <= counts) and np.all(out == np.round(out))
    assert out.mean() == pytest.approx(40 * thinning.fraction, rel=0.03)
    # Binomial(k, f) has variance k f (1 - f).
    assert out.var() == pytest.approx(40 * thinning.fraction * (1 - thinning.fraction), rel=0.1)
    with pytest.raises(ValueError):
        BinomialThinning(prob=1.0, min_fraction=0.0)


def test_training_preprocessing_without_augmentation_equals_inference():
    config = tiny()
    rng = np.random.default_rng(0)
    binned = rng.poisson(30, size=(3, 2, 32, 8)).astype(np.float32)
    plain = build_transforms(config.preprocess, dataclasses.replace(config.augment, enabled=False))
    expected = normalise_batch(binned, config.preprocess)
    for i in range(3):
        np.testing.assert_allclose(plain(binned[i]).numpy(), expected[i].numpy(), rtol=1e-6)
    assert float(expected.amax()) > 1.0 > float(np.percentile(expected[0].numpy(), 50))  # 99th pct → 1


def test_allocation_is_house_monotone_and_balanced():
    weights = {"normal": 50.0, "metastasis": 7.0, "amyloidosis": 3.0}
    previous = allocate(0, weights)
    for n in range(1, 80):
        current = allocate(n, weights)
        assert sum(current.values()) == n
        assert all(current[k] >= previous[k] for k in weights)  # a larger ratio contains the smaller
        previous = current
    assert allocate(60, weights) == {"normal": 50, "metastasis": 7, "amyloidosis": 3}
    real = [Record(f"r{i}", f"p{i}", "x", "normal", perugini_grade=0) for i in range(10)]
    plan = plan_blocks(real, 30, "balanced")
    assert plan[("normal", None)] == plan[("metastasis", None)] == 10
    assert [plan[("amyloidosis", g)] for g in (1, 2, 3)] == [4, 3, 3]
    matched = plan_blocks(real, 30, "matched")
    assert matched[("normal", None)] == 30 and matched[("metastasis", None)] == 0
    # A generator without grade-2 amyloidosis, and one trained on ungraded amyloidosis.
    known = [("normal", None), ("metastasis", None), ("amyloidosis", 1), ("amyloidosis", 3)]
    plan = plan_blocks(real, 30, "balanced", known)
    assert set(plan) == set(known) and plan[("amyloidosis", 1)] == plan[("amyloidosis", 3)] == 5
    plan = plan_blocks(real, 31, "balanced", [("metastasis", None), ("amyloidosis", None)])
    assert plan == {("metastasis", None): 16, ("amyloidosis", None): 15}


def test_generated_studies_follow_the_real_tracer_mix_of_each_condition(tmp_path):
    rows = [("normal", "MDP")] * 9 + [("metastasis", "HDP")] * 3 + [("metastasis", "MDP")] * 3
    real = [Record(f"r{i}", f"p{i}", "x", label, tracer=tracer) for i, (label, tracer) in enumerate(rows)]
    calls = {}

    def sample(out, *, condition, n, grade, seed, tracer=None):
        calls[(condition, grade)] = tracer
        return out

    plan = {("normal", None): 4, ("metastasis", None): 4, ("amyloidosis", 2): 4}
    traced = SyntheticGenerator(sample, tracers=("MDP", "HDP", "DPD"))
    generate_synthetic(tmp_path / "a", plan, seed=0, generator=traced, real=real)
    assert calls[("normal", None)] == ["MDP"] * 4
    assert calls[("metastasis", None)] == ["MDP", "HDP", "MDP", "HDP"], "the metastases' own 1:1 mix"
    assert calls[("amyloidosis", 2)].count("MDP") == 3, "no amyloidosis of its own: the overall 12:3 mix"
    blocks = json.loads((tmp_path / "a" / "synthetic.json").read_text())["blocks"]
    assert blocks[1]["tracers"] == {"HDP": 2, "MDP": 2}
    generate_synthetic(tmp_path / "b", plan, seed=0, generator=SyntheticGenerator(sample), real=real)
    assert set(calls.values()) == {None}, "a model without tracer conditions draws its own"
    # a folder sampled before: its seed 1,000,001 (metastasis block, study 1) drawn as MDP, planned HDP
    earlier = Dataset.create(tmp_path / "c" / "metastasis", matrix=toy_scans.MATRIX)
    with earlier.writer() as writer:
        writer.add(np.zeros((2, *toy_scans.MATRIX), np.int32), study_id="old", patient_id="old",
                   label="metastasis", source="synthetic", tracer="MDP", seed=1_000_001)  # fmt: skip
    with pytest.raises(DatasetError, match=r"seed 1000001\) with tracer MDP .* asks for HDP"):
        generate_synthetic(tmp_path / "c", plan, seed=0, generator=traced, real=real)
    drawn = {"blocks": [{**b, "tracers": {}} if b["condition"] == "metastasis" else b for b in blocks]}
    (tmp_path / "a" / "synthetic.json").write_text(json.dumps(drawn))
    with pytest.raises(DatasetError, match="sampled with tracers drawn by the model"):
        _prepared(tmp_path / "a", plan, traced, real)


def test_synthetic_pool_selection_is_seeded_and_nested(tmp_path):
    pool = StudyPool([toy_dataset(tmp_path / "syn", 30, source="synthetic", prefix="y")])
    assert pool.available() == {"normal": 10, "metastasis": 10, "amyloidosis": 10}
    small = pool.select({"normal": 2, "metastasis": 3, "amyloidosis": 1}, seed=4)
    large = pool.select({"normal": 5, "metastasis": 5, "amyloidosis": 5}, seed=4)
    ids = lambda chosen: {r.study_id for _, r in chosen}  # noqa: E731
    assert ids(small) <= ids(large) and len(ids(large)) == 15
    assert ids(pool.select({"normal": 5}, seed=4)) != ids(pool.select({"normal": 5}, seed=5))
    with pytest.raises(ValueError, match="metastasis: needs 11, has 10"):
        pool.select({"metastasis": 11}, seed=0)


def test_training_learns_hot_spots_and_cardiac_uptake(data, trained):
    out, result = trained
    assert result.steps == 60 and result.best_step in (20, 40, 60)
    classifier = Classifier.load(out)
    predictions = classifier.predict_dataset(data["test"], progress=False)
    for k in range(2):
        auc = roc_auc_score(predictions.targets[:, k], predictions.probabilities[:, k])
        assert auc > 0.8, f"task {k} AUC {auc}"
    info = json.loads((out / "config.json").read_text())
    assert set(info["thresholds"]) == {"metastasis", "amyloidosis"} and info["matrix"] == [64, 16]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert any('"split": "val"' in line for line in lines)
    for name in ("run.json", "config.yaml", "log.txt", "model.safetensors", "data.json"):
        assert (out / name).is_file()


def test_splits_are_by_patient_and_saved(data, trained):
    out, _ = trained
    splits = real_split_records(data["real"], tiny())
    patients = {name: {r.patient_id for r in records} for name, records in splits.items()}
    assert not (patients["train"] & patients["val"]) and not (patients["train"] & patients["test"])
    assert not (patients["val"] & patients["test"])
    members = json.loads((out / "data.json").read_text())
    assert set(members["train_real"]) == {r.study_id for r in splits["train"]}
    assert set(members["val"]) == {r.study_id for r in splits["val"]}
    assert (data["real"].root / "splits.json").is_file()


@pytest.mark.parametrize("workers", [0, 1])
def test_same_seed_same_weights_and_probabilities(data, tmp_path, workers):
    config = tiny(**{"train.max_steps": 8, "train.eval_every": 4, "train.workers": workers})
    runs = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    train_classifier(data["real"], runs[0], config, progress=False)
    train_classifier(data["real"], runs[1], config, progress=False)
    other = tiny(**{"train.max_steps": 8, "train.eval_every": 4, "train.workers": workers, "train.seed": 1})
    train_classifier(data["real"], runs[2], other, progress=False)
    weights = [load_model(run)[0].state_dict() for run in runs]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])
    p = [Classifier.load(run).predict_dataset(data["test"], progress=False).probabilities for run in runs[:2]]
    np.testing.assert_array_equal(p[0], p[1])


def test_save_load_round_trip_and_feature_extractor(data, trained):
    out, _ = trained
    net, info = load_model(out)
    assert info.config == tiny()
    arrays = load_arrays(data["test"], data["test"].records[:5], (32, 8), progress=False)
    counts = np.stack([s.counts for s in data["test"].iter_studies(data["test"].records[:5])])
    extractor = FeatureExtractor(out)
    features = extractor(counts)
    assert features.shape == (5, extractor.feature_size) == (5, 32)
    np.testing.assert_allclose(features, extractor.classifier.features_binned(np.asarray(arrays.binned)))
    with torch.no_grad():
        direct = torch.sigmoid(
            net(normalise_batch(np.asarray(arrays.binned), info.config.preprocess))
        ).numpy()
    np.testing.assert_allclose(extractor.task_probabilities(counts), direct, rtol=1e-5, atol=1e-6)
    labels = extractor.probabilities(counts)
    assert labels.shape == (5, 3) and np.allclose(labels.sum(axis=1), 1)
    both = extractor.features_and_probabilities(counts)  # one network pass: the head on the features
    np.testing.assert_allclose(both[0], features)
    np.testing.assert_allclose(both[1], labels, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="aspect ratio"):
        extractor(np.zeros((1, 2, 16, 64)))


def test_label_probabilities_known_values():
    p = label_probabilities(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]))
    np.testing.assert_allclose(p[:3], np.eye(3))
    np.testing.assert_allclose(p[3], [1 / 3, 1 / 3, 1 / 3])


def test_cli_train_predict_and_bad_input(data, tmp_path):
    runner = CliRunner()
    run = tmp_path / "cli-run"
    base = ["classifier", "train", "--data", str(data["real"].root), "--config", "tiny"]
    result = runner.invoke(main, [*base, "--out", str(run), "--set", "train.max_steps=6", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["classifier"]["train"]["seed"] == 3
    again = runner.invoke(main, [*base, "--out", str(run)])
    assert again.exit_code != 0 and "already holds a trained classifier" in again.output

    csv_path = tmp_path / "p.csv"
    predict = ["classifier", "predict", "--model", str(run), "--data"]
    predicted = runner.invoke(main, [*predict, str(data["test"].root), "--out", str(csv_path)])
    assert predicted.exit_code == 0, predicted.output
    assert "metastasis AUC" in predicted.output
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(data["test"]) and {"p_metastasis", "positive_amyloidosis"} <= set(rows[0])
    ids, targets, probabilities = read_predictions(csv_path)
    assert ids[0] == data["test"].records[0].study_id
    assert probabilities.shape == targets.shape == (len(ids), 2)
    split = runner.invoke(main, [*predict, str(data["real"].root), "--split", "test"])
    assert split.exit_code == 0 and (run / "predictions-real.csv").is_file()
    assert "left out of the AUCs" not in split.output
    # its own training data: the AUCs leave out the studies it trained and validated on
    seen = runner.invoke(main, [*predict, str(data["real"].root)])
    trained = json.loads((run / "data.json").read_text())
    n_seen = len(trained["train_real"]) + len(trained["val"])
    assert f"{n_seen} studies left out of the AUCs" in seen.output
    assert f"on the {len(data['real']) - n_seen} studies it never saw" in seen.output

    empty = tmp_path / "empty"
    empty.mkdir()
    bad = runner.invoke(main, [*base, "--out", str(tmp_path / "x"), "--synthetic", str(empty)])
    assert bad.exit_code != 0 and "is not a synthscan dataset" in bad.output
    bad = runner.invoke(main, [*base, "--out", str(tmp_path / "x"), "--synthetic", str(data["test"].root)])
    assert bad.exit_code != 0 and "holds no synthetic studies" in bad.output
    wide = toy_dataset(tmp_path / "wide", 6, matrix=(128, 32), source="synthetic", prefix="w")
    bad = runner.invoke(main, [*base, "--out", str(tmp_path / "x"), "--synthetic", str(wide.root)])
    assert bad.exit_code != 0 and "generate synthetic studies at the real matrix" in bad.output
    bad = runner.invoke(main, [*base, "--out", str(tmp_path / "x"), "--set", "train.nope=1"])
    assert bad.exit_code != 0 and "unknown keys ['nope']" in bad.output
    bad = runner.invoke(main, [*base, "--out", str(tmp_path / "x"), "--set", "network.architecture=vgg"])
    assert bad.exit_code != 0 and "valid values: resnet, densenet" in bad.output
    transposed = toy_dataset(tmp_path / "transposed", 6, matrix=(16, 64), prefix="q", cycle=[("normal", 0)])
    bad = runner.invoke(main, [*predict, str(transposed.root)])
    assert bad.exit_code != 0 and "aspect ratio" in bad.output


def test_synthetic_studies_join_training_only(data, tmp_path):
    synthetic = toy_dataset(tmp_path / "syn", 12, source="synthetic", prefix="y", seed=3)
    run = tmp_path / "aug"
    config = tiny(**{"train.max_steps": 4, "train.eval_every": 4})
    train_classifier(data["real"], run, config, synthetic=[synthetic], progress=False)
    members = json.loads((run / "data.json").read_text())
    assert sorted(members["train_synthetic"]) == sorted(r.study_id for r in synthetic)
    assert not set(members["val"]) & set(members["train_synthetic"])
    assert json.loads((run / "config.json").read_text())["training"]["n_train_synthetic"] == 12


def test_copies_of_synthetic_studies_join_training_once(data, tmp_path, caplog):
    """`augment` in place and `augment --out` with one --seed write the same studies twice."""
    import shutil

    synthetic = toy_dataset(tmp_path / "syn", 12, source="synthetic", prefix="y", seed=3)
    shutil.copytree(synthetic.root, tmp_path / "copy")
    config = tiny(**{"train.max_steps": 2, "train.eval_every": 2})
    twice = [synthetic, Dataset.open(tmp_path / "copy")]
    train_classifier(data["real"], tmp_path / "run", config, synthetic=twice, progress=False)
    members = json.loads((tmp_path / "run" / "data.json").read_text())
    assert sorted(members["train_synthetic"]) == sorted(r.study_id for r in synthetic)
    assert "12 synthetic studies are copies of ones already in training" in caplog.text

"""Memorization audit: planted exact and near copies are flagged, a clean set is not."""

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter, shift

from synthscan.dataset import Dataset, DatasetError
from synthscan.evaluation.privacy import (
    PrivacyAudit,
    flagged_studies_for_export,
    image_embedding,
    run_audit,
    write_report,
)

MATRIX = (64, 16)


def blob_study(rng: np.random.Generator, scale: float = 400.0) -> np.ndarray:
    """Random smooth 'skeleton' of a few blobs, Poisson counts, posterior as acquired (mirrored)."""
    mean = np.zeros(MATRIX)
    for _ in range(6):
        r, c = rng.integers(0, MATRIX[0]), rng.integers(0, MATRIX[1])
        mean[r, c] += rng.uniform(1, 3)
    mean = gaussian_filter(mean, 2.5) + 0.02
    mean *= scale / mean.max()
    views = np.stack([mean, mean[:, ::-1] * 0.9])
    return rng.poisson(views).astype(np.uint16)


def fill(root, rng, n, source, prefix):
    dataset = Dataset.create(root, matrix=MATRIX)
    with dataset.writer() as w:
        for i in range(n):
            w.add(
                blob_study(rng),
                study_id=f"{prefix}{i}",
                patient_id=f"{prefix}p{i}",
                label="normal",
                source=source,
                seed=i if source == "synthetic" else None,
            )
    return dataset


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    return fill(tmp_path_factory.mktemp("train"), np.random.default_rng(0), 60, "real", "t")


def test_embedding_ignores_total_counts_and_aligns_views():
    rng = np.random.default_rng(1)
    counts = blob_study(rng).astype(float)
    assert np.allclose(image_embedding(counts), image_embedding(counts * 5))
    emb = image_embedding(counts).reshape(2, *MATRIX)
    assert np.corrcoef(emb[0].ravel(), emb[1].ravel())[0, 1] > 0.8


def test_planted_copies_flagged_clean_set_not(train, tmp_path):
    clean = fill(tmp_path / "clean", np.random.default_rng(5), 100, "synthetic", "c")
    assert run_audit(train, clean).flagged == []

    planted = fill(tmp_path / "planted", np.random.default_rng(5), 20, "synthetic", "c")
    rng = np.random.default_rng(2)
    source = train.read("t7").counts
    near = rng.poisson(shift(source.astype(float), (0, 1, 0), order=1, mode="nearest")).astype(np.uint16)
    with planted.writer() as w:
        w.add(source, study_id="exact", patient_id="x", label="normal", source="synthetic", seed=1)
        w.add(near, study_id="near", patient_id="y", label="normal", source="synthetic", seed=2)
    audit = run_audit(train, planted)
    assert set(audit.flagged) == {"exact", "near"}
    image = audit.spaces[0]
    assert image.nearest_train[audit.synthetic_ids.index("exact")] == "t7"
    assert image.distance[audit.synthetic_ids.index("exact")] == 0.0

    report = write_report(audit, train, planted, tmp_path / "report")
    assert (report.parent / "flagged" / "image_exact.png").is_file()
    body = json.loads((report.parent / "results.json").read_text())
    assert sorted(body["flagged"]) == ["exact", "near"]
    assert PrivacyAudit.from_json((report.parent / "results.json").read_text()).flagged == audit.flagged


def test_feature_space_and_export_gate(train, tmp_path):
    synth = fill(tmp_path / "synth", np.random.default_rng(5), 10, "synthetic", "s")
    with synth.writer() as w:
        w.add(train.read("t3").counts, study_id="copy", patient_id="c", label="normal", source="synthetic")

    def features(batch):
        return batch.reshape(len(batch), 2, 16, 4, 4, 4).sum(axis=(3, 5)).reshape(len(batch), -1) / 1e3

    audit = run_audit(train, synth, features=features)
    assert [s.space for s in audit.spaces] == ["image", "feature"]
    assert "copy" in audit.spaces[1].flagged

    with pytest.raises(DatasetError, match="audit privacy"):
        flagged_studies_for_export(synth)
    assert flagged_studies_for_export(synth, train=train) == ["copy"]
    saved = synth.root / "privacy_audit" / "results.json"
    mtime = saved.stat().st_mtime_ns
    assert flagged_studies_for_export(synth) == ["copy"]
    assert saved.stat().st_mtime_ns == mtime


def test_cli_audit(train, tmp_path):
    from click.testing import CliRunner

    from synthscan.cli import main

    synth = fill(tmp_path / "synth", np.random.default_rng(5), 5, "synthetic", "s")
    with synth.writer() as w:
        w.add(train.read("t1").counts, study_id="copy", patient_id="c", label="normal", source="synthetic")
    args = ["audit", "privacy", "--train", str(train.root), "--synthetic", str(synth.root)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "1 of 6 synthetic studies flagged" in result.output
    assert (synth.root / "privacy_audit" / "report.md").is_file()
    bad = CliRunner().invoke(main, [*args[:3], str(tmp_path), *args[4:]])
    assert bad.exit_code != 0

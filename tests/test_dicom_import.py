"""import-dicom: vendor layouts, compression, grids, labels, bad input and PS3.15 de-identification.

Every fixture is built here with pydicom the way gamma-camera vendors write whole-body studies.
"""

import csv
import json
import logging
import zipfile

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
    generate_uid,
)

from synthscan.cli import main
from synthscan.dataset import Dataset as SynthDataset
from synthscan.dicom.deidentify import ANNEX_E_TABLE, Deidentifier
from synthscan.dicom.read import DicomImportError, import_dicom, to_grid
from synthscan.importers.common import ImportOptions

MATRIX = (64, 16)
SPACING = 2.4
NM = "1.2.840.10008.5.1.4.1.1.20"
SC = "1.2.840.10008.5.1.4.1.1.7"
VIEW_CODE = {"anterior": "399321004", "posterior": "399001007"}
AS_ACQUIRED_ROW = {"anterior": [1, 0, 0], "posterior": [-1, 0, 0]}


def options(**kw) -> ImportOptions:
    return ImportOptions(
        **{"matrix": MATRIX, "pixel_spacing_mm": SPACING, "salt": "test", "progress": False, **kw}
    )


def views(seed: int, shape=MATRIX, lam=20.0) -> np.ndarray:
    """Distinct anterior and posterior Poisson views (posterior brighter, so a swap is caught)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.poisson(lam, shape), rng.poisson(2 * lam, shape)]).astype(np.uint16)


def code(value: str, scheme: str = "SCT", meaning: str = "x") -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def nm_object(
    frames,
    *,
    detectors,
    windows,
    detector_views,
    energy_windows=((126, 154),),
    patient_id="PAT-1",
    accession="ACC-1",
    study_uid=None,
    series_uid=None,
    spacing=SPACING,
    stored_mirrored=(),
    with_view_codes=True,
) -> Dataset:
    """A vendor-style NM Image object: frames stacked, per-frame detector and energy-window vectors."""
    frames = np.asarray(frames, dtype=np.uint16)
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = NM, generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName, ds.AccessionNumber = "NM", patient_id, "Doe^Jane", accession
    ds.ImageType = ["ORIGINAL", "PRIMARY", "WHOLE BODY", "EMISSION"]
    ds.NumberOfFrames = len(frames)
    ds.FrameIncrementPointer = [0x00540010, 0x00540020]
    ds.EnergyWindowVector, ds.NumberOfEnergyWindows = list(windows), len(energy_windows)
    ds.DetectorVector, ds.NumberOfDetectors = list(detectors), len(detector_views)
    ds.EnergyWindowInformationSequence = Sequence()
    for lower, upper in energy_windows:
        window, window_range = Dataset(), Dataset()
        window_range.EnergyWindowLowerLimit, window_range.EnergyWindowUpperLimit = lower, upper
        window.EnergyWindowRangeSequence = Sequence([window_range])
        ds.EnergyWindowInformationSequence.append(window)
    ds.DetectorInformationSequence = Sequence()
    for view in detector_views:
        item = Dataset()
        row = AS_ACQUIRED_ROW[view]
        if view in stored_mirrored:
            row = [-row[0], 0, 0]
        item.ImageOrientationPatient = [*row, 0, 0, -1]
        if with_view_codes:
            item.ViewCodeSequence = Sequence([code(VIEW_CODE[view])])
        ds.DetectorInformationSequence.append(item)
    radiopharmaceutical = Dataset()
    radiopharmaceutical.Radiopharmaceutical = "Tc99m-HMDP"
    ds.RadiopharmaceuticalInformationSequence = Sequence([radiopharmaceutical])
    if spacing is not None:
        ds.PixelSpacing = [spacing, spacing]
    _pixels(ds, frames)
    return ds


def _pixels(ds: Dataset, frames: np.ndarray, photometric="MONOCHROME2") -> None:
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.Rows, ds.Columns = frames.shape[-2:]
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.PixelData = frames.astype("<u2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def two_frame(counts, **kw) -> Dataset:
    """The common layout, but posterior first: views must come from the header, not frame order."""
    return nm_object(
        [counts[1], counts[0]],
        detectors=[1, 2],
        windows=[1, 1],
        detector_views=["posterior", "anterior"],
        **kw,
    )


def save(ds: Dataset, path) -> None:
    ds.save_as(path, enforce_file_format=True)


def jpeg_lossless_sv1(frame: np.ndarray) -> bytes:
    """Minimal JPEG lossless encoder (process 14, selection value 1, 16-bit grey): no library encodes it.

    Predictor: left neighbour (first column: the pixel above; first pixel: 2^15). One Huffman table
    gives each of the 17 difference categories a 5-bit code equal to its number.
    """
    x = frame.astype(np.int64)
    pred = np.empty_like(x)
    pred[0, 0] = 1 << 15
    pred[0, 1:], pred[1:, 0], pred[1:, 1:] = x[0, :-1], x[:-1, 0], x[1:, :-1]
    diff = (x - pred) % 65536
    diff = np.where(diff >= 32768, diff - 65536, diff)
    out, state = bytearray(), [0, 0]

    def put(value: int, length: int) -> None:
        for shift in range(length - 1, -1, -1):
            state[0], state[1] = (state[0] << 1) | ((value >> shift) & 1), state[1] + 1
            if state[1] == 8:
                out.append(state[0])
                if state[0] == 0xFF:
                    out.append(0)
                state[0], state[1] = 0, 0

    for d in diff.ravel().tolist():
        ssss = 16 if d == -32768 else abs(d).bit_length()
        put(ssss, 5)
        if 0 < ssss < 16:
            put(d if d > 0 else d + (1 << ssss) - 1, ssss)
    if state[1]:
        put((1 << (8 - state[1])) - 1, 8 - state[1])

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    rows, cols = frame.shape
    sof = bytes([16]) + rows.to_bytes(2, "big") + cols.to_bytes(2, "big") + bytes([1, 1, 0x11, 0])
    dht = bytes([0x00, 0, 0, 0, 0, 17] + [0] * 11) + bytes(range(17))
    sos = bytes([1, 1, 0x00, 1, 0, 0])
    return (
        b"\xff\xd8" + segment(0xC3, sof) + segment(0xC4, dht) + segment(0xDA, sos) + bytes(out) + b"\xff\xd9"
    )


def write_labels(path, rows, key="AccessionNumber"):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([key, "label", "perugini_grade"])
        writer.writerows(rows)
    return path


def imported(root) -> dict[str, tuple[np.ndarray, object]]:
    """Accession-free view of an imported dataset: study → (counts, record), keyed by label."""
    dataset = SynthDataset.open(root)
    return {r.study_id: (dataset.read(r).counts, r) for r in dataset}


# -- vendor layouts ------------------------------------------------------------------------------


def test_two_frame_views_from_detector_and_view_code_not_frame_order(tmp_path):
    counts = views(0)
    save(two_frame(counts), tmp_path / "src.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "metastasis", "0"]])
    report = import_dicom(tmp_path / "src.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    assert len(report.imported) == 1 and not report.skipped
    ((got, record),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)
    assert (record.label, record.perugini_grade, record.source, record.tracer) == (
        "metastasis",
        0,
        "real",
        "HDP",
    )


def test_four_frames_take_the_photopeak_window(tmp_path):
    counts = views(1)
    scatter = np.full((2, *MATRIX), 999, np.uint16)
    ds = nm_object(
        [scatter[0], scatter[1], counts[0], counts[1]],
        detectors=[1, 2, 1, 2],
        windows=[1, 1, 2, 2],
        detector_views=["anterior", "posterior"],
        energy_windows=((100, 120), (126, 154)),
    )
    save(ds, tmp_path / "four.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", ""]])
    import_dicom(tmp_path / "four.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    ((got, record),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)
    assert record.perugini_grade is None


def test_one_object_per_view_paired_within_series_lone_view_reported(tmp_path):
    counts = views(2)
    study, series = generate_uid(), generate_uid()
    src = tmp_path / "src"
    src.mkdir()
    for index, view in enumerate(("posterior", "anterior")):  # files in reverse order on purpose
        counts_index = 1 if view == "posterior" else 0
        ds = nm_object(
            [counts[counts_index]],
            detectors=[1],
            windows=[1],
            detector_views=[view],
            study_uid=study,
            series_uid=series,
        )
        save(ds, src / f"IM{index}")
    lone = nm_object([counts[0]], detectors=[1], windows=[1], detector_views=["anterior"], accession="ACC-2")
    save(lone, src / "IM9")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"], ["ACC-2", "normal", "0"]])
    report = import_dicom(src, tmp_path / "ds", labels_csv=labels, options=options())
    ((got, _),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)
    assert report.skipped == [("IM9", "missing the posterior view in its study")]


def secondary_capture(counts, accession="ACC-1") -> Dataset:
    """A whole-body screen capture: ANT | POST side by side, inverted display (MONOCHROME1)."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = SC, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = "NM", "PAT-1", "Doe^Jane"
    ds.AccessionNumber, ds.ConversionType = accession, "WSD"
    _pixels(ds, 65535 - np.concatenate([counts[0], counts[1]], axis=1)[None], photometric="MONOCHROME1")
    return ds


def test_secondary_capture_side_by_side(tmp_path):
    counts = views(3)
    save(secondary_capture(counts), tmp_path / "sc.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "amyloidosis", "2"]])
    import_dicom(tmp_path / "sc.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    ((got, record),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)
    assert record.perugini_grade == 2
    meta = SynthDataset.open(tmp_path / "ds").read(record).meta
    assert meta["dicom"]["layout"] == "secondary-capture"
    assert "not counts" in meta["dicom"]["pixel_values"]


@pytest.mark.parametrize("syntax", ["rle", "jpeg2000", "jpeg-lossless"])
def test_compressed_transfer_syntaxes_decode_bit_exact(tmp_path, syntax):
    counts = views(4, shape=(128, 64))  # OpenJPEG's default 6 resolutions need tiles of 32+ pixels
    ds = two_frame(counts)
    if syntax == "rle":
        ds.compress(RLELossless)
    elif syntax == "jpeg2000":
        ds.compress(JPEG2000Lossless)
    else:
        frames = [jpeg_lossless_sv1(counts[1]), jpeg_lossless_sv1(counts[0])]
        ds.PixelData = encapsulate(frames)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGLosslessSV1
    save(ds, tmp_path / "c.dcm")
    assert pydicom.dcmread(tmp_path / "c.dcm").file_meta.TransferSyntaxUID.is_compressed
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    import_dicom(tmp_path / "c.dcm", tmp_path / "ds", labels_csv=labels, options=options(matrix=(128, 64)))
    ((got, _),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)


def test_stored_mirrored_posterior_is_flipped_back(tmp_path):
    counts = views(5)
    mirrored = [counts[0], counts[1][:, ::-1]]
    ds = nm_object(
        mirrored,
        detectors=[1, 2],
        windows=[1, 1],
        detector_views=["anterior", "posterior"],
        stored_mirrored=["posterior"],
    )
    save(ds, tmp_path / "m.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    import_dicom(tmp_path / "m.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    ((got, _),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)


def test_views_from_orientation_when_no_view_code(tmp_path):
    counts = views(6)
    save(two_frame(counts, with_view_codes=False), tmp_path / "o.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    import_dicom(tmp_path / "o.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    ((got, _),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)


def test_mixed_vendor_folder_imports_every_layout(tmp_path):
    """The issue's acceptance case: 2-frame, 4-frame, per-view, Secondary Capture and compressed together."""
    src = tmp_path / "src" / "nested"
    src.mkdir(parents=True)
    expected = {f"ACC-{i}": views(30 + i) for i in range(5)}
    save(two_frame(expected["ACC-0"], accession="ACC-0"), src / "two.dcm")
    four = expected["ACC-1"]
    save(
        nm_object(
            [four[0], four[1], four[0] // 3, four[1] // 3],
            detectors=[1, 2, 1, 2],
            windows=[1, 1, 2, 2],
            detector_views=["anterior", "posterior"],
            energy_windows=((126, 154), (100, 120)),
            accession="ACC-1",
        ),
        src / "four.dcm",
    )
    study, series = generate_uid(), generate_uid()
    for view, index in (("anterior", 0), ("posterior", 1)):
        single = nm_object(
            [expected["ACC-2"][index]],
            detectors=[1],
            windows=[1],
            detector_views=[view],
            accession="ACC-2",
            study_uid=study,
            series_uid=series,
        )
        save(single, src / f"view{index}.dcm")
    save(secondary_capture(expected["ACC-3"], accession="ACC-3"), src / "sc.dcm")
    compressed = two_frame(expected["ACC-4"], accession="ACC-4")
    compressed.compress(RLELossless)
    save(compressed, src / "rle.dcm")
    (src / "README.txt").write_text("exported from PACS\n")
    labels = write_labels(tmp_path / "labels.csv", [[key, "normal", "0"] for key in expected])

    result = CliRunner().invoke(
        main,
        [
            "import-dicom",
            str(tmp_path / "src"),
            "--out",
            str(tmp_path / "ds"),
            "--labels",
            str(labels),
            "--salt",
            "s",
            "--matrix",
            "64x16",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "Imported 5 studies" in result.output
        and "skipped nested/README.txt: not a DICOM file" in result.output
    )
    dataset = SynthDataset.open(tmp_path / "ds")
    layouts = {}
    for record in dataset:
        study = dataset.read(record)
        (key,) = [k for k, counts in expected.items() if np.array_equal(counts, study.counts)]
        layouts[key] = study.meta["dicom"]["layout"]
    assert layouts == {
        "ACC-0": "nm-2-frame",
        "ACC-1": "nm-4-frame",
        "ACC-2": "nm-per-view",
        "ACC-3": "secondary-capture",
        "ACC-4": "nm-2-frame",
    }
    stored = b"".join(p.read_bytes() for p in (tmp_path / "ds").glob("*.*"))
    stored += "".join(str(dataset.read(r).meta) for r in dataset).encode()
    assert b"Doe^Jane" not in stored and b"PAT-1" not in stored and b"ACC-" not in stored


# -- grid ----------------------------------------------------------------------------------------


def test_other_pixel_size_resampled_physically_keeping_counts(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    fine = views(7, shape=(128, 32), lam=5)  # 1.2 mm pixels: the same field as 64x16 at 2.4 mm
    save(two_frame(fine, spacing=1.2), src / "fine.dcm")
    coarse = views(8, shape=(32, 8))  # 2.4 mm pixels but a smaller matrix: padded, not stretched
    save(two_frame(coarse, accession="ACC-2", patient_id="PAT-2"), src / "small.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"], ["ACC-2", "normal", "0"]])
    import_dicom(src, tmp_path / "ds", labels_csv=labels, options=options())
    dataset = SynthDataset.open(tmp_path / "ds")
    by_shape = {
        tuple(dataset.read(r).meta["dicom"]["views"]["anterior"]["source_shape"]): dataset.read(r)
        for r in dataset
    }
    fine_study, small_study = by_shape[(128, 32)], by_shape[(32, 8)]
    assert fine_study.counts.reshape(2, -1).sum(1).tolist() == fine.reshape(2, -1).sum(1).tolist()
    expected = fine.reshape(2, 64, 2, 16, 2).sum(axis=(2, 4))
    assert np.array_equal(fine_study.counts, expected)  # 2x2 binning is exact
    assert np.array_equal(small_study.counts[:, :32, 4:12], coarse)
    assert small_study.counts[:, 32:].sum() == 0 and small_study.counts[:, :, :4].sum() == 0


def test_to_grid_shrinks_oversized_views_without_losing_counts():
    view = np.random.default_rng(9).poisson(7, (100, 40))
    grid, info = to_grid(view, (2.4, 2.4), MATRIX, SPACING)
    assert grid.shape == MATRIX and grid.sum() == view.sum()
    assert info["shrunk_to_fit"] > 1
    stretched, _ = to_grid(view, None, MATRIX, SPACING)
    assert stretched.shape == MATRIX and stretched.sum() == view.sum()


# -- bad input -----------------------------------------------------------------------------------


def test_bad_objects_skipped_with_reasons_and_good_ones_imported(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    save(two_frame(views(10)), src / "good.dcm")
    whole = tmp_path / "whole.dcm"
    save(two_frame(views(11), accession="ACC-2"), whole)
    data = whole.read_bytes()
    (src / "truncated.dcm").write_bytes(data[: len(data) - 1500])
    (src / "notes.txt").write_text("not an image\n")
    ct = two_frame(views(12))
    ct.SOPClassUID, ct.Modality = "1.2.840.10008.5.1.4.1.1.2", "CT"
    save(ct, src / "ct.dcm")
    static = two_frame(views(13))
    static.ImageType = ["ORIGINAL", "PRIMARY", "STATIC", "EMISSION"]
    save(static, src / "static.dcm")
    iodine = nm_object(
        views(14),
        detectors=[1, 2],
        windows=[1, 1],
        detector_views=["anterior", "posterior"],
        energy_windows=((330, 400),),
    )
    save(iodine, src / "iodine.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"], ["ACC-2", "normal", "0"]])
    report = import_dicom(src, tmp_path / "ds", labels_csv=labels, options=options())
    assert len(report.imported) == 1
    reasons = dict(report.skipped)
    assert set(reasons) == {"truncated.dcm", "notes.txt", "ct.dcm", "static.dcm", "iodine.dcm"}
    assert "photopeak" in reasons["iodine.dcm"]
    assert reasons["notes.txt"] == "not a DICOM file"
    assert "decoded" in reasons["truncated.dcm"]
    assert "Modality CT" in reasons["ct.dcm"]
    assert "whole-body" in reasons["static.dcm"]
    saved = json.loads((tmp_path / "ds" / "import_report.json").read_text())
    assert {s["reason"] for s in saved["skipped"]} == set(reasons.values())
    assert not any("truncated" in s["file"] for s in saved["skipped"])  # file names are hashed
    assert not list((tmp_path / "ds" / "studies").glob(".*.tmp"))


def test_study_without_label_is_skipped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    save(two_frame(views(14)), src / "a.dcm")
    save(two_frame(views(15), accession="ACC-9"), src / "b.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    report = import_dicom(src, tmp_path / "ds", labels_csv=labels, options=options())
    assert len(report.imported) == 1
    assert report.skipped == [("b.dcm", "no label: no row for its AccessionNumber in the labels CSV")]


def test_labels_keyed_by_study_instance_uid(tmp_path):
    study = generate_uid()
    save(two_frame(views(21), study_uid=study, accession=""), tmp_path / "a.dcm")
    labels = write_labels(tmp_path / "labels.csv", [[study, "amyloidosis", "3"]], key="StudyInstanceUID")
    report = import_dicom(
        tmp_path / "a.dcm",
        tmp_path / "ds",
        labels_csv=labels,
        label_key="StudyInstanceUID",
        options=options(),
    )
    ((_, record),) = imported(tmp_path / "ds").values()
    assert (record.label, record.perugini_grade) == ("amyloidosis", 3) and report.imported == [
        record.study_id
    ]
    assert study not in (tmp_path / "ds" / "manifest.csv").read_text()


def test_nothing_importable_fails_and_leaves_no_folder(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "x.txt").write_text("hello")
    with pytest.raises(DicomImportError) as caught:
        import_dicom(src, tmp_path / "ds", options=options())
    assert caught.value.report.skipped == [("x.txt", "not a DICOM file")]
    assert not (tmp_path / "ds").exists()
    result = CliRunner().invoke(
        main, ["import-dicom", str(src), "--out", str(tmp_path / "ds"), "--salt", "s"]
    )
    assert result.exit_code != 0
    assert "not a DICOM file" in result.output


def test_bad_labels_csv_is_refused_with_a_fix(tmp_path):
    save(two_frame(views(16)), tmp_path / "a.dcm")
    bad = write_labels(tmp_path / "labels.csv", [["ACC-1", "fracture", ""]])
    result = CliRunner().invoke(
        main,
        [
            "import-dicom",
            str(tmp_path / "a.dcm"),
            "--out",
            str(tmp_path / "ds"),
            "--labels",
            str(bad),
            "--salt",
            "s",
        ],
    )
    assert result.exit_code != 0
    assert "valid labels: normal, metastasis, amyloidosis" in result.output


# -- pseudonyms and de-identification ------------------------------------------------------------


def test_pseudonyms_consistent_per_salt_and_patient(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    save(two_frame(views(17), patient_id="P-7", accession="A1"), src / "a.dcm")
    save(two_frame(views(18), patient_id="P-7", accession="A2"), src / "b.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["A1", "normal", "0"], ["A2", "normal", "0"]])
    runs = {}
    for name, salt in (("one", "s1"), ("again", "s1"), ("other", "s2")):
        import_dicom(src, tmp_path / name, labels_csv=labels, options=options(salt=salt))
        records = SynthDataset.open(tmp_path / name).records
        runs[name] = sorted((r.study_id, r.patient_id) for r in records)
    assert len({patient for _, patient in runs["one"]}) == 1  # same patient → one pseudonym
    assert runs["one"] == runs["again"]
    assert not {p for _, p in runs["one"]} & {p for _, p in runs["other"]}
    deid = Deidentifier("s1")
    assert deid.uid("1.2.3") == Deidentifier("s1").uid("1.2.3") != Deidentifier("s2").uid("1.2.3")
    again = import_dicom(src, tmp_path / "one", labels_csv=labels, options=options(salt="s1"))
    assert len(again.already_present) == 2 and not again.imported


def test_burned_in_annotation_flagged(tmp_path):
    ds = two_frame(views(19))
    ds.BurnedInAnnotation = "YES"
    save(ds, tmp_path / "a.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    report = import_dicom(tmp_path / "a.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    assert report.burned_in_annotation == report.imported
    dataset = SynthDataset.open(tmp_path / "ds")
    assert dataset.read(dataset.records[0]).meta["dicom"]["burned_in_annotation"] is True


TEXT_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"}
DATED = {
    "DA": "19230417",
    "DT": "19230417231759",
    "TM": "231759",
    "AS": "087Y",
    "DS": "87.6543",
    "IS": "-876543",
}


def annex_e_canaries():
    """(tag, VR, value) for every PS3.15 Table E.1-1 row that can hold text, from dicom-anonymizer's copy.

    Free text gets a unique ``CANARYnnnn``; dates, ages, numbers and UIDs get values that cannot
    arise by chance.  Rows pydicom's dictionary does not know are written as LO.
    """
    rows = dicom_anonymization_database_selector(ANNEX_E_TABLE)["ALL_TAGS"]
    found = []
    for index, row in enumerate(rows):
        if len(row) != 2 or row[0] in (0x0000, 0x0002):  # command set and file meta: never in a data set
            continue
        tag = (row[0] << 16) | row[1]
        vr = dictionary_VR(tag) if dictionary_has_tag(tag) else "LO"
        if vr in TEXT_VRS:
            found.append((tag, vr, f"CANARY{index:04d}"))
        elif vr in DATED:
            found.append((tag, vr, DATED[vr]))
        elif vr == "UI":
            found.append((tag, vr, f"1.2.826.0.1.3680043.10.999.{index}"))
        elif vr == "UR":
            found.append((tag, vr, f"http://canary{index}.invalid"))
        elif vr == "SQ":
            found.append((tag, vr, None))
    return found


def plant(ds: Dataset, canaries, private_group: int) -> None:
    for tag, vr, value in canaries:
        if vr == "SQ":
            item = Dataset()
            item.CodeMeaning = f"CANARYSQ{tag:08X}"
            ds.add_new(tag, vr, Sequence([item]))
        elif tag not in ds:
            ds.add_new(tag, vr, value)
    block = ds.private_block(private_group, "CANARY VENDOR", create=True)
    block.add_new(0x01, "LO", "CANARY private patient object name")
    block.add_new(0x02, "UN", b"CANARY-UN-BYTES!")
    inner = Dataset()
    inner.PatientName = "CANARY^INNER"
    block.add_new(0x03, "SQ", Sequence([inner]))


def test_no_identifier_survives_import(tmp_path, caplog):
    """Canaries in every Annex E text attribute, private elements and nested sequences: none comes out."""
    counts = views(20)
    canaries = annex_e_canaries()
    assert len(canaries) > 300
    ds = two_frame(counts)
    plant(ds, canaries, 0x0009)
    plant(ds.DetectorInformationSequence[0], canaries, 0x0011)
    nested = ds.RadiopharmaceuticalInformationSequence[0]
    nested.RadionuclideCodeSequence = Sequence([code("72454006")])
    plant(nested.RadionuclideCodeSequence[0], canaries, 0x0013)
    ds.AccessionNumber = "CANARYACCESSION"
    ds.PatientID = "CANARYPATIENTID"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.10.999.77777"
    save(ds, tmp_path / "phi.dcm")
    assert b"CANARY0" in (tmp_path / "phi.dcm").read_bytes()
    labels = write_labels(tmp_path / "labels.csv", [["CANARYACCESSION", "metastasis", "0"]])

    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(
        main,
        [
            "-v",
            "import-dicom",
            str(tmp_path / "phi.dcm"),
            "--out",
            str(tmp_path / "ds"),
            "--labels",
            str(labels),
            "--salt",
            "secret",
            "--matrix",
            "64x16",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    ((got, record),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts) and record.label == "metastasis"

    forbidden = [b"canary", *(v.encode().lower() for _, vr, v in canaries if vr in DATED or vr == "UI")]
    forbidden += [b"1.2.826.0.1.3680043.10.999.77777", b"doe^jane"]
    outputs = [result.output.encode(), caplog.text.encode()]
    for path in (tmp_path / "ds").rglob("*"):
        if path.is_file():
            outputs.append(path.read_bytes())
            if path.suffix == ".npz":  # compressed, and the meta string is stored as UTF-32
                with zipfile.ZipFile(path) as archive:
                    outputs += [archive.read(name) for name in archive.namelist()]
                with np.load(path) as data:
                    outputs += [
                        str(data[name]).encode() for name in data.files if data[name].dtype.kind == "U"
                    ]
    for blob in outputs:
        lowered = blob.lower()
        leaked = [f for f in forbidden if f in lowered]
        assert not leaked, leaked[:5]

    dataset = SynthDataset.open(tmp_path / "ds")
    (header,) = dataset.read(record).meta["dicom"]["headers"]
    assert header["00120062"]["Value"] == ["YES"]  # Patient Identity Removed
    assert header["00100020"]["Value"] == [record.patient_id]
    assert not any(int(tag[:4], 16) % 2 for tag in header)  # no private group left
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["provenance"]["deidentification"]["profile"].startswith("113100")

"""import-dicom: vendor layouts, compression, grids, labels, bad input and PS3.15 de-identification.

Every fixture is built with pydicom the way gamma-camera vendors write whole-body studies
(``nm_fixtures``).
"""

import json
import logging
import zipfile

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from nm_fixtures import (
    MATRIX,
    SPACING,
    STORAGE,
    body_views,
    code,
    deeply_nested,
    nm_object,
    save,
    secondary_capture,
    start_angle_object,
    stored_as,
    two_frame,
    views,
    write_labels,
)
from pydicom.datadict import (
    DicomDictionary,
    dictionary_has_tag,
    dictionary_VR,
    private_dictionary_description,
)
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    JPEG2000,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    RLELossless,
    generate_uid,
)

from synthscan.cli import main
from synthscan.dataset import Dataset as SynthDataset
from synthscan.dicom.body import head_up_turns
from synthscan.dicom.codes import known_code
from synthscan.dicom.deidentify import ANNEX_E_TABLE, Deidentifier
from synthscan.dicom.read import DicomImportError, import_dicom, to_grid
from synthscan.dicom.reasons import REASONS
from synthscan.dicom.views import VENDOR_VIEW_NAMES
from synthscan.dicom.write import export_dataset
from synthscan.importers.common import ImportOptions
from synthscan.labels import VIEWS


def options(**kw) -> ImportOptions:
    return ImportOptions(
        **{"matrix": MATRIX, "pixel_spacing_mm": SPACING, "salt": "test", "progress": False, **kw}
    )


def cli_import(src, out, *extra, labels=None, salt="test", matrix="64x16"):
    """``synthscan import-dicom`` in-process."""
    args = ["import-dicom", str(src), "--out", str(out), "--salt", salt, "--matrix", matrix, "--no-progress"]
    return CliRunner().invoke(main, [*args, *(["--labels", str(labels)] if labels else []), *extra])


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
    assert report.skipped == [("IM9", "missing-posterior")]


BODY = {"matrix": (256, 64), "pixel_spacing_mm": 9.6}


def test_secondary_capture_side_by_side(tmp_path):
    counts = body_views(3)
    save(secondary_capture(counts), tmp_path / "sc.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "amyloidosis", "2"]])
    report = import_dicom(tmp_path / "sc.dcm", tmp_path / "ds", labels_csv=labels, options=options(**BODY))
    ((got, record),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)
    assert record.perugini_grade == 2 and record.get("pixel_values") == "display"
    meta = SynthDataset.open(tmp_path / "ds").read(record).meta
    assert meta["dicom"]["layout"] == "secondary-capture"
    assert meta["dicom"]["views"]["anterior"]["rule"] == "secondary-capture"
    # A capture that does not declare Burned In Annotation NO may show names: flagged.
    assert report.burned_in_annotation == report.imported and meta["dicom"]["burned_in_annotation"]


def test_secondary_capture_declaring_no_burned_in_text_is_not_flagged(tmp_path):
    ds = secondary_capture(body_views(4))
    ds.BurnedInAnnotation = "NO"
    save(ds, tmp_path / "sc.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    report = import_dicom(tmp_path / "sc.dcm", tmp_path / "ds", labels_csv=labels, options=options(**BODY))
    assert len(report.imported) == 1 and report.burned_in_annotation == []


def test_single_view_secondary_capture_is_skipped_not_split(tmp_path):
    """Issue 15, defect 1: one body in a capture was cut down the midline into a fake ANT and POST."""
    save(secondary_capture(body_views(5), side_by_side=False), tmp_path / "one.dcm")
    save(two_frame(body_views(6), accession="ACC-2", spacing=9.6), tmp_path / "good.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"], ["ACC-2", "normal", "0"]])
    report = import_dicom(tmp_path, tmp_path / "ds", labels_csv=labels, options=options(**BODY))
    assert ("one.dcm", "sc-one-body") in report.skipped and len(report.imported) == 1
    ((_, record),) = imported(tmp_path / "ds").values()
    assert SynthDataset.open(tmp_path / "ds").read(record).meta["dicom"]["layout"] == "nm-2-frame"


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


@pytest.mark.parametrize("view", VIEWS)
def test_a_view_stored_mirrored_in_a_two_frame_object_is_flipped_back(tmp_path, view):
    counts = views(5)
    mirrored = [c[:, ::-1] if name == view else c for name, c in zip(VIEWS, counts, strict=True)]
    ds = nm_object(
        mirrored,
        detectors=[1, 2],
        windows=[1, 1],
        detector_views=["anterior", "posterior"],
        stored_mirrored=[view],
    )
    save(ds, tmp_path / "m.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    import_dicom(tmp_path / "m.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    ((got, _),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)


@pytest.mark.parametrize("storage", STORAGE)
@pytest.mark.parametrize("view", ["anterior", "posterior"])
def test_a_view_stored_any_way_comes_back_as_acquired(tmp_path, view, storage):
    """Each of the 8 rotations and mirror images, described by its Image Orientation (Patient)
    and named by its View Code. The old rule took a 180-degree turn for a mirror image."""
    counts = body_views(70)
    index = VIEWS.index(view)
    pixels, vectors = stored_as(view, counts[index], storage)
    src = tmp_path / "src"
    src.mkdir()
    study, series = generate_uid(), generate_uid()
    for i, name in enumerate(VIEWS):  # one object per view: a landscape view has its own shape
        single = nm_object(
            [pixels if i == index else counts[i]],
            detectors=[1],
            windows=[1],
            detector_views=[name],
            study_uid=study,
            series_uid=series,
            spacing=9.6,
            orientation={view: vectors},
        )
        save(single, src / f"{name}.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    import_dicom(src, tmp_path / "ds", labels_csv=labels, options=options(**BODY))
    ((got, record),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)
    meta = SynthDataset.open(tmp_path / "ds").read(record).meta["dicom"]["views"][view]
    assert meta["flipped_to_as_acquired"] == ("mirror" in storage or "transposed" in storage)
    assert meta["head_end"] == "from the header"


def test_views_from_orientation_when_no_view_code(tmp_path):
    counts = views(6)
    save(two_frame(counts, with_view_codes=False), tmp_path / "o.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    import_dicom(tmp_path / "o.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    ((got, _),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)


GE, SIEMENS, PHILIPS = VENDOR_VIEW_NAMES


def test_vendor_view_names_are_the_private_dictionarys():
    """Rule 4 reads the elements the vendors document, as pydicom's private dictionary names them."""
    names = {
        v.creator: private_dictionary_description((v.group << 16) | 0x1000 | v.offset, v.creator)
        for v in VENDOR_VIEW_NAMES
    }
    assert names == {
        "GEMS_GENIE_1": "Dataset Name",
        "SIEMENS MED NM": "Main Acquisition View",
        "ELSCINT1": "Image View Type",
    }


def test_real_camera_layout_start_angle_and_private_names_full_size(tmp_path):
    """The issue's acceptance case: 2 frames of 1024x256, Detector Information items with only a Start
    Angle, no View Code Sequence and an empty Image Orientation, and the vendor's private view names."""
    counts = body_views(60, matrix=(1024, 256), spacing=2.4)
    ge = {GE.creator: (GE.group, GE.offset, ["WB POST", "WB ANT"], "items")}
    ds = start_angle_object(counts, angles=(0, 180), private=ge)
    assert "ViewCodeSequence" not in ds.DetectorInformationSequence[0]
    assert ds.DetectorInformationSequence[0]["ImageOrientationPatient"].is_empty
    save(ds, tmp_path / "wb.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "metastasis", "0"]])
    report = import_dicom(
        tmp_path / "wb.dcm", tmp_path / "ds", labels_csv=labels, options=options(matrix=(1024, 256))
    )
    ((got, record),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts) and record.get("pixel_values") == "counts"
    meta = SynthDataset.open(tmp_path / "ds").read(record).meta["dicom"]
    assert {view: meta["views"][view]["rule"] for view in meta["views"]} == {
        "anterior": "start-angle",
        "posterior": "start-angle",
    }
    assert report.view_rules == {"start-angle": 2}
    saved = json.loads((tmp_path / "ds" / "import_report.json").read_text())
    assert saved["view_rules"] == {"start-angle": 2}


@pytest.mark.parametrize(
    ("angles", "private", "expected"),
    [
        ((-2, 179.5), None, "start-angle"),  # near 0 / 180 and negative angles
        ((None, None), {GE.creator: (GE.group, GE.offset, ["POST", "ANT"], "items")}, "vendor-private"),
        (
            (None, None),
            {PHILIPS.creator: (PHILIPS.group, PHILIPS.offset, ["POSTERIOR", "ANTERIOR"], "dataset")},
            "vendor-private",
        ),
        (
            (None, None),
            {SIEMENS.creator: (SIEMENS.group, SIEMENS.offset, ["POST", "ANT"], "dataset")},
            "vendor-private",
        ),
        ((0, 180), {GE.creator: (GE.group, GE.offset, ["ANT", "POST"], "items")}, "view-conflict"),
        ((90, 270), None, "no-view"),  # lateral detectors: no whole-body view
        ((None, None), {GE.creator: (GE.group, GE.offset, ["ANT POST", "LAT"], "items")}, "no-view"),
    ],
)
def test_views_from_start_angle_then_vendor_names_else_refused(tmp_path, angles, private, expected):
    counts = views(61)
    save(start_angle_object(counts, angles=angles, private=private), tmp_path / "o.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    if expected in REASONS:
        with pytest.raises(DicomImportError) as caught:
            import_dicom(tmp_path / "o.dcm", tmp_path / "ds", labels_csv=labels, options=options())
        assert caught.value.report.skipped == [("o.dcm", expected)]
        return
    import_dicom(tmp_path / "o.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    ((got, record),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)
    meta = SynthDataset.open(tmp_path / "ds").read(record).meta["dicom"]
    assert meta["views"]["anterior"]["rule"] == meta["views"]["posterior"]["rule"] == expected


def test_view_code_outranks_start_angle(tmp_path):
    counts = views(62)
    ds = two_frame(counts, with_orientation=False)
    for item, angle in zip(ds.DetectorInformationSequence, (180, 0), strict=True):
        item.StartAngle = angle  # contradicts the codes: the code is trusted first
    save(ds, tmp_path / "o.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    report = import_dicom(tmp_path / "o.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    ((got, _),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts) and report.view_rules == {"view-code": 2}


# -- pixel values and orientation ----------------------------------------------------------------


def test_monochrome1_and_lossy_pixels_skipped_unless_allowed(tmp_path):
    """Issue 15, defects 4 and 5: MONOCHROME1 NM was imported inverted and lossy pixels as exact counts."""
    src = tmp_path / "src"
    src.mkdir()
    exact = views(63, shape=(128, 64))
    inverted = two_frame(exact, accession="ACC-1")
    inverted.PhotometricInterpretation = "MONOCHROME1"
    inverted.PixelData = (65535 - np.stack([exact[1], exact[0]])).astype("<u2").tobytes()
    save(inverted, src / "mono1.dcm")
    flagged = two_frame(views(64, shape=(128, 64)), accession="ACC-2")
    flagged.LossyImageCompression, flagged.LossyImageCompressionMethod = "01", "ISO_14495_1"
    save(flagged, src / "was_jpegls.dcm")
    j2k = two_frame(views(65, shape=(128, 64)), accession="ACC-3")
    j2k.compress(JPEG2000, j2k_cr=[20])  # a lossy transfer syntax; pydicom does not set the flag
    save(j2k, src / "lossy_j2k.dcm")
    save(two_frame(views(66, shape=(128, 64)), accession="ACC-4"), src / "exact.dcm")
    labels = write_labels(tmp_path / "labels.csv", [[f"ACC-{i}", "normal", "0"] for i in range(1, 5)])
    grid = options(matrix=(128, 64))

    report = import_dicom(src, tmp_path / "strict", labels_csv=labels, options=grid)
    assert len(report.imported) == 1
    assert dict(report.skipped) == {
        "mono1.dcm": "monochrome1",
        "was_jpegls.dcm": "lossy",
        "lossy_j2k.dcm": "lossy",
    }

    result = cli_import(src, tmp_path / "lenient", "--allow-lossy", labels=labels, matrix="128x64")
    assert result.exit_code == 0, result.output
    assert (
        "Imported 4 studies" in result.output and "3 studies hold lossy or inverted values" in result.output
    )
    dataset = SynthDataset.open(tmp_path / "lenient")
    kinds = sorted(r.get("pixel_values") for r in dataset)
    assert kinds == ["counts", "lossy", "lossy", "lossy"]
    (mono,) = [s for s in dataset.iter_studies() if "monochrome1" in s.meta["dicom"]["not_exact_counts"]]
    assert np.array_equal(mono.counts, exact)  # inverted back
    saved = json.loads((tmp_path / "lenient" / "import_report.json").read_text())
    assert saved["allow_lossy"] is True and len(saved["not_exact_counts"]) == 3
    # a rerun without --allow-lossy finds them there (not "skipped as lossy"), and the report keeps them
    again = import_dicom(src, tmp_path / "lenient", labels_csv=labels, options=grid)
    assert len(again.already_present) == 4 and not again.skipped and len(again.not_exact_counts) == 3
    saved = json.loads((tmp_path / "lenient" / "import_report.json").read_text())
    assert len(saved["not_exact_counts"]) == 3


@pytest.mark.parametrize(
    "turns, header",
    [
        (1, "portrait vectors"),
        (3, "portrait vectors"),
        (1, "silent"),
        (2, "silent"),
        (2, "stated"),
        (3, "stated"),
    ],
)
def test_view_stored_sideways_or_upside_down_is_turned_head_up(tmp_path, turns, header):
    """Issue 15, defect 6: a landscape 256x1024 object was shrunk 4x and stored sideways.

    Upside down, the head end comes from the header where it states one, else from the body; the
    portrait orientation vectors of a landscape image describe another image and are not used.
    """
    counts = body_views(67)
    stored = np.stack([np.rot90(view, turns) for view in counts])
    kw = {"with_orientation": False} if header == "silent" else {}
    if header == "stated":
        storage = {1: "turned 90", 2: "turned 180", 3: "turned 270"}[turns]
        kw = {"orientation": {v: stored_as(v, counts[i], storage)[1] for i, v in enumerate(VIEWS)}}
    save(two_frame(stored, spacing=9.6, **kw), tmp_path / "turned.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    import_dicom(tmp_path / "turned.dcm", tmp_path / "ds", labels_csv=labels, options=options(**BODY))
    ((got, record),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)  # turned back exactly: not shrunk, not mirrored
    meta = SynthDataset.open(tmp_path / "ds").read(record).meta["dicom"]["views"]["anterior"]
    assert meta["turned_deg"] == 90 * ((4 - turns) % 4) and "shrunk_to_fit" not in meta
    assert meta["head_end"] == ("from the header" if header == "stated" else "from the body")


def test_a_hot_feet_end_does_not_overrule_the_header(tmp_path):
    """An extravasated foot injection makes the feet the hotter end; the header's head end stands."""
    counts = body_views(68).astype(np.uint32)
    rows = np.flatnonzero(counts[0].sum(axis=1) > 0)
    for view in counts:  # a third of each view's counts in a spot at the lowest body rows
        view[rows[-4] : rows[-1], 20:24] += np.uint32(view.sum() // 2 // 12)
    save(two_frame(counts, spacing=9.6), tmp_path / "feet.dcm")
    assert head_up_turns(counts[0]) == 2  # the counts alone would turn it upside down
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    import_dicom(tmp_path / "feet.dcm", tmp_path / "ds", labels_csv=labels, options=options(**BODY))
    ((got, record),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)
    meta = SynthDataset.open(tmp_path / "ds").read(record).meta["dicom"]["views"]
    assert all(meta[v]["turned_deg"] == 0 and "other way" in meta[v]["head_end"] for v in meta)


@pytest.mark.parametrize("anterior_header", [False, True])
def test_a_view_without_a_header_head_end_is_aligned_with_the_other(tmp_path, anterior_header):
    """Only the posterior is stored upside down, and its header is silent: it is turned to match
    the anterior (by its header, or by the body's profile), never summed with it head-to-feet."""
    counts = body_views(3)
    stored = np.stack([counts[0], np.rot90(counts[1], 2)])
    orientation = {"posterior": None} if anterior_header else None
    kw = {"orientation": orientation} if anterior_header else {"with_orientation": False}
    save(two_frame(stored, spacing=9.6, **kw), tmp_path / "p.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    import_dicom(tmp_path / "p.dcm", tmp_path / "ds", labels_csv=labels, options=options(**BODY))
    ((got, record),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)
    meta = SynthDataset.open(tmp_path / "ds").read(record).meta["dicom"]["views"]["posterior"]
    expected = "aligned with the anterior view's header" if anterior_header else "from the body"
    assert meta["head_end"] == expected


def test_views_without_a_header_head_end_face_the_same_way(tmp_path):
    """Judged on both views together: one view's hot feet cannot turn it against the other."""
    counts = body_views(69).astype(np.uint32)
    rows = np.flatnonzero(counts[1].sum(axis=1) > 0)
    counts[1][rows[-4] : rows[-1], 20:24] += np.uint32(counts[1].sum() // 3 // 12)
    assert head_up_turns(counts[1]) is None or head_up_turns(counts[1]) == 2
    save(two_frame(counts, spacing=9.6, with_orientation=False), tmp_path / "f.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    import_dicom(tmp_path / "f.dcm", tmp_path / "ds", labels_csv=labels, options=options(**BODY))
    ((got, _),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)


def test_head_end_found_on_simulated_scans_of_every_site():
    for index, site in enumerate(
        ("centre_a", "centre_b", "external_1", "external_2", "external_3", "external_4")
    ):
        for seed in range(3):
            for view in body_views(100 * index + seed, site=site):
                assert head_up_turns(view) == 0
                assert head_up_turns(np.rot90(view, 1)) == 3
    noise = np.random.default_rng(0).poisson(20, (64, 256))
    assert head_up_turns(noise) is None


def test_landscape_view_without_a_head_end_is_skipped(tmp_path):
    save(two_frame(views(68, shape=(16, 64))), tmp_path / "flat.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    with pytest.raises(DicomImportError) as caught:
        import_dicom(tmp_path / "flat.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    assert caught.value.report.skipped == [("flat.dcm", "head-feet")]


# -- real stays real -------------------------------------------------------------------------------


def marked_synthetic(counts, **kw) -> Dataset:
    """A real scan whose header claims to be synthscan's synthetic output (a header anyone can write)."""
    ds = two_frame(counts, **kw)
    ds.SyntheticData = "YES"
    ds.ImageComments = 'SYNTHSCAN {"label": "normal", "perugini_grade": 0, "source": "synthetic", "seed": 7}'
    return ds


def test_real_scan_marked_synthetic_stays_real_and_is_never_exported(tmp_path):
    """Issue 15, defect 3: a header saying Synthetic Data YES made a real scan synthetic and exportable."""
    counts = views(69)
    save(marked_synthetic(counts), tmp_path / "claims.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "metastasis", "0"]])
    import_dicom(tmp_path / "claims.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    ((_, record),) = imported(tmp_path / "ds").values()
    assert (record.source, record.label, record.seed) == ("real", "metastasis", None)
    with pytest.raises(DicomImportError) as caught:  # without labels it is a real scan without a label
        import_dicom(tmp_path / "claims.dcm", tmp_path / "nolabels", options=options())
    assert caught.value.report.skipped == [("claims.dcm", "no-labels")]

    trusted = cli_import(tmp_path / "claims.dcm", tmp_path / "trusted", "--trust-synthetic-marker")
    assert trusted.exit_code == 0, trusted.output
    dataset = SynthDataset.open(tmp_path / "trusted")
    assert [(r.source, r.seed) for r in dataset] == [("synthetic", 7)]
    assert dataset.info.provenance["trust_synthetic_marker"] is True
    exported = CliRunner().invoke(main, ["export-dicom", str(dataset.root), "--out", str(tmp_path / "out")])
    assert exported.exit_code != 0 and "never exported" in exported.output
    assert not list((tmp_path / "out").glob("*.dcm"))
    with pytest.raises(Exception, match="never exported"):
        export_dataset(dataset, tmp_path / "out2", progress=False)
    again = cli_import(tmp_path / "claims.dcm", tmp_path / "trusted")  # one dataset, one trust setting
    assert again.exit_code != 0 and "--trust-synthetic-marker" in again.output


def test_mixed_vendor_folder_imports_every_layout(tmp_path):
    """The issue's acceptance case: 2-frame, 4-frame, per-view, Secondary Capture and compressed together."""
    src = tmp_path / "src" / "nested"
    src.mkdir(parents=True)
    expected = {f"ACC-{i}": body_views(30 + i) for i in range(5)}
    save(two_frame(expected["ACC-0"], accession="ACC-0", spacing=9.6), src / "two.dcm")
    four = expected["ACC-1"]
    save(
        nm_object(
            [four[0], four[1], four[0] // 3, four[1] // 3],
            detectors=[1, 2, 1, 2],
            windows=[1, 1, 2, 2],
            detector_views=["anterior", "posterior"],
            energy_windows=((126, 154), (100, 120)),
            accession="ACC-1",
            spacing=9.6,
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
            spacing=9.6,
        )
        save(single, src / f"view{index}.dcm")
    save(secondary_capture(expected["ACC-3"], accession="ACC-3"), src / "sc.dcm")
    compressed = two_frame(expected["ACC-4"], accession="ACC-4", spacing=9.6)
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
            "256x64",
            "--pixel-spacing-mm",
            "9.6",
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
    spot = two_frame(views(15))  # a thorax spot view of a study protocolled as whole body
    spot.ImageType, spot.BodyPartExamined = ["ORIGINAL", "PRIMARY", "STATIC", "EMISSION"], "WHOLEBODY"
    save(spot, src / "spot.dcm")
    untyped = two_frame(views(16), accession="ACC-3")  # no Image Type value 3: Body Part decides
    untyped.ImageType, untyped.BodyPartExamined = ["ORIGINAL", "PRIMARY"], "WHOLEBODY"
    save(untyped, src / "untyped.dcm")
    iodine = nm_object(
        views(14),
        detectors=[1, 2],
        windows=[1, 1],
        detector_views=["anterior", "posterior"],
        energy_windows=((330, 400),),
    )
    save(iodine, src / "iodine.dcm")
    rows = [["ACC-1", "normal", "0"], ["ACC-2", "normal", "0"], ["ACC-3", "normal", "0"]]
    labels = write_labels(tmp_path / "labels.csv", rows)
    report = import_dicom(src, tmp_path / "ds", labels_csv=labels, options=options())
    assert len(report.imported) == 2
    assert dict(report.skipped) == {
        "truncated.dcm": "undecodable",
        "notes.txt": "not-dicom",
        "ct.dcm": "not-nm",
        "static.dcm": "not-whole-body",
        "spot.dcm": "not-whole-body",
        "iodine.dcm": "no-photopeak",
    }
    saved = json.loads((tmp_path / "ds" / "import_report.json").read_text())
    assert {s["reason"] for s in saved["skipped"]} == set(dict(report.skipped).values())
    assert saved["reasons"]["no-photopeak"] == REASONS["no-photopeak"]
    assert not any("truncated" in s["file"] for s in saved["skipped"])  # file names are hashed
    assert not list((tmp_path / "ds" / "studies").glob(".*.tmp"))


def test_reports_hold_reason_codes_never_header_values(tmp_path):
    """Issue 15, defect 7: Modality, Photometric Interpretation, Transfer Syntax and comment text were
    copied into import_report.json and dataset.json; float pixels and DICOMDIR got misleading reasons."""
    src = tmp_path / "src"
    src.mkdir()
    save(two_frame(views(40)), src / "good.dcm")
    other = two_frame(views(41), accession="ACC-2")
    other.SOPClassUID, other.Modality = "1.2.840.10008.5.1.4.1.1.2", "CANARYMOD"
    save(other, src / "other.dcm")
    floats = two_frame(views(42), accession="ACC-3")
    del floats.PixelData
    floats.FloatPixelData = np.ones((2, *MATRIX), "<f4").tobytes()
    save(floats, src / "float.dcm")
    vectors = two_frame(views(43), accession="ACC-4")
    vectors.DetectorVector = [1, 2, 1]
    save(vectors, src / "vectors.dcm")
    odd = two_frame(views(44), accession="ACC-5")
    odd.PhotometricInterpretation = "CANARYPHOTO"
    save(odd, src / "odd.dcm")
    marked = two_frame(views(45), accession="ACC-6")
    marked.SyntheticData, marked.ImageComments = "YES", "SYNTHSCAN {CANARY comment"
    save(marked, src / "marked.dcm")
    from pydicom.fileset import FileSet

    indexed = two_frame(views(46))
    indexed.StudyDate, indexed.StudyTime, indexed.StudyID = "20240101", "120000", "1"
    indexed.SeriesNumber, indexed.InstanceNumber = 1, 1
    fileset = FileSet()
    fileset.add(indexed)
    fileset.write(tmp_path / "media")
    (src / "DICOMDIR").write_bytes((tmp_path / "media" / "DICOMDIR").read_bytes())
    labels = write_labels(tmp_path / "labels.csv", [[f"ACC-{i}", "normal", "0"] for i in range(1, 7)])

    report = import_dicom(
        src, tmp_path / "ds", labels_csv=labels, options=options(), trust_synthetic_marker=True
    )
    assert len(report.imported) == 1
    assert dict(report.skipped) == {
        "other.dcm": "not-nm",
        "float.dcm": "float-pixels",
        "vectors.dcm": "frame-vectors",
        "odd.dcm": "undecodable",
        "marked.dcm": "bad-marker",
        "DICOMDIR": "dicomdir",
    }
    for name in ("import_report.json", "dataset.json"):
        text = (tmp_path / "ds" / name).read_text().lower()
        assert "canary" not in text and "monochrome" not in text and "1.2.840.10008.1.2" not in text


def test_truncated_duplicate_of_a_good_file_is_not_already_there(tmp_path):
    """Issue 15, defect 7: a truncated copy of an imported file was counted "already there"."""
    src = tmp_path / "src"
    src.mkdir()
    save(two_frame(views(47)), src / "a_good.dcm")
    data = (src / "a_good.dcm").read_bytes()
    (src / "b_copy.dcm").write_bytes(data[: len(data) - 1000])
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    report = import_dicom(src, tmp_path / "ds", labels_csv=labels, options=options())
    assert len(report.imported) == 1 and report.already_present == []
    assert report.skipped == [("b_copy.dcm", "undecodable")]


def test_deeply_nested_sequence_skips_that_file_and_the_batch_goes_on(tmp_path):
    """Issue 15, defect 2: a sequence nested 1,000 deep raised RecursionError and aborted the batch."""
    src = tmp_path / "src"
    src.mkdir()
    save(deeply_nested(views(48), 1000, "AnatomicRegionSequence"), src / "deep.dcm")  # kept by Annex E
    save(two_frame(views(49), accession="ACC-2"), src / "good.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"], ["ACC-2", "normal", "0"]])
    result = cli_import(src, tmp_path / "ds", labels=labels)
    assert result.exit_code == 0, result.output
    assert "skipped deep.dcm: sequences nested deeper than 16" in result.output
    assert len(SynthDataset.open(tmp_path / "ds")) == 1
    saved = json.loads((tmp_path / "ds" / "import_report.json").read_text())
    assert [s["reason"] for s in saved["skipped"]] == ["too-deep"]
    # Nesting within the limit is walked (iteratively) and cleaned to the bottom.
    save(deeply_nested(views(50), 12, "AnatomicRegionSequence"), src / "nested.dcm")
    labels = write_labels(tmp_path / "labels.csv", [[f"ACC-{i}", "normal", "0"] for i in (1, 2)])
    report = import_dicom(src / "nested.dcm", tmp_path / "ds2", labels_csv=labels, options=options())
    (study,) = SynthDataset.open(tmp_path / "ds2").iter_studies()
    assert report.imported and "bottom" not in json.dumps(study.meta)


def test_study_without_label_is_skipped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    save(two_frame(views(14)), src / "a.dcm")
    save(two_frame(views(15), accession="ACC-9"), src / "b.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    report = import_dicom(src, tmp_path / "ds", labels_csv=labels, options=options())
    assert len(report.imported) == 1
    assert report.skipped == [("b.dcm", "no-label-row")]


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
    assert caught.value.report.skipped == [("x.txt", "not-dicom")]
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


def test_reimport_with_another_salt_is_refused(tmp_path):
    """Issue 19, item 4: another salt gave the same patients a second pseudonym in the same dataset."""
    save(two_frame(views(70)), tmp_path / "a.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    args = ["import-dicom", str(tmp_path / "a.dcm"), "--out", str(tmp_path / "ds"), "--labels", str(labels)]
    args += ["--matrix", "64x16", "--no-progress"]
    assert CliRunner().invoke(main, [*args, "--salt", "first"]).exit_code == 0
    result = CliRunner().invoke(main, [*args, "--salt", "second"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "another --salt" in result.output and len(result.output.strip().splitlines()) == 1
    assert "first" not in (tmp_path / "ds" / "dataset.json").read_text()  # a fingerprint, not the salt
    assert len(SynthDataset.open(tmp_path / "ds")) == 1
    assert CliRunner().invoke(main, [*args, "--salt", "first"]).exit_code == 0


def test_burned_in_annotation_flagged(tmp_path):
    ds = two_frame(views(19))
    ds.BurnedInAnnotation = "YES"
    save(ds, tmp_path / "a.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    report = import_dicom(tmp_path / "a.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    assert report.burned_in_annotation == report.imported
    dataset = SynthDataset.open(tmp_path / "ds")
    assert dataset.read(dataset.records[0]).meta["dicom"]["burned_in_annotation"] is True
    # a rerun (or a resumed import) keeps the finding in its report, not only in the study's meta
    again = import_dicom(tmp_path / "a.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    assert again.already_present == report.imported == again.burned_in_annotation
    saved = json.loads((tmp_path / "ds" / "import_report.json").read_text())
    assert saved["burned_in_annotation"] == report.imported


def test_a_rerun_with_corrected_labels_says_the_studies_keep_their_earlier_ones(tmp_path):
    save(two_frame(views(22)), tmp_path / "a.dcm")
    first = write_labels(tmp_path / "first.csv", [["ACC-1", "normal", "0"]])
    report = import_dicom(tmp_path / "a.dcm", tmp_path / "ds", labels_csv=first, options=options())
    resumed = import_dicom(tmp_path / "a.dcm", tmp_path / "ds", options=options())  # no labels needed
    assert resumed.already_present == report.imported and not resumed.kept_earlier and not resumed.skipped
    corrected = write_labels(tmp_path / "corrected.csv", [["ACC-1", "metastasis", "0"]])
    result = cli_import(tmp_path / "a.dcm", tmp_path / "ds", labels=corrected)
    assert result.exit_code == 0, result.output
    assert "1 study already there: their earlier label, grade or site is kept" in result.output
    assert [r.label for r in SynthDataset.open(tmp_path / "ds")] == ["normal"]
    saved = json.loads((tmp_path / "ds" / "import_report.json").read_text())
    assert saved["kept_earlier"] == report.imported


def test_a_screen_capture_beside_its_acquisition_is_skipped(tmp_path):
    """PACS keep the workstation's "save screen" beside the NM object: one study, counts once."""
    src = tmp_path / "src"
    src.mkdir()
    counts = body_views(20)
    nm = two_frame(counts, spacing=9.6)
    capture = secondary_capture(counts)
    capture.StudyInstanceUID = nm.StudyInstanceUID
    save(nm, src / "nm.dcm")
    save(capture, src / "screen.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    report = import_dicom(src, tmp_path / "ds", labels_csv=labels, options=options(**BODY))
    assert len(report.imported) == 1 and report.skipped == [("screen.dcm", "sc-duplicate")]
    ((got, record),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts) and record.get("pixel_values") == "counts"
    # the capture alone is the study when its NM object cannot be imported (here: lossy)
    nm.LossyImageCompression = "01"
    save(nm, src / "nm.dcm")
    report = import_dicom(src, tmp_path / "lossy", labels_csv=labels, options=options(**BODY))
    assert dict(report.skipped) == {"nm.dcm": "lossy"} and len(report.imported) == 1
    ((_, record),) = imported(tmp_path / "lossy").values()
    assert record.get("pixel_values") == "display"


def test_findings_of_every_import_into_a_dataset_stay_in_its_report(tmp_path):
    """Another source folder into the same dataset keeps the first folder's burned-in findings."""
    for name, accession in (("a", "ACC-1"), ("b", "ACC-2")):
        (tmp_path / name).mkdir()
        ds = two_frame(views(23 + len(accession) + int(accession[-1])), accession=accession)
        ds.BurnedInAnnotation = "YES" if name == "a" else "NO"
        save(ds, tmp_path / name / "x.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"], ["ACC-2", "normal", "0"]])
    first = import_dicom(tmp_path / "a", tmp_path / "ds", labels_csv=labels, options=options())
    import_dicom(tmp_path / "b", tmp_path / "ds", labels_csv=labels, options=options())
    saved = json.loads((tmp_path / "ds" / "import_report.json").read_text())
    assert saved["burned_in_annotation"] == first.imported and saved["view_rules"] == {"view-code": 4}


def test_a_single_valued_image_type_falls_back_to_body_part(tmp_path):
    ds = two_frame(views(26))
    ds.ImageType, ds.BodyPartExamined = "ORIGINAL", "WHOLEBODY"
    save(ds, tmp_path / "x.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    report = import_dicom(tmp_path / "x.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    assert len(report.imported) == 1


def test_a_data_set_without_part_10_preamble_and_file_meta_is_read(tmp_path):
    """Some archives export bare data sets; pydicom alone calls them "not DICOM"."""
    counts = views(21)
    ds = two_frame(counts)
    del ds.file_meta
    ds.save_as(tmp_path / "bare", implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert (tmp_path / "bare").read_bytes()[128:132] != b"DICM"
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    report = import_dicom(tmp_path / "bare", tmp_path / "ds", labels_csv=labels, options=options())
    assert len(report.imported) == 1
    ((got, _),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts)


TEXT_VRS = {"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"}
CANARY_UID = "1.2.826.0.1.3680043.10.999."
DATED = {
    "DA": "19230417",
    "DT": "19230417231759",
    "TM": "231759",
    "AS": "087Y",
    "DS": "87.6543",
    "IS": "-876543",
}
NEEDED = {"SOPClassUID", "Modality", "ImageType", "PhotometricInterpretation", "SpecificCharacterSet"}
"""Attributes the import itself must read to find a whole-body NM image: left as the object has them."""


def canaries():
    """(tag, VR, value) for every attribute that can hold text or an identifier, and dates of Annex E.

    Every data dictionary attribute of a text VR gets a unique ``CANARYnnnnn``, every UID one under
    :data:`CANARY_UID`, every URI a canary host, every sequence an item holding a canary code; the
    dates, ages and numbers of PS3.15 Table E.1-1 rows (dicom-anonymizer's copy) get values that
    cannot arise by chance.
    """
    found = []
    for index, (tag, (vr, _vm, _name, _retired, keyword)) in enumerate(sorted(DicomDictionary.items())):
        if tag >> 16 in (0x0000, 0x0002, 0xFFFE) or keyword in NEEDED:
            continue
        if vr in TEXT_VRS:
            found.append((tag, vr, f"CANARY{index:05d}"))
        elif vr == "UI":
            found.append((tag, vr, f"{CANARY_UID}{index}"))
        elif vr == "UR":
            found.append((tag, vr, f"http://canary{index}.invalid"))
        elif vr == "SQ":
            found.append((tag, vr, None))
    for row in dicom_anonymization_database_selector(ANNEX_E_TABLE)["ALL_TAGS"]:
        tag = (row[0] << 16) | row[1] if len(row) == 2 else None
        if tag and dictionary_has_tag(tag) and dictionary_VR(tag) in DATED:
            found.append((tag, dictionary_VR(tag), DATED[dictionary_VR(tag)]))
    return found


def plant(ds: Dataset, planted, private_group: int) -> None:
    """Fill every attribute ``ds`` lacks with its canary, and add a vendor's private block of canaries."""
    for tag, vr, value in planted:
        if tag in ds:
            continue
        if vr == "SQ":
            ds.add_new(
                tag, vr, Sequence([code(f"CANARYCV{tag & 0xFFFF:04X}", "CANARYSCHEME", "CANARY code")])
            )
        else:
            ds.add_new(tag, vr, value)
    block = ds.private_block(private_group, "CANARY VENDOR", create=True)
    block.add_new(0x01, "LO", "CANARY private patient object name")
    block.add_new(0x02, "UN", b"CANARY-UN-BYTES!")
    inner = Dataset()
    inner.PatientName = "CANARY^INNER"
    block.add_new(0x03, "SQ", Sequence([inner]))


def test_no_identifier_survives_import(tmp_path, caplog):
    """Canaries in every attribute that can hold text or an identifier, at sequence depths 0-3, in
    private elements and in file and folder names: none reaches any byte of the dataset."""
    counts = views(20)
    planted = canaries()
    assert len(planted) > 3000
    ds = two_frame(counts)
    detector = ds.DetectorInformationSequence[0]
    radiopharmaceutical = ds.RadiopharmaceuticalInformationSequence[0]
    radiopharmaceutical.RadionuclideCodeSequence = Sequence([code("72454006")])
    detector.ViewCodeSequence[0].ViewModifierCodeSequence = Sequence([Dataset()])
    levels = [
        ds,  # depth 0
        detector,  # 1
        radiopharmaceutical.RadionuclideCodeSequence[0],  # 2
        detector.ViewCodeSequence[0].ViewModifierCodeSequence[0],  # 3
    ]
    for depth, level in enumerate(levels):
        plant(level, planted, 0x0009 + 2 * depth)
    ds.AccessionNumber, ds.PatientID = "CANARYACCESSION", "CANARYPATIENTID"
    folder = tmp_path / "src" / "CANARY Doe^Jane"
    folder.mkdir(parents=True)
    save(ds, folder / "CANARY_Doe_Jane_bone_scan.dcm")
    (folder / "CANARY notes about Jane.txt").write_text("not an image\n")
    assert b"CANARY0" in (folder / "CANARY_Doe_Jane_bone_scan.dcm").read_bytes()
    labels = write_labels(tmp_path / "labels.csv", [["CANARYACCESSION", "metastasis", "0"]])

    caplog.set_level(logging.DEBUG)
    args = ["import-dicom", str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--labels", str(labels)]
    result = CliRunner().invoke(main, ["-v", *args, "--salt", "secret", "--matrix", "64x16", "--no-progress"])
    assert result.exit_code == 0, result.output
    ((got, record),) = imported(tmp_path / "ds").values()
    assert np.array_equal(got, counts) and (record.label, record.tracer) == ("metastasis", "HDP")

    forbidden = [b"canary", b"doe^jane", CANARY_UID.encode()]
    forbidden += [v.encode().lower() for _, vr, v in planted if vr in DATED]
    outputs = []
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
    assert len(outputs) >= 6
    for blob in outputs:
        lowered = blob.lower()
        leaked = [f for f in forbidden if f in lowered]
        assert not leaked, leaked[:5]
    # The console (and the log) name skipped files by their path, as documented; nothing else.
    for line in [*result.output.splitlines(), *caplog.messages]:
        assert "canary" not in line.lower() or line.lstrip().startswith("skipped "), line

    dataset = SynthDataset.open(tmp_path / "ds")
    (header,) = dataset.read(record).meta["dicom"]["headers"]
    assert header["00120062"]["Value"] == ["YES"]  # Patient Identity Removed
    assert header["00100020"]["Value"] == [record.patient_id]
    assert not any(int(tag[:4], 16) % 2 for tag in header)  # no private group left
    methods = [item["00080100"]["Value"][0] for item in header["00120064"]["Value"]]
    assert methods == ["113100", "113105"]  # Basic Profile, Clean Descriptors Option
    nuclide = header["00540016"]["Value"][0]["00540300"]["Value"][0]  # a known code keeps its meaning
    assert nuclide["00080104"]["Value"] == [known_code("72454006", "SCT").meaning]
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["provenance"]["deidentification"]["method_codes"] == ["113100", "113105"]


def test_clean_descriptors_replace_the_free_text_sites_type_in():
    """Issue 15, defect 8: text the Basic Profile keeps survived import verbatim."""
    ds = two_frame(views(71))
    ds.RadiopharmaceuticalInformationSequence[0].Radiopharmaceutical = "Tc99m HDP for Jane Doe"
    ds.EnergyWindowInformationSequence[0].EnergyWindowName = "Smith window"
    ds.DetectorInformationSequence[0].CollimatorGridName = "LEHR room 3 Jane"
    ds.ImageID, ds.SoftwareVersions = "JANE-DOE-1", "tech: jdoe"
    ds.DetectorInformationSequence[0].ViewCodeSequence[0].CodeMeaning = "posterior, Jane"
    ds.BurnedInAnnotation = "NO"
    Deidentifier("s")(ds, patient_id="p")
    texts: list[str] = []
    ds.walk(lambda _ds, element: texts.append(str(element.value)))
    assert not [t for t in texts if "jane" in t.lower() or "smith" in t.lower() or "jdoe" in t.lower()]
    assert ds.DetectorInformationSequence[0].ViewCodeSequence[0].CodeMeaning == "Posterior projection"
    assert ds.BurnedInAnnotation == "NO" and list(ds.ImageType)[2] == "WHOLE BODY"  # enumerated values kept


@pytest.mark.parametrize(
    "text, tracer",
    [
        ("Tc99mMDP", "MDP"),
        ("Tc-99m Medronate", "MDP"),
        ("Tc-99m Oxidronate", "HDP"),
        ("99mTc HMDP", "HDP"),
        ("TECEOS", "DPD"),
        ("Tc-99m 3,3-diphosphono-1,2-propanedicarboxylic acid", "DPD"),
        ("Tc-99m bone agent", ""),
    ],
)
def test_the_tracer_is_read_from_the_names_sites_write(tmp_path, text, tracer):
    ds = two_frame(views(27))
    ds.RadiopharmaceuticalInformationSequence[0].Radiopharmaceutical = text
    save(ds, tmp_path / "x.dcm")
    labels = write_labels(tmp_path / "labels.csv", [["ACC-1", "normal", "0"]])
    report = import_dicom(tmp_path / "x.dcm", tmp_path / "ds", labels_csv=labels, options=options())
    (record,) = SynthDataset.open(tmp_path / "ds")
    assert record.tracer == tracer
    assert report.no_tracer == ([] if tracer else report.imported)  # said, not silently empty

"""Whole-body NM DICOM objects laid out the way gamma-camera vendors write them, built with pydicom.

Shared by the import tests.  Pixel fixtures are either distinct Poisson fields (``views``: a swap or
a flip is caught exactly) or simulated bodies (``body_views``: for anything judged from the body,
such as orientation or a capture's two bodies).
"""

from __future__ import annotations

import csv
import sys

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from synthscan.simulator import load_site, simulate_study

MATRIX = (64, 16)
SPACING = 2.4
NM = "1.2.840.10008.5.1.4.1.1.20"
SC = "1.2.840.10008.5.1.4.1.1.7"
VIEW_CODE = {"anterior": "399321004", "posterior": "399001007"}
AS_ACQUIRED_ROW = {"anterior": [1, 0, 0], "posterior": [-1, 0, 0]}


def views(seed: int, shape=MATRIX, lam=20.0) -> np.ndarray:
    """Distinct anterior and posterior Poisson views (posterior brighter, so a swap is caught)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.poisson(lam, shape), rng.poisson(2 * lam, shape)]).astype(np.uint16)


def body_views(seed: int, matrix=(256, 64), spacing=9.6, site="centre_a") -> np.ndarray:
    """A simulated whole-body scan (anterior, posterior as acquired) at the given grid."""
    config = load_site(site, {"matrix": list(matrix), "pixel_spacing_mm": spacing})
    return simulate_study(config, seed).counts.astype(np.uint16)


STORAGE = {
    "as acquired": (lambda a: a, lambda r, c: (r, c)),
    "turned 90": (lambda a: np.rot90(a, 1), lambda r, c: (c, -r)),
    "turned 180": (lambda a: np.rot90(a, 2), lambda r, c: (-r, -c)),
    "turned 270": (lambda a: np.rot90(a, 3), lambda r, c: (-c, r)),
    "mirrored": (lambda a: a[:, ::-1], lambda r, c: (-r, c)),
    "mirrored upside down": (lambda a: a[::-1], lambda r, c: (r, -c)),
    "transposed": (lambda a: a.T, lambda r, c: (c, r)),
    "antitransposed": (lambda a: np.rot90(a, 2).T, lambda r, c: (-c, -r)),
}
"""The 8 ways a view can be stored: (pixels as acquired → as stored, (row, column) vectors likewise)."""


def stored_as(view: str, counts: np.ndarray, storage: str) -> tuple[np.ndarray, tuple[list, list]]:
    """A view's pixels as stored, and the Image Orientation (Patient) vectors that describe them."""
    pixels, vectors = STORAGE[storage]
    row, column = vectors(np.array(AS_ACQUIRED_ROW[view]), np.array([0, 0, -1]))
    return np.ascontiguousarray(pixels(counts)), (row.tolist(), column.tolist())


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
    orientation=None,
    with_view_codes=True,
    with_orientation=True,
) -> Dataset:
    """A vendor-style NM Image object: frames stacked, per-frame detector and energy-window vectors.

    Without view codes and orientation the Detector Information items carry only Collimator Type and
    an empty Image Orientation (Patient), as one widely installed dual-head camera writes them.
    """
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
        item.CollimatorType = "PARA"
        row = AS_ACQUIRED_ROW[view]
        column = [0, 0, -1]
        if view in stored_mirrored:
            row = [-row[0], 0, 0]
        vectors = (orientation or {}).get(view, (row, column))  # as the test stored the view; None: silent
        item.ImageOrientationPatient = [*vectors[0], *vectors[1]] if with_orientation and vectors else None
        if with_view_codes:
            item.ViewCodeSequence = Sequence([code(VIEW_CODE[view])])
        ds.DetectorInformationSequence.append(item)
    radiopharmaceutical = Dataset()
    radiopharmaceutical.Radiopharmaceutical = "Tc99m-HMDP"
    ds.RadiopharmaceuticalInformationSequence = Sequence([radiopharmaceutical])
    if spacing is not None:
        ds.PixelSpacing = [spacing, spacing]
    pixels(ds, frames)
    return ds


def pixels(ds: Dataset, frames: np.ndarray, photometric="MONOCHROME2") -> None:
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.Rows, ds.Columns = frames.shape[-2:]
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 0
    ds.PixelData = np.ascontiguousarray(frames).astype("<u2").tobytes()
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


def start_angle_object(counts, *, angles=(0, 180), private=None, **kw) -> Dataset:
    """2 frames (posterior first) whose detectors name their view only by Start Angle (PS3.3: 0° at
    the patient's back) and, if given, a vendor's private view names ``private[creator] = (group,
    offset, values, where)`` with ``where`` ``"items"`` (one per detector item) or ``"dataset"``."""
    ds = two_frame(counts, with_view_codes=False, with_orientation=False, **kw)
    for item, angle in zip(ds.DetectorInformationSequence, angles, strict=True):
        if angle is not None:
            item.StartAngle = angle
    for creator, (group, offset, values, where) in (private or {}).items():
        if where == "items":
            for item, value in zip(ds.DetectorInformationSequence, values, strict=True):
                item.private_block(group, creator, create=True).add_new(offset, "LO", value)
        else:
            ds.private_block(group, creator, create=True).add_new(offset, "LO", list(values))
    return ds


def secondary_capture(counts, accession="ACC-1", photometric="MONOCHROME2", side_by_side=True) -> Dataset:
    """A whole-body screen capture: ANT | POST side by side (or one view alone)."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = SC, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = "NM", "PAT-1", "Doe^Jane"
    ds.AccessionNumber, ds.ConversionType = accession, "WSD"
    image = np.concatenate([counts[0], counts[1]], axis=1) if side_by_side else counts[0]
    if photometric == "MONOCHROME1":
        image = 65535 - image
    pixels(ds, image[None], photometric=photometric)
    return ds


def deeply_nested(counts, depth: int, keyword: str = "ContentSequence") -> Dataset:
    """A valid 2-frame object carrying a sequence (``keyword``) nested ``depth`` items deep."""
    ds = two_frame(counts)
    inner = Dataset()
    inner.CodeMeaning = "bottom"
    for _ in range(depth):
        outer = Dataset()
        setattr(outer, keyword, Sequence([inner]))
        inner = outer
    setattr(ds, keyword, getattr(inner, keyword))
    return ds


def save(ds: Dataset, path) -> None:
    """Write a Part 10 file (pydicom's writer recurses into sequences: allow deep fixtures)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        ds.save_as(path, enforce_file_format=True)
    finally:
        sys.setrecursionlimit(limit)


def write_labels(path, rows, key="AccessionNumber"):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([key, "label", "perugini_grade"])
        writer.writerows(rows)
    return path

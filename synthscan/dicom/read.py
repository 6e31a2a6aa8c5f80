"""Import whole-body planar bone scans from DICOM as vendors write them, de-identified on the way in.

Layouts understood (views are always found from the header, never from frame order alone):

* **NM multi-frame** (2 frames, or 4 = 2 energy windows × 2 detectors, or any such product): frame
  *f* comes from detector ``DetectorVector[f]`` and energy window ``EnergyWindowVector[f]``.  Of
  several energy windows the one whose range holds the 140.5 keV photopeak is used.
* **One NM object per view**: objects holding one view are paired within their series, then, for
  views left over, within their study; exactly one anterior and one posterior must meet.
* **Whole-body Secondary Capture** (Modality NM): one grey frame with both bodies side by side,
  anterior left, posterior right (the vendors' screen-capture layout).  The pixels must show two
  bodies separated at the midline; a capture of one body is skipped, never split in two.  Its
  values are display values, not counts; ``meta`` and the manifest's ``pixel_values`` say so.  A
  capture of a study that also holds an NM whole-body object (the "save screen" beside the
  acquisition, as PACS keep them) is skipped: the study's counts come from the NM object.
* Only whole-body NM objects: Image Type value 3 ``WHOLE BODY`` (``STATIC`` spot views, ``TOMO``
  and the like are skipped); where Image Type has no value 3, Body Part Examined ``WHOLEBODY``.
* Files without the PS3.10 preamble and file meta (raw data sets, as some archives export them)
  are read when they hold an SOP Class and pixel data; their transfer syntax is pydicom's guess of
  an uncompressed encoding.
* Compressed transfer syntaxes (JPEG 2000, JPEG lossless, JPEG-LS, RLE) decode through pydicom's
  pixel-data plugins.

**Views and their head end.**  Which view a detector shows, whether it is stored mirrored and where
its head is come from the header by the rules of :mod:`synthscan.dicom.views` (the import report
counts which rule decided); where the header does not place the head, the body's counts do
(:mod:`synthscan.dicom.body`).

**Pixel values.**  Only exact counts are imported by default: MONOCHROME1 (inverted display
values, which NM does not allow) and lossy compression (Lossy Image Compression ``01``, or a
transfer syntax that is not lossless) are skipped unless ``allow_lossy``, and then recorded per
study (``meta["dicom"]["pixel_values"]`` and the manifest's ``pixel_values`` column).

**Grid.**  Each view goes onto the dataset grid (matrix, pixel spacing) by :func:`to_grid`, which
keeps the total count exactly: the view is first resampled to the dataset's pixel size
(:func:`~synthscan.importers.common.resample_sum`, area-weighted), then placed head-first at the
top row and centred left-right, zero-padded.  A view larger than the grid at that pixel size is
shrunk uniformly (same factor in both directions) until it fits, rather than cropped, so no count
is lost; its effective pixel size is recorded.  Without Pixel Spacing the view is stretched to the
grid.  A view already on the grid is copied bit for bit.

**Labels** come from a CSV keyed by a DICOM identifier read *before* de-identification
(``AccessionNumber`` or ``StudyInstanceUID``), columns ``<key>,label[,perugini_grade]``; the
dataset keeps only pseudonyms.

**Real stays real.**  Every study read from DICOM is real patient data (``source`` real), whatever
its header says: Synthetic Data YES and a ``SYNTHSCAN`` Image Comment are text anyone can write.
Only with ``trust_synthetic_marker`` (recorded in ``dataset.json``) do objects marked synthetic
that carry synthscan's condition (see :mod:`synthscan.dicom.write`) bring their own label, grade,
source and seed; even then they are never exported again (see
:func:`synthscan.dicom.write.export_dataset`).

**Failures.**  An object that cannot be imported is skipped with one of the fixed reason codes of
:data:`~synthscan.dicom.reasons.REASONS`; the import stops with an error only when nothing at all
could be imported.
Reports never hold a header value: skipped files are named by a salted hash of their path (a path
may hold a patient's name) and reasons are codes; the command line prints the paths themselves.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from tqdm import tqdm

from synthscan.atomic import atomic_write_text
from synthscan.dataset import INFO, DatasetError, DatasetWriter
from synthscan.dataset import Dataset as SynthDataset
from synthscan.dicom import codes
from synthscan.dicom.body import head_up, portrait, two_bodies
from synthscan.dicom.deidentify import (
    Deidentifier,
    TooDeep,
    check_depth,
    header_json,
    profile_description,
)
from synthscan.dicom.reasons import REASONS, Unusable
from synthscan.dicom.views import detector_view
from synthscan.dicom.write import COMMENT_PREFIX, EXPORTABLE_SOURCES
from synthscan.importers.common import ImportOptions, ImportReport, check_salt, pseudonym, resample_sum
from synthscan.labels import BURDENS, UNKNOWN, VIEWS, check_grade, check_label

log = logging.getLogger(__name__)

SOURCE_NAME = "dicom"
IMPORT_REPORT = "import_report.json"
LABEL_KEYS: tuple[str, ...] = ("AccessionNumber", "StudyInstanceUID")
PHOTOPEAK_KEV = 140.5


_LOSSLESS_SYNTAXES = frozenset(
    {
        *uid.UncompressedTransferSyntaxes,
        uid.RLELossless,
        uid.JPEGLossless,
        uid.JPEGLosslessSV1,
        uid.JPEGLSLossless,
        uid.JPEG2000Lossless,
        uid.JPEG2000MCLossless,
        uid.HTJ2KLossless,
        uid.HTJ2KLosslessRPCL,
    }
)


class DicomImportError(DatasetError):
    """Nothing could be imported; ``report`` lists every skipped object and why."""

    def __init__(self, message: str, report: DicomImportReport):
        super().__init__(message)
        self.report = report


@dataclass
class DicomImportReport(ImportReport):
    """:class:`ImportReport` (``skipped`` holds (path relative to SRC, reason code)) plus DICOM findings."""

    burned_in_annotation: list[str] = field(default_factory=list)
    """Study ids whose pixels may show text: Burned In Annotation YES, or a capture that does not say NO."""
    not_exact_counts: list[str] = field(default_factory=list)
    """Study ids imported with ``allow_lossy`` whose pixels are not exact counts."""
    no_tracer: list[str] = field(default_factory=list)
    """Study ids imported without a tracer: no Radiopharmaceutical code or name known, no ``--tracer``."""
    view_rules: Counter = field(default_factory=Counter)
    """How many views each rule decided (:mod:`synthscan.dicom.views`, or ``secondary-capture``)."""
    deidentification: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ViewRef:
    """Where one view lives: a file, and a frame (multi-frame) or a half (Secondary Capture)."""

    path: Path
    frame: int | None = None
    half: int | None = None
    detector: int | None = None
    energy_window: int | None = None
    mirrored: bool | None = None
    """True/False when the header tells whether the view is stored mirrored; None when it does not."""
    turns: int | None = None
    """Quarter turns (:func:`numpy.rot90`) that put the head at the top, when the header tells."""
    rule: str = "view-code"
    """The rule that found the view (:mod:`synthscan.dicom.views`, or ``secondary-capture``)."""


@dataclass
class SourceObject:
    """Header facts of one readable object (pass 1), enough to group objects into scans."""

    path: Path
    layout: str
    study_uid: str
    series_uid: str
    instance_uid: str
    views: dict[str, ViewRef]


@dataclass
class Scan:
    """One whole-body acquisition: an anterior and a posterior view, from one or two objects."""

    layout: str
    views: dict[str, ViewRef]
    objects: list[SourceObject]


# -- pass 1: classify headers -------------------------------------------------------------------


def _dcmread(path: Path, **kwargs: Any) -> Dataset:
    """A PS3.10 file, or a raw data set without preamble and file meta that holds an image (module doc)."""
    try:
        return pydicom.dcmread(path, **kwargs)
    except InvalidDicomError:
        ds = pydicom.dcmread(path, force=True, **kwargs)
    if "SOPClassUID" not in ds or "PixelData" not in ds:
        raise InvalidDicomError(f"{path} is not DICOM")
    ds.file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            uid.ImplicitVRLittleEndian
            if implicit
            else uid.ExplicitVRLittleEndian
            if little
            else uid.ExplicitVRBigEndian
        )
    return ds


def _read_header(path: Path) -> Dataset:
    try:
        ds = _dcmread(path, defer_size="64 KB")
    except InvalidDicomError:
        raise Unusable("not-dicom") from None
    except Exception:  # pydicom raises many types on corrupt input; none may stop the import
        raise Unusable("unreadable") from None
    meta_class = getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID")
    if uid.MediaStorageDirectoryStorage in (meta_class, ds.get("SOPClassUID")):
        raise Unusable("dicomdir")
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise Unusable("float-pixels")
    if "PixelData" not in ds:
        raise Unusable("no-pixels")
    try:
        check_depth(ds)
    except TooDeep:
        raise Unusable("too-deep") from None
    return ds


def is_marked_synthetic(ds: Dataset) -> bool:
    """Synthetic Data YES, or a Contributing Equipment item whose purpose is Synthesizing Equipment."""
    if str(ds.get("SyntheticData", "")).upper() == "YES":
        return True
    return any(
        codes.same_code(purpose, codes.SYNTHESIZING_EQUIPMENT)
        for item in ds.get("ContributingEquipmentSequence", [])
        for purpose in item.get("PurposeOfReferenceCodeSequence", [])
    )


def synthetic_provenance(ds: Dataset) -> dict[str, Any] | None:
    """synthscan's condition and provenance from an object marked synthetic (see :mod:`.write`).

    ``None`` for objects not marked synthetic or without synthscan's Image Comments; raises
    :class:`~synthscan.dicom.reasons.Unusable` when the comment is there but malformed.  Only a
    trusting import uses it.
    """
    comment = str(ds.get("ImageComments", ""))
    if not is_marked_synthetic(ds) or not comment.startswith(COMMENT_PREFIX):
        return None
    try:
        payload = json.loads(comment[len(COMMENT_PREFIX) :])
        check_label(payload["label"])
        check_grade(payload["label"], payload.get("perugini_grade"))
        if payload.get("source") not in EXPORTABLE_SOURCES:
            raise ValueError("unknown source")
        if payload.get("burden") not in (None, *BURDENS, UNKNOWN):
            raise ValueError("unknown burden")
    except (ValueError, KeyError, TypeError):
        raise Unusable("bad-marker") from None
    return payload


def _photopeak_windows(ds: Dataset) -> set[int]:
    """1-based energy windows known to hold the 140.5 keV 99mTc photopeak.

    A single window without a stated range is taken on trust; a stated range must hold 140.5 keV.
    """
    windows = list(ds.get("EnergyWindowInformationSequence", []))
    peak, stated = set(), set()
    for index, window in enumerate(windows, start=1):
        for window_range in window.get("EnergyWindowRangeSequence", []):
            try:
                lower = float(window_range.EnergyWindowLowerLimit)
                upper = float(window_range.EnergyWindowUpperLimit)
            except (AttributeError, TypeError, ValueError):
                continue
            stated.add(index)
            if lower <= PHOTOPEAK_KEV <= upper:
                peak.add(index)
    count = int(ds.get("NumberOfEnergyWindows") or len(windows) or 1)
    if count == 1 and not stated:
        return {1}
    return peak


def _vector(ds: Dataset, keyword: str, frames: int) -> list[int]:
    values = ds.get(keyword)
    if values is None:
        return [1] * frames
    values = [int(v) for v in (values if isinstance(values, MultiValue | list | tuple) else [values])]
    if len(values) != frames:
        raise Unusable("frame-vectors")
    return values


def _nm_views(ds: Dataset, path: Path) -> dict[str, ViewRef]:
    values = ds.get("ImageType", [])
    image_type = [str(v).strip().upper() for v in ([values] if isinstance(values, str) else values)]
    if "WHOLE BODY" not in image_type:
        flavour = image_type[2] if len(image_type) > 2 else ""  # STATIC, TOMO, ...: another acquisition
        if flavour or str(ds.get("BodyPartExamined", "")).upper() != "WHOLEBODY":
            raise Unusable("not-whole-body")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    detectors = _vector(ds, "DetectorVector", frames)
    windows = _vector(ds, "EnergyWindowVector", frames)
    peak = _photopeak_windows(ds)
    if not peak:
        raise Unusable("no-photopeak")
    count = len(ds.get("DetectorInformationSequence", []))
    found: dict[str, list[ViewRef]] = defaultdict(list)
    for frame, (detector, window) in enumerate(zip(detectors, windows, strict=True)):
        if window not in peak:
            continue
        if not 1 <= detector <= count:
            raise Unusable("no-detector-item")
        view, mirrored, turns, rule = detector_view(ds, detector, count)
        found[view].append(
            ViewRef(path, frame if frames > 1 else None, None, detector, window, mirrored, turns, rule)
        )
    views = {}
    for view, refs in found.items():
        if len(refs) > 1:
            raise Unusable("same-view")
        views[view] = refs[0]
    if not views:
        raise Unusable("no-photopeak")
    return views


def _sc_views(ds: Dataset, path: Path) -> dict[str, ViewRef]:
    if str(ds.get("Modality", "")).upper() != "NM":
        raise Unusable("sc-not-nm")
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise Unusable("sc-multi-frame")
    if int(ds.Columns) % 2:
        raise Unusable("sc-one-body")
    return {
        "anterior": ViewRef(path, half=0, rule="secondary-capture"),
        "posterior": ViewRef(path, half=1, rule="secondary-capture"),
    }


def classify(path: Path) -> SourceObject:
    """Pass 1: read a header and say where its views are.

    Raises :class:`~synthscan.dicom.reasons.Unusable` with the reason.
    """
    ds = _read_header(path)
    try:
        return _classify(ds, path)
    except Unusable:
        raise
    except (AttributeError, KeyError, TypeError, ValueError, IndexError):
        raise Unusable("malformed") from None


def _classify(ds: Dataset, path: Path) -> SourceObject:
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class == codes.NM_IMAGE_STORAGE:
        views = _nm_views(ds, path)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        layout = f"nm-{frames}-frame" if len(views) == len(VIEWS) else "nm-per-view"
    elif sop_class in codes.SECONDARY_CAPTURE_STORAGE:
        layout, views = "secondary-capture", _sc_views(ds, path)
    else:
        raise Unusable("not-nm")
    return SourceObject(
        path=path,
        layout=layout,
        study_uid=str(ds.get("StudyInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        instance_uid=str(ds.get("SOPInstanceUID", "")),
        views=views,
    )


def group_scans(objects: list[SourceObject]) -> tuple[list[Scan], list[tuple[SourceObject, str]]]:
    """Whole scans: complete objects alone; single views paired in their series, then their study."""
    scans: list[Scan] = []
    leftovers: list[SourceObject] = []
    for obj in objects:
        if set(obj.views) == set(VIEWS):
            scans.append(Scan(obj.layout, dict(obj.views), [obj]))
        else:
            leftovers.append(obj)
    unmatched: list[tuple[SourceObject, str]] = []

    def pair(pool: list[SourceObject]) -> list[SourceObject]:
        by_view = {view: [o for o in pool if view in o.views] for view in VIEWS}
        if all(len(found) == 1 for found in by_view.values()):
            objs = [by_view[view][0] for view in VIEWS]
            scans.append(Scan("nm-per-view", {v: o.views[v] for v, o in zip(VIEWS, objs, strict=True)}, objs))
            return []
        return pool

    by_series: dict[tuple[str, str], list[SourceObject]] = defaultdict(list)
    for obj in leftovers:
        by_series[(obj.study_uid, obj.series_uid)].append(obj)
    by_study: dict[str, list[SourceObject]] = defaultdict(list)
    for (study, _series), pool in by_series.items():
        by_study[study].extend(pair(pool))
    for pool in by_study.values():
        for obj in pair(pool):
            views = {view: sum(view in o.views for o in pool) for view in VIEWS}
            missing = [view for view, n in views.items() if not n]
            unmatched.append((obj, f"missing-{missing[0]}" if missing else "ambiguous-pair"))
    return scans, unmatched


# -- pass 2: pixels, orientation, grid, de-identification ---------------------------------------


def to_grid(
    view: np.ndarray,
    spacing_mm: tuple[float, float] | None,
    matrix: tuple[int, int],
    target_mm: float,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Put a view on the dataset grid keeping its total count exactly (method in the module doc)."""
    rows, columns = matrix
    if spacing_mm is None:
        return resample_sum(view, matrix), {"grid": "stretched to the grid (no Pixel Spacing)"}
    physical = (view.shape[0] * spacing_mm[0] / target_mm, view.shape[1] * spacing_mm[1] / target_mm)
    shrink = max(physical[0] / rows, physical[1] / columns, 1.0)
    fit = (
        min(rows, max(1, round(physical[0] / shrink))),
        min(columns, max(1, round(physical[1] / shrink))),
    )
    placed = resample_sum(view, fit)
    grid = np.zeros(matrix, dtype=np.uint32 if placed.dtype.itemsize > 2 else np.uint16)
    left = (columns - fit[1]) // 2
    grid[: fit[0], left : left + fit[1]] = placed
    info: dict[str, Any] = {
        "grid": "resampled to the dataset pixel size, top-aligned, centred"
        if fit != view.shape
        else "as stored",
        "effective_pixel_spacing_mm": [
            round(view.shape[0] * spacing_mm[0] / fit[0], 4),
            round(view.shape[1] * spacing_mm[1] / fit[1], 4),
        ],
    }
    if shrink > 1.0:
        info["shrunk_to_fit"] = round(shrink, 4)
    return grid, info


def _spacing(ds: Dataset) -> tuple[float, float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing"):
        values = ds.get(keyword)
        if values is not None and len(values) == 2:
            try:
                spacing = (float(values[0]), float(values[1]))
            except (TypeError, ValueError):
                continue
            if all(math.isfinite(s) and s > 0 for s in spacing):
                return spacing
    return None


def pixel_fidelity(ds: Dataset) -> list[str]:
    """Why the stored values are not exact counts (empty when they are): ``monochrome1``, ``lossy``."""
    found = []
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        found.append("monochrome1")
    syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    if str(ds.get("LossyImageCompression", "")) == "01" or (syntax and syntax not in _LOSSLESS_SYNTAXES):
        found.append("lossy")
    return found


def _frames(ds: Dataset) -> np.ndarray:
    """Decoded pixels as (frames, rows, columns) of non-negative integers."""
    try:
        pixels = ds.pixel_array
    except Exception:  # pixel plugins raise many types; any failure means "cannot decode"
        raise Unusable("undecodable") from None
    samples = int(ds.get("SamplesPerPixel", 1))
    if samples == 3:
        if not (
            np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2])
        ):
            raise Unusable("colour")
        pixels = pixels[..., 0]
    elif samples != 1:
        raise Unusable("samples")
    if pixels.dtype.kind not in "ui":
        raise Unusable("not-integer")
    if pixels.dtype.kind == "i":
        if pixels.size and pixels.min() < 0:
            raise Unusable("negative")
        pixels = pixels.astype(np.uint32)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        pixels = (2 ** int(ds.BitsStored) - 1) - pixels
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return pixels.reshape(frames, *pixels.shape[-2:])


def _view_pixels(frames: np.ndarray, ref: ViewRef) -> np.ndarray:
    if ref.half is not None:
        half = frames.shape[2] // 2
        return frames[0, :, ref.half * half : (ref.half + 1) * half]
    return frames[ref.frame or 0]


def _tracer(ds: Dataset) -> str | None:
    for item in ds.get("RadiopharmaceuticalInformationSequence", []):
        tracer = codes.lookup(codes.RADIOPHARMACEUTICALS, item.get("RadiopharmaceuticalCodeSequence", []))
        tracer = tracer or codes.tracer_of_text(str(item.get("Radiopharmaceutical", "")))
        if tracer:
            return tracer
    return None


def _burned_in(ds: Dataset) -> bool:
    """Pixels may show text: Burned In Annotation YES, or a capture that does not declare NO."""
    declared = str(ds.get("BurnedInAnnotation", "")).upper()
    capture = str(ds.get("SOPClassUID", "")) in codes.SECONDARY_CAPTURE_STORAGE
    return declared == "YES" or (capture and declared != "NO")


@dataclass
class Labels:
    """The labels CSV: identifier value → (label, Perugini grade)."""

    key: str
    rows: dict[str, tuple[str, int | None]]

    @classmethod
    def read(cls, path: str | Path, key: str) -> Labels:
        if key not in LABEL_KEYS:
            raise DatasetError(f"unknown label key {key!r}; valid keys: {', '.join(LABEL_KEYS)}")
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            if key not in columns or "label" not in columns:
                raise DatasetError(
                    f"{path}: needs columns {key!r} and 'label' (optional 'perugini_grade'); found {columns}"
                )
            rows: dict[str, tuple[str, int | None]] = {}
            for line, row in enumerate(reader, start=2):
                value = (row.get(key) or "").strip()
                grade_text = (row.get("perugini_grade") or "").strip()
                try:
                    label = check_label((row.get("label") or "").strip())
                    grade = int(grade_text) if grade_text else None
                    check_grade(label, grade)
                except ValueError as error:
                    raise DatasetError(f"{path} line {line}: {error}") from None
                if not value:
                    raise DatasetError(f"{path} line {line}: empty {key}")
                if value in rows and rows[value] != (label, grade):
                    raise DatasetError(f"{path} line {line}: {key} listed twice with different labels")
                rows[value] = (label, grade)
        return cls(key, rows)

    def lookup(self, ds: Dataset) -> tuple[str, int | None] | None:
        return self.rows.get(str(ds.get(self.key, "")).strip())


def _files(src: Path) -> Iterator[Path]:
    if src.is_file():
        yield src
        return
    for path in sorted(src.rglob("*")):
        if path.is_file():
            yield path


def _relative(path: Path, src: Path) -> str:
    return path.name if src.is_file() else str(path.relative_to(src))


@dataclass(frozen=True)
class _Settings:
    """What one import run needs besides the scans (keeps :func:`_import_scan`'s signature short)."""

    options: ImportOptions
    labels: Labels | None
    deidentify: Deidentifier
    trust_synthetic_marker: bool
    allow_lossy: bool


def _open_dataset(out: Path, options: ImportOptions, trust_synthetic_marker: bool) -> SynthDataset:
    """Create the dataset or reopen one made by import-dicom with the same salt, pixel size and trust."""
    dataset = SynthDataset.create(
        out,
        matrix=options.matrix,
        pixel_spacing_mm=options.pixel_spacing_mm,
        provenance={"source": SOURCE_NAME, "trust_synthetic_marker": trust_synthetic_marker},
        exist_ok=True,
    )
    provenance = dataset.info.provenance
    if provenance.get("source") != SOURCE_NAME:
        raise DatasetError(
            f"{out} holds a dataset that `synthscan import-dicom` did not make; import into a new folder"
        )
    if bool(provenance.get("trust_synthetic_marker", False)) != trust_synthetic_marker:
        flag = "with" if provenance.get("trust_synthetic_marker") else "without"
        raise DatasetError(
            f"{out} was imported {flag} --trust-synthetic-marker; rerun the same way or use a new folder"
        )
    check_salt(dataset, options.salt)
    return dataset


def import_dicom(
    src: str | Path,
    out: str | Path,
    *,
    labels_csv: str | Path | None = None,
    label_key: str = "AccessionNumber",
    options: ImportOptions | None = None,
    trust_synthetic_marker: bool = False,
    allow_lossy: bool = False,
) -> DicomImportReport:
    """Import the whole-body NM scans under ``src`` into the dataset at ``out`` (new or resumed).

    Every header is de-identified (:mod:`.deidentify`) before it is stored; ids are pseudonyms
    salted with ``options.salt``, and a dataset refuses another salt.  ``trust_synthetic_marker``
    and ``allow_lossy`` are explained in the module doc.  Returns the report; raises
    :class:`DicomImportError` (carrying the report) when nothing could be imported.
    """
    options = options or ImportOptions()
    src, out = Path(src), Path(out)
    if not src.exists():
        raise DatasetError(f"{src} does not exist")
    labels = Labels.read(labels_csv, label_key) if labels_csv else None
    settings = _Settings(options, labels, Deidentifier(options.salt), trust_synthetic_marker, allow_lossy)
    report = DicomImportReport(deidentification=profile_description(bool(options.salt)))

    objects: list[SourceObject] = []
    for path in tqdm(list(_files(src)), desc="read headers", disable=not options.progress):
        try:
            objects.append(classify(path))
        except Unusable as error:
            report.skipped.append((_relative(path, src), error.code))
    scans, unmatched = group_scans(objects)
    report.skipped += [(_relative(obj.path, src), code) for obj, code in unmatched]

    created = not (out / INFO).exists()
    if not scans:
        raise DicomImportError(_nothing_message(report), report)
    dataset = _open_dataset(out, options, trust_synthetic_marker)
    scans.sort(key=lambda scan: scan.layout == "secondary-capture")  # a capture beside counts: a duplicate
    with_counts: set[str] = set()  # studies whose NM object is imported or already there
    try:
        with dataset.writer() as writer:
            for scan in tqdm(scans, desc="import dicom", disable=not options.progress):
                study = scan.objects[0].study_uid
                try:
                    if scan.layout == "secondary-capture" and study in with_counts:
                        raise Unusable("sc-duplicate")
                    _import_scan(scan, dataset, writer, settings, report)
                except Unusable as error:
                    code = error.code
                except TooDeep:
                    code = "too-deep"
                except DatasetError:
                    code = "not-storable"
                except (AttributeError, KeyError, TypeError, ValueError, IndexError):
                    code = "malformed"  # the exception's text may quote a header value: not kept
                else:
                    if scan.layout != "secondary-capture" and study:
                        with_counts.add(study)
                    continue
                report.skipped += [(_relative(obj.path, src), code) for obj in scan.objects]
    except BaseException:
        if created and not len(dataset):
            shutil.rmtree(out, ignore_errors=True)
        raise
    _save_report(dataset, report, settings)
    if not report.imported and not report.already_present:
        if created:
            shutil.rmtree(out)
        raise DicomImportError(_nothing_message(report), report)
    for path, code in report.skipped:
        log.debug("skipped %s: %s", path, REASONS[code])
    return report


def _nothing_message(report: DicomImportReport) -> str:
    reasons = sorted({REASONS[code] for _, code in report.skipped}) or ["SRC holds no files"]
    return (
        f"no whole-body scan could be imported ({len(report.skipped)} objects skipped: {'; '.join(reasons)})"
    )


def _import_scan(
    scan: Scan,
    dataset: SynthDataset,
    writer: DatasetWriter,
    settings: _Settings,
    report: DicomImportReport,
) -> None:
    options = settings.options
    try:
        datasets = {obj.path: _dcmread(obj.path) for obj in scan.objects}
    except Exception:  # as in pass 1: any failure to read means "skip this scan"
        raise Unusable("unreadable") from None
    fidelity = sorted({reason for ds in datasets.values() for reason in pixel_fidelity(ds)})
    frames = {path: _frames(ds) for path, ds in datasets.items()}  # decoded before "already there"
    if scan.layout == "secondary-capture" and not two_bodies(frames[scan.objects[0].path][0]):
        raise Unusable("sc-one-body")
    uids = {obj.path: obj.instance_uid or obj.path.name for obj in scan.objects}
    key = "\x00".join(f"{uids[ref.path]}:{ref.frame}:{ref.half}" for ref in scan.views.values())
    study_id = pseudonym(SOURCE_NAME, f"scan\x00{key}", options.salt)
    burned_in = any(_burned_in(ds) for ds in datasets.values())
    first = datasets[scan.objects[0].path]
    provenance = synthetic_provenance(first) if settings.trust_synthetic_marker else None
    found = settings.labels.lookup(first) if settings.labels else None
    if provenance is not None:
        label, grade = provenance["label"], provenance.get("perugini_grade")
    else:
        label, grade = found or (None, None)
    if study_id in dataset:  # a resumed import needs no labels; its findings stay in the report
        record = dataset.record(study_id)
        given = (label, grade) if label is not None else (record.label, record.perugini_grade)
        report.note_present(dataset, study_id, *given, options.site)
        _note_findings(report, study_id, fidelity, burned_in)
        return
    if fidelity and not settings.allow_lossy:
        raise Unusable(fidelity[0])
    if label is None:
        raise Unusable("no-labels" if settings.labels is None else "no-label-row")

    stored = {name: _view_pixels(frames[ref.path], ref) for name, ref in scan.views.items()}
    head_ends = head_up({name: ref.turns for name, ref in scan.views.items()}, stored)
    views, view_meta = [], {}
    for name in VIEWS:
        ref, pixels = scan.views[name], stored[name]
        turns, head_end = head_ends[name]
        if turns is None and not portrait(pixels):
            raise Unusable("head-feet")
        pixels = np.rot90(pixels, turns or 0)
        mirrored = (
            ref.mirrored if ref.mirrored is not None else (name == "posterior" and options.posterior_mirrored)
        )
        if mirrored:  # across the upright body's midline: left and right, never head and feet
            pixels = pixels[:, ::-1]
        spacing = _spacing(datasets[ref.path])
        if spacing and (turns or 0) % 2:
            spacing = spacing[::-1]
        grid, grid_info = to_grid(pixels, spacing, options.matrix, options.pixel_spacing_mm)
        views.append(grid)
        view_meta[name] = {
            "rule": ref.rule,
            "source_shape": list(pixels.shape),
            "source_pixel_spacing_mm": list(spacing) if spacing else None,
            "frame": ref.frame,
            "half": ref.half,
            "detector": ref.detector,
            "energy_window": ref.energy_window,
            "flipped_to_as_acquired": bool(mirrored),
            "turned_deg": 90 * (turns or 0),
            "head_end": head_end,
            **grid_info,
        }
    counts = np.stack(views)

    patient_key = "\x00".join(str(first.get(k, "")) for k in ("PatientID", "IssuerOfPatientID"))
    if not str(first.get("PatientID", "")).strip():
        patient_key = f"study\x00{first.get('StudyInstanceUID', '')}"
    patient_id = pseudonym(SOURCE_NAME, patient_key, options.salt)
    marked = is_marked_synthetic(first)
    source = provenance["source"] if provenance else "real"
    tracer = (provenance or {}).get("tracer") or _tracer(first) or options.tracer
    pixel_values = "lossy" if fidelity else "counts"
    if scan.layout == "secondary-capture":
        pixel_values = "display"
    headers = [header_json(settings.deidentify(ds, patient_id=patient_id)) for ds in datasets.values()]
    extra = {
        k: provenance[k]
        for k in ("model_name", "model_sha256", "steps", "guidance", "burden")
        if provenance and provenance.get(k) is not None
    }
    writer.add(
        counts,
        study_id=study_id,
        patient_id=patient_id,
        label=label,
        perugini_grade=grade,
        source=source,
        site=options.site,
        tracer=tracer or "",
        seed=(provenance or {}).get("seed"),
        meta={
            "dicom": {
                "layout": scan.layout,
                "marked_synthetic": marked,
                "trusted_synthetic_marker": provenance is not None,
                "burned_in_annotation": burned_in,
                "pixel_values": pixel_values,
                "not_exact_counts": fidelity,
                "views": view_meta,
                "headers": headers,
            }
        },
        extra={**extra, "pixel_values": pixel_values},
    )
    report.imported.append(study_id)
    report.view_rules.update(ref.rule for ref in scan.views.values())
    if not tracer:
        report.no_tracer.append(study_id)
    _note_findings(report, study_id, fidelity, burned_in)


def _note_findings(report: DicomImportReport, study_id: str, fidelity: list[str], burned_in: bool) -> None:
    if fidelity:
        report.not_exact_counts.append(study_id)
    if burned_in:
        report.burned_in_annotation.append(study_id)
        log.warning("study %s: its pixels may show burned-in text (check them for names)", study_id)


def _save_report(dataset: SynthDataset, report: DicomImportReport, settings: _Settings) -> None:
    """Write ``import_report.json`` and the import's provenance: codes and hashed names only.

    Counts and skipped files are this run's; the findings (burned-in text, inexact counts, view
    rules) add up over every run into the dataset, so a rerun or another source folder keeps them.
    """
    options = settings.options
    try:
        earlier = json.loads((dataset.root / IMPORT_REPORT).read_text())
    except (OSError, ValueError):
        earlier = {}

    def every_run(key: str, now: list[str]) -> list[str]:
        return list(dict.fromkeys([*earlier.get(key, []), *now]))

    skipped = [
        {"file": pseudonym("file", path, options.salt), "reason": code} for path, code in report.skipped
    ]
    summary: dict[str, Any] = {
        "imported": len(report.imported),
        "already_present": len(report.already_present),
        "kept_earlier": report.kept_earlier,
        "skipped": skipped,
        "reasons": {code: REASONS[code] for code in sorted({code for _, code in report.skipped})},
        "view_rules": dict(sorted((Counter(earlier.get("view_rules", {})) + report.view_rules).items())),
        "burned_in_annotation": every_run("burned_in_annotation", report.burned_in_annotation),
        "not_exact_counts": every_run("not_exact_counts", report.not_exact_counts),
        "no_tracer": every_run("no_tracer", report.no_tracer),
        "allow_lossy": settings.allow_lossy,
        "trust_synthetic_marker": settings.trust_synthetic_marker,
        "label_key": settings.labels.key if settings.labels else None,
        "deidentification": report.deidentification,
        "grid": {"matrix": list(options.matrix), "pixel_spacing_mm": options.pixel_spacing_mm},
    }
    atomic_write_text(dataset.root / IMPORT_REPORT, json.dumps(summary, indent=2) + "\n")
    dataset.update_provenance(
        source=SOURCE_NAME,
        deidentification=report.deidentification,
        dicom_import={k: v for k, v in summary.items() if k != "deidentification"},
    )

"""Import whole-body planar bone scans from DICOM as vendors write them, de-identified on the way in.

Layouts understood (views are always found from the header, never from frame order alone):

* **NM multi-frame** (2 frames, or 4 = 2 energy windows × 2 detectors, or any such product): frame
  *f* comes from detector ``DetectorVector[f]`` and energy window ``EnergyWindowVector[f]``; the
  detector's item in the Detector Information Sequence names its view in a View Code Sequence
  (SNOMED CT or the legacy SNOMED-RT codes) or, failing that, through its Image Orientation
  (Patient): the viewing direction ``row × column`` points posterior (+y, LPS) for an anterior
  view.  Of several energy windows the one whose range holds the 140.5 keV photopeak is used.
* **One NM object per view**: objects holding one view are paired within their series, then, for
  views left over, within their study; exactly one anterior and one posterior must meet.
* **Whole-body Secondary Capture** (Modality NM): one grey frame with both views side by side,
  anterior left, posterior right (the vendors' screen-capture layout); each half must be at least
  twice as tall as wide.  Its values are display values, not counts; ``meta`` says so.
* Compressed transfer syntaxes (JPEG 2000, JPEG lossless, JPEG-LS, RLE) decode through pydicom's
  pixel-data plugins.

A posterior view that the header shows stored mirrored (detector row vector pointing to the
patient's left, as seen from the front) is flipped back to as acquired; where the header says
nothing, ``ImportOptions.posterior_mirrored`` decides.

**Grid.**  Each view goes onto the dataset grid (matrix, pixel spacing) by :func:`to_grid`, which
keeps the total count exactly: the view is first resampled to the dataset's pixel size
(:func:`~synthscan.importers.common.resample_sum`, area-weighted), then placed head-first at the
top row and centred left-right, zero-padded.  A view larger than the grid at that pixel size is
shrunk uniformly (same factor in both directions) until it fits, rather than cropped, so no count
is lost; its effective pixel size is recorded.  Without Pixel Spacing the view is stretched to the
grid.  A view already on the grid is copied bit for bit.

**Labels** come from a CSV keyed by a DICOM identifier read *before* de-identification
(``AccessionNumber`` or ``StudyInstanceUID``), columns ``<key>,label[,perugini_grade]``; the
dataset keeps only pseudonyms.  Objects marked synthetic that carry synthscan's condition in Image
Comments (see :mod:`synthscan.dicom.write`) bring their own label, grade, source and seed.

**Failures.**  A file that is not DICOM, not a whole-body NM image, truncated, missing a view or
with undecodable pixels is skipped and listed with its reason; the import stops with an error only
when nothing at all could be imported.  Persisted reports name skipped files by a salted hash of
their path (a path may hold a patient's name); the command line prints the paths themselves.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from tqdm import tqdm

from synthscan.atomic import atomic_write_text
from synthscan.dataset import INFO, DatasetError, DatasetWriter
from synthscan.dataset import Dataset as SynthDataset
from synthscan.dicom import codes
from synthscan.dicom.deidentify import Deidentifier, header_json, profile_description
from synthscan.dicom.write import COMMENT_PREFIX, EXPORTABLE_SOURCES
from synthscan.importers.common import ImportOptions, ImportReport, pseudonym, resample_sum
from synthscan.labels import VIEWS, check_grade, check_label

log = logging.getLogger(__name__)

SOURCE_NAME = "dicom"
IMPORT_REPORT = "import_report.json"
LABEL_KEYS: tuple[str, ...] = ("AccessionNumber", "StudyInstanceUID")
PHOTOPEAK_KEV = 140.5


class DicomImportError(DatasetError):
    """Nothing could be imported; ``report`` lists every skipped object and why."""

    def __init__(self, message: str, report: DicomImportReport):
        super().__init__(message)
        self.report = report


@dataclass
class DicomImportReport(ImportReport):
    """:class:`ImportReport` (``skipped`` holds (path relative to SRC, reason)) plus DICOM findings."""

    burned_in_annotation: list[str] = field(default_factory=list)
    """Study ids whose source object declares Burned In Annotation YES (pixels may show text)."""
    deidentification: dict[str, Any] = field(default_factory=dict)


class Unusable(ValueError):
    """This object or scan cannot be imported; the message is the reason (no identifying value in it)."""


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


def _read_header(path: Path) -> Dataset:
    try:
        ds = pydicom.dcmread(path, defer_size="64 KB")
    except InvalidDicomError:
        raise Unusable("not a DICOM file") from None
    except Exception as error:  # pydicom raises many types on corrupt input; none may stop the import
        raise Unusable(f"unreadable DICOM ({type(error).__name__})") from None
    if "PixelData" not in ds:
        raise Unusable("no pixel data (truncated, or not an image)")
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
    :class:`Unusable` when the comment is there but malformed.
    """
    comment = str(ds.get("ImageComments", ""))
    if not is_marked_synthetic(ds) or not comment.startswith(COMMENT_PREFIX):
        return None
    try:
        payload = json.loads(comment[len(COMMENT_PREFIX) :])
        check_label(payload["label"])
        check_grade(payload["label"], payload.get("perugini_grade"))
        if payload.get("source") not in EXPORTABLE_SOURCES:
            raise ValueError(f"source must be one of {EXPORTABLE_SOURCES}")
    except (ValueError, KeyError, TypeError) as error:
        raise Unusable(f"malformed synthscan condition in Image Comments ({error})") from None
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


def _orientation(item: Dataset) -> tuple[str | None, bool | None]:
    """(view, stored mirrored) from a detector's Image Orientation (Patient), or (None, None)."""
    try:
        values = [float(v) for v in item.ImageOrientationPatient]
    except (AttributeError, TypeError, ValueError):
        return None, None
    if len(values) != 6:
        return None, None
    row, column = np.array(values[:3]), np.array(values[3:])
    looking = np.cross(row, column)
    if abs(looking[1]) < 0.5 or abs(row[0]) < 0.5:
        return None, None
    view = "anterior" if looking[1] > 0 else "posterior"
    # As acquired, the anterior row points to the patient's left (+x), the posterior to the right.
    mirrored = (row[0] > 0) != (view == "anterior")
    return view, mirrored


def _detector_view(item: Dataset) -> tuple[str | None, bool | None]:
    """View of a Detector Information Sequence item: View Code Sequence first, else orientation."""
    oriented, mirrored = _orientation(item)
    coded = codes.lookup(codes.VIEW_CODES, item.get("ViewCodeSequence", []))
    if coded is None:
        return oriented, mirrored
    if oriented is None:
        return coded, None
    # The code names the view; an orientation that disagrees means the image is stored mirrored.
    return coded, mirrored if oriented == coded else not mirrored


def _vector(ds: Dataset, keyword: str, frames: int) -> list[int]:
    values = ds.get(keyword)
    if values is None:
        return [1] * frames
    values = [int(v) for v in (values if isinstance(values, MultiValue | list | tuple) else [values])]
    if len(values) != frames:
        raise Unusable(f"{keyword} has {len(values)} values for {frames} frames")
    return values


def _nm_views(ds: Dataset, path: Path) -> dict[str, ViewRef]:
    image_type = [str(v).upper() for v in ds.get("ImageType", [])]
    if "WHOLE BODY" not in image_type and str(ds.get("BodyPartExamined", "")).upper() != "WHOLEBODY":
        raise Unusable("NM object is not a whole-body image (Image Type value 3 is not WHOLE BODY)")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    detectors = _vector(ds, "DetectorVector", frames)
    windows = _vector(ds, "EnergyWindowVector", frames)
    peak = _photopeak_windows(ds)
    if not peak:
        raise Unusable("no energy window is known to hold the 140.5 keV 99mTc photopeak")
    items = list(ds.get("DetectorInformationSequence", []))
    found: dict[str, list[ViewRef]] = defaultdict(list)
    for frame, (detector, window) in enumerate(zip(detectors, windows, strict=True)):
        if window not in peak:
            continue
        if not 1 <= detector <= len(items):
            raise Unusable(f"frame {frame + 1} comes from detector {detector}, which has no detector item")
        view, mirrored = _detector_view(items[detector - 1])
        if view is None:
            raise Unusable(f"detector {detector} names no view (no View Code Sequence or orientation)")
        found[view].append(ViewRef(path, frame if frames > 1 else None, None, detector, window, mirrored))
    views = {}
    for view, refs in found.items():
        if len(refs) > 1:
            raise Unusable(f"{len(refs)} photopeak frames show the {view} view; expected one")
        views[view] = refs[0]
    if not views:
        raise Unusable("no frame in the photopeak window")
    return views


def _sc_views(ds: Dataset, path: Path) -> dict[str, ViewRef]:
    if str(ds.get("Modality", "")).upper() != "NM":
        raise Unusable("secondary capture whose Modality is not NM")
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise Unusable("multi-frame secondary capture: its views cannot be told apart")
    rows, columns = int(ds.Rows), int(ds.Columns)
    if columns % 2 or rows < columns:
        raise Unusable("secondary capture is not a whole-body ANT|POST side-by-side capture")
    return {"anterior": ViewRef(path, half=0), "posterior": ViewRef(path, half=1)}


def classify(path: Path) -> SourceObject:
    """Pass 1: read a header and say where its views are; raises :class:`Unusable` with the reason."""
    ds = _read_header(path)
    try:
        return _classify(ds, path)
    except Unusable:
        raise
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise Unusable(f"malformed header ({type(error).__name__})") from None


def _classify(ds: Dataset, path: Path) -> SourceObject:
    sop_class = str(ds.get("SOPClassUID", ""))
    if sop_class == codes.NM_IMAGE_STORAGE:
        views = _nm_views(ds, path)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        layout = f"nm-{frames}-frame" if len(views) == len(VIEWS) else "nm-per-view"
    elif sop_class in codes.SECONDARY_CAPTURE_STORAGE:
        layout, views = "secondary-capture", _sc_views(ds, path)
    else:
        modality = str(ds.get("Modality", "")) or "none"
        raise Unusable(f"not an NM or secondary-capture image (Modality {modality[:16]})")
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
            if all(views.values()):
                reason = "ambiguous: its study holds several single-view objects per view"
            else:
                missing = [view for view, n in views.items() if not n]
                reason = f"missing the {' and '.join(missing)} view in its study"
            unmatched.append((obj, reason))
    return scans, unmatched


# -- pass 2: pixels, grid, de-identification ----------------------------------------------------


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


def _frames(ds: Dataset) -> np.ndarray:
    """Decoded pixels as (frames, rows, columns) of non-negative integers."""
    try:
        pixels = ds.pixel_array
    except Exception as error:  # pixel plugins raise many types; any failure means "cannot decode"
        raise Unusable(f"pixel data cannot be decoded ({type(error).__name__}: {str(error)[:120]})") from None
    samples = int(ds.get("SamplesPerPixel", 1))
    if samples == 3:
        if not (
            np.array_equal(pixels[..., 0], pixels[..., 1]) and np.array_equal(pixels[..., 0], pixels[..., 2])
        ):
            raise Unusable("colour image: a display rendering, not counts")
        pixels = pixels[..., 0]
    elif samples != 1:
        raise Unusable(f"{samples} samples per pixel")
    if pixels.dtype.kind not in "ui":
        raise Unusable(f"pixel values of type {pixels.dtype} are not counts")
    if pixels.dtype.kind == "i":
        if pixels.size and pixels.min() < 0:
            raise Unusable("negative pixel values are not counts")
        pixels = pixels.astype(np.uint32)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        pixels = (2 ** int(ds.BitsStored) - 1) - pixels
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return pixels.reshape(frames, *pixels.shape[-2:])


def _view_pixels(ds: Dataset, frames: np.ndarray, ref: ViewRef) -> np.ndarray:
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


def import_dicom(
    src: str | Path,
    out: str | Path,
    *,
    labels_csv: str | Path | None = None,
    label_key: str = "AccessionNumber",
    options: ImportOptions | None = None,
) -> DicomImportReport:
    """Import the whole-body NM scans under ``src`` into the dataset at ``out`` (new or resumed).

    Every header is de-identified with the PS3.15 basic profile (:mod:`.deidentify`) before it is
    stored; ids are pseudonyms salted with ``options.salt``.  Returns the report; raises
    :class:`DicomImportError` (carrying the report) when nothing could be imported.
    """
    options = options or ImportOptions()
    src, out = Path(src), Path(out)
    if not src.exists():
        raise DatasetError(f"{src} does not exist")
    labels = Labels.read(labels_csv, label_key) if labels_csv else None
    deidentify = Deidentifier(options.salt)
    profile = profile_description(bool(options.salt))
    report = DicomImportReport(deidentification=profile)

    objects: list[SourceObject] = []
    for path in tqdm(list(_files(src)), desc="read headers", disable=not options.progress):
        try:
            objects.append(classify(path))
        except Unusable as error:
            report.skipped.append((_relative(path, src), str(error)))
    scans, unmatched = group_scans(objects)
    report.skipped += [(_relative(obj.path, src), reason) for obj, reason in unmatched]

    created = not (out / INFO).exists()
    if not scans:
        raise DicomImportError(_nothing_message(report), report)
    dataset = SynthDataset.create(
        out,
        matrix=options.matrix,
        pixel_spacing_mm=options.pixel_spacing_mm,
        provenance={"source": SOURCE_NAME},
        exist_ok=True,
    )
    if not math.isclose(dataset.info.pixel_spacing_mm, options.pixel_spacing_mm):
        raise DatasetError(
            f"{out} holds {dataset.info.pixel_spacing_mm} mm pixels; import with --pixel-spacing-mm "
            f"{dataset.info.pixel_spacing_mm} or into a new folder"
        )
    with dataset.writer() as writer:
        for scan in tqdm(scans, desc="import dicom", disable=not options.progress):
            try:
                _import_scan(scan, dataset, writer, labels, deidentify, options, report)
            except (Unusable, DatasetError) as error:  # our own messages: no header values in them
                reason = str(error)
            except (AttributeError, KeyError, TypeError, ValueError) as error:
                reason = f"malformed header ({type(error).__name__})"  # its text may quote a value
            else:
                continue
            report.skipped += [(_relative(obj.path, src), reason) for obj in scan.objects]
    _save_report(dataset, report, options, labels)
    if not report.imported and not report.already_present:
        if created:
            shutil.rmtree(out)
        raise DicomImportError(_nothing_message(report), report)
    for path, reason in report.skipped:
        log.debug("skipped %s: %s", path, reason)
    return report


def _nothing_message(report: DicomImportReport) -> str:
    reasons = sorted({reason for _, reason in report.skipped})
    return (
        f"no whole-body scan could be imported ({len(report.skipped)} objects skipped: {'; '.join(reasons)})"
    )


def _import_scan(
    scan: Scan,
    dataset: SynthDataset,
    writer: DatasetWriter,
    labels: Labels | None,
    deidentify: Deidentifier,
    options: ImportOptions,
    report: DicomImportReport,
) -> None:
    uids = {obj.path: obj.instance_uid or obj.path.name for obj in scan.objects}
    key = "\x00".join(f"{uids[ref.path]}:{ref.frame}:{ref.half}" for ref in scan.views.values())
    study_id = pseudonym(SOURCE_NAME, f"scan\x00{key}", options.salt)
    if study_id in dataset:
        report.already_present.append(study_id)
        return
    try:
        datasets = {obj.path: pydicom.dcmread(obj.path) for obj in scan.objects}
    except Exception as error:  # as in pass 1: any failure to read means "skip this scan"
        raise Unusable(f"unreadable DICOM ({type(error).__name__})") from None
    first = datasets[scan.objects[0].path]
    provenance = synthetic_provenance(first)
    if provenance is not None:
        label, grade = provenance["label"], provenance.get("perugini_grade")
    else:
        found = labels.lookup(first) if labels else None
        if found is None:
            hint = f"no row for its {labels.key} in the labels CSV" if labels else "no labels CSV (--labels)"
            raise Unusable(f"no label: {hint}")
        label, grade = found

    views, view_meta = [], {}
    for name in VIEWS:
        ref = scan.views[name]
        ds = datasets[ref.path]
        pixels = _view_pixels(ds, _frames(ds), ref)
        mirrored = (
            ref.mirrored if ref.mirrored is not None else (name == "posterior" and options.posterior_mirrored)
        )
        if name == "posterior" and mirrored:
            pixels = pixels[:, ::-1]
        spacing = _spacing(ds)
        grid, grid_info = to_grid(pixels, spacing, options.matrix, options.pixel_spacing_mm)
        views.append(grid)
        view_meta[name] = {
            "source_shape": list(pixels.shape),
            "source_pixel_spacing_mm": list(spacing) if spacing else None,
            "frame": ref.frame,
            "half": ref.half,
            "detector": ref.detector,
            "energy_window": ref.energy_window,
            "flipped_to_as_acquired": bool(name == "posterior" and mirrored),
            **grid_info,
        }
    counts = np.stack(views)

    patient_key = "\x00".join(str(first.get(k, "")) for k in ("PatientID", "IssuerOfPatientID"))
    if not str(first.get("PatientID", "")).strip():
        patient_key = f"study\x00{first.get('StudyInstanceUID', '')}"
    patient_id = pseudonym(SOURCE_NAME, patient_key, options.salt)
    marked = is_marked_synthetic(first)
    source = provenance["source"] if provenance else ("synthetic" if marked else "real")
    tracer = (provenance or {}).get("tracer") or _tracer(first) or options.tracer
    burned_in = any(str(ds.get("BurnedInAnnotation", "")).upper() == "YES" for ds in datasets.values())
    headers = [header_json(deidentify(ds, patient_id=patient_id)) for ds in datasets.values()]
    extra = {
        k: provenance[k]
        for k in ("model_name", "model_sha256", "steps", "guidance")
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
                "burned_in_annotation": burned_in,
                "pixel_values": "display values of a secondary capture, not counts"
                if scan.layout == "secondary-capture"
                else "counts",
                "views": view_meta,
                "headers": headers,
            }
        },
        extra=extra,
    )
    report.imported.append(study_id)
    if burned_in:
        report.burned_in_annotation.append(study_id)
        log.warning("study %s: Burned In Annotation is YES; its pixels may show identifying text", study_id)


def _save_report(
    dataset: SynthDataset, report: DicomImportReport, options: ImportOptions, labels: Labels | None
) -> None:
    """Write ``import_report.json`` and the import's provenance; skipped files by salted path hash."""
    skipped = [
        {"file": pseudonym("file", path, options.salt), "reason": reason} for path, reason in report.skipped
    ]
    summary: dict[str, Any] = {
        "imported": len(report.imported),
        "already_present": len(report.already_present),
        "skipped": skipped,
        "burned_in_annotation": report.burned_in_annotation,
        "label_key": labels.key if labels else None,
        "deidentification": report.deidentification,
        "grid": {"matrix": list(options.matrix), "pixel_spacing_mm": options.pixel_spacing_mm},
    }
    atomic_write_text(dataset.root / IMPORT_REPORT, json.dumps(summary, indent=2) + "\n")
    dataset.update_provenance(
        source=SOURCE_NAME,
        deidentification=report.deidentification,
        dicom_import={k: v for k, v in summary.items() if k != "deidentification"},
    )

"""Synthetic and simulated studies as standard NM Image objects that any PACS or viewer opens.

One study becomes one Nuclear Medicine Image Storage object (one study, one series, one instance)
with two 16-bit frames of raw counts: frame 1 anterior (detector 1), frame 2 posterior (detector
2) as acquired, i.e. seen from behind.  Frame Increment Pointer = Energy Window Vector, Detector
Vector; each Detector Information Sequence item names its view in a View Code Sequence, so readers
never have to rely on frame order.

Marked synthetic in every way the standard offers: Synthetic Data (0008,001C) YES; a Contributing
Equipment item with purpose 109100 "Synthesizing Equipment" naming synthscan and its version;
Image Type DERIVED; a Derivation Description naming the model, its SHA-256, the seed and the
condition; Patient Identity Removed YES with a De-identification Method (Code) Sequence; fresh
UIDs, a random patient id and no date but the day of export.

**Where the condition lives.**  Image Comments (0020,4000) holds ``SYNTHSCAN`` followed by a
JSON object, e.g. ``SYNTHSCAN {"label": "amyloidosis", "perugini_grade": 2, "source":
"synthetic", "seed": 7, "tracer": "DPD", "model_name": "...", "model_sha256": "...", "steps": 50,
"guidance": 2.0, "synthscan_version": "0.1.0"}``.  Keys: the manifest's core columns ``label``,
``perugini_grade``, ``source``, ``seed``, ``tracer`` (``null`` when unknown) and the generator's
settings.  A standard text attribute rather than coded Acquisition Context items because the
conditions and the Perugini grade have no standard codes, and a private coding scheme makes
validators warn.  :func:`synthscan.dicom.read.synthetic_provenance` reads it back (only from
objects marked synthetic), so ``import-dicom`` restores label, grade, source and seed.  Rows with
``source == "real"`` are never written.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.fileset import FileSet
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from tqdm import tqdm

import synthscan
from synthscan.atomic import atomic_write_bytes, atomic_write_text
from synthscan.dataset import Dataset as SynthDataset
from synthscan.dataset import DatasetError, Record
from synthscan.dicom import codes

log = logging.getLogger(__name__)

EXPORT_REPORT = "export_report.json"
EXPORTABLE_SOURCES: tuple[str, ...] = ("simulated", "synthetic")


class ExportError(DatasetError):
    """Nothing could be exported, or the export was refused; the message says how to fix it."""


@dataclass(frozen=True)
class NMAcquisition:
    """How the exported objects describe the (virtual) acquisition; synthetic studies carry none."""

    scan_velocity_mm_s: float = 2.5
    """Table speed: 15 cm/min, the middle of the usual 10-20 cm/min (assumption)."""
    energy_window_kev: tuple[float, float] = (126.0, 154.0)
    """99mTc photopeak 140.5 keV ± 10 % (a 20 % window, DOMAIN.md)."""
    collimator_name: str = "LEHR"
    """Low-energy high-resolution parallel-hole collimator, the bone-scan standard."""
    manufacturer: str = "synthscan"
    """Written as equipment manufacturer: the object was made by software, not by a camera."""


@dataclass(frozen=True)
class SyntheticInfo:
    """What made a study: the generator (model, hash, seed, sampling settings) or the simulator."""

    source: str
    """``synthetic`` (diffusion model) or ``simulated`` (physics simulator)."""
    seed: int | None = None
    model_name: str = ""
    model_sha256: str = ""
    steps: int | None = None
    guidance: float | None = None

    def __post_init__(self) -> None:
        if self.source not in EXPORTABLE_SOURCES:
            raise ValueError(
                f"only {' and '.join(EXPORTABLE_SOURCES)} studies can be exported, not {self.source!r}: "
                "real patient data never leaves the dataset"
            )

    @classmethod
    def from_record(cls, record: Record) -> SyntheticInfo:
        """Read the generator's settings from a manifest row (``extra``: model_name, model_sha256, ...)."""
        steps, guidance = record.get("steps"), record.get("guidance")
        return cls(
            source=record.source,
            seed=record.seed,
            model_name=str(record.get("model_name")),
            model_sha256=str(record.get("model_sha256")),
            steps=int(float(steps)) if steps not in ("", None) else None,
            guidance=float(guidance) if guidance not in ("", None) else None,
        )

    def describe(self, label: str, grade: int | None) -> str:
        """Derivation Description: human-readable account of how the pixels were made."""
        if self.source == "synthetic":
            what = f"Synthetic image generated by synthscan {synthscan.__version__}"
            model = self.model_name or "unnamed model"
            what += f", model {model}"
            if self.model_sha256:
                what += f" (sha256 {self.model_sha256})"
            if self.steps is not None:
                what += f", {self.steps} steps"
            if self.guidance is not None:
                what += f", guidance {self.guidance:g}"
        else:
            what = f"Simulated image made by the synthscan {synthscan.__version__} physics simulator"
        condition = label if grade is None else f"{label}, Perugini grade {grade}"
        seed = "unknown" if self.seed is None else str(self.seed)
        return f"{what}; seed {seed}; condition {condition}. Not a real patient."


@dataclass
class ExportReport:
    """What an export wrote, what was already there, and what it refused (with the reason)."""

    written: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    dicomdir: str | None = None


COMMENT_PREFIX = "SYNTHSCAN "


def provenance_comment(record: Record, info: SyntheticInfo) -> str:
    """The Image Comments text that carries a study's condition and provenance (see module doc)."""
    payload = {
        "label": record.label,
        "perugini_grade": record.perugini_grade,
        "source": info.source,
        "seed": info.seed,
        "tracer": record.tracer or None,
        "model_name": info.model_name or None,
        "model_sha256": info.model_sha256 or None,
        "steps": info.steps,
        "guidance": info.guidance,
        "synthscan_version": synthscan.__version__,
    }
    return COMMENT_PREFIX + json.dumps(payload, sort_keys=True)


def _detector_item(view: str) -> Dataset:
    item = Dataset()
    item.CollimatorGridName = ""
    item.CollimatorType = "PARA"
    item.FocalDistance = None
    # Row direction (patient's left on the right for anterior, seen from behind for posterior) and
    # column direction head → feet, in LPS patient coordinates.
    item.ImageOrientationPatient = [1, 0, 0, 0, 0, -1] if view == "anterior" else [-1, 0, 0, 0, 0, -1]
    item.ImagePositionPatient = None
    view_item = codes.code_item(codes.VIEW_CODES[view])
    view_item.ViewModifierCodeSequence = Sequence()
    item.ViewCodeSequence = Sequence([view_item])
    return item


def random_patient_id() -> str:
    """A synthetic patient id that cannot belong to anyone: ``SYN`` + 12 random hex digits."""
    return f"SYN{secrets.token_hex(6).upper()}"


def study_to_dicom(
    counts: np.ndarray,
    record: Record,
    meta: Mapping[str, Any] | None = None,
    *,
    pixel_spacing_mm: float,
    synthetic_info: SyntheticInfo | None = None,
    acquisition: NMAcquisition | None = None,
    patient_id: str | None = None,
    now: dt.datetime | None = None,
) -> Dataset:
    """Build the NM Image object of one synthetic or simulated study (not yet saved).

    ``counts`` is the study's (2, rows, columns) array, anterior then posterior as acquired; it is
    written as 16-bit unsigned counts and refused if a pixel exceeds 65535.  ``record`` supplies
    label, Perugini grade and tracer; ``synthetic_info`` (default: read from ``record``) the
    provenance; ``meta`` (the study's ground truth) only the simulated person's sex, and only when
    it is ``M`` or ``F``.  No id, site or free text of the source dataset is copied, so nothing
    identifying can leak.  ``patient_id`` defaults to a fresh random id; pass one to keep several
    studies of one synthetic patient together.
    """
    if record.source == "real":
        raise ValueError(f"study {record.study_id} is real patient data, which is never exported")
    info = synthetic_info or SyntheticInfo.from_record(record)
    acquisition = acquisition or NMAcquisition()
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[0] != 2:
        raise ValueError(f"counts must be (2 views, rows, columns), got shape {counts.shape}")
    if counts.dtype.kind not in "ui" or (counts.size and counts.min() < 0):
        raise ValueError("counts must be non-negative integers")
    peak = int(counts.max(initial=0))
    if peak > np.iinfo(np.uint16).max:
        raise ValueError(f"peak count {peak} does not fit the 16 bits NM images allow")
    rows, columns = int(counts.shape[1]), int(counts.shape[2])
    now = now or dt.datetime.now()
    today, time_now = now.strftime("%Y%m%d"), now.strftime("%H%M%S")

    ds = Dataset()
    # SOP Common, with the synthetic markers.
    ds.SOPClassUID = codes.NM_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceCreationDate, ds.InstanceCreationTime = today, time_now
    ds.SyntheticData = "YES"
    equipment = Dataset()
    equipment.Manufacturer = "synthscan"
    equipment.ManufacturerModelName = (
        (info.model_name or "diffusion generator") if info.source == "synthetic" else "physics simulator"
    )[:64]
    equipment.SoftwareVersions = synthscan.__version__
    equipment.PurposeOfReferenceCodeSequence = codes.code_sequence(codes.SYNTHESIZING_EQUIPMENT)
    equipment.ContributionDateTime = now.strftime("%Y%m%d%H%M%S")
    equipment.ContributionDescription = "Generated the pixel data; no real patient was imaged"
    ds.ContributingEquipmentSequence = Sequence([equipment])

    # Patient: a synthetic person with identity removed.
    patient_id = patient_id or random_patient_id()
    ds.PatientName = f"SYNTHETIC^{patient_id}"
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    sex = ((meta or {}).get("patient") or {}).get("sex")
    ds.PatientSex = sex if sex in ("M", "F") else ""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = f"synthscan {synthscan.__version__}: synthetic image, random identifiers"
    ds.DeidentificationMethodCodeSequence = codes.code_sequence(codes.BASIC_PROFILE)

    # Study and series: one study, one series, one instance.
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyDate, ds.StudyTime = today, time_now
    ds.SeriesDate, ds.SeriesTime = today, time_now
    ds.ContentDate, ds.ContentTime = today, time_now
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.StudyDescription = "Synthetic whole-body bone scan"
    ds.Modality = "NM"
    ds.SeriesNumber = 1
    ds.SeriesDescription = f"{info.source.capitalize()} whole body ANT/POST"
    ds.BodyPartExamined = "WHOLEBODY"
    ds.Manufacturer = acquisition.manufacturer
    ds.ManufacturerModelName = equipment.ManufacturerModelName
    ds.SoftwareVersions = synthscan.__version__
    ds.InstanceNumber = 1

    # NM/PET Patient Orientation: supine, head first.
    orientation = codes.code_item(codes.RECUMBENT)
    orientation.PatientOrientationModifierCodeSequence = codes.code_sequence(codes.SUPINE)
    ds.PatientOrientationCodeSequence = Sequence([orientation])
    ds.PatientGantryRelationshipCodeSequence = codes.code_sequence(codes.HEADFIRST)

    # General Image + NM Image, with the derivation and the condition.
    ds.ImageType = ["DERIVED", "PRIMARY", "WHOLE BODY", "EMISSION"]
    ds.DerivationDescription = info.describe(record.label, record.perugini_grade)[:1024]
    ds.ImageComments = provenance_comment(record, info)
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.CountsAccumulated = int(counts.sum(dtype=np.int64))
    scan_length_mm = rows * pixel_spacing_mm
    ds.ScanLength = round(scan_length_mm)
    ds.ScanVelocity = f"{acquisition.scan_velocity_mm_s:.6g}"
    ds.WholeBodyTechnique = "1PS"
    ds.ActualFrameDuration = round(1000 * scan_length_mm / acquisition.scan_velocity_mm_s)

    # NM Isotope: 99mTc photopeak window, radionuclide and tracer.
    window = Dataset()
    window_range = Dataset()
    window_range.EnergyWindowLowerLimit = f"{acquisition.energy_window_kev[0]:g}"
    window_range.EnergyWindowUpperLimit = f"{acquisition.energy_window_kev[1]:g}"
    window.EnergyWindowRangeSequence = Sequence([window_range])
    window.EnergyWindowName = "Tc99m"
    ds.EnergyWindowInformationSequence = Sequence([window])
    radiopharmaceutical = Dataset()
    radiopharmaceutical.RadionuclideCodeSequence = codes.code_sequence(codes.RADIONUCLIDE)
    if record.tracer:
        radiopharmaceutical.Radiopharmaceutical = f"Tc-99m {record.tracer}"
    if record.tracer in codes.RADIOPHARMACEUTICALS:
        radiopharmaceutical.RadiopharmaceuticalCodeSequence = codes.code_sequence(
            codes.RADIOPHARMACEUTICALS[record.tracer]
        )
    ds.RadiopharmaceuticalInformationSequence = Sequence([radiopharmaceutical])

    # NM Detector and NM Multi-frame: detector 1 anterior, detector 2 posterior.
    ds.DetectorInformationSequence = Sequence([_detector_item(view) for view in codes.VIEW_CODES])
    for item in ds.DetectorInformationSequence:
        item.CollimatorGridName = acquisition.collimator_name
    ds.NumberOfFrames = 2
    ds.FrameIncrementPointer = [0x00540010, 0x00540020]
    ds.NumberOfEnergyWindows = 1
    ds.EnergyWindowVector = [1, 1]
    ds.NumberOfDetectors = 2
    ds.DetectorVector = [1, 2]

    # Image Pixel + NM Image Pixel.
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [f"{pixel_spacing_mm:.6g}", f"{pixel_spacing_mm:.6g}"]
    ds.SmallestImagePixelValue = int(counts.min(initial=0))
    ds.LargestImagePixelValue = peak
    ds.PixelData = np.ascontiguousarray(counts, dtype="<u2").tobytes()

    meta_header = FileMetaDataset()
    meta_header.MediaStorageSOPClassUID = ds.SOPClassUID
    meta_header.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta_header.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta_header
    return ds


def dicom_bytes(ds: Dataset) -> bytes:
    """The Part 10 file of ``ds`` (preamble, file meta, data set) as bytes."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_dicom(ds: Dataset, path: str | Path) -> Path:
    """Write ``ds`` as a Part 10 file atomically: a reader sees no file or the complete one."""
    path = Path(path)
    atomic_write_bytes(path, dicom_bytes(ds))
    return path


def _exportable(
    records: Iterable[Record], flagged: set[str], allow_flagged: bool
) -> tuple[list[Record], list[tuple[str, str]]]:
    keep: list[Record] = []
    refused: list[tuple[str, str]] = []
    for record in records:
        if record.source == "real":
            refused.append((record.study_id, "real patient data is never exported"))
        elif record.study_id in flagged and not allow_flagged:
            refused.append(
                (
                    record.study_id,
                    "flagged by the privacy audit as a possible copy of a training patient "
                    "(--allow-flagged exports it anyway)",
                )
            )
        else:
            keep.append(record)
    return keep, refused


def _nothing_exported(dataset: SynthDataset, report: ExportReport) -> ExportError:
    reasons = "; ".join(sorted({reason for _, reason in report.refused})) or "it holds no studies"
    return ExportError(f"no study of {dataset.root} could be exported: {reasons}")


def export_dataset(
    dataset: SynthDataset,
    out: str | Path,
    *,
    allow_flagged: bool = False,
    dicomdir: bool = False,
    train: SynthDataset | str | Path | None = None,
    audit_report: str | Path | None = None,
    records: Iterable[Record] | None = None,
    acquisition: NMAcquisition | None = None,
    progress: bool = True,
) -> ExportReport:
    """Export the simulated and synthetic studies of ``dataset`` as NM DICOM files under ``out``.

    Real studies are skipped and listed as refused (real patient data never leaves).  Synthetic
    studies go through the privacy audit (:func:`synthscan.evaluation.privacy.flagged_studies_for_export`,
    which reuses a current saved audit or runs one against ``train``); flagged ones are refused
    unless ``allow_flagged``.  Without ``dicomdir`` each study becomes ``out/<study_id>.dcm``, written
    atomically, and an interrupted export resumes where it stopped.  With ``dicomdir`` the files are
    laid out as a PS3.10 File-set (``PTxxxxxx/STxxxxxx/SExxxxxx/IMxxxxxx``) with a DICOMDIR, built
    by pydicom's :class:`~pydicom.fileset.FileSet` in a new folder.  Plain exports also write
    ``out/export_report.json`` listing what was written and refused (a File-set gets no stray file:
    the returned report says it).  Raises :class:`ExportError` when nothing is exportable.
    """
    from synthscan.evaluation.privacy import flagged_studies_for_export

    out = Path(out)
    selected = list(dataset if records is None else records)
    flagged: set[str] = set()
    if any(r.source == "synthetic" for r in selected):
        flagged = set(flagged_studies_for_export(dataset, train=train, report=audit_report))
    keep, refused = _exportable(selected, flagged, allow_flagged)
    report = ExportReport(refused=refused)
    if refused:
        log.warning("refusing %d of %d studies", len(refused), len(selected))
    if not keep:
        raise _nothing_exported(dataset, report)
    if dicomdir and out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} is not empty; a DICOMDIR export needs a new folder")
    out.mkdir(parents=True, exist_ok=True)

    acquisition = acquisition or NMAcquisition()
    patients: dict[str, str] = {}
    fileset = FileSet() if dicomdir else None
    for record in tqdm(keep, desc="export-dicom", disable=not progress):
        path = out / f"{record.study_id}.dcm"
        if fileset is None and path.is_file():
            report.already_present.append(record.study_id)
            continue
        study = dataset.read(record)
        try:
            ds = study_to_dicom(
                study.counts,
                record,
                study.meta,
                pixel_spacing_mm=dataset.info.pixel_spacing_mm,
                acquisition=acquisition,
                patient_id=patients.setdefault(record.patient_id, random_patient_id()),
            )
        except ValueError as error:
            report.refused.append((record.study_id, str(error)))
            log.warning("refusing %s: %s", record.study_id, error)
            continue
        if fileset is None:
            write_dicom(ds, path)
        else:
            fileset.add(ds)
        report.written.append(record.study_id)
    if fileset is not None:
        if not report.written:
            raise _nothing_exported(dataset, report)
        fileset.write(out)
        report.dicomdir = str(out / "DICOMDIR")
        return report
    summary = {
        "dataset": str(dataset.root),
        "synthscan_version": synthscan.__version__,
        "acquisition": asdict(acquisition),
        "written": report.written,
        "already_present": report.already_present,
        "refused": [{"study_id": s, "reason": r} for s, r in report.refused],
    }
    atomic_write_text(out / EXPORT_REPORT, json.dumps(summary, indent=2) + "\n")
    if not report.written and not report.already_present:
        raise _nothing_exported(dataset, report)
    return report

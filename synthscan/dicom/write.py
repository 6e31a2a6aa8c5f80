"""Synthetic and simulated studies as standard NM Image objects that any PACS or viewer opens.

One study becomes one Nuclear Medicine Image Storage object (one study, one series, one instance)
with two 16-bit frames of raw counts: frame 1 anterior (detector 1), frame 2 posterior (detector
2) as acquired, i.e. seen from behind.  Frame Increment Pointer = Energy Window Vector, Detector
Vector; each Detector Information Sequence item names its view in a View Code Sequence, so readers
never have to rely on frame order.

Marked synthetic in every way the standard offers: Synthetic Data (0008,001C) YES; a Contributing
Equipment item with purpose 109100 "Synthesizing Equipment" naming synthscan and its version;
Image Type DERIVED; a Derivation Description naming the model, its SHA-256, the seed and the
condition; Patient Identity Removed YES with a De-identification Method (Code) Sequence (113100,
113105).

**Identifiers are deterministic** (:class:`ExportIdentity`): UIDs and the synthetic patient id are
derived from the study id (patient id: the manifest's patient id) and a secret drawn once per
dataset and kept in its ``dataset.json`` with the date of the first export, the only date written.
Exporting a dataset again gives byte-identical files, so resending to a PACS replaces rather
than duplicates; two datasets never share a UID.  The secret only keeps datasets apart: these
objects hold no patient data.

**Acquisition.**  The energy window is the study's own scanner's: a simulated study's ground truth
names its camera's window width (e.g. ``LEHR dual-head, 15 % window``); otherwise
:class:`NMAcquisition`'s 15 %, the training site's (centre_a) window, centred on 140.5 keV.  Window
Center/Width span the counts from 0 to the 99.5th percentile of the study's non-zero pixels.

**Where the condition lives.**  Image Comments (0020,4000) holds ``SYNTHSCAN`` followed by a
JSON object, e.g. ``SYNTHSCAN {"label": "amyloidosis", "perugini_grade": 2, "source":
"synthetic", "seed": 7, "tracer": "DPD", "model_name": "...", "model_sha256": "...", "steps": 50,
"guidance": 2.0, "synthscan_version": "0.1.0"}``.  Keys: the manifest's core columns ``label``,
``perugini_grade``, ``source``, ``seed``, ``tracer`` (``null`` when unknown), a synthetic study's
metastatic ``burden`` class (when it has one) and the generator's settings.  A standard text
attribute rather than coded Acquisition Context items because the conditions and the Perugini grade
have no standard codes, and a private coding scheme makes validators warn.
:func:`synthscan.dicom.read.synthetic_provenance` reads it back (only from objects marked
synthetic), so ``import-dicom`` restores label, grade, source, seed and burden.  Rows with
``source == "real"`` are never written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
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
from synthscan.dicom.deidentify import method_codes

log = logging.getLogger(__name__)

EXPORT_REPORT = "export_report.json"
EXPORTABLE_SOURCES: tuple[str, ...] = ("simulated", "synthetic")
PHOTOPEAK_KEV = 140.5
IDENTITY_KEY = "dicom_export"
"""Key of ``dataset.json``'s provenance that holds the dataset's :class:`ExportIdentity`."""


class ExportError(DatasetError):
    """Nothing could be exported, or the export was refused; the message says how to fix it."""


@dataclass(frozen=True)
class NMAcquisition:
    """How the exported objects describe the (virtual) acquisition; synthetic studies carry none."""

    scan_velocity_mm_s: float = 2.5
    """Table speed: 15 cm/min, the middle of the usual 10-20 cm/min (assumption)."""
    energy_window_percent: float = 15.0
    """Window width around the 140.5 keV photopeak when the study names no scanner: the 15 % of the
    training site's camera (configs/simulator/centre_a.yaml)."""
    collimator_name: str = "LEHR"
    """Low-energy high-resolution parallel-hole collimator, the bone-scan standard."""
    manufacturer: str = "synthscan"
    """Written as equipment manufacturer: the object was made by software, not by a camera."""

    @property
    def scan_velocity(self) -> str:
        """Scan Velocity (DS) as written, which a resumed export compares."""
        return f"{self.scan_velocity_mm_s:.6g}"


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

    def describe(self, label: str, grade: int | None, burden: str | None = None) -> str:
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
        condition = label
        if label == "amyloidosis" and grade:  # the Perugini score grades cardiac uptake only
            condition += f", Perugini grade {grade}"
        if burden and label == "metastasis":
            condition += f", metastatic burden {burden}"
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


@dataclass(frozen=True)
class ExportIdentity:
    """The source of an export's identifiers: a per-dataset secret and the first export's date."""

    secret: str
    date: dt.datetime

    @classmethod
    def fresh(cls) -> ExportIdentity:
        """A new random identity (objects written once, e.g. by ``sample --format dicom``)."""
        return cls(secrets.token_hex(16), dt.datetime.now().replace(microsecond=0))

    @classmethod
    def of(cls, dataset: SynthDataset) -> ExportIdentity:
        """The dataset's identity, drawn and recorded in its ``dataset.json`` on the first export."""
        recorded = dataset.info.provenance.get(IDENTITY_KEY)
        if recorded is None:
            identity = cls.fresh()
            dataset.update_provenance(
                **{IDENTITY_KEY: {"secret": identity.secret, "date": identity.date.strftime("%Y%m%d%H%M%S")}}
            )
            return identity
        try:
            return cls(str(recorded["secret"]), dt.datetime.strptime(recorded["date"], "%Y%m%d%H%M%S"))
        except (KeyError, TypeError, ValueError):
            raise ExportError(
                f"{dataset.root}/dataset.json: provenance.{IDENTITY_KEY} is damaged; restore it from a "
                "backup to re-export with the same UIDs, or delete it to start new ones"
            ) from None

    def uid(self, study_id: str, what: str) -> str:
        """The UID of ``what`` (study, series, instance) of one study: same inputs, same UID."""
        return generate_uid(entropy_srcs=[self.secret, study_id, what])

    def patient_id(self, key: str) -> str:
        """A synthetic patient id, ``SYN`` + 12 hex digits, the same for every study of ``key``."""
        digest = hmac.new(self.secret.encode(), key.encode(), hashlib.sha256).hexdigest()
        return f"SYN{digest[:12].upper()}"


def energy_window_kev(meta: Mapping[str, Any] | None, acquisition: NMAcquisition) -> tuple[float, float]:
    """The photopeak window of the study's scanner (``N % window`` in its name), else the default."""
    name = str(((meta or {}).get("scanner") or {}).get("name", ""))
    found = re.search(r"(\d+(?:\.\d+)?)\s*%\s*window", name)
    percent = float(found.group(1)) if found else acquisition.energy_window_percent
    half = PHOTOPEAK_KEV * percent / 200.0
    return round(PHOTOPEAK_KEV - half, 2), round(PHOTOPEAK_KEV + half, 2)


def provenance_comment(record: Record, info: SyntheticInfo) -> str:
    """The Image Comments text that carries a study's condition and provenance (see module doc)."""
    payload = {
        "label": record.label,
        "perugini_grade": record.perugini_grade,
        "source": info.source,
        "seed": info.seed,
        "tracer": record.tracer or None,
        "burden": record.get("burden") or None,
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


def study_to_dicom(
    counts: np.ndarray,
    record: Record,
    meta: Mapping[str, Any] | None = None,
    *,
    pixel_spacing_mm: float,
    acquisition: NMAcquisition | None = None,
    identity: ExportIdentity | None = None,
) -> Dataset:
    """Build the NM Image object of one synthetic or simulated study (not yet saved).

    ``counts`` is the study's (2, rows, columns) array, anterior then posterior as acquired; it is
    written as 16-bit unsigned counts and refused if a pixel exceeds 65535.  ``record`` supplies
    label, Perugini grade, tracer and the provenance; ``meta`` (the study's ground truth) the
    simulated person's sex, only when it is ``M`` or ``F``, and the scanner's energy window.  No id,
    site or free text of the source dataset is copied, so nothing identifying can leak.  ``identity``
    (default: a fresh random one) derives the UIDs and the patient id from the study id and the
    record's patient id, and gives the date.
    """
    if record.source == "real":
        raise ValueError(f"study {record.study_id} is real patient data, which is never exported")
    info = SyntheticInfo.from_record(record)
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
    identity = identity or ExportIdentity.fresh()
    today, time_now = identity.date.strftime("%Y%m%d"), identity.date.strftime("%H%M%S")

    ds = Dataset()
    # SOP Common, with the synthetic markers.
    ds.SOPClassUID = codes.NM_IMAGE_STORAGE
    ds.SOPInstanceUID = identity.uid(record.study_id, "instance")
    ds.InstanceCreationDate, ds.InstanceCreationTime = today, time_now
    ds.SyntheticData = "YES"
    equipment = Dataset()
    equipment.Manufacturer = "synthscan"
    equipment.ManufacturerModelName = (
        (info.model_name or "diffusion generator") if info.source == "synthetic" else "physics simulator"
    )[:64]
    equipment.SoftwareVersions = synthscan.__version__
    equipment.PurposeOfReferenceCodeSequence = codes.code_sequence(codes.SYNTHESIZING_EQUIPMENT)
    equipment.ContributionDateTime = identity.date.strftime("%Y%m%d%H%M%S")
    equipment.ContributionDescription = "Generated the pixel data; no real patient was imaged"
    ds.ContributingEquipmentSequence = Sequence([equipment])

    # Patient: a synthetic person with identity removed.
    patient_id = identity.patient_id(record.patient_id)
    ds.PatientName = f"SYNTHETIC^{patient_id}"
    ds.PatientID = patient_id
    ds.PatientBirthDate = ""
    sex = ((meta or {}).get("patient") or {}).get("sex")
    ds.PatientSex = sex if sex in ("M", "F") else ""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = f"synthscan {synthscan.__version__}: synthetic image, random identifiers"
    ds.DeidentificationMethodCodeSequence = method_codes()

    # Study and series: one study, one series, one instance.
    ds.StudyInstanceUID = identity.uid(record.study_id, "study")
    ds.SeriesInstanceUID = identity.uid(record.study_id, "series")
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
    ds.DerivationDescription = info.describe(record.label, record.perugini_grade, record.get("burden"))[:1024]
    ds.ImageComments = provenance_comment(record, info)
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.CountsAccumulated = int(counts.sum(dtype=np.int64))
    scan_length_mm = rows * pixel_spacing_mm
    ds.ScanLength = round(scan_length_mm)
    ds.ScanVelocity = acquisition.scan_velocity
    ds.WholeBodyTechnique = "1PS"
    ds.ActualFrameDuration = round(1000 * scan_length_mm / acquisition.scan_velocity_mm_s)

    # NM Isotope: 99mTc photopeak window, radionuclide and tracer.
    window = Dataset()
    window_range = Dataset()
    lower, upper = energy_window_kev(meta, acquisition)
    window_range.EnergyWindowLowerLimit, window_range.EnergyWindowUpperLimit = f"{lower:g}", f"{upper:g}"
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
    # VOI LUT: counts 0 .. 99.5th percentile of the non-zero pixels (linear, PS3.3 C.11.2.1.2).
    lit = counts[counts > 0]
    top = max(1, round(float(np.percentile(lit, 99.5)))) if lit.size else 1
    ds.WindowCenter, ds.WindowWidth = f"{(top + 1) / 2:g}", top + 1
    ds.WindowCenterWidthExplanation = "Counts 0 to 99.5th percentile"
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


NOT_GENERATED = (
    "not made by a synthscan generator run recorded in this dataset's dataset.json "
    "(studies read from DICOM or copied in are never exported)"
)


def generator_models(dataset: SynthDataset) -> set[str]:
    """SHA-256 of every model that sampled into ``dataset`` (``sample`` and ``augment`` record them)."""
    provenance = dataset.info.provenance
    found = {(provenance.get(key) or {}).get("model_sha256") for key in ("generator", "augment")}
    return {sha for sha in found if sha}


def origin_problem(dataset: SynthDataset, record: Record) -> str | None:
    """Why ``record`` may not leave ``dataset``, or ``None`` when a synthscan run of its own made it.

    Synthetic rows need the hash of a model recorded by ``sample``/``augment`` in this dataset;
    simulated rows a ``simulate`` run; both a seed.  The row's text alone proves nothing.
    """
    if record.source == "real":
        return "real patient data is never exported"
    made = (
        record.get("model_sha256") in generator_models(dataset)
        if record.source == "synthetic"
        else "simulator" in dataset.info.provenance
    )
    return None if made and record.seed is not None else NOT_GENERATED


def _exportable(
    dataset: SynthDataset, records: Iterable[Record], flagged: set[str], allow_flagged: bool
) -> tuple[list[Record], list[tuple[str, str]]]:
    keep: list[Record] = []
    refused: list[tuple[str, str]] = []
    for record in records:
        problem = origin_problem(dataset, record)
        if problem is not None:
            refused.append((record.study_id, problem))
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


def _kept_problem(
    path: Path, record: Record, identity: ExportIdentity, acquisition: NMAcquisition
) -> str | None:
    """Why an object already in the folder is not what this export would write, or None.

    Exports are deterministic, so a resumed export keeps an object only when it is whole and carries
    this dataset's UID and the same scan velocity, manufacturer and collimator (the options a user
    sets); anything else would leave a folder of mixed exports.
    """
    try:
        ds = dcmread(path)
        size = int(ds.Rows) * int(ds.Columns) * int(ds.NumberOfFrames) * int(ds.BitsAllocated) // 8
        whole = len(ds.PixelData) == size
    except Exception:  # whatever pydicom cannot read (it raises several kinds) is not a whole object
        whole = False
    if not whole:
        return "is not a whole NM object; delete it and rerun to write it again"
    try:
        uid = str(ds.SOPInstanceUID)
        written = (
            float(ds.ScanVelocity),
            str(ds.Manufacturer),
            str(ds.DetectorInformationSequence[0].CollimatorGridName),
        )
    except (AttributeError, IndexError, TypeError, ValueError):
        return "was not written by export-dicom; move it away or export into a new folder"
    if uid != identity.uid(record.study_id, "instance"):
        return (
            f"is not this dataset's export of {record.study_id} (another dataset, or a new export "
            "identity); export into a new folder"
        )
    wanted = (
        float(acquisition.scan_velocity),
        acquisition.manufacturer,
        acquisition.collimator_name,
    )
    if written != wanted:
        return (
            f"was written with scan velocity {written[0]:g} mm/s, manufacturer {written[1]!r} and "
            f"collimator {written[2]!r}, not {wanted[0]:g}, {wanted[1]!r} and {wanted[2]!r}; rerun with "
            "the first export's options, or export into a new folder"
        )
    return None


def _checked_present(
    out: Path, keep: list[Record], identity: ExportIdentity, acquisition: NMAcquisition
) -> set[str]:
    """The studies whose objects a resumed export keeps, all checked before anything is written."""
    present = set()
    for record in keep:
        path = out / f"{record.study_id}.dcm"
        if path.is_file():
            problem = _kept_problem(path, record, identity, acquisition)
            if problem is not None:
                raise ExportError(f"{path} {problem}")
            present.add(record.study_id)
    return present


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
    acquisition: NMAcquisition | None = None,
    progress: bool = True,
) -> ExportReport:
    """Export the simulated and synthetic studies of ``dataset`` as NM DICOM files under ``out``.

    Only studies a synthscan run of this dataset made are exported (:func:`origin_problem`); real
    ones and anything else are skipped and listed as refused (real patient data never leaves),
    and so is a study whose file says it was read from DICOM.  Synthetic studies go through the
    privacy audit (:func:`synthscan.evaluation.privacy.flagged_studies_for_export`, which reuses a
    current saved audit or runs one against ``train``); flagged ones are refused unless
    ``allow_flagged``.  Without ``dicomdir`` each study becomes ``out/<study_id>.dcm``, written
    atomically, and an interrupted export resumes where it stopped, keeping an object already
    there only if it is whole and written by this export with the same options (all checked before
    anything is written).  With ``dicomdir`` the files are laid out as a PS3.10 File-set
    (``PTxxxxxx/STxxxxxx/SExxxxxx/IMxxxxxx``) with a DICOMDIR, built by pydicom's
    :class:`~pydicom.fileset.FileSet` in a new folder.  Plain exports also write
    ``out/export_report.json`` listing what was written and refused (a File-set gets no stray file:
    the returned report says it).  Raises :class:`ExportError` when nothing is exportable or an
    object already in ``out`` is not one this export would write.
    """
    from synthscan.evaluation.privacy import flagged_studies_for_export

    out = Path(out)
    selected = list(dataset)
    flagged: set[str] = set()
    if any(r.source == "synthetic" and origin_problem(dataset, r) is None for r in selected):
        flagged = set(flagged_studies_for_export(dataset, train=train, report=audit_report))
    keep, refused = _exportable(dataset, selected, flagged, allow_flagged)
    report = ExportReport(refused=refused)
    if refused:
        log.warning("refusing %d of %d studies", len(refused), len(selected))
    if not keep:
        raise _nothing_exported(dataset, report)
    if dicomdir and out.exists() and any(out.iterdir()):
        raise ExportError(f"{out} is not empty; a DICOMDIR export needs a new folder")
    out.mkdir(parents=True, exist_ok=True)

    acquisition = acquisition or NMAcquisition()
    identity = ExportIdentity.of(dataset)
    fileset = FileSet() if dicomdir else None
    present = set() if dicomdir else _checked_present(out, keep, identity, acquisition)
    for record in tqdm(keep, desc="export-dicom", disable=not progress):
        path = out / f"{record.study_id}.dcm"
        if record.study_id in present:
            report.already_present.append(record.study_id)
            continue
        study = dataset.read(record)
        try:
            if "dicom" in study.meta:
                raise ValueError(NOT_GENERATED)
            ds = study_to_dicom(
                study.counts,
                record,
                study.meta,
                pixel_spacing_mm=dataset.info.pixel_spacing_mm,
                acquisition=acquisition,
                identity=identity,
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

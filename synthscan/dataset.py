"""The dataset contract every synthscan module reads and writes.

A dataset is a folder::

    dataset.json      label names → ids, matrix, pixel spacing, view order, provenance
    manifest.csv      one row per study (columns below; extra columns are kept)
    studies/<id>.npz  ``counts``: unsigned integer array (2, H, W), index 0 anterior, index 1
                      posterior as acquired (seen from behind); ``meta``: JSON ground truth
    synthetic/<id>.npz  the same for generated studies (source ``synthetic``), kept apart
    splits.json       patient-level splits, written once by :func:`load_or_create_splits`

Study files and the manifest are written atomically, so an interrupted writer leaves either the
previous state or the new one, never a truncated file.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import re
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synthscan.atomic import atomic_open, atomic_write_text, file_sha256
from synthscan.labels import (
    DEFAULT_MATRIX,
    DEFAULT_PIXEL_SPACING_MM,
    LABELS,
    PATIENT_SOURCES,
    VIEWS,
    check_grade,
    check_label,
    check_source,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.csv"
INFO = "dataset.json"
REQUIRED_INFO = frozenset({"format_version", "matrix", "pixel_spacing_mm", "labels", "views"})
"""Fields every ``dataset.json`` synthscan writes holds (``provenance`` and the rest have defaults)."""
SPLITS = "splits.json"
STUDY_DIR = "studies"
SYNTHETIC_DIR = "synthetic"
JOURNAL_DIR = ".journal"  # rows written by one of several processes, not yet merged into the manifest
CORE_COLUMNS: tuple[str, ...] = (
    "study_id",
    "patient_id",
    "path",
    "label",
    "perugini_grade",
    "source",
    "site",
    "tracer",
    "seed",
)
FILE_BYTES = "file_bytes"
FILE_SHA256 = "file_sha256"
"""Extra manifest columns written with every study: its file's size and checksum, so a resumed writer
or ``synthscan check`` can tell a complete file from a truncated, corrupt or replaced one."""
STUDY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""Study ids name their file under ``studies/``, so they are restricted to safe file-name characters."""


class DatasetError(ValueError):
    """A dataset folder or study does not follow the contract; the message says how to fix it."""


@dataclass(frozen=True)
class Record:
    """One manifest row: the study's identity and labels, not its pixels."""

    study_id: str
    patient_id: str
    path: str
    label: str
    perugini_grade: int | None = None
    source: str = "real"
    site: str = ""
    tracer: str = ""
    seed: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("study_id", "patient_id", "path"):
            if not getattr(self, name):
                raise DatasetError(f"manifest field {name!r} is empty")
        if not STUDY_ID_PATTERN.fullmatch(self.study_id):
            raise DatasetError(
                f"study_id {self.study_id!r} may hold only letters, digits, '.', '_', '-' (it names a file)"
            )
        clashing = sorted(set(self.extra) & set(CORE_COLUMNS))
        if clashing:
            raise DatasetError(f"extra columns {clashing} clash with core columns; pass them as fields")
        check_label(self.label)
        check_grade(self.label, self.perugini_grade)
        check_source(self.source)

    def to_row(self) -> dict[str, str]:
        row = {
            "study_id": self.study_id,
            "patient_id": self.patient_id,
            "path": self.path,
            "label": self.label,
            "perugini_grade": "" if self.perugini_grade is None else str(self.perugini_grade),
            "source": self.source,
            "site": self.site,
            "tracer": self.tracer,
            "seed": "" if self.seed is None else str(self.seed),
        }
        row.update({k: str(v) for k, v in self.extra.items()})
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> Record:
        missing = [c for c in CORE_COLUMNS if c not in row]
        if missing:
            raise DatasetError(f"manifest row lacks columns {missing}; required: {list(CORE_COLUMNS)}")
        try:
            return cls(
                study_id=row["study_id"],
                patient_id=row["patient_id"],
                path=row["path"],
                label=row["label"],
                perugini_grade=_optional_int(row["perugini_grade"]),
                source=row["source"],
                site=row["site"],
                tracer=row["tracer"],
                seed=_optional_int(row["seed"]),
                extra={k: v for k, v in row.items() if k not in CORE_COLUMNS},
            )
        except ValueError as error:
            raise DatasetError(f"study {row.get('study_id')!r}: {error}") from error

    def get(self, column: str, default: str = "") -> Any:
        """Value of a core or extra column by name."""
        if column in CORE_COLUMNS:
            return getattr(self, column)
        return self.extra.get(column, default)


@dataclass
class Study:
    """A record with its pixels and ground truth."""

    record: Record
    counts: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetInfo:
    """Contents of ``dataset.json``."""

    matrix: tuple[int, int] = DEFAULT_MATRIX
    pixel_spacing_mm: float = DEFAULT_PIXEL_SPACING_MM
    labels: dict[str, int] = field(default_factory=lambda: dict(LABELS))
    views: tuple[str, ...] = VIEWS
    view_orientation: str = "posterior stored as acquired (seen from behind)"
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        data = asdict(self)
        data["matrix"] = list(self.matrix)
        data["views"] = list(self.views)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = INFO) -> DatasetInfo:
        """Parse ``dataset.json`` (``where`` names it in errors); a damaged or foreign file is refused."""
        fix = "restore it from a copy, or recreate the dataset (its writer writes every field)"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{where} is not valid JSON ({error}); {fix}") from None
        if isinstance(data, dict) and data.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
            raise DatasetError(
                f"{where} is of dataset format {data['format_version']!r}; this synthscan reads format "
                f"{FORMAT_VERSION}"
            )
        missing = sorted(REQUIRED_INFO - set(data)) if isinstance(data, dict) else sorted(REQUIRED_INFO)
        if missing:
            raise DatasetError(f"{where} lacks {missing} (not a synthscan dataset.json); {fix}")
        try:
            known = set(cls.__dataclass_fields__)
            info = cls(**{k: v for k, v in data.items() if k in known})
            info.matrix = tuple(int(v) for v in info.matrix)
            info.pixel_spacing_mm = float(info.pixel_spacing_mm)
            info.views = tuple(str(v) for v in info.views)
        except (TypeError, ValueError) as error:
            raise DatasetError(f"{where} holds a malformed field ({error}); {fix}") from None
        try:
            check_grid(info.matrix, info.pixel_spacing_mm)
        except DatasetError as error:
            raise DatasetError(f"{where}: {error}; {fix}") from None
        if info.labels != LABELS:
            raise DatasetError(f"{where} labels {info.labels} differ from synthscan's {LABELS}")
        if info.views != VIEWS:
            raise DatasetError(f"{where} views {list(info.views)} differ from synthscan's {list(VIEWS)}")
        return info


def check_grid(matrix: tuple[int, ...], pixel_spacing_mm: float) -> None:
    """A dataset's grid: two positive sizes (rows, columns) and a finite, positive pixel size."""
    if len(matrix) != 2 or min(matrix) < 1:
        raise DatasetError(f"matrix {list(matrix)} is not two positive sizes (rows, columns)")
    if not math.isfinite(pixel_spacing_mm) or pixel_spacing_mm <= 0:
        raise DatasetError(f"pixel spacing {pixel_spacing_mm} mm is not a positive size")


def same_pixel_size(a_mm: float, b_mm: float) -> bool:
    """Two pixel sizes alike to 0.1 %: studies of both can be mixed (the body keeps its size in pixels)."""
    return math.isclose(a_mm, b_mm, rel_tol=1e-3)


def _optional_int(value: str | int | None) -> int | None:
    if value is None or value == "":
        return None
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"expected an integer, got {value!r}")
    return int(number)


def check_counts(counts: np.ndarray, matrix: tuple[int, int]) -> np.ndarray:
    """Validate a study's pixel array and return it as the smallest lossless unsigned dtype."""
    counts = np.asarray(counts)
    expected = (len(VIEWS), *matrix)
    if counts.shape != expected:
        raise DatasetError(f"counts must have shape {expected} (views, rows, columns), got {counts.shape}")
    if counts.dtype.kind == "i":
        if counts.size and counts.min() < 0:
            raise DatasetError(f"counts must be non-negative (photon counts), found {counts.min()}")
        counts = counts.astype(np.uint64)
    elif counts.dtype.kind != "u":
        raise DatasetError(f"counts must be non-negative integers (photon counts), got dtype {counts.dtype}")
    peak = int(counts.max(initial=0))
    if peak > np.iinfo(np.uint32).max:
        raise DatasetError(f"counts peak {peak} does not fit uint32; is this really a count image?")
    dtype = np.uint16 if peak <= np.iinfo(np.uint16).max else np.uint32
    return counts.astype(dtype, copy=False)


def write_study_file(path: str | Path, counts: np.ndarray, meta: Mapping[str, Any]) -> tuple[int, str]:
    """Write one study ``.npz`` atomically (``counts`` and JSON ``meta``); returns its size and SHA-256.

    A standard ``.npz`` (``np.load`` reads it) deflated at level 1: count images compress almost as
    well as at zlib's default level 6, several times faster.
    """
    arrays = {"counts": np.asarray(counts), "meta": np.array(json.dumps(meta, default=_json_default))}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    data = buffer.getvalue()
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return len(data), hashlib.sha256(data).hexdigest()


def read_study_file(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read ``counts`` and ``meta`` from a study ``.npz``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"study file {path} does not exist; is the dataset folder complete?")
    in_dataset = path.parent.name in (STUDY_DIR, SYNTHETIC_DIR)
    if not in_dataset and not zipfile.is_zipfile(path):  # np.load would try it as a pickle and say so
        raise DatasetError(f"{path} is not a study .npz (counts and meta); give a study or a dataset folder")
    try:
        with np.load(path, allow_pickle=False) as data:
            counts = data["counts"]
            meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DatasetError(
            f"study file {path} is corrupt or not a study ({type(error).__name__}: {error}); "
            f"`synthscan check {_dataset_root(path)}` lists every damaged study"
        ) from error
    return counts, meta


def _dataset_root(study_path: Path) -> Path:
    """The dataset folder of a study file under ``studies/`` or ``synthetic/`` (else its folder)."""
    parent = study_path.parent
    return parent.parent if parent.name in (STUDY_DIR, SYNTHETIC_DIR) else parent


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in study metadata")


class Dataset:
    """A dataset folder: its info, its manifest records, and access to study files."""

    def __init__(self, root: str | Path, info: DatasetInfo, records: list[Record]):
        self.root = Path(root)
        self.info = info
        self._records = records
        self._index = {r.study_id: i for i, r in enumerate(records)}

    @classmethod
    def create(
        cls,
        root: str | Path,
        *,
        matrix: tuple[int, int] = DEFAULT_MATRIX,
        pixel_spacing_mm: float = DEFAULT_PIXEL_SPACING_MM,
        provenance: Mapping[str, Any] | None = None,
        exist_ok: bool = False,
    ) -> Dataset:
        """Create an empty dataset folder, or open it if ``exist_ok`` and its grid is this one."""
        root = Path(root)
        if (root / INFO).exists():
            if not exist_ok:
                raise DatasetError(f"{root} already holds a dataset; choose a new folder")
            dataset = cls.open(root)
            if dataset.info.matrix != tuple(matrix):
                raise DatasetError(
                    f"{root} holds a {dataset.info.matrix} dataset, cannot add {tuple(matrix)} studies"
                )
            if not same_pixel_size(dataset.info.pixel_spacing_mm, pixel_spacing_mm):
                raise DatasetError(
                    f"{root} holds studies of {dataset.info.pixel_spacing_mm} mm pixels, cannot add "
                    f"{pixel_spacing_mm} mm ones (the body would change size); keep its pixel size "
                    f"(e.g. --pixel-spacing-mm {dataset.info.pixel_spacing_mm}) or choose a new folder"
                )
            return dataset
        if root.exists() and any(root.iterdir()):
            raise DatasetError(f"{root} exists and is not an empty folder; choose a new folder")
        check_grid(tuple(matrix), float(pixel_spacing_mm))
        info = DatasetInfo(
            matrix=tuple(int(v) for v in matrix),
            pixel_spacing_mm=float(pixel_spacing_mm),
            provenance=dict(provenance or {}),
        )
        (root / STUDY_DIR).mkdir(parents=True, exist_ok=True)
        dataset = cls(root, info, [])
        dataset.save_manifest()
        atomic_write_text(root / INFO, info.to_json())  # written last: its presence marks a complete folder
        return dataset

    @classmethod
    def open(cls, root: str | Path) -> Dataset:
        root = Path(root)
        if not (root / INFO).is_file() or not (root / MANIFEST).is_file():
            raise DatasetError(
                f"{root} is not a synthscan dataset (needs {INFO} and {MANIFEST}); "
                "create one with `synthscan simulate`, `synthscan import-dicom` or `synthscan import-public`"
            )
        info = DatasetInfo.from_json((root / INFO).read_text(encoding="utf-8"), str(root / INFO))
        with open(root / MANIFEST, newline="", encoding="utf-8") as handle:
            try:
                records = [Record.from_row(row) for row in csv.DictReader(handle)]
            except DatasetError as error:
                raise DatasetError(f"{root / MANIFEST}: {error}") from None
        seen: set[str] = set()
        for record in records:
            if record.study_id in seen:
                raise DatasetError(f"{root / MANIFEST}: study_id {record.study_id!r} appears twice")
            seen.add(record.study_id)
        return cls(root, info, records)

    def reload(self) -> None:
        """Read info and manifest again (another process has written them)."""
        fresh = Dataset.open(self.root)
        self.info, self._records, self._index = fresh.info, fresh._records, fresh._index

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self._records)

    def __contains__(self, study_id: object) -> bool:
        return study_id in self._index

    @property
    def records(self) -> list[Record]:
        return list(self._records)

    def record(self, study_id: str) -> Record:
        try:
            return self._records[self._index[study_id]]
        except KeyError:
            raise DatasetError(f"no study {study_id!r} in {self.root}") from None

    def filter(self, predicate: Callable[[Record], bool] | None = None, **columns: Any) -> list[Record]:
        """Records whose columns equal the given values (a tuple/list/set value means "any of")."""

        def keep(record: Record) -> bool:
            for name, wanted in columns.items():
                value = record.get(name)
                if isinstance(wanted, tuple | list | set | frozenset):
                    if value not in wanted:
                        return False
                elif value != wanted:
                    return False
            return predicate is None or predicate(record)

        return [r for r in self._records if keep(r)]

    def read(self, study: str | Record) -> Study:
        """Load a study's counts and ground truth, validating the array against the dataset matrix."""
        record = self.record(study) if isinstance(study, str) else study
        counts, meta = read_study_file(self.root / record.path)
        try:
            counts = check_counts(counts, self.info.matrix)
        except DatasetError as error:
            raise DatasetError(f"{self.root / record.path}: {error}") from error
        return Study(record, counts, meta)

    def fingerprint(self, records: Iterable[Record], *salt: object) -> str:
        """Hash of ``salt`` and each study's id, file size and modification time.

        Caches derived from study files are keyed by it, so a rewritten study invalidates them.
        """
        digest = hashlib.sha256(json.dumps([str(s) for s in salt]).encode())
        for record in records:
            stat = (self.root / record.path).stat()
            digest.update(f"{record.study_id}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        return digest.hexdigest()

    def iter_studies(self, records: Iterable[Record] | None = None) -> Iterator[Study]:
        """Stream studies one at a time (memory stays flat in the dataset size)."""
        for record in self._records if records is None else records:
            yield self.read(record)

    def study_path(self, study_id: str, source: str = "real") -> str:
        """Relative path of a new study file (generated studies go to their own folder)."""
        return f"{SYNTHETIC_DIR if source == 'synthetic' else STUDY_DIR}/{study_id}.npz"

    def add(
        self,
        counts: np.ndarray,
        *,
        study_id: str,
        patient_id: str,
        label: str,
        perugini_grade: int | None = None,
        source: str = "real",
        site: str = "",
        tracer: str = "",
        seed: int | None = None,
        meta: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        replace: bool = False,
    ) -> Record:
        """Write a study file and add its record in memory; call :meth:`save_manifest` to persist.

        Prefer :meth:`writer`, which persists the manifest periodically and on exit.
        """
        if study_id in self._index and not replace:
            raise DatasetError(f"study_id {study_id!r} already in {self.root}")
        record = Record(
            study_id=study_id,
            patient_id=patient_id,
            path=self.study_path(study_id, source),
            label=label,
            perugini_grade=perugini_grade,
            source=source,
            site=site,
            tracer=tracer,
            seed=seed,
            extra={k: "" if v is None else str(v) for k, v in (extra or {}).items()},
        )
        counts = check_counts(counts, self.info.matrix)
        size, sha256 = write_study_file(self.root / record.path, counts, dict(meta or {}))
        extra = {**record.extra, FILE_BYTES: str(size), FILE_SHA256: sha256}
        record = dataclasses.replace(record, extra=extra)
        if study_id in self._index:
            self._records[self._index[study_id]] = record
        else:
            self._index[study_id] = len(self._records)
            self._records.append(record)
        return record

    def verify(self, record: Record, *, quick: bool = False) -> str | None:
        """What is wrong with ``record``'s study file, or ``None`` when it holds the recorded study.

        Checks that the file exists and has the size recorded in the manifest; then, unless
        ``quick``, its checksum, that its counts read back with the dataset's shape and that its
        ground truth (when it records one) names the row's label and grade. ``quick``
        (a stat, or opening the archive when no size is recorded) is cheap enough to run over a
        whole dataset before a command writes anything.
        """
        path = self.root / record.path
        if not path.is_file():
            return f"{path} is missing"
        size = record.extra.get(FILE_BYTES)
        actual = path.stat().st_size
        if size and actual != int(size):
            return f"{path} has {actual} bytes, the manifest records {size} (truncated or replaced)"
        if quick:
            if size:
                return None
            try:
                with zipfile.ZipFile(path) as archive:
                    if "counts.npy" not in archive.namelist():
                        return f"{path} holds no counts array"
            except (OSError, zipfile.BadZipFile) as error:
                return f"{path} is corrupt or not a study ({error})"
            return None
        sha256 = record.extra.get(FILE_SHA256)
        if sha256 and file_sha256(path) != sha256:
            return f"{path} differs from the checksum in the manifest (corrupt or replaced)"
        try:
            meta = self.read(record).meta
        except DatasetError as error:
            return str(error)
        for column in ("label", "perugini_grade"):
            if column in meta and meta[column] != record.get(column):
                return f"{path} holds {column} {meta[column]!r}, the manifest row says {record.get(column)!r}"
        return None

    def broken(self, records: Iterable[Record] | None = None, *, quick: bool = False) -> dict[str, str]:
        """Study id → problem for every record (default: all) whose file does not verify."""
        problems = {}
        for record in self._records if records is None else records:
            problem = self.verify(record, quick=quick)
            if problem is not None:
                problems[record.study_id] = problem
        return problems

    def unlisted_files(self) -> list[Path]:
        """Study files under ``studies/`` and ``synthetic/`` that no manifest row names."""
        listed = {self.root / r.path for r in self._records}
        folders = (self.root / STUDY_DIR, self.root / SYNTHETIC_DIR)
        return [p for folder in folders for p in sorted(folder.glob("*.npz")) if p not in listed]

    def remove(self, study_ids: Iterable[str]) -> None:
        """Drop the rows (and delete the files) of ``study_ids``; persists the manifest."""
        drop = set(study_ids)
        for study_id in drop:
            (self.root / self.record(study_id).path).unlink(missing_ok=True)
        self._records = [r for r in self._records if r.study_id not in drop]
        self._index = {r.study_id: i for i, r in enumerate(self._records)}
        self.save_manifest()

    def save_manifest(self) -> None:
        """Rewrite ``manifest.csv`` atomically (core columns first, then extra columns sorted)."""
        extra_columns = sorted({k for r in self._records for k in r.extra})
        columns = [*CORE_COLUMNS, *extra_columns]
        with atomic_open(self.root / MANIFEST, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            for record in self._records:
                writer.writerow(record.to_row())

    def update_provenance(self, **entries: Any) -> None:
        self.info.provenance.update(entries)
        atomic_write_text(self.root / INFO, self.info.to_json())

    def writer(self, flush_every_s: float = 2.0, *, journal: str | None = None) -> DatasetWriter:
        """A streaming writer; with ``journal`` (a name unique per process) rows go to a journal that
        :meth:`merge_journals` moves into the manifest, so several processes can write one dataset."""
        return DatasetWriter(self, flush_every_s, journal=journal)

    def merge_journals(self, order: Sequence[str] = ()) -> int:
        """Move the rows of every process journal into the manifest; returns how many were merged.

        Rows whose study file is missing or does not match its recorded size are dropped (their
        studies are simply generated again); a journal's last line may be cut by a killed process.
        A row of a study already listed replaces it. Then the rows named in ``order`` (study ids) are
        put in that order after all others, so the manifest does not depend on which process wrote
        which study, nor on where a run was interrupted.
        """
        folder = self.root / JOURNAL_DIR
        journals = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
        rows: dict[str, Record] = {}
        for journal in journals:
            for line in journal.read_text(encoding="utf-8").splitlines():
                try:
                    record = Record.from_row(json.loads(line))
                except (json.JSONDecodeError, DatasetError):
                    continue
                if self.verify(record, quick=True) is None:
                    rows[record.study_id] = record
        count = len(rows)
        merged = [rows.pop(r.study_id, r) for r in self._records] + list(rows.values())
        rank = {study_id: i for i, study_id in enumerate(order)}
        merged.sort(key=lambda r: rank.get(r.study_id, -1))  # stable: unordered rows keep their place first
        if merged != self._records:
            self._records = merged
            self._index = {r.study_id: i for i, r in enumerate(merged)}
            self.save_manifest()
        for journal in journals:
            journal.unlink()
        return count


class DatasetWriter:
    """Stream studies into a dataset; the manifest is persisted atomically every few seconds and on exit.

    A study whose file was written but whose row was not yet persisted is simply written again
    by a resumed run (writers regenerate deterministically from recorded seeds). With a ``journal``
    name, each row is appended (and synced) to ``JOURNAL_DIR/<journal>.jsonl`` as its file is
    written, and the manifest is left to :meth:`Dataset.merge_journals`.
    """

    def __init__(self, dataset: Dataset, flush_every_s: float = 2.0, *, journal: str | None = None):
        self.dataset = dataset
        self.flush_every_s = flush_every_s
        self._last_flush = time.monotonic()
        self._dirty = False
        self._journal = None if journal is None else dataset.root / JOURNAL_DIR / f"{journal}.jsonl"
        if self._journal is not None:
            self._journal.parent.mkdir(exist_ok=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._journal is None:
            self.flush()

    def add(self, counts: np.ndarray, **fields: Any) -> Record:
        record = self.dataset.add(counts, **fields)
        if self._journal is not None:
            with open(self._journal, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record.to_row()) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            return record
        self._dirty = True
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()
        return record

    def flush(self) -> None:
        if self._dirty:
            self.dataset.save_manifest()
            self._dirty = False
        self._last_flush = time.monotonic()


DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.7, "val": 0.15, "test": 0.15}


Stratum = Callable[[Record], tuple[int, ...]]
"""A study's stratum for patient-level splits: a tuple of non-negative ints (a patient's stratum is the
element-wise maximum over its studies, e.g. its worst label)."""


def label_stratum(record: Record) -> tuple[int, ...]:
    """The default stratum: the study's label id."""
    return (LABELS[record.label],)


def make_patient_splits(
    records: Iterable[Record],
    *,
    seed: int,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    stratum: Stratum = label_stratum,
) -> dict[str, list[str]]:
    """Split patients (not studies) into named parts, stratified by each patient's ``stratum``.

    Returns split name → sorted patient ids. Deterministic in ``seed``; no patient in two splits.
    """
    total = sum(fractions.values())
    if not fractions or any(f < 0 for f in fractions.values()) or not math.isclose(total, 1.0):
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {dict(fractions)}")
    strata: dict[str, tuple[int, ...]] = {}
    for record in records:
        key = stratum(record)
        previous = strata.get(record.patient_id, key)
        strata[record.patient_id] = tuple(max(a, b) for a, b in zip(previous, key, strict=True))
    rng = np.random.default_rng(seed)
    splits: dict[str, list[str]] = {name: [] for name in fractions}
    names = list(fractions)
    for key in sorted(set(strata.values())):
        patients = sorted(p for p, k in strata.items() if k == key)
        patients = [patients[i] for i in rng.permutation(len(patients))]
        bounds = np.round(np.cumsum([fractions[n] for n in names]) * len(patients)).astype(int)
        start = 0
        for name, stop in zip(names, bounds, strict=True):
            splits[name].extend(patients[start:stop])
            start = stop
    return {name: sorted(ids) for name, ids in splits.items()}


def load_or_create_splits(
    dataset: Dataset,
    *,
    seed: int = 0,
    fractions: Mapping[str, float] = DEFAULT_FRACTIONS,
    sources: tuple[str, ...] = PATIENT_SOURCES,
    stratum: Stratum = label_stratum,
    stratified_by: str = "label",
) -> dict[str, list[str]]:
    """Patient-level splits of ``dataset``, created once in ``splits.json`` and reused afterwards.

    Only studies from ``sources`` are split (synthetic studies never enter validation or test), in
    strata named ``stratified_by`` (recorded in the file). Reusing a saved file with a different seed,
    fractions, sources or stratification is refused rather than silently producing a second,
    inconsistent split. A file written before the stratification was recorded (``label``
    stratification) is read as it is: the splits of finished experiments never change under them.
    """
    path = dataset.root / SPLITS
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            settings = (saved["seed"], saved["fractions"], saved.get("sources", list(sources)))
            patients = saved["patients"]
            recorded = saved.get("stratified_by")
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise DatasetError(f"{path} is not a valid splits file ({error}); delete it") from error
        if settings != (seed, dict(fractions), list(sources)) or recorded not in (None, stratified_by):
            raise DatasetError(
                f"{path} was made with seed={settings[0]} fractions={settings[1]} sources={settings[2]} "
                f"stratified by {recorded or 'label'}; asked for seed={seed} fractions={dict(fractions)} "
                f"sources={list(sources)} stratified by {stratified_by}. "
                "Reuse those settings or delete the file."
            )
        if recorded is None and stratified_by != "label":
            log.info("%s predates recorded stratification (by label); reused as written", path)
        assigned = {p for ids in patients.values() for p in ids}
        unsplit = {r.patient_id for r in dataset.filter(source=sources)} - assigned
        if unsplit:
            log.warning(
                "%d patient(s) were added after %s was written and are in no split; delete it to re-split",
                len(unsplit),
                path,
            )
        return patients
    records = dataset.filter(source=sources)
    patients = make_patient_splits(records, seed=seed, fractions=fractions, stratum=stratum)
    payload = {
        "seed": seed,
        "fractions": dict(fractions),
        "sources": list(sources),
        "stratified_by": stratified_by,
        "patients": patients,
    }
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
    return patients


def split_records(dataset: Dataset, patients: Mapping[str, list[str]], split: str) -> list[Record]:
    """Records of ``dataset`` whose patient is in ``patients[split]``."""
    if split not in patients:
        raise DatasetError(f"unknown split {split!r}; available: {', '.join(patients)}")
    members = set(patients[split])
    return [r for r in dataset if r.patient_id in members]

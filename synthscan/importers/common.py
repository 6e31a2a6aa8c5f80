"""What every public-layout importer shares: pseudonyms, image reading, resampling, the write loop.

An importer only has to turn its layout into :class:`SourceStudy` items (one per patient scan, with
a file per view); :func:`write_studies` then converts and writes them, skipping and reporting a study
whose files cannot be read instead of aborting the whole import.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from synthscan.dataset import INFO, Dataset, DatasetError
from synthscan.labels import DEFAULT_MATRIX, DEFAULT_PIXEL_SPACING_MM, VIEWS

log = logging.getLogger(__name__)


class LayoutError(DatasetError):
    """The source folder does not follow the expected layout; the message says what was expected."""


@dataclass(frozen=True)
class SourceStudy:
    """One study found in a source layout, before conversion."""

    key: str
    """The source's own patient key (stable across runs); pseudonymised before it is stored."""
    label: str
    views: Mapping[str, Path | None]
    """View name → image file; ``None`` where the layout lacks that view."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ImportReport:
    """What an import wrote and what it skipped (with the reason)."""

    imported: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    kept_earlier: list[str] = field(default_factory=list)
    """Studies already there to which this run gives another label, Perugini grade or site: a rerun
    never rewrites a study, so they keep the earlier values (import into a new folder to apply these)."""

    def note_present(self, dataset: Dataset, study_id: str, label: str, grade: int | None, site: str) -> None:
        """Count a study already in ``dataset``; note it when this run describes it otherwise."""
        self.already_present.append(study_id)
        record = dataset.record(study_id)
        if (record.label, record.perugini_grade, record.site) != (label, grade, site):
            self.kept_earlier.append(study_id)


@dataclass(frozen=True)
class ImportOptions:
    """Settings shared by every importer."""

    matrix: tuple[int, int] = DEFAULT_MATRIX
    pixel_spacing_mm: float = DEFAULT_PIXEL_SPACING_MM
    site: str = ""
    tracer: str = ""
    salt: str = ""
    posterior_mirrored: bool = False
    """True when the source stores the posterior view already mirrored left-right; it is flipped back."""
    progress: bool = True


def pseudonym(source: str, key: str, salt: str = "") -> str:
    """A stable, non-reversible id for a source key: same key and salt → same id (patient-level splits)."""
    digest = hashlib.sha256(f"{salt}\x00{source}\x00{key}".encode()).hexdigest()
    return f"{source}-{digest[:16]}"


def salt_fingerprint(salt: str) -> str:
    """A record of which salt made a dataset's pseudonyms that does not give the salt away.

    scrypt (memory-hard, about 50 ms a try) rather than a plain hash: the fingerprint sits in
    ``dataset.json``, and a salt recovered from it would let anyone test candidate patient ids.
    """
    return hashlib.scrypt(
        salt.encode(), salt=b"synthscan salt fingerprint", n=2**14, r=8, p=1, dklen=16
    ).hex()


def check_salt(dataset: Dataset, salt: str) -> None:
    """Record the salt's fingerprint in a new dataset; refuse another salt for an existing one.

    With another salt the same patient would get a second pseudonym and could land in two splits.
    """
    fingerprint = salt_fingerprint(salt)
    recorded = dataset.info.provenance.get("salt_fingerprint")
    if recorded is None:
        dataset.update_provenance(salt_fingerprint=fingerprint)
    elif recorded != fingerprint:
        raise DatasetError(
            f"{dataset.root} was imported with another --salt (its dataset.json records a different salt "
            "fingerprint); rerun with that dataset's salt, or import into a new folder"
        )


def number_in_name(path: Path) -> str | None:
    """The last run of digits in a file stem (``A12`` → ``12``, ``0761`` → ``761``)."""
    found = re.findall(r"\d+", path.stem)
    return str(int(found[-1])) if found else None


def read_gray(path: Path) -> np.ndarray:
    """Read an 8-bit (JPEG/PNG) or 16-bit (PNG) greyscale image as an unsigned integer array."""
    with Image.open(path) as image:
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image)
            if array.dtype.kind == "i":
                if array.size and (array.min() < 0 or array.max() > np.iinfo(np.uint16).max):
                    raise ValueError(f"{path}: values outside 0..65535 in a 16-bit image")
                array = array.astype(np.uint16)
            return array.astype(np.uint16, copy=False)
        if image.mode not in ("L", "RGB", "RGBA", "P", "LA"):
            raise ValueError(f"{path}: unsupported image mode {image.mode!r} (expected greyscale)")
        return np.asarray(image.convert("L"), dtype=np.uint8)


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix sending each input pixel's content to the output bins it overlaps.

    Each column sums to 1, so the total is preserved exactly (before rounding).
    """
    edges_in = np.arange(n_in + 1) * (n_out / n_in)
    lo = np.maximum(edges_in[:-1][None, :], np.arange(n_out)[:, None])
    hi = np.minimum(edges_in[1:][None, :], np.arange(1, n_out + 1)[:, None])
    return np.clip(hi - lo, 0.0, None) * (n_in / n_out)


def resample_sum(view: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Area-weighted resampling of a count image to ``shape`` that keeps its integer total exactly.

    Each source pixel's value is split over the target pixels it overlaps in proportion to the
    overlapping area; the result is rounded by largest remainders so the sum is unchanged.
    """
    if view.shape == tuple(shape):
        return view
    rows = _area_weights(view.shape[0], shape[0])
    cols = _area_weights(view.shape[1], shape[1])
    exact = rows @ view.astype(np.float64) @ cols.T
    floor = np.floor(exact)
    result = floor.astype(np.int64)
    missing = int(view.sum(dtype=np.int64)) - int(result.sum())
    if missing > 0:
        order = np.argsort(-(exact - floor), axis=None, kind="stable")[:missing]
        result.flat[order] += 1
    return result.astype(np.uint32 if result.max(initial=0) > np.iinfo(np.uint16).max else np.uint16)


def write_studies(
    studies: Iterable[SourceStudy],
    out: str | Path,
    *,
    source_name: str,
    options: ImportOptions,
    provenance: Mapping[str, Any],
    prepare_view: Any = None,
) -> ImportReport:
    """Convert and write ``studies`` into the dataset at ``out`` (created, or resumed if it exists).

    ``prepare_view(array, view_name, study) -> (array, meta)`` may adjust a view after reading
    (e.g. undo an inverted display); its meta is stored with the study. A study whose file is
    missing or unreadable is skipped and listed in the report and in ``dataset.json``.
    """
    studies = list(studies)
    if not studies:
        raise LayoutError("the source folder holds no studies to import")
    created = not (Path(out) / INFO).exists()
    dataset = Dataset.create(
        out,
        matrix=options.matrix,
        pixel_spacing_mm=options.pixel_spacing_mm,
        provenance=provenance,
        exist_ok=True,
    )
    check_salt(dataset, options.salt)
    report = ImportReport()
    with dataset.writer() as writer:
        for study in tqdm(studies, desc=f"import {source_name}", disable=not options.progress):
            patient_id = pseudonym(source_name, study.key, options.salt)
            study_id = pseudonym(source_name, f"study\x00{study.key}", options.salt)
            if study_id in dataset:
                report.note_present(dataset, study_id, study.label, None, options.site)
                continue
            try:
                counts, view_meta = _convert(study, options, prepare_view)
            except (OSError, ValueError) as error:
                log.warning("skipping %s study %s: %s", source_name, study.key, error)
                report.skipped.append((study.key, str(error)))
                continue
            writer.add(
                counts,
                study_id=study_id,
                patient_id=patient_id,
                label=study.label,
                source="real",
                site=options.site,
                tracer=options.tracer,
                meta={**study.meta, "views": view_meta},
                extra=study.extra,
            )
            report.imported.append(study_id)
    dataset.update_provenance(
        **provenance,
        skipped=[{"key": key, "reason": reason} for key, reason in report.skipped],
    )
    if not len(dataset):
        if created:
            shutil.rmtree(out)
        raise LayoutError(f"no study could be imported; first problem: {report.skipped[0][1]}")
    return report


def _convert(
    study: SourceStudy, options: ImportOptions, prepare_view: Any
) -> tuple[np.ndarray, dict[str, Any]]:
    views = []
    meta: dict[str, Any] = {}
    for name in VIEWS:
        path = study.views.get(name)
        if path is None or not Path(path).is_file():
            raise ValueError(f"missing {name} view" + (f" (expected {path})" if path else ""))
        array = read_gray(Path(path))
        entry: dict[str, Any] = {"source_shape": list(array.shape), "source_dtype": str(array.dtype)}
        if prepare_view is not None:
            array, extra_meta = prepare_view(array, name, study)
            entry.update(extra_meta)
        if name == "posterior" and options.posterior_mirrored:
            array = array[:, ::-1]
        resampled = resample_sum(array, options.matrix)
        entry["resampled"] = array.shape != tuple(options.matrix)
        views.append(resampled)
        meta[name] = entry
    return np.stack(views), meta

"""Build a blinded real-vs-synthetic case set.

A study folder holds::

    study.json               case ids, each reader's own order, token hashes: all the server reads
    cases/<case>.u16         the counts readers see, losslessly: both views, little-endian uint16
    answers.sqlite           answers, sessions and rotated tokens (created by the server or ``score``)
    private/key.json         the answer key; never read by ``serve``
    private/blinding_audit.json  how separable the case files are without reading them

Blinding rests on OS randomness, never on the seed: case ids, which id gets which study and every
reader's order come from :mod:`secrets`, so knowing the code and ``--seed`` predicts nothing;
``--seed`` only chooses which studies enter the case set. Every case file has the same size, holds
nothing but counts and is written in id order. Before the study is released, a blinding audit
(:mod:`.audit`) measures how well low-level statistics of those files tell the sources apart, and a
separable case set is refused. The folder appears only once complete: it is built under a temporary
name and renamed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from synthscan.atomic import atomic_write_bytes, atomic_write_text
from synthscan.dataset import Dataset, DatasetError, Record, same_pixel_size
from synthscan.labels import LABELS, PATIENT_SOURCES, VIEWS

from .audit import (
    DEFAULT_MAX_AUC,
    MIN_ENFORCED_PER_SIDE,
    blinding_audit,
    describe_tells,
    file_features,
    has_tells,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
STUDY_JSON = "study.json"
CASE_DIR = "cases"
ANSWERS_DB = "answers.sqlite"
KEY_JSON = "private/key.json"
AUDIT_JSON = "private/blinding_audit.json"
COUNTS_ENCODING = "little-endian uint16; the views in study.json order, each rows x columns, row-major"
COUNTS_MAX = int(np.iinfo(np.uint16).max)
_SYSTEM_RANDOM = secrets.SystemRandom()


class StudyError(ValueError):
    """A reader-study folder or its inputs are unusable; the message says how to fix it."""


@dataclass(frozen=True)
class CreatedStudy:
    """What ``create`` returns: the folder, the tokens (never stored in clear) and the blinding audit."""

    root: Path
    reader_tokens: dict[str, str]
    admin_token: str
    n_cases: int
    audit: dict[str, Any]


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token (tokens carry 192 random bits, so no salt or stretching is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A reader or admin access token: 192 bits from the OS."""
    return secrets.token_urlsafe(24)


def case_path(root: str | Path, case_id: str) -> Path:
    """The counts file the server sends for ``case_id``."""
    return Path(root) / CASE_DIR / f"{case_id}.u16"


def case_bytes(counts: np.ndarray, source: str) -> bytes:
    """A study's counts as served: little-endian uint16, no header, so every case file has one size."""
    peak = int(counts.max(initial=0))
    if peak > COUNTS_MAX:
        raise StudyError(
            f"{source} has a pixel of {peak} counts, more than 16 bits hold; the viewer serves 16-bit "
            "counts, so rescale or leave out this study"
        )
    return np.ascontiguousarray(counts, dtype="<u2").tobytes()


def split_sources(real: Dataset, synthetic: Dataset) -> tuple[list[Record], list[Record]]:
    """Patient studies of ``real`` and generated studies of ``synthetic``; refuses swapped or wrong inputs.

    A dataset may mix sources (``augment`` adds synthetic studies beside real ones), so each side
    keeps only its own source; a side left with nothing is refused, naming what it holds.
    """
    patients = [r for r in real.records if r.source in PATIENT_SOURCES]
    generated = [r for r in synthetic.records if r.source == "synthetic"]
    swapped = not patients and not generated and any(r.source == "synthetic" for r in real.records)
    hint = "; --real and --synthetic look swapped" if swapped else ""
    if not patients:
        held = dict(Counter(r.source for r in real.records))
        raise StudyError(
            f"--real {real.root} holds no real or simulated studies (sources {held}){hint}; pass a "
            "dataset of patient scans as --real"
        )
    if not generated:
        held = dict(Counter(r.source for r in synthetic.records))
        raise StudyError(
            f"--synthetic {synthetic.root} holds no synthetic studies (sources {held}); pass a dataset "
            "written by `synthscan sample` or `augment` as --synthetic"
        )
    return patients, generated


def condition_quotas(real: list[Record], synthetic: list[Record], per_side: int) -> dict[str, int]:
    """Cases per condition on each side: as even as the smaller side allows, identical on both sides."""
    real_counts = Counter(r.label for r in real)
    synthetic_counts = Counter(r.label for r in synthetic)
    capacity = {label: min(real_counts[label], synthetic_counts[label]) for label in LABELS}
    if sum(capacity.values()) < per_side:
        raise StudyError(
            f"need {per_side} real and {per_side} synthetic studies with matching conditions; found "
            f"real {dict(real_counts)}, synthetic {dict(synthetic_counts)} (usable per condition "
            f"{capacity}); lower -n or add studies"
        )
    quotas = dict.fromkeys(LABELS, 0)
    remaining = per_side
    open_labels = [label for label in LABELS if capacity[label] > 0]
    while remaining:
        share, extra = divmod(remaining, len(open_labels))
        for index, label in enumerate(open_labels):
            quotas[label] += min(share + (index < extra), capacity[label] - quotas[label])
        remaining = per_side - sum(quotas.values())
        open_labels = [label for label in open_labels if quotas[label] < capacity[label]]
    return quotas


def select_studies(
    sides: Sequence[tuple[str, Sequence[Record]]], quotas: dict[str, int], seed: int
) -> list[tuple[str, Record]]:
    """Which studies enter the case set: the quota of each condition drawn per side with ``seed``.

    The only seeded generator of the reader study: it decides membership, never ids or order.
    """
    rng = np.random.default_rng(seed)
    chosen: list[tuple[str, Record]] = []
    for side, records in sides:
        for label, quota in quotas.items():
            pool = [r for r in records if r.label == label]
            picks = rng.choice(len(pool), size=quota, replace=False) if quota else []
            chosen.extend((side, pool[int(i)]) for i in picks)
    return chosen


def new_case_ids(n: int) -> list[str]:
    """``n`` distinct opaque case ids (64 random bits each), sorted."""
    ids: set[str] = set()
    while len(ids) < n:
        ids.add(secrets.token_hex(8))
    return sorted(ids)


def shuffled(items: Sequence[Any]) -> list[Any]:
    """A uniformly random permutation from the OS's randomness, which no seed reproduces."""
    return _SYSTEM_RANDOM.sample(list(items), len(items))


def create_study(
    real_root: str | Path,
    synthetic_root: str | Path,
    out: str | Path,
    *,
    n_cases: int = 400,
    n_readers: int = 2,
    seed: int = 0,
    max_audit_auc: float = DEFAULT_MAX_AUC,
    allow_tells: bool = False,
    progress: bool = True,
) -> CreatedStudy:
    """Select, blind, write and audit a balanced case set and issue reader and admin tokens.

    Raises :class:`StudyError` without leaving a folder when the blinding audit finds tells (AUC above
    ``max_audit_auc``, CI above chance, at least ``MIN_ENFORCED_PER_SIDE`` cases per side) and
    ``allow_tells`` is false.
    """
    if n_cases < 2 or n_cases % 2:
        raise StudyError(f"-n must be an even number ≥ 2 (half real, half synthetic), got {n_cases}")
    if n_readers < 1:
        raise StudyError(f"--readers must be ≥ 1, got {n_readers}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudyError(f"{out} exists and is not an empty folder; choose a new folder for the study")
    try:
        real, synthetic = Dataset.open(real_root), Dataset.open(synthetic_root)
    except DatasetError as error:
        raise StudyError(str(error)) from error
    if real.info.matrix != synthetic.info.matrix:
        raise StudyError(
            f"real scans are {real.info.matrix} and synthetic {synthetic.info.matrix}; image size would "
            "unblind readers, so resample one dataset to the other's matrix first"
        )
    if not same_pixel_size(real.info.pixel_spacing_mm, synthetic.info.pixel_spacing_mm):
        raise StudyError(
            f"real scans have {real.info.pixel_spacing_mm} mm pixels and synthetic "
            f"{synthetic.info.pixel_spacing_mm} mm; body size would unblind readers, so import the real "
            f"scans again with --pixel-spacing-mm {synthetic.info.pixel_spacing_mm}"
        )
    patients, generated = split_sources(real, synthetic)
    per_side = n_cases // 2
    for name, dataset, records in (("real", real, patients), ("synthetic", synthetic, generated)):
        if len(records) < per_side:
            raise StudyError(
                f"the {name} dataset {dataset.root} has {len(records)} {name} studies; {n_cases} cases "
                f"need {per_side} per side; lower -n or add studies"
            )
    quotas = condition_quotas(patients, generated, per_side)
    chosen = select_studies((("real", patients), ("synthetic", generated)), quotas, seed)
    datasets = {"real": real, "synthetic": synthetic}
    cases = dict(zip(new_case_ids(n_cases), shuffled(chosen), strict=True))
    shape = tuple(real.info.matrix)

    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".creating", dir=out.parent))
    try:
        key: dict[str, dict[str, Any]] = {}
        features = {}
        for case_id in tqdm(sorted(cases), desc="write cases", disable=not progress):
            side, record = cases[case_id]
            dataset = datasets[side]
            try:
                counts = dataset.read(record).counts
            except DatasetError as error:
                raise StudyError(str(error)) from error
            data = case_bytes(counts, str(dataset.root / record.path))
            atomic_write_bytes(case_path(build, case_id), data)
            # keyed by source and study, not by the random id, so the audit's folds do not depend on ids
            features[f"{side}/{record.study_id}"] = file_features(
                case_path(build, case_id).read_bytes(), shape
            )
            key[case_id] = {
                "source": side,
                "label": record.label,
                "perugini_grade": record.perugini_grade,
                "dataset": str(dataset.root.resolve()),
                "study_id": record.study_id,
            }
        audit = blinding_audit(features, {name: name.split("/")[0] for name in features}, seed=seed)
        tells = has_tells(audit["summary"], max_audit_auc, per_side)
        audit["summary"].update(
            max_auc=max_audit_auc,
            enforced=per_side >= MIN_ENFORCED_PER_SIDE,
            tells=tells,
            allowed_tells=allow_tells,
        )
        if tells and not allow_tells:
            auc, (low, high) = audit["summary"]["auc"], audit["summary"]["ci95"]
            raise StudyError(
                f"blinding audit: low-level statistics of the case files tell real from synthetic with AUC "
                f"{auc:.2f} (95% CI {low:.2f}–{high:.2f}), above --max-audit-auc {max_audit_auc}; strongest: "
                f"{describe_tells(audit)}. Fix the synthetic data, or pass --allow-tells to run it anyway"
            )
        reader_tokens = {f"reader{i + 1:02d}": new_token() for i in range(n_readers)}
        admin_token = new_token()
        ordered = sorted(cases)
        study = {
            "format_version": FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "n_cases": n_cases,
            "cases": ordered,
            "views": list(VIEWS),
            "image_shape": list(shape),
            "counts_encoding": COUNTS_ENCODING,
            "admin_token_sha256": hash_token(admin_token),
            "readers": [
                {"id": reader_id, "token_sha256": hash_token(token), "order": shuffled(ordered)}
                for reader_id, token in reader_tokens.items()
            ],
        }
        provenance = {
            "real_dataset": str(real.root.resolve()),
            "synthetic_dataset": str(synthetic.root.resolve()),
            "seed": seed,
            "quotas_per_side": quotas,
            "cases": key,
        }
        atomic_write_text(build / AUDIT_JSON, json.dumps(audit, indent=2) + "\n")
        atomic_write_text(build / KEY_JSON, json.dumps(provenance, indent=2, sort_keys=True) + "\n")
        atomic_write_text(build / STUDY_JSON, json.dumps(study, indent=2) + "\n")
        os.replace(build, out)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    log.info(
        "created %d cases (%s per condition per side) for %d readers in %s", n_cases, quotas, n_readers, out
    )
    return CreatedStudy(out, reader_tokens, admin_token, n_cases, audit["summary"])


def load_study(root: str | Path) -> dict[str, Any]:
    """``study.json`` of a study folder (no truth in it)."""
    path = Path(root) / STUDY_JSON
    if not path.is_file():
        raise StudyError(
            f"{root} is not a reader study (no {STUDY_JSON}); build one with `reader-study create`"
        )
    study = json.loads(path.read_text(encoding="utf-8"))
    if study.get("format_version") != FORMAT_VERSION:
        raise StudyError(
            f"{path} is format {study.get('format_version')}, this synthscan reads format "
            f"{FORMAT_VERSION} (lossless counts, OS-random blinding); recreate it with `reader-study create`"
        )
    return study


def load_key(root: str | Path) -> dict[str, Any]:
    """The answer key and provenance; only ``score`` and ``auto`` read it."""
    path = Path(root) / KEY_JSON
    if not path.is_file():
        raise StudyError(f"{path} is missing; the answer key is needed to score the study")
    return json.loads(path.read_text(encoding="utf-8"))


def load_audit(root: str | Path) -> dict[str, Any] | None:
    """The blinding audit written by ``create`` (``None`` for a study without one)."""
    path = Path(root) / AUDIT_JSON
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

"""Build a blinded real-vs-synthetic case set.

A study folder holds::

    study.json        case ids, each reader's own order, token hashes: all the server reads
    images/<case>/<view>.png   display images (inverted grey, 8 bit, uncompressed, no metadata)
    secret_key        signs the server's session cookies
    answers.sqlite    answers (created by the server or the first score)
    private/key.json  the answer key; never read by ``serve``

Nothing in a case id, file name, image size or file metadata depends on the truth: ids are random,
images are written in id order, every PNG has the same dimensions and (being stored uncompressed)
the same byte size.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from synthscan.atomic import atomic_write_bytes, atomic_write_text
from synthscan.dataset import Dataset, DatasetError, Record
from synthscan.labels import LABELS, VIEWS

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
STUDY_JSON = "study.json"
IMAGE_DIR = "images"
SECRET_KEY = "secret_key"
ANSWERS_DB = "answers.sqlite"
KEY_JSON = "private/key.json"
DISPLAY_MAPPING = (
    "each view rendered separately by synthscan.render.display_image (inverted grey, uint8); "
    "the browser's window/level maps grey g to clip((g - (level - width/2)) / width, 0, 1)"
)


class StudyError(ValueError):
    """A reader-study folder or its inputs are unusable; the message says how to fix it."""


@dataclass(frozen=True)
class CreatedStudy:
    """What ``create`` returns: the folder and the tokens, which are never stored in clear."""

    root: Path
    reader_tokens: dict[str, str]
    admin_token: str
    n_cases: int


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token (tokens carry 192 random bits, so no salt or stretching is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


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


def png_bytes(image: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG with no text chunks, stored uncompressed so its size reveals nothing."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="L").save(
        buffer, format="PNG", compress_level=0
    )
    return buffer.getvalue()


def create_study(
    real_root: str | Path,
    synthetic_root: str | Path,
    out: str | Path,
    *,
    n_cases: int = 400,
    n_readers: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> CreatedStudy:
    """Select, blind and render a balanced case set and issue reader and admin tokens."""
    from synthscan.render import display_image

    if n_cases < 2 or n_cases % 2:
        raise StudyError(f"-n must be an even number ≥ 2 (half real, half synthetic), got {n_cases}")
    if n_readers < 1:
        raise StudyError(f"--readers must be ≥ 1, got {n_readers}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise StudyError(f"{out} exists and is not empty; choose a new folder for the study")
    try:
        real, synthetic = Dataset.open(real_root), Dataset.open(synthetic_root)
    except DatasetError as error:
        raise StudyError(str(error)) from error
    if real.info.matrix != synthetic.info.matrix:
        raise StudyError(
            f"real scans are {real.info.matrix} and synthetic {synthetic.info.matrix}; image size would "
            "unblind readers, so resample one dataset to the other's matrix first"
        )
    per_side = n_cases // 2
    for name, dataset in (("real", real), ("synthetic", synthetic)):
        if len(dataset) < per_side:
            raise StudyError(
                f"the {name} dataset {dataset.root} has {len(dataset)} studies; {n_cases} cases need "
                f"{per_side} per side; lower -n or add studies"
            )
    quotas = condition_quotas(real.records, synthetic.records, per_side)
    rng = np.random.default_rng(seed)
    chosen: list[tuple[str, Dataset, Record]] = []
    for side, dataset in (("real", real), ("synthetic", synthetic)):
        for label, quota in quotas.items():
            pool = dataset.filter(label=label)
            picks = rng.choice(len(pool), size=quota, replace=False) if quota else []
            chosen.extend((side, dataset, pool[int(i)]) for i in picks)

    case_ids = sorted({secrets.token_hex(8) for _ in range(4 * n_cases)})
    case_ids = [case_ids[int(i)] for i in rng.permutation(len(case_ids))[:n_cases]]
    cases = dict(zip(case_ids, chosen, strict=True))
    key: dict[str, dict[str, Any]] = {}
    out.mkdir(parents=True, exist_ok=True)
    for case_id in tqdm(sorted(cases), desc="render cases", disable=not progress):
        side, dataset, record = cases[case_id]
        counts = dataset.read(record).counts
        for index, view in enumerate(VIEWS):
            path = out / IMAGE_DIR / case_id / f"{view}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, png_bytes(display_image(counts[index])))
        key[case_id] = {
            "source": side,
            "label": record.label,
            "perugini_grade": record.perugini_grade,
            "dataset": str(dataset.root.resolve()),
            "study_id": record.study_id,
        }

    reader_tokens = {f"reader{i + 1:02d}": secrets.token_urlsafe(24) for i in range(n_readers)}
    admin_token = secrets.token_urlsafe(24)
    ordered = sorted(cases)
    study = {
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n_cases": n_cases,
        "cases": ordered,
        "views": list(VIEWS),
        "image_shape": list(real.info.matrix),
        "display": DISPLAY_MAPPING,
        "admin_token_sha256": hash_token(admin_token),
        "readers": [
            {
                "id": reader_id,
                "token_sha256": hash_token(token),
                "order": [ordered[int(i)] for i in rng.permutation(n_cases)],
            }
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
    (out / "private").mkdir(exist_ok=True)
    atomic_write_text(out / KEY_JSON, json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    atomic_write_text(out / STUDY_JSON, json.dumps(study, indent=2) + "\n")
    atomic_write_bytes(out / SECRET_KEY, secrets.token_bytes(32))
    log.info(
        "created %d cases (%s per condition per side) for %d readers in %s", n_cases, quotas, n_readers, out
    )
    return CreatedStudy(out, reader_tokens, admin_token, n_cases)


def load_study(root: str | Path) -> dict[str, Any]:
    """``study.json`` of a study folder (no truth in it)."""
    path = Path(root) / STUDY_JSON
    if not path.is_file():
        raise StudyError(
            f"{root} is not a reader study (no {STUDY_JSON}); build one with `reader-study create`"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_key(root: str | Path) -> dict[str, Any]:
    """The answer key and provenance; only ``score`` and ``auto`` read it."""
    path = Path(root) / KEY_JSON
    if not path.is_file():
        raise StudyError(f"{path} is missing; the answer key is needed to score the study")
    return json.loads(path.read_text(encoding="utf-8"))

"""Crash-safe file writes: write to a temporary name in the same folder, then rename.

``os.replace`` is atomic on POSIX and Windows, so a reader (or a resumed run) sees either the
old file or the complete new one, never a truncated one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np


def _new_sibling(path: Path) -> Path:
    """Create an empty, uniquely named temporary sibling of ``path``.

    Created with mode 0o666 less the user's umask, like any ``open(path, "w")``: ``mkstemp``'s
    private 0o600 would survive the rename and leave shared datasets unreadable to colleagues.
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"cannot create a temporary file beside {path}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling of ``path`` for writers that need a file name; renamed over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_sibling(path)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_memmap(
    path: str | os.PathLike, dtype: np.dtype | type, shape: tuple[int, ...]
) -> Iterator[np.ndarray]:
    """A new ``.npy`` array filled in place through a memory map; it appears at ``path`` only when complete.

    Memory stays flat however large the array: rows are written to disk as they are assigned.
    """
    with atomic_path(path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        yield array
        array.flush()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in blocks (memory stays flat for large files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

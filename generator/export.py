"""Extra output formats of ``synthscan sample``, written beside the dataset as each study is generated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from synthscan.atomic import atomic_open
from synthscan.dataset import Record
from synthscan.labels import VIEWS

Writer = Callable[[Record, np.ndarray], None]


def write_png_views(record: Record, counts: np.ndarray, folder: Path) -> None:
    """Each view as a lossless 16-bit greyscale PNG of the counts (posterior as acquired)."""
    folder.mkdir(parents=True, exist_ok=True)
    for view, image in zip(VIEWS, counts, strict=True):
        if image.max(initial=0) > np.iinfo(np.uint16).max:
            raise ValueError(f"{record.study_id}: counts above 65535 do not fit a 16-bit PNG")
        with atomic_open(folder / f"{record.study_id}_{view}.png", "wb") as handle:
            Image.fromarray(image.astype(np.uint16)).save(handle, format="PNG")


def writer_for(fmt: str, target: Path, pipeline) -> Writer | None:
    """The per-study writer of ``fmt`` (``None`` for ``npz``, which the dataset itself is)."""
    if fmt == "npz":
        return None
    if fmt == "png":
        return lambda record, counts: write_png_views(record, counts, target / "png")
    if fmt == "dicom":
        from synthscan.dicom.write import write_synthetic_study

        return lambda record, counts: write_synthetic_study(
            record, counts, target / "dicom", pixel_spacing_mm=pipeline.config.pixel_spacing_mm
        )
    raise ValueError(f"unknown format {fmt!r}; valid formats: npz, png, dicom")

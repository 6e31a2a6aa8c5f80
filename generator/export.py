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


def write_dicom_study(record: Record, counts: np.ndarray, folder: Path, pipeline) -> None:
    """One anonymized, synthetic-marked NM Image object per study (see :mod:`synthscan.dicom.write`)."""
    from synthscan.dicom.write import study_to_dicom, write_dicom

    spacing = pipeline.config.pixel_spacing_mm
    write_dicom(study_to_dicom(counts, record, pixel_spacing_mm=spacing), folder / f"{record.study_id}.dcm")


def writer_for(fmt: str, target: Path, pipeline) -> Writer | None:
    """The per-study writer of ``fmt`` (``None`` for ``npz``, which the dataset itself is)."""
    if fmt == "npz":
        return None
    if fmt == "png":
        return lambda record, counts: write_png_views(record, counts, target / "png")
    if fmt == "dicom":
        if "real" in pipeline.config.get("training_sources", ["real"]):
            raise ValueError(
                "this model was trained on real patients' scans: audit the samples before sharing them. "
                "Sample with --format npz, then run `synthscan audit privacy --train TRAINING_DATA "
                "--synthetic OUT` and `synthscan export-dicom OUT --out DICOM_DIR`"
            )
        return lambda record, counts: write_dicom_study(record, counts, target / "dicom", pipeline)
    raise ValueError(f"unknown format {fmt!r}; valid formats: npz, png, dicom")

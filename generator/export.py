"""Extra output formats of ``synthscan sample``, written beside the dataset as each study is generated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from synthscan.atomic import atomic_open
from synthscan.dataset import Dataset, Record
from synthscan.labels import VIEWS
from synthscan.render import display_image

Writer = Callable[[Record, np.ndarray], None]


def write_png_views(record: Record, counts: np.ndarray, folder: Path, *, raw_counts: bool = False) -> None:
    """Each view as a PNG (posterior as acquired): a display image, or with ``raw_counts`` the counts.

    The display image is the nuclear-medicine display of ``synthscan view`` (inverted grey, windowed,
    8 bit), which any image viewer shows as a bone scan; raw counts are lossless 16-bit greyscale,
    for analysis (a view peaks at a few hundred counts of 65535, so a viewer shows it black).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for view, image in zip(VIEWS, counts, strict=True):
        if raw_counts:
            if image.max(initial=0) > np.iinfo(np.uint16).max:
                raise ValueError(f"{record.study_id}: counts above 65535 do not fit a 16-bit PNG")
            pixels = Image.fromarray(image.astype(np.uint16))
        else:
            pixels = Image.fromarray(display_image(image), mode="L")
        with atomic_open(folder / f"{record.study_id}_{view}.png", "wb") as handle:
            pixels.save(handle, format="PNG")


class DicomWriter:
    """One anonymized, synthetic-marked NM Image object per study (see :mod:`synthscan.dicom.write`),
    with the dataset's export identity: its UIDs and patient ids are the ones a later
    ``export-dicom`` of the same dataset gives, so sending both to a PACS creates no duplicates."""

    def __init__(self, target: Path, pipeline):
        self.target, self.pipeline = target, pipeline
        self.identity = None  # drawn once the dataset exists: by prepare() or at the first study

    def prepare(self) -> None:
        """Draw (or read back) the dataset's identity: once, before several processes write studies."""
        from synthscan.dicom.write import ExportIdentity

        self.identity = ExportIdentity.of(Dataset.open(self.target))

    def __call__(self, record: Record, counts: np.ndarray) -> None:
        from synthscan.dicom.write import study_to_dicom, write_dicom

        if self.identity is None:
            self.prepare()
        ds = study_to_dicom(
            counts, record, pixel_spacing_mm=self.pipeline.config.pixel_spacing_mm, identity=self.identity
        )
        write_dicom(ds, self.target / "dicom" / f"{record.study_id}.dcm")


def writer_for(fmt: str, target: Path, pipeline, *, raw_counts: bool = False) -> Writer | None:
    """The per-study writer of ``fmt`` (``None`` for ``npz``, which the dataset itself is)."""
    if fmt == "npz":
        return None
    if fmt == "png":
        return lambda record, counts: write_png_views(record, counts, target / "png", raw_counts=raw_counts)
    if fmt == "dicom":
        if getattr(pipeline, "privacy", None) is None:
            raise ValueError(
                "this model carries no statement that it saw no patients (privacy.json; only models "
                "trained on simulated studies have one): audit its samples before sharing them. Sample "
                "with --format npz, then run `synthscan audit privacy --train TRAINING_DATA --synthetic OUT` "
                "and `synthscan export-dicom OUT --out DICOM_DIR`"
            )
        return DicomWriter(target, pipeline)
    raise ValueError(f"unknown format {fmt!r}; valid formats: npz, png, dicom")

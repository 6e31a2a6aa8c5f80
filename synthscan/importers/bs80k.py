"""Import BS-80K whole-body bone scans (West China Hospital; Huang et al., Comput Biol Med 2022).

Assumed layout (as distributed in ``temp.zip``; region-crop folders such as ``headANT`` are ignored)::

    SRC/wholeBodyANT/<id>.jpg        anterior whole-body view, 8-bit JPEG, 256 wide × 1024 high
    SRC/wholeBodyPOST/<id>.jpg       posterior view of the same patient (same <id>)
    SRC/wholeBodyANT.txt             one line per image: "<file name> <0|1>" (0 normal, 1 abnormal);
    SRC/wholeBodyPOST.txt            also looked for inside the view folder; separators may be
                                     spaces, tabs or a comma; the extension may be left out
    SRC/wholeBodyANT/**/<id>.xml     optional Pascal-VOC hot-spot boxes (``Normal``/``Abnormal``)

One id is one patient. The study is ``abnormal`` if either view is labelled 1; abnormal maps to
``metastasis`` by default (BS-80K's abnormal class marks suspected malignant uptake), configurable.
Per-view labels are kept as manifest columns ``label_anterior``/``label_posterior``; hot-spot boxes go
to the study metadata (in dataset-matrix pixels).

The JPEG values are 8-bit *display intensities*, not photon counts: they are stored unchanged as
unsigned integers and ``dataset.json`` says so. If a view is displayed inverted (bright background,
dark hot spots), ``invert="auto"`` turns it back to hot = bright and records that per view.
The posterior view is assumed stored as acquired; pass ``posterior_mirrored`` if yours is mirrored.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import numpy as np

from synthscan.importers.common import (
    ImportOptions,
    ImportReport,
    LayoutError,
    SourceStudy,
    number_in_name,
    write_studies,
)
from synthscan.labels import VIEWS, check_label

log = logging.getLogger(__name__)

SOURCE = "bs80k"
VIEW_FOLDERS = {"anterior": "wholeBodyANT", "posterior": "wholeBodyPOST"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
INVERT_MODES = ("auto", "always", "never")


def read_label_file(path: Path) -> dict[str, int]:
    """Parse a BS-80K label list into image id → 0/1, failing on any malformed line."""
    labels: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p for p in re.split(r"[\s,;]+", line.strip()) if p]
        if len(parts) != 2 or parts[1] not in ("0", "1"):
            raise LayoutError(f"{path}:{number}: expected '<file name> <0|1>', got {line.strip()!r}")
        key = number_in_name(Path(parts[0]))
        if key is None:
            raise LayoutError(f"{path}:{number}: no numeric image id in {parts[0]!r}")
        labels[key] = int(parts[1])
    return labels


def _label_file(root: Path, folder: str) -> Path:
    for candidate in (root / f"{folder}.txt", root / folder / f"{folder}.txt"):
        if candidate.is_file():
            return candidate
    raise LayoutError(
        f"no label list {folder}.txt in {root} or {root / folder}; BS-80K ships one per view folder"
    )


def read_voc_boxes(path: Path) -> list[dict[str, Any]]:
    """Hot-spot boxes of one Pascal-VOC file as ``{"class", "box": [xmin, ymin, xmax, ymax]}``."""
    try:
        tree = ElementTree.parse(path)
    except ElementTree.ParseError as error:
        raise ValueError(f"{path}: not a Pascal-VOC XML file ({error})") from error
    boxes = []
    for item in tree.getroot().iter("object"):
        box = item.find("bndbox")
        if box is None:
            raise ValueError(f"{path}: an <object> has no <bndbox>")
        coords = [round(float(box.findtext(tag, "nan"))) for tag in ("xmin", "ymin", "xmax", "ymax")]
        boxes.append({"class": item.findtext("name", ""), "box": coords})
    return boxes


def scan(
    root: str | Path, *, abnormal_label: str = "metastasis"
) -> tuple[list[SourceStudy], dict[str, dict[str, Path]]]:
    """Find every whole-body study in a BS-80K folder, and its hot-spot box files (no image is read)."""
    root = Path(root)
    check_label(abnormal_label)
    missing = [f for f in VIEW_FOLDERS.values() if not (root / f).is_dir()]
    if missing:
        raise LayoutError(f"{root} is not a BS-80K folder: no {', '.join(missing)}/ (see the module doc)")
    files: dict[str, dict[str, Path]] = {}
    labels: dict[str, dict[str, int]] = {}
    boxes: dict[str, dict[str, Path]] = {}
    for view, folder in VIEW_FOLDERS.items():
        for path in sorted((root / folder).iterdir()):
            key = number_in_name(path)
            if path.suffix.lower() in IMAGE_SUFFIXES and key is not None:
                files.setdefault(key, {})[view] = path
        for path in sorted((root / folder).rglob("*.xml")):
            key = number_in_name(path)
            if key is not None:
                boxes.setdefault(key, {})[view] = path
        for key, value in read_label_file(_label_file(root, folder)).items():
            labels.setdefault(key, {})[view] = value
    studies = []
    for key in sorted(set(files) | set(labels), key=lambda k: (len(k), k)):
        view_labels = labels.get(key, {})
        if not view_labels:
            log.warning("BS-80K image %s has no label in either list; skipped", key)
            continue
        abnormal = max(view_labels.values()) == 1
        studies.append(
            SourceStudy(
                key=key,
                label=abnormal_label if abnormal else "normal",
                views={v: files.get(key, {}).get(v, root / VIEW_FOLDERS[v] / f"{key}.jpg") for v in VIEWS},
                extra={f"label_{view}": view_labels.get(view, "") for view in VIEWS},
                meta={"source_label": "abnormal" if abnormal else "normal"},
            )
        )
    return studies, boxes


def _displayed_inverted(view: np.ndarray) -> bool:
    """A whole-body display with a bright background (median of the outer border above mid-grey)."""
    border = np.concatenate([view[0], view[-1], view[:, 0], view[:, -1]])
    return float(np.median(border)) > np.iinfo(view.dtype).max / 2


def import_bs80k(
    src: str | Path,
    out: str | Path,
    options: ImportOptions,
    *,
    abnormal_label: str = "metastasis",
    invert: str = "auto",
) -> ImportReport:
    """Convert a BS-80K folder into a synthscan dataset at ``out``."""
    if invert not in INVERT_MODES:
        raise ValueError(f"invert must be one of {INVERT_MODES}, got {invert!r}")
    studies, box_files = scan(src, abnormal_label=abnormal_label)
    rows, cols = options.matrix

    def prepare(view: np.ndarray, name: str, study: SourceStudy) -> tuple[np.ndarray, dict[str, Any]]:
        flip = invert == "always" or (invert == "auto" and _displayed_inverted(view))
        if flip:
            view = np.iinfo(view.dtype).max - view
        meta: dict[str, Any] = {"display_inverted": flip}
        box_file = box_files.get(study.key, {}).get(name)
        if box_file is not None:
            meta["hotspots"] = [
                {"class": b["class"], "box": _to_matrix(b["box"], view.shape, (rows, cols), mirror)}
                for b in read_voc_boxes(box_file)
                for mirror in [name == "posterior" and options.posterior_mirrored]
            ]
        return view, meta

    provenance = {
        "importer": SOURCE,
        "source_dataset": "BS-80K (Huang et al., Comput Biol Med 151:106221, 2022)",
        "source_folder": str(Path(src).resolve()),
        "intensity": "8-bit JPEG display intensities, not photon counts",
        "abnormal_label": abnormal_label,
        "invert": invert,
        "posterior_mirrored_in_source": options.posterior_mirrored,
        "resampling": "area-weighted, integer total kept (only where the source size differs)",
        "pixel_spacing_note": "not stated by the source; dataset value is an assumption",
    }
    return write_studies(
        studies, out, source_name=SOURCE, options=options, provenance=provenance, prepare_view=prepare
    )


def _to_matrix(
    box: list[int], source_shape: tuple[int, ...], matrix: tuple[int, int], mirror: bool
) -> list[int]:
    """A source-pixel box in dataset-matrix pixels (and mirrored back where the view is flipped)."""
    xmin, ymin, xmax, ymax = box
    if mirror:
        xmin, xmax = source_shape[1] - xmax, source_shape[1] - xmin
    sx, sy = matrix[1] / source_shape[1], matrix[0] / source_shape[0]
    return [round(xmin * sx), round(ymin * sy), round(xmax * sx), round(ymax * sy)]

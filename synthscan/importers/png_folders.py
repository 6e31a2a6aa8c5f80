"""Import a folder-per-class layout of 16-bit PNG whole-body views (like the IICS-UNA Paraguay set).

Assumed layout (IICS-UNA bone scans, Zenodo 10.5281/zenodo.13900966, CC-BY-4.0; 291 patients,
anterior + posterior, 256 wide × 1024 high, 16-bit greyscale ``I;16`` with hot = bright)::

    SRC/<class folder>/Anterior/A<n>.png
    SRC/<class folder>/Posterior/P<n>.png     same <n> = same patient

Class folders map to labels by name (case, spaces, ``_``/``-`` ignored): see :data:`CLASS_ALIASES`,
e.g. ``Normal``/``Sin metástasis`` → normal, ``Metastasis``/``Con metástasis`` → metastasis; other
names must be mapped explicitly (``class_map``), otherwise the import stops before writing anything.
View folders may be called ``Anterior``/``ANT``/``A`` and ``Posterior``/``POST``/``P``.
The patient key is ``<class folder>/<n>`` (numbering may restart per class), pseudonymised.
PNG values are stored unchanged (16-bit values as exported by the source; 8-bit PNGs are accepted
and marked as display intensities). The posterior view is assumed stored as acquired.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from synthscan.importers.common import (
    ImportOptions,
    ImportReport,
    LayoutError,
    SourceStudy,
    number_in_name,
    write_studies,
)
from synthscan.labels import LABELS, VIEWS, check_label

SOURCE = "pngfolders"
CLASS_ALIASES: dict[str, str] = {
    "normal": "normal",
    "normales": "normal",
    "negative": "normal",
    "negativo": "normal",
    "nometastasis": "normal",
    "withoutmetastasis": "normal",
    "sinmetastasis": "normal",
    "metastasis": "metastasis",
    "metastases": "metastasis",
    "bonemetastasis": "metastasis",
    "bonemetastases": "metastasis",
    "withmetastasis": "metastasis",
    "conmetastasis": "metastasis",
    "positive": "metastasis",
    "positivo": "metastasis",
    "amyloidosis": "amyloidosis",
    "amiloidosis": "amyloidosis",
}
VIEW_ALIASES: dict[str, str] = {
    "anterior": "anterior",
    "ant": "anterior",
    "a": "anterior",
    "posterior": "posterior",
    "post": "posterior",
    "p": "posterior",
}


def normalise(name: str) -> str:
    """Folder name reduced to lower-case ASCII letters and digits (``Con metástasis`` → ``conmetastasis``)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", ascii_name.lower())


def scan(root: str | Path, *, class_map: Mapping[str, str] | None = None) -> list[SourceStudy]:
    """Find every study in a class/view folder tree; unknown class or view folders are an error."""
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root} is not a folder")
    mapping = {**CLASS_ALIASES, **{normalise(k): check_label(v) for k, v in (class_map or {}).items()}}
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise LayoutError(f"{root} holds no class folders (expected <class>/<Anterior|Posterior>/*.png)")
    unknown = [p.name for p in class_dirs if normalise(p.name) not in mapping]
    if unknown:
        raise LayoutError(
            f"unknown class folder(s) {unknown} in {root}; map them with --class-map NAME=LABEL "
            f"(labels: {', '.join(LABELS)})"
        )
    studies = []
    for class_dir in class_dirs:
        files: dict[str, dict[str, Path]] = {}
        for view_dir in sorted(p for p in class_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            view = VIEW_ALIASES.get(normalise(view_dir.name))
            if view is None:
                raise LayoutError(
                    f"{view_dir}: unknown view folder; expected one of Anterior/ANT/A or Posterior/POST/P"
                )
            for path in sorted(view_dir.glob("*.png")):
                number = number_in_name(path)
                if number is not None:
                    files.setdefault(number, {})[view] = path
        if not files:
            raise LayoutError(f"{class_dir} holds no <view>/<name><n>.png files")
        for number in sorted(files, key=int):
            studies.append(
                SourceStudy(
                    key=f"{class_dir.name}/{number}",
                    label=mapping[normalise(class_dir.name)],
                    views={view: files[number].get(view) for view in VIEWS},
                    extra={"source_class": class_dir.name},
                )
            )
    return studies


def import_png_folders(
    src: str | Path, out: str | Path, options: ImportOptions, *, class_map: Mapping[str, str] | None = None
) -> ImportReport:
    """Convert a folder-per-class PNG layout into a synthscan dataset at ``out``."""
    studies = scan(src, class_map=class_map)
    provenance = {
        "importer": "png-folders",
        "source_dataset": "folder-per-class 16-bit PNG views (e.g. IICS-UNA Paraguay, Zenodo 13900966)",
        "source_folder": str(Path(src).resolve()),
        "intensity": "PNG values as exported by the source (16-bit: scanner values; 8-bit: display values)",
        "class_map": {**CLASS_ALIASES, **dict(class_map or {})},
        "posterior_mirrored_in_source": options.posterior_mirrored,
        "resampling": "area-weighted, integer total kept (only where the source size differs)",
        "pixel_spacing_note": "not stated by the source; dataset value is an assumption",
    }
    return write_studies(studies, out, source_name=SOURCE, options=options, provenance=provenance)

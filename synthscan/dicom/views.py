"""Which view a detector of a whole-body NM object shows, and how it is stored, from the header alone.

**Which view a detector shows**, in this order of trust (the first rule that answers decides, and
the study's ``meta`` and the import report say which one did):

1. ``view-code``: the detector's View Code Sequence (SNOMED CT, or the legacy SNOMED-RT codes).
2. ``orientation``: its Image Orientation (Patient): the viewing direction ``row × column``
   points posterior (+y, LPS) for an anterior view.
3. ``start-angle``: its Start Angle (0054,0200), with PS3.3's NM convention: zero degrees at the
   patient's back, increasing counter-clockwise seen from the feet; within 45° of 0 the detector
   sees the posterior view, within 45° of 180 the anterior one.  If a vendor view name (rule 4)
   is also present and disagrees, the object is refused rather than guessed.
4. ``vendor-private``: a vendor's private view name (:data:`VENDOR_VIEW_NAMES`), in the detector's
   item or, one value per detector, in the data set; ``ANT``/``ANTERIOR`` or ``POST``/
   ``POSTERIOR`` as a word of the value.
5. Otherwise the object is refused (``no-view``).

**Head end and mirroring from the header.**  A detector's Image Orientation (Patient) describes
the stored image as a view from the side ``row × column`` looks from, never a mirror image: its
vectors say where the head is (column ``-z``: top; ``+z``: bottom; row ``+z``: right; ``-z``: left),
hence the quarter turns that put it at the top.
A view is stored mirrored only when its View Code names the other side than its orientation
looks from; :mod:`synthscan.dicom.read` then flips it back (either view).  Where the header says
nothing of mirroring, ``ImportOptions.posterior_mirrored`` decides for the posterior there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from synthscan.dicom import codes
from synthscan.dicom.reasons import Unusable


@dataclass(frozen=True)
class VendorViewName:
    """A private element in which a vendor names the view; its name is pydicom's private dictionary's."""

    vendor: str
    creator: str
    group: int
    offset: int
    """Element number within the private block (the low byte of the element)."""


VENDOR_VIEW_NAMES: tuple[VendorViewName, ...] = (
    VendorViewName("GE Xeleris/Genie", "GEMS_GENIE_1", 0x0011, 0x12),  # Dataset Name
    VendorViewName("Siemens", "SIEMENS MED NM", 0x0009, 0x80),  # Main Acquisition View
    VendorViewName("Philips/Elscint", "ELSCINT1", 0x0601, 0x50),  # Image View Type
)
"""Documented vendor private elements that name a whole-body view (rule 4 of the module doc)."""

_VIEW_WORDS = {"ANT": "anterior", "ANTERIOR": "anterior", "POST": "posterior", "POSTERIOR": "posterior"}


def _orientation(item: Dataset) -> tuple[str | None, int | None]:
    """(view looked from, quarter turns to head-up) from a detector's Image Orientation (Patient).

    The vectors describe the stored image as it is: a view from the side ``row × column`` looks
    from, head at the top when the column points to the feet (-z), at the bottom (+z), right
    (row +z) or left (row -z) otherwise. ``(None, None)`` when they say neither.
    """
    try:
        values = [float(v) for v in item.ImageOrientationPatient]
    except (AttributeError, TypeError, ValueError):
        return None, None
    if len(values) != 6:
        return None, None
    row, column = np.array(values[:3]), np.array(values[3:])
    looking = np.cross(row, column)
    if abs(looking[1]) < 0.5:
        return None, None
    view = "anterior" if looking[1] > 0 else "posterior"
    if abs(column[2]) >= 0.5:
        return view, 0 if column[2] < 0 else 2
    if abs(row[2]) >= 0.5:
        return view, 1 if row[2] > 0 else 3
    return view, None


def _start_angle_view(item: Dataset) -> str | None:
    """View of a detector from its Start Angle (PS3.3 NM: 0° at the patient's back), or ``None``."""
    try:
        angle = float(item.StartAngle) % 360.0
    except (AttributeError, TypeError, ValueError):
        return None
    if not math.isfinite(angle):
        return None
    if min(angle, 360.0 - angle) <= 45.0:
        return "posterior"
    if abs(angle - 180.0) <= 45.0:
        return "anterior"
    return None


def _view_word(value: Any) -> str | None:
    """``anterior``/``posterior`` when exactly one of them is named by a word of ``value``."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    found = {_VIEW_WORDS[w] for w in re.findall(r"[A-Z]+", str(value).upper()) if w in _VIEW_WORDS}
    return found.pop() if len(found) == 1 else None


def _private_values(ds: Dataset, name: VendorViewName) -> list[Any]:
    try:
        element = ds.private_block(name.group, name.creator)[name.offset]
    except KeyError:
        return []
    value = element.value
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    if isinstance(value, str) and "\\" in value:  # read as UN: the multiplicity is still in the text
        return value.split("\\")
    return [value]


def _vendor_view(ds: Dataset, item: Dataset, detector: int, detectors: int) -> str | None:
    """View named by a vendor's private element: in the detector's item, else one value per detector."""
    for name in VENDOR_VIEW_NAMES:
        values = _private_values(item, name)
        if len(values) == 1:
            return _view_word(values[0])
    for name in VENDOR_VIEW_NAMES:
        values = _private_values(ds, name)
        if values and len(values) == detectors:
            return _view_word(values[detector - 1])
    return None


def detector_view(ds: Dataset, detector: int, detectors: int) -> tuple[str, bool | None, int | None, str]:
    """(view, stored mirrored, quarter turns to head-up, rule) of one detector, by the module doc's rules."""
    item = ds.DetectorInformationSequence[detector - 1]
    oriented, turns = _orientation(item)
    coded = codes.lookup(codes.VIEW_CODES, item.get("ViewCodeSequence", []))
    if coded is not None:
        # The code names the view; an orientation looking from the other side means a mirror image.
        return coded, None if oriented is None else oriented != coded, turns, "view-code"
    if oriented is not None:
        return oriented, False, turns, "orientation"
    named = _vendor_view(ds, item, detector, detectors)
    angled = _start_angle_view(item)
    if angled is not None:
        if named is not None and named != angled:
            raise Unusable("view-conflict")
        return angled, None, None, "start-angle"
    if named is not None:
        return named, None, None, "vendor-private"
    raise Unusable("no-view")

"""PS3.15 Annex E Basic Application Level Confidentiality Profile, applied to imported headers.

The attribute list is the standard's own Table E.1-1, as shipped by the ``dicom-anonymizer``
package (module ``dicomfields_2026c``: DICOM 2026c); nothing here picks tags by hand.  What this
module adds is how each action is carried out, because synthscan keeps the de-identified header as
JSON next to the counts (``meta["dicom"]["headers"]``) rather than as a DICOM object that must stay
IOD-conformant, so the strictest reading of every choice is taken:

* ``X`` and every action that allows it (``X/Z``, ``X/D``, ``X/Z/D``, ``X/Z/U*``): removed.
* ``Z`` and ``Z/D``: emptied (sequences lose their items).  Patient ID is the one exception: it is
  replaced by the salted pseudonym that also names the patient in the manifest, so patient-level
  splits hold.
* ``D``: replaced by a fixed dummy of the right VR (a sequence by one empty item).
* ``U``: replaced by ``2.25.<UUID>`` where the UUID is a name-based (SHA-1) UUID of the salt and
  the original UID: the same UID maps to the same pseudonym in every import with the same salt,
  and cannot be traced back without the salt.
* All private elements (creators included) are removed: no Retain Safe Private option.
* Elements the DICOM dictionary does not know are removed too, since the profile cannot judge
  them (they would be read with VR UN and may hold anything).
* Binary values (pixel data, overlays, icons, opaque OB/OW/UN blobs) are never kept in the header.
* The walk reaches every nested sequence item.

Options recorded: the basic profile (113100) only; no retain option (113106-113112) and no
cleaning option (113101-113105).  Pixel data are kept; burned-in text is out of scope, but an
object whose Burned In Annotation is YES is flagged in the study metadata and the import report.
"""

from __future__ import annotations

import importlib.metadata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.datadict import dictionary_has_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

import synthscan
from synthscan.dicom import codes

ANNEX_E_TABLE = "dicomfields_2026c"
"""dicom-anonymizer's copy of PS3.15 Table E.1-1 (DICOM edition 2026c)."""

# dicom-anonymizer's action groups → the action synthscan applies (strictest choice, see module doc).
_GROUP_ACTION: dict[str, str] = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z",
    "X_Z_TAGS": "X",
    "X_D_TAGS": "X",
    "X_Z_D_TAGS": "X",
    "X_Z_U_STAR_TAGS": "X",
}
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_DUMMY: dict[str, Any] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
    "UR": "",
}
DUMMY_TEXT = "ANONYMIZED"


@dataclass(frozen=True)
class AnnexETable:
    """Table E.1-1 as tag → action, plus the repeating-group rows (curves, overlays)."""

    actions: dict[int, str]
    masked: tuple[tuple[int, int, int, int, str], ...]
    """(group, element, group mask, element mask, action) rows such as (50xx,xxxx) curve data."""

    def action(self, tag: BaseTag) -> str | None:
        found = self.actions.get(int(tag))
        if found is not None:
            return found
        for group, element, group_mask, element_mask, action in self.masked:
            if (
                tag.group & group_mask == group & group_mask
                and tag.element & element_mask == element & element_mask
            ):
                return action
        return None


def annex_e_table(version: str = ANNEX_E_TABLE) -> AnnexETable:
    """Load the standard's table from dicom-anonymizer and map each row to the action we apply."""
    groups = dicom_anonymization_database_selector(version)
    actions: dict[int, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for group, action in _GROUP_ACTION.items():
        for row in groups[group]:
            if len(row) == 2:
                actions[(row[0] << 16) | row[1]] = action
            else:
                masked.append((*row, action))
    return AnnexETable(actions, tuple(masked))


def profile_description(salt_given: bool) -> dict[str, Any]:
    """What was done, for ``dataset.json`` and the import report."""
    return {
        "profile": f"{codes.BASIC_PROFILE.value} ({codes.BASIC_PROFILE.scheme_designator}) "
        f"{codes.BASIC_PROFILE.meaning}",
        "options": [],
        "table": f"PS3.15 Table E.1-1, DICOM {ANNEX_E_TABLE.split('_')[-1]}, as shipped by "
        f"dicom-anonymizer {importlib.metadata.version('dicom-anonymizer')}",
        "actions": "X, X/Z, X/D, X/Z/D, X/Z/U* removed; Z, Z/D emptied; D dummy; U salted UID pseudonym",
        "patient_id": "salted pseudonym (same patient, same salt → same id)",
        "private_elements": "removed",
        "unknown_elements": "removed",
        "pixel_data": "kept; burned-in annotation flagged, not removed",
        "salted": salt_given,
        "implementation": f"synthscan {synthscan.__version__} (synthscan.dicom.deidentify)",
    }


class Deidentifier:
    """Apply the basic profile in place; UID pseudonyms depend only on the salt and the UID."""

    def __init__(self, salt: str, table: AnnexETable | None = None):
        self.salt = salt
        self.table = table or annex_e_table()
        self._namespace = uuid.uuid5(uuid.NAMESPACE_OID, f"synthscan-dicom-uid\x00{salt}")

    def uid(self, value: str) -> str:
        """The pseudonym of one UID."""
        return f"2.25.{uuid.uuid5(self._namespace, str(value)).int}"

    def __call__(self, ds: Dataset, *, patient_id: str) -> Dataset:
        """De-identify ``ds`` in place and return it; ``patient_id`` replaces Patient ID."""
        self._walk(ds)
        ds.PatientID = patient_id
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = f"synthscan {synthscan.__version__} PS3.15 Annex E basic profile"
        ds.DeidentificationMethodCodeSequence = codes.code_sequence(codes.BASIC_PROFILE)
        return ds

    def _walk(self, ds: Dataset) -> None:
        for tag in list(ds.keys()):
            element = ds[tag]
            if tag.is_private or not dictionary_has_tag(tag) or element.VR in BINARY_VRS:
                del ds[tag]
                continue
            action = self.table.action(tag)
            if action == "X":
                del ds[tag]
                continue
            if action is not None:
                _ACTIONS[action](self, element)
            if element.VR == "SQ" and element.value is not None:
                for item in element.value:
                    self._walk(item)

    def _empty(self, element: DataElement) -> None:
        element.value = Sequence() if element.VR == "SQ" else None

    def _dummy(self, element: DataElement) -> None:
        if element.VR == "SQ":
            element.value = Sequence([Dataset()])
        elif element.VR == "UI":
            self._remap(element)
        elif element.VR in _DUMMY:
            element.value = _DUMMY[element.VR]
        elif element.VR in ("AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"):
            element.value = DUMMY_TEXT
        else:
            element.value = 0

    def _remap(self, element: DataElement) -> None:
        if element.VR != "UI":
            self._empty(element)
        elif element.VM > 1:
            element.value = [self.uid(v) for v in element.value]
        elif element.value:
            element.value = self.uid(element.value)


_ACTIONS: dict[str, Callable[[Deidentifier, DataElement], None]] = {
    "Z": Deidentifier._empty,
    "D": Deidentifier._dummy,
    "U": Deidentifier._remap,
}


def header_json(ds: Dataset) -> dict[str, Any]:
    """A de-identified header as DICOM JSON (PS3.18 F.2), without pixel data or other binary values."""
    return ds.to_json_dict(bulk_data_threshold=1 << 30, suppress_invalid_tags=True)

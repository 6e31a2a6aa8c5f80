"""PS3.15 Annex E de-identification of imported headers: the Basic Profile plus Clean Descriptors.

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
* The walk reaches every nested sequence item, iteratively; a header nested deeper than
  :data:`MAX_SEQUENCE_DEPTH` is refused (:class:`TooDeep`) rather than half cleaned.

**Clean Descriptors Option (113105), applied by default.**  Sites type names into attributes the
Basic Profile keeps (Radiopharmaceutical, Energy Window Name, Collimator/Grid Name, Image ID,
Software Versions, code meanings), so every text value the profile leaves is cleaned, not only the
option's list, unless it is known not to identify anyone:

* a code (Code Value + Coding Scheme Designator) that pydicom's copy of PS3.16 knows keeps its
  value and scheme, and its meaning is replaced by the standard's own meaning; the text of any
  other code is replaced by the dummy;
* :data:`CODED_STRINGS`: the few coded-string attributes synthscan reads or writes keep a value only
  if it is one of the standard's enumerated (or, for Body Part Examined, defined) values listed there;
* every other value of a text VR (AE, CS, LO, LT, PN, SH, ST, UC, UT) becomes ``ANONYMIZED``, and
  URIs (UR) are removed;
* a UID that is not a registered DICOM UID (SOP classes, transfer syntaxes, coding schemes, as
  pydicom lists them) is replaced by its salted pseudonym, whether Table E.1-1 lists it or not.

Options recorded (dataset.json and each header's De-identification Method Code Sequence): 113100
and 113105; no retain option (113106-113112).  Pixel data are kept; burned-in text is out of scope,
but objects that declare it (or Secondary Captures that do not declare its absence) are flagged.
"""

from __future__ import annotations

import importlib.metadata
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_has_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID

import synthscan
from synthscan.dicom import codes

ANNEX_E_TABLE = "dicomfields_2026c"
"""dicom-anonymizer's copy of PS3.15 Table E.1-1 (DICOM edition 2026c)."""

MAX_SEQUENCE_DEPTH = 16
"""Deepest sequence nesting accepted (NM headers nest 3-4 levels; a deeper one is hostile or corrupt)."""

OPTIONS = (codes.BASIC_PROFILE, codes.CLEAN_DESCRIPTORS)
"""The PS3.15 profile and options applied, in the order recorded."""

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
TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"})
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
_CODE_TEXT = frozenset(
    {"CodeValue", "CodingSchemeDesignator", "CodingSchemeVersion", "CodeMeaning", "LongCodeValue"}
)

CODED_STRINGS: dict[str, frozenset[str]] = {
    "ImageType": frozenset(
        {"ORIGINAL", "DERIVED", "PRIMARY", "SECONDARY", "STATIC", "DYNAMIC", "GATED", "WHOLE BODY"}
        | {"TOMO", "GATED TOMO", "RECON TOMO", "RECON GATED TOMO", "EMISSION", "TRANSMISSION"}
    ),  # PS3.3 C.8.4.6.1.1: NM Image Type values 1-4
    "Modality": frozenset({"NM", "OT"}),
    "PhotometricInterpretation": frozenset({"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB"}),
    "BurnedInAnnotation": frozenset({"YES", "NO"}),
    "LossyImageCompression": frozenset({"00", "01"}),
    "CollimatorType": frozenset({"PARA", "PINH", "FANB", "CONE", "SLNT", "ASTG", "DIVG", "NONE", "UNKN"}),
    "WholeBodyTechnique": frozenset({"1PS", "2PS", "PCN", "MSP"}),
    "SyntheticData": frozenset({"YES", "NO"}),  # PS3.3 C.12.1: the marker a trusting import reads
    "BodyPartExamined": frozenset({"WHOLEBODY"}),  # PS3.16 Annex L's term for a whole-body study
    "SpecificCharacterSet": frozenset(python_encoding),  # the defined terms pydicom decodes
}
"""Coded strings kept when every value is one of these enumerated values (PS3.3 NM Image, NM Detector,
Synthetic Data) or defined terms (Body Part Examined, Specific Character Set)."""


class TooDeep(ValueError):
    """A header nests sequences deeper than :data:`MAX_SEQUENCE_DEPTH`."""


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


def check_depth(ds: Dataset, limit: int = MAX_SEQUENCE_DEPTH) -> None:
    """Raise :class:`TooDeep` if ``ds`` nests sequences deeper than ``limit`` (walked without recursion)."""
    stack = [(ds, 0)]
    while stack:
        current, depth = stack.pop()
        for element in current:
            if element.VR != "SQ" or not element.value:
                continue
            if depth + 1 > limit:
                raise TooDeep(f"sequences nested deeper than {limit}")
            stack.extend((item, depth + 1) for item in element.value)


def method_codes() -> Sequence:
    """De-identification Method Code Sequence of the profile and options applied."""
    return codes.code_sequence(*OPTIONS)


def profile_description(salt_given: bool) -> dict[str, Any]:
    """What was done, for ``dataset.json`` and the import report."""
    return {
        "profile": f"{codes.BASIC_PROFILE.value} ({codes.BASIC_PROFILE.scheme_designator}) "
        f"{codes.BASIC_PROFILE.meaning}",
        "options": [f"{code.value} ({code.scheme_designator}) {code.meaning}" for code in OPTIONS[1:]],
        "method_codes": [code.value for code in OPTIONS],
        "table": f"PS3.15 Table E.1-1, DICOM {ANNEX_E_TABLE.split('_')[-1]}, as shipped by "
        f"dicom-anonymizer {importlib.metadata.version('dicom-anonymizer')}",
        "actions": "X, X/Z, X/D, X/Z/D, X/Z/U* removed; Z, Z/D emptied; D dummy; U salted UID pseudonym",
        "clean_descriptors": "every remaining text value replaced unless a PS3.16 code or an enumerated "
        "value; unregistered UIDs replaced by salted pseudonyms",
        "patient_id": "salted pseudonym (same patient, same salt → same id)",
        "private_elements": "removed",
        "unknown_elements": "removed",
        "pixel_data": "kept; burned-in annotation flagged, not removed",
        "salted": salt_given,
        "implementation": f"synthscan {synthscan.__version__} (synthscan.dicom.deidentify)",
    }


class Deidentifier:
    """Apply the profile and options in place; UID pseudonyms depend only on the salt and the UID."""

    def __init__(self, salt: str, table: AnnexETable | None = None):
        self.salt = salt
        self.table = table or annex_e_table()
        self._namespace = uuid.uuid5(uuid.NAMESPACE_OID, f"synthscan-dicom-uid\x00{salt}")

    def uid(self, value: str) -> str:
        """The pseudonym of one UID."""
        return f"2.25.{uuid.uuid5(self._namespace, str(value)).int}"

    def __call__(self, ds: Dataset, *, patient_id: str) -> Dataset:
        """De-identify ``ds`` in place and return it; ``patient_id`` replaces Patient ID."""
        stack = [(ds, 0)]
        while stack:
            current, depth = stack.pop()
            for item in self._clean(current):
                if depth + 1 > MAX_SEQUENCE_DEPTH:
                    raise TooDeep(f"sequences nested deeper than {MAX_SEQUENCE_DEPTH}")
                stack.append((item, depth + 1))
        ds.PatientID = patient_id
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = f"synthscan {synthscan.__version__} PS3.15 Annex E basic profile"
        ds.DeidentificationMethodCodeSequence = method_codes()
        return ds

    def _clean(self, ds: Dataset) -> list[Dataset]:
        """Clean the elements of one data set; returns its sequence items, still to be cleaned."""
        items: list[Dataset] = []
        is_code = "CodeValue" in ds or "LongCodeValue" in ds
        if is_code:
            self._clean_code(ds)
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
            elif element.VR == "UI":
                self._remap(element, registered_too=False)
            elif element.VR in TEXT_VRS and not (is_code and element.keyword in _CODE_TEXT):
                self._describe(ds, element)
            if element.VR == "SQ":
                items.extend(element.value or [])
        return items

    def _clean_code(self, item: Dataset) -> None:
        """Keep a code pydicom's PS3.16 tables know (with the standard's meaning); blank any other."""
        known = codes.known_code(item.get("CodeValue", ""), item.get("CodingSchemeDesignator", ""))
        for keyword in _CODE_TEXT & set(item.dir()):
            del item[keyword]
        if known is None:
            item.CodeValue = item.CodingSchemeDesignator = item.CodeMeaning = DUMMY_TEXT
        else:
            item.CodeValue, item.CodingSchemeDesignator = known.value, known.scheme_designator
            item.CodeMeaning = known.meaning

    @staticmethod
    def _describe(ds: Dataset, element: DataElement) -> None:
        """Clean Descriptors: keep an enumerated coded string, replace any other text."""
        allowed = CODED_STRINGS.get(element.keyword)
        values = element.value if element.VM > 1 else [element.value]
        if allowed is not None and all(str(v) in allowed for v in values):
            return
        if element.VR == "UR":
            del ds[element.tag]
        elif element.value not in (None, ""):
            element.value = DUMMY_TEXT

    def _empty(self, element: DataElement) -> None:
        element.value = Sequence() if element.VR == "SQ" else None

    def _dummy(self, element: DataElement) -> None:
        if element.VR == "SQ":
            element.value = Sequence([Dataset()])
        elif element.VR == "UI":
            self._remap(element)
        elif element.VR in _DUMMY:
            element.value = _DUMMY[element.VR]
        elif element.VR in TEXT_VRS:
            element.value = DUMMY_TEXT
        else:
            element.value = 0

    def _remap(self, element: DataElement, *, registered_too: bool = True) -> None:
        """Replace UIDs by their pseudonyms; registered DICOM UIDs are kept unless ``registered_too``."""
        if element.VR != "UI":
            self._empty(element)
            return
        values = element.value if element.VM > 1 else [element.value]
        mapped = [
            v if not v or (not registered_too and UID(str(v)).type) else self.uid(str(v)) for v in values
        ]
        element.value = mapped if element.VM > 1 else mapped[0]


_ACTIONS: dict[str, Callable[[Deidentifier, DataElement], None]] = {
    "Z": Deidentifier._empty,
    "D": Deidentifier._dummy,
    "U": Deidentifier._remap,
}


def header_json(ds: Dataset) -> dict[str, Any]:
    """A de-identified header as DICOM JSON (PS3.18 F.2), without pixel data or other binary values."""
    return ds.to_json_dict(bulk_data_threshold=1 << 30, suppress_invalid_tags=True)

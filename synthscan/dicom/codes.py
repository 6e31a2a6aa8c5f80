"""Coded concepts of a whole-body NM bone scan, taken from the standard's tables.

Codes come from pydicom's copy of the DICOM content-mapping resource (PS3.16), so no code value is
typed by hand.  DPD (99mTc 3,3-diphosphono-1,2-propanodicarboxylic acid) has no code in CID 25
"Radiopharmaceuticals" as shipped with pydicom; exported DPD studies name it in the
Radiopharmaceutical text attribute only (a private code would make validators warn).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import Collection, codes
from pydicom.sr.coding import Code

from synthscan.labels import TRACERS

NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
SECONDARY_CAPTURE_STORAGE = (
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
)

VIEW_CODES: dict[str, Code] = {
    "anterior": codes.SCT.AnteriorProjection,  # 399321004
    "posterior": codes.SCT.PosteriorProjection,  # 399001007
}

RADIONUCLIDE = codes.SCT._99mTechnetium  # 72454006
RADIOPHARMACEUTICALS: dict[str, Code] = {
    "MDP": codes.SCT.TechnetiumTc99mMedronate,  # 96390006
    "HDP": codes.SCT.TechnetiumTc99mOxidronate,  # 53951001 (oxidronate = HDP/HMDP)
}

RECUMBENT = codes.SCT.Recumbent  # 102538003
SUPINE = codes.SCT.Supine  # 40199007
HEADFIRST = codes.SCT.Headfirst  # 102540008
SYNTHESIZING_EQUIPMENT = codes.DCM.SynthesizingEquipment  # 109100
BASIC_PROFILE = codes.DCM.BasicApplicationConfidentialityProfile  # 113100
CLEAN_DESCRIPTORS = codes.DCM.CleanDescriptorsOption  # 113105


def code_item(code: Code) -> Dataset:
    """A Code Sequence item: value, scheme designator, meaning."""
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item


def code_sequence(*items: Code) -> Sequence:
    return Sequence([code_item(code) for code in items])


def same_code(item: Dataset, code: Code) -> bool:
    """Whether a Code Sequence item denotes ``code``.

    pydicom's :class:`Code` equality ignores the meaning and maps legacy SNOMED-RT (``SRT``) values
    to SNOMED CT, so older objects (e.g. anterior view ``G-5215``) match too.
    """
    value, scheme = item.get("CodeValue"), item.get("CodingSchemeDesignator")
    if not value or not scheme:
        return False
    return Code(str(value), str(scheme), str(item.get("CodeMeaning", ""))) == code


def lookup(mapping: Mapping[str, Code], items: Iterable[Dataset]) -> str | None:
    """Key of ``mapping`` whose code one of ``items`` (a Code Sequence) denotes, or ``None``."""
    for item in items:
        for key, code in mapping.items():
            if same_code(item, code):
                return key
    return None


@cache
def _known_codes(scheme: str) -> dict[str, Code]:
    if scheme.upper().startswith("CID"):  # pydicom also names its context groups this way
        return {}
    try:
        concepts = Collection(scheme).concepts
    except KeyError:  # a scheme pydicom's PS3.16 tables do not hold
        return {}
    return {code.value: code for code in concepts.values()}


def known_code(value: str, scheme: str) -> Code | None:
    """The PS3.16 concept with this value in this coding scheme, as pydicom ships it, or ``None``."""
    return _known_codes(str(scheme)).get(str(value))


_TRACER_WORDS = {
    **dict.fromkeys(("MDP", "MEDRONATE", "METHYLENE"), "MDP"),  # methylene diphosphonate
    **dict.fromkeys(("HDP", "HMDP", "OXIDRONATE", "HYDROXYMETHYLENE"), "HDP"),  # hydroxymethylene d.
    # 3,3-diphosphono-1,2-propanedicarboxylic acid; Teceos is its kit
    **dict.fromkeys(("DPD", "TECEOS", "PROPANEDICARBOXYLIC", "PROPANODICARBOXYLIC"), "DPD"),
    "DICARBOXYPROPANE": "DPD",
}
_NUCLIDE = re.compile(r"TC\s*-?\s*99\s*M|99\s*M\s*-?\s*TC|99\s*M")  # glued to the name: "Tc99mMDP"


def tracer_of_text(text: str) -> str | None:
    """Tracer named in a Radiopharmaceutical text: ``Tc99m-MDP``, ``99mTc HMDP``, ``Tc-99m Oxidronate``."""
    words = re.findall(r"[A-Z]+", _NUCLIDE.sub(" ", text.upper()))
    found = {_TRACER_WORDS[w] for w in words if w in _TRACER_WORDS}
    return found.pop() if len(found) == 1 and found <= set(TRACERS) else None

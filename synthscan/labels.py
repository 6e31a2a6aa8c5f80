"""Names defined once: conditions, Perugini grades, views, sources, tracers.

Every module and every CLI choice reads these; nothing else spells a label.
"""

from __future__ import annotations

LABELS: dict[str, int] = {"normal": 0, "metastasis": 1, "amyloidosis": 2}
"""Study-level condition → integer id (also the generator's class id)."""

PERUGINI_GRADES: tuple[int, ...] = (0, 1, 2, 3)
"""Visual Perugini grade of cardiac uptake: 0 none, 1 < bone, 2 ≥ bone, 3 strong with faint bone."""

AMYLOIDOSIS_GRADES: tuple[int, ...] = (1, 2, 3)
"""Grades that define an amyloidosis condition (grade ≥ 2 is scan-positive, grade 1 is equivocal)."""

VIEWS: tuple[str, ...] = ("anterior", "posterior")
"""Index 0 anterior, index 1 posterior as acquired (seen from behind)."""

SOURCES: tuple[str, ...] = ("real", "simulated", "synthetic")

PATIENT_SOURCES: tuple[str, ...] = ("real", "simulated")
"""Studies that stand for a patient: acquired, or simulated as ground truth (never model-generated)."""

TRACERS: tuple[str, ...] = ("MDP", "HDP", "DPD")
"""99mTc diphosphonates: medronate, oxidronate (HMDP), 3,3-diphosphono-1,2-propanodicarboxylic acid."""

BURDENS: tuple[str, ...] = ("none", "1-3", "4-10", ">10", "superscan")
"""Metastatic burden: number of lesions in classes, or a superscan (diffuse skeletal uptake)."""

UNKNOWN = "unknown"
"""Tracer or burden of a study that does not record it (a real class, unlike the null class)."""

DEFAULT_MATRIX: tuple[int, int] = (1024, 256)
"""Rows (head → feet) × columns per view."""

DEFAULT_PIXEL_SPACING_MM: float = 2.4


def check_label(label: str) -> str:
    """Return ``label`` or raise ``ValueError`` listing the valid names."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; valid labels: {', '.join(LABELS)}")
    return label


def check_grade(label: str, grade: int | None) -> int | None:
    """Validate a Perugini grade against its label; ``None`` means unknown."""
    if grade is None:
        return None
    if grade not in PERUGINI_GRADES:
        raise ValueError(f"unknown Perugini grade {grade!r}; valid grades: {PERUGINI_GRADES}")
    if label == "amyloidosis" and grade == 0:
        raise ValueError(f"amyloidosis needs a Perugini grade in {AMYLOIDOSIS_GRADES}, got 0")
    if label != "amyloidosis" and grade != 0:
        raise ValueError(f"Perugini grade {grade} implies amyloidosis, but the label is {label!r}")
    return grade


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; valid sources: {', '.join(SOURCES)}")
    return source

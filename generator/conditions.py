"""Condition keys: the generator's class table, built from the labels and grades of its training data.

A condition key is a label, refined by the Perugini grade for amyloidosis when the grade is known
(``normal``, ``metastasis``, ``amyloidosis-g1`` … ``amyloidosis-g3``, or plain ``amyloidosis``).
Class id ``i`` of the UNet is ``conditions[i]``; id ``len(conditions)`` is the null class of
classifier-free guidance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from synthscan.labels import AMYLOIDOSIS_GRADES, LABELS, check_grade, check_label


def condition_key(label: str, grade: int | None) -> str:
    """Key of one study's condition (the grade refines amyloidosis only)."""
    check_label(label)
    check_grade(label, grade)
    return f"{label}-g{grade}" if label == "amyloidosis" and grade is not None else label


def split_key(key: str) -> tuple[str, int | None]:
    """Inverse of :func:`condition_key`."""
    label, _, grade = key.partition("-g")
    return label, int(grade) if grade else (0 if label != "amyloidosis" else None)


def condition_table(keys: Sequence[str]) -> list[str]:
    """The model's class table: the keys present in the training data, in label then grade order."""
    order = {label: i for i, label in enumerate(LABELS)}
    return sorted(set(keys), key=lambda k: (order[split_key(k)[0]], split_key(k)[1] or 0))


def resolve_condition(
    label: str,
    grade: int | None,
    conditions: Sequence[str],
    grade_weights: Mapping[str, float],
    generator: torch.Generator,
) -> str:
    """Key to generate for a requested label and grade; a missing amyloidosis grade is drawn.

    Without a grade, amyloidosis studies get grades in their training proportions (``grade_weights``),
    drawn with the sample's own generator so the choice is reproducible from its seed.
    """
    if label not in LABELS:
        raise ValueError(f"unknown condition {label!r}; valid conditions: {', '.join(LABELS)}")
    if grade is not None and label != "amyloidosis":
        raise ValueError(f"a Perugini grade applies to amyloidosis only, not to {label!r}")
    if grade is not None and grade not in AMYLOIDOSIS_GRADES:
        raise ValueError(
            f"unknown Perugini grade {grade}; valid grades: {', '.join(map(str, AMYLOIDOSIS_GRADES))}"
        )
    available = [k for k in conditions if split_key(k)[0] == label]
    if not available:
        raise ValueError(f"this model was not trained on {label!r}; it generates: {', '.join(conditions)}")
    if grade is not None:
        key = condition_key(label, grade)
        if key not in conditions:
            graded = [k for k in available if split_key(k)[1]]
            raise ValueError(
                f"this model has no {key!r}; amyloidosis conditions it knows: {', '.join(graded)}"
            )
        return key
    if len(available) == 1:
        return available[0]
    weights = torch.tensor([float(grade_weights.get(k, 0.0)) for k in available], dtype=torch.float64)
    if weights.sum() <= 0:
        weights = torch.ones(len(available), dtype=torch.float64)
    index = int(torch.multinomial(weights, 1, generator=generator))
    return available[index]

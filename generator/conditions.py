"""Condition keys: the generator's class table, built from the labels and grades of its training data.

A condition key is a label, refined by the Perugini grade for amyloidosis when the grade is known
(``normal``, ``metastasis``, ``amyloidosis-g1`` … ``amyloidosis-g3``, or plain ``amyloidosis``).
Class id ``i`` of the UNet is ``conditions[i]``; id ``len(conditions)`` is the null class of
classifier-free guidance.

Models trained with finer conditions also know two *factors* beside the condition key, each with
its own values, an ``unknown`` value for training studies that do not record it, and its own null
class: the tracer (MDP, HDP, DPD) and the metastatic burden (no lesion, 1-3, 4-10, more than 10
lesions, superscan), read from the manifest's ``tracer``, ``lesion_count`` and ``superscan`` columns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import torch

from synthscan.apportion import apportion
from synthscan.dataset import Record
from synthscan.labels import AMYLOIDOSIS_GRADES, BURDENS, LABELS, TRACERS, UNKNOWN, check_grade, check_label

METASTATIC_BURDENS: tuple[str, ...] = BURDENS[1:]
"""The burdens of a metastasis study (``sampling.burden_guidance`` keys)."""

FACTORS: dict[str, tuple[str, ...]] = {"tracer": TRACERS, "burden": BURDENS}
"""Condition factors beside the condition key, each with its values (``unknown`` is added per model)."""


def burden_class(lesion_count: str | int | None, superscan: str | bool | None) -> str:
    """Burden class of one study from its manifest columns; ``unknown`` when the count is not recorded."""
    if str(superscan).strip().lower() in ("1", "true", "yes"):
        return "superscan"
    if lesion_count is None or str(lesion_count).strip() == "":
        return UNKNOWN
    n = int(float(lesion_count))
    return "none" if n == 0 else "1-3" if n <= 3 else "4-10" if n <= 10 else ">10"


def study_factors(record: Record) -> dict[str, str]:
    """Tracer and burden of one training study (``unknown`` where its manifest does not say)."""
    return {
        "tracer": record.tracer if record.tracer in TRACERS else UNKNOWN,
        "burden": burden_class(record.get("lesion_count", None) or None, record.get("superscan", None)),
    }


def factor_tables(factors: Sequence[Mapping[str, str]]) -> dict[str, list[str]] | None:
    """Each factor's class table (its known values in canonical order, then ``unknown`` if present).

    ``None`` when no training study records any factor: the model then has no factor conditions.
    """
    tables = {}
    for name, values in FACTORS.items():
        seen = {f[name] for f in factors}
        tables[name] = [v for v in values if v in seen] + ([UNKNOWN] if UNKNOWN in seen else [])
    if all(table in ([], [UNKNOWN]) for table in tables.values()):
        return None
    return tables


def resolve_factor(
    name: str,
    value: str | None,
    table: Sequence[str],
    weights: Mapping[str, float],
    generator: torch.Generator,
) -> str:
    """Value of factor ``name`` to generate: ``value``, or one drawn in the training proportions.

    Drawn with the sample's own generator, so an unspecified tracer or burden is reproducible from the
    seed and is recorded with the study like a requested one.
    """
    if value is not None:
        if value not in table:
            known = [v for v in table if v != UNKNOWN]
            raise ValueError(f"this model has no {name} {value!r}; {name}s it knows: {', '.join(known)}")
        return value
    options = [v for v in table if v != UNKNOWN] or list(table)
    probabilities = torch.tensor([float(weights.get(v, 0.0)) for v in options], dtype=torch.float64)
    if probabilities.sum() <= 0:
        probabilities = torch.ones(len(options), dtype=torch.float64)
    return options[int(torch.multinomial(probabilities, 1, generator=generator))]


def condition_key(label: str, grade: int | None) -> str:
    """Key of one study's condition (the grade refines amyloidosis only)."""
    check_label(label)
    check_grade(label, grade)
    return f"{label}-g{grade}" if label == "amyloidosis" and grade is not None else label


def condition_keys(records: Sequence[Record]) -> list[str]:
    """:func:`condition_key` of each record: the strata of the fidelity reports' within-condition
    tests (an amyloidosis study of unknown grade pairs only with its like)."""
    return [condition_key(r.label, r.perugini_grade) for r in records]


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


def tracer_sequence(
    n: int, label: str, records: Sequence[Record], tracers: Sequence[str]
) -> list[str | None]:
    """Tracers of ``n`` planned ``label`` studies in the tracer mix of ``records`` (real or simulated).

    The mix is that of the label's own studies among the ``tracers`` a model knows, else of all the
    studies (``None`` for every study where none names one of them: the model draws its tracer).
    Each next study takes the tracer furthest below its share so far (ties by order), so the first
    ``k`` are the same whatever ``n``: an interrupted run, or a rerun asked for more studies, keeps
    the mix, and a study id always gets the same tracer.
    """
    known = [r for r in records if r.tracer in tracers]
    mix = Counter(r.tracer for r in known if r.label == label) or Counter(r.tracer for r in known)
    if not mix:
        return [None] * n
    return apportion(n, {t: mix[t] for t in tracers})

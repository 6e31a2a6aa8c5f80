"""Score a reader study the way the paper reports it.

Per reader and pooled: accuracy at telling real from synthetic with a Clopper–Pearson 95 % CI and an
exact binomial test against 50 %; sensitivity and specificity for detecting synthetic scans; Fleiss' κ
over the cases every reader answered, with a bootstrap CI over cases; how many cases the readers
disagreed on; accuracy by confidence; and agreement of each reader's diagnosis with the condition the
case was built with (per condition, confusion matrix); reading time per case (from first display to
answer, measured by the server) and the cases readers flagged for review. The pooled test treats
reads as independent, which they are not across readers of the same case; per-reader tests and κ
are the primary results. Only readers with answers are counted as readers. The blinding audit that
``create`` ran (how separable the case files are without reading) is reported beside the readers.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest
from statsmodels.stats.inter_rater import fleiss_kappa

from synthscan.atomic import atomic_write_text
from synthscan.labels import LABELS

from .audit import describe_tells, verdict
from .create import ANSWERS_DB, load_audit, load_key, load_study
from .store import Answer, AnswerStore

log = logging.getLogger(__name__)

CALLS = ("real", "synthetic")
MACHINE_READER = "private/machine_reader.json"


def proportion(successes: int, trials: int) -> dict[str, Any]:
    """A proportion with its Clopper–Pearson 95 % CI and the exact two-sided test against 0.5."""
    if trials == 0:
        return {"k": 0, "n": 0, "value": None, "ci95": [None, None], "p_vs_50": None}
    test = binomtest(successes, trials, 0.5)
    interval = test.proportion_ci(confidence_level=0.95, method="exact")
    return {
        "k": int(successes),
        "n": int(trials),
        "value": successes / trials,
        "ci95": [float(interval.low), float(interval.high)],
        "p_vs_50": float(test.pvalue),
    }


def detection(answers: list[Answer], truth: dict[str, str]) -> dict[str, Any]:
    """Accuracy, sensitivity (synthetic called synthetic) and specificity (real called real)."""
    correct = sum(a.call == truth[a.case_id] for a in answers)
    synthetic = [a for a in answers if truth[a.case_id] == "synthetic"]
    real = [a for a in answers if truth[a.case_id] == "real"]
    return {
        "n_answers": len(answers),
        "accuracy": proportion(correct, len(answers)),
        "sensitivity": proportion(sum(a.call == "synthetic" for a in synthetic), len(synthetic)),
        "specificity": proportion(sum(a.call == "real" for a in real), len(real)),
    }


def reading_time(answers: list[Answer]) -> dict[str, Any]:
    """Median and quartiles of the seconds from a case's first display to its answer."""
    seconds = [a.seconds for a in answers if a.seconds is not None]
    if not seconds:
        return {"n": 0, "median": None, "iqr": [None, None]}
    low, median, high = np.percentile(seconds, [25, 50, 75])
    return {"n": len(seconds), "median": float(median), "iqr": [float(low), float(high)]}


def call_table(answers: list[Answer], cases: list[str], readers: list[str]) -> np.ndarray:
    """Cases × (real, synthetic) counts of calls, for cases that every reader answered."""
    calls = {(a.reader_id, a.case_id): a.call for a in answers}
    return np.array(
        [[sum(calls[(r, case)] == call for r in readers) for call in CALLS] for case in cases], dtype=int
    )


def kappa_with_ci(table: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Fleiss' κ and a percentile bootstrap 95 % CI resampling cases."""
    if len(table) < 2 or table.sum(axis=1)[0] < 2:
        return {"value": None, "ci95": [None, None], "n_cases": len(table)}
    value = float(fleiss_kappa(table, method="fleiss"))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        sample = table[rng.integers(0, len(table), len(table))]
        if (sample.sum(axis=0) > 0).sum() < 2:
            continue
        boots.append(fleiss_kappa(sample, method="fleiss"))
    low, high = np.percentile(boots, [2.5, 97.5]) if boots else (None, None)
    return {"value": value, "ci95": [float(low), float(high)], "n_cases": len(table), "n_boot": len(boots)}


def by_confidence(answers: list[Answer], truth: dict[str, str]) -> dict[str, Any]:
    groups: dict[int, list[Answer]] = defaultdict(list)
    for answer in answers:
        groups[answer.confidence].append(answer)
    return {
        str(level): proportion(sum(a.call == truth[a.case_id] for a in groups[level]), len(groups[level]))
        for level in range(1, 6)
    }


def diagnosis_agreement(answers: list[Answer], key: dict[str, Any]) -> dict[str, Any]:
    """Confusion matrix intended condition × read diagnosis, overall and by source, plus grade agreement."""
    labels = list(LABELS)

    def matrix(subset: list[Answer]) -> dict[str, Any]:
        counts = np.zeros((len(labels), len(labels)), dtype=int)
        for a in subset:
            counts[LABELS[key[a.case_id]["label"]], LABELS[a.diagnosis]] += 1
        per_condition = {
            label: proportion(int(counts[i, i]), int(counts[i].sum())) for i, label in enumerate(labels)
        }
        return {
            "labels": labels,
            "confusion": counts.tolist(),
            "agreement": proportion(int(np.trace(counts)), int(counts.sum())),
            "per_condition": per_condition,
        }

    amyloid = [
        a for a in answers if key[a.case_id]["label"] == "amyloidosis" and a.diagnosis == "amyloidosis"
    ]
    graded = [a for a in amyloid if key[a.case_id]["perugini_grade"] is not None and a.grade is not None]
    return {
        "all": matrix(answers),
        "real": matrix([a for a in answers if key[a.case_id]["source"] == "real"]),
        "synthetic": matrix([a for a in answers if key[a.case_id]["source"] == "synthetic"]),
        "perugini_grade_agreement": proportion(
            sum(a.grade == key[a.case_id]["perugini_grade"] for a in graded), len(graded)
        ),
    }


def score_study(root: str | Path, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """All results as a JSON-ready dict (see the module docstring)."""
    root = Path(root)
    study = load_study(root)
    key = load_key(root)["cases"]
    truth = {case: entry["source"] for case, entry in key.items()}
    readers = [reader["id"] for reader in study["readers"]]
    answers = [a for a in AnswerStore(root / ANSWERS_DB).all_answers() if a.case_id in truth]
    by_reader = {r: [a for a in answers if a.reader_id == r] for r in readers}
    n_cases = len(study["cases"])
    per_reader = {
        r: {
            **detection(by_reader[r], truth),
            "complete": len(by_reader[r]) == n_cases,
            "seconds_per_case": reading_time(by_reader[r]),
            "flagged": sum(a.flagged for a in by_reader[r]),
            "by_confidence": by_confidence(by_reader[r], truth),
            "diagnosis": diagnosis_agreement(by_reader[r], key),
        }
        for r in readers
    }
    active = [r for r in readers if by_reader[r]]
    answered_sets = [{a.case_id for a in by_reader[r]} for r in active]
    common = sorted(set.intersection(*answered_sets)) if answered_sets else []
    table = call_table(answers, common, active)
    disagreed = int(sum(row.min() > 0 for row in table)) if len(table) else 0
    results = {
        "n_cases": n_cases,
        "n_readers": len(readers),
        "readers_with_answers": active,
        "incomplete_readers": {r: len(by_reader[r]) for r in active if len(by_reader[r]) < n_cases},
        "readers_without_answers": [r for r in readers if not by_reader[r]],
        "per_reader": per_reader,
        "pooled": {
            **detection(answers, truth),
            "by_confidence": by_confidence(answers, truth),
            "diagnosis": diagnosis_agreement(answers, key),
            "seconds_per_case": reading_time(answers),
        },
        "flagged": [
            {
                "reader": a.reader_id,
                "case": a.case_id,
                "source": truth[a.case_id],
                "label": key[a.case_id]["label"],
            }
            for a in answers
            if a.flagged
        ],
        "agreement": {
            "cases_read_by_all": len(common),
            "fleiss_kappa": kappa_with_ci(table, n_boot, seed) if len(active) >= 2 else None,
            "cases_disagreed": disagreed,
            "share_disagreed": disagreed / len(common) if common else None,
        },
    }
    audit = load_audit(root)
    if audit is not None:
        results["blinding_audit"] = {**audit["summary"], "strongest": describe_tells(audit)}
    machine = root / MACHINE_READER
    if machine.is_file():
        results["machine_reader"] = json.loads(machine.read_text(encoding="utf-8"))["summary"]
    return results


def _pct(entry: dict[str, Any]) -> str:
    if entry["value"] is None:
        return "n/a (no answers)"
    low, high = entry["ci95"]
    return f"{entry['value']:.2f} (95% CI {low:.2f}–{high:.2f}; {entry['k']}/{entry['n']})"


def _p(value: float | None) -> str:
    return "n/a" if value is None else ("< 0.001" if value < 0.001 else f"{value:.3f}")


def report_markdown(results: dict[str, Any]) -> str:
    """The results paragraph and tables."""
    pooled = results["pooled"]
    agreement = results["agreement"]
    kappa = agreement["fleiss_kappa"]
    lines = ["# Reader study: real versus synthetic", ""]
    active = len(results["readers_with_answers"])
    complete = active - len(results["incomplete_readers"])
    readers = (
        f"{active} readers"
        if active == results["n_readers"]
        else f"{active} of {results['n_readers']} readers"
    )
    paragraph = ""
    if "blinding_audit" in results:
        audit = results["blinding_audit"]
        paragraph += (
            f"Before reading, a blinding audit ({audit['method']}) told real from synthetic case files with "
            f"AUC {audit['auc']:.2f} (DeLong 95% CI {audit['ci95'][0]:.2f}–{audit['ci95'][1]:.2f}); "
            + ("readers could beat chance on low-level tells alone. " if audit["tells"] else "")
        )
    paragraph += (
        f"{readers} read whole-body bone scans of a {results['n_cases']}-case set (half real, half "
        f"synthetic, stratified by condition; {complete} of them every case) and judged whether each "
        f"scan was real or synthetic. Pooled over {pooled['n_answers']} reads, accuracy was "
        f"{_pct(pooled['accuracy'])}, "
        f"p = {_p(pooled['accuracy']['p_vs_50'])} against chance (exact binomial test, reads treated as "
        f"independent); sensitivity for detecting synthetic scans was {_pct(pooled['sensitivity'])} and "
        f"specificity {_pct(pooled['specificity'])}."
    )
    if kappa and kappa["value"] is not None:
        low, high = kappa["ci95"]
        paragraph += (
            f" Inter-reader agreement on the real/synthetic call was Fleiss' κ = {kappa['value']:.2f} "
            f"(bootstrap 95% CI {low:.2f}–{high:.2f}) over the {agreement['cases_read_by_all']} cases "
            f"read by every reader; the readers disagreed on {agreement['cases_disagreed']} of them "
            f"({100 * agreement['share_disagreed']:.0f}%)."
        )
    diagnosis = pooled["diagnosis"]
    paragraph += (
        " The readers' diagnosis matched the intended condition in "
        f"{_pct(diagnosis['synthetic']['agreement'])} of reads of synthetic scans and "
        f"{_pct(diagnosis['real']['agreement'])} of reads of real scans."
    )
    if "machine_reader" in results:
        machine = results["machine_reader"]
        paragraph += (
            f" A machine reader (cross-validated logistic regression on classifier features) reached "
            f"accuracy {_pct(machine['accuracy'])} and AUC {machine['auc']:.2f}."
        )
    time = pooled["seconds_per_case"]
    if time["median"] is not None:
        paragraph += (
            f" Reading took a median of {time['median']:.0f} s per case (IQR {time['iqr'][0]:.0f}–"
            f"{time['iqr'][1]:.0f} s); {len(results['flagged'])} reads were flagged for review."
        )
    lines += [paragraph, ""]
    if results["readers_without_answers"]:
        lines += [
            f"**Readers without answers (not counted):** {', '.join(results['readers_without_answers'])}.",
            "",
        ]
    if results["incomplete_readers"]:
        missing = ", ".join(
            f"{r} ({n}/{results['n_cases']})" for r, n in results["incomplete_readers"].items()
        )
        lines += [
            f"**Incomplete readings:** {missing}. Per-reader figures use the cases each reader answered; "
            "κ and disagreement use only cases answered by every reader with answers.",
            "",
        ]
    lines += [
        "## Per reader",
        "",
        "| Reader | Reads | Accuracy (95% CI) | p vs 50% | Sensitivity | Specificity | s/case (median) "
        "| Flagged |",
    ]
    lines += ["|---|---|---|---|---|---|---|---|"]
    for reader, entry in results["per_reader"].items():
        median = entry["seconds_per_case"]["median"]
        lines.append(
            f"| {reader} | {entry['n_answers']} | {_pct(entry['accuracy'])} "
            f"| {_p(entry['accuracy']['p_vs_50'])} | {_pct(entry['sensitivity'])} "
            f"| {_pct(entry['specificity'])} | {'n/a' if median is None else f'{median:.0f}'} "
            f"| {entry['flagged']} |"
        )
    if "blinding_audit" in results:
        audit = results["blinding_audit"]
        lines += [
            "",
            "## Blinding audit",
            "",
            f"{audit['method']}: AUC {audit['auc']:.2f} (DeLong 95% CI {audit['ci95'][0]:.2f}–"
            f"{audit['ci95'][1]:.2f}) on {audit['n_cases']} cases: {verdict(audit)}. "
            f"Strongest single statistics: {audit['strongest']}.",
        ]
    lines += ["", "## Accuracy by confidence (pooled)", "", "| Confidence | Accuracy |", "|---|---|"]
    lines += [f"| {level} | {_pct(entry)} |" for level, entry in pooled["by_confidence"].items()]
    lines += ["", "## Diagnosis versus intended condition (pooled)", ""]
    labels = diagnosis["all"]["labels"]
    lines += [
        "| intended \\ read | " + " | ".join(labels) + " | agreement |",
        "|---" * (len(labels) + 2) + "|",
    ]
    for label, row in zip(labels, diagnosis["all"]["confusion"], strict=True):
        lines.append(
            f"| {label} | "
            + " | ".join(map(str, row))
            + f" | {_pct(diagnosis['all']['per_condition'][label])} |"
        )
    lines += [
        "",
        f"Perugini grade agreement on amyloidosis reads: {_pct(diagnosis['perugini_grade_agreement'])}.",
    ]
    lines += [
        "",
        "Plots: `accuracy_per_reader.png`, `accuracy_by_confidence.png`, `diagnosis_confusion.png`.",
        "",
    ]
    return "\n".join(lines)


def plot_results(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def forest(entries: dict[str, dict[str, Any]], title: str, path: Path, xlabel: str) -> None:
        names = [n for n, e in entries.items() if e["value"] is not None]
        fig, ax = plt.subplots(figsize=(6, 0.5 * len(names) + 1.5))
        for i, name in enumerate(names):
            entry = entries[name]
            ax.errorbar(
                entry["value"],
                i,
                xerr=[[entry["value"] - entry["ci95"][0]], [entry["ci95"][1] - entry["value"]]],
                fmt="o",
                color="k",
                capsize=3,
            )
        ax.axvline(0.5, ls="--", color="grey")
        ax.set_yticks(range(len(names)), names)
        ax.set_xlim(0, 1)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)

    accuracy = {r: e["accuracy"] for r, e in results["per_reader"].items()}
    accuracy["pooled"] = results["pooled"]["accuracy"]
    if "machine_reader" in results:
        accuracy["machine"] = results["machine_reader"]["accuracy"]
    forest(accuracy, "Real vs synthetic accuracy (95% CI)", out / "accuracy_per_reader.png", "accuracy")
    forest(
        {f"confidence {k}": v for k, v in results["pooled"]["by_confidence"].items()},
        "Accuracy by confidence (pooled)",
        out / "accuracy_by_confidence.png",
        "accuracy",
    )
    diagnosis = results["pooled"]["diagnosis"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for ax, source in zip(axes, ("real", "synthetic"), strict=True):
        confusion = np.array(diagnosis[source]["confusion"])
        ax.imshow(confusion, cmap="Blues")
        labels = diagnosis[source]["labels"]
        ax.set_xticks(range(len(labels)), labels, rotation=30)
        ax.set_yticks(range(len(labels)), labels)
        for (i, j), value in np.ndenumerate(confusion):
            ax.text(j, i, str(value), ha="center", va="center")
        ax.set_xlabel("read diagnosis")
        ax.set_ylabel("intended condition")
        ax.set_title(f"{source} scans")
    fig.tight_layout()
    fig.savefig(out / "diagnosis_confusion.png", dpi=120)
    plt.close(fig)


def write_report(root: str | Path, out: str | Path, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Score a study and write ``report.md``, ``results.json`` and the plots into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = score_study(root, n_boot=n_boot, seed=seed)
    atomic_write_text(out / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out / "report.md", report_markdown(results))
    plot_results(results, out)
    log.info("wrote %s", out / "report.md")
    return results

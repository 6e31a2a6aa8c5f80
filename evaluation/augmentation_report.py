"""The augmentation study's report: ``results.json``, ``report.md`` and learning-curve figures.

Reads only the summarised results (:func:`synthscan.evaluation.augmentation.summarise`), so a
report can be rewritten from a finished study's ``results.json`` alone.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from synthscan.atomic import atomic_write_bytes, atomic_write_text
from synthscan.classifier.config import TASKS

RESULTS = "results.json"
REPORT = "report.md"
# Names the study writes into run folders and results.json, and the report reads back.
INTERNAL = "internal"
EXTERNAL = "external (pooled)"  # the pooled row: each run's value averaged over the external cohorts
REAL = "real"
GAIN_COLUMNS = ("AUC [95% CI]", "absolute gain", "relative gain %", "headroom closed", "p")
"""The columns every gain table of the report shares, after its row keys."""


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _f(value: float | None, digits: int = 3, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _ci(inference: dict[str, Any] | None, digits: int = 3, sign: bool = False) -> str:
    """``mean [lower, upper]`` of an :class:`~synthscan.evaluation.stats.DrawInference` dict."""
    if not inference:
        return "—"
    text = _f(inference["mean"], digits, sign)
    if inference["lower"] is not None and math.isfinite(inference["lower"]):
        text += f" [{_f(inference['lower'], digits, sign)}, {_f(inference['upper'], digits, sign)}]"
    return text


def _p(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _arm(arm: str, ratio: float) -> str:
    return "real only" if arm == REAL else f"+{ratio:g}x {arm}"


def _verdict(inference: dict[str, Any]) -> str:
    """What the across-draw interval of a gain supports, in words."""
    if inference["unit"] != "draws":
        return "one draw: says nothing about other real sets"
    if inference["lower"] is None:
        return "no interval"
    if inference["lower"] > 0:
        return "gain"
    if inference["upper"] < 0:
        return "loss"
    return "not shown (CI includes 0)"


def _multiplier(row: dict[str, Any] | None) -> str:
    if not row:
        return "—"
    bound = "" if row["bound"] == "=" else row["bound"]
    text = f"{bound}{row['multiplier']:.2f}x"
    if row["lower"] is not None and math.isfinite(row["lower"]):
        text += f" [{row['lower']:.2f}, {row['upper']:.2f}]"
    return text


def write_report(results: dict[str, Any], out: str | Path) -> Path:
    """``results.json``, learning curves (``curves-<task>.png``) and ``report.md`` in ``out``."""
    out = Path(out)
    atomic_write_text(out / RESULTS, json.dumps(_clean(results), indent=1) + "\n")
    results = json.loads((out / RESULTS).read_text(encoding="utf-8"))  # NaN → None everywhere below
    figures = plot_curves(results, out)
    settings, design = results["settings"], results["settings"]["design"]
    train = settings["config"]["train"]
    arms = sorted({run["arm"] for run in results["runs"].values()} - {REAL})
    sizes = sorted({run["size"] for run in results["runs"].values()})
    pool = settings["pool"]
    overlap = ", ".join(
        f"{size}: {_f(share, 2)}" for size, share in settings["draw_overlap"].items() if share is not None
    )
    lines = [
        "# Synthetic augmentation study",
        "",
        f"- real pool: `{settings['real']}`, split by patient (stratified by label and task targets) "
        f"into {pool['train_patients']} training patients to draw from, {pool['val_studies']} validation "
        f"and {pool['test_studies']} internal test studies; validation (fixed for every run) chooses best "
        "steps, thresholds and each task's headline ratio",
        f"- real-set sizes (patients): {', '.join(str(n) for n in sizes)}; {design['draws']} independent "
        f"draw(s) per size, {design['seeds']} training seed(s) per draw; mean share of patients two draws "
        f"of one size have in common: {overlap or '— (one draw)'}",
        f"- arms: real only, then {', '.join(arms) or 'none'} at ratios (added : real training studies) "
        f"{', '.join(f'{r:g}' for r in design['ratios'] if r > 0) or '—'}, declared before the run; "
        f"{design['mix']} condition mix",
        f"- synthetic: `{settings['synthetic']}`; oracle (extra real studies from the generator's site): "
        f"`{settings['oracle']}`; simulator: `{settings['simulator']}`",
        f"- budget per run: {train['max_steps']} steps x {train['batch_size']} studies, early stopping "
        "on validation",
        "- cohorts: "
        + ", ".join(
            f"{name} ({c['n']} studies{', external' if c['external'] else ', real test split'})"
            for name, c in results["cohorts"].items()
        ),
        "",
        "## How to read it",
        "",
        "Each gain compares a run with the real-only run of the same draw and seed; seeds are averaged "
        "within a draw and the 95 % intervals and p-values are across draws (t distribution), so they say"
        " whether *the procedure* helps a hospital that draws another small real set of that size, not "
        "whether one trained model beats another. `external (pooled)` averages each run's value over the "
        "external cohorts first. Relative gain = 100 x (AUC − AUC₀) / AUC₀, bounded above by 100 x (1 − "
        "AUC₀) / AUC₀; headroom closed = (AUC − AUC₀) / (1 − AUC₀) has no such ceiling. The effective-"
        "sample multiplier is the real-only size that reaches the arm's mean external AUC (isotonic "
        "learning curve), divided by the real-set size; `>` marks a lower bound (beyond the largest size "
        "measured); its interval is a percentile bootstrap over draws (3 draws or more). The validation "
        "and test patients are the same for every draw, so the intervals carry the variation of the "
        "training set and of training, not that of the test cohorts; draws of a size that is a large "
        "share of the pool overlap (see above) and understate the spread between hospitals.",
        "",
        "## Headline (external cohorts pooled; ratio chosen on each task's own validation AUC)",
        "",
        _row(
            "task",
            "real-set size",
            "ratio",
            "AUC real only",
            "relative gain % [95% CI]",
            "headroom closed [95% CI]",
            "p (across draws)",
            "effective-sample multiplier",
            "what it supports",
        ),
        _row(*["---"] * 9),
    ]
    curves = {(c["task"], c["cohort"], c["size"], c["arm"], c["ratio"]): c["auc"] for c in results["curves"]}
    for row in results["headline"]:
        synthetic = row["synthetic"]
        baseline = curves[(row["task"], EXTERNAL, row["size"], REAL, 0.0)]
        lines.append(
            _row(
                row["task"],
                row["size"],
                f"{row['ratio']:g}",
                _ci(baseline),
                _ci(synthetic["gain_rel"], 1, True),
                _ci(synthetic["headroom_closed"], 2, True),
                _p(synthetic["gain_rel"]["p_value"]),
                _multiplier(row["multiplier"]),
                _verdict(synthetic["gain_rel"]),
            )
        )
    if not results["headline"]:
        lines.append(
            _row("—", "—", "—", "—", "no external cohort and synthetic ratio to compare", *["—"] * 4)
        )
    lines += [
        "",
        "## Every arm, external cohorts pooled",
        "",
        _row(
            "task",
            "size",
            "arm",
            *GAIN_COLUMNS,
            "multiplier",
            "per-model DeLong p < 0.05 (better / worse of tests)",
        ),
        _row(*["---"] * 10),
    ]
    multipliers = {(m["task"], m["size"], m["arm"], m["ratio"]): m for m in results["multipliers"]}
    gains = {(g["task"], g["cohort"], g["size"], g["arm"], g["ratio"]): g for g in results["gains"]}
    for (task, cohort, size, arm, ratio), auc in curves.items():
        if cohort != EXTERNAL:
            continue
        gain = gains.get((task, cohort, size, arm, ratio))
        lines.append(_gain_row(task, size, arm, ratio, auc, gain, multipliers.get((task, size, arm, ratio))))
    for task in TASKS:
        rows = [key for key in curves if key[0] == task and key[1] != EXTERNAL]
        if not rows:
            continue
        lines += [
            "",
            f"## {task}, per cohort",
            "",
            _row("cohort", "size", "arm", *GAIN_COLUMNS),
            _row(*["---"] * 8),
        ]
        for key in rows:
            gain = gains.get(key)
            lines.append(
                _row(
                    key[1],
                    key[2],
                    _arm(key[3], key[4]),
                    _ci(curves[key]),
                    _ci(gain and gain["gain_abs"], 3, True),
                    _ci(gain and gain["gain_rel"], 1, True),
                    _ci(gain and gain["headroom_closed"], 2, True),
                    _p(gain["gain_rel"]["p_value"]) if gain else "—",
                )
            )
        if task in figures:
            lines += ["", f"![Learning curves, {task}]({figures[task].name})"]
    lines += [
        "",
        f"{len(results['runs'])} classifier runs. Per-run AUCs with DeLong CIs, the per-model DeLong tests "
        "against the real-only twin (a fixed-model detail), operating points at each run's validation "
        "threshold and training summaries: `results.json`; timings: each run's `metrics.jsonl`.",
        "",
    ]
    atomic_write_text(out / REPORT, "\n".join(lines))
    return out / REPORT


def _gain_row(
    task: str,
    size: int,
    arm: str,
    ratio: float,
    auc: dict[str, Any],
    gain: dict[str, Any] | None,
    multiplier: dict[str, Any] | None,
) -> str:
    delong = gain["per_model_delong"] if gain else None
    return _row(
        task,
        size,
        _arm(arm, ratio),
        _ci(auc),
        _ci(gain and gain["gain_abs"], 3, True),
        _ci(gain and gain["gain_rel"], 1, True),
        _ci(gain and gain["headroom_closed"], 2, True),
        _p(gain["gain_rel"]["p_value"]) if gain else "—",
        _multiplier(multiplier),
        f"{delong['better_p05']} / {delong['worse_p05']} of {delong['tests']}" if delong else "—",
    )


def plot_curves(results: dict[str, Any], out: Path) -> dict[str, Path]:
    """One PNG per task: AUC against real-set size for every arm, a panel per cohort (and pooled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    for task in TASKS:
        rows = [c for c in results["curves"] if c["task"] == task]
        panels = list(dict.fromkeys(c["cohort"] for c in rows))
        panels = [EXTERNAL, *[p for p in panels if p != EXTERNAL]] if EXTERNAL in panels else panels
        if not panels or len({c["size"] for c in rows}) < 2:
            continue
        fig, axes = plt.subplots(1, len(panels), figsize=(3.8 * len(panels), 3.8), squeeze=False)
        for ax, panel in zip(axes[0], panels, strict=True):
            for arm, ratio in dict.fromkeys((c["arm"], c["ratio"]) for c in rows):
                cell = sorted(
                    (c for c in rows if (c["cohort"], c["arm"], c["ratio"]) == (panel, arm, ratio)),
                    key=lambda c: c["size"],
                )
                x = np.array([c["size"] for c in cell], dtype=float)
                y = np.array([np.nan if c["auc"]["mean"] is None else c["auc"]["mean"] for c in cell])
                low = np.array([np.nan if c["auc"]["lower"] is None else c["auc"]["lower"] for c in cell])
                high = np.array([np.nan if c["auc"]["upper"] is None else c["auc"]["upper"] for c in cell])
                style = (
                    {"color": "black", "linewidth": 2}
                    if arm == REAL
                    else {"linestyle": "--" if arm != "synthetic" else "-"}
                )
                line = ax.plot(x, y, marker="o", markersize=3, label=_arm(arm, ratio), **style)[0]
                ax.fill_between(x, low, high, color=line.get_color(), alpha=0.12, linewidth=0)
            ax.set_xscale("log")
            ax.set_xticks(x, [f"{v:g}" for v in x], minor=False)
            ax.minorticks_off()
            ax.set(
                title="external cohorts (mean)" if panel == EXTERNAL else panel,
                xlabel="real training patients",
                ylabel="AUC",
            )
            ax.grid(alpha=0.3)
        axes[0][0].legend(loc="lower right", fontsize=7)
        fig.suptitle(f"{task}: learning curves, mean over draws with 95 % CI across draws")
        fig.tight_layout()
        path = out / f"curves-{task}.png"
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        plt.close(fig)
        atomic_write_bytes(path, buffer.getvalue())
        figures[task] = path
    return figures

"""The later metastasis guidance interval's ship rule (this folder's README) on two quality sets and two
speed runs.

    python docs/metastasis_interval/rule.py HELD_OUT --shipped S1 S2 --candidate C1 C2 [--speed J1 J2]

``docs/projected_guidance/ship_rule.py`` items 2-7 with item 3's reference-classifier gate per
condition (two-set means): the metastases' own two-sample AUC no more than 0.02 above the shipped
model's, the pooled within-condition AUC no more than 0.01 above (normal and amyloidosis samples are
the shipped ones, bit for bit); the metastases whose detected lesion count falls in their asked burden
class (1-3, 4-10 and >10 pooled) no fewer than the shipped model's − 0.05; DPD's ``|kept − 1|`` no
more than 0.2 above the shipped model's. Item 1's gains: the candidate's ``sample --condition
metastasis`` at least 100x the 1000-step DDPM loop in both ``benchmarks/sample_speed.py --json`` runs
J1 and J2 (each with both models; without ``--speed``, not met), or the metastases' own two-sample AUC
at least 0.02 below the shipped model's. Prints one verdict for every numeric gate;
item 8 stays by eye.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ship_rule
from quality_table import load

SCORED = ("1-3", "4-10", ">10")
OWN = "cls_ref two-sample, metastasis"


def rows(folder: str, real) -> dict[str, float]:
    r = load(folder)
    by_condition = r["reference_classifier"]["real_vs_synthetic"]["two_sample_auc_by_condition"]
    burden = r["lesions"]["burden"]
    synthetic = [burden[b]["synthetic"] for b in SCORED if b in burden]
    in_class = sum(s["share"] * s["n"] for s in synthetic) / sum(s["n"] for s in synthetic)
    return {OWN: by_condition["metastasis"]["auc"], "metastases in their burden class": in_class}


def speedups(runs: list[Path]) -> dict[str, list[float]]:
    """Each model folder's name and its ratio over the DDPM loop in every run."""
    out: dict[str, list[float]] = {}
    for run in runs:
        for path, model in json.loads(run.read_text())["models"].items():
            out.setdefault(Path(path).name, []).append(model["speedup_vs_ddpm"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--speed", nargs=2, type=Path, default=None)
    args, rest = parser.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    fast = False
    if args.speed is not None:
        candidate = Path(rest[rest.index("--candidate") + 1]).resolve()
        ratios = speedups(args.speed)
        model = json.loads((candidate / "results.json").read_text())["model"]
        fast = min(ratios[Path(model).name]) >= 100
        print(f"speed-up over the DDPM loop per run: {ratios}")

    def gains(s, c):
        return [
            ("candidate ≥ 100x the DDPM loop in both speed runs", fast),
            (f"{OWN} ≤ shipped − 0.02", c[OWN] <= s[OWN] - 0.02),
        ]

    s, c, numeric = ship_rule.main(__doc__, rows, gains, pooled_reference=False)
    pooled, burden = "two-sample within, cls_ref", "metastases in their burden class"
    gates = [
        (f"3. {pooled} ≤ shipped + 0.01", c[pooled] <= s[pooled] + 0.01),
        (f"3. {OWN} ≤ shipped + 0.02", c[OWN] <= s[OWN] + 0.02),
        (f"6. {burden} ≥ shipped − 0.05", c[burden] >= s[burden] - 0.05),
        ("DPD |kept − 1| ≤ shipped's + 0.2", abs(c["DPD kept"] - 1) <= abs(s["DPD kept"] - 1) + 0.2),
    ]
    extra = ship_rule.print_gates("metastasis gate", gates)
    verdict = "ships" if numeric and extra else "does not ship"
    print(f"\nverdict on every numeric gate: {verdict} (item 8 by eye)")


if __name__ == "__main__":
    main()

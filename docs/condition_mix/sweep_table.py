"""One Markdown row per `evaluate fidelity` report folder: the numbers the guidance-sweep rule reads.

python docs/condition_mix/sweep_table.py REPORT [REPORT ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

LABELS = ("normal", "metastasis", "amyloidosis")


def main() -> None:
    print(
        "| report | within-condition AUC | pooled AUC | precision | recall | classified as asked "
        "(normal / metastasis / amyloidosis) | lesion marks per normal / metastasis |"
    )
    print("|---|---|---|---|---|---|---|")
    for folder in sys.argv[1:]:
        r = json.loads((Path(folder) / "results.json").read_text())
        rs = r["real_vs_synthetic"]
        shares = " / ".join(f"{r['per_condition'][label]['share_correct']:.3f}" for label in LABELS)
        marks = r["lesions"]["with_lesions"]
        found = " / ".join(f"{marks[label]['synthetic']['mean_detected']:.2f}" for label in LABELS[:2])
        print(
            f"| {folder} | {rs['two_sample_auc_within_condition']:.3f} | {rs['two_sample_auc']:.3f} | "
            f"{rs['precision']:.3f} | {rs['recall']:.3f} | {shares} | {found} |"
        )


if __name__ == "__main__":
    main()

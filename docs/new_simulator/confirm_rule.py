"""The new-simulator fine-tune's confirmation rule (this folder's README, last section) on fresh sets.

    python docs/new_simulator/confirm_rule.py HELD_OUT --shipped S1 S2 --candidate C1 C2

``rule.py`` with item 6's gate on the lesion marks per metastasis measured against the held-out
studies instead of the shipped model: the candidate's two-set mean no further from the held-out
studies' mean than the shipped model's plus 0.3 marks (the first rule asked for at least the shipped
model's less 0.3, which a model drawing fewer spurious marks than the shipped one fails).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ship_rule
from quality_table import load
from rule import reason


def held_out_marks(folder: str, real) -> dict[str, float]:
    lesions = load(folder)["lesions"]["with_lesions"]["metastasis"]
    return {"held-out marks per metastasis": lesions["real"]["mean_detected"]}


def marks_gate(s: dict[str, float], c: dict[str, float]) -> tuple[str, bool]:
    held, key = s["held-out marks per metastasis"], "lesion marks per metastasis"
    return (
        "6. |marks per metastasis − held-out| ≤ shipped's + 0.3",
        abs(c[key] - held) <= abs(s[key] - held) + 0.3,
    )


if __name__ == "__main__":
    ship_rule.main(__doc__, held_out_marks, reason, marks_gate=marks_gate)

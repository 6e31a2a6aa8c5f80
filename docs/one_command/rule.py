"""The one-command default's rule (this folder's README) on two fresh quality sets per model.

    python docs/one_command/rule.py HELD_OUT --shipped S1 S2 --candidate C1 C2

The new-simulator confirmation rule (``docs/new_simulator/confirm_rule.py``: items 2-7 of
``docs/projected_guidance/ship_rule.py``, the metastasis marks measured against the held-out studies)
with item 1 replaced by this change's reason, which is not measured: the candidate is made by one
documented command. Item 1's gains are printed for information; item 8 is by eye.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "new_simulator"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
import ship_rule
from confirm_rule import held_out_marks, marks_gate


def reason(s: dict[str, float], c: dict[str, float]) -> list[tuple[str, bool]]:
    return [("made by one documented command (the reason for the change; not measured)", True)]


if __name__ == "__main__":
    ship_rule.main(__doc__, held_out_marks, reason, marks_gate=marks_gate)

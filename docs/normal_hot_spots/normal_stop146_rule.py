"""The t = 146 early-end rule for normal studies (this folder's README, last section) on two quality sets.

    python docs/normal_hot_spots/normal_stop146_rule.py HELD_OUT --shipped S1 S2 --candidate C1 C2

``docs/projected_guidance/ship_rule.py`` items 1-7, then the stricter gates this candidate gets because
its cost is visible (a smoother trunk): the image detector within conditions no more than 0.02 above
the shipped model's, and the normals read as normal by the reference classifier at least 0.05 higher.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
import ship_rule


def main() -> None:
    s, c, _ = ship_rule.main(__doc__)
    gates = [
        ("10. detector within ≤ shipped + 0.02", c["detector within"] <= s["detector within"] + 0.02),
        (
            "10. read as normal (cls_ref) ≥ shipped + 0.05",
            c["read as normal (cls_ref)"] >= s["read as normal (cls_ref)"] + 0.05,
        ),
    ]
    print(f"\nstricter gates: {'all passed' if ship_rule.print_gates('stricter gate', gates) else 'failed'}")


if __name__ == "__main__":
    main()

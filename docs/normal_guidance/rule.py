"""The normals' guidance 2.5 rule (this folder's README) on two quality sets.

    python docs/normal_guidance/rule.py HELD_OUT --shipped S1 S2 --candidate C1 C2

``docs/projected_guidance/ship_rule.py`` items 1-7, then two stricter gates, because a lower scale is
what once let normals look metastatic: the normals read as normal by the reference classifier no more
than 0.03 below the shipped model's, and lesion marks per normal no more than 0.15 above.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
import ship_rule


def main() -> None:
    s, c, _ = ship_rule.main(__doc__)
    gates = [
        (
            "10. read as normal (cls_ref) ≥ shipped − 0.03",
            c["read as normal (cls_ref)"] >= s["read as normal (cls_ref)"] - 0.03,
        ),
        (
            "10. marks per normal ≤ shipped + 0.15",
            c["lesion marks per normal"] <= s["lesion marks per normal"] + 0.15,
        ),
    ]
    print(f"\nstricter gates: {'all passed' if ship_rule.print_gates('stricter gate', gates) else 'failed'}")


if __name__ == "__main__":
    main()

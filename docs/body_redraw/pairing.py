"""Gate 2 of ``rule.md`` for one pair of quality sets: studies drawn once whose counts differ from the
shipped model's (``decision.py`` runs it on the default's two pairs).

    python docs/body_redraw/pairing.py q_fast_s1120000 q_fastbs_s1120000
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decision import unpaired

from synthscan.dataset import Dataset

shipped, candidate = (Path(p) for p in sys.argv[1:3])
records = list(Dataset.open(candidate / "synthetic"))
redrawn = sum(int(r.get("redraws")) > 0 for r in records)
print(
    f"{candidate}: {redrawn} of {len(records)} redrawn; of the {len(records) - redrawn} drawn once, "
    f"{unpaired(shipped, candidate)} differ from {shipped}'s counts"
)

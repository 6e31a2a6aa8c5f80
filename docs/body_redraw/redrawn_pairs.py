"""The studies a candidate drew again beside the shipped model's draws of the same seeds.

    python docs/body_redraw/redrawn_pairs.py SHIPPED_SET CANDIDATE_SET OUT.png

SHIPPED_SET and CANDIDATE_SET are ``generator_quality --out`` folders of the same seeds; every study the
candidate redrew is shown as the shipped model drew it (left) and as redrawn (right).
"""

import sys
from pathlib import Path

from synthscan.dataset import Dataset
from synthscan.render import render_grid

shipped, candidate = (Dataset.open(Path(p) / "synthetic") for p in sys.argv[1:3])
items = []
for record in candidate:
    if int(record.get("redraws")) > 0:
        before = shipped.read(shipped.record(record.study_id)).counts
        items += [(before, f"{record.study_id} shipped"), (candidate.read(record).counts, "redrawn")]
render_grid(items, columns=4).save(sys.argv[3])
print(f"{sys.argv[3]}: {len(items) // 2} redrawn studies")

"""A seeded subset of a dataset in the held-out label mix, for ``measure.py`` and ``synthscan view``.

    python docs/default_model_continued/label_mix_subset.py DATASET OUT

Picks 15 normal, 6 metastasis and 3 amyloidosis studies (the 600 held-out studies' mix, about 64 /
24 / 12 %) with a fixed seed, so two sample folders of the same seeds give the same sample seeds.
OUT holds links to DATASET's files, its ``dataset.json`` and the chosen manifest rows.
"""

import csv
import shutil
import sys
from pathlib import Path

import numpy as np

MIX = {"normal": 15, "metastasis": 6, "amyloidosis": 3}

src, out = Path(sys.argv[1]), Path(sys.argv[2])
with open(src / "manifest.csv", newline="") as f:
    rows = list(csv.DictReader(f))
rng = np.random.default_rng(24)
chosen = []
for label, k in MIX.items():
    pool = [row for row in rows if row["label"] == label]
    chosen += [pool[i] for i in sorted(rng.choice(len(pool), k, replace=False))]
out.mkdir(parents=True)
for row in chosen:
    (out / row["path"]).parent.mkdir(parents=True, exist_ok=True)
    (out / row["path"]).symlink_to((src / row["path"]).resolve())
shutil.copy(src / "dataset.json", out / "dataset.json")
with open(out / "manifest.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(chosen)
print(f"{out}: {len(chosen)} studies")

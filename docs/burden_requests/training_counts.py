"""How many lesions a simulated dataset's metastasis studies hold, per burden class (the simulator's truth).

python docs/burden_requests/training_counts.py DATASET
"""

import sys
from collections import Counter

from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import requested_burden


def main() -> None:
    counts: dict[str, Counter] = {}
    for record in Dataset.open(sys.argv[1]).records:
        if record.label == "metastasis" and record.get("lesion_count"):
            counts.setdefault(requested_burden(record), Counter())[int(record.get("lesion_count"))] += 1
    for burden, found in counts.items():
        n = sum(found.values())
        table = ", ".join(f"{k}: {v}" for k, v in sorted(found.items())[:8])
        print(f"{burden}: {n} studies; studies per lesion count {table}{', …' if len(found) > 8 else ''}")


if __name__ == "__main__":
    main()

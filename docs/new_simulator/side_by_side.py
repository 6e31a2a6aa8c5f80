"""Two sample folders of the same seeds, study by study: A's study then B's (``ghosts_*.png``).

python docs/new_simulator/side_by_side.py A B OUT.png [-n 4] [--first 0]
"""

from __future__ import annotations

import argparse

from synthscan.dataset import Dataset
from synthscan.render import render_grid


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("out")
    parser.add_argument("-n", type=int, default=4)
    parser.add_argument("--first", type=int, default=0, help="index of the first study pictured")
    args = parser.parse_args()
    a, b = Dataset.open(args.a), Dataset.open(args.b)
    items = []
    for ra, rb in list(zip(a.records, b.records, strict=True))[args.first : args.first + args.n]:
        for folder, dataset, record in ((args.a, a, ra), (args.b, b, rb)):
            items.append((dataset.read(record).counts, f"{folder}: {record.study_id}"))
    render_grid(items, columns=len(items)).save(args.out)


if __name__ == "__main__":
    main()

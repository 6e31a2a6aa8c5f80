"""Misplaced bodies (no head, or the body drawn down the image) per label and guidance interval.

Samples seeds 0..N-1 of each label with the model's own scales, guided only in the given share of
the solver steps (``guidance_interval``), and lists the seeds whose body starts half a head below
every held-out study (``synthscan.evaluation.fidelity.misplaced_bodies``' limit).

    python docs/sampler_checks/misplaced_by_interval.py --model default --held-out centre_a_holdout \
        -n 100 --intervals 0:1 0.1:1 0.2:1
"""

from __future__ import annotations

import argparse

import torch

from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import body_first_row, misplaced_bodies
from synthscan.generator.storage import load_pipeline
from synthscan.labels import LABELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="generator folder or shipped name")
    parser.add_argument("--held-out", required=True, help="held-out studies of the training site")
    parser.add_argument("-n", type=int, default=100, help="samples (seeds 0..n-1) per label")
    parser.add_argument("--intervals", nargs="+", default=["0:1"], help="guidance intervals START:STOP")
    parser.add_argument("--batch-size", type=int, default=25)
    args = parser.parse_args()
    held_out = Dataset.open(args.held_out)
    real_first = [body_first_row(study.counts) for study in held_out.iter_studies(list(held_out))]
    pipe = load_pipeline(args.model)
    for interval in args.intervals:
        start, stop = (float(v) for v in interval.split(":"))
        pipe.register_to_config(guidance_interval=[start, stop])
        for label in LABELS:
            first = []
            for begin in range(0, args.n, args.batch_size):
                seeds = range(begin, min(begin + args.batch_size, args.n))
                out = pipe(
                    [label] * len(seeds),
                    [None] * len(seeds),
                    generator=[torch.Generator().manual_seed(s) for s in seeds],
                )
                first += [body_first_row(counts) for counts in out.counts]
            found = misplaced_bodies(real_first, first, [label] * len(first), held_out.info.pixel_spacing_mm)
            seeds = [s for s, row in enumerate(first) if row > found["limit_row"]]
            print(
                f"interval [{start:g}, {stop:g}] {label:<12} misplaced {len(seeds)}/{args.n} seeds {seeds}",
                flush=True,
            )


if __name__ == "__main__":
    main()

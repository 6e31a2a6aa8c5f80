"""How detectable is the autoencoder alone? The image detector on its reconstructions of real studies.

    python benchmarks/autoencoder_detectability.py --real HELD_OUT [--model DIR] [-n 150] \
        [--seed 0] [--detector-repeats 3] [--out FILE.json]

A latent diffusion model only generates what its decoder can draw. If the image-space detector
(:mod:`synthscan.evaluation.detector`, the one ``generator_quality`` reports) already tells the
autoencoder's reconstructions of real studies from other real studies, more diffusion training cannot
bring the samples below that AUC: the autoencoder is the next thing to change. HELD_OUT's patients are
shuffled (seeded) and split in two; ``n`` studies of the first half are encoded, decoded (through
the model's rate calibration where it has one, as its samples are), cut to
their own acquired rows, scaled to their own counts per view and redrawn as Poisson counts (as a
sample is), and compared with ``n`` studies of the second half. The same comparison with the first
half's studies as acquired is the detector's chance level on this data (real vs real: 0.5 expected).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from generator_fine_structure import Autoencoder, reconstruct  # a sibling script: run as benchmarks/…

from synthscan.dataset import Dataset, Record
from synthscan.evaluation.detector import DetectorConfig, detector_auc, repeats_text
from synthscan.generator.storage import load_pipeline


def patient_halves(records: list[Record], seed: int) -> tuple[list[Record], list[Record]]:
    """Records of a seeded half of the patients, and of the other half (a patient's studies stay together)."""
    patients = sorted({r.patient_id for r in records})
    np.random.default_rng(seed).shuffle(patients)
    first = set(patients[: len(patients) // 2])
    return [r for r in records if r.patient_id in first], [r for r in records if r.patient_id not in first]


def reconstructed_counts(
    ae: Autoencoder, counts: np.ndarray, rng: np.random.Generator, latent: torch.Tensor | None = None
) -> np.ndarray:
    """Poisson counts drawn from the autoencoder's reconstruction of one study, finished as a sample is
    (``latent``: decode this code instead of the study's own, e.g. a perturbed one).

    A sample's rate is cut to an acquisition window and split between the views in a drawn ratio; here
    the window is the study's own (its first to last counted row, per view) and each view gets the
    study's own counts, so the detector compares what the decoder draws, not windows or view splits.
    """
    expected = reconstruct(ae, counts, float(counts.sum()), latent)
    rate = np.zeros(expected.shape, dtype=np.float64)
    for view in range(2):
        rows = np.flatnonzero(counts[view].sum(axis=1))
        if rows.size:
            window = np.clip(expected[view, rows[0] : rows[-1] + 1].astype(np.float64), 0, None)
            rate[view, rows[0] : rows[-1] + 1] = window * counts[view].sum() / max(window.sum(), 1e-12)
    return rng.poisson(rate).astype(np.int32)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--real", required=True, help="real (or simulated) studies the model never trained on"
    )
    parser.add_argument("--model", default=None, help="generator folder or shipped name [default: default]")
    parser.add_argument("-n", type=int, default=150, help="studies per side [default: 150]")
    parser.add_argument(
        "--seed", type=int, default=0, help="patient split, Poisson draws, detector [default: 0]"
    )
    parser.add_argument(
        "--detector-repeats", type=int, default=3, help="detector cross-validations [default: 3]"
    )
    parser.add_argument("--out", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.n < 2 or args.detector_repeats < 1:
        parser.error("-n must be at least 2 and --detector-repeats at least 1")

    dataset = Dataset.open(args.real)
    first, second = patient_halves(dataset.records, args.seed)
    if min(len(first), len(second)) < args.n:
        parser.error(
            f"{args.real} has {len(first)} and {len(second)} studies in its patient halves; lower -n"
        )
    first, second = first[: args.n], second[: args.n]
    pipeline = load_pipeline(args.model, device="cpu")
    ae = Autoencoder.of(pipeline)
    rng = np.random.default_rng(args.seed)

    def counts(records: list[Record]) -> np.ndarray:
        return np.stack([s.counts for s in dataset.iter_studies(records)]).astype(np.int32)

    acquired, reference = counts(first), counts(second)
    reconstructed = np.stack([reconstructed_counts(ae, c, rng) for c in acquired])
    config = DetectorConfig(seed=args.seed, repeats=args.detector_repeats)
    groups_first, groups_second = [r.patient_id for r in first], [r.patient_id for r in second]
    results = {
        "model_sha256": pipeline.sha256,
        "real": str(Path(args.real).name),
        "reconstructed_vs_real": detector_auc(reference, reconstructed, groups_second, groups_first, config),
        "real_vs_real": detector_auc(reference, acquired, groups_second, groups_first, config),
    }
    for name in ("reconstructed_vs_real", "real_vs_real"):
        d = results[name]
        print(
            f"{name} ({d['n_synthetic']} vs {d['n_real']} studies): AUC {d['auc']:.3f} "
            f"[{d['ci95'][0]:.3f}, {d['ci95'][1]:.3f}].{repeats_text(d)}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()

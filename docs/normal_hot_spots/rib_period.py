"""The posterior ribs' vertical period in normal studies, against what a latent grid can draw.

    python docs/normal_hot_spots/rib_period.py [--reconstruct MODEL] DATASET [DATASET ...]

For each dataset's first 40 normal studies: the posterior counts in two paravertebral strips (6-18 %
of the body's width either side of its midline) over the thorax (15-32 % of the body's height),
summed per row, detrended (31-row moving mean removed), Hann-windowed; the mean normalised power
spectrum's peak above 0.03 cycles per native pixel ("none" where the power falls from there on) and
the 0.05-0.12 band's share of the power above 0.03 (periods of 8-20 native pixels, 19-48 mm at
2.4 mm; a flat spectrum gives 0.15). ``--reconstruct MODEL`` (repeatable): also the first dataset's
studies encoded and decoded by MODEL's autoencoder (MODEL a generator folder, or a bare diffusers
``AutoencoderKL`` folder on ``--bin-factor`` binned images) and redrawn as Poisson counts at their own
counts per view (``benchmarks/autoencoder_detectability.py``'s ``reconstructed_counts``): what its
latents can carry.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from diffusers import AutoencoderKL
from scipy import ndimage

from synthscan.dataset import Dataset
from synthscan.generator.storage import load_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from autoencoder_detectability import reconstructed_counts
from generator_fine_structure import Autoencoder
from where import extent  # the body's extent, as where.py measures it (this folder)

N_FFT = 256
FREQS = np.fft.rfftfreq(N_FFT)
ABOVE, RIB_BAND = FREQS > 0.03, (FREQS > 0.05) & (FREQS < 0.12)


def paravertebral_spectrum(posterior: np.ndarray) -> np.ndarray:
    top, bottom = extent(posterior.sum(axis=1))
    left, right = extent(posterior.sum(axis=0))
    height, width, middle = bottom - top, right - left, (left + right) // 2
    rows = slice(top + int(0.15 * height), top + int(0.32 * height))
    near, far = int(0.06 * width), int(0.18 * width)
    strip = posterior[rows, middle - far : middle - near].sum(1) + posterior[
        rows, middle + near : middle + far
    ].sum(1)
    strip = strip - ndimage.uniform_filter1d(strip, 31)
    power = np.abs(np.fft.rfft(strip * np.hanning(len(strip)), n=N_FFT)) ** 2
    return power / power.sum()


def mean_spectrum(studies: list[np.ndarray]) -> np.ndarray:
    """The studies' mean normalised posterior paravertebral spectrum."""
    return np.mean([paravertebral_spectrum(c[1].astype(float)) for c in studies], 0)


def rib_share(spectrum: np.ndarray) -> float:
    """The 0.05-0.12 cycles/px band's share of the power above 0.03."""
    return float(spectrum[RIB_BAND].sum() / spectrum[ABOVE].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument(
        "--reconstruct",
        action="append",
        default=[],
        help="a model, or a bare diffusers AutoencoderKL folder, that redraws the first dataset's studies",
    )
    parser.add_argument("--bin-factor", type=int, default=2, help="a bare autoencoder's binning [default: 2]")
    args = parser.parse_args()
    runs = [(root, None, None) for root in args.datasets]
    for model in args.reconstruct:
        if (Path(model) / "model_index.json").is_file():
            pipeline = load_pipeline(model)
            ae = Autoencoder(pipeline.vae, pipeline.config.bin_factor)
        else:
            ae = Autoencoder(AutoencoderKL.from_pretrained(model).eval(), args.bin_factor)
        runs.append((args.datasets[0], model, ae))
    for root, model, ae in runs:
        dataset = Dataset.open(root)
        records = [r for r in dataset.records if r.label == "normal"][:40]
        studies = [dataset.read(r).counts for r in records]
        if ae is not None:
            rng = np.random.default_rng(0)
            studies = [reconstructed_counts(ae, c, rng) for c in studies]
        spectrum = mean_spectrum(studies)
        k = int(np.argmax(np.where(ABOVE, spectrum, 0)))
        peak = f"{FREQS[k]:.3f} cycles/px (period {1 / FREQS[k]:.1f} native px)" if ABOVE[k - 1] else "none"
        share = rib_share(spectrum)
        name = f"{root} reconstructed by {model}'s autoencoder" if ae is not None else root
        print(f"{name}: spectral peak above 0.03 cycles/px {peak}, 0.05-0.12 share {share:.3f}")


if __name__ == "__main__":
    main()

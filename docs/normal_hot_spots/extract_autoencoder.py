"""A training run's autoencoder checkpoint as a diffusers ``AutoencoderKL`` folder.

    python docs/normal_hot_spots/extract_autoencoder.py RUN OUT

RUN is a ``synthscan train`` run folder whose autoencoder stage has checkpointed (stopped early or
not); OUT can be given to ``rib_period.py --reconstruct`` or ``benchmarks/generator_fine_structure.py
--autoencoder``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from safetensors.torch import load_file

from synthscan.config import load_config
from synthscan.generator.config import GeneratorConfig
from synthscan.generator.models import build_autoencoder


def main() -> None:
    run, out = Path(sys.argv[1]), Path(sys.argv[2])
    vae = build_autoencoder(load_config(GeneratorConfig, run / "config.yaml").autoencoder)
    state = load_file(run / "autoencoder" / "checkpoint" / "model.safetensors")
    vae.load_state_dict({k.removeprefix("vae."): v for k, v in state.items() if k.startswith("vae.")})
    vae.save_pretrained(out)


if __name__ == "__main__":
    main()

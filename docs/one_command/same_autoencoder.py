"""Whether two models' autoencoders hold the same tensors, bit for bit.

    python docs/one_command/same_autoencoder.py MODEL_A MODEL_B

Prints each tensor that differs (largest absolute difference) and a last line ``same: True/False``;
exits 1 when they differ. The safetensors files' bytes are not compared: their metadata may differ
where the weights do not.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from safetensors.torch import load_file

from synthscan.generator.storage import model_dir

WEIGHTS = Path("vae") / "diffusion_pytorch_model.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs=2, help="model folders or shipped names")
    first, second = (load_file(model_dir(name) / WEIGHTS) for name in parser.parse_args().models)
    same = first.keys() == second.keys()
    if not same:
        print(f"in one model only: {sorted(first.keys() ^ second.keys())}")
    for key in sorted(first.keys() & second.keys()):
        a, b = first[key], second[key]
        if a.shape != b.shape:
            same = False
            print(f"{key}: shape {tuple(a.shape)} against {tuple(b.shape)}")
        elif not torch.equal(a, b):
            same = False
            print(f"{key}: differs (max |difference| {(a - b).abs().max().item():.3g})")
    print(f"same: {same}")
    raise SystemExit(0 if same else 1)


if __name__ == "__main__":
    main()

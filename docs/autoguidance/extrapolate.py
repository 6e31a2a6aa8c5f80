"""A copy of model STRONG whose UNet and condition encoder are STRONG + ALPHA (STRONG - WEAK).

    python docs/autoguidance/extrapolate.py STRONG WEAK ALPHA OUT

Weight-space extrapolation past the shipped model, away from the main stage it was trained on from:
what the continued training's direction would give with more of it, at no sampling cost.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

TRAINED = ("unet", "condition_encoder")


def main() -> None:
    strong, weak, alpha, out = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
    shutil.copytree(strong, out)
    checksums = json.loads((out / "checksums.json").read_text())
    for component in TRAINED:
        name = f"{component}/diffusion_pytorch_model.safetensors"
        s, w = load_file(strong / name), load_file(weak / name)
        save_file({k: (s[k] + alpha * (s[k] - w[k])).contiguous() for k in s}, out / name, {"format": "pt"})
        checksums[name] = hashlib.sha256((out / name).read_bytes()).hexdigest()
    (out / "checksums.json").write_text(json.dumps(checksums, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

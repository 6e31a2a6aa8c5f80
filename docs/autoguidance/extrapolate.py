"""A copy of model STRONG whose UNet and condition encoder are STRONG + ALPHA (STRONG - WEAK).

    python docs/autoguidance/extrapolate.py STRONG WEAK ALPHA OUT

Weight-space extrapolation past the shipped model, away from the main stage its training continued:
what the continued training's direction would give with more of it, at no sampling cost. The card
gets one line saying so; the rest of the folder is STRONG's.
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
        if {k: (v.shape, v.dtype) for k, v in s.items()} != {k: (v.shape, v.dtype) for k, v in w.items()}:
            raise SystemExit(f"{strong / name} and {weak / name} are not the same network")
        save_file({k: (s[k] + alpha * (s[k] - w[k])).contiguous() for k in s}, out / name, {"format": "pt"})
        checksums[name] = hashlib.sha256((out / name).read_bytes()).hexdigest()
    card = out / "README.md"
    note = (
        f"Extrapolated: UNet and condition encoder at this model + {alpha:g} × (this model − `{weak}`).\n\n"
    )
    card.write_text(note + card.read_text())
    (out / "checksums.json").write_text(json.dumps(checksums, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

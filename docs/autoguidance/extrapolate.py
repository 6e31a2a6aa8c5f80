"""A copy of model STRONG whose UNet and condition encoder are STRONG + ALPHA (STRONG - WEAK).

    python docs/autoguidance/extrapolate.py STRONG WEAK ALPHA OUT

Weight-space extrapolation past the shipped model, away from the main stage its training continued:
what the continued training's direction would give with more of it, at no sampling cost. Saved like
any model (``save_model``: checksums, atomic); the card gets one line saying what was done.
"""

from __future__ import annotations

import sys

from synthscan.generator.storage import load_pipeline, read_card, save_model

TRAINED = ("unet", "condition_encoder")


def main() -> None:
    strong_dir, weak_dir, alpha, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    strong, weak = load_pipeline(strong_dir), load_pipeline(weak_dir)
    for component in TRAINED:
        s, w = getattr(strong, component).state_dict(), getattr(weak, component).state_dict()
        if {k: v.shape for k, v in s.items()} != {k: v.shape for k, v in w.items()}:
            raise SystemExit(f"the {component} of {strong_dir} and {weak_dir} are not the same network")
        getattr(strong, component).load_state_dict({k: s[k] + alpha * (s[k] - w[k]) for k in s})
    note = (
        f"Extrapolated: UNet and condition encoder at this model + {alpha:g} × (this model − `{weak_dir}`).\n"
    )
    save_model(strong, out, card=note + "\n" + read_card(strong_dir))


if __name__ == "__main__":
    main()

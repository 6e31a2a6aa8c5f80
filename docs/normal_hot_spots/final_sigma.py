"""Save a copy of a generator whose labels end on a denoised estimate (the sampler setting
``label_final_sigma``).

    python docs/normal_hot_spots/final_sigma.py MODEL OUT normal=0.25

A label's studies decode the denoised estimate of the first solver step at or below its sigma instead of
the solver's final latent; with the default's 10 UniPC steps, 0.25 selects the step at t = 41
(sigma 0.20), the one ``normal_stop.py 41`` measured. The weights are unchanged; the copy gets new
checksums and hash.
"""

import sys

from synthscan.generator.storage import load_pipeline, read_card, save_model
from synthscan.labels import LABELS


def main() -> None:
    model, out, *pairs = sys.argv[1:]
    sigmas = {label: float(value) for label, value in (p.split("=") for p in pairs)}
    if set(sigmas) - set(LABELS) or min(sigmas.values()) <= 0:
        sys.exit(f"labels must be in {LABELS} and sigmas positive, got {sigmas}")
    pipeline = load_pipeline(model)
    sigmas = {**(pipeline.config.get("label_final_sigma") or {}), **sigmas}  # other labels kept
    pipeline.register_to_config(label_final_sigma=sigmas)
    save_model(pipeline, out, card=read_card(pipeline.path))
    print(f"{out}: {', '.join(f'{k} ends on the estimate at sigma <= {v:g}' for k, v in sigmas.items())}")


if __name__ == "__main__":
    main()

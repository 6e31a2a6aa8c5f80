"""Save a copy of a generator whose labels end on a denoised estimate (the sampler setting
``label_final_sigma``), or, with ``--guidance``, with other label guidance scales (``label_guidance``).

    python docs/normal_hot_spots/final_sigma.py MODEL OUT normal=0.25
    python docs/normal_hot_spots/final_sigma.py MODEL OUT normal=2.5 --guidance

A label's studies decode the denoised estimate of the first solver step at or below its sigma instead of
the solver's final latent; with the default's 10 UniPC steps, 0.25 selects the step at t = 41
(sigma 0.20), the one ``normal_stop.py 41`` measured. The weights are unchanged; the copy gets new
checksums and hash; labels not named keep MODEL's setting.
"""

import sys

from synthscan.generator.storage import load_pipeline, read_card, save_model
from synthscan.labels import LABELS


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--guidance"]
    setting = "label_guidance" if "--guidance" in sys.argv else "label_final_sigma"
    model, out, *pairs = args
    values = {label: float(value) for label, value in (p.split("=") for p in pairs)}
    if set(values) - set(LABELS) or min(values.values()) <= 0:
        sys.exit(f"labels must be in {LABELS} and values positive, got {values}")
    pipeline = load_pipeline(model)
    values = {**(pipeline.config.get(setting) or {}), **values}  # other labels kept
    pipeline.register_to_config(**{setting: values})
    save_model(pipeline, out, card=read_card(pipeline.path))
    print(f"{out}: {setting} " + ", ".join(f"{k} {v:g}" for k, v in values.items()))


if __name__ == "__main__":
    main()

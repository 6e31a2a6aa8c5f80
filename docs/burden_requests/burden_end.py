"""Save a copy of a generator whose metastasis studies of a burden end on a denoised estimate (the sampler
setting ``burden_final_sigma``), or, with ``--guidance``, are guided at another scale (``burden_guidance``).

    python docs/burden_requests/burden_end.py MODEL OUT 1-3=0.25
    python docs/burden_requests/burden_end.py MODEL OUT '>10=5.5' --guidance

With the default's 10 UniPC steps, 0.25 selects the step at t = 41 (sigma 0.20). The weights are
unchanged; the copy gets new checksums and hash; burdens not named keep MODEL's setting.
"""

import sys

from synthscan.generator.conditions import METASTATIC_BURDENS
from synthscan.generator.storage import load_pipeline, read_card, save_model


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--guidance"]
    setting = "burden_guidance" if "--guidance" in sys.argv else "burden_final_sigma"
    model, out, *pairs = args
    values = {burden: float(value) for burden, value in (p.split("=") for p in pairs)}
    if not values or set(values) - set(METASTATIC_BURDENS) or min(values.values()) <= 0:
        sys.exit(f"burdens must be in {METASTATIC_BURDENS} and values positive, got {values}")
    pipeline = load_pipeline(model)
    values = {**(pipeline.config.get(setting) or {}), **values}
    pipeline.register_to_config(**{setting: values})
    save_model(pipeline, out, card=read_card(pipeline.path))
    print(f"{out}: {setting} " + ", ".join(f"{k} {v:g}" for k, v in values.items()))


if __name__ == "__main__":
    main()

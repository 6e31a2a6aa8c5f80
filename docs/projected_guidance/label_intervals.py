"""Save a copy of a generator whose labels have their own guidance intervals (a sampling setting).

    python docs/projected_guidance/label_intervals.py MODEL OUT normal=0.4,1 metastasis=0.4,1

Writes ``label_guidance_interval`` into ``model_index.json``; the weights are unchanged, the copy gets
new checksums and hash.
"""

import sys

from synthscan.generator.storage import load_pipeline, read_card, save_model


def main() -> None:
    model, out, *pairs = sys.argv[1:]
    spans = {label: [float(v) for v in span.split(",")] for label, span in (p.split("=") for p in pairs)}
    pipeline = load_pipeline(model)
    pipeline.register_to_config(label_guidance_interval=spans)
    save_model(pipeline, out, card=read_card(pipeline.path))
    print(f"{out}: {', '.join(f'{k} guided over {a:g}-{b:g} of the steps' for k, (a, b) in spans.items())}")


if __name__ == "__main__":
    main()

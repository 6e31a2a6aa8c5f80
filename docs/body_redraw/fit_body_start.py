"""Give a generator the lowest body start of its training studies (the acquisition window's
``body_start``), so that its pipeline draws a misplaced body again.

    python docs/body_redraw/fit_body_start.py --model default --data centre_a --cache CACHE --out OUT

Refits the whole window (``AcquisitionWindow.fit``, as training does) on the model's training studies
and refuses unless every field the model already has equals the refit: the same studies, the same fit.
Weights and every other setting are the model's; the copy gets new checksums and hash.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from synthscan.dataset import Dataset
from synthscan.generator.data import prepare_images, training_records
from synthscan.generator.storage import load_pipeline, read_card, save_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="generator folder or shipped name")
    parser.add_argument("--data", required=True, help="the dataset the model was trained on")
    parser.add_argument("--cache", type=Path, required=True, help="folder for the model-space images")
    parser.add_argument("--out", type=Path, required=True, help="folder of the copy")
    args = parser.parse_args()
    pipeline = load_pipeline(args.model)
    dataset = Dataset.open(args.data)
    records = training_records(dataset, tuple(pipeline.config.training_sources))
    images = prepare_images(dataset, records, pipeline.config.bin_factor, args.cache)
    refit = json.loads(json.dumps(images.window.to_dict()))  # tuples as the stored JSON's lists
    stored = dict(pipeline.config.acquisition_window)
    changed = {k: (v, refit[k]) for k, v in stored.items() if k in refit and refit[k] != v}
    if changed:
        raise SystemExit(
            f"{args.data} is not what {args.model} was trained on: window (stored, refit) {changed}"
        )
    pipeline.register_to_config(acquisition_window={**stored, "body_start": refit["body_start"]})
    save_model(pipeline, args.out, card=read_card(pipeline.path))
    print(
        f"{args.out}: body_start {refit['body_start']} (fitted on {len(records)} studies), other fields equal"
    )


if __name__ == "__main__":
    main()

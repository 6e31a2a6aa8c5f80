"""The shipped default with a signal leak fitted on its training studies, as ``synthscan train`` fits it.

    python docs/signal_leak/add_leak.py DATASET OUT [--model M]

Runs at commit 43dc86f, whose library had ``SignalLeak`` (reverted when the candidate failed its rule):
``git checkout 43dc86f`` first.

Encodes DATASET's studies of the model's training sources with the model's autoencoder (posterior
means, on the UNet's grid), fits :class:`~synthscan.generator.models.SignalLeak` on them and saves the
model with it at OUT; weights and settings unchanged. The model card gets a section saying so.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from synthscan.generator.data import prepare_images, training_records
from synthscan.generator.models import SignalLeak, global_scaling_factor
from synthscan.generator.storage import (
    BASE_MODEL_HEADING,
    demote_headings,
    load_pipeline,
    read_card,
    save_model,
)
from synthscan.generator.train import encode_latents, fold_posterior

from synthscan.dataset import Dataset


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default=None, help="model folder or shipped name [default: default]")
    args = parser.parse_args()
    pipeline = load_pipeline(args.model)
    base, base_sha256 = Path(pipeline.path), pipeline.sha256
    scaling = global_scaling_factor(pipeline.vae.config)
    dataset = Dataset.open(args.data)
    sources = tuple(pipeline.config.training_sources)
    records = training_records(dataset, sources)
    with tempfile.TemporaryDirectory() as cache:
        images = prepare_images(dataset, records, pipeline.config.bin_factor, Path(cache))
        latents = fold_posterior(
            encode_latents(pipeline.vae, images), pipeline.config.get("latent_patch", 1), pipeline.vae.config
        )
    leak = SignalLeak.fit(latents[0], scaling)
    pipeline.register_modules(signal_leak=leak)
    card = [
        "# synthscan generator with a signal leak",
        "",
        (
            f"The model below (`{base.name}`, sha256 {base_sha256}) with a `signal_leak` component: the mean "
            f"latent of its {len(records)} {'/'.join(sources)} training studies of `{dataset.root.name}`, "
            "which sampling now starts from as the noise schedule's last timestep leaves it in every training "
            "input (`docs/signal_leak/`, `python docs/signal_leak/add_leak.py`); weights and settings unchanged."
        ),
        "",
        BASE_MODEL_HEADING,
        "",
        *demote_headings(read_card(base).splitlines()),
        "",
    ]
    print(save_model(pipeline, args.out, card="\n".join(card)))


if __name__ == "__main__":
    main()

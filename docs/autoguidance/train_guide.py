"""Train a small, briefly trained UNet on the shipped default's latents: the "bad version" autoguidance needs.

    python docs/autoguidance/train_guide.py MODEL DATA OUT --channels 8 16 32 64 --steps 2000

Karras et al. 2024 guide with a network of the same kind, smaller and trained far shorter, so that
its errors are the strong model's errors, larger. This one keeps MODEL's autoencoder, noise schedule,
condition tables and sampler (only the UNet and its condition encoder are new and trained from
scratch by the library's own ``train_diffusion``), so ``guide_variants.py --guide OUT`` can use it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from accelerate import PartialState
from diffusers import DDPMScheduler

from synthscan.dataset import Dataset
from synthscan.generator.config import GeneratorConfig, UNetConfig
from synthscan.generator.data import shared_images, training_records
from synthscan.generator.models import (
    ConditionedUNet,
    ConditionEncoder,
    build_unet,
    global_scaling_factor,
)
from synthscan.generator.pipeline import SynthScanPipeline
from synthscan.generator.storage import load_pipeline, save_model
from synthscan.generator.train import (
    encode_latents,
    known_condition_records,
    pretrained_conditioning,
    train_diffusion,
)
from synthscan.runs import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the strong model whose latents and conditions the guide learns")
    parser.add_argument("data", help="its training dataset")
    parser.add_argument("out", type=Path, help="the guide's model folder (OUT-run: its run folder)")
    parser.add_argument("--channels", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--cache", type=Path, help="a training-image cache of the same studies to reuse")
    args = parser.parse_args()

    strong: SynthScanPipeline = load_pipeline(args.model)
    scaling = global_scaling_factor(strong.vae.config)  # refused before any output
    dataset = Dataset.open(args.data)
    records = known_condition_records(
        strong, training_records(dataset, ("simulated",)), "studies", dataset.root
    )
    config = GeneratorConfig(sample_every=0)
    config.unet = UNetConfig(
        block_out_channels=tuple(args.channels),
        layers_per_block=1,
        attention_levels=(False,) * (len(args.channels) - 1) + (True,),
    )
    config.diffusion.steps = args.steps
    config.diffusion.prediction_type = strong.scheduler.config.prediction_type
    work = args.out.with_name(args.out.name + "-run")
    run = RunDir(work, config, kind="autoguidance-guide")
    try:
        images = shared_images(
            PartialState(), dataset, records, strong.config.bin_factor, args.cache or work / "data"
        )
        class_ids, null_ids, _ = pretrained_conditioning(strong, records)
        tables = [tuple(t) for t in strong.condition_encoder.config.tables]
        encoder = ConditionEncoder(tables, embedding_dim=4 * args.channels[0])
        unet = build_unet(config.unet, strong.latent_shape, num_conditions=None)
        mean, std = encode_latents(strong.vae, images)
        scheduler = DDPMScheduler.from_config(strong.scheduler.config)
        trained = train_diffusion(
            ConditionedUNet(unet, encoder),
            (mean, std),
            class_ids,
            null_ids,
            scaling,
            config.diffusion,
            scheduler,
            work,
            config,
            run,
        )
        strong.register_modules(unet=trained.unet, condition_encoder=trained.encoder.eval())
        card = (
            f"# Autoguidance guide\n\nA UNet of channels {args.channels} trained {args.steps} steps "
            f"from scratch on the latents of `{args.model}`, whose other components it keeps.\n"
        )
        save_model(strong, args.out, card=card)
    finally:
        run.close()


if __name__ == "__main__":
    main()

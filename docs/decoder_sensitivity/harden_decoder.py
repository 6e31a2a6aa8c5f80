"""Fine-tune a generator's decoder on perturbed latents, encoder frozen (an experiment, not shipped).

    python docs/decoder_sensitivity/harden_decoder.py DATA OUT STEPS SIGMA_MAX [--model DIR]

Each step encodes a binomial share of 8 training crops (128 rows, a quarter flush with a border) with
the model's frozen encoder, adds Gaussian noise of a standard deviation drawn uniformly from
[0, SIGMA_MAX] per crop (scaled latent units) and scores the decoded rate against the other share of
the counts (the autoencoder stage's Poisson deviance and MSE anchor). The latents, hence the UNet,
stay valid. AdamW 1e-4, 50 warm-up steps, cosine decay, seed 0. Writes OUT/model (the generator with
the new decoder) and OUT/log.jsonl.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from diffusers.optimization import get_cosine_schedule_with_warmup

from synthscan.dataset import Dataset
from synthscan.generator.data import prepare_images, random_crops, training_records
from synthscan.generator.models import global_scaling_factor
from synthscan.generator.storage import load_pipeline, save_model
from synthscan.generator.train import split_counts


def trainable_decoder(data: str, out: Path, model: str | None) -> tuple:
    """The generator, its training images, its decoder's parameters (the only ones left trainable) and
    the seeded NumPy and torch generators of the training loop.

    The encoder is frozen, so the latents, hence the trained UNet, stay valid.
    """
    torch.manual_seed(0)
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(0)
    dataset = Dataset.open(data)
    pipeline = load_pipeline(model, device="cpu")
    global_scaling_factor(pipeline.vae.config)  # a per-channel autoencoder is refused before out/data
    images = prepare_images(
        dataset, training_records(dataset, ("real", "simulated")), pipeline.config.bin_factor, out / "data"
    )
    pipeline.vae.requires_grad_(False)
    params = [*pipeline.vae.decoder.parameters(), *pipeline.vae.post_quant_conv.parameters()]
    for p in params:
        p.requires_grad_(True)
    return pipeline, images, params, rng, generator


def reconstruction_loss(
    x_hat: torch.Tensor, held: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The autoencoder stage's objective against the held-out share (deviance + 0.1 MSE), the deviance
    and the decoded rate."""
    observed, rate = held.square(), x_hat.square() + 1e-4
    deviance = (2 * (torch.xlogy(observed, observed) - torch.xlogy(observed, rate) - observed + rate)).mean()
    return deviance + 0.1 * torch.nn.functional.mse_loss(x_hat.abs(), held), deviance, rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out", type=Path)
    parser.add_argument("steps", type=int)
    parser.add_argument("sigma_max", type=float)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()

    pipeline, images, params, rng, generator = trainable_decoder(args.data, args.out, args.model)
    vae, scale = pipeline.vae, global_scaling_factor(pipeline.vae.config)
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, 50, args.steps)
    scales = torch.from_numpy(np.asarray(images.scales, dtype=np.float32))
    start = time.perf_counter()
    with open(args.out / "log.jsonl", "w") as log:
        for step in range(args.steps):
            index = rng.integers(0, len(images), 8)
            x = torch.from_numpy(random_crops(images.images, index, 128, rng, 0.25))
            seen, held = split_counts(x, scales[index], (0.5, 0.8), generator)
            with torch.no_grad():
                z = vae.encode(seen).latent_dist.mean
            sigma = args.sigma_max * torch.rand(len(z), 1, 1, 1, generator=generator)
            x_hat = vae.decode(z + sigma / scale * torch.randn(z.shape, generator=generator)).sample
            loss, deviance, _ = reconstruction_loss(x_hat, held)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            if (step + 1) % 50 == 0:
                row = {"step": step + 1, "deviance": deviance.item(), "seconds": time.perf_counter() - start}
                log.write(json.dumps(row) + "\n")
                log.flush()
    pipeline.register_modules(vae=vae.eval())
    card = f"# {pipeline.path} with a hardened decoder ({args.sigma_max})\n"
    save_model(pipeline, args.out / "model", card=card)


if __name__ == "__main__":
    main()

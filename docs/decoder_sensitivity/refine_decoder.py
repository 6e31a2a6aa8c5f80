"""Fine-tune a generator's decoder with a patch adversarial term, optionally on perturbed latents.

    python docs/decoder_sensitivity/refine_decoder.py DATA OUT STEPS [--sigma-max S] [--adv-factor A]
        [--model DIR] [--disc-start N]

The encoder stays frozen, so the latents, hence the trained UNet, stay valid. Each step encodes a
binomial share of 8 training crops (128 rows, a quarter flush with a border; the autoencoder stage's
Noise2Noise split, as ``split_counts``), optionally adds Gaussian noise of an SD drawn uniformly from
[0, S] per crop (scaled latent units), and scores the decoded rate against the other share of the
counts: the autoencoder's Poisson deviance and MSE anchor, plus ``A`` times the adaptive adversarial weight
(Esser et al. 2021, as Stable Diffusion's autoencoder: the ratio of the two terms' gradient norms at
the decoder's last layer) times a least-squares patch adversarial term (MONAI ``PatchDiscriminator``,
trained from scratch). The discriminator sees what the image detector sees: counts against counts,
Anscombe-transformed and divided by their mean. Real are the held-out share's counts; fake are
Poisson counts drawn from the decoded rate at that share with a straight-through gradient, so noise
cannot tell them apart, only the rate under it. The discriminator trains from step 0; the decoder
feels it from ``--disc-start`` on. AdamW (0.5, 0.9), 1e-4 both, 50 warm-up steps, cosine decay, seed 0.
Writes OUT/model (the generator with the new decoder) and OUT/log.jsonl. Measured in
``docs/adversarial_decoder/``.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from diffusers.optimization import get_cosine_schedule_with_warmup
from harden_decoder import reconstruction_loss, trainable_decoder  # a sibling script
from monai.losses import PatchAdversarialLoss
from monai.networks.nets import PatchDiscriminator

from synthscan.generator.data import random_crops
from synthscan.generator.storage import save_model
from synthscan.generator.train import thin_counts


def detector_view(counts: torch.Tensor) -> torch.Tensor:
    """Counts → the image detector's input: Anscombe transform divided by each crop's mean.

    ``synthscan.evaluation.detector.detector_inputs`` in torch, so the adversarial gradient reaches the
    decoder; the crops are already at the detector's 2x2 binning and are not mirrored (patches see no
    left-right order).
    """
    x = 2.0 * torch.sqrt(counts.clamp_min(0) + 0.375)
    return x / x.mean(dim=(1, 2, 3), keepdim=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("out", type=Path)
    parser.add_argument("steps", type=int)
    parser.add_argument("--sigma-max", type=float, default=0.0)
    parser.add_argument("--adv-factor", type=float, default=0.5)
    parser.add_argument("--disc-start", type=int, default=200)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()

    pipeline, images, params, rng, generator = trainable_decoder(args.data, args.out, args.model)
    vae, scale = pipeline.vae, pipeline.vae.config.scaling_factor
    last_layer = vae.decoder.conv_out.weight
    discriminator = PatchDiscriminator(
        spatial_dims=2, channels=32, in_channels=2, num_layers_d=3, norm="INSTANCE"
    )
    adversarial = PatchAdversarialLoss(criterion="least_squares")
    optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0)
    d_optimizer = torch.optim.AdamW(discriminator.parameters(), lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, 50, args.steps)
    d_schedule = get_cosine_schedule_with_warmup(d_optimizer, 50, args.steps)
    scales = torch.from_numpy(np.asarray(images.scales, dtype=np.float32))
    start, rows = time.perf_counter(), []
    with open(args.out / "log.jsonl", "w") as log:
        for step in range(args.steps):
            index = rng.integers(0, len(images), 8)
            x = torch.from_numpy(random_crops(images.images, index, 128, rng, 0.25))
            level = scales[index][:, None, None, None]
            counts = torch.round(x.square() * level)
            kept, share = thin_counts(counts, (0.5, 0.8), generator)  # split_counts' thinning
            seen = torch.sqrt(kept / (share * level))
            held = torch.sqrt((counts - kept) / ((1 - share) * level))
            with torch.no_grad():
                z = vae.encode(seen).latent_dist.mean
            sigma = args.sigma_max * torch.rand(len(z), 1, 1, 1, generator=generator)
            x_hat = vae.decode(z + sigma / scale * torch.randn(z.shape, generator=generator)).sample
            reconstruction, deviance, rate = reconstruction_loss(x_hat, held)
            # counts of the held share: real as acquired, fake drawn from the decoded rate (straight through)
            expected = rate * (1 - share) * level
            drawn = torch.poisson(expected.detach(), generator=generator)
            fake = detector_view(expected + (drawn - expected).detach())
            real = detector_view(counts - kept)
            g_adv = adversarial(discriminator(fake)[-1], target_is_real=True, for_discriminator=False)
            weight = torch.tensor(0.0)
            if step >= args.disc_start:
                (g_rec,) = torch.autograd.grad(reconstruction, last_layer, retain_graph=True)
                (g_gan,) = torch.autograd.grad(g_adv, last_layer, retain_graph=True)
                weight = args.adv_factor * (g_rec.norm() / (g_gan.norm() + 1e-4)).clamp(0, 1e4).detach()
            (reconstruction + weight * g_adv).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            d_optimizer.zero_grad(set_to_none=True)  # drop what the decoder's loss left in it
            d_loss = 0.5 * (
                adversarial(discriminator(real)[-1], target_is_real=True, for_discriminator=True)
                + adversarial(discriminator(fake.detach())[-1], target_is_real=False, for_discriminator=True)
            )
            d_loss.backward()
            d_optimizer.step()
            d_schedule.step()
            d_optimizer.zero_grad(set_to_none=True)
            rows.append([deviance.item(), g_adv.item(), float(weight), d_loss.item()])
            if (step + 1) % 50 == 0:
                mean = np.mean(rows, axis=0)
                keys = ("deviance", "generator_adversarial", "adaptive_weight", "discriminator")
                row = {"step": step + 1, **dict(zip(keys, mean, strict=True))}
                row["seconds"] = time.perf_counter() - start
                log.write(json.dumps(row) + "\n")
                log.flush()
                rows = []
    pipeline.register_modules(vae=vae.eval())
    card = f"# {pipeline.path}, adversarial decoder (sigma {args.sigma_max}, factor {args.adv_factor})\n"
    save_model(pipeline, args.out / "model", card=card)


if __name__ == "__main__":
    main()

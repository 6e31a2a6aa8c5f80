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
``docs/adversarial_decoder/`` (always with A = 0.5; A = 0 now trains no discriminator and draws no
Poisson counts, so its random stream differs from the script's earlier versions).
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
from synthscan.generator.models import global_scaling_factor
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


class DecoderTrainer:
    """One decoder step: the reconstruction objective, plus the adaptive patch adversarial term and
    its discriminator's step when ``adv_factor`` is above 0; AdamW (0.5, 0.9), 1e-4, cosine decay."""

    def __init__(self, pipeline, params: list, steps: int, adv_factor: float, disc_start: int):
        self.params, self.adv_factor, self.disc_start = params, adv_factor, disc_start
        self.last_layer = pipeline.vae.decoder.conv_out.weight
        self.optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0)
        self.schedule = get_cosine_schedule_with_warmup(self.optimizer, 50, steps)
        self.discriminator = None
        if adv_factor > 0:
            self.discriminator = PatchDiscriminator(
                spatial_dims=2, channels=32, in_channels=2, num_layers_d=3, norm="INSTANCE"
            )
            self.adversarial = PatchAdversarialLoss(criterion="least_squares")
            self.d_optimizer = torch.optim.AdamW(
                self.discriminator.parameters(), lr=1e-4, betas=(0.5, 0.9), weight_decay=0.0
            )
            self.d_schedule = get_cosine_schedule_with_warmup(self.d_optimizer, 50, steps)
        self.start, self.rows = time.perf_counter(), []

    def step(
        self,
        step: int,
        x_hat: torch.Tensor,
        held: torch.Tensor,
        held_counts: torch.Tensor,
        held_share: torch.Tensor,
        level: torch.Tensor,
        generator: torch.Generator,
    ) -> dict | None:
        """Train on decoded ``x_hat`` against the held share (model image ``held``, its counts, the
        share of the study's counts it holds and the study's count scale); every 50 steps, the mean
        losses."""
        reconstruction, deviance, rate = reconstruction_loss(x_hat, held)
        g_adv = weight = d_loss = torch.tensor(0.0)
        if self.discriminator is not None:
            # counts of the held share: real as acquired, fake drawn from the decoded rate (straight through)
            expected = rate * held_share * level
            drawn = torch.poisson(expected.detach(), generator=generator)
            fake = detector_view(expected + (drawn - expected).detach())
            real = detector_view(held_counts)
            g_adv = self.adversarial(
                self.discriminator(fake)[-1], target_is_real=True, for_discriminator=False
            )
            if step >= self.disc_start:
                (g_rec,) = torch.autograd.grad(reconstruction, self.last_layer, retain_graph=True)
                (g_gan,) = torch.autograd.grad(g_adv, self.last_layer, retain_graph=True)
                weight = self.adv_factor * (g_rec.norm() / (g_gan.norm() + 1e-4)).clamp(0, 1e4).detach()
        (reconstruction + weight * g_adv).backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.discriminator is not None:
            self.d_optimizer.zero_grad(set_to_none=True)  # drop what the decoder's loss left in it
            d_loss = 0.5 * (
                self.adversarial(self.discriminator(real)[-1], target_is_real=True, for_discriminator=True)
                + self.adversarial(
                    self.discriminator(fake.detach())[-1], target_is_real=False, for_discriminator=True
                )
            )
            d_loss.backward()
            self.d_optimizer.step()
            self.d_schedule.step()
            self.d_optimizer.zero_grad(set_to_none=True)
        self.rows.append([deviance.item(), g_adv.item(), float(weight), d_loss.item()])
        if (step + 1) % 50:
            return None
        keys = ("deviance", "generator_adversarial", "adaptive_weight", "discriminator")
        row = {"step": step + 1, **dict(zip(keys, np.mean(self.rows, axis=0), strict=True))}
        row["seconds"] = time.perf_counter() - self.start
        self.rows = []
        return row


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
    vae, scale = pipeline.vae, global_scaling_factor(pipeline.vae.config)
    trainer = DecoderTrainer(pipeline, params, args.steps, args.adv_factor, args.disc_start)
    scales = torch.from_numpy(np.asarray(images.scales, dtype=np.float32))
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
            row = trainer.step(step, x_hat, held, counts - kept, 1 - share, level, generator)
            if row is not None:
                log.write(json.dumps(row) + "\n")
                log.flush()
    pipeline.register_modules(vae=vae.eval())
    card = f"# {pipeline.path}, adversarial decoder (sigma {args.sigma_max}, factor {args.adv_factor})\n"
    save_model(pipeline, args.out / "model", card=card)


if __name__ == "__main__":
    main()

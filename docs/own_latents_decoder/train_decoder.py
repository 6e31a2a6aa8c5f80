"""Fine-tune a generator's decoder on the latents its own UNet makes (an experiment, not shipped).

    python docs/own_latents_decoder/train_decoder.py DATA CACHE OUT STEPS [--adv-factor A]
        [--disc-start 200] [--t-max 400] [--model DIR]

Each training study is split into two binomial shares (the autoencoder stage's Noise2Noise split,
``split_counts``, share 0.5-0.8); the first share's latent (posterior mean) is noised to a timestep
drawn uniformly from [0, ``--t-max``] and brought back to t = 0 by the model's UNet: deterministic
DDIM (v-prediction), 10 steps over [0, t], the study's own condition, no guidance. These latents and
the second shares are made once and kept in CACHE (reused when model, data and t-max match; the
model images in CACHE/data). Each step then decodes 8 crops of 32 latent rows (a quarter flush with
a border) and scores them against the second share's counts: ``refine_decoder.py``'s objective,
with its patch adversarial term when ``--adv-factor`` is above 0. The encoder and the UNet are
unchanged (the second shares are kept as float16 model images: counts above about 500 per
model pixel come back within one count). Writes OUT/model and OUT/log.jsonl. Measured in
``docs/own_latents_decoder/``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from synthscan.dataset import Dataset
from synthscan.generator.data import TrainingImages, training_records
from synthscan.generator.models import global_scaling_factor
from synthscan.generator.storage import save_model
from synthscan.generator.train import known_condition_records, pretrained_conditioning, thin_counts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "decoder_sensitivity"))
from harden_decoder import trainable_decoder  # sibling experiments: set-up and training step
from refine_decoder import DecoderTrainer

DDIM_STEPS, BATCH, LATENT_ROWS = 10, 16, 32


def ddim_to_zero(network, x: torch.Tensor, t: torch.Tensor, ids: torch.Tensor, alphas: torch.Tensor):
    """Deterministic DDIM (v-prediction) from each row's timestep ``t`` to t = 0, DDIM_STEPS steps.

    Rows share the step count; a row whose span is shorter than DDIM_STEPS repeats timesteps, and a step
    from a timestep to itself returns its input.
    """
    grid = torch.stack([torch.linspace(float(s), 0.0, DDIM_STEPS + 1) for s in t]).round().long()
    for k in range(DDIM_STEPS):
        now, nxt = grid[:, k], grid[:, k + 1]
        a_now = alphas[now][:, None, None, None]
        a_next = torch.where(nxt > 0, alphas[nxt], torch.ones(len(x)))[:, None, None, None]
        a_next = torch.where((now == nxt)[:, None, None, None], a_now, a_next)
        v = network(x, now, class_labels=ids).sample
        x0 = a_now.sqrt() * x - (1 - a_now).sqrt() * v
        eps = (1 - a_now).sqrt() * x + a_now.sqrt() * v
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    return x


@torch.no_grad()
def own_latents(
    pipeline, data: str, images: TrainingImages, cache: Path, t_max: int
) -> dict[str, np.ndarray]:
    """Per training study: the UNet's latent of its first share, its second share (model image), that
    share of the counts and the count scale. Made once, then read from ``cache/own_latents.npz``."""
    key = hashlib.sha256(f"{images.key} {pipeline.sha256} {t_max} {DDIM_STEPS}".encode()).hexdigest()
    path = cache / "own_latents.npz"
    if path.is_file():
        with np.load(path) as stored:
            if str(stored["key"]) == key:
                return {name: stored[name] for name in stored.files}
    dataset = Dataset.open(data)
    records = known_condition_records(
        pipeline, training_records(dataset, ("real", "simulated")), "studies", dataset.root
    )
    if [r.study_id for r in records] != images.study_ids:
        raise SystemExit(f"{data}: the model does not know every training study's condition")
    ids, _, network = pretrained_conditioning(pipeline, records)
    network.eval()
    vae, scaling = pipeline.vae, global_scaling_factor(pipeline.vae.config)
    alphas = pipeline.scheduler.alphas_cumprod
    generator = torch.Generator().manual_seed(0)
    scales = torch.from_numpy(np.asarray(images.scales, dtype=np.float32))
    latents, held, shares = [], [], []
    for start in tqdm(range(0, len(images), BATCH), desc="own latents"):
        index = np.arange(start, min(start + BATCH, len(images)))
        level = scales[index][:, None, None, None]
        counts = torch.round(torch.from_numpy(images.images[index].astype(np.float32)).square() * level)
        kept, share = thin_counts(counts, (0.5, 0.8), generator)  # split_counts' thinning
        z = vae.encode(torch.sqrt(kept / (share * level))).latent_dist.mean * scaling
        t = torch.randint(0, t_max + 1, (len(index),), generator=generator)
        a = alphas[t][:, None, None, None]
        noisy = a.sqrt() * z + (1 - a).sqrt() * torch.randn(z.shape, generator=generator)
        latents.append(ddim_to_zero(network, noisy, t, torch.from_numpy(ids[index]), alphas).numpy())
        held.append(torch.sqrt((counts - kept) / ((1 - share) * level)).numpy().astype(np.float16))
        shares.append(1 - share.flatten().numpy())
    out = {
        "latents": np.concatenate(latents).astype(np.float16),
        "held": np.concatenate(held),
        "held_share": np.concatenate(shares),
        "scales": np.asarray(images.scales, dtype=np.float32),
        "key": np.array(key),
    }
    with open(cache / "own_latents.tmp.npz", "wb") as handle:
        np.savez(handle, **out)
    (cache / "own_latents.tmp.npz").replace(path)
    return out


def crops(store: dict[str, np.ndarray], rng: np.random.Generator, scaling: float) -> tuple:
    """8 aligned crops: unscaled latents, second-share model images, their counts' share and scale."""
    index = rng.integers(0, len(store["latents"]), 8)
    height = store["latents"].shape[2]
    starts = rng.integers(0, height - LATENT_ROWS + 1, 8)
    edge = rng.random(8) < 0.25
    starts = np.where(edge, np.where(rng.random(8) < 0.5, 0, height - LATENT_ROWS), starts)
    factor = store["held"].shape[2] // height
    z = np.stack([store["latents"][i, :, s : s + LATENT_ROWS] for i, s in zip(index, starts, strict=True)])
    held = np.stack(
        [
            store["held"][i, :, factor * s : factor * (s + LATENT_ROWS)]
            for i, s in zip(index, starts, strict=True)
        ]
    )
    share = torch.from_numpy(store["held_share"][index].astype(np.float32))[:, None, None, None]
    level = torch.from_numpy(store["scales"][index])[:, None, None, None]
    z, held = torch.from_numpy(z.astype(np.float32)) / scaling, torch.from_numpy(held.astype(np.float32))
    return z, held, share, level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("cache", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("steps", type=int)
    parser.add_argument("--adv-factor", type=float, default=0.0)
    parser.add_argument("--disc-start", type=int, default=200)
    parser.add_argument("--t-max", type=int, default=400)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    pipeline, images, params, rng, generator = trainable_decoder(args.data, args.cache, args.model)
    v_prediction = pipeline.scheduler.config.prediction_type == "v_prediction"
    if pipeline.config.get("latent_patch", 1) != 1 or not v_prediction:
        raise SystemExit("the own-latent pairs are made for unfolded latents and v-prediction models only")
    store = own_latents(pipeline, args.data, images, args.cache, args.t_max)
    trainer = DecoderTrainer(pipeline, params, args.steps, args.adv_factor, args.disc_start)
    scaling = global_scaling_factor(pipeline.vae.config)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "log.jsonl", "w") as log:
        for step in range(args.steps):
            z, held, share, level = crops(store, rng, scaling)
            x_hat = pipeline.vae.decode(z).sample
            counts = torch.round(held.square() * share * level)
            row = trainer.step(step, x_hat, held, counts, share, level, generator)
            if row is not None:
                log.write(json.dumps(row) + "\n")
                log.flush()
    pipeline.register_modules(vae=pipeline.vae.eval())
    card = f"# {pipeline.path}, decoder on its own UNet's latents (t ≤ {args.t_max}, adv {args.adv_factor})\n"
    save_model(pipeline, args.out / "model", card=card)


if __name__ == "__main__":
    main()

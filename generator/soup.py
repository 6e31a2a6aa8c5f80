"""Weight averaging of generators fine-tuned from one base model (a model soup, Wortsman et al. 2022).

Restarts of one trained UNet that differ only in their loss weighting stay in one basin of the loss,
so their weights can be averaged into one network that samples as fast as each. Averaging the plain
and the Min-SNR-γ restart of the default's main stage kept the plain one's detector score and the
Min-SNR one's layout and precision (docs/min_snr). Only the diffusion networks are averaged; the
autoencoder, noise scheduler, sampler settings and base model must be the same in every model, so
they are checked, not mixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from synthscan.generator.pipeline import SynthScanPipeline
from synthscan.generator.storage import (
    BASE_MODEL_HEADING,
    demote_headings,
    load_pipeline,
    read_card,
    save_model,
)

AVERAGED = ("unet", "condition_encoder")
"""The pipeline components whose weights are averaged (the condition encoder where a model has one)."""


def average_models(models: Sequence[str | Path], out: str | Path) -> Path:
    """Save to ``out`` the first of ``models`` with its UNet (and condition encoder) weights replaced by
    the mean over all of them; raises ``ValueError`` if they do not share everything else."""
    if len(models) < 2:
        raise ValueError(f"averaging needs at least two models, got {len(models)}")
    pipelines = [load_pipeline(m) for m in models]
    cards = [_split_card(read_card(p.path)) for p in pipelines]
    first = pipelines[0]
    for other, (_, base) in zip(pipelines[1:], cards[1:], strict=True):
        _check_compatible(first, other)
        if None not in (base, cards[0][1]) and base != cards[0][1]:  # a hand-written card may not say it
            raise ValueError(f"{first.path} and {other.path} were fine-tuned from different base models")
    for name in AVERAGED:
        networks = [getattr(p, name, None) for p in pipelines]
        if networks[0] is None:
            continue
        states = [n.state_dict() for n in networks]
        with torch.no_grad():
            networks[0].load_state_dict({key: _mean([s[key] for s in states], key) for key in states[0]})
    return save_model(first, out, card=soup_card(pipelines, cards))


def _check_compatible(a: SynthScanPipeline, b: SynthScanPipeline) -> None:
    """The two pipelines differ at most in their averaged networks' weights."""
    where = f"{a.path} and {b.path}"
    if _settings(a) != _settings(b):
        raise ValueError(
            f"{where} have different model_index.json settings (conditions, count model or sampler "
            "defaults); average restarts of one run"
        )
    for name in ("vae", "scheduler", *AVERAGED):
        ca, cb = getattr(a, name, None), getattr(b, name, None)
        if (ca is None) != (cb is None) or (ca is not None and _settings(ca) != _settings(cb)):
            raise ValueError(f"{where} have different {name} configurations; average restarts of one run")
    va, vb = a.vae.state_dict(), b.vae.state_dict()
    if not all(torch.equal(va[k], vb[k]) for k in va):
        raise ValueError(f"{where} have different autoencoder weights; average restarts of one base model")


def _settings(component) -> dict:
    """A component's configuration without diffusers' bookkeeping (source folder, library version)."""
    return {k: v for k, v in component.config.items() if not k.startswith("_")}


def _mean(tensors: list[torch.Tensor], key: str) -> torch.Tensor:
    if tensors[0].is_floating_point():
        return torch.stack(tensors).mean(0)
    if not all(torch.equal(tensors[0], t) for t in tensors[1:]):
        raise ValueError(f"{key} is an integer buffer that differs between the models; it cannot be averaged")
    return tensors[0]


def _split_card(card: str) -> tuple[str, str | None]:
    """A fine-tuned model's card as what it says of its own training and of its base model (None for a
    card without that section)."""
    own, marker, base = card.partition(f"\n{BASE_MODEL_HEADING}\n")
    return own, base if marker else None


def soup_card(pipelines: Sequence[SynthScanPipeline], cards: Sequence[tuple[str, str | None]]) -> str:
    """The average's card: what each averaged model's card says of its own training, then their common
    base model's card once (each restart's card repeats it); ``cards`` as :func:`_split_card` gives."""
    lines = [
        "# Averaged synthscan generator (model soup)",
        "",
        f"The UNet and condition-encoder weights of {len(pipelines)} generators averaged (a model soup, "
        "Wortsman et al. 2022); their autoencoder, noise scheduler and sampler settings are the same "
        "(checked) and kept.",
        "",
    ]
    for pipeline, (own, _) in zip(pipelines, cards, strict=True):
        own_lines = own.splitlines()
        body = own_lines[1:] if own_lines and own_lines[0].startswith("# ") else own_lines
        lines += [f"## `{Path(pipeline.path).name}` (sha256 {pipeline.sha256})", *demote_headings(body), ""]
    base = next((b for _, b in cards if b is not None), None)
    if base is not None:
        lines += [BASE_MODEL_HEADING, base.rstrip("\n"), ""]
    return "\n".join(lines)

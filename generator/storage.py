"""Saving and loading generator folders (``save_pretrained`` layout plus a checksum file).

A model folder is what :meth:`SynthScanPipeline.save_pretrained` writes (``model_index.json``, one
sub-folder per component with ``config.json`` and ``.safetensors``), plus ``checksums.json`` (SHA-256
of every file) and a model card. Loading verifies the checksums first, so a missing, truncated or
altered weight file fails with a message naming it instead of a deep library traceback.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from importlib import resources
from pathlib import Path

from synthscan.atomic import atomic_write_text

log = logging.getLogger(__name__)

CHECKSUMS = "checksums.json"
DEFAULT_MODEL = "default"


class ModelError(ValueError):
    """A generator folder is missing, incomplete or corrupt; the message says how to fix it."""


def default_model_dir() -> Path:
    """The model shipped inside the package (``synthscan/models/default``)."""
    return Path(str(resources.files("synthscan.models") / DEFAULT_MODEL))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weight_and_config_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and (p.suffix in (".json", ".safetensors")) and p.name != CHECKSUMS
    )


def model_sha256(folder: str | Path) -> str:
    """One hash of a model: of its checksum file (or, for a folder without one, of its files)."""
    folder = Path(folder)
    if (folder / CHECKSUMS).is_file():
        return file_sha256(folder / CHECKSUMS)
    digest = hashlib.sha256()
    for path in _weight_and_config_files(folder):
        digest.update(f"{path.relative_to(folder)}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def save_model(pipeline, folder: str | Path, *, card: str | None = None) -> Path:
    """``save_pretrained`` into a temporary sibling, add checksums and card, then move it into place."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pipeline.save_pretrained(tmp, safe_serialization=True)
    sums = {str(p.relative_to(tmp)): file_sha256(p) for p in _weight_and_config_files(tmp)}
    atomic_write_text(tmp / CHECKSUMS, json.dumps(sums, indent=2, sort_keys=True) + "\n")
    if card is not None:
        atomic_write_text(tmp / "README.md", card)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.replace(folder)
    return folder


def verify_model(folder: str | Path) -> Path:
    """Check a model folder against its checksums; raise :class:`ModelError` naming what is wrong."""
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise ModelError(
            f"{folder} is not a synthscan generator (no model_index.json); pass a folder written by "
            "`synthscan train` (RUN/model) or leave --model out to use the shipped default model"
        )
    sums_path = folder / CHECKSUMS
    if not sums_path.is_file():
        raise ModelError(f"{folder} has no {CHECKSUMS}; it was not saved by synthscan — save it again")
    sums = json.loads(sums_path.read_text(encoding="utf-8"))
    for name, expected in sorted(sums.items()):
        path = folder / name
        if not path.is_file():
            raise ModelError(
                f"{folder}: weight or config file {name} is missing; copy the whole model folder"
            )
        if file_sha256(path) != expected:
            raise ModelError(
                f"{folder}: {name} is corrupt (its SHA-256 differs from {CHECKSUMS}); "
                "copy the model folder again or retrain it"
            )
    return folder


def load_pipeline(model: str | Path | None = None, *, device: str | None = None):
    """Load a verified :class:`SynthScanPipeline` (``None``: the shipped default model) for inference."""
    import torch
    from diffusers.utils import logging as diffusers_logging

    from synthscan.generator.pipeline import SynthScanPipeline

    folder = verify_model(default_model_dir() if model is None else model)
    bars = diffusers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()  # diffusers' "Loading pipeline components" bar: noise here
    try:
        pipeline = SynthScanPipeline.from_pretrained(folder)
    except (OSError, ValueError, RuntimeError) as error:
        raise ModelError(f"cannot load the generator in {folder}: {error}") from error
    finally:
        if bars:
            diffusers_logging.enable_progress_bar()
    pipeline.path = folder
    pipeline.sha256 = model_sha256(folder)
    pipeline.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    # NHWC weights: oneDNN's and cuDNN's fastest convolutions (measured 1.6x UNet, 1.9x VAE on 2 CPU cores).
    pipeline.unet.to(memory_format=torch.channels_last)
    pipeline.vae.to(memory_format=torch.channels_last)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline

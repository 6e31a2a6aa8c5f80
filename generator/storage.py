"""Saving and loading generator folders (``save_pretrained`` layout plus a checksum file).

A model folder is what :meth:`SynthScanPipeline.save_pretrained` writes (``model_index.json``, one
sub-folder per component with ``config.json`` and ``.safetensors``), plus ``checksums.json`` (SHA-256
of every file) and a model card. Loading verifies the checksums first, so a missing, truncated or
altered weight file fails with a message naming it instead of a deep library traceback.

A model trained only on simulated studies also carries ``privacy.json``: its statement that it saw
no patient data, bound to the model's hash, which lets its samples be shared without a privacy audit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
from importlib import resources
from pathlib import Path

from synthscan.atomic import atomic_write_text, file_sha256
from synthscan.generator.config import BODY_REDRAWS, GUIDED_EVERY_STEP, body_start_limit, solver_name

log = logging.getLogger(__name__)

CHECKSUMS = "checksums.json"
PRIVACY = "privacy.json"
DEFAULT_MODEL = "default"
NO_PATIENT_SOURCES: tuple[str, ...] = ("simulated",)
"""Training sources that hold no patient: a model trained only on these cannot reproduce a patient."""


BASE_MODEL_HEADING = "## Base model"
"""The heading under which a fine-tuned or averaged model's card carries its base model's card."""


def read_card(folder: str | Path) -> str:
    """A model folder's card (``README.md``), or a placeholder for a folder without one."""
    path = Path(folder) / "README.md"
    return path.read_text(encoding="utf-8") if path.is_file() else "(no card)\n"


def demote_headings(lines: list[str]) -> list[str]:
    """Markdown headings one level down, so a model's card nests in another's; lines in code blocks
    (a shell comment) left as they are."""
    out, fenced = [], False
    for line in lines:
        fenced ^= line.startswith("```")
        out.append("#" + line if line.startswith("#") and not fenced else line)
    return out


class ModelError(ValueError):
    """A generator folder is missing, incomplete or corrupt; the message says how to fix it."""


def shipped_models() -> dict[str, Path]:
    """The models shipped inside the package, by name (``synthscan/models/<name>``)."""
    root = Path(str(resources.files("synthscan.models")))
    return {p.name: p for p in sorted(root.iterdir()) if (p / "model_index.json").is_file()}


def default_model_dir() -> Path:
    """The model used when none is named (``synthscan/models/default``)."""
    return Path(str(resources.files("synthscan.models") / DEFAULT_MODEL))


def model_dir(model: str | Path | None = None) -> Path:
    """The folder of ``model``: a path, else a shipped model's name; ``None`` is the default model. A folder
    named like a shipped model wins, with a warning: a run folder called ``fast`` silently measured in
    the shipped model's place is the mistake it prevents."""
    if model is None:
        return default_model_dir()
    shipped = shipped_models()
    if str(model) not in shipped:
        return Path(model)
    if Path(model).is_dir():
        folder, own = Path(model).resolve(), shipped[str(model)]
        if folder != own.resolve():
            _warn_shadowing(str(model), folder, own)
        return Path(model)
    return shipped[str(model)]


@functools.cache  # once per folder and process: the CLI checks the name before it loads it
def _warn_shadowing(name: str, folder: Path, own: Path) -> None:
    log.warning(
        "%s: loading the folder %s, not the shipped model of that name (%s); give ./%s to keep the "
        "folder without this warning, or rename it to load the shipped model",
        name,
        folder,
        own,
        name,
    )


def _weight_and_config_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and (p.suffix in (".json", ".safetensors")) and p.name not in (CHECKSUMS, PRIVACY)
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
    _drop_source_paths(tmp)
    sums = {str(p.relative_to(tmp)): file_sha256(p) for p in _weight_and_config_files(tmp)}
    atomic_write_text(tmp / CHECKSUMS, json.dumps(sums, indent=2, sort_keys=True) + "\n")
    write_privacy_statement(tmp)
    if card is not None:
        atomic_write_text(tmp / "README.md", card)
    if folder.exists():
        shutil.rmtree(folder)
    tmp.replace(folder)
    return folder


def _drop_source_paths(folder: Path) -> None:
    """Remove diffusers' ``_name_or_path`` from every config: the folder a model was loaded from (a
    hospital's data path, a user's home) must not travel with the model it shares."""
    for path in _weight_and_config_files(folder):
        if path.suffix != ".json":
            continue
        config = json.loads(path.read_text(encoding="utf-8"))
        if config.pop("_name_or_path", None) is not None:
            path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _training_sources(folder: Path) -> list[str]:
    return list(
        json.loads((folder / "model_index.json").read_text(encoding="utf-8")).get("training_sources") or []
    )


def write_privacy_statement(folder: str | Path) -> dict | None:
    """Write ``privacy.json`` for a model trained only on simulated studies; ``None`` for any other.

    The statement names the model's hash, so it cannot be carried over to a retrained or fine-tuned
    model; its training sources come from the checksummed ``model_index.json``.
    """
    folder = Path(folder)
    sources = _training_sources(folder)
    if not sources or not set(sources) <= set(NO_PATIENT_SOURCES):
        (folder / PRIVACY).unlink(missing_ok=True)
        return None
    statement = {
        "model_sha256": model_sha256(folder),
        "training_sources": sources,
        "patients_seen": 0,
        "statement": f"Trained on {' and '.join(sources)} studies only: this model has seen no patient data, "
        "so none of its samples can reproduce a patient; they can be shared without a privacy audit "
        "against its training data.",
    }
    atomic_write_text(folder / PRIVACY, json.dumps(statement, indent=2) + "\n")
    return statement


def privacy_statement(folder: str | Path) -> dict | None:
    """The model's valid statement that it saw no patients, or ``None``.

    Valid only while it names the model's current hash and the model's training sources hold no patient.
    """
    folder = Path(folder)
    path = folder / PRIVACY
    if not path.is_file():
        return None
    try:
        statement = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    sources = _training_sources(folder)
    valid = (
        isinstance(statement, dict)
        and statement.get("model_sha256") == model_sha256(folder)
        and statement.get("patients_seen") == 0
        and bool(sources)
        and set(sources) <= set(NO_PATIENT_SOURCES)
    )
    return statement if valid else None


def verify_model(folder: str | Path) -> Path:
    """Check a model folder against its checksums; raise :class:`ModelError` naming what is wrong."""
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise ModelError(
            f"{folder} is not a synthscan generator (no model_index.json); pass a folder written by "
            f"`synthscan train` (RUN/model), a shipped model's name ({', '.join(shipped_models())}) or "
            "leave --model out to use the shipped default model"
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


def _interval_text(interval: list[float] | None, by_label: dict[str, list[float]] | None = None) -> str:
    """`` (guided steps 20%-80%; normal 40%-100%)`` for a model guided on part of its solver steps (and
    labels with their own interval); empty when every step of every label is guided."""
    parts = [f"{label} {a:.0%}-{b:.0%}" for label, (a, b) in (by_label or {}).items()]
    if interval and tuple(interval) != GUIDED_EVERY_STEP:
        parts.insert(0, f"guided steps {interval[0]:.0%}-{interval[1]:.0%}")
    return f" ({'; '.join(parts)})" if parts else ""


def describe_model(model: str | Path | None = None) -> dict[str, str]:
    """What ``synthscan info`` shows of a verified model folder (default: the shipped one), as text.

    Read from its files alone (no network weights are built), so it answers in a fraction of a second.
    """
    folder = verify_model(model_dir(model))
    index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    solver = folder / "scheduler" / "scheduler_config.json"
    solver_config = json.loads(solver.read_text(encoding="utf-8")) if solver.is_file() else {}
    scheduler = solver_name(index.get("scheduler", ["", "?"])[1], solver_config)
    guidance = {
        "default": index.get("default_guidance"),
        **index.get("label_guidance", {}),
        **{f"burden {k}": v for k, v in (index.get("burden_guidance") or {}).items()},
        **{f"amyloidosis grade {k}": v for k, v in (index.get("grade_guidance") or {}).items()},
    }
    statement = privacy_statement(folder)
    rows, cols = index.get("matrix", ["?", "?"])
    return {
        "path": str(folder.resolve()),
        "sha256": model_sha256(folder),
        "conditions": ", ".join(index.get("conditions", []))
        + "".join(
            f"; {name}: {', '.join(v for v in values if v != 'unknown') or 'unknown'}"
            for name, values in sorted((index.get("factors") or {}).items(), reverse=True)
        ),
        "matrix": f"{rows}x{cols} at {index.get('pixel_spacing_mm')} mm",
        "sampler": f"{scheduler}, {index.get('default_steps')} steps, guidance "
        + ("built in: " if index.get("guidance_distilled") else "")
        + ", ".join(f"{k} {v:g}" for k, v in guidance.items() if v is not None)
        + _interval_text(index.get("guidance_interval"), index.get("label_guidance_interval"))
        + "".join(
            f"; {label} ends on the denoised estimate at sigma <= {sigma:g}"
            for label, sigma in (index.get("label_final_sigma") or {}).items()
        )
        + "".join(
            f"; metastasis burden {burden} ends on the denoised estimate at sigma <= {sigma:g}"
            for burden, sigma in (index.get("burden_final_sigma") or {}).items()
        )
        + _redraw_text(index.get("acquisition_window"), index.get("pixel_spacing_mm")),
        "decoder_calibration": _calibration_text(index.get("rate_calibration")),
        "training_sources": ", ".join(index.get("training_sources") or ["not recorded"]),
        "privacy": statement["statement"] if statement else "no statement: audit samples before sharing them",
        "card": str(folder / "README.md") if (folder / "README.md").is_file() else "none",
    }


def _redraw_text(window: dict | None, pixel_spacing_mm: float | None) -> str:
    """``; a body starting below row 78 is drawn again (at most 4 times)`` for models whose window has
    a body start."""
    if not window or window.get("body_start") is None or not pixel_spacing_mm:
        return ""
    limit = body_start_limit(int(window["body_start"]), pixel_spacing_mm)
    return f"; a body starting below row {limit} is drawn again (at most {BODY_REDRAWS} times)"


def _calibration_text(calibration: dict | None) -> str:
    if not calibration:
        return "none (decoded rates used as they are)"
    edges = calibration["edge_columns"]
    if not edges:
        return "1 table for every column"
    return f"{len(calibration['tables'])} tables (the {edges} outermost columns of each side and the rest)"


def load_pipeline(model: str | Path | None = None, *, device: str | None = None, precision: str = "fp32"):
    """Load a verified :class:`SynthScanPipeline` (``None``: the shipped default model) for inference.

    ``device`` defaults to this process's accelerate device (its own GPU under ``accelerate launch``,
    else the GPU if there is one, else the CPU); ``precision`` is the networks' arithmetic
    (:data:`~synthscan.generator.pipeline.PRECISIONS`).
    """
    import torch
    from accelerate import PartialState
    from diffusers.utils import logging as diffusers_logging

    from synthscan.generator.pipeline import PRECISIONS, SynthScanPipeline

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")

    folder = verify_model(model_dir(model))
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
    pipeline.privacy = privacy_statement(folder)
    try:
        pipeline.to(torch.device(device) if device else PartialState().device)
    except (RuntimeError, AssertionError) as error:  # torch raises AssertionError for a CPU-only build
        raise ModelError(f"cannot move the generator to device {device!r}: {error}") from error
    pipeline.precision = precision
    # NHWC weights: oneDNN's and cuDNN's fastest convolutions (measured 1.6x UNet, 1.9x VAE on 2 CPU cores).
    pipeline.unet.to(memory_format=torch.channels_last)
    pipeline.vae.to(memory_format=torch.channels_last)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline

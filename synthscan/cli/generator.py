"""``synthscan train``, ``finetune``, ``distill`` and ``sample``: the latent diffusion generator."""

from __future__ import annotations

from pathlib import Path

import click

from synthscan.cli.options import (
    ConfigParam,
    GeneratorParam,
    config_path,
    device_option,
    guidance_option,
    parse_overrides,
    precision_option,
    steps_option,
    studies,
)
from synthscan.generator.conditions import BURDENS
from synthscan.labels import AMYLOIDOSIS_GRADES, LABELS, TRACERS

FORMATS = ("npz", "png", "dicom")


@click.command()
@click.option(
    "--data", required=True, type=click.Path(exists=True, file_okay=False), help="Training dataset folder."
)
@click.option(
    "--config", "config_name", type=ConfigParam("generator"), default="cpu_default", help="Generator config."
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Run folder (rerun with the same folder to resume); the model is written to OUT/model "
    "(with a continuation in the config, the main stage's model to OUT/base-model).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field, dotted for sections (e.g. diffusion.steps=2000); repeatable.",
)
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
def train(data: str, config_name: str, out: str, overrides: tuple[str, ...], progress: bool) -> None:
    """Train the autoencoder, then the class-conditional diffusion UNet, on DATA's real/simulated studies.

    A config with a continuation (cpu_default) then trains the UNet further from a warm restart, as
    `synthscan finetune` of OUT/base-model would. Runs unchanged under `accelerate launch` (several
    GPUs or processes).
    """
    from synthscan.config import load_config
    from synthscan.generator.config import GeneratorConfig
    from synthscan.generator.train import train as train_generator

    config = load_config(GeneratorConfig, config_path("generator", config_name), parse_overrides(overrides))
    model = train_generator(data, config, out, progress=progress)
    click.echo(
        f"Model saved to {model}. Sample with: synthscan sample --model {model} --condition metastasis"
    )


@click.command()
@click.option(
    "--model",
    type=GeneratorParam(),
    default=None,
    help="Teacher generator: a folder or a shipped model's name [default: the shipped default model].",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset whose studies the teacher's ODE is followed from: its training data, or studies like it.",
)
@click.option(
    "--config", "config_name", type=ConfigParam("distill"), default="default", help="Distillation config."
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Run folder (rerun with the same folder to resume); the model is written to OUT/model.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field, e.g. steps=2000 or sampling_steps=2; repeatable.",
)
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
def distill(
    model: str | None, data: str, config_name: str, out: str, overrides: tuple[str, ...], progress: bool
) -> None:
    """Distil a generator into a faster sampler with its guidance built in.

    --config default (latent consistency): 4 steps of one UNet call instead of 10 steps of two.
    --config guidance: the teacher's own solver steps, one call each. A guidance student given as --model
    can be distilled again with the default config. Compare a student with its teacher
    (benchmarks/sample_speed.py, benchmarks/generator_quality.py) before using it.
    """
    from synthscan.config import load_config
    from synthscan.generator.config import DistillConfig
    from synthscan.generator.distill import distill as distill_generator

    config = load_config(DistillConfig, config_path("distill", config_name), parse_overrides(overrides))
    student = distill_generator(model, data, config, out, progress=progress)
    click.echo(
        f"Distilled model saved to {student}. Sample with: synthscan sample --model {student} "
        "--condition metastasis"
    )


@click.command()
@click.option(
    "--model",
    type=GeneratorParam(),
    default=None,
    help="Generator to train further: a folder or a shipped name [default: the shipped default model].",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset to train on (its studies of --sources whose condition the model knows).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Model folder to write; OUT-run holds the run (rerun the command to resume it).",
)
@click.option(
    "--steps", required=True, type=click.IntRange(min=1), help="Optimizer steps of the diffusion UNet."
)
@click.option(
    "--learning-rate",
    default=1.0e-4,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="AdamW peak learning rate (short warm-up, cosine decay).",
)
@click.option(
    "--batch-size", default=16, show_default=True, type=click.IntRange(min=1), help="Latents per step."
)
@click.option(
    "--sources",
    default="real",
    show_default=True,
    type=click.Choice(["real", "simulated"]),
    help="Studies to train on: a site's real ones (the model then has seen patients), or simulated ones "
    "(a simulator-trained model trained further stays patient-free).",
)
@click.option(
    "--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Data order and noise."
)
@click.option(
    "--snr-gamma",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    help="Min-SNR-γ loss weighting (Hang et al. 2023), e.g. 5 [default: none, the plain mean squared error].",
)
@click.option(
    "--low-noise-multiplier",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Draw the least noisy timesteps (--low-noise-portion of them) this many times as often as the "
    "rest (diffusers' timestep bias 'earlier'); 1: uniform timesteps.",
)
@click.option(
    "--low-noise-portion",
    default=0.2,
    show_default=True,
    type=click.FloatRange(min=0, max=1, min_open=True),
    help="Share of the training timesteps, the least noisy, that --low-noise-multiplier favours.",
)
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
def finetune(
    model: str | None,
    data: str,
    out: str,
    steps: int,
    learning_rate: float,
    batch_size: int,
    sources: str,
    seed: int,
    snr_gamma: float | None,
    low_noise_multiplier: float,
    low_noise_portion: float,
    progress: bool,
) -> None:
    """Train a generator's diffusion UNet further on DATA; its autoencoder stays as it is.

    On a hospital's real studies it adapts a model to that site; on simulated studies it continues a
    simulator-trained model's training. Compare the result with its base model
    (benchmarks/generator_quality.py) before using it.
    """
    from synthscan.dataset import Dataset
    from synthscan.generator.train import finetune as finetune_generator

    folder = finetune_generator(
        model,
        Dataset.open(data),
        out,
        steps=steps,
        seed=seed,
        learning_rate=learning_rate,
        batch_size=batch_size,
        sources=(sources,),
        snr_gamma=snr_gamma,
        low_noise_multiplier=low_noise_multiplier,
        low_noise_portion=low_noise_portion,
        progress=progress,
    )
    click.echo(f"Model saved to {folder}. Sample with: synthscan sample --model {folder} --condition normal")


@click.command()
@click.option(
    "--model",
    type=GeneratorParam(),
    default=None,
    help="Generator to calibrate: a folder or a shipped name [default: the shipped default model].",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset whose studies of --sources the calibration is fitted on.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model folder to write.")
@click.option(
    "--studies",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Studies run through the autoencoder (drawn with --seed).",
)
@click.option(
    "--sources",
    default="real",
    show_default=True,
    type=click.Choice(["real", "simulated"]),
    help="Studies to fit on: a site's real ones (the model is then marked as having seen patients), or "
    "simulated ones.",
)
@click.option(
    "--edge-columns",
    default=None,
    type=click.IntRange(min=0),
    help="Outermost model-image columns of each side calibrated each on its own (the decoder's border) "
    "[default: the model's own, else 8].",
)
@click.option(
    "--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Studies and pixels drawn."
)
def calibrate(
    model: str | None, data: str, out: str, studies: int, sources: str, edge_columns: int | None, seed: int
) -> None:
    """Fit a generator's decoder rate calibration on DATA; its weights stay as they are.

    The calibration maps each decoded rate to the mean count it stands for on the studies, column by
    column at the image border (without it the shipped default's decoder draws the camera's flat
    background at a third of its rate and its outermost columns too bright: docs/detector_map). Training
    fits one itself; this adds one to an older model or refits it at another site's background level.
    """
    from synthscan.dataset import Dataset
    from synthscan.generator.train import calibrate as calibrate_generator

    folder = calibrate_generator(
        model,
        Dataset.open(data),
        out,
        studies=studies,
        edge_columns=edge_columns,
        seed=seed,
        sources=(sources,),
    )
    click.echo(f"Model saved to {folder}. Sample with: synthscan sample --model {folder} --condition normal")


def _new_folder(name: str) -> Path:
    """``name``, or ``name-2``, ``name-3``… : the first that does not exist in the working directory."""
    candidate, index = Path(name), 1
    while candidate.exists():
        index += 1
        candidate = Path(f"{name}-{index}")
    return candidate


@click.command()
@click.option("--condition", required=True, type=click.Choice(tuple(LABELS)), help="Condition to generate.")
@click.option(
    "--grade",
    type=click.Choice([str(g) for g in AMYLOIDOSIS_GRADES]),
    default=None,
    help="Perugini grade of amyloidosis studies [default: drawn in the training proportions].",
)
@click.option(
    "--tracer",
    type=click.Choice(TRACERS),
    default=None,
    help="Tracer of the studies, for models trained with tracer conditions "
    "[default: drawn in the training proportions].",
)
@click.option(
    "--burden",
    type=click.Choice(BURDENS),
    default=None,
    help="Metastatic burden (lesions; 'none' for the other conditions), for models trained with burden "
    "conditions [default: drawn in the condition's training proportions].",
)
@click.option("-n", "n", default=16, type=click.IntRange(min=1), help="Number of studies.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Dataset folder; rerun with the same folder and settings to resume "
    "[default: a new folder named after the condition].",
)
@click.option(
    "--model",
    type=GeneratorParam(),
    default=None,
    help="Generator: a folder, or a shipped model's name [default: the shipped default model].",
)
@click.option("--seed", default=0, type=click.IntRange(min=0), help="Study i uses seed SEED + i.")
@steps_option
@guidance_option
@click.option("--batch-size", default=16, type=click.IntRange(min=1), help="Studies generated together.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="npz",
    help="npz: the dataset only; png: also a viewable PNG of each view (see --raw-counts); "
    "dicom: also anonymized NM DICOM files.",
)
@click.option(
    "--raw-counts",
    is_flag=True,
    help="With --format png: write the photon counts as 16-bit PNGs (for analysis; they look black in a "
    "viewer) instead of the windowed 8-bit display.",
)
@click.option(
    "--add-condition",
    is_flag=True,
    help="Allow OUT to already hold synthetic studies of another condition (one folder, several conditions).",
)
@device_option
@precision_option
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def sample(
    condition: str,
    grade: str | None,
    tracer: str | None,
    burden: str | None,
    n: int,
    out: str | None,
    model: str | None,
    seed: int,
    steps: int | None,
    guidance: float | None,
    batch_size: int,
    fmt: str,
    raw_counts: bool,
    add_condition: bool,
    device: str | None,
    precision: str,
    progress: bool,
) -> None:
    """Generate N labelled synthetic studies into a dataset (one seed per study, recorded).

    Without --model the shipped generator is used; `synthscan info` shows its path, hash,
    conditions and model card. A study whose body starts far below every training study's (no head,
    or drawn down the image) is drawn again from its own seed, and its row records how often. Under
    `accelerate launch -m synthscan sample ...` the studies are split between the processes (GPUs,
    machines) and the dataset is the one a single process writes.
    """
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    from synthscan.generator.conditions import condition_key
    from synthscan.generator.export import writer_for
    from synthscan.generator.sampling import sample_to_dataset
    from synthscan.generator.storage import load_pipeline

    if grade is not None and condition != "amyloidosis":
        raise click.BadParameter(
            f"applies to --condition amyloidosis only, not {condition}", param_hint="--grade"
        )
    if raw_counts and fmt != "png":
        raise click.BadParameter("applies to --format png only", param_hint="--raw-counts")
    perugini = int(grade) if grade is not None else None
    state = PartialState()
    target = [Path(out) if out else _new_folder(condition_key(condition, perugini))]
    if state.num_processes > 1:
        broadcast_object_list(target)  # the main process's choice: one folder for all processes
    target = target[0]
    pipeline = load_pipeline(model, device=device, precision=precision)
    try:
        pipeline.check_factors(condition, {"tracer": tracer, "burden": burden})
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    on_written = writer_for(fmt, target, pipeline, raw_counts=raw_counts)
    dataset = sample_to_dataset(
        pipeline,
        target,
        condition=condition,
        grade=perugini,
        n=n,
        seed=seed,
        batch_size=batch_size,
        steps=steps,
        guidance=guidance,
        progress=progress,
        on_written=on_written,
        add_condition=add_condition,
        tracer=tracer,
        burden=burden,
    )
    if state.is_main_process:
        redrawn = sum(int(r.get("redraws") or 0) > 0 for r in dataset)
        again = f" {redrawn} drawn again from their seeds: their body started too low." if redrawn else ""
        click.echo(f"{studies(len(dataset), 'synthetic')} in {dataset.root} (format {fmt}).{again}")

"""Distillation: a faster student of a trained generator, guidance built in.

A trained model samples with ``default_steps`` solver steps of two UNet rows each (the conditional
and the null row of classifier-free guidance): the UNet is two thirds of ``synthscan sample``'s time
on a CPU (``benchmarks/sample_speed.py``). Latent consistency distillation (Luo et al. 2023, "Latent
Consistency Models"; consistency distillation of Song et al. 2023) trains a student UNet, started
from the teacher's weights, to map any point of the teacher's *guided* probability-flow ODE to the
ODE's end. One step: a training study's latent is noised to ``t_{n+k}`` on a grid of
``ddim_timesteps`` steps, one DDIM step of the guided teacher (each label, or metastasis burden, at
the model's own guidance scale) moves it to ``t_n``, and the student's consistency function at
``t_{n+k}`` is pulled towards that of a slowly moving (EMA) copy of itself at ``t_n`` (pseudo-Huber
loss).

A consistency student samples with diffusers' ``LCMScheduler`` in ``sampling_steps`` steps of one
UNet row each; its guidance is part of its weights, so the pipeline skips the null rows and refuses another
scale. Everything else (autoencoder, condition tables, count model, acquisition window) is the
teacher's. The run folder resumes like ``synthscan train``'s.

``objective: guidance`` is guidance distillation (Meng et al. 2023, "On Distillation of Guided
Diffusion Models", stage one): the student's one row regresses the teacher's guided output at
noised training latents, and samples with the teacher's own solver and steps, one UNet row each; where
the teacher's guidance interval leaves a solver step unguided, the student learns the conditional
output there instead (``keep_guidance_interval``, docs/interval_distillation). A consistency
student starts from the teacher's *conditional* network and absorbs the guidance slowly; distilled
from a guidance student (``--model`` the guidance run's model) it starts guided.
"""

from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from diffusers import DDPMScheduler, LCMScheduler
from diffusers.training_utils import EMAModel

from synthscan.atomic import atomic_write_text
from synthscan.dataset import Dataset, DatasetError
from synthscan.generator.conditions import FACTORS, split_key
from synthscan.generator.config import GUIDED_EVERY_STEP, DistillConfig
from synthscan.generator.data import shared_images, training_records
from synthscan.generator.models import ConditionedUNet
from synthscan.generator.pipeline import SynthScanPipeline, clean_and_noise
from synthscan.generator.storage import load_pipeline, save_model
from synthscan.generator.train import (
    _sample_grid,
    cached_latents,
    draw_latents,
    fold_posterior,
    known_condition_records,
    pretrained_conditioning,
    run_stage,
)
from synthscan.labels import PATIENT_SOURCES
from synthscan.runs import RunDir

COMPONENTS = ("vae", "unet", "scheduler", "condition_encoder")


def consistency_scheduler(teacher: SynthScanPipeline, ddim_timesteps: int) -> LCMScheduler:
    """The student's sampler: LCM multistep sampling on the teacher's noise schedule and grid."""
    config = teacher.scheduler.config
    if not 1 <= ddim_timesteps <= config.num_train_timesteps:
        raise ValueError(
            f"ddim_timesteps must lie in 1..{config.num_train_timesteps} (the teacher's timesteps), "
            f"got {ddim_timesteps}"
        )
    return LCMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        beta_schedule=config.beta_schedule,
        trained_betas=config.get("trained_betas"),
        prediction_type=config.prediction_type,
        rescale_betas_zero_snr=config.get("rescale_betas_zero_snr", False),
        original_inference_steps=ddim_timesteps,
        clip_sample=False,  # latents are not bounded like pixels
    )


BURDEN_COLUMN = 1 + list(FACTORS).index("burden")
"""Column of the burden id in a factor model's class ids (condition, then the factors in order)."""


def teacher_guidance(teacher: SynthScanPipeline) -> torch.Tensor:
    """The teacher's scale per condition id (conditions,), or per (condition, burden) id (factor models).

    A condition id is a label with its Perugini grade, so grade scales need no column of their own.
    The burden table's extra last column is the null class's: the condition's own scale.
    """
    keys = [split_key(key) for key in teacher.config.conditions]
    burdens = (teacher.factors or {}).get("burden")
    if not burdens:
        return torch.tensor([teacher.guidance_for(label, grade=grade) for label, grade in keys])
    return torch.tensor(
        [[teacher.guidance_for(label, None, b, grade) for b in [*burdens, None]] for label, grade in keys]
    )


def teacher_guided_timesteps(teacher: SynthScanPipeline) -> torch.Tensor:
    """Whether the teacher guides a study of each condition id at each training timestep
    (num_train_timesteps, conditions) bool: as at the nearest timestep of its own solver's
    ``default_steps`` (the label's guidance interval, :meth:`SynthScanPipeline.guided_step`)."""
    solver = type(teacher.scheduler).from_config(teacher.scheduler.config)
    steps = teacher.config.default_steps
    solver.set_timesteps(steps)
    grid = solver.timesteps.float().cpu()
    labels = [split_key(key)[0] for key in teacher.config.conditions]
    guided = torch.tensor(
        [[teacher.guided_step(i, len(grid), label) for label in labels] for i in range(len(grid))]
    )
    train = torch.arange(teacher.scheduler.config.num_train_timesteps, dtype=torch.float32)
    return guided[(train[:, None] - grid[None]).abs().argmin(dim=1)]


def condition_ids(labels: torch.Tensor) -> torch.Tensor:
    """The condition id of each row: the labels themselves, or (factor models) their first column."""
    return labels if labels.ndim == 1 else labels[:, 0]


def guided_output(
    teacher: torch.nn.Module,
    x: torch.Tensor,
    t: torch.Tensor,
    labels: torch.Tensor,
    nulls: torch.Tensor,
    guidance: torch.Tensor | None,
    guided: torch.Tensor | None = None,
) -> torch.Tensor:
    """The teacher's classifier-free guided output, as the pipeline forms it (conditional and null rows
    in one call); ``guidance`` ``None``: the teacher's one row is already guided (a guidance student).

    ``guidance`` holds each condition id's scale, or (factor models) each (condition id, burden id)'s;
    rows where ``guided`` (B,) is False get the conditional output (scale 1), as the teacher's unguided
    solver steps do.
    """
    if guidance is None:
        return teacher(x, t, class_labels=labels).sample
    if guidance.ndim == 2:
        w = guidance.to(x.device)[labels[:, 0], labels[:, BURDEN_COLUMN]]
    else:
        w = guidance.to(x.device)[condition_ids(labels)]
    if guided is not None:
        w = torch.where(guided.to(x.device), w, torch.ones_like(w))
    w = w.view(-1, 1, 1, 1)
    both = teacher(torch.cat([x, x]), torch.cat([t, t]), class_labels=torch.cat([labels, nulls])).sample
    conditional, unconditional = both.chunk(2)
    return unconditional + w * (conditional - unconditional)


class GuidanceObjective:
    """Guidance distillation's loss: the student's one row against the guided teacher's two, at
    training latents noised (by the step's ``noise``) to uniformly drawn timesteps (the diffusion
    training's noise schedule); at timesteps and conditions where ``guided``
    (:func:`teacher_guided_timesteps`) is False, against the teacher's conditional output, so the
    student keeps the teacher's guidance intervals."""

    def __init__(
        self,
        teacher: torch.nn.Module,
        noise_scheduler: DDPMScheduler,
        guidance: torch.Tensor,
        guided: torch.Tensor | None = None,
    ):
        self.teacher, self.noise_scheduler, self.guidance = teacher, noise_scheduler, guidance
        self.guided = guided

    def __call__(
        self,
        student: torch.nn.Module,
        z0: torch.Tensor,
        noise: torch.Tensor,
        labels: torch.Tensor,
        nulls: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        steps = self.noise_scheduler.config.num_train_timesteps
        t = torch.randint(0, steps, (len(z0),), generator=generator).to(z0.device)
        x = self.noise_scheduler.add_noise(z0, noise, t)
        with torch.no_grad():
            guided = None if self.guided is None else self.guided.to(t.device)[t, condition_ids(labels)]
            target = guided_output(self.teacher, x, t, labels, nulls, self.guidance, guided)
        return torch.nn.functional.mse_loss(student(x, t, class_labels=labels).sample, target)


class ConsistencyObjective:
    """One distillation step's loss for a batch of training latents noised by the step's ``noise`` (see
    the module docstring)."""

    def __init__(
        self,
        teacher: torch.nn.Module,
        target: torch.nn.Module,
        target_ema: EMAModel,
        scheduler: LCMScheduler,
        guidance: torch.Tensor | None,
        huber_c: float,
    ):
        self.teacher, self.target, self.target_ema = teacher, target, target_ema
        self.scheduler = scheduler
        self.guidance = guidance  # teacher_guidance(): per condition (and burden) id; None: built in
        self.huber_c = huber_c
        self.alphas_cumprod = scheduler.alphas_cumprod
        steps = scheduler.config.num_train_timesteps
        self.skip = steps // scheduler.config.original_inference_steps
        self.grid = torch.arange(1, scheduler.config.original_inference_steps + 1) * self.skip - 1

    def _x0_and_noise(self, output: torch.Tensor, x: torch.Tensor, t: torch.Tensor):
        """The network output at ``t`` as (clean latent, noise) estimates."""
        alpha_bar = self.alphas_cumprod.to(x.device)[t].view(-1, 1, 1, 1)
        return clean_and_noise(output, x, alpha_bar, self.scheduler.config.prediction_type)

    def consistency(self, network: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor):
        """f(x, t) = c_skip(t) x + c_out(t) x0(x, t): exactly x at t = 0 (the boundary condition)."""
        x0, _ = self._x0_and_noise(network(x, t, class_labels=labels).sample, x, t)
        c_skip, c_out = self.scheduler.get_scalings_for_boundary_condition_discrete(t)
        return c_skip.view(-1, 1, 1, 1) * x + c_out.view(-1, 1, 1, 1) * x0

    @torch.no_grad()
    def teacher_step(
        self,
        x: torch.Tensor,
        start: torch.Tensor,
        end: torch.Tensor,
        labels: torch.Tensor,
        nulls: torch.Tensor,
    ) -> torch.Tensor:
        """One DDIM step of the guided teacher, ``start`` → ``end``."""
        output = guided_output(self.teacher, x, start, labels, nulls, self.guidance)
        x0, eps = self._x0_and_noise(output, x, start)
        alpha_bar = self.alphas_cumprod.to(x.device)[end].view(-1, 1, 1, 1)
        return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps

    def __call__(
        self,
        student: torch.nn.Module,
        z0: torch.Tensor,
        noise: torch.Tensor,
        labels: torch.Tensor,
        nulls: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        device = z0.device
        start = self.grid[torch.randint(0, len(self.grid), (len(z0),), generator=generator)].to(device)
        end = (start - self.skip).clamp(min=0)
        x = self.scheduler.add_noise(z0, noise, start)
        x_end = self.teacher_step(x, start, end, labels, nulls)
        with torch.no_grad():
            self.target_ema.copy_to(self.target.parameters())
            target = self.consistency(self.target, x_end, end, labels)
        prediction = self.consistency(student, x, start, labels)
        return (torch.sqrt((prediction - target) ** 2 + self.huber_c**2) - self.huber_c).mean()


def condition_weights(class_ids: np.ndarray) -> np.ndarray:
    """Sampling probability of each study such that every condition combination (the rows of
    ``class_ids``: label and grade, tracer, burden) is drawn equally often: a rare one (e.g. a
    >10-lesion burden, 4 % of a site's studies) gets as many updates as normal studies."""
    rows = class_ids.reshape(len(class_ids), -1)
    _, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse.ravel()]
    return weights / weights.sum()


def student_pipeline(
    teacher: SynthScanPipeline, student: torch.nn.Module, config: DistillConfig, sources: list[str]
) -> SynthScanPipeline:
    """The teacher's pipeline with the student UNet, its sampler and guidance marked as built in."""
    settings = inspect.signature(SynthScanPipeline.__init__).parameters
    consistency = config.objective == "consistency"
    kept = {k: v for k, v in teacher.config.items() if k in settings and k not in COMPONENTS}
    kept.update(
        default_steps=config.sampling_steps if consistency else teacher.config.default_steps,
        guidance_distilled=True,
        guidance_interval=list(GUIDED_EVERY_STEP),  # one row per step: the intervals are in its weights
        label_guidance_interval={},
        training_sources=sources,
    )
    encoder = student.encoder.eval() if isinstance(student, ConditionedUNet) else None
    pipeline = SynthScanPipeline(
        vae=teacher.vae,
        unet=(student.unet if encoder is not None else student).eval(),
        scheduler=(
            consistency_scheduler(teacher, config.ddim_timesteps)
            if consistency
            else type(teacher.scheduler).from_config(teacher.scheduler.config)  # the teacher's solver
        ),
        condition_encoder=encoder,
        **kept,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _check_teacher(out: Path, teacher: SynthScanPipeline, config: DistillConfig) -> None:
    """Record the teacher, objective and guidance target in ``out/teacher.json``; refuse to resume a run
    that distilled another model, with another objective or another target (its checkpoint holds
    another student)."""
    path = out / "teacher.json"
    objective, keep = config.objective, config.keep_guidance_interval
    if path.is_file():
        recorded = json.loads(path.read_text(encoding="utf-8"))
        if recorded["sha256"] != teacher.sha256:
            raise ValueError(
                f"{out} distils {recorded['model']} (sha256 {recorded['sha256'][:12]}), not {teacher.path}; "
                "rerun with that --model or choose a new --out"
            )
        if recorded.get("objective", "consistency") != objective:
            raise ValueError(
                f"{out} is a {recorded.get('objective', 'consistency')} distillation, not {objective}; "
                "rerun with its config or choose a new --out"
            )
        was = recorded.get("keep_guidance_interval", False)  # older runs learnt every step guided
        if objective == "guidance" and was != keep:
            raise ValueError(
                f"{out} was started with keep_guidance_interval={str(was).lower()}; rerun with "
                f"--set keep_guidance_interval={str(was).lower()} or choose a new --out"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "model": str(teacher.path),
        "sha256": teacher.sha256,
        "objective": objective,
        "keep_guidance_interval": keep,
    }
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def distill(
    model: str | Path | None,
    data: str | Path,
    config: DistillConfig,
    out: str | Path,
    *,
    progress: bool = True,
) -> Path:
    """Distil ``model`` (``None``: the shipped one) on ``data``'s studies into ``out``; returns ``out/model``.

    ``data`` should be the teacher's training data (or studies like it): its noised latents are where
    the student learns the guided teacher (where its ODE is followed from, for a consistency student).
    Rerunning with the same ``out`` and objective resumes.
    """
    state = PartialState()
    main = state.is_main_process
    out = Path(out)
    teacher = load_pipeline(model, device=str(state.device))
    if isinstance(teacher.scheduler, LCMScheduler):
        raise ValueError(f"{teacher.path} is already a consistency model; distil its teacher instead")
    built_in = bool(teacher.config.get("guidance_distilled"))  # a guidance student as the teacher
    if built_in and config.objective == "guidance":
        raise ValueError(
            f"{teacher.path} already has its guidance distilled; distil it with the default config "
            "(consistency) or distil its teacher"
        )
    dataset = Dataset.open(data)
    if tuple(dataset.info.matrix) != teacher.matrix:
        raise DatasetError(
            f"{dataset.root} holds {dataset.info.matrix[0]}x{dataset.info.matrix[1]} studies but the model "
            f"makes {teacher.matrix[0]}x{teacher.matrix[1]}; distil on studies of the model's matrix"
        )
    # the teacher's own kinds of source only, so the student has seen no more patients than it had
    sources = list(teacher.config.training_sources)
    records = known_condition_records(
        teacher, training_records(dataset, tuple(sources) or PATIENT_SOURCES), "studies", dataset.root
    )
    if main:
        _check_teacher(out, teacher, config)
    run = RunDir(out, config, kind="generator-distillation") if main else None
    try:
        images = shared_images(
            state, dataset, records, teacher.config.bin_factor, out / "data", progress=progress
        )
        class_ids, null_ids, teacher_net = pretrained_conditioning(teacher, records)
        if main:
            cached_latents(teacher.vae, images, out / "data", progress=progress)
        state.wait_for_everyone()
        latents = cached_latents(teacher.vae, images, out / "data", progress=False)
        mean, std = fold_posterior(latents, teacher.config.get("latent_patch", 1), teacher.vae.config)
        mean, std = torch.from_numpy(mean).to(state.device), torch.from_numpy(std).to(state.device)
        teacher_net.eval().requires_grad_(False)
        torch.manual_seed(config.seed)
        # trained in the default memory format (load_pipeline's channels-last weights are for inference)
        student = copy.deepcopy(teacher_net).to(memory_format=torch.contiguous_format).requires_grad_(True)
        for module in student.modules():  # the teacher and the target run without dropout: so does it
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        guidance = None if built_in else teacher_guidance(teacher)
        target_ema = None
        if config.objective == "guidance":
            noise_scheduler = DDPMScheduler.from_config(teacher.scheduler.config)
            guided = teacher_guided_timesteps(teacher) if config.keep_guidance_interval else None
            objective = GuidanceObjective(teacher_net, noise_scheduler, guidance, guided)
        else:
            target = copy.deepcopy(teacher_net).eval()
            decay = config.target_ema_decay  # constant from the first step, as in Luo et al.
            target_ema = EMAModel(student.parameters(), decay=decay, min_decay=decay, update_after_step=-1)
            objective = ConsistencyObjective(
                teacher_net,
                target,
                target_ema,
                consistency_scheduler(teacher, config.ddim_timesteps),
                guidance,
                config.huber_c,
            )
        scaling = teacher.vae.config.scaling_factor

        weights = condition_weights(class_ids) if config.balance_conditions else None

        def step(network, rng, generator):
            index = rng.choice(len(mean), config.batch_size, p=weights)
            z0, noise = draw_latents(mean, std, index, scaling, generator)
            labels = torch.from_numpy(class_ids[index]).to(state.device)
            nulls = torch.as_tensor(null_ids, device=state.device).expand_as(labels)
            return objective(network, z0, noise, labels, nulls, generator), {}

        def card(pipeline: SynthScanPipeline, steps: int, seconds: float) -> str:
            """The student's model card; its sampler and steps are read from ``pipeline``."""
            scales = (
                ", ".join(f"{label} {teacher.guidance_for(label)}" for label in teacher.labels)
                + "".join(
                    f", metastasis with burden {b} {g:g}"
                    for b, g in (teacher.config.get("burden_guidance") or {}).items()
                )
                + "".join(
                    f", amyloidosis of Perugini grade {k} {g:g}"
                    for k, g in (teacher.config.get("grade_guidance") or {}).items()
                )
            )
            reached = (
                f"{steps} steps" if steps == config.steps else f"snapshot at step {steps} of {config.steps}"
            )
            method = (
                "Guidance distillation"
                if config.objective == "guidance"
                else "Latent consistency distillation"
            )
            solver = (
                "LCM" if isinstance(pipeline.scheduler, LCMScheduler) else type(pipeline.scheduler).__name__
            )
            balanced = ", each condition combination drawn equally often" if config.balance_conditions else ""
            start, stop = teacher.config.guidance_interval
            by_label = teacher.config.get("label_guidance_interval") or {}
            spans = "".join(f"; {label} [{a:g}, {b:g}]" for label, (a, b) in by_label.items())
            interval = (
                f" where the teacher guides (its guidance interval [{start:g}, {stop:g}] of the steps{spans})"
                if config.objective == "guidance"
                and config.keep_guidance_interval
                and ((start, stop) != GUIDED_EVERY_STEP or by_label)
                else ""
            )
            return (
                "# Distilled synthscan generator\n\n"
                f"{method} of `{teacher.path.name}` (sha256 {teacher.sha256}) on "
                f"{len(records)} studies of `{dataset.root.name}`{balanced}: {reached} in "
                f"{seconds / 3600:.2f} h ({state.num_processes} process(es) on {state.device.type}). "
                f"Samples in {pipeline.config.default_steps} {solver} steps of one UNet call, "
                f"guidance built in ({scales}){interval}.\n"
            )

        def on_sample(done: int) -> None:
            pipeline = student_pipeline(teacher, student, config, sources)
            _sample_grid(pipeline, out / "samples" / f"student-{done:06d}.png")
            if config.snapshots and done < config.steps:  # the last step's student is out/model
                save_model(
                    pipeline,
                    out / "snapshots" / f"step-{done:06d}",
                    card=card(pipeline, done, run.active_seconds()),
                )
            student.train()

        trained = run_stage(
            "distillation",
            student,
            step,
            steps=config.steps,
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup_steps,
            batch_size=config.batch_size,
            folder=out / "distillation",
            config=config,
            run=run,
            ema=target_ema,
            on_sample=on_sample,
            progress=progress,
        )
        if main:
            pipeline = student_pipeline(teacher, trained, config, sources)
            _sample_grid(pipeline, out / "samples" / "final.png")
            seconds = run.active_seconds()
            save_model(pipeline, out / "model", card=card(pipeline, config.steps, seconds))
            run.log_metrics(stage="done", seconds=seconds)
        state.wait_for_everyone()
    finally:
        if run is not None:
            run.close()
    return out / "model"

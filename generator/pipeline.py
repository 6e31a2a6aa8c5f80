"""``SynthScanPipeline``: class-conditional latent diffusion sampling of whole-body bone scans.

Inference only, one way to run it (``__call__``), like every diffusers pipeline. Components:
``vae`` (:class:`~diffusers.AutoencoderKL` on the count transform of
:mod:`synthscan.generator.transform`), ``unet`` (:class:`~diffusers.UNet2DModel` with a class
embedding), ``scheduler`` (a diffusers multistep ODE solver, UniPC; ``LCMScheduler`` for a consistency
student, :mod:`synthscan.generator.distill`). Settings learned from the training data (condition
table, grade proportions, total-count distribution, matrix) and the sampler defaults (steps, guidance
scale, optionally per label) live in ``model_index.json``, as does the acquisition window outside
which a study holds no counts (models saved without one get
:class:`~synthscan.generator.transform.AcquisitionWindow`'s defaults).

Every study draws all of its randomness from its own ``torch.Generator`` in a fixed order (grade if
not given, total counts, initial latent, acquisition margins, a stochastic sampler's noise, a new
initial latent and sampler noise for each redraw of a misplaced body, Poisson counts), and the
networks always run on chunks of ``eval_chunk`` samples (a redraw on one), so a study depends only on
its seed and settings, never on the batch it was generated in.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, SchedulerMixin, UNet2DModel
from diffusers.utils import BaseOutput

from synthscan.generator.calibration import RateCalibration
from synthscan.generator.conditions import FACTORS, UNKNOWN, resolve_condition, resolve_factor, split_key
from synthscan.generator.config import BODY_REDRAWS, GUIDED_EVERY_STEP, solver_name
from synthscan.generator.models import ConditionEncoder, latents_from_unet, unfold_latents
from synthscan.generator.transform import (
    AcquisitionWindow,
    ConditionLogNormal,
    decoded_rate,
    expected_from_rate,
    poisson_counts,
)
from synthscan.labels import DEFAULT_MATRIX, DEFAULT_PIXEL_SPACING_MM, LABELS, VIEWS


@dataclass
class SynthScanPipelineOutput(BaseOutput):
    """Generated studies: counts (B, 2, H, W) as stored in a dataset, and what was generated."""

    counts: np.ndarray
    conditions: list[str]
    total_counts: list[float]
    expected: np.ndarray | None = None
    factors: list[dict[str, str]] | None = None  # tracer and burden of each study (factor models only)
    redraws: list[int] | None = None  # times each body was misplaced and drawn again; None: not checked


def run_chunked(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], chunk: int) -> torch.Tensor:
    """``fn(*inputs)`` in chunks of exactly ``chunk`` rows (the last padded), then the padding dropped.

    CPU kernels pick their algorithm by tensor shape, and different algorithms round differently; a
    fixed chunk shape makes each row's result independent of how many rows are generated together.
    """
    outputs = []
    for start in range(0, len(inputs[0]), chunk):
        parts = [x[start : start + chunk] for x in inputs]
        pad = chunk - len(parts[0])
        if pad:
            parts = [torch.cat([x, x[-1:].expand(pad, *x.shape[1:])]) for x in parts]
        outputs.append(fn(*parts)[: chunk - pad])
    return torch.cat(outputs)


def clean_and_noise(
    output: torch.Tensor, x: torch.Tensor, alpha_bar: torch.Tensor, prediction_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """A network ``output`` (``v_prediction`` or epsilon) at the noisy latent ``x`` as its estimates of
    the clean latent and of the noise; ``alpha_bar``: the timestep's cumulative alpha (broadcastable)."""
    a, s = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    if prediction_type == "v_prediction":
        return a * x - s * output, s * x + a * output
    return (x - s * output) / a, output


PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Arithmetic of the UNet and decoder: fp32, or autocast to a 16-bit type (weights stay fp32)."""


class SynthScanPipeline(DiffusionPipeline):
    """Generate labelled whole-body bone scans (anterior and posterior photon counts).

    ``precision`` (``fp32``, ``bf16``, ``fp16``; an attribute, not saved) runs the networks under
    ``torch.autocast``: the solver state, the count transform and Poisson sampling stay fp32, and
    autocast keeps normalizations and softmax in fp32, where half precision overflows.
    """

    model_cpu_offload_seq = "unet->vae"
    _optional_components: ClassVar[list[str]] = ["condition_encoder"]
    precision: str = "fp32"

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DModel,
        scheduler: SchedulerMixin,
        condition_encoder: ConditionEncoder | None = None,
        conditions: list[str] | None = None,
        grade_weights: dict[str, float] | None = None,
        total_counts: dict[str, dict[str, float]] | None = None,
        view_balance: dict[str, dict[str, float]] | None = None,
        matrix: list[int] | None = None,
        pixel_spacing_mm: float = DEFAULT_PIXEL_SPACING_MM,
        bin_factor: int = 2,
        default_steps: int = 10,
        default_guidance: float = 2.0,
        label_guidance: dict[str, float] | None = None,
        burden_guidance: dict[str, float] | None = None,
        grade_guidance: dict[str, float] | None = None,
        eval_chunk: int = 8,
        tracer: str = "",
        training_sources: list[str] | None = None,
        acquisition_window: dict | None = None,
        factors: dict[str, list[str]] | None = None,
        factor_weights: dict[str, dict[str, dict[str, float]]] | None = None,
        guidance_distilled: bool = False,
        guidance_interval: list[float] | None = None,
        label_guidance_interval: dict[str, list[float]] | None = None,
        label_final_sigma: dict[str, float] | None = None,
        burden_final_sigma: dict[str, float] | None = None,
        latent_patch: int = 1,
        rate_calibration: dict | None = None,
    ):
        super().__init__()
        self.register_modules(vae=vae, unet=unet, scheduler=scheduler, condition_encoder=condition_encoder)
        self.register_to_config(
            conditions=list(conditions or LABELS),
            grade_weights=dict(grade_weights or {}),
            total_counts=total_counts or {"log_mean": {}, "log_std": {}},
            view_balance=view_balance,
            matrix=[int(v) for v in matrix or DEFAULT_MATRIX],
            pixel_spacing_mm=float(pixel_spacing_mm),
            bin_factor=int(bin_factor),
            default_steps=int(default_steps),
            default_guidance=float(default_guidance),
            label_guidance={str(k): float(v) for k, v in (label_guidance or {}).items()},
            burden_guidance={str(k): float(v) for k, v in (burden_guidance or {}).items()},
            grade_guidance={str(k): float(v) for k, v in (grade_guidance or {}).items()},
            eval_chunk=int(eval_chunk),
            tracer=str(tracer),
            training_sources=list(training_sources or []),
            acquisition_window=acquisition_window,
            factors=factors,
            factor_weights=factor_weights or {},
            guidance_distilled=bool(guidance_distilled),
            guidance_interval=[float(v) for v in guidance_interval or GUIDED_EVERY_STEP],
            label_guidance_interval={
                str(k): [float(v) for v in span] for k, span in (label_guidance_interval or {}).items()
            },
            label_final_sigma={str(k): float(v) for k, v in (label_final_sigma or {}).items()},
            burden_final_sigma={str(k): float(v) for k, v in (burden_final_sigma or {}).items()},
            latent_patch=int(latent_patch),
            rate_calibration=rate_calibration,
        )

    @property
    def matrix(self) -> tuple[int, int]:
        return tuple(self.config.matrix)

    @property
    def views(self) -> tuple[str, ...]:
        return VIEWS

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels this model generates (each with at least one condition key)."""
        return tuple(dict.fromkeys(split_key(k)[0] for k in self.config.conditions))

    @property
    def factors(self) -> dict[str, list[str]]:
        """Factor conditions (tracer, burden) and their class tables; empty for models without them."""
        return dict(self.config.get("factors") or {}) if self.condition_encoder is not None else {}

    def check_factors(self, label: str, requested: dict[str, str | None]) -> None:
        """Refuse a tracer or burden this model cannot generate, in one line naming what it can."""
        asked = {name: value for name, value in requested.items() if value is not None}
        if asked and not self.factors:
            raise ValueError(
                f"this model was trained without {' or '.join(asked)} conditions; leave out "
                + " and ".join(f"--{name}" for name in asked)
                + " (or train a model on data with tracer, lesion_count and superscan columns)"
            )
        burden = asked.get("burden")
        if burden is not None and (label == "metastasis") == (burden == "none"):
            raise ValueError(
                f"--burden {burden} does not fit --condition {label}: metastasis has a burden of 1-3 or "
                "more lesions or a superscan, the other conditions 'none'"
            )
        for name, value in asked.items():
            known = [v for v in self.factors.get(name, []) if v != UNKNOWN]
            if value not in known:
                raise ValueError(
                    f"this model has no {name} {value!r}; {name}s it knows: {', '.join(known) or 'none'}"
                )

    @property
    def calibration(self) -> RateCalibration | None:
        """The decoder's rate calibration (:mod:`synthscan.generator.calibration`); None if it has none."""
        return RateCalibration.from_dict(self.config.get("rate_calibration"))

    @property
    def sampler(self) -> str:
        """The solver, as recorded with every study (e.g. ``UniPCMultistepScheduler, Karras sigmas``;
        ``DPMSolverMultistepScheduler sde-dpmsolver++, Karras sigmas``)."""
        karras = ", Karras sigmas" if self.scheduler.config.get("use_karras_sigmas") else ""
        return solver_name(type(self.scheduler).__name__, self.scheduler.config) + karras

    def guidance_for(
        self,
        label: str,
        override: float | None = None,
        burden: str | None = None,
        grade: int | None = None,
    ) -> float:
        """Guidance scale of a ``label`` study: ``override``, else its ``burden``'s default (metastasis
        studies) or its Perugini ``grade``'s (amyloidosis studies), else the label's, else the model's.

        1 is the conditional model alone; 0 would be the unconditional model, whose samples ignore the
        condition they would be labelled with, so scales must be > 0. A distilled model's scales are
        in its weights (:mod:`synthscan.generator.distill`): it refuses another.
        """
        if override is not None and self.config.get("guidance_distilled"):
            raise ValueError(
                "this distilled model has each condition's guidance built into its weights; leave out "
                "--guidance (or sample its teacher)"
            )
        if override is not None:
            if not override > 0:
                raise ValueError(f"guidance must be > 0 (1 = conditional model alone), got {override}")
            return float(override)
        by_burden = self.config.get("burden_guidance") or {}  # {} for models saved before it
        if label == "metastasis" and burden in by_burden:
            return float(by_burden[burden])
        by_grade = {str(k): v for k, v in (self.config.get("grade_guidance") or {}).items()}  # JSON: "2"
        if label == "amyloidosis" and str(grade) in by_grade:
            return float(by_grade[str(grade)])
        return float(self.config.get("label_guidance", {}).get(label, self.config.default_guidance))

    def final_sigma_for(self, label: str, burden: str | None = None) -> float:
        """Noise level (sigma) at or below which a study ends on the network's denoised estimate instead
        of running every solver step; 0: it runs them all. A metastasis study's burden's setting, else its
        label's.

        The last, least noisy steps draw small hot spots: false ones in normals (docs/normal_hot_spots)
        and lesions in metastases, so ending early lightens a burden the model draws too heavy
        (docs/burden_requests).
        """
        by_burden = self.config.get("burden_final_sigma") or {}  # {} for models saved before it
        if label == "metastasis" and burden in by_burden:
            return float(by_burden[burden])
        return float((self.config.get("label_final_sigma") or {}).get(label, 0.0))

    def guided_step(self, index: int, steps: int, label: str | None = None) -> bool:
        """Whether solver step ``index`` of ``steps`` applies guidance to a ``label`` study (the label's
        guidance interval, else the model's).

        Guidance at the highest noise levels narrows the samples' variety and at the lowest adds
        little (Kynkäänniemi et al. 2024); unguided steps cost one network call, not two. The interval
        is a share of the steps, counted like diffusers' guiders' ``start`` and ``stop``. A label's own
        interval leaves what is set early to the conditional model for that label alone (normals and
        metastases: the tracer's soft tissue, docs/projected_guidance).
        """
        by_label = self.config.get("label_guidance_interval") or {}  # {} for models saved before it
        start, stop = by_label.get(label, self.config.guidance_interval)  # [0, 1] for models before it
        return int(start * steps) <= index < int(stop * steps)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """Shape of one study's latent as the UNet sees it (the autoencoder's, folded by ``latent_patch``)."""
        patch = self.config.get("latent_patch", 1)  # 1 for models saved before it
        factor = self.config.bin_factor * 2 ** (len(self.vae.config.block_out_channels) - 1) * patch
        rows, cols = self.matrix
        return self.vae.config.latent_channels * patch**2, rows // factor, cols // factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """The decoder's output (model-space images) for latents of :attr:`latent_shape`."""
        latents = unfold_latents(latents, self.config.get("latent_patch", 1))
        return self.vae.decode(latents_from_unet(latents, self.vae.config)).sample

    def _class_input(self, ids: torch.Tensor) -> torch.Tensor:
        """The UNet's class input: the ids themselves, or the factor models' summed embedding of them."""
        return ids if self.condition_encoder is None else self.condition_encoder(ids).to(self.unet.dtype)

    def _guided_output(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        labels: torch.Tensor,
        nulls: torch.Tensor,
        guidance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """UNet output with classifier-free guidance at each row's scale (``guidance`` (B,)); the
        conditional and null rows share one call. ``None``: the conditional model alone, one row per
        study (unguided steps, and a distilled model, whose conditional row is already guided)."""
        if guidance is None:
            return self.unet(x, t.expand(len(x)), class_labels=self._class_input(labels)).sample
        ids = self._class_input(torch.cat([labels, nulls]))
        both = self.unet(torch.cat([x, x]), t.expand(2 * len(x)), class_labels=ids)
        conditional, unconditional = both.sample.chunk(2)
        scale = guidance.to(conditional.dtype)[:, None, None, None]
        return unconditional + scale * (conditional - unconditional)

    @torch.no_grad()
    def __call__(
        self,
        conditions: Sequence[str],
        grades: Sequence[int | None] | None = None,
        *,
        generator: Sequence[torch.Generator],
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        total_counts: Sequence[float] | None = None,
        tracers: Sequence[str | None] | None = None,
        burdens: Sequence[str | None] | None = None,
        return_expected: bool = False,
        return_dict: bool = True,
    ) -> SynthScanPipelineOutput | tuple:
        """Generate one study per entry of ``conditions`` (``normal``, ``metastasis``, ``amyloidosis``).

        Args:
            conditions: label of each study.
            grades: Perugini grade (1-3) of each amyloidosis study; ``None`` draws it in the
                training proportions.
            tracers, burdens: tracer (MDP, HDP, DPD) and metastatic burden of each study, for models
                with factor conditions; ``None`` draws it in the training proportions of its label.
            generator: one ``torch.Generator`` per study; its seed determines the study.
            num_inference_steps: solver steps [default: the model's].
            guidance_scale: classifier-free guidance weight for every study; 1 is the conditional
                model alone (no guidance), > 1 guides [default: each label's, see :meth:`guidance_for`].
            total_counts: total counts of each study (both views) [default: drawn from the training
                distribution].
            return_expected: also return the noise-free expected counts.
        """
        batch = len(conditions)
        grades = list(grades) if grades is not None else [None] * batch
        generators = list(generator)
        if not batch or len(grades) != batch or len(generators) != batch:
            raise ValueError(
                f"need one grade entry and one generator per condition: got {batch} conditions, "
                f"{len(grades)} grades and {len(generators)} generators"
            )
        if total_counts is not None and len(total_counts) != batch:
            raise ValueError(f"{len(total_counts)} total counts for {batch} studies")
        requested = {"tracer": list(tracers or [None] * batch), "burden": list(burdens or [None] * batch)}
        if any(len(v) != batch for v in requested.values()):
            raise ValueError(f"need one tracer and one burden entry per study ({batch})")
        for i, label in enumerate(conditions):
            self.check_factors(label, {name: values[i] for name, values in requested.items()})
        steps = int(num_inference_steps or self.config.default_steps)
        if steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {steps}")
        table = list(self.config.conditions)
        totals_model = ConditionLogNormal(**self.config.total_counts)
        balance = self.config.get("view_balance")  # models saved before it keep the decoder's split
        balance_model = ConditionLogNormal(**balance) if balance else None
        device, dtype = self.unet.device, self.unet.dtype

        tables = self.factors
        keys, totals, latents, factors, margin_draws, ratios = [], [], [], [], [], []
        for i, g in enumerate(generators):
            key = resolve_condition(conditions[i], grades[i], table, self.config.grade_weights, g)
            keys.append(key)
            weights = self.config.factor_weights.get(conditions[i], {})
            factors.append(
                {
                    name: resolve_factor(name, requested[name][i], tables[name], weights.get(name, {}), g)
                    for name in FACTORS
                    if name in tables
                }
            )
            totals.append(float(total_counts[i]) if total_counts is not None else totals_model.draw(key, g))
            latents.append(torch.randn(self.latent_shape, generator=g))
            margin_draws.append(torch.rand(2, generator=g))  # where the camera starts and stops
            if balance_model is not None:
                ratios.append(balance_model.draw(key, g))  # posterior over anterior counts
        class_ids = torch.tensor([table.index(k) for k in keys], device=device)
        null_ids = torch.full_like(class_ids, len(table))
        if tables:
            factor_ids = [[tables[n].index(f[n]) for n in FACTORS] for f in factors]  # the encoder's order
            class_ids = torch.cat([class_ids[:, None], torch.tensor(factor_ids, device=device)], dim=1)
            null_ids = self.condition_encoder.null_ids(batch, device)
        latents = torch.stack(latents).to(device=device, dtype=dtype)
        scales = [
            self.guidance_for(label, guidance_scale, f.get("burden"), split_key(key)[1])
            for label, key, f in zip(conditions, keys, factors, strict=True)
        ]
        if self.config.get("guidance_distilled"):
            scales = [1.0] * batch  # guidance is in the weights: every study shares the network calls
        scales = torch.tensor(scales, device=device)
        ends = zip(conditions, factors, strict=True)
        stop_sigma = torch.tensor(
            [self.final_sigma_for(label, f.get("burden")) for label, f in ends], device=device
        )
        decoded = self._generate(
            latents,
            class_ids,
            null_ids,
            scales,
            stop_sigma,
            list(conditions),
            generators,
            steps,
            self.config.eval_chunk,
        )

        # a body drawn down the image, or without a head, is drawn again: a new initial latent from the
        # study's own generator, after everything it drew so far, so the redraw depends on the seed alone;
        # one row per network call, whatever the batch (a chunk padded for one redraw costs a chunk)
        window = AcquisitionWindow.from_dict(self.config.get("acquisition_window"))
        redraws = [0] * batch if window.body_start is not None else None  # None: a model without the check
        rate = decoded_rate(decoded.cpu(), self.calibration)
        rows = list(range(batch))  # a window without body_start finds none misplaced
        for _ in range(BODY_REDRAWS):
            again = window.misplaced(rate[rows], self.config.bin_factor, self.config.pixel_spacing_mm)
            rows = [i for i, misplaced in zip(rows, again.tolist(), strict=True) if misplaced]
            if not rows:
                break
            fresh = torch.stack([torch.randn(self.latent_shape, generator=generators[i]) for i in rows])
            redrawn = self._generate(
                fresh.to(device=device, dtype=dtype),
                class_ids[rows],
                null_ids[rows],
                scales[rows],
                stop_sigma[rows],
                [conditions[i] for i in rows],
                [generators[i] for i in rows],
                steps,
                chunk=1,
            )
            rate[rows] = decoded_rate(redrawn.cpu(), self.calibration)
            for i in rows:
                redraws[i] += 1

        rate = expected_from_rate(
            rate,
            torch.tensor(totals),
            self.config.bin_factor,
            window,
            torch.stack(margin_draws),
            torch.tensor(ratios) if ratios else None,
        )
        counts = poisson_counts(rate, generators)
        expected = rate.numpy() if return_expected else None
        factors = factors if tables else None
        if not return_dict:
            return counts, keys, totals, expected, factors, redraws
        return SynthScanPipelineOutput(
            counts=counts,
            conditions=keys,
            total_counts=totals,
            expected=expected,
            factors=factors,
            redraws=redraws,
        )

    def _generate(
        self,
        latents: torch.Tensor,
        class_ids: torch.Tensor,
        null_ids: torch.Tensor,
        scales: torch.Tensor,
        stop_sigma: torch.Tensor,
        conditions: list[str],
        generators: list[torch.Generator],
        steps: int,
        chunk: int,
    ) -> torch.Tensor:
        """Decoded model images (fp32) of the studies whose initial latents (unit noise) are given, the
        networks run on ``chunk`` rows at a time (:func:`run_chunked`); a study with a ``stop_sigma`` > 0
        ends on the denoised estimate of the first step at or below it (:meth:`final_sigma_for`)."""
        device = latents.device
        self.scheduler.set_timesteps(steps, device=device)  # also resets a multistep solver's history
        # a stochastic sampler (LCM's multistep sampling) draws each study's noise from its own generator
        stochastic = "generator" in inspect.signature(self.scheduler.step).parameters
        noise = {"generator": generators} if stochastic else {}
        latents = latents * self.scheduler.init_noise_sigma
        guided = scales != 1  # a study at scale 1 needs no null row
        half = PRECISIONS[self.precision]
        autocast = torch.autocast(device.type, dtype=half or torch.float32, enabled=half is not None)
        timesteps = self.scheduler.timesteps
        ends_early = bool(stop_sigma.any())  # once, not a device sync per step
        ended = torch.zeros(len(latents), dtype=torch.bool, device=device)
        estimate = torch.zeros_like(latents)
        for i, t in enumerate(self.progress_bar(timesteps)):
            model_input = self.scheduler.scale_model_input(latents, t)
            output = torch.zeros_like(model_input)  # studies that ended keep a finite, discarded output
            in_interval = [self.guided_step(i, len(timesteps), label) for label in conditions]
            with_null = guided & torch.tensor(in_interval, device=device)
            # guided studies share network calls whatever their scales, and so do the others; studies
            # that ended on an estimate need no more calls
            for rows, guidance in (
                ((with_null & ~ended).nonzero().flatten(), (scales,)),
                ((~with_null & ~ended).nonzero().flatten(), ()),
            ):
                if len(rows):
                    inputs = (
                        model_input[rows],
                        class_ids[rows],
                        null_ids[rows],
                        *(w[rows] for w in guidance),
                    )
                    with autocast:
                        output[rows] = run_chunked(
                            lambda x, labels, nulls, *w, t=t: self._guided_output(x, t, labels, nulls, *w),
                            inputs,
                            chunk,
                        ).to(output.dtype)
            if ends_early:
                abar = self.scheduler.alphas_cumprod[int(t)]
                ending = ~ended & (stop_sigma >= float(((1 - abar) / abar).sqrt()))
                kind = self.scheduler.config.prediction_type
                estimate[ending] = clean_and_noise(
                    output[ending], model_input[ending], abar.to(output), kind
                )[0]
                ended |= ending
            latents = self.scheduler.step(output, t, latents, **noise).prev_sample
        latents = torch.where(ended[:, None, None, None], estimate, latents)
        with autocast:
            return run_chunked(self.decode_latents, (latents,), chunk).float()

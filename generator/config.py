"""Configuration of the conditional latent diffusion generator (YAML in ``configs/generator/``).

One dataclass per stage: the count transform, the autoencoder, the diffusion network and its
training, and the sampler defaults written into the saved pipeline; the few-step distillation of a
trained model has its own (YAML in ``configs/distill/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

from synthscan.config import (
    ConfigError,
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Range,
)
from synthscan.generator.conditions import METASTATIC_BURDENS
from synthscan.labels import AMYLOIDOSIS_GRADES, LABELS, PATIENT_SOURCES

GUIDED_EVERY_STEP: tuple[float, float] = (0.0, 1.0)
"""The guidance interval of a model guided at every solver step (and of models saved before it)."""
HALF_HEAD_MM = 120.0
"""Half an adult head (vertex to chin is about 24 cm): how much lower than every training study's a
body may start before it counts as misplaced (a faint vertex a few rows lower does not)."""
BODY_REDRAWS = 4
"""Most times a study whose body starts that low is drawn again (the last draw is kept)."""


def solver_name(class_name: str, scheduler_config: Mapping) -> str:
    """A scheduler's class with its DPM-Solver algorithm, if any (ODE or SDE: the same weights sample
    differently), as the pipeline records it and ``synthscan info`` shows it."""
    algorithm = scheduler_config.get("algorithm_type")
    return class_name + (f" {algorithm}" if algorithm else "")


def body_start_limit(body_start: int, pixel_spacing_mm: float) -> int:
    """Lowest native row at which a sample's body may start: half a head below ``body_start``."""
    return body_start + round(HALF_HEAD_MM / pixel_spacing_mm)


@dataclass
class TransformConfig:
    """How counts become model inputs (see :mod:`synthscan.generator.transform`)."""

    # native pixels summed per model pixel along each axis (2: 1024x256 → 512x128)
    bin_factor: PositiveInt = 2
    # training studies run through the autoencoder to fit its rate calibration (the count each decoded
    # level stands for, synthscan.generator.calibration; docs/detector_map); 0: none
    calibration_studies: NonNegativeInt = 64
    # outermost model-image columns on each side calibrated each on its own (the decoder's border)
    calibration_edge_columns: NonNegativeInt = 8


@dataclass
class AutoencoderConfig:
    """diffusers ``AutoencoderKL`` on the square-root count image, trained with a Poisson likelihood."""

    # one down/up level each; 4 levels = 8x smaller
    block_out_channels: tuple[PositiveInt, ...] = (8, 16, 32, 64)
    layers_per_block: PositiveInt = 1  # ResNet blocks per level (the decoder adds one)
    latent_channels: PositiveInt = 8  # channels of the latent image
    norm_num_groups: PositiveInt = 8  # GroupNorm groups (must divide every channel count)
    kl_weight: NonNegativeFloat = (
        1.0e-6  # weight of the KL term (as in Stable Diffusion's VAE: a near-deterministic code)
    )
    # square-root-domain MSE beside the Poisson deviance (early-training gradients)
    mse_weight: NonNegativeFloat = 0.1
    steps: PositiveInt = 2500  # optimizer steps
    batch_size: PositiveInt = 8  # studies per step
    # train on random row windows of this height (model pixels); 0: whole studies
    crop_rows: NonNegativeInt = 128
    # share of crops flush with the top or bottom border, so the decoder learns the empty image edge
    # (uniform crops reach it 2 times in 385): benchmarks/generator_artefacts.py
    edge_crop_prob: Fraction = 0.0
    learning_rate: PositiveFloat = 1.0e-3  # AdamW peak learning rate, cosine decay after warm-up
    warmup_steps: NonNegativeInt = 200  # linear learning-rate warm-up
    # [low, high]: split each study's counts by binomial thinning, a share drawn from this range feeds
    # the encoder and the rest scores the decoder (Noise2Noise); null: score against the input itself
    split_range: tuple[Fraction, Fraction] | None = None
    # exponential moving average of the autoencoder's weights, saved instead of the last ones; null: none.
    # diffusers' EMAModel, as the UNet's: the decay at step s is min(ema_decay, (1 + s) / (10 + s)).
    # Two runs of cpu_default on the same studies gave reconstructions of relative L1 0.082 and 0.107,
    # the shipped autoencoder's 0.067 (docs/one_command)
    ema_decay: Fraction | None = None
    # the UNet's latent units: "global" divides by one scaling factor (the latents' overall deviation,
    # Stable Diffusion's); "channel" standardizes each channel (diffusers' latents_mean / latents_std),
    # so its offset does not shrink the others: in the one-command candidate 85 % of the overall
    # variance was between channel means (the shipped default's 72 %; docs/one_command)
    latent_scaling: Literal["global", "channel"] = "global"
    # the decoder's input gets Gaussian noise of an SD drawn per study from [0, latent_noise], in units of
    # the batch's overall latent deviation (the UNet's units under global scaling): a decoder trained on
    # clean codes turns a sampled latent's small errors into hot spots (docs/decoder_sensitivity,
    # docs/one_command), and a relative noise cannot be outgrown by the encoder enlarging its latents;
    # 0: clean codes
    latent_noise: NonNegativeFloat = 0.0
    # a trained generator (folder or shipped name) whose autoencoder is reused as it is, skipping this
    # stage, so UNet designs compare on one latent space; the fields above must match its architecture
    from_model: str | None = None


@dataclass
class UNetConfig:
    """diffusers ``UNet2DModel`` on the latents, conditioned by class embedding (condition or null)."""

    block_out_channels: tuple[PositiveInt, ...] = (32, 64, 128)  # channels per resolution level
    layers_per_block: PositiveInt = 2  # ResNet blocks per level
    attention_levels: tuple[bool, ...] = (False, False, True)  # self-attention at each level
    norm_num_groups: PositiveInt = 8  # GroupNorm groups (must divide every channel count)
    dropout: Annotated[float, Range(min=0, max=1)] = 0.0  # ResNet dropout
    # latent pixels per side folded into channels before the UNet (pixel unshuffle, DiT's patch size):
    # a 2x-down latent of C channels is diffused as 4C channels on the 4x grid, at a 4x latent's cost
    latent_patch: PositiveInt = 1


@dataclass
class DiffusionConfig:
    """Noise schedule and training of the latent diffusion network."""

    num_train_timesteps: PositiveInt = 1000  # DDPM steps of the forward process
    beta_schedule: str = "scaled_linear"  # Latent Diffusion's schedule (Rombach et al. 2022)
    beta_start: PositiveFloat = 0.00085  # Latent Diffusion's values
    beta_end: PositiveFloat = 0.012
    prediction_type: str = "v_prediction"  # "epsilon" or "v_prediction" (better-behaved at few sampler steps)
    # share of training examples given the null class (classifier-free guidance)
    cond_drop_prob: Fraction = 0.1
    steps: PositiveInt = 8000  # optimizer steps
    batch_size: PositiveInt = 16  # latents per step
    learning_rate: PositiveFloat = 1.0e-3  # AdamW peak learning rate, cosine decay after warm-up
    warmup_steps: NonNegativeInt = 300  # linear learning-rate warm-up
    ema_decay: Fraction = 0.999  # exponential moving average of the weights (the EMA weights are saved)
    # Min-SNR-γ loss weighting (Hang et al. 2023; diffusers' training scripts' snr_gamma): each
    # timestep's loss weighted by min(SNR, γ) / SNR (epsilon) or / (SNR + 1) (v_prediction), so the
    # nearly noise-free timesteps no longer dominate; null: the plain mean squared error
    snr_gamma: PositiveFloat | None = None
    # diffusers' SDXL training scripts' timestep bias, strategy "earlier": the least noisy
    # `low_noise_portion` of the training timesteps drawn `low_noise_multiplier` times as often as the
    # rest, where the sampler sets fine texture (docs/normal_hot_spots); 1: uniform timesteps
    low_noise_multiplier: PositiveFloat = 1.0
    low_noise_portion: Annotated[float, Range(min=0, max=1, min_open=True)] = 0.2


@dataclass
class ContinuationConfig:
    """A warm restart of the diffusion UNet's training after the main stage, in the same command.

    Exactly ``synthscan finetune`` of the main stage's model on the same studies, at
    ``diffusion.batch_size``: a fresh AdamW state, a short warm-up and a new cosine decay from a lower
    peak, finetune's EMA and logging defaults (docs/continued_training). The main stage's model stays
    in ``OUT/base-model``; the continued one is ``OUT/model``, or with ``soup_snr_gammas`` the average
    of the restarts ``OUT/restart-1``, ``OUT/restart-2``, … (:mod:`synthscan.generator.soup`).
    """

    steps: NonNegativeInt = 0  # optimizer steps (0: no continuation, OUT/model is the main stage's)
    learning_rate: PositiveFloat = 2.0e-4  # AdamW peak learning rate of the restart
    seed: NonNegativeInt = 1  # data order and noise of the restart (the main stage has its own)
    snr_gamma: PositiveFloat | None = None  # Min-SNR-γ weighting of the (first) restart (see DiffusionConfig)
    # a model soup (Wortsman et al. 2022; docs/min_snr): one more restart per Min-SNR-γ here (null: the
    # plain loss), otherwise the same as the first (same seed: one basin of the loss); OUT/model is then
    # the mean of all restarts' UNet and condition-encoder weights. Each restart costs `steps` of training
    soup_snr_gammas: tuple[PositiveFloat | None, ...] = ()


@dataclass
class SamplingConfig:
    """Sampler defaults stored in the pipeline (``synthscan sample`` flags override them)."""

    steps: PositiveInt = 10  # UniPC (Karras sigmas) steps: benchmarks/solver_accuracy.py
    guidance_scale: PositiveFloat = 2.0  # classifier-free guidance (1: conditional model alone, no guidance)
    # per-label guidance overriding guidance_scale: a label whose samples need a stronger push away
    # from the class mixture without strengthening the others (e.g. {normal: 3.5})
    label_guidance: dict[str, PositiveFloat] = field(default_factory=dict)
    # per metastatic burden of a study (1-3, 4-10, >10, superscan; asked for or drawn), overriding the
    # label's scale: heavy burdens need a stronger push to draw their many lesions, which would make
    # every metastasis more detectable if given to the label (e.g. {">10": 4.5})
    burden_guidance: dict[str, PositiveFloat] = field(default_factory=dict)
    # per Perugini grade (1-3, unquoted integer keys) of an amyloidosis study (asked for or drawn),
    # overriding the label's scale: a grade the model draws too faint for its class (e.g. {2: 3.0})
    # without exaggerating the others
    grade_guidance: dict[int, PositiveFloat] = field(default_factory=dict)
    # [start, stop): share of the solver steps that are guided (diffusers guiders' start/stop); the others
    # run the conditional model alone, one network call instead of two (Kynkäänniemi et al. 2024)
    guidance_interval: tuple[Fraction, Fraction] = GUIDED_EVERY_STEP
    # per-label interval overriding guidance_interval: a label whose early steps should be left to the
    # conditional model (e.g. {normal: [0.4, 1.0]}: the tracer's soft tissue is set there)
    label_guidance_interval: dict[str, tuple[Fraction, Fraction]] = field(default_factory=dict)
    # per label: its studies end on the network's denoised estimate of the first solver step at or below
    # this noise level (sigma) instead of the solver's final latent, skipping what the last, least noisy
    # steps draw (e.g. {normal: 0.25}: the normals' false hot spots, docs/normal_hot_spots)
    label_final_sigma: dict[str, PositiveFloat] = field(default_factory=dict)
    # per metastatic burden (asked for or drawn), overriding the label's final sigma: a burden the model
    # draws too heavy ends before the last steps add lesions (e.g. {"1-3": 0.25}, docs/burden_requests)
    burden_final_sigma: dict[str, PositiveFloat] = field(default_factory=dict)
    # networks always see this many samples at once, so output is batch-size independent
    eval_chunk: PositiveInt = 8


@dataclass
class GeneratorConfig:
    """Everything ``synthscan train`` needs besides the dataset."""

    transform: TransformConfig = field(default_factory=TransformConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    continuation: ContinuationConfig = field(default_factory=ContinuationConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    seed: NonNegativeInt = 0  # seeds initialisation, data order, crops and noise
    sources: tuple[str, ...] = PATIENT_SOURCES  # manifest sources trained on (never synthetic)
    checkpoint_every: PositiveInt = 500  # steps between resumable checkpoints
    sample_every: NonNegativeInt = 2000  # steps between sample grids (0: only at the end)
    log_every: PositiveInt = 50  # steps between metrics.jsonl lines

    def __post_init__(self) -> None:
        if self.transform.bin_factor < 1:
            raise ConfigError(f"transform.bin_factor must be >= 1, got {self.transform.bin_factor}")
        if self.diffusion.prediction_type not in ("epsilon", "v_prediction"):
            raise ConfigError(
                f"diffusion.prediction_type is {self.diffusion.prediction_type!r}; "
                "valid values: epsilon, v_prediction"
            )
        if len(self.unet.attention_levels) != len(self.unet.block_out_channels):
            raise ConfigError("unet.attention_levels needs one entry per unet.block_out_channels level")
        for name, groups, channels in (
            ("autoencoder", self.autoencoder.norm_num_groups, self.autoencoder.block_out_channels),
            ("unet", self.unet.norm_num_groups, self.unet.block_out_channels),
        ):
            if any(c % groups for c in channels):
                raise ConfigError(
                    f"{name}.norm_num_groups={groups} must divide every channel count {channels}"
                )
        for name in ("label_guidance", "label_guidance_interval", "label_final_sigma"):
            unknown = sorted(set(getattr(self.sampling, name)) - set(LABELS))
            if unknown:
                raise ConfigError(
                    f"sampling.{name} has unknown labels {unknown}; valid labels: {list(LABELS)}"
                )
        for name in ("burden_guidance", "burden_final_sigma"):
            unknown = sorted(set(getattr(self.sampling, name)) - set(METASTATIC_BURDENS))
            if unknown:
                raise ConfigError(
                    f"sampling.{name} has unknown burdens {unknown}; "
                    f"valid burdens: {list(METASTATIC_BURDENS)}"
                )
        unknown = sorted(set(self.sampling.grade_guidance) - set(AMYLOIDOSIS_GRADES))
        if unknown:
            raise ConfigError(
                f"sampling.grade_guidance has unknown Perugini grades {unknown}; "
                f"valid grades: {list(AMYLOIDOSIS_GRADES)}"
            )
        intervals = {"sampling.guidance_interval": self.sampling.guidance_interval}
        for label, span in self.sampling.label_guidance_interval.items():
            intervals[f"sampling.label_guidance_interval.{label}"] = span
        for name, (start, stop) in intervals.items():
            if not start < stop:
                raise ConfigError(f"{name} must be [start, stop] with start < stop, got {[start, stop]}")
        split = self.autoencoder.split_range
        if split is not None and not 0 < split[0] <= split[1] < 1:
            raise ConfigError(
                f"autoencoder.split_range must be [low, high] with 0 < low <= high < 1, got {list(split)}"
            )
        if not 0 <= self.diffusion.cond_drop_prob < 1:
            raise ConfigError(
                f"diffusion.cond_drop_prob must lie in [0, 1), got {self.diffusion.cond_drop_prob}"
            )
        restarts = [self.continuation.snr_gamma, *self.continuation.soup_snr_gammas]
        if self.continuation.soup_snr_gammas and not self.continuation.steps:
            raise ConfigError(
                "continuation.soup_snr_gammas needs continuation.steps > 0 (the steps of every restart)"
            )
        if len(set(restarts)) < len(restarts):
            raise ConfigError(
                f"continuation restarts must differ in their Min-SNR-γ (snr_gamma and soup_snr_gammas), "
                f"got {restarts}: two alike would train the same weights twice"
            )

    @property
    def downsampling(self) -> int:
        """Native pixels per latent pixel along each axis."""
        return self.transform.bin_factor * 2 ** (len(self.autoencoder.block_out_channels) - 1)


@dataclass
class DistillConfig:
    """Distillation of a trained generator into a faster student (``synthscan distill``)."""

    # "consistency": latent consistency distillation, a few LCM steps of one UNet row; "guidance":
    # the teacher's guided output in one row (Meng et al. 2023, stage one), sampled with the teacher's
    # own solver and steps; a guidance student can then be distilled with "consistency"
    objective: Literal["consistency", "guidance"] = "consistency"
    steps: PositiveInt = 4000  # optimizer steps
    batch_size: PositiveInt = 16  # latents per step
    learning_rate: PositiveFloat = 1.0e-4  # AdamW peak learning rate, cosine decay after warm-up
    warmup_steps: NonNegativeInt = 100  # linear learning-rate warm-up
    # consistency: teacher steps of the distillation grid (LCM's N = 50: one teacher DDIM step spans
    # 1000/N timesteps); the student's LCMScheduler samples on the same grid
    ddim_timesteps: PositiveInt = 50
    target_ema_decay: Fraction = 0.95  # consistency: EMA of the target network (Luo et al. 2023)
    huber_c: PositiveFloat = 0.001  # consistency: pseudo-Huber loss constant (Luo et al. 2023)
    sampling_steps: PositiveInt = 4  # consistency: the student's default LCM steps, one UNet call each
    # draw every condition combination (label and grade, tracer, burden) equally often instead of in
    # the data's proportions, so rare ones (heavy metastatic burdens) get as many updates as normals
    balance_conditions: bool = False
    # guidance objective only: learn the conditional output where the teacher's guidance interval
    # leaves its solver step unguided (docs/interval_distillation); false learns it guided at every
    # step, as the shipped `fast` was distilled (a consistency student always learns it guided)
    keep_guidance_interval: bool = True
    seed: NonNegativeInt = 0  # seeds the data order, noise and timesteps of every step
    checkpoint_every: PositiveInt = 500  # steps between resumable checkpoints
    sample_every: NonNegativeInt = 1000  # steps between the student's sample grids (0: only at the end)
    # also save the student at every sample grid before the last step as a loadable model
    # (out/snapshots/step-N): a consistency student can get worse with more steps, so keep them to
    # measure and choose (docs/distillation); the last step's student is out/model
    snapshots: bool = False
    log_every: PositiveInt = 50  # steps between metrics.jsonl lines

    def __post_init__(self) -> None:
        if self.objective == "consistency" and self.sampling_steps > self.ddim_timesteps:
            raise ConfigError(
                f"sampling_steps ({self.sampling_steps}) cannot exceed ddim_timesteps ({self.ddim_timesteps})"
            )
        if self.snapshots and not self.sample_every:
            raise ConfigError("snapshots are taken at every sample grid: set sample_every (e.g. 500) as well")

"""Configuration of the two-view bone-scan classifier: one dataclass per concern (YAML in configs/)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from synthscan.config import Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Range

TASKS: tuple[str, ...] = ("metastasis", "amyloidosis")
"""The two binary outputs, in logit order: metastasis (label), amyloidosis (Perugini grade ≥ 2)."""

POSITIVE_PERUGINI_GRADE = 2
"""Perugini grade from which cardiac uptake counts as scan-positive for ATTR amyloidosis."""

MIXES: tuple[str, ...] = ("balanced", "matched")
"""Condition mixes of synthetic training studies (see :mod:`synthscan.classifier.synthetic`)."""


@dataclass
class NetworkConfig:
    """Backbone from MONAI (trained from scratch) and the two-logit head."""

    architecture: str = "resnet"  # "resnet" (MONAI ResNet, basic blocks) or "densenet" (MONAI DenseNet)
    resnet_layers: tuple[PositiveInt, ...] = (1, 1, 1, 1)  # residual blocks per stage
    # channels per stage (the last is the feature size)
    resnet_channels: tuple[PositiveInt, ...] = (16, 32, 64, 128)
    stem_stride: PositiveInt = 2  # stride of the 7x7 stem convolution
    max_pool: bool = True  # 3x3 max pooling after the stem (keeps focal hot spots while halving the grid)
    channels_last: bool = False  # NHWC memory format (see configs/classifier/default.yaml)
    densenet_init_features: PositiveInt = 64  # DenseNet stem channels (DenseNet121: 64)
    densenet_growth_rate: PositiveInt = 32  # DenseNet growth rate (DenseNet121: 32)
    # layers per dense block (DenseNet121: 6,12,24,16)
    densenet_blocks: tuple[PositiveInt, ...] = (6, 12, 24, 16)
    dropout: Fraction = 0.2  # dropout on the penultimate features during training


@dataclass
class PreprocessConfig:
    """Count-aware preprocessing applied to every study (training and inference alike)."""

    # working grid (rows, columns); counts are summed into it
    input_size: tuple[PositiveInt, PositiveInt] = (256, 64)
    stabilise: str = "anscombe"  # variance-stabilising transform of counts: "anscombe", "sqrt" or "none"
    # per-study scale: this percentile of both views maps to 1
    normalise_percentile: Annotated[float, Range(min=0, max=100)] = 99.0


@dataclass
class AugmentConfig:
    """Random training-time changes that mimic other scanners, count levels and positioning."""

    enabled: bool = True  # switch every augmentation off at once
    thinning_prob: Fraction = 0.5  # chance of binomial count thinning (a lower-count acquisition)
    thinning_min_fraction: Fraction = 0.2  # thinning keeps a uniform fraction in [this, 1] of the counts
    affine_prob: Fraction = 0.5  # chance of a small rotation / scaling / shift
    rotate_deg: NonNegativeFloat = 3.0  # maximum in-plane rotation (degrees)
    scale: NonNegativeFloat = 0.05  # maximum relative zoom
    # maximum shift in working-grid pixels (rows, columns)
    translate_px: tuple[NonNegativeInt, NonNegativeInt] = (8, 2)
    blur_prob: Fraction = 0.3  # chance of Gaussian blur (a coarser collimator / larger distance)
    # blur sigma range in working-grid pixels
    blur_sigma: tuple[NonNegativeFloat, NonNegativeFloat] = (0.3, 1.0)
    intensity_prob: Fraction = 0.5  # chance of a global intensity scaling after normalisation
    intensity_scale: Fraction = 0.1  # intensity factor drawn from [1 - this, 1 + this]


@dataclass
class TrainConfig:
    """Optimisation, sampling and model selection."""

    seed: NonNegativeInt = 0  # seed of the initial weights, the sampler, dropout and the augmentations
    batch_size: PositiveInt = 16  # studies per optimizer step
    learning_rate: PositiveFloat = 1e-3  # AdamW peak learning rate
    warmup_steps: NonNegativeInt = 50  # linear warm-up, then cosine decay to zero at max_steps
    weight_decay: NonNegativeFloat = 1e-4  # AdamW weight decay
    max_steps: PositiveInt = 800  # optimizer-step budget (the same for every arm of a comparison)
    eval_every: PositiveInt = 100  # validation interval in steps
    patience: NonNegativeInt = 5  # stop after this many validations without improvement (0: never stop early)
    balance: str = "label"  # sampling: "label" draws normal/metastasis/amyloidosis equally often, "none"
    split_seed: NonNegativeInt = 0  # seed of the patient-level split (splits.json is created once and reused)
    # train, val, test share of patients
    split_fractions: tuple[Fraction, Fraction, Fraction] = (0.7, 0.15, 0.15)
    predict_batch_size: PositiveInt = 64  # studies per forward pass at validation and prediction
    # augmenting processes beside the training one (0: in it); results depend on it
    workers: NonNegativeInt = 1
    # torch threads for training and prediction (0: torch's default, one per core)
    threads: NonNegativeInt = 1
    device: str = "auto"  # "auto" (CUDA when available), "cpu" or "cuda"


@dataclass
class ClassifierConfig:
    """Everything needed to rebuild, train and apply the classifier (stored in the model's config.json)."""

    network: NetworkConfig = field(default_factory=NetworkConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        choices = {
            "network.architecture": (self.network.architecture, ("resnet", "densenet")),
            "preprocess.stabilise": (self.preprocess.stabilise, ("anscombe", "sqrt", "none")),
            "train.balance": (self.train.balance, ("label", "none")),
            "train.device": (self.train.device, ("auto", "cpu", "cuda")),
        }
        for name, (value, valid) in choices.items():
            if value not in valid:
                raise ValueError(f"{name} is {value!r}; valid values: {', '.join(valid)}")

    @property
    def split_fractions(self) -> dict[str, float]:
        return dict(zip(("train", "val", "test"), self.train.split_fractions, strict=True))

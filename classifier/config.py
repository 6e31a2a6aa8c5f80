"""Configuration of the two-view bone-scan classifier: one dataclass per concern (YAML in configs/)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    resnet_layers: tuple[int, ...] = (1, 1, 1, 1)  # residual blocks per stage
    resnet_channels: tuple[int, ...] = (16, 32, 64, 128)  # channels per stage (the last is the feature size)
    stem_stride: int = 2  # stride of the 7x7 stem convolution
    max_pool: bool = True  # 3x3 max pooling after the stem (keeps focal hot spots while halving the grid)
    channels_last: bool = False  # NHWC memory format (see configs/classifier/default.yaml)
    densenet_init_features: int = 64  # DenseNet stem channels (DenseNet121: 64)
    densenet_growth_rate: int = 32  # DenseNet growth rate (DenseNet121: 32)
    densenet_blocks: tuple[int, ...] = (6, 12, 24, 16)  # layers per dense block (DenseNet121: 6,12,24,16)
    dropout: float = 0.2  # dropout on the penultimate features during training


@dataclass
class PreprocessConfig:
    """Count-aware preprocessing applied to every study (training and inference alike)."""

    input_size: tuple[int, int] = (256, 64)  # working grid (rows, columns); counts are summed into it
    stabilise: str = "anscombe"  # variance-stabilising transform of counts: "anscombe", "sqrt" or "none"
    normalise_percentile: float = 99.0  # per-study scale: this percentile of both views maps to 1


@dataclass
class AugmentConfig:
    """Random training-time changes that mimic other scanners, count levels and positioning."""

    enabled: bool = True  # switch every augmentation off at once
    thinning_prob: float = 0.5  # chance of binomial count thinning (a lower-count acquisition)
    thinning_min_fraction: float = 0.2  # thinning keeps a uniform fraction in [this, 1] of the counts
    affine_prob: float = 0.5  # chance of a small rotation / scaling / shift
    rotate_deg: float = 3.0  # maximum in-plane rotation (degrees)
    scale: float = 0.05  # maximum relative zoom
    translate_px: tuple[int, int] = (8, 2)  # maximum shift in working-grid pixels (rows, columns)
    blur_prob: float = 0.3  # chance of Gaussian blur (a coarser collimator / larger distance)
    blur_sigma: tuple[float, float] = (0.3, 1.0)  # blur sigma range in working-grid pixels
    intensity_prob: float = 0.5  # chance of a global intensity scaling after normalisation
    intensity_scale: float = 0.1  # intensity factor drawn from [1 - this, 1 + this]


@dataclass
class TrainConfig:
    """Optimisation, sampling and model selection."""

    seed: int = 0  # seed of the initial weights, the sampler, dropout and the augmentations
    batch_size: int = 16  # studies per optimizer step
    learning_rate: float = 1e-3  # AdamW peak learning rate
    warmup_steps: int = 50  # linear warm-up, then cosine decay to zero at max_steps
    weight_decay: float = 1e-4  # AdamW weight decay
    max_steps: int = 800  # optimizer-step budget (the same for every arm of a comparison)
    eval_every: int = 100  # validation interval in steps
    patience: int = 5  # stop after this many validations without improvement (0: never stop early)
    balance: str = "label"  # sampling: "label" draws normal/metastasis/amyloidosis equally often, "none"
    split_seed: int = 0  # seed of the patient-level split (splits.json is created once and reused)
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train, val, test share of patients
    predict_batch_size: int = 64  # studies per forward pass at validation and prediction
    workers: int = 1  # augmenting processes beside the training one (0: in it); results depend on it
    threads: int = 1  # torch threads for training and prediction (0: torch's default, one per core)
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
        if len(self.train.split_fractions) != 3:
            raise ValueError("train.split_fractions needs three shares: train, val, test")
        positive = {
            "train.batch_size": self.train.batch_size,
            "train.max_steps": self.train.max_steps,
            "train.eval_every": self.train.eval_every,
            "train.predict_batch_size": self.train.predict_batch_size,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        for name in ("workers", "threads"):
            if getattr(self.train, name) < 0:
                raise ValueError(f"train.{name} must be 0 or more, got {getattr(self.train, name)}")

    @property
    def split_fractions(self) -> dict[str, float]:
        return dict(zip(("train", "val", "test"), self.train.split_fractions, strict=True))

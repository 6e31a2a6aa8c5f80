"""The two-view network: a MONAI backbone (trained from scratch) with one logit per task.

Both views enter as the two input channels (posterior mirrored by :func:`bin_counts`, so channel 0 and
channel 1 show the same anatomy at the same pixel). The backbone ends in global average pooling; its
output is the penultimate feature vector that the fidelity metrics, the privacy audit and the machine
reader use, and a dropout + linear head turns it into the :data:`TASKS` logits.

A trained model is a folder of ``config.json`` (the :class:`ClassifierConfig`, the task names, the
validation-chosen thresholds and the training matrix) and ``model.safetensors`` (weights): no pickles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from monai.networks.nets import DenseNet, ResNet
from safetensors.torch import load_file, save
from torch import nn

from synthscan.atomic import atomic_write_bytes, atomic_write_text
from synthscan.classifier.config import TASKS, ClassifierConfig, NetworkConfig
from synthscan.config import ConfigError, from_dict, to_dict

MODEL_CONFIG = "config.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1


class TwoViewNet(nn.Module):
    """MONAI ResNet or DenseNet over the two views as channels; ``features`` gives the penultimate layer."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        if config.architecture == "resnet":
            if len(config.resnet_layers) != 4 or len(config.resnet_channels) != 4:
                raise ConfigError("network.resnet_layers and network.resnet_channels need four stages each")
            self.backbone: nn.Module = ResNet(
                block="basic",
                layers=list(config.resnet_layers),
                block_inplanes=list(config.resnet_channels),
                spatial_dims=2,
                n_input_channels=2,
                conv1_t_size=7,
                conv1_t_stride=config.stem_stride,
                no_max_pool=not config.max_pool,
                feed_forward=False,
            )
            self.feature_size = config.resnet_channels[-1]
        else:
            densenet = DenseNet(
                spatial_dims=2,
                in_channels=2,
                out_channels=len(TASKS),
                init_features=config.densenet_init_features,
                growth_rate=config.densenet_growth_rate,
                block_config=tuple(config.densenet_blocks),
            )
            self.feature_size = densenet.class_layers.out.in_features
            densenet.class_layers.out = nn.Identity()
            self.backbone = densenet
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.feature_size, len(TASKS))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(B, feature_size)`` of normalised inputs ``(B, 2, rows, columns)``."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def build_network(config: NetworkConfig, *, seed: int) -> TwoViewNet:
    """A freshly initialised network; the same seed gives the same initial weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TwoViewNet(config)
    if config.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


@dataclass
class ModelInfo:
    """Everything in a model folder's ``config.json`` besides the weights."""

    config: ClassifierConfig
    thresholds: dict[str, float]  # per task: validation-chosen (Youden) threshold on the probability
    matrix: tuple[int, int]  # acquisition matrix of the training data (rows, columns per view)
    tasks: tuple[str, ...] = TASKS
    training: dict[str, Any] = field(default_factory=dict)  # best step, validation metrics, data sizes

    def to_json(self) -> str:
        data = {
            "format_version": FORMAT_VERSION,
            "tasks": list(self.tasks),
            "thresholds": self.thresholds,
            "matrix": list(self.matrix),
            "classifier": to_dict(self.config),
            "training": self.training,
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> ModelInfo:
        data = json.loads(text)
        if data.get("format_version") != FORMAT_VERSION or tuple(data.get("tasks", ())) != TASKS:
            raise ConfigError(
                f"{where} is a classifier of format {data.get('format_version')} with tasks "
                f"{data.get('tasks')}; this synthscan reads format {FORMAT_VERSION} with tasks {list(TASKS)}"
            )
        return cls(
            config=from_dict(ClassifierConfig, data["classifier"], where=where),
            thresholds={task: float(data["thresholds"][task]) for task in TASKS},
            matrix=tuple(int(v) for v in data["matrix"]),
            training=dict(data.get("training", {})),
        )


def is_model_dir(path: str | Path) -> bool:
    """True when ``path`` holds a complete saved classifier (``config.json`` is written last)."""
    path = Path(path)
    return (path / MODEL_CONFIG).is_file() and (path / WEIGHTS).is_file()


def save_model(net: TwoViewNet, info: ModelInfo, out: str | Path) -> None:
    """Write weights, then ``config.json``, each atomically (a folder with a config is complete)."""
    out = Path(out)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write_bytes(out / WEIGHTS, save(state, metadata={"format": "pt"}))
    atomic_write_text(out / MODEL_CONFIG, info.to_json())


def load_model(path: str | Path) -> tuple[TwoViewNet, ModelInfo]:
    """Rebuild the network from ``config.json`` and load its weights (in eval mode, on the CPU)."""
    path = Path(path)
    if not is_model_dir(path):
        raise FileNotFoundError(
            f"{path} holds no trained classifier ({MODEL_CONFIG} + {WEIGHTS}); "
            "train one with `synthscan classifier train`"
        )
    info = ModelInfo.from_json((path / MODEL_CONFIG).read_text(encoding="utf-8"), str(path / MODEL_CONFIG))
    net = TwoViewNet(info.config.network)
    net.load_state_dict(load_file(path / WEIGHTS))
    if info.config.network.channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net.eval(), info

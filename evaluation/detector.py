"""An image-space real-vs-synthetic detector: a small CNN on the count images, cross-validated by patient.

The feature-space two-sample test of :mod:`synthscan.evaluation.fidelity` sees only what a diagnosis
classifier's features keep; fine bone structure, noise texture and border artefacts can be lost
there. This detector looks at the images themselves, as a reader does: it is trained from scratch
(no downloaded weights) to tell real from synthetic studies, and its out-of-fold AUC with a DeLong
95 % CI says how separable they are (0.5: indistinguishable).

Inputs: the posterior view is mirrored, counts are summed over ``bin_factor`` x ``bin_factor``
blocks (still Poisson), Anscombe-transformed (``2 sqrt(c + 3/8)``, unit noise variance) and divided
by the study's mean, so the detector sees structure and noise texture but not the count level
(total counts are compared separately, in the fidelity report's count statistics). Folds are
patient-disjoint (``StratifiedGroupKFold``): a patient's studies never sit on both sides of a split.

Where it looks: the logit is a linear layer on globally averaged features, so it is exactly the mean
of a per-location logit map (a class activation map, Zhou et al. 2016). The out-of-fold maps of the
synthetic studies minus those of the real ones say where the tell lies (``where`` of the result): the
regions to fix, which a single AUC cannot say.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import StratifiedGroupKFold
from torch import nn

from synthscan.dataset import Dataset, Record
from synthscan.evaluation.stats import auc_ci, joint_strata, stratified_auc
from synthscan.generator.conditions import condition_keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorConfig:
    """Size and training of the detector (defaults: about a minute for 2 x 200 studies on 2 CPU cores)."""

    bin_factor: int = 2  # native pixels summed per input pixel along each axis
    channels: tuple[int, ...] = (8, 16, 32, 64)  # one stride-2 convolution per entry
    epochs: int = 12  # passes over each fold's training studies
    batch_size: int = 16
    learning_rate: float = 2e-3  # AdamW
    folds: int = 5  # patient-disjoint cross-validation folds
    seed: int = 0  # folds, initialisation and batch order
    # whole cross-validations with fresh folds and initialisations (seeds seed, seed + 1000, …), their
    # out-of-fold logits averaged: a steadier, stronger detector than one training, and the spread of the
    # AUC over the detector's own training, which the DeLong interval of one run does not carry
    repeats: int = 1


def binned_views(counts: np.ndarray, bin_factor: int) -> np.ndarray:
    """(B, 2, H, W) counts → (B, 2, H/f, W/f) float32 counts summed over f × f blocks, the posterior
    view mirrored into the anterior's orientation."""
    c = np.asarray(counts, dtype=np.float32)
    c = np.stack([c[:, 0], c[:, 1, :, ::-1]], axis=1)
    b, _, h, w = c.shape
    f = bin_factor
    return c.reshape(b, 2, h // f, f, w // f, f).sum(axis=(3, 5))


def detector_inputs(counts: np.ndarray, bin_factor: int) -> np.ndarray:
    """(B, 2, H, W) counts → (B, 2, H/f, W/f) float32 network inputs (see the module docstring)."""
    x = 2.0 * np.sqrt(binned_views(counts, bin_factor) + 0.375)
    return (x / x.mean(axis=(1, 2, 3), keepdims=True)).astype(np.float32)


def build_detector(channels: Sequence[int]) -> nn.Sequential:
    """Stride-2 convolutions, global average pooling and one logit: small enough to train on a CPU."""
    layers: list[nn.Module] = []
    previous = 2
    for width in channels:
        layers += [
            nn.Conv2d(previous, width, 3, stride=2, padding=1),
            nn.GroupNorm(min(8, width), width),
            nn.SiLU(),
        ]
        previous = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(previous, 1))


def logit_maps(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """(B, h, w) per-location logits of a :func:`build_detector` network; their mean is its logit."""
    features = model[:-3](x)  # before pooling, flattening and the linear layer
    linear = model[-1]
    return torch.einsum("bchw,c->bhw", features, linear.weight[0]) + linear.bias[0]


def _fit_predict(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, config: DetectorConfig, seed: int
) -> np.ndarray:
    """Train one detector on a fold's training studies; its logit maps of the held-out studies."""
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    model = build_detector(config.channels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train.astype(np.float32))
    # balanced loss: the two sides may differ in size
    pos_weight = torch.tensor(float(len(y_train) - y_train.sum()) / max(float(y_train.sum()), 1.0))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    model.train()
    for _ in range(config.epochs):
        order = generator.permutation(len(xt))
        for start in range(0, len(order), config.batch_size):
            rows = torch.from_numpy(order[start : start + config.batch_size])
            loss = loss_fn(model(xt[rows]).squeeze(1), yt[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        return torch.cat(
            [logit_maps(model, torch.from_numpy(x_test[i : i + 64])) for i in range(0, len(x_test), 64)]
        ).numpy()


def detector_auc(
    real: np.ndarray,
    synthetic: np.ndarray,
    real_groups: Sequence[str],
    synthetic_groups: Sequence[str],
    config: DetectorConfig | None = None,
    conditions: tuple[Sequence[str], Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Out-of-fold AUC (DeLong 95 % CI) of the detector telling ``synthetic`` from ``real`` counts.

    ``*_groups`` are patient ids: studies of one patient stay in one fold. With ``config.repeats`` > 1
    the AUC and its interval are those of the repeats' averaged out-of-fold logits (every study is still
    scored only by detectors that did not see it), and ``repeats`` holds each repeat's own AUC, their
    mean and standard deviation. ``fold_auc`` holds, per repeat, each fold's AUC on its own test
    studies: a tell that only some folds' detectors find shows as folds near 1 beside folds near 0.5.
    ``where`` holds the mean out-of-fold logit map of the synthetic studies minus the real ones'
    (``difference``, rows top to bottom, anterior orientation, each cell ``cell_pixels`` native pixels
    square; positive: looks synthetic there), the real studies' mean input on the same grid
    (``real_mean``, both views averaged: where the body is), and ``row_profile``, the difference summed
    over columns. With ``conditions`` (the real studies', the synthetic ones'), ``within_condition``
    holds the same scores' AUC over pairs of one condition only (and, repeated, each repeat's): the
    pooled AUC also counts a condition mix that differs between the sets.
    """
    config = config or DetectorConfig()
    if config.repeats < 1:
        raise ValueError(f"the image detector needs repeats >= 1, got {config.repeats}")
    x = detector_inputs(np.concatenate([real, synthetic]), config.bin_factor)
    y = np.r_[np.zeros(len(real), int), np.ones(len(synthetic), int)]
    groups = np.asarray([f"real:{g}" for g in real_groups] + [f"synthetic:{g}" for g in synthetic_groups])
    folds = min(config.folds, len(real), len(synthetic))
    if folds < 2:
        raise ValueError("the image detector needs at least two real and two synthetic studies")
    runs = [
        out_of_fold_maps(x, y, groups, folds, config, config.seed + 1000 * r) for r in range(config.repeats)
    ]
    maps = np.mean([m for m, _ in runs], axis=0)  # each study's maps averaged over the repeats
    scores = [m.mean(axis=(1, 2)) for m, _ in runs]
    result = auc_ci(y, np.mean(scores, axis=0))
    difference = maps[y == 1].mean(axis=0) - maps[y == 0].mean(axis=0)
    cell = config.bin_factor * 2 ** len(config.channels)
    cells = torch.from_numpy(x[y == 0].mean(axis=(0, 1))[None, None])
    real_mean = nn.functional.adaptive_avg_pool2d(cells, difference.shape)[0, 0].numpy()
    out = {
        "auc": result.auc,
        "ci95": [result.lower, result.upper],
        "n_real": len(real),
        "n_synthetic": len(synthetic),
        "folds": folds,
        "bin_factor": config.bin_factor,
        "epochs": config.epochs,
        "fold_auc": [
            [_fold_auc(y[fold == k], s[fold == k]) for k in range(folds)]
            for s, (_, fold) in zip(scores, runs, strict=True)
        ],
        "where": {
            "cell_pixels": cell,
            "image_rows": int(real.shape[-2]),
            "difference": np.round(difference, 4).tolist(),
            "real_mean": np.round(real_mean, 4).tolist(),
            "row_profile": np.round(difference.sum(axis=1), 4).tolist(),
        },
    }
    strata = None if conditions is None else joint_strata(*conditions)
    if strata is not None:
        within = stratified_auc(y, np.mean(scores, axis=0), strata)
        out["within_condition"] = {
            "auc": within.auc,
            "ci95": [within.lower, within.upper],
            "n_real": within.n_negative,
            "n_synthetic": within.n_positive,
        }
        if config.repeats > 1:
            out["within_condition"]["repeats"] = [stratified_auc(y, s, strata).auc for s in scores]
    if config.repeats > 1:
        aucs = [auc_ci(y, s).auc for s in scores]
        out["repeats"] = {
            "seeds": [config.seed + 1000 * r for r in range(config.repeats)],
            "auc": aucs,
            "mean": float(np.mean(aucs)),
            "sd": float(np.std(aucs, ddof=1)),
        }
    return out


def within_condition_text(result: dict[str, Any]) -> str:
    """A sentence, leading space included, on the detector's AUC over pairs of one condition only."""
    within = result.get("within_condition")
    if not within:
        return ""
    lo, hi = within["ci95"]
    return (
        f" Within conditions (only real and synthetic studies of one condition compared; "
        f"{within['n_real']} real and {within['n_synthetic']} synthetic studies have a counterpart of "
        f"their condition): {within['auc']:.3f} [{lo:.3f}, {hi:.3f}]."
    )


def repeats_text(result: dict[str, Any]) -> str:
    """Sentences, leading space included, on a repeated detector (ensemble AUC, single trainings' spread)
    and on its folds' own AUCs."""
    text = ""
    if "repeats" in result:
        r = result["repeats"]
        values = ", ".join(f"{a:.3f}" for a in r["auc"])
        text = (
            f" AUC of {len(r['auc'])} trainings' averaged out-of-fold scores (fresh folds and seeds); single "
            f"trainings {r['mean']:.3f} ± {r['sd']:.3f} (mean ± SD; each: {values})."
        )
    folds = [a for run in result.get("fold_auc", []) for a in run if a is not None]
    if folds:
        text += (
            f" The {len(folds)} fold detectors' AUCs on their own test studies: {min(folds):.2f}-"
            f"{max(folds):.2f}, {sum(a >= 0.9 for a in folds)} of them ≥ 0.90."
        )
    return text


def where_text(result: dict[str, Any]) -> str:
    """A sentence, leading space included, on where the detector's tell lies: the fewest adjacent rows
    of its map that hold half of the positive (looks-synthetic) difference."""
    where = result.get("where")
    if not where:
        return ""
    profile = np.clip(np.asarray(where["row_profile"]), 0, None)
    if profile.sum() <= 0:
        return " Its maps find no region where the synthetic studies look more synthetic than the real ones."
    sums = np.cumsum(np.r_[0.0, profile])
    half = profile.sum() / 2
    first, last = min(
        (
            (a, b)
            for a in range(len(profile))
            for b in range(a, len(profile))
            if sums[b + 1] - sums[a] >= half
        ),
        key=lambda ab: (ab[1] - ab[0], -(sums[ab[1] + 1] - sums[ab[0]])),
    )
    cell = where["cell_pixels"]
    end = min((last + 1) * cell, where["image_rows"]) - 1  # the last band may reach past the image
    return (
        f" Where it looks (out-of-fold logit maps, synthetic minus real, `image_detector_map.png`): half of"
        f" the looks-synthetic difference lies in rows {first * cell}-{end}"
        f" ({last - first + 1} of {len(profile)} row bands of {cell} pixels)."
    )


def out_of_fold_maps(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, config: DetectorConfig, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """One patient-disjoint cross-validation: every study scored by the detector that did not see it.

    Returns the studies' logit maps (their means are the scores) and each study's fold.
    """
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    maps, fold_of = None, np.empty(len(y), int)
    for fold, (train, test) in enumerate(splitter.split(x, y, groups)):
        fold_maps = _fit_predict(x[train], y[train], x[test], config, seed + fold)
        if maps is None:
            maps = np.empty((len(y), *fold_maps.shape[1:]), np.float32)
        maps[test] = fold_maps
        fold_of[test] = fold
    return maps, fold_of


def _fold_auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    """AUC of one fold's test studies; ``None`` for a fold holding one side only (tiny data)."""
    return auc_ci(y, scores).auc if 0 < y.sum() < len(y) else None


def dataset_detector_auc(
    real: Dataset,
    real_records: Sequence[Record],
    synthetic: Dataset,
    synthetic_records: Sequence[Record],
    config: DetectorConfig | None = None,
) -> dict[str, Any]:
    """:func:`detector_auc` of two datasets' studies (read into memory once)."""

    def load(dataset: Dataset, records: Sequence[Record]) -> np.ndarray:
        return np.stack([s.counts for s in dataset.iter_studies(records)])

    log.info("image detector on %d real and %d synthetic studies", len(real_records), len(synthetic_records))
    return detector_auc(
        load(real, real_records),
        load(synthetic, synthetic_records),
        [r.patient_id for r in real_records],
        [r.patient_id for r in synthetic_records],
        config,
        conditions=(condition_keys(real_records), condition_keys(synthetic_records)),
    )

"""A hot-lesion detector trained on the simulator's ground truth: which lesions a study shows, and how many.

The diagnosis classifier reads a whole study and responds to global changes (the balance between the
views, the count texture) as well as to lesions; on a generator trained on the rebuilt simulator it
read even the autoencoder's reconstructions of metastatic studies as normal, so it cannot say whether
a synthetic metastasis study shows lesions, nor as many as its burden condition asked for. Simulated
studies record every lesion's pixel and diameter, so a detector can be trained on them and checked
against them; the mimics a reader must not call (degenerative joints, fractures, injection sites,
urine contamination) are in the studies but not in the targets, so it learns to leave them unmarked:

- the network (a small MONAI ``BasicUNet``) marks the pixels of hot lesions on the two views stacked
  as channels (posterior mirrored, counts summed over ``bin_factor`` blocks, Anscombe-transformed and
  divided by the study's mean, as the image detector sees them);
- a study's lesions are the connected regions of marked pixels; their number gives its burden class
  (none, 1-3, 4-10, >10 lesions, as the generator's burden conditions);
- on held-out simulated studies it reports the share of true lesions found, the marks per normal study
  and the burden accuracy: the ceiling a perfect generator could reach, beside the same shares on
  synthetic studies. A study's burden class is the generator's (every recorded lesion, cold ones
  and any below the end of a partial scan included), so the held-out share is that ceiling even
  where the detector cannot see a lesion; targets and the lesions found count visible hot ones only.

It only measures models trained on simulated studies (real studies have no lesion ground truth).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.networks.nets import BasicUNet
from safetensors.torch import load_file, save_file
from scipy import ndimage, stats

from synthscan.atomic import atomic_write_text
from synthscan.config import (
    ConfigError,
    Fraction,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    from_dict,
    to_dict,
)
from synthscan.dataset import Dataset, DatasetError, Record
from synthscan.evaluation.detector import binned_views, detector_inputs
from synthscan.evaluation.stats import wilson_rate
from synthscan.generator.conditions import burden_class
from synthscan.labels import BURDENS, UNKNOWN
from synthscan.runs import RunDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LesionDetectorConfig:
    """Size and training of the lesion detector (defaults: about 6 minutes on 2 CPU cores)."""

    bin_factor: PositiveInt = 2  # 4.8 mm input pixels at 2.4 mm: the smallest lesions (10 mm) span 2 pixels
    # BasicUNet widths (five levels and the last convolution): a quarter of its default's weights
    features: tuple[PositiveInt, ...] = (8, 16, 32, 64, 128, 8)
    crop_rows: PositiveInt = 128  # training windows (full width); the network is fully convolutional
    steps: PositiveInt = 1500
    batch_size: PositiveInt = 8
    learning_rate: PositiveFloat = 2e-3  # AdamW, cosine decay
    metastasis_share: Fraction = 0.5  # share of training windows cut from metastasis studies
    threshold: Fraction = 0.5  # probability above which a pixel is marked
    min_pixels: PositiveInt = 2  # smaller marked regions are noise, not lesions
    seed: NonNegativeInt = 0

    def __post_init__(self) -> None:
        if len(self.features) != 6:
            raise ConfigError(f"features must list 6 widths (BasicUNet's), got {list(self.features)}")


def visible_hot_lesions(meta: dict, spacing_mm: float) -> list[dict]:
    """A simulated study's hot lesions inside its acquired rows (a partial scan can end above one)."""
    first = meta.get("scan_start_mm", 0.0) / spacing_mm
    last = meta.get("scan_end_mm", float("inf")) / spacing_mm
    return [
        lesion
        for lesion in meta.get("lesions", [])
        if lesion.get("kind") == "hot" and first <= lesion["pixel_anterior"][0] < last
    ]


def lesion_targets(
    lesions: Sequence[dict], shape: tuple[int, int], bin_factor: int, spacing_mm: float
) -> np.ndarray:
    """(H/f, W/f) 0/1 mask of ``lesions``: a disk of each one's diameter at its anterior pixel.

    The posterior is mirrored in the inputs, so its lesions sit at the anterior pixel too. Binned
    pixel ``i`` is centred on native ``(i + 0.5) f - 0.5``.
    """
    rows, cols = shape[0] // bin_factor, shape[1] // bin_factor
    mask = np.zeros((rows, cols), np.float32)
    r, c = np.ogrid[:rows, :cols]
    for lesion in lesions:
        row, col = ((v + 0.5) / bin_factor - 0.5 for v in lesion["pixel_anterior"])
        radius = max(lesion["diameter_mm"] / spacing_mm / bin_factor / 2, 1.0)
        mask[np.hypot(r - row, c - col) <= radius] = 1
    return mask


class LesionDetector:
    """A trained network and the settings that turn its output into counted lesions.

    ``training_studies``: the SHA-256 of each study file it learnt from (``None``: unknown), so a report
    can flag studies it is checked on that it has seen. Files, not patient ids: simulated datasets of
    different seeds reuse the same patient ids. ``pixel_spacing_mm``: its training studies' (``None``:
    unknown); its lesion sizes are learnt in pixels, so it only counts studies of that spacing.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        config: LesionDetectorConfig,
        training_studies: frozenset[str] | None = None,
        pixel_spacing_mm: float | None = None,
    ):
        self.network = network.eval()
        self.config = config
        self.training_studies = training_studies
        self.pixel_spacing_mm = pixel_spacing_mm

    @staticmethod
    def build(config: LesionDetectorConfig) -> torch.nn.Module:
        return BasicUNet(spatial_dims=2, in_channels=2, out_channels=1, features=config.features)

    def probabilities(self, counts: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """(B, 2, H, W) counts → (B, H/f, W/f) probability that a pixel belongs to a hot lesion."""
        out = []
        with torch.no_grad():
            for start in range(0, len(counts), batch_size):
                x = torch.from_numpy(
                    detector_inputs(counts[start : start + batch_size], self.config.bin_factor)
                )
                out.append(torch.sigmoid(self.network(x))[:, 0].numpy())
        return np.concatenate(out)

    def regions(self, probabilities: np.ndarray) -> tuple[np.ndarray, int]:
        """Labelled lesion regions of one (H/f, W/f) probability map and their number."""
        eight = np.ones((3, 3), int)  # diagonal neighbours belong to the same lesion
        labels, n = ndimage.label(probabilities > self.config.threshold, structure=eight)
        if n:
            sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
            small = np.flatnonzero(sizes < self.config.min_pixels) + 1
            labels[np.isin(labels, small)] = 0
            labels, n = ndimage.label(labels > 0, structure=eight)
        return labels, n

    def save(self, folder: str | Path) -> None:
        """``config.json`` then ``model.safetensors``, each under a temporary name then renamed: a folder
        holding the weights file holds a whole detector."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "config.json", json.dumps(to_dict(self.config), indent=2) + "\n")
        partial = folder / "model.safetensors.partial"
        save_file(self.network.state_dict(), partial)
        partial.replace(folder / "model.safetensors")

    @staticmethod
    def is_saved(folder: str | Path) -> bool:
        """Whether ``folder`` holds a whole detector (its weights are written last)."""
        return (Path(folder) / "model.safetensors").is_file()

    @classmethod
    def load(cls, folder: str | Path) -> LesionDetector:
        folder = Path(folder)
        if not cls.is_saved(folder):
            raise FileNotFoundError(
                f"{folder} holds no lesion detector (model.safetensors); train one with "
                "`synthscan evaluate lesion-detector --data SIMULATED --out DIR`"
            )
        path = folder / "config.json"
        config = from_dict(LesionDetectorConfig, json.loads(path.read_text()), where=str(path))
        network = cls.build(config)
        network.load_state_dict(load_file(folder / "model.safetensors"))
        training = folder / "training.json"
        trained_on = json.loads(training.read_text()) if training.is_file() else {}
        studies = trained_on.get("study_sha256")
        return cls(
            network,
            config,
            None if studies is None else frozenset(studies),
            trained_on.get("pixel_spacing_mm"),
        )


def _inputs_and_targets(
    dataset: Dataset, records: Sequence[Record], config: LesionDetectorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Network inputs and (N, 1, H/f, W/f) targets of every study (float32, held in memory)."""
    spacing = dataset.info.pixel_spacing_mm
    inputs, targets = [], []
    for study in dataset.iter_studies(records):
        inputs.append(detector_inputs(study.counts[None], config.bin_factor)[0])
        lesions = visible_hot_lesions(study.meta, spacing)
        targets.append(lesion_targets(lesions, study.counts.shape[-2:], config.bin_factor, spacing))
    return np.stack(inputs), np.stack(targets)[:, None]


def has_lesion_truth(record: Record) -> bool:
    """Whether a simulated study records its lesions (every study of ``synthscan simulate`` does)."""
    return record.source == "simulated" and str(record.get("lesion_count", "")).strip() != ""


def lesion_training_records(dataset: Dataset, records: Sequence[Record]) -> list[Record]:
    """The ``records`` with lesion ground truth; refused unless some are metastatic (nothing to learn)."""
    records = [r for r in records if has_lesion_truth(r)]
    if not any(r.label == "metastasis" for r in records):
        raise DatasetError(
            f"{dataset.root} holds no simulated metastasis studies with lesion ground truth; train the "
            "detector on a `synthscan simulate` dataset"
        )
    return records


def train_lesion_detector(
    dataset: Dataset,
    records: Sequence[Record],
    config: LesionDetectorConfig | None = None,
    *,
    log_metrics: Callable[..., None] | None = None,
) -> LesionDetector:
    """Train on simulated ``records`` (their lesion ground truth) with random full-width row windows.

    ``log_metrics`` (e.g. a run folder's) receives the step and loss every 100 steps and at the end.
    """
    config = config or LesionDetectorConfig()
    records = lesion_training_records(dataset, records)
    x, y = _inputs_and_targets(dataset, records, config)
    metastatic = np.flatnonzero([r.label == "metastasis" for r in records])
    others = np.flatnonzero([r.label != "metastasis" for r in records])
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    network = LesionDetector.build(config)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    loss_fn = DiceCELoss(sigmoid=True, batch=True)
    rows = min(config.crop_rows, x.shape[-2])
    network.train()
    for step in range(config.steps):
        from_metastasis = rng.random(config.batch_size) < config.metastasis_share
        pool = [metastatic if m or not len(others) else others for m in from_metastasis]
        index = np.array([rng.choice(p) for p in pool])
        top = rng.integers(0, x.shape[-2] - rows + 1, config.batch_size)
        xb = torch.from_numpy(np.stack([x[i, :, t : t + rows] for i, t in zip(index, top, strict=True)]))
        yb = torch.from_numpy(np.stack([y[i, :, t : t + rows] for i, t in zip(index, top, strict=True)]))
        loss = loss_fn(network(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == config.steps - 1:
            log.info("lesion detector step %d/%d: loss %.4f", step + 1, config.steps, loss.item())
            if log_metrics is not None:
                log_metrics(stage="lesion-detector", step=step + 1, loss=loss.item())
    return LesionDetector(network, config)


def train_detector_run(dataset: Dataset, config: LesionDetectorConfig, out: str | Path) -> dict:
    """Train on every simulated study of ``dataset`` in run folder ``out``; the weights are written last.

    ``training.json`` names the data and the study files (SHA-256) the detector learnt from.
    """
    out = Path(out)
    records = lesion_training_records(dataset, dataset.records)  # refused before the run folder exists
    with RunDir(out, config, kind="lesion-detector") as run:
        start = time.time()
        detector = train_lesion_detector(dataset, records, config, log_metrics=run.log_metrics)
        summary = {
            "data": dataset.root.name,
            "matrix": list(dataset.info.matrix),
            "pixel_spacing_mm": dataset.info.pixel_spacing_mm,
            "studies": len(records),
            "metastasis": sum(r.label == "metastasis" for r in records),
            "seconds": time.time() - start,
            "study_sha256": sorted(r.get("file_sha256") for r in records if r.get("file_sha256")),
        }
        atomic_write_text(out / "training.json", json.dumps(summary, indent=2) + "\n")
        detector.save(out)
        run.log_metrics(stage="done", seconds=summary["seconds"])
    return summary


def lesion_contrast(views: np.ndarray, labels: np.ndarray, n: int) -> list[float]:
    """Peak-over-surround contrast of each of the ``n`` labelled lesion regions of one study's binned
    (2, h, w) views (:func:`~synthscan.evaluation.detector.binned_views`): the region's brightest pixel
    over the median of a ring 3-5 pixels (city-block) outside it, plus one (a ring without counts stays
    finite), the larger of the two views. The ring is in binned pixels: contrasts compare within one
    detector configuration.

    A reader calls a metastasis on a focus that stands out from its surroundings; a count of marked spots
    cannot tell a few conspicuous lesions from many faint specks.
    """
    out = []
    for k in range(1, n + 1):
        region = labels == k
        ring = ndimage.binary_dilation(region, iterations=5) & ~ndimage.binary_dilation(region, iterations=2)
        out.append(max(float(view[region].max()) / (float(np.median(view[ring])) + 1) for view in views))
    return out


def score_studies(
    detector: LesionDetector, counts: np.ndarray, truths: Sequence[list[dict] | None], spacing_mm: float
) -> list[dict]:
    """Detected lesions of each study of ``counts`` (B, 2, H, W), each one's contrast
    (:func:`lesion_contrast`) and area in binned pixels; where its visible hot lesions are given (a list,
    possibly empty: :func:`visible_hot_lesions`), also those found and the marks on none."""
    rows = []
    shape, f = counts.shape[-2:], detector.config.bin_factor
    views = binned_views(counts, f)
    for probability, hot, study in zip(detector.probabilities(counts), truths, views, strict=True):
        labels, n = detector.regions(probability)
        row: dict = {
            "detected": n,
            "contrast": lesion_contrast(study, labels, n),
            "area_pixels": ndimage.sum_labels(np.ones_like(labels), labels, np.arange(1, n + 1)).tolist(),
        }
        if hot is not None:
            found = sum(bool(labels[lesion_targets([t], shape, f, spacing_mm) > 0].any()) for t in hot)
            on_lesions = labels[(lesion_targets(hot, shape, f, spacing_mm) > 0) & (labels > 0)]
            row |= {"true_hot": len(hot), "found": found, "false_marks": n - len(np.unique(on_lesions))}
        rows.append(row)
    return rows


def count_lesions(detector: LesionDetector, dataset: Dataset, records: Sequence[Record]) -> list[dict]:
    """:func:`score_studies` of ``records``; simulated studies are scored against their ground truth."""
    rows, spacing = [], dataset.info.pixel_spacing_mm
    for start in range(0, len(records), 16):
        studies = [dataset.read(r) for r in records[start : start + 16]]
        truths = [
            visible_hot_lesions(s.meta, spacing) if has_lesion_truth(s.record) else None for s in studies
        ]
        scored = score_studies(detector, np.stack([s.counts for s in studies]), truths, spacing)
        for study, row in zip(studies, scored, strict=True):
            rows.append({"study_id": study.record.study_id, "label": study.record.label, **row})
    return rows


def _share(k: int, n: int) -> dict[str, float | int | list[float] | None]:
    """``k / n`` with its Wilson interval; ``None`` (not NaN, which JSON lacks) when ``n`` is 0."""
    if n == 0:
        return {"share": None, "ci95": None, "n": 0}
    share, ci = wilson_rate(k, n)
    return {"share": share, "ci95": list(ci), "n": n}


def requested_burden(record: Record) -> str:
    """The burden a study shows (simulated: its lesion count) or was asked for (synthetic: ``burden``)."""
    if record.source == "synthetic":
        return record.get("burden") or ""
    return burden_class(record.get("lesion_count", None) or None, record.get("superscan", None))


def lesion_fidelity(
    detector: LesionDetector,
    real: Dataset,
    real_records: Sequence[Record],
    synthetic: Dataset,
    synthetic_records: Sequence[Record],
) -> dict:
    """Lesions found in synthetic studies beside held-out simulated ones (the ceiling).

    - ``with_lesions``: per condition, the share of studies with at least one detected lesion and the
      mean number detected (normal and amyloidosis studies: the detector's marks on mimics and anatomy);
    - ``burden``: per requested burden class (metastasis studies), the share whose detected count
      falls in that class, and the median detected count; superscans are listed but not scored (their
      diffuse uptake is not a count of lesions);
    - ``detector``: on the held-out studies, the share of true hot lesions found and the false marks
      per normal study, which say how far the instrument itself can be trusted.
    """
    out: dict = {"with_lesions": {}, "burden": {}}
    counted = {
        "real": (count_lesions(detector, real, real_records), real_records),
        "synthetic": (count_lesions(detector, synthetic, synthetic_records), synthetic_records),
    }
    for side, (rows, records) in counted.items():
        for label in sorted({r.label for r in records}):
            picked = [row for row in rows if row["label"] == label]
            out["with_lesions"].setdefault(label, {})[side] = _share(
                sum(row["detected"] > 0 for row in picked), len(picked)
            ) | {"mean_detected": float(np.mean([row["detected"] for row in picked]))}
        for row, record in zip(rows, records, strict=True):
            burden = requested_burden(record)
            if record.label != "metastasis" or not burden or burden == UNKNOWN:
                continue
            entry = out["burden"].setdefault(burden, {}).setdefault(side, {"detected": []})
            entry["detected"].append(row["detected"])
    out["burden"] = {b: out["burden"][b] for b in BURDENS if b in out["burden"]}
    for burden, sides in out["burden"].items():
        for entry in sides.values():
            detected = entry.pop("detected")
            entry["median_detected"] = float(np.median(detected))
            if burden != "superscan":
                entry |= _share(sum(burden_class(d, False) == burden for d in detected), len(detected))
            else:
                entry["n"] = len(detected)
    out["conspicuity"] = conspicuity(
        counted["real"][0],
        counted["synthetic"][0],
        (detector.config.bin_factor * real.info.pixel_spacing_mm) ** 2,
    )
    real_rows = counted["real"][0]
    true_hot = sum(row.get("true_hot", 0) for row in real_rows)
    normals = [row for row in real_rows if row["label"] == "normal" and "false_marks" in row]
    out["detector"] = {
        "lesion_sensitivity": _share(sum(row.get("found", 0) for row in real_rows), true_hot),
        "false_marks_per_normal": float(np.mean([row["false_marks"] for row in normals]))
        if normals
        else None,
        "config": asdict(detector.config),
    }
    return out


def conspicuity(real_rows: list[dict], synthetic_rows: list[dict], pixel_area_mm2: float) -> dict:
    """The detected lesions of metastasis studies, real beside synthetic: their contrast against their
    surroundings (:func:`lesion_contrast`) and their area (median and quartiles), and the Mann-Whitney AUC
    that a real lesion stands out more than a synthetic one (0.5: as conspicuous; ``None`` without lesions
    on a side)."""
    out: dict = {}
    contrasts = {}
    for side, rows in (("real", real_rows), ("synthetic", synthetic_rows)):
        picked = [row for row in rows if row["label"] == "metastasis"]
        contrast = [c for row in picked for c in row["contrast"]]
        contrasts[side] = contrast
        area = [a * pixel_area_mm2 for row in picked for a in row["area_pixels"]]
        out[side] = {
            "n_lesions": len(contrast),
            "contrast_quartiles": np.percentile(contrast, [25, 50, 75]).tolist() if contrast else None,
            "area_mm2_quartiles": np.percentile(area, [25, 50, 75]).tolist() if area else None,
        }
    real, fake = contrasts["real"], contrasts["synthetic"]
    auc = stats.mannwhitneyu(real, fake).statistic / (len(real) * len(fake)) if real and fake else None
    out["contrast_auc"] = None if auc is None else float(auc)
    return out


def lesion_markdown(result: dict) -> list[str]:
    """Report lines of :func:`lesion_fidelity`."""
    d = result["detector"]
    sens, marks = d["lesion_sensitivity"], d["false_marks_per_normal"]
    checks = [
        f"finds {sens['share']:.3f} of {sens['n']} visible hot lesions" if sens["n"] else "",
        f"marks {marks:.2f} spots per normal study" if marks is not None else "",
    ]
    checked = (
        f"on the real studies it {' and '.join(c for c in checks if c)}"
        if any(checks)
        else "the real studies carry no lesion ground truth, so the detector is unchecked on them"
    )
    lines = [
        f"Lesions (a lesion detector trained on the simulator's lesion ground truth; {checked}):",
        "",
        "| condition | synthetic: share with a detected lesion (n) | mean detected | real: share (n)"
        " | mean detected |",
        "|---|---|---|---|---|",
    ]
    lines += _table_rows(
        result["with_lesions"], lambda r: [f"{r['share']:.3f} (n={r['n']})", f"{r['mean_detected']:.2f}"]
    )
    lines += [
        "",
        "Metastatic burden: share of metastasis studies whose detected lesion count falls in the requested"
        " (synthetic) or true (real) class, median count detected:",
        "",
        "| burden | synthetic share (n) | synthetic median | real share (n) | real median |",
        "|---|---|---|---|---|",
    ]
    lines += _table_rows(
        result["burden"],
        lambda r: [
            (f"{r['share']:.3f} " if "share" in r else "") + f"(n={r['n']})",
            f"{r['median_detected']:g}",
        ],
    )
    seen = result.get("conspicuity")  # absent from results written before it
    if seen:
        auc = (
            "n/a (no lesions on a side)"
            if seen["contrast_auc"] is None
            else f"**{seen['contrast_auc']:.3f}**"
        )
        lines += [
            "",
            "Conspicuity of the lesions detected in metastasis studies: peak over the median of a ring around"
            " each, and area, median [quartiles]; AUC that a real lesion stands out more than a synthetic one"
            f" (0.5: as conspicuous): {auc}",
            "",
            "| | lesions | contrast | area (mm²) |",
            "|---|---|---|---|",
        ]
        for side in ("synthetic", "real"):
            s = seen[side]
            c, a = s["contrast_quartiles"], s["area_mm2_quartiles"]
            cells = (
                f"{c[1]:.2f} [{c[0]:.2f}, {c[2]:.2f}] | {a[1]:.0f} [{a[0]:.0f}, {a[2]:.0f}]" if c else "– | –"
            )
            lines.append(f"| {side} | {s['n_lesions']} | {cells} |")
    return lines


def _table_rows(groups: dict, cells: Callable[[dict], list[str]]) -> list[str]:
    """One table row per group: two cells of its synthetic entry, then two of its real one."""
    lines = []
    for name, sides in groups.items():
        row = []
        for side in ("synthetic", "real"):
            row += cells(sides[side]) if side in sides else ["", ""]
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    return lines

"""Nearest-neighbour memorization audit: is any synthetic study a copy of a training patient?

For every synthetic study we find its nearest training study and compare that distance with the
distribution of real-to-real nearest distances (each training study to its nearest training study
of a *different* patient, or held-out real studies to the training set).  A synthetic study closer
to a training study than the ``threshold_percentile`` of that distribution (default: 1st
percentile) is flagged: real patients are almost never that similar to each other, so such a
sample is likely a memorized copy.

Image space is defined by :func:`image_embedding`: the posterior view is mirrored to align with
the anterior view, both views are area-downsampled to ``EMBED_SHAPE``, each study is normalised to
unit mean count (so injected activity and acquisition time do not matter), and the square root is
taken (variance-stabilises Poisson noise).  The distance is the root-mean-square difference of
these embeddings, i.e. Euclidean distance / sqrt(number of embedded pixels).  Feature space uses
the classifier's penultimate features with the plain Euclidean distance.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from synthscan.atomic import atomic_write_text
from synthscan.dataset import MANIFEST, Dataset, DatasetError, Record
from synthscan.labels import PATIENT_SOURCES

log = logging.getLogger(__name__)

EMBED_SHAPE: tuple[int, int] = (64, 16)
REPORT_NAME = "results.json"

FeatureFn = Callable[[np.ndarray], np.ndarray]


def image_embedding(counts: np.ndarray, shape: tuple[int, int] = EMBED_SHAPE) -> np.ndarray:
    """Flat image-space embedding of one study's counts ``(2, H, W)`` (see module docstring)."""
    views = np.asarray(counts, dtype=np.float64)
    if views.ndim != 3 or views.shape[0] != 2:
        raise ValueError(f"counts must have shape (2, H, W), got {views.shape}")
    views = np.stack([views[0], views[1, :, ::-1]])
    height, width = views.shape[1:]
    rows, cols = shape
    if height % rows or width % cols:
        raise ValueError(f"matrix {height}x{width} is not a multiple of the embedding shape {shape}")
    pooled = views.reshape(2, rows, height // rows, cols, width // cols).mean(axis=(2, 4))
    mean = pooled.mean()
    if mean > 0:
        pooled = pooled / mean
    return np.sqrt(pooled).ravel()


def embed_studies(
    dataset: Dataset, records: Sequence[Record], shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Image-space embeddings ``(N, D)`` of ``records`` (streamed, one study at a time)."""
    shape = shape or fit_shape(dataset.info.matrix)
    return np.stack([image_embedding(s.counts, shape) for s in dataset.iter_studies(records)])


def study_batches(dataset: Dataset, records: Sequence[Record], batch: int = 16) -> Iterator[np.ndarray]:
    """Counts ``(B, 2, H, W)`` of ``records``, ``batch`` studies at a time."""
    for start in range(0, len(records), batch):
        yield np.stack([s.counts for s in dataset.iter_studies(records[start : start + batch])])


def feature_batches(dataset: Dataset, records: Sequence[Record], features: FeatureFn, batch: int = 16):
    """Features ``(N, D)`` from a batch function over counts ``(B, 2, H, W)``."""
    batches = study_batches(dataset, records, batch)
    return np.concatenate([np.asarray(features(counts), dtype=np.float64) for counts in batches])


def fit_shape(matrix: tuple[int, int], limit: tuple[int, int] = EMBED_SHAPE) -> tuple[int, int]:
    """Largest embedding shape no bigger than ``limit`` that divides ``matrix`` (for area pooling)."""
    return tuple(_largest_divisor_at_most(m, e) for m, e in zip(matrix, limit, strict=True))


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def rms_scale(dim: int) -> float:
    return 1.0 / float(np.sqrt(dim))


def nearest_neighbours(
    query: np.ndarray,
    reference: np.ndarray,
    query_groups: Sequence[str] | None = None,
    reference_groups: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Index and Euclidean distance of each query row's nearest reference row.

    When groups (patient ids) are given, a reference row of the query's own group is skipped, so
    leave-one-patient-out distances within one set are obtained with ``query is reference``.
    """
    k = len(reference) if query_groups is not None else 1
    nn = NearestNeighbors(n_neighbors=min(k, len(reference))).fit(reference)
    distances, indices = nn.kneighbors(query)
    if query_groups is None:
        return indices[:, 0], distances[:, 0]
    groups = np.asarray(reference_groups)
    best_index = np.full(len(query), -1)
    best_distance = np.full(len(query), np.inf)
    for row, group in enumerate(query_groups):
        allowed = groups[indices[row]] != group
        if allowed.any():
            first = int(np.argmax(allowed))
            best_index[row] = indices[row, first]
            best_distance[row] = distances[row, first]
    return best_index, best_distance


@dataclass
class SpaceAudit:
    """Audit of one space: each synthetic study's nearest training study and whether it is flagged."""

    space: str
    nearest_train: list[str]
    distance: list[float]
    real_distances: list[float]
    threshold: float
    flagged: list[str]
    real_reference: str

    def summary(self) -> dict[str, Any]:
        real = np.asarray(self.real_distances)
        synth = np.asarray(self.distance)
        return {
            "space": self.space,
            "threshold": self.threshold,
            "n_flagged": len(self.flagged),
            "real_reference": self.real_reference,
            "real_nn_median": float(np.median(real)),
            "real_nn_p01": float(np.percentile(real, 1)),
            "synthetic_nn_median": float(np.median(synth)),
            "synthetic_nn_min": float(synth.min()),
            "synthetic_below_real_median": float(np.mean(synth < np.median(real))),
        }


def audit_space(
    space: str,
    train: np.ndarray,
    train_ids: Sequence[str],
    train_patients: Sequence[str],
    synthetic: np.ndarray,
    synthetic_ids: Sequence[str],
    *,
    holdout: np.ndarray | None = None,
    threshold_percentile: float = 1.0,
    scale: float = 1.0,
) -> SpaceAudit:
    """Flag synthetic rows nearer to a training row than the real-to-real ``threshold_percentile``.

    The real-to-real reference is held-out real → train when ``holdout`` has rows, otherwise
    leave-one-patient-out within train (needs at least two patients).
    """
    if len(train) < 2:
        raise ValueError("the audit needs at least two training studies")
    if holdout is not None and len(holdout):
        _, real = nearest_neighbours(holdout, train)
        reference = "held-out real studies to their nearest training study"
    else:
        _, real = nearest_neighbours(train, train, train_patients, train_patients)
        real = real[np.isfinite(real)]
        if not len(real):
            raise ValueError("leave-one-patient-out needs training studies from at least two patients")
        reference = "training studies to their nearest training study of another patient"
    index, distance = nearest_neighbours(synthetic, train)
    real = real * scale
    distance = distance * scale
    threshold = float(np.percentile(real, threshold_percentile))
    flagged = [sid for sid, d in zip(synthetic_ids, distance, strict=True) if d < threshold]
    return SpaceAudit(
        space=space,
        nearest_train=[train_ids[i] for i in index],
        distance=[float(d) for d in distance],
        real_distances=[float(d) for d in real],
        threshold=threshold,
        flagged=flagged,
        real_reference=reference,
    )


@dataclass
class PrivacyAudit:
    """Both spaces' audits for a synthetic dataset against its training data."""

    train_root: str
    synthetic_root: str
    synthetic_manifest_sha256: str
    threshold_percentile: float
    synthetic_ids: list[str]
    spaces: list[SpaceAudit] = field(default_factory=list)

    @property
    def flagged(self) -> list[str]:
        """Synthetic study ids flagged in any space, in dataset order."""
        hit = {sid for space in self.spaces for sid in space.flagged}
        return [sid for sid in self.synthetic_ids if sid in hit]

    @property
    def warnings(self) -> list[str]:
        """Why the threshold cannot be trusted: too few real-to-real distances to estimate its percentile.

        The p-th percentile of n distances has fewer than one distance below it when n < 100 / p; it
        then sits at (or is interpolated from) the smallest distances, so ordinary samples get flagged
        or copies pass depending on a handful of pairs.
        """
        needed = math.ceil(100 / self.threshold_percentile) if self.threshold_percentile > 0 else math.inf
        return [
            f"{space.space} space: only {len(space.real_distances)} real-to-real distances, too few to "
            f"estimate their percentile {self.threshold_percentile:g} (needs at least {needed}); treat the "
            "flags as unreliable and audit against the full training set (or add --holdout studies)"
            for space in self.spaces
            if len(space.real_distances) < needed
        ]

    def to_json(self) -> str:
        body = asdict(self)
        body["flagged"] = self.flagged
        body["summary"] = [space.summary() for space in self.spaces]
        body["warnings"] = self.warnings
        return json.dumps(body, indent=2)

    @classmethod
    def from_json(cls, text: str) -> PrivacyAudit:
        body = json.loads(text)
        body.pop("flagged", None)
        body.pop("summary", None)
        body.pop("warnings", None)
        body["spaces"] = [SpaceAudit(**space) for space in body["spaces"]]
        return cls(**body)


def manifest_sha256(dataset: Dataset) -> str:
    """Hash of the manifest file: a saved audit is reused only while the synthetic set is unchanged."""
    return hashlib.sha256((dataset.root / MANIFEST).read_bytes()).hexdigest()


def _training_records(train: Dataset) -> list[Record]:
    records = train.filter(source=PATIENT_SOURCES)
    if len(records) < 2:
        raise DatasetError(
            f"{train.root} holds {len(records)} real or simulated studies; the audit needs at least two"
        )
    return records


def run_audit(
    train: Dataset,
    synthetic: Dataset,
    *,
    threshold_percentile: float = 1.0,
    features: FeatureFn | None = None,
    holdout: Dataset | None = None,
) -> PrivacyAudit:
    """Audit ``synthetic`` (its synthetic-source studies, or all) against ``train`` in both spaces."""
    if train.info.matrix != synthetic.info.matrix:
        raise DatasetError(
            f"train matrix {train.info.matrix} differs from synthetic matrix {synthetic.info.matrix}; "
            "audit datasets of the same matrix"
        )
    train_records = _training_records(train)
    synthetic_records = synthetic.filter(source="synthetic") or synthetic.records
    if not synthetic_records:
        raise DatasetError(f"{synthetic.root} holds no studies to audit")
    train_ids = [r.study_id for r in train_records]
    patients = [r.patient_id for r in train_records]
    synth_ids = [r.study_id for r in synthetic_records]
    holdout_records = holdout.filter(source=PATIENT_SOURCES) if holdout is not None else []
    shape = fit_shape(train.info.matrix)
    result = PrivacyAudit(
        train_root=str(train.root),
        synthetic_root=str(synthetic.root),
        synthetic_manifest_sha256=manifest_sha256(synthetic),
        threshold_percentile=threshold_percentile,
        synthetic_ids=synth_ids,
    )
    log.info("embedding %d training and %d synthetic studies", len(train_ids), len(synth_ids))
    train_x = embed_studies(train, train_records, shape)
    synth_x = embed_studies(synthetic, synthetic_records, shape)
    hold_x = embed_studies(holdout, holdout_records, shape) if holdout_records else None
    result.spaces.append(
        audit_space(
            "image",
            train_x,
            train_ids,
            patients,
            synth_x,
            synth_ids,
            holdout=hold_x,
            threshold_percentile=threshold_percentile,
            scale=rms_scale(train_x.shape[1]),
        )
    )
    if features is not None:
        train_f = feature_batches(train, train_records, features)
        synth_f = feature_batches(synthetic, synthetic_records, features)
        hold_f = feature_batches(holdout, holdout_records, features) if holdout_records else None
        result.spaces.append(
            audit_space(
                "feature",
                train_f,
                train_ids,
                patients,
                synth_f,
                synth_ids,
                holdout=hold_f,
                threshold_percentile=threshold_percentile,
            )
        )
    return result


def render_pair(train: Dataset, train_id: str, synthetic: Dataset, synthetic_id: str, path: Path, title: str):
    """Side-by-side PNG of a flagged synthetic study and its nearest training study (both views)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (f"synthetic {synthetic_id}", synthetic.read(synthetic_id).counts),
        (f"train {train_id}", train.read(train_id).counts),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(8, 6))
    for column, (name, counts) in enumerate(panels):
        for view, label in enumerate(("anterior", "posterior")):
            ax = axes[2 * column + view]
            image = counts[view].astype(float)
            ax.imshow(image, cmap="gray_r", vmin=0, vmax=max(np.percentile(image, 99.5), 1), aspect="auto")
            ax.set_title(f"{name}\n{label}", fontsize=7)
            ax.axis("off")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _histogram(space: SpaceAudit, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.histogram_bin_edges(np.concatenate([space.real_distances, space.distance]), bins=40)
    ax.hist(space.real_distances, bins=bins, alpha=0.6, density=True, label="real → train (reference)")
    ax.hist(space.distance, bins=bins, alpha=0.6, density=True, label="synthetic → train")
    ax.axvline(space.threshold, color="red", linestyle="--", label="flag threshold")
    ax.set_xlabel(f"nearest-neighbour distance ({space.space} space)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(audit: PrivacyAudit, train: Dataset, synthetic: Dataset, out: str | Path) -> Path:
    """Write ``results.json``, ``report.md``, histograms and flagged-pair images into ``out``."""
    out = Path(out)
    (out / "flagged").mkdir(parents=True, exist_ok=True)
    lines = [
        "# Privacy audit: nearest-neighbour memorization",
        "",
        f"- training set: `{audit.train_root}`",
        f"- synthetic set: `{audit.synthetic_root}` ({len(audit.synthetic_ids)} studies audited)",
        f"- threshold: real-to-real nearest-distance percentile {audit.threshold_percentile:g}",
        f"- **flagged studies: {len(audit.flagged)}**",
        *[f"- **warning:** {warning}" for warning in audit.warnings],
        "",
        "Image-space distance: RMS difference of sqrt(mean-normalised counts), posterior mirrored,"
        " area-downsampled. Feature-space distance: Euclidean on classifier penultimate features.",
        "",
        "| space | reference | threshold | real NN median | synthetic NN median | synthetic NN min "
        "| flagged |",
        "|---|---|---|---|---|---|---|",
    ]
    for space in audit.spaces:
        s = space.summary()
        lines.append(
            f"| {space.space} | {s['real_reference']} | {s['threshold']:.4g} | {s['real_nn_median']:.4g} "
            f"| {s['synthetic_nn_median']:.4g} | {s['synthetic_nn_min']:.4g} | {s['n_flagged']} |"
        )
        _histogram(space, out / f"nn_{space.space}.png")
    lines += ["", *[f"![{s.space}](nn_{s.space}.png)" for s in audit.spaces], ""]
    if audit.flagged:
        lines += [
            "## Flagged studies",
            "",
            "| synthetic | space | nearest train | distance | image |",
            "|---|---|---|---|---|",
        ]
        for space in audit.spaces:
            for sid in space.flagged:
                i = audit.synthetic_ids.index(sid)
                image = f"flagged/{space.space}_{sid}.png"
                render_pair(
                    train,
                    space.nearest_train[i],
                    synthetic,
                    sid,
                    out / image,
                    f"{space.space} distance {space.distance[i]:.4g} < {space.threshold:.4g}",
                )
                lines.append(
                    f"| {sid} | {space.space} | {space.nearest_train[i]} | {space.distance[i]:.4g} "
                    f"| ![]({image}) |"
                )
    else:
        lines.append("No synthetic study is closer to a training study than the threshold.")
    atomic_write_text(out / REPORT_NAME, audit.to_json())
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return out / "report.md"


def default_audit_dir(synthetic: Dataset) -> Path:
    return synthetic.root / "privacy_audit"


def flagged_studies_for_export(
    synthetic: Dataset,
    *,
    train: Dataset | str | Path | None = None,
    report: str | Path | None = None,
) -> list[str]:
    """Synthetic study ids an export must refuse; reuses a saved audit if the manifest is unchanged.

    Studies of a model that carries a statement that it saw no patients (``privacy.json``, see
    :func:`statement_models`) need no audit.  For the others, looks for ``results.json`` in
    ``report`` (default ``DATASET/privacy_audit``).  If none matches the current manifest, runs the
    audit against ``train`` (or the ``train_dataset`` recorded in the dataset's provenance) and saves
    it there.  Datasets without synthetic studies return [].
    """
    exempt = statement_models(synthetic)
    if not [r for r in synthetic.filter(source="synthetic") if r.get("model_sha256") not in exempt]:
        return []
    folder = Path(report) if report else default_audit_dir(synthetic)
    saved = folder / REPORT_NAME
    if saved.is_file():
        audit = PrivacyAudit.from_json(saved.read_text(encoding="utf-8"))
        if audit.synthetic_manifest_sha256 == manifest_sha256(synthetic):
            return audit.flagged
        log.info("saved audit %s is stale (manifest changed); re-running", saved)
    train = train or synthetic.info.provenance.get("train_dataset")
    if not train:
        raise DatasetError(
            f"{synthetic.root} holds synthetic studies but has no current privacy audit; run "
            f"`synthscan audit privacy --train TRAIN_DATASET --synthetic {synthetic.root} --out {folder}`"
        )
    train_ds = train if isinstance(train, Dataset) else Dataset.open(train)
    audit = run_audit(train_ds, synthetic)
    write_report(audit, train_ds, synthetic, folder)
    return audit.flagged


def statement_models(dataset: Dataset) -> set[str]:
    """Hashes of the models whose samples need no audit: they carry a statement that they saw no patients.

    The statements come from the dataset's provenance (recorded by the sampler from the model's own
    ``privacy.json``) and from the shipped models, which were trained on simulated studies only.
    """
    from synthscan.generator.storage import privacy_statement, shipped_models

    recorded = dataset.info.provenance.get("privacy_statements", {})
    models = {sha for sha, statement in recorded.items() if statement.get("patients_seen") == 0}
    for folder in shipped_models().values():
        shipped = privacy_statement(folder)
        if shipped is not None:
            models.add(shipped["model_sha256"])
    return models

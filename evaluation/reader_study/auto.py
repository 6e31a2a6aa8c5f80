"""A machine reader: a classifier two-sample test on the study's cases.

Each case's counts are turned into features (by default the trained classifier's
``FeatureExtractor``); a standardized logistic regression then predicts real versus synthetic with
stratified k-fold cross-validation, so every case gets an out-of-fold probability from a model that
never saw it. Accuracy near 0.5 and AUC near 0.5 mean the features cannot tell the two sources apart.
The result goes to ``private/machine_reader.json`` (it is derived from the key, so the server never
reads it) and ``score`` reports it beside the human readers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from synthscan.atomic import atomic_write_text
from synthscan.dataset import Dataset

from .create import load_key
from .score import MACHINE_READER, proportion

log = logging.getLogger(__name__)

Extractor = Callable[[np.ndarray], Any]


def case_features(root: str | Path, extract: Extractor, batch_size: int = 16) -> tuple[list[str], np.ndarray]:
    """Case ids (sorted) and their feature matrix, read from the source datasets named in the key."""
    cases = load_key(root)["cases"]
    datasets: dict[str, Dataset] = {}
    ids = sorted(cases)
    rows = []
    for start in range(0, len(ids), batch_size):
        batch = []
        for case_id in ids[start : start + batch_size]:
            entry = cases[case_id]
            dataset = datasets.setdefault(entry["dataset"], Dataset.open(entry["dataset"]))
            batch.append(dataset.read(entry["study_id"]).counts)
        features = extract(np.stack(batch))
        if hasattr(features, "detach"):
            features = features.detach().cpu().numpy()
        rows.append(np.asarray(features, dtype=np.float64).reshape(len(batch), -1))
    return ids, np.concatenate(rows)


def machine_reader(
    root: str | Path, extract: Extractor, folds: int = 5, seed: int = 0, batch_size: int = 16
) -> dict[str, Any]:
    """Out-of-fold real-vs-synthetic probabilities, accuracy (95% CI, test vs 50%) and AUC."""
    root = Path(root)
    ids, features = case_features(root, extract, batch_size)
    cases = load_key(root)["cases"]
    target = np.array([cases[c]["source"] == "synthetic" for c in ids], dtype=int)
    folds = min(folds, int(np.bincount(target).min()))
    if folds < 2:
        raise ValueError("the machine reader needs at least 2 real and 2 synthetic cases")
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probability = cross_val_predict(model, features, target, cv=splitter, method="predict_proba")[:, 1]
    call = probability >= 0.5
    summary = {
        "method": f"{folds}-fold cross-validated standardized logistic regression, "
        f"{features.shape[1]} features",
        "n_cases": len(ids),
        "accuracy": proportion(int((call == target).sum()), len(ids)),
        "sensitivity": proportion(int((call & (target == 1)).sum()), int(target.sum())),
        "specificity": proportion(int((~call & (target == 0)).sum()), int((target == 0).sum())),
        "auc": float(roc_auc_score(target, probability)),
    }
    result = {
        "summary": summary,
        "cases": {c: {"p_synthetic": float(p)} for c, p in zip(ids, probability, strict=True)},
    }
    atomic_write_text(root / MACHINE_READER, json.dumps(result, indent=2) + "\n")
    log.info("machine reader: accuracy %.3f, AUC %.3f", summary["accuracy"]["value"], summary["auc"])
    return result

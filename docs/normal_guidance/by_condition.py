"""Each condition's feature two-sample AUC on quality sets measured before ``generator_quality`` reported it.

    python docs/normal_guidance/by_condition.py HELD_OUT CLASSIFIER Q [Q ...]

Q: a ``benchmarks/generator_quality.py --out`` folder. Recomputes the classifier's reading as the
benchmark does (``model_fidelity``: same halves, folds and seed), checks that the within-condition
AUC is the one its ``results.json`` holds (for ``--reference-classifier`` CLASSIFIER) and prints the
per-condition line the benchmark now writes.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from quality_table import load

from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import (
    by_condition_text,
    classifier_model,
    fidelity_records,
    model_fidelity,
)

held_out, classifier, *folders = sys.argv[1:]
real, model = Dataset.open(held_out), classifier_model(classifier)
for folder in folders:
    synthetic = Dataset.open(Path(folder) / "synthetic")
    real_records, fake_records = fidelity_records(real, synthetic)
    reading = model_fidelity(real, real_records, synthetic, fake_records, model)
    rr, rs = reading["real_vs_real"], reading["real_vs_synthetic"]
    saved = load(folder)["reference_classifier"]["real_vs_synthetic"]["two_sample_auc_within_condition"]
    within = rs["two_sample_auc_within_condition"]
    assert abs(within - saved) < 1e-9, f"{folder}: within-condition AUC {within} is not the saved {saved}"
    print(f"{Path(folder).name} (within conditions {within:.3f}): {by_condition_text(rr, rs)}")

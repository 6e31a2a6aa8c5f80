#!/usr/bin/env bash
# The reference experiment: Haberl et al.'s augmentation design, replicated on simulated multi-centre data.
#
#   experiments/reference_experiment.sh [WORK_DIR] [SEEDS]
#
# - generator: the shipped default model, trained on 3,000 simulated studies of centre_a (its model card);
# - small independent real training set: 200 simulated studies of centre_b (MDP, its own scanner);
# - four external cohorts, 1,000 studies each, that differ from centre_b in scanner (resolution,
#   count level, pixel size) and tracer (DPD, HDP, MDP, HDP/DPD), held out entirely;
# - for each seed and synthetic:real ratio (0, 1, 2, 5), a classifier on centre_b (+ synthetic
#   studies sampled on the fly with recorded seeds), the same step budget for every arm.
#
# Writes everything under WORK_DIR (default: reference-run) and copies the report (report.md,
# results.json, ROC curves) to docs/reference_experiment/. Runs in about 1.5 h on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-reference-run}
seeds=${2:-3}
mkdir -p "$work"

synthscan simulate -n 200 --site centre_b --seed 1001 --out "$work/centre_b" --no-progress
for i in 1 2 3 4; do
    synthscan simulate -n 1000 --site "external_$i" --seed "$((2000 + i))" --out "$work/external_$i" --no-progress
done

# (from outside the checkout: its synthscan/ folder would shadow the installed package)
model=$(cd / && python -c "from synthscan.generator.storage import default_model_dir; print(default_model_dir())")
synthscan evaluate augmentation --real "$work/centre_b" --synthetic "$model" \
    --test "$work/external_1" "$work/external_2" "$work/external_3" "$work/external_4" \
    --ratios 0,1,2,5 --seeds "$seeds" --out "$work/report"

# The committed copy names folders as this script does, not by this machine's absolute paths.
mkdir -p docs/reference_experiment
for file in report.md results.json; do
    sed -e "s|$(cd "$work" && pwd)|$(basename "$work")|g" -e "s|$model|synthscan/models/default|g" \
        "$work/report/$file" > "docs/reference_experiment/$file"
done
cp "$work"/report/*.png docs/reference_experiment/
echo "Report: docs/reference_experiment/report.md"

#!/usr/bin/env bash
# The reference experiment: Haberl et al.'s augmentation design on simulated multi-centre data, with
# learning curves over independent draws of the small real set, an oracle arm and a harder site.
#
#   experiments/reference_experiment.sh [WORK_DIR] [SHARD]        e.g. ... reference-run 2/4
#   SIZES=25,50,100,200 experiments/reference_experiment.sh ...   a shorter learning curve (80 % of the runs)
#
# - generator: the shipped default model, trained on simulated centre_a studies (MDP/HDP/DPD 50/25/25);
# - real pool: 2,000 simulated centre_b studies (MDP, its own scanner), split by patient once
#   (stratified by label and task targets) into 1,400 training patients to draw small sets from,
#   300 validation and 300 internal test studies;
# - oracle: 3,000 extra simulated centre_a studies (new patients of the generator's site, amyloidosis
#   prevalence raised to 30 % so the balanced 5x arm at 400 patients finds 667 studies of each condition);
# - five external cohorts of 1,000 studies: external_1..4 differ in scanner and tracer, external_5
#   also in disease appearance (small, faint, often cold lesions; lung/breast primaries);
# - real-set sizes 25, 50, 100, 200, 400 patients, 5 independent draws each, 1 seed per draw; arms:
#   real only, +synthetic and +oracle at ratios 1 and 5 (declared here, before the run).
#
# Every step resumes: rerun the script after an interruption and it continues where it stopped (each
# classifier run is written as it ends). The runs are independent: give SHARD=I/N to N processes or
# machines that share WORK_DIR (after one unsharded call has prepared it: the script does that when no
# SHARD is given, and stops after preparing when one is). The report is written by whichever process
# finishes the last run; then the script copies it to docs/reference_experiment/.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-reference-run}
shard=${2:-}
mkdir -p "$work"

synthscan simulate -n 2000 --site centre_b --seed 1001 --out "$work/centre_b" --no-progress
synthscan simulate -n 3000 --site centre_a --seed 3001 --set disease.amyloidosis_prevalence=0.3 \
    --out "$work/centre_a_oracle" --no-progress
for i in 1 2 3 4 5; do
    synthscan simulate -n 1000 --site "external_$i" --seed "$((2000 + i))" --out "$work/external_$i" --no-progress
done

# (from outside the checkout: its synthscan/ folder would shadow the installed package)
model=$(cd / && python -c "from synthscan.generator.storage import default_model_dir; print(default_model_dir())")
study=(evaluate augmentation --real "$work/centre_b" --synthetic "$model" --oracle "$work/centre_a_oracle"
    --test "$work/external_1" "$work/external_2" "$work/external_3" "$work/external_4" "$work/external_5"
    --real-sizes "${SIZES:-25,50,100,200,400}" --draws 5 --seeds 1 --ratios 0,1,5 --out "$work/report")
if [[ -z "$shard" ]]; then
    synthscan "${study[@]}"
else
    [[ -f "$work/report/synthetic/synthetic.json" ]] || synthscan "${study[@]}" --prepare-only
    synthscan "${study[@]}" --shard "$shard"
fi
[[ -f "$work/report/results.json" ]] || { echo "runs of other shards are still missing"; exit 0; }

# The committed copy names folders as this script does, not by this machine's absolute paths.
mkdir -p docs/reference_experiment
for file in report.md results.json; do
    sed -e "s|$(cd "$work" && pwd)|$(basename "$work")|g" -e "s|$model|synthscan/models/default|g" \
        "$work/report/$file" > "docs/reference_experiment/$file"
done
cp "$work"/report/curves-*.png docs/reference_experiment/
echo "Report: docs/reference_experiment/report.md"

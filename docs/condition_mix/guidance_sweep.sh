#!/usr/bin/env bash
# Samples at one guidance scale for every condition, scored by `evaluate fidelity` (no image detector).
#   bash docs/condition_mix/guidance_sweep.sh OUT SEED SCALE [SCALE ...]    # SCALE "shipped": the model's own
# Run where centre_a_holdout, cls_a and DET are; the layout is generator_quality's (60 normal at SEED,
# 60 metastasis at SEED + 1000000, 20 per Perugini grade at SEED + 2000000 / 2100000 / 2200000).
set -euo pipefail
out=$1 seed=$2
shift 2
for g in "$@"; do
    dir=$out/g$g
    scale=()
    [ "$g" = shipped ] || scale=(--guidance "$g")
    synthscan sample --condition normal -n 60 --seed "$seed" "${scale[@]}" --out "$dir" --add-condition
    synthscan sample --condition metastasis -n 60 --seed $((seed + 1000000)) "${scale[@]}" --out "$dir" --add-condition
    for k in 1 2 3; do
        synthscan sample --condition amyloidosis --grade $k -n 20 --seed $((seed + 2000000 + 100000 * (k - 1))) \
            "${scale[@]}" --out "$dir" --add-condition
    done
    synthscan evaluate fidelity --real centre_a_holdout --synthetic "$dir" --features cls_a --no-image-detector \
        --lesion-detector DET --out "$dir-report"
done

#!/usr/bin/env bash
# One call on a lent GPU machine: simulate the training site afresh, then continue the shipped default
# model's UNet at a large batch for as many steps as fit in TRAIN seconds (measured by step_rate.py
# while the simulator runs). The model folder (without the unchanged autoencoder) and the logs land in
# $OUT as tar files. Environment: N studies, BATCH, LR, SEED, TRAIN and LIMIT seconds.
set -uo pipefail
OUT=${OUT:?set OUT to an empty folder}
N=${N:-3000}
BATCH=${BATCH:-256}
LR=${LR:-2e-4}
SEED=${SEED:-2}
TRAIN=${TRAIN:-140}   # seconds of optimizer steps wanted
LIMIT=${LIMIT:-240}   # the continuation's hard limit: image cache, encoding, steps, saving
WORK=${WORK:-/tmp/gpu_continuation}
export PYTHONUNBUFFERED=1
here=$(dirname "$0")
mkdir -p "$WORK"
source "$here/setup_device.sh"
start=$(date +%s)
python3 "$here/step_rate.py" "$BATCH" >"$WORK/rate.txt" &
synthscan simulate -n "$N" --out "$WORK/centre_a" --seed 0 --workers "$(nproc)" --no-progress || exit 1
wait
echo "simulated in $(( $(date +%s) - start )) s; UNet steps/s at batch $BATCH: $(cat "$WORK/rate.txt")"
cp "$WORK/centre_a/manifest.csv" "$OUT/manifest.csv"
# 0.6: EMA, clipping, logging and the step's own draws are not in the bare network's rate
STEPS=$(python3 -c "print(max(100, int(0.6 * $TRAIN * float(open('$WORK/rate.txt').read()))))")
echo "continuing for $STEPS steps"
timeout "$LIMIT" synthscan finetune --model default --data "$WORK/centre_a" --out "$WORK/plain" \
    --steps "$STEPS" --batch-size "$BATCH" --learning-rate "$LR" --seed "$SEED" --sources simulated \
    --no-progress >"$WORK/plain.log" 2>&1
echo "finetune exit $? after $(( $(date +%s) - start )) s"
cd "$WORK" || exit 1
if [ -f plain/model_index.json ]; then
    tar -cf "$OUT/plain.tar" --exclude=plain/vae plain
else  # stopped at LIMIT: its last checkpoint's EMA weights (accelerate's registered objects)
    tar -cf "$OUT/plain-checkpoint.tar" plain-run/diffusion/checkpoint/custom_checkpoint_*.pkl \
        plain-run/diffusion/checkpoint/step.json
fi
tail -c 1500 plain.log
tail -n 3 plain-run/metrics.jsonl
tar -czf "$OUT/logs.tgz" rate.txt plain.log plain-run/metrics.jsonl plain-run/config.yaml plain-run/samples
ls -la "$OUT"

#!/usr/bin/env bash
# One call on a lent GPU machine: simulate the training site afresh, then train config.yaml's UNet on
# the carried autoencoder (AE: a generator folder whose autoencoder is reused) for as many steps as fit
# in TRAIN seconds, measured by step_rate.py while the simulator runs; CONT of them are the warm
# restart. The model folder (or, if LIMIT cut the restart, the main stage's; its UNet, the carried
# autoencoder left out) and the logs land in $OUT: `cat model.tar.* | tar -x`, then copy AE/vae in.
set -uo pipefail
OUT=${OUT:?set OUT to an empty folder}
AE=${AE:?set AE to the generator folder whose autoencoder is reused}
N=${N:-3000}
BATCH=${BATCH:-256}
TRAIN=${TRAIN:-360}   # seconds of optimizer steps wanted
LIMIT=${LIMIT:-470}   # the training's hard limit: image cache, encoding, steps, saving
CONT=${CONT:-0.35}    # share of the steps in the warm restart
WORK=${WORK:-/tmp/spatial_unet}
export PYTHONUNBUFFERED=1
here=$(dirname "$0")
config="$here/config.yaml"
mkdir -p "$WORK"
source "$here/../gpu_continuation/setup_device.sh"
start=$(date +%s)
python3 "$here/../gpu_continuation/step_rate.py" "$BATCH" "$config" >"$WORK/rate.txt" &
synthscan simulate -n "$N" --out "$WORK/centre_a" --seed 0 --workers "$(nproc)" --no-progress || exit 1
wait
echo "simulated in $(( $(date +%s) - start )) s; UNet steps/s at batch $BATCH: $(cat "$WORK/rate.txt")"
cp "$WORK/centre_a/manifest.csv" "$OUT/manifest.csv"
# 0.85: the continued default ran at 0.94 of the bare network's rate (docs/gpu_continuation)
# the main stage's EMA spans an eighth of its steps, as the shipped default's 0.999 over 8,000 steps
read -r MAIN RESTART EMA < <(python3 -c "
total = 0.85 * $TRAIN * float(open('$WORK/rate.txt').read())
main = max(100, int(total * (1 - $CONT)))
print(main, max(50, int(total * $CONT)), round(min(0.999, 1 - 8 / main), 4))")
echo "main stage $MAIN steps (EMA decay $EMA), warm restart $RESTART steps"
timeout "$LIMIT" synthscan train --data "$WORK/centre_a" --config "$config" --out "$WORK/run" \
    --set autoencoder.from_model="$AE" --set diffusion.batch_size="$BATCH" --set diffusion.steps="$MAIN" \
    --set diffusion.ema_decay="$EMA" --set continuation.steps="$RESTART" --set checkpoint_every=250 \
    --no-progress >"$WORK/train.log" 2>&1
echo "train exit $? after $(( $(date +%s) - start )) s"
cd "$WORK" || exit 1
for model in model base-model; do  # the continued model, else the main stage's
    if [ -f "run/$model/model_index.json" ]; then
        # without the carried autoencoder; in parts, since a file coming back is at most 16 MiB
        tar -cf - -C run --exclude="$model/vae" "$model" | split -b 15m - "$OUT/$model.tar."
        break
    fi
done
tail -c 1500 train.log
tail -n 2 run/metrics.jsonl run/model-run/metrics.jsonl 2>/dev/null
tar -czf "$OUT/logs.tgz" rate.txt train.log run/metrics.jsonl run/config.yaml run/samples \
    run/model-run/metrics.jsonl run/model-run/config.yaml 2>/dev/null
ls -la "$OUT"

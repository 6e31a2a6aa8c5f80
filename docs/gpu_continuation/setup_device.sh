# Sourced by the device scripts (run_device.sh here and in docs/spatial_unet) in the repository root of a
# lent GPU machine: installs the packages it lacks (diffusers), carried as wheels in .whl, and this checkout.
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site || exit 1
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

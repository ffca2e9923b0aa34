#!/usr/bin/env bash
# Issue 10's GPU goals in one prepared device run (about 6-8 minutes on an H100/H200 once started):
#
#   1. the README's main job on the GPU, float64 (default) and float32 (output.precision), as `--json`;
#   2. benchmarks/scale.py --part linearisation: latent tsunami, N = 64, 10^5 and 10^6 observations per
#      window: seconds per Gauss-Newton iteration, peak memory, the in-run floor and the ratio;
#   3. a whole `levda assimilate` of the 150 x 150 latent tsunami with N = 64 and 10^6 sea-surface heights
#      per 20-minute window (500,000 at each 10-minute frame, at random places and times): per-window seconds.
#
# Prepare here: `bash benchmarks/device/wheels.sh`; then the device tool's run with carry [".whl"] and the
# command `bash benchmarks/device/gpu_checks.sh`. SMALL=1 runs the same steps with small sizes (a CPU dry run).
# Everything lands in $OUT (at most 8 files).
set -uo pipefail
OUT=${OUT:-/tmp/gpu_checks_out}
mkdir -p "$OUT"
# the carried wheels are built for the device's Python (wheels.sh); where none is for this Python (a CPU dry
# run here) the installed stack serves
PYTAG=$(python3 -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
if [ -d .whl ] && ls .whl/*-"$PYTAG"-"$PYTAG"-* > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:$PWD || exit 3
fi
export PYTHONUNBUFFERED=1 LEVDA_CACHE_DIR=/tmp/levda-cache
if [ "${SMALL:-0}" = 1 ]; then SIZES=1000,2000; PER_FRAME=500; N=16; else SIZES=100000,1000000; PER_FRAME=500000; N=64; fi
LOG="$OUT/log.txt"
{
    date -u; (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true)
    python3 -c "import jax, sys; print(sys.version); print(jax.__version__, jax.devices())"
} > "$LOG" 2>&1
levda() { python3 -m levda_cli "$@"; }
W=/tmp/gpu_work; rm -rf "$W"; mkdir -p "$W"
README_ARGS=(sample_data/tsunami150_obs.nc --checkpoint sample_data/surrogates/tsunami150.ckpt
             --config configs/latent_tsunami.toml --truth sample_data/tsunami150_truth.zarr --json -q)
echo "== 1. README job, float64 then float32" >> "$LOG"
timeout 150 levda assimilate "${README_ARGS[@]}" --out "$W/readme64.zarr" > "$OUT/readme64.json" 2>> "$LOG"; echo "exit $?" >> "$LOG"
timeout 150 levda assimilate "${README_ARGS[@]}" --set output.precision=float32 --out "$W/readme32.zarr" \
    > "$OUT/readme32.json" 2>> "$LOG"; echo "exit $?" >> "$LOG"
echo "== 2. linearisation, latent, N = $N, sizes $SIZES" >> "$LOG"
timeout 240 python3 benchmarks/scale.py --part linearisation --modes latent --ensembles "$N" --sizes "$SIZES" \
    --repeats 3 >> "$LOG" 2>&1; echo "exit $?" >> "$LOG"
cp benchmarks/results/scale_linearisation.json "$OUT/" 2>> "$LOG"
# a dry run must not replace the CPU results a checkout records (session 12 committed one by mistake)
[ "${SMALL:-0}" = 1 ] && git checkout -- benchmarks/results/scale_linearisation.json benchmarks/results/scale.md 2>> "$LOG"
echo "== 3. CLI, $PER_FRAME observations per frame (2 frames per window), N = $N" >> "$LOG"
timeout 60 levda observe sample_data/tsunami150_truth.zarr --network "random:$PER_FRAME" --times random \
    --variables eta --error 0.01 --seed 5 --out "$W/big.nc" >> "$LOG" 2>&1; echo "exit $?" >> "$LOG"
timeout 200 levda assimilate "$W/big.nc" --checkpoint sample_data/surrogates/tsunami150.ckpt \
    --config configs/latent_tsunami.toml --set "ensemble.size=$N" --truth sample_data/tsunami150_truth.zarr \
    --out "$W/big.zarr" --json -q > "$OUT/big.json" 2>> "$LOG"; echo "exit $?" >> "$LOG"
python3 - "$OUT" >> "$LOG" 2>&1 <<'PY'
import json, sys
from pathlib import Path
for name in ("readme64", "readme32", "big"):
    try:
        s = json.loads(Path(sys.argv[1], f"{name}.json").read_text().strip().splitlines()[-1])
    except Exception as err:
        print(name, "no summary:", err)
        continue
    secs = [round(w["seconds"], 3) for w in s["windows"]]
    print(name, "windows", len(secs), "seconds per window", secs, "compile", [round(w["compile_seconds"], 2) for w in s["windows"]],
          "n_obs", [w["n_obs"] for w in s["windows"]][:3], "rmse", [round(w["rmse"], 4) for w in s["windows"]][-1:])
PY
date -u >> "$LOG"

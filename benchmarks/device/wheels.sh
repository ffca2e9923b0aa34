#!/usr/bin/env bash
# Python 3.12 wheels of what levda needs and the lent GPU machine lacks (its image holds JAX, equinox,
# optax, xarray, rich, typer, filelock, flatbuffers; see ../../.library/device/KINDS.md where it exists),
# into .whl/ (ignored by git: *.whl), for `run` to carry:
#
#     bash benchmarks/device/wheels.sh            # here, once per session that has a device
#
# then run benchmarks/device/gpu_checks.sh there with carry [".whl"].
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64 any; do platforms+=(--platform "$p"); done
for pkg in zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0 pydantic==2.14.4 \
           pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 netCDF4==1.7.5.1.post1 \
           cftime==1.6.6.1 typer==0.29.2 annotated-doc==0.0.7; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d .whl "$pkg"
done
ls -la .whl
du -sh .whl

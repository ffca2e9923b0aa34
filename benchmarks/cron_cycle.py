"""A cron cycle's start-to-commit time with a cold and with a warm JAX compilation cache, and its
CPU seconds against a bare ``python -c "import jax"`` (paired runs, the issue's goal is <= 2x).

Each cycle is a fresh `levda assimilate` process (as cron starts it) that appends the windows of
one new observation file to the store. The first cycle runs with an empty compilation cache;
the following ones reuse it. Times are whole-process wall times, so they include Python and
JAX start-up. Ratios are measured in one run on one machine.

    python benchmarks/cron_cycle.py [--cycles 4]

Then the issue's own case: one new window (40 observations) per cycle, appended to a store of 20
windows, CPU seconds against a bare ``import jax`` as above.

Writes benchmarks/results/cron_cycle.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


CPU = []  # CPU seconds (user + system) of each child, in call order


def _child(cmd, env, cwd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def levda(*args, env, cwd):
    return _child([sys.executable, "-m", "levda_cli", *args], env, cwd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=4)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, LEVDA_CACHE_DIR=str(tmp / "cache"))
        levda("simulate", "lorenz96", "--out", "truth.zarr", "--duration", str(args.cycles + 1), env=env, cwd=tmp)
        levda("observe", "truth.zarr", "--out", "all.csv", env=env, cwd=tmp)
        lines = (tmp / "all.csv").read_text().splitlines()
        per_cycle = 20 * 40  # one model time unit (20 windows of 6 h) per cron cycle
        times, cycle_cpu, jax_cpu, jax1_cpu = [], [], [], []
        for c in range(args.cycles + 1):
            part = tmp / f"obs_{c}.csv"
            part.write_text("\n".join([lines[0], *lines[1 + c * per_cycle : 1 + (c + 1) * per_cycle]]) + "\n")
            times.append(levda("assimilate", part.name, "--model", "lorenz96", "--out", "an.zarr", "-q",
                               env=env, cwd=tmp))
            cycle_cpu.append(CPU[-1])
            _child([sys.executable, "-c", "import jax"], env, tmp)  # paired: right after each cycle
            jax_cpu.append(CPU[-1])
            _child([sys.executable, "-c", "import jax"], dict(env, OPENBLAS_NUM_THREADS="1"), tmp)
            jax1_cpu.append(CPU[-1])
        # A cold start of the same size for a like-for-like pair: new cache, new store.
        env_cold = dict(env, LEVDA_CACHE_DIR=str(tmp / "cache2"))
        cold2 = levda("assimilate", "obs_1.csv", "--model", "lorenz96", "--out", "an2.zarr", "-q",
                      env=env_cold, cwd=tmp)
    warm = statistics.median(times[1:])
    cold = statistics.median([times[0], cold2])
    text = [
        "# Cron cycle: cold against warm compilation cache",
        "",
        f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, CPU; {time.strftime('%Y-%m-%d')}.",
        "Lorenz-96 full-state, N = 20, 40 observations every 6 h, 20 windows (one model time unit)",
        "per cycle, each cycle a new `levda assimilate` process appending to one store.",
        "",
        "| cycle | cache | wall s |",
        "|---|---|---|",
        *(f"| {i} | {'cold' if i == 0 else 'warm'} | {t:.2f} |" for i, t in enumerate(times)),
        f"| extra | cold (new cache, new store) | {cold2:.2f} |",
        "",
        f"Median cold {cold:.2f} s, median warm {warm:.2f} s: warm/cold = {warm / cold:.2f}.",
        "",
        "CPU seconds (user + system) of each warm cycle against a bare `python -c \"import jax\"` run right",
        "after it, in the same environment (the goal's pair), and with `OPENBLAS_NUM_THREADS=1` (the setting",
        "the `levda` command makes for itself unless the user has set it or `OMP_NUM_THREADS`; numpy's OpenBLAS",
        "pool costs a bare `import jax` about 0.2 CPU s):",
        "",
        "| cycle | levda CPU s | import jax CPU s | ratio | import jax, OPENBLAS_NUM_THREADS=1 | ratio |",
        "|---|---|---|---|---|---|",
        *(f"| {i} | {c:.2f} | {j:.2f} | {c / j:.1f} | {j1:.2f} | {c / j1:.1f} |"
          for i, (c, j, j1) in enumerate(zip(cycle_cpu, jax_cpu, jax1_cpu)) if i),
        "",
        f"Median warm ratio: {statistics.median([c / j for c, j in zip(cycle_cpu[1:], jax_cpu[1:])]):.1f} "
        "(the issue's goal: at most 2); against the single-threaded OpenBLAS import: "
        f"{statistics.median([c / j for c, j in zip(cycle_cpu[1:], jax1_cpu[1:])]):.1f}.",
    ]
    # The issue's own case: one new window per cycle (6 h of observations), into a store of 20 windows.
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, LEVDA_CACHE_DIR=str(tmp / "cache"))
        levda("simulate", "lorenz96", "--out", "truth.zarr", "--duration", "2", env=env, cwd=tmp)
        levda("observe", "truth.zarr", "--out", "all.csv", env=env, cwd=tmp)
        lines = (tmp / "all.csv").read_text().splitlines()
        (tmp / "first.csv").write_text("\n".join(lines[:1 + 20 * 40]) + "\n")
        levda("assimilate", "first.csv", "--model", "lorenz96", "--out", "an.zarr", "-q", env=env, cwd=tmp)  # cold
        one_cpu, one_jax, one_jax1 = [], [], []
        for c in range(args.cycles):
            part = tmp / f"one_{c}.csv"
            part.write_text("\n".join([lines[0], *lines[1 + (20 + c) * 40: 1 + (21 + c) * 40]]) + "\n")
            levda("assimilate", part.name, "--model", "lorenz96", "--out", "an.zarr", "-q", env=env, cwd=tmp)
            one_cpu.append(CPU[-1])
            _child([sys.executable, "-c", "import jax"], env, tmp)
            one_jax.append(CPU[-1])
            _child([sys.executable, "-c", "import jax"], dict(env, OPENBLAS_NUM_THREADS="1"), tmp)
            one_jax1.append(CPU[-1])
    text += [
        "",
        "One new window per cycle (the issue's wording: 40 observations, 6 h), appended to a store of 20",
        "windows with a warm cache:",
        "",
        "| cycle | levda CPU s | import jax CPU s | ratio | import jax, OPENBLAS_NUM_THREADS=1 | ratio |",
        "|---|---|---|---|---|---|",
        *(f"| {i + 1} | {c:.2f} | {j:.2f} | {c / j:.1f} | {j1:.2f} | {c / j1:.1f} |"
          for i, (c, j, j1) in enumerate(zip(one_cpu, one_jax, one_jax1))),
        "",
        f"Median ratio, one window per cycle: {statistics.median([c / j for c, j in zip(one_cpu, one_jax)]):.1f}"
        f" (single-threaded OpenBLAS import: {statistics.median([c / j for c, j in zip(one_cpu, one_jax1)]):.1f}).",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cron_cycle.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()

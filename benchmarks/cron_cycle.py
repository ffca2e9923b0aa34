"""A cron cycle's start-to-commit time with a cold and with a warm JAX compilation cache.

Each cycle is a fresh `levda assimilate` process (as cron starts it) that appends the windows of
one new observation file to the store. The first cycle runs with an empty compilation cache;
the following ones reuse it. Times are whole-process wall times, so they include Python and
JAX start-up. Ratios are measured in one run on one machine.

    python benchmarks/cron_cycle.py [--cycles 4]

Writes benchmarks/results/cron_cycle.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def levda(*args, env, cwd):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "levda_cli", *args], env=env, cwd=cwd, check=True,
                   capture_output=True, text=True)
    return time.perf_counter() - t0


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
        times = []
        for c in range(args.cycles + 1):
            part = tmp / f"obs_{c}.csv"
            part.write_text("\n".join([lines[0], *lines[1 + c * per_cycle : 1 + (c + 1) * per_cycle]]) + "\n")
            times.append(levda("assimilate", part.name, "--model", "lorenz96", "--out", "an.zarr", "-q",
                               env=env, cwd=tmp))
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
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cron_cycle.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()

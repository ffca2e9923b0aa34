"""Observation reader and writer rates on a file of 10^6 observations (CSV, flat NetCDF, IODA v3).

    python benchmarks/observation_io.py [--n 1000000]

Writes benchmarks/results/observation_io.md. Peak memory is the process's maximum resident set
size after each read (it only grows, so reads are ordered smallest first).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from levda_cli.io import observations as obsio
from levda_cli.io import obsfiles


def make(n: int) -> obsio.ObservationSet:
    rng = np.random.default_rng(0)
    t = np.datetime64("2000-01-01T00:00:00", "s") + np.sort(rng.integers(0, 86400 * 30, n)).astype("timedelta64[s]")
    return obsio.ObservationSet(
        time=t, coords={"x": rng.uniform(0, 1e6, n), "y": rng.uniform(0, 1e6, n)},
        variable=rng.choice(np.array(["u", "v", "eta"], dtype=object), n), value=rng.standard_normal(n),
        error=rng.uniform(0.1, 1.0, n), source=np.full(n, "mem", dtype=object), row=np.arange(n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    args = ap.parse_args()
    obs = make(args.n)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, name in (("netcdf", "o.nc"), ("ioda", "o_ioda.nc"), ("csv", "o.csv")):
            path = Path(tmp) / name
            t0 = time.perf_counter()
            obsfiles.write_observations(obs, path, fmt)
            w = time.perf_counter() - t0
            t0 = time.perf_counter()
            back = obsfiles.read_observations([path])
            r = time.perf_counter() - t0
            t0 = time.perf_counter()
            obsio.screen(back, ("u", "v", "eta"), {"x": (0, 1e6), "y": (0, 1e6)}, "error")
            c = time.perf_counter() - t0
            assert len(back) == args.n
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rows.append((fmt, path.stat().st_size / 2**20, w, r, c, rss))
    lines = [
        "# Observation file rates",
        "",
        f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}.",
        f"{args.n} observations (time, x, y, variable, value, error), three variables.",
        "",
        "| format | file MiB | write s | read s | read obs/s | checks s | peak RSS MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for fmt, size, w, r, c, rss in rows:
        lines.append(f"| {fmt} | {size:.1f} | {w:.2f} | {r:.2f} | {args.n / r:,.0f} | {c:.2f} | {rss:.0f} |")
    out = Path(__file__).parent / "results" / "observation_io.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""The reference: DAPPER's own finite-size iEnKS (``iEnKS("Sqrt", xN=...)``) on the experiments of
``lorenz96_standard.py``, for levda's defaults rows to be read against (same model, same observing,
same N, same x_N; DAPPER's truth, noise and first guess).

40 variables, F = 8, RK4 dt = 0.05, every variable observed with R = I, N = 20, 20 time units of
burn-in (DAPPER's first guess is the truth's start + N(0, 0.001), not climatological), then the
given number of cycles; windows of L observation intervals shifted by one, single assimilation,
Gauss-Newton with at most 10 iterations. Scores as DAPPER reports them: the time mean of each
cycle's RMS error and RMS spread, for the filter analysis at the window's end ("a") and the
smoother at its start ("s").

DAPPER is not a levda dependency: ``pip install dapper`` (tested with 1.7.1) in any environment.

    python benchmarks/dapper_ienks.py [--cycles 10000] [--seeds 3,4] [--xn 3]

Writes benchmarks/results/dapper_ienks.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
EXPERIMENTS = [("L1_dt0.05", 1, 1), ("L10_S1_dt0.05", 10, 1), ("L4_S1_dt0.20", 4, 4)]  # name, L, obs every (steps)


def run(lag: int, every: int, xn: float, cycles: int, seed: int) -> dict:
    import dapper as dpr
    import dapper.da_methods as da
    import dapper.mods as modelling
    import dapper.tools.progressbar as progressbar
    from dapper.mods.Lorenz96.sakov2008 import HMM as base

    progressbar.disable_progbar = True
    hmm = base.copy()
    burn = round(20 / (0.05 * every))  # 20 time units
    hmm.tseq = modelling.Chronology(0.05, dko=every, Ko=cycles + burn, BurnIn=20)
    dpr.set_seed(seed)
    xx, yy = hmm.simulate()
    xp = da.iEnKS("Sqrt", N=20, Lag=lag, xN=xn, nIter=10, wtol=1e-4)
    t0 = time.perf_counter()
    xp.assimilate(hmm, xx, yy)
    wall = time.perf_counter() - t0
    xp.stats.average_in_time()
    out = {"L": lag, "obs_interval": 0.05 * every, "xn": xn, "seed": seed, "cycles": cycles, "wall_s": round(wall, 1)}
    for kind, name in (("a", "filter"), ("s", "smoother")):
        err, spread = getattr(xp.avrgs.err.rms, kind).val, getattr(xp.avrgs.spread.rms, kind).val
        out[f"{name}_rmse"], out[f"{name}_spread"] = float(err), float(spread)
        out[f"{name}_spread_skill"] = float(spread / err)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=10_000)
    ap.add_argument("--seeds", default="3,4")
    ap.add_argument("--xn", default="3", help="comma-separated x_N values")
    args = ap.parse_args()
    rows = []
    for name, lag, every in EXPERIMENTS:
        for xn in (float(x) for x in args.xn.split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                row = {"run": name, **run(lag, every, xn, args.cycles, seed)}
                print(row, flush=True)
                rows.append(row)
    import dapper

    meta = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores", "dapper": dapper.__version__,
            "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dapper_ienks.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1))
    lines = [
        "# DAPPER's finite-size iEnKS on the standard Lorenz-96 experiments (the reference for levda's defaults)",
        "",
        f"Machine: {meta['machine']}; DAPPER {meta['dapper']}; {meta['date']}. `benchmarks/dapper_ienks.py`:",
        "`iEnKS(\"Sqrt\", N=20, Lag=L, xN=x_N, nIter=10, wtol=1e-4)` on DAPPER's `Lorenz96.sakov2008` model",
        "(40 variables, all observed, R = I), 20 time units of burn-in, then the cycles below. Filter: the",
        "analysis at the window's end; smoother: at its start. Spread/skill = mean RMS spread / mean RMS error.",
        "",
        "| run | x_N | seed | cycles | filter RMSE | filter spread/skill | smoother RMSE | smoother spread/skill | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
        *(f"| {r['run']} | {r['xn']:g} | {r['seed']} | {r['cycles']} | {r['filter_rmse']:.4f} | "
          f"{r['filter_spread_skill']:.3f} | {r['smoother_rmse']:.4f} | {r['smoother_spread_skill']:.3f} | {r['wall_s']} |"
          for r in rows),
    ]
    (RESULTS / "dapper_ienks.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""The reference: DAPPER's own finite-size iEnKS (``iEnKS("Sqrt", xN=...)``) on the experiments of
``lorenz96_standard.py``, for levda's defaults rows to be read against (same model, same observing,
same N, same x_N; DAPPER's truth, noise and first guess).

40 variables, F = 8, RK4 dt = 0.05, every variable observed with R = I, N = 20, 20 time units of
burn-in (DAPPER's first guess is the truth's start + N(0, 0.001), not climatological), then the
given number of cycles; windows of L observation intervals shifted by one, single assimilation,
Gauss-Newton with at most 10 iterations. Scores as DAPPER reports them: the time mean of each
cycle's RMS error and RMS spread, for the filter analysis at the window's end ("a") and the
smoother at its start ("s").

``--part cold``: the cold starts of ``cold_start.py`` (400 windows, L = 1, 8 truths) with DAPPER's
iEnKS: truth and members drawn independently from the attractor (50 time units of free runs from
8 + N(0, 1)), the same scores as levda's table (RMSE over windows 100-199 and 200-399, the worst
20-window mean after window 100, spread/skill over 200-399), for levda's slow lock-on to be read
against the method's own.

DAPPER is not a levda dependency: ``pip install dapper`` (tested with 1.7.1) in any environment.

    python benchmarks/dapper_ienks.py [--part standard|cold|all] [--cycles 10000] [--seeds 3,4] [--xn 3]

Writes benchmarks/results/dapper_ienks.{json,md} (standard) and dapper_cold_start.md (cold).
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


def cold_start(xn: float, truth: int, windows: int = 400) -> dict:
    import dapper as dpr
    import dapper.da_methods as da
    import dapper.mods as modelling
    import dapper.tools.progressbar as progressbar
    import numpy as np
    from dapper.mods.Lorenz96 import step
    from dapper.mods.Lorenz96.sakov2008 import HMM as base

    progressbar.disable_progbar = True
    hmm = base.copy()
    hmm.tseq = modelling.Chronology(0.05, dko=1, Ko=windows - 1, BurnIn=0)
    rng = np.random.default_rng(500 + truth)

    def climatology(n):
        ens = 8.0 + rng.standard_normal((n, 40))
        for _ in range(1000):  # 50 time units of free runs
            ens = step(ens, 0, 0.05)
        return ens

    hmm.X0 = modelling.RV(M=40, func=climatology)  # the truth draws once, then the members: independent
    dpr.set_seed(100 + truth)
    xx, yy = hmm.simulate()
    xp = da.iEnKS("Sqrt", N=20, Lag=1, xN=xn, nIter=10, wtol=1e-4)
    xp.assimilate(hmm, xx, yy)
    err, spread = np.asarray(xp.stats.err.rms.a), np.asarray(xp.stats.spread.rms.a)
    return {"xn": xn, "truth": truth, "rmse_100_199": float(err[100:200].mean()), "rmse_200_end": float(err[200:].mean()),
            "worst_20_after_100": float(np.convolve(err[100:], np.ones(20) / 20, "valid").max()),
            "spread_skill_200_end": float(spread[200:].mean() / err[200:].mean())}


def main_cold(args):
    import numpy as np

    rows = [cold_start(float(xn), t) for xn in args.xn.split(",") for t in range(8)]
    lines = [
        "# DAPPER's finite-size iEnKS from a climatological first guess (the reference for `cold_start.md`)",
        "",
        f"Machine: {platform.node()} {platform.machine()}; {time.strftime('%Y-%m-%d')}. `benchmarks/dapper_ienks.py "
        "--part cold`: `iEnKS(\"Sqrt\", N=20, Lag=1, xN=x_N, nIter=10, wtol=1e-4)`, 400 windows, every site every",
        "0.05 with R = I, 8 truths; truth and members independent draws from the attractor. Mean over the truths",
        "(worst truth in brackets).",
        "",
        "| x_N | RMSE 100-199 | RMSE 200-end | worst 20-window mean after 100 | spread/skill 200-end |",
        "|---|---|---|---|---|",
    ]
    for xn in sorted({r["xn"] for r in rows}):
        part = [r for r in rows if r["xn"] == xn]
        cell = lambda key: f"{np.mean([r[key] for r in part]):.3f} ({max(r[key] for r in part):.3f})"  # noqa: E731
        lines.append(f"| {xn:g} | {cell('rmse_100_199')} | {cell('rmse_200_end')} | {cell('worst_20_after_100')} | "
                     f"{np.mean([r['spread_skill_200_end'] for r in part]):.2f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dapper_cold_start.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=10_000)
    ap.add_argument("--seeds", default="3,4")
    ap.add_argument("--xn", default="3", help="comma-separated x_N values")
    ap.add_argument("--part", choices=["standard", "cold", "all"], default="standard")
    args = ap.parse_args()
    if args.part in ("cold", "all"):
        main_cold(args)
    if args.part == "cold":
        return
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

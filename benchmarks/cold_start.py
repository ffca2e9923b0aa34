"""Cold starts of Lorenz-96 through the CLI, as a user runs them: how fast the filter locks on from a
climatological first guess, and whether it stays locked, for settings of the finite-size term's
confidence ``inflation.xn`` (the default config otherwise: N = 20, L = 1, every site every 6 h, R = I).

The standard benchmark (``lorenz96_standard.py``) discards 20 time units (400 cycles) of burn-in;
a user's first few hundred windows are exactly that burn-in, so they are measured here: analysis
RMSE against the truth over windows 100-199 and 200-399, the worst 20-window mean after window 100,
the spread/skill over windows 200-399, and the windows flagged inconsistent or diverging.

    python benchmarks/cold_start.py [--truths 8] [--xn 1,2,3] [--windows 400]

Writes benchmarks/results/cold_start.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).parents[1]
RESULTS = Path(__file__).parent / "results"


def levda(*args, cwd, allow=()):
    proc = subprocess.run([sys.executable, "-m", "levda_cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True)
    if proc.returncode in allow:
        return None
    if proc.returncode != 0:
        raise SystemExit(f"levda {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--truths", type=int, default=8)
    ap.add_argument("--xn", default="1,2,3")
    ap.add_argument("--windows", type=int, default=400)
    ap.add_argument("--obs-interval", type=float, default=0.05, help="observation interval = window shift")
    ap.add_argument("--window-obs", type=int, default=1, help="window length in observation intervals (L)")
    ap.add_argument("--set", action="append", default=[], help="more config overrides for every run")
    ap.add_argument("--tag", default="", help="suffix of the results files")
    args = ap.parse_args()
    xns = [float(x) for x in args.xn.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for t in range(args.truths):
            dt_obs = args.obs_interval
            levda("simulate", "lorenz96", "--out", f"t{t}.zarr", "--duration", args.windows * dt_obs, "--seed",
                  100 + t, "--interval", dt_obs, "-q", cwd=d)
            levda("observe", f"t{t}.zarr", "--out", f"o{t}.csv", "--seed", 200 + t, "--interval", dt_obs, cwd=d)
            window = ["--set", f"window.length={args.window_obs * dt_obs}", "--set", f"window.shift={dt_obs}"]
            for xn in xns:
                t0 = time.perf_counter()
                sets = [x for s in [f"inflation.xn={xn}", *args.set] for x in ("--set", s)]
                out = levda("assimilate", f"o{t}.csv", "--model", "lorenz96", "-c", REPO / "configs" / "lorenz96.toml",
                            "--truth", f"t{t}.zarr", "--out", f"a{t}_{xn}.zarr", "-q", "--json", *window, *sets,
                            cwd=d, allow=(7,))
                if out is None:  # exit 7: the run diverged numerically (non-finite cost or ensemble)
                    row = {"truth": t, "xn": xn, "failed": True}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
                    continue
                s = json.loads(out)
                w = s["windows"]
                r = np.array([x["rmse"] for x in w], float)
                sp = np.array([x["spread"] for x in w], float)
                worst = max(r[i:i + 20].mean() for i in range(100, len(r) - 19))
                row = {"truth": t, "xn": xn, "rmse_100_199": float(r[100:200].mean()),
                       "rmse_200_end": float(r[200:].mean()), "worst_20_after_100": float(worst),
                       "spread_skill_200_end": float(sp[200:].mean() / r[200:].mean()),
                       "inconsistent": len(s["windows_inconsistent"]), "diverging": len(s["windows_diverging"]),
                       "wall_s": round(time.perf_counter() - t0, 2)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    meta = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
            "windows": args.windows, "truths": args.truths, "overrides": args.set, "obs_interval": args.obs_interval,
            "window_obs": args.window_obs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"cold_start{args.tag}.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1))
    lines = ["# Lorenz-96 cold starts through the CLI", "",
             f"Machine: {meta['machine']}; {meta['date']}. `configs/lorenz96.toml` (N = 20, L = 1, finite-size term, "
             f"climatological first guess), window L = {args.window_obs} observation intervals, shift 1, {args.windows} "
             f"windows, {args.truths} truths (seeds 100+), every site observed every {args.obs_interval:g} time units "
             "with R = I" + (f", overrides {args.set}" if args.set else "") + ".", "",
             "Per setting: mean over the truths that ran to the end (worst truth in brackets); runs that ended in a "
             "numerical divergence (exit 7) counted apart.", "",
             "| xn | RMSE 100-199 | RMSE 200-end | worst 20-window mean after 100 | spread/skill 200-end "
             "| inconsistent windows | diverging windows | runs ended by exit 7 |", "|---|---|---|---|---|---|---|---|"]
    for xn in xns:
        failed = sum(1 for r in rows if r["xn"] == xn and r.get("failed"))
        sel = [r for r in rows if r["xn"] == xn and not r.get("failed")]

        def stat(key, worst=max):
            v = [r[key] for r in sel]
            return f"{np.mean(v):.3f} ({worst(v):.3f})"
        lines.append(f"| {xn:g} | {stat('rmse_100_199')} | {stat('rmse_200_end')} | {stat('worst_20_after_100')} "
                     f"| {np.mean([r['spread_skill_200_end'] for r in sel]):.2f} "
                     f"| {np.mean([r['inconsistent'] for r in sel]):.1f} | {np.mean([r['diverging'] for r in sel]):.1f} "
                     f"| {failed} |")
    (RESULTS / f"cold_start{args.tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

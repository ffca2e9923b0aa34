"""Latent assimilation on the sphere, through the CLI (issue 9, item 3): the forcing's amplitude and
width found from scattered sea-surface heights with the shipped sphere surrogate.

    python benchmarks/sphere.py [--cases 5] [--seed 2026] [--sites 82] [--error 1.0]

Each case: amplitude and width drawn uniformly from the prior range (seed never used in training),
a T42 truth (configs/simulate_sphere.toml: 5 days of spin-up, 10 days stored every 6 h), h observed
at ``--sites`` random places (1 % of the 128 x 64 grid: 82) at random times per 6 h, error
``--error`` m; ``levda assimilate -k sample_data/surrogates/sphere.ckpt -c configs/latent_sphere.toml``.
Reported: the parameters found with their posterior spread and z = (estimate - truth) / spread at
the last window, the analysis field RMSE (h, u, v on the grid, over the windows) against the free
surrogate run from the prior mean, spread/skill, flags and exit code. With ``--full-state``, also
full-state 4DEnVar on the physics at the same N and config (``levda assimilate --model sphere``): its
members start, like the surrogate's, from the model's own state at rest with parameters drawn from the
prior, spun up the truth's 5 days (``ensemble.spinup``), about 4 minutes a case here. Writes
benchmarks/results/sphere.md and sphere.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import _starts, free_run, levda, score  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CKPT = REPO / "sample_data" / "surrogates" / "sphere.ckpt"
CONFIG = REPO / "configs" / "latent_sphere.toml"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=5)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--sites", type=int, default=82)
    ap.add_argument("--error", type=float, default=1.0)
    ap.add_argument("--size", type=int, default=42)
    ap.add_argument("--ckpt", type=Path, default=CKPT)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra setting for the latent runs")
    ap.add_argument("--full-state", action="store_true", help="also full-state 4DEnVar on the physics")
    ap.add_argument("--out", type=Path, default=RESULTS / "sphere.md")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    draws = np.stack([rng.uniform(50.0, 150.0, args.cases), rng.uniform(10.0, 30.0, args.cases)], axis=1)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.setdefault("LEVDA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "levda-sphere-cache"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, (amp, width) in enumerate(draws):
            truth, obs = tmp / f"truth{i}.zarr", tmp / f"obs{i}.nc"
            # the sphere's defaults: configs/simulate_sphere.toml's 5-day spin-up, 10 days every 6 h
            code, _, err, _ = levda(["simulate", "sphere", "--size", args.size, "--trajectories", 1, "--seed", 100 + i,
                                     "--set", f"parameters.amplitude.value={amp}",
                                     "--set", f"parameters.width.value={width}", "--out", truth, "-q"], tmp, env)
            assert code == 0, err
            code, _, err, _ = levda(["observe", truth, "--out", obs, "--network", f"random:{args.sites}",
                                     "--times", "random", "--interval", 6, "--variables", "h",
                                     "--error", args.error, "--seed", 200 + i], tmp, env)
            assert code == 0, err
            truth_params = {"amplitude": float(amp), "width": float(width)}
            code, summary, err, wall = levda(["assimilate", obs, "-k", args.ckpt, "-c", CONFIG, "--truth", truth,
                                              "--out", tmp / f"latent{i}.zarr", "--json", "-q",
                                              *[a for kv in args.sets for a in ("--set", kv)]], tmp, env)
            case = {"case": i, **{f"{k}_true": v for k, v in truth_params.items()}, "exit": code,
                    "seconds": round(wall, 1)}
            if summary:
                case["latent"] = score(summary, truth_params)
                case["free_rmse"] = float(np.mean(free_run(args.ckpt, truth, [100.0, 20.0],
                                                           [s * 1.0 for s in _starts(summary)])))
            else:
                case["stderr"] = err[-2000:]
            if args.full_state:
                # the physics from rest with parameters from the prior (uniform over the model's declared ranges,
                # the surrogate's), spun up as the truth was: the full-state counterpart of the surrogate's z = 0
                code, summary, err, wall = levda(["assimilate", obs, "--model", "sphere", "--set",
                                                  f"model.size={args.size}", "-c", CONFIG,
                                                  "--set", "ensemble.spinup=120", "--truth", truth,
                                                  "--out", tmp / f"full{i}.zarr", "--json", "-q",
                                                  *[a for kv in args.sets for a in ("--set", kv)]], tmp, env)
                case["full_exit"], case["full_seconds"] = code, round(wall, 1)
                if summary:
                    case["full"] = score(summary, truth_params)
            print(json.dumps(case), flush=True)
            rows.append(case)
    write(rows, args)


def write(rows, args):
    import jax

    lines = [
        "# Latent assimilation on the sphere (forcing amplitude and width)", "",
        f"Machine: {platform.node() or 'vm'} {platform.machine()}, {os.cpu_count()} cores, CPU; JAX {jax.__version__}; "
        f"{time.strftime('%Y-%m-%d')}. `python benchmarks/sphere.py --cases {args.cases} --seed {args.seed} "
        f"--sites {args.sites} --error {args.error}{''.join(f' --set {kv}' for kv in args.sets)}`: T{args.size} truths with parameters drawn uniformly from the "
        f"prior (amplitude 50-150 m, width 10-30 degrees), h at {args.sites} random places and random times per "
        f"6 h, error {args.error} m, 10 days in 24-hour windows; {args.ckpt.name} with configs/latent_sphere.toml "
        "(N = 16, prior uniform over the checkpoint's range). Field RMSE over h, u, v on the grid, averaged over "
        "the windows; free run: the surrogate from the prior mean (100 m, 20 degrees) without observations; "
        "z = (estimate - truth) / posterior spread at the last window.", "",
        "| case | truth amplitude, width | latent (spread) | z | covered | latent RMSE | free RMSE | spread/skill "
        "| flags (unconv/incons/diverg) | exit | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ok = [r for r in rows if "latent" in r]
    for r in rows:
        if "latent" not in r:
            lines.append(f"| {r['case']} | {r['amplitude_true']:.1f}, {r['width_true']:.1f} | failed | | | | | | | "
                         f"{r['exit']} | {r['seconds']} |")
            continue
        s = r["latent"]
        lines.append(
            f"| {r['case']} | {r['amplitude_true']:.1f}, {r['width_true']:.1f} | {s['amplitude']:.1f} "
            f"({s['amplitude_spread']:.1f}), {s['width']:.2f} ({s['width_spread']:.2f}) | {s['amplitude_z']:.1f}, "
            f"{s['width_z']:.1f} | {s['covered']} | {s['rmse']:.3f} | {r['free_rmse']:.3f} | {s['spread_skill']:.2f} | "
            f"{s['unconverged']}/{s['inconsistent']}/{s['diverging']} | {r['exit']} | {r['seconds']} |")
    if ok:
        lines += ["", f"Parameters within 2 spreads in {np.mean([r['latent']['covered'] for r in ok]):.0%} of the "
                  f"cases; mean field RMSE {np.mean([r['latent']['rmse'] for r in ok]):.3f} against "
                  f"{np.mean([r['free_rmse'] for r in ok]):.3f} for the free run "
                  f"({np.mean([r['latent']['rmse'] for r in ok]) / np.mean([r['free_rmse'] for r in ok]):.2f} of it); "
                  f"spread/skill {np.mean([r['latent']['spread_skill'] for r in ok]):.2f}.", ""]
    full = [r for r in rows if "full" in r]
    if getattr(args, "full_state", False):
        lines += ["## Full-state 4DEnVar on the physics, the same observations, N and config", "",
                  "Members from rest with parameters drawn uniformly over the prior, spun up 5 days (the truth's "
                  "spin-up), `--model sphere`.", "",
                  "| case | full state (spread) | z | covered | full RMSE | latent RMSE | spread/skill | flags "
                  "(unconv/incons/diverg) | exit | seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if "full" not in r:
                lines.append(f"| {r['case']} | failed | | | | | | | {r.get('full_exit')} | {r.get('full_seconds')} |")
                continue
            f, lat = r["full"], r.get("latent", {})
            lines.append(
                f"| {r['case']} | {f['amplitude']:.1f} ({f['amplitude_spread']:.1f}), {f['width']:.2f} "
                f"({f['width_spread']:.2f}) | {f['amplitude_z']:.1f}, {f['width_z']:.1f} | {f['covered']} | "
                f"{f['rmse']:.3f} | {lat.get('rmse', float('nan')):.3f} | {f['spread_skill']:.2f} | "
                f"{f['unconverged']}/{f['inconsistent']}/{f['diverging']} | {r['full_exit']} | {r['full_seconds']} |")
        if full:
            lines += ["", f"Full state: parameters within 2 spreads in "
                      f"{np.mean([r['full']['covered'] for r in full]):.0%}; mean field RMSE "
                      f"{np.mean([r['full']['rmse'] for r in full]):.3f} (latent "
                      f"{np.mean([r['latent']['rmse'] for r in full if 'latent' in r]):.3f}); spread/skill "
                      f"{np.mean([r['full']['spread_skill'] for r in full]):.2f}.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

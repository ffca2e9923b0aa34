"""Is the latent filter's Reynolds-number posterior the Bayesian one? A check on Kolmogorov cases.

Every Kolmogorov flow of the benchmark starts from one known state, so Re alone sets the surrogate's
trajectory (z = 0 at its origin) and the posterior of Re given all a case's observations can be
computed exactly on a grid of Re values, with no ensemble, no Gaussian approximation and no windows:

- *surrogate posterior*: the surrogate run from z = 0 at each Re of the grid, decoded at every
  observation; likelihood with variance = observation error^2 + the checkpoint's recorded surrogate
  error^2 (what ``levda assimilate`` uses), uniform prior over the checkpoint's range. This is what the
  latent filter approximates: its last window's Re (mean, spread) should agree with it.
- *physics likelihood*: the exact model (``levda simulate``) at each Re of a coarser grid, observed
  exactly where and when the observations are (``levda observe`` with the same network seed and a
  negligible error), likelihood with the observation error only: where the information in the
  observations points when the model is exact. The difference between the two is the surrogate's.

For each case: truth (``levda simulate``), observations (``levda observe``), the latent run
(``levda assimilate -k kolmogorov.ckpt -c configs/latent_kolmogorov.toml``), then both posteriors.
The cases are ``calibration.py``'s for a given seed (the same draws).

    python benchmarks/kolmogorov_posterior.py --seed 2027 [--cases 0 3] [--physics-step 50]

Writes benchmarks/results/kolmogorov_posterior_seed<SEED>.md (and .json).

    python benchmarks/kolmogorov_posterior.py --error-scales 1 1.5 2 3 --seeds 2026 2027 2028 2029

asks instead what a larger surrogate error would do: the surrogate posterior alone (no filter, no
physics) with the recorded error scaled (``model.surrogate_error``), for every case of those seeds, and
the residual RMS at the true Re against the variance levda assumes; writes
benchmarks/results/kolmogorov_posterior_scales.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import KCKPT, KCONFIG, levda  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from exact_posterior import at_observations, posterior, surrogate_posterior  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _quadratic(grid, J):
    """Mean and spread of the Gaussian whose -log density is the parabola fitted (least squares) to
    ``J`` where it lies within 8 of its minimum: a coarse grid's moments would be its spacing's."""
    near = J - J.min() <= 8.0
    if near.sum() < 3:
        near = np.argsort(J)[:3]
    a, b, _ = np.polyfit(grid[near], J[near], 2)
    if a <= 0:
        return float(grid[np.argmin(J)]), float("nan")
    return float(-b / (2 * a)), float(1 / np.sqrt(2 * a))


def _draws(seed, n):
    rng = np.random.default_rng(seed)
    rng.uniform(260e3, 740e3, size=(10, 2))  # calibration.py's tsunami draws come first
    return rng.uniform(550.0, 1450.0, size=n)


def _env():
    env = dict(os.environ)
    env.setdefault("LEVDA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "levda-calibration-cache"))
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _simulate(re_, out, tmp, env):
    """calibration.py's truth at ``re_``: the training data's shared initial state, 32 x 32, 4 time units."""
    code, _, err, _ = levda(["simulate", "kolmogorov", "--size", 32, "--interval", 0.2, "--seed", 0, "--set",
                             "spinup=30", "--out", out, "--duration", 4, "--trajectories", 1, "--set",
                             f"parameters.Re.value={re_}", "-q"], tmp, env)
    assert code == 0, err


def _observe(truth, out, seed, error, tmp, env):
    """calibration.py's network: 10 random sites, u and v, at random times per 0.2 (``seed``: the places)."""
    code, _, err, _ = levda(["observe", truth, "--out", out, "--network", "random:10", "--times", "random",
                             "--interval", 0.2, "--error", error, "--seed", seed], tmp, env)
    assert code == 0, err


def error_scales(args):
    """The exact surrogate posterior of every case of ``args.seeds`` with the surrogate error scaled."""
    env, rows = _env(), []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for seed in args.seeds:
            for i, re_ in enumerate(_draws(seed, args.kolmogorov)):
                truth, obs = tmp / f"t{seed}_{i}.zarr", tmp / f"o{seed}_{i}.nc"
                _simulate(re_, truth, tmp, env)
                _observe(truth, obs, 300 + i, 0.1, tmp, env)
                at = at_observations(args.checkpoint, obs)
                post = posterior(at, "Re", error_scales=args.error_scales)
                assumed = float(np.sqrt(np.mean(at.error ** 2 + at.surrogate_var)))
                row = {"seed": seed, "case": i, "Re_true": float(re_), "posterior": post,
                       "z": [(re_ - m) / s for m, s in post], "assumed_rms": assumed}
                print(json.dumps(row), flush=True)
                rows.append(row)
    out = args.out or RESULTS / "kolmogorov_posterior_scales.md"
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    scales = args.error_scales
    lines = ["# The exact posterior of Re under the surrogate with its error scaled (Kolmogorov)", "",
             f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; {datetime.date.today()}. "
             f"`python benchmarks/kolmogorov_posterior.py --error-scales {' '.join(f'{k:g}' for k in scales)} "
             f"--seeds {' '.join(map(str, args.seeds))}` ({Path(args.checkpoint).name}; calibration.py's "
             "Kolmogorov cases of those seeds). Each cell: posterior mean +- spread (z = (truth - mean) / spread) "
             "with the recorded surrogate error times the scale added to each observation's variance; the "
             "last column is the RMS of sqrt(variance) levda assumes at scale 1.", "",
             "| seed | case | Re truth | " + " | ".join(f"scale {k:g}" for k in scales) + " | assumed sd |",
             "|---|---|---|" + "---|" * len(scales) + "---|"]
    for r in rows:
        cells = " | ".join(f"{m:.0f} +- {s:.0f} ({z:.1f})" for (m, s), z in zip(r["posterior"], r["z"]))
        lines.append(f"| {r['seed']} | {r['case']} | {r['Re_true']:.0f} | {cells} | {r['assumed_rms']:.3f} |")
    lines.append("")
    for j, k in enumerate(scales):
        covered = sum(abs(r["z"][j]) <= 2 for r in rows)
        lines.append(f"Scale {k:g}: truth within 2 spreads in {covered} of {len(rows)}.")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=2027, help="calibration.py's seed (the same Re draws)")
    ap.add_argument("--kolmogorov", type=int, default=5, help="cases drawn, as calibration.py --kolmogorov")
    ap.add_argument("--cases", type=int, nargs="*", help="run only these cases")
    ap.add_argument("--physics-step", type=float, default=50.0, help="Re spacing of the physics likelihood")
    ap.add_argument("--checkpoint", type=lambda p: Path(p).resolve(), default=KCKPT)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--error-scales", type=float, nargs="*", help="surrogate-error scales: the scales study")
    ap.add_argument("--seeds", type=int, nargs="*", default=[2026, 2027, 2028, 2029], help="for --error-scales")
    args = ap.parse_args()
    if args.error_scales:
        return error_scales(args)
    res, env, rows = _draws(args.seed, args.kolmogorov), _env(), []
    physics_grid = np.arange(500.0, 1500.0 + 1e-9, args.physics_step)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def simulate(re_, out):
            _simulate(re_, out, tmp, env)

        def observe(truth, out, seed, error):
            _observe(truth, out, seed, error, tmp, env)

        import xarray as xr

        physics = {}
        for i, re_ in enumerate(res):
            if args.cases and i not in args.cases:
                continue
            truth, obs = tmp / f"t{i}.zarr", tmp / f"o{i}.nc"
            simulate(re_, truth)
            observe(truth, obs, 300 + i, 0.1)
            code, summary, err, _ = levda(["assimilate", obs, "-k", args.checkpoint, "-c", KCONFIG, "--truth", truth,
                                           "--out", tmp / f"a{i}.zarr", "--json", "-q"], tmp, env)
            assert summary, err
            store = xr.open_zarr(tmp / f"a{i}.zarr")
            last = store.param_analysis.sel(param="Re").values[-1]  # (member,) at the last window
            filt = (float(np.mean(last)), float(np.std(last, ddof=1)))
            post = surrogate_posterior(args.checkpoint, obs, "Re")
            # the physics at each Re of the grid, observed exactly at the same places and times
            y = xr.open_dataset(obs).value.values
            J = []
            for g in physics_grid:
                if g not in physics:
                    simulate(g, tmp / f"p{g:.0f}.zarr")
                    physics[g] = tmp / f"p{g:.0f}.zarr"
                exact = tmp / f"e{i}_{g:.0f}.nc"
                observe(physics[g], exact, 300 + i, 1e-9)  # same seed: the same places and times
                J.append(0.5 * float(np.sum((y - xr.open_dataset(exact).value.values) ** 2) / 0.1 ** 2))
            J = np.asarray(J)
            phys = _quadratic(physics_grid, J)
            row = {"case": i, "Re_true": float(re_), "exit": code,
                   "filter": filt, "surrogate_posterior": post, "physics_posterior": phys,
                   "physics_best": float(physics_grid[np.argmin(J)]),
                   "z_filter": (re_ - filt[0]) / filt[1], "z_surrogate": (re_ - post[0]) / post[1],
                   "z_physics": (re_ - phys[0]) / phys[1], "physics_grid": physics_grid.tolist(),
                   "physics_J": J.tolist()}
            print(json.dumps(row), flush=True)
            rows.append(row)
    out = args.out or RESULTS / f"kolmogorov_posterior_seed{args.seed}.md"
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        f"# The latent filter's Re against the exact posterior (Kolmogorov, seed {args.seed})", "",
        f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; {datetime.date.today()}. "
        f"`python benchmarks/kolmogorov_posterior.py --seed {args.seed}` ({Path(args.checkpoint).name}, "
        "configs/latent_kolmogorov.toml; calibration.py's cases for this seed: 10 random sites, u and v at random "
        "times per 0.2, error 0.1, 4 time units). Filter: the last window's analysis ensemble (mean, spread). "
        "Surrogate posterior: the exact posterior of Re given all observations under the surrogate (run from "
        "z = 0 at 401 Re values, observation error^2 + recorded surrogate error^2, uniform prior). Physics "
        f"posterior: the exact model at Re every {args.physics_step:g} in [500, 1500], the observation error "
        "only, and the Gaussian of the parabola fitted to -log likelihood near its minimum (best: the grid's). "
        "z = (truth - mean) / spread.", "",
        "| case | Re truth | filter | z | surrogate posterior | z | physics posterior (best Re) | z |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        f, s, p = r["filter"], r["surrogate_posterior"], r["physics_posterior"]
        lines.append(f"| {r['case']} | {r['Re_true']:.0f} | {f[0]:.0f} +- {f[1]:.0f} | {r['z_filter']:.1f} | "
                     f"{s[0]:.0f} +- {s[1]:.0f} | {r['z_surrogate']:.1f} | {p[0]:.0f} +- {p[1]:.0f} "
                     f"({r['physics_best']:.0f}) | {r['z_physics']:.1f} |")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

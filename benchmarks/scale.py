"""Scale on one device: the observation term per Gauss-Newton iteration, and 10^4 cycles through the CLI.

Part 1 (``--part linearisation``): for latent tsunami (the shipped surrogate) and full-state
tsunami at 150 x 150, observations at random places and times in one window, N = 16 and 64:
seconds per Gauss-Newton iteration (one blocked linearisation + the N x N solve, as the solver
runs it) and the process's peak memory, each size in its own process. Beside each, a floor
measured in the same process: one batched evaluation of the same points along the same
directions (``jax.jvp`` of the observation operator over every observation at once, no blocks,
no scan), i.e. the arithmetic alone, and the ratio.

Part 2 (``--part cycles``): 10^4 Lorenz-96 cycles (N = 20, L = 1, 40 observations per window)
through ``levda assimilate`` as a user runs it (a subprocess, with --truth, members stored), and the
same cycles in the core alone (the same compiled window step and forecast called in a Python
loop on prepared observations); the store's file count.

    python benchmarks/scale.py                       # both parts (~25 min on 2 cores)
    python benchmarks/scale.py --part cycles --windows 2000

Writes benchmarks/results/scale.md (and scale.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).parents[1]
RESULTS = Path(__file__).parent / "results"


# -- part 1: one window's observation term --------------------------------------------------------

def tsunami_window(mode: str, n_obs: int, n_ens: int):
    """The benchmark window (also ``devices.py``'s): latent (shipped surrogate, a 20-minute window) or
    full-state tsunami 150 x 150, an ensemble of ``n_ens`` around a central source, and ``n_obs``
    observations of the three fields at random places and 20 random whole-second times.
    -> (problem, obs, ens, n_steps); float64 must be on."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from levda_cli.core import Problem, WindowObs
    from levda_cli.models import model_spec, surrogate_spec

    rng = np.random.default_rng(0)
    if mode == "latent":
        spec, header = surrogate_spec(REPO / "sample_data" / "surrogates" / "tsunami.ckpt")
        dyn = spec.dynamics
        problem = Problem(dyn, jnp.array([5e5, 5e5]), (0, 1))
        n_steps = 4  # a 20-minute window of 300 s latent steps
        window_seconds = n_steps * dyn.dt
        # members: the latent state 1200 s after the origin, parameters around the centre
        mu = jnp.asarray(np.stack([rng.uniform(3e5, 7e5, n_ens), rng.uniform(3e5, 7e5, n_ens)], 1))
        z = jax.vmap(lambda m: dyn.latent_trajectory(m, jnp.array([1200.0]), 4)[0])(mu)
        ens = jnp.concatenate([z, mu], axis=1)
    else:
        spec = model_spec("tsunami", 150)
        dyn = spec.dynamics
        problem = Problem(dyn, jnp.array([5e5, 5e5]))
        window_seconds = 1200.0
        n_steps = int(round(window_seconds / dyn.dt))
        x0 = dyn.initial_state(jnp.array([5e5, 5e5]))
        x0 = jax.jit(lambda x: jax.lax.fori_loop(0, 10, lambda i, y: dyn.step(y, None, dyn.dt), x))(x0)
        ens = x0 + 1e-3 * jax.random.normal(jax.random.PRNGKey(1), (n_ens, x0.shape[0]))
    n_times = 20  # random whole seconds in the window, 20 distinct (a 1-minute sampling)
    times = np.sort(rng.choice(np.arange(1, int(window_seconds) + 1), n_times, replace=False)).astype(float)
    obs = WindowObs(times=jnp.asarray(times), time_index=jnp.asarray(rng.integers(0, n_times, n_obs), jnp.int32),
                    coords=jnp.asarray(rng.uniform(1e4, 9.9e5, (n_obs, 2))),
                    field=jnp.asarray(rng.integers(0, 3, n_obs), jnp.int32),
                    value=jnp.asarray(rng.normal(0, 0.1, n_obs)), error=jnp.full(n_obs, 0.05),
                    mask=jnp.ones(n_obs, bool))
    return problem, obs, ens, n_steps


def _linearisation_case(mode: str, n_obs: int, n_ens: int, block: int, repeats: int) -> dict:
    """Runs in a child process: build the case, time an iteration and the floor, report peak RSS."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    from levda_cli.config import default_block
    from levda_cli.core.linearise import ObservationTerm

    problem, obs, ens, n_steps = tsunami_window(mode, n_obs, n_ens)
    dyn = problem.dynamics
    v_bar = ens.mean(axis=0)
    X = (ens - v_bar).T / np.sqrt(n_ens - 1.0)
    n_ctrl = X.shape[0]
    directions = min(n_ens, n_ctrl)
    block = block or default_block(dyn, directions)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @jax.jit
    def iteration(w):
        """One Gauss-Newton iteration as the solver makes it: linearise, then the N x N step."""
        term = ObservationTerm.build(problem, obs, n_steps, block)
        lin = term.linearise(v_bar, X, w)
        H = jnp.eye(n_ens) + lin.StS
        return w + jnp.linalg.solve(H, lin.Std - w), lin.d @ lin.d

    @jax.jit
    def floor(w):
        """The same points and directions in one batched JVP: no blocks, no scan."""
        T = jnp.eye(n_ctrl) if n_ctrl < n_ens else X
        v = v_bar + X @ w
        geometry = jax.vmap(dyn.geometry)(obs.coords, obs.field)

        def h(v):
            from levda_cli.core.dynamics import states_at

            xs = states_at(problem, v, obs.times, n_steps)
            _, mu = problem.split(v)
            prepared = dyn.prepare(xs, mu)
            return jax.vmap(lambda t, g, f: dyn.sample(prepared, mu, t, g, f))(obs.time_index, geometry, obs.field)

        value, tangents = jax.vmap(lambda t: jax.jvp(h, (v,), (t,)), in_axes=1, out_axes=(None, 1))(T)
        return value.sum() + tangents.sum()

    w = jnp.zeros(n_ens)

    def timed(f):
        jax.block_until_ready(f(w))  # compile
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(f(w))
            best = min(best, time.perf_counter() - t0)
        return best

    t_iter = timed(iteration)
    rss_iter = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        t_floor = timed(floor)
    except Exception as err:  # the unblocked floor may not fit where the blocked run does
        t_floor = float("nan")
        print(f"floor failed: {type(err).__name__}", file=sys.stderr)
    return {"mode": mode, "n_obs": n_obs, "n_ens": n_ens, "n_ctrl": n_ctrl, "directions": directions,
            "block": block, "seconds_per_iteration": t_iter, "floor_seconds": t_floor,
            "ratio": t_iter / t_floor, "peak_rss_mib_iteration": rss_iter / 1024,
            "rss_before_mib": rss0 / 1024}


def part_linearisation(sizes, ens_sizes, modes, repeats) -> list[dict]:
    rows = []
    for mode in modes:
        for n_ens in ens_sizes:
            for n_obs in sizes:
                code = (f"import json,sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import scale; "
                        f"print(json.dumps(scale._linearisation_case({mode!r}, {n_obs}, {n_ens}, 0, {repeats})))")
                t0 = time.perf_counter()
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3600)
                if out.returncode != 0:
                    rows.append({"mode": mode, "n_obs": n_obs, "n_ens": n_ens, "error": out.stderr[-500:]})
                    print(rows[-1], flush=True)
                    continue
                row = json.loads(out.stdout.strip().splitlines()[-1])
                row["process_seconds"] = time.perf_counter() - t0
                rows.append(row)
                print(row, flush=True)
    return rows


# -- part 2: many cycles through the CLI and in the core ------------------------------------------

def _levda(*args, cwd, env, capture=True):
    return subprocess.run([sys.executable, "-m", "levda_cli", *map(str, args)], cwd=cwd, env=env, check=True,
                          capture_output=capture, text=True)


def _core_cycles(obs_csv: Path, n_windows: int) -> dict:
    """The same windows in the core alone: the CLI's compiled calls (as many windows per call as the CLI
    makes, and one window per call as before 0.11), observations prepared on the device beforehand, no
    store, no diagnostics (no products)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    from levda_cli.config import AssimilateConfig, load_config, window_setup
    from levda_cli.core import WindowObs
    from levda_cli.cycling import _windows_per_call
    from levda_cli.firstguess import initial_ensemble as _initial_ensemble
    from levda_cli.io.layout import analysis_layout
    from levda_cli.io.obsfiles import read_observations
    from levda_cli.windowstep import window_functions

    cfg = load_config(AssimilateConfig, REPO / "configs" / "lorenz96.toml")
    spec = cfg.model.spec()
    setup = window_setup(cfg, spec)
    specs, _ = analysis_layout(spec, cfg.ensemble.size, spec.dynamics.n_state, [], cfg.output.members, "f8", 64)
    per_call = _windows_per_call(cfg, specs, False, False)
    obs = read_observations([obs_csv])
    hours = (obs.time - np.datetime64("2000-01-01T00:00:00")).astype("timedelta64[h]").astype(int)
    k = hours // 6 - 1
    order = np.argsort(k, kind="stable")
    bounds = np.searchsorted(k[order], np.arange(n_windows + 1))
    windows = []
    for i in range(n_windows):
        sel = order[bounds[i]:bounds[i + 1]]
        n = len(sel)
        windows.append(WindowObs(
            times=np.asarray([0.05]),
            time_index=np.zeros(64, np.int32), coords=np.pad(obs.coords["site"][sel][:, None], ((0, 64 - n), (0, 0))),
            field=np.zeros(64, np.int32), value=np.pad(obs.value[sel], (0, 64 - n)),
            error=np.pad(obs.error[sel], (0, 64 - n), constant_values=1.0), mask=np.arange(64) < n))
    key = jax.random.PRNGKey(cfg.ensemble.seed)
    background = _initial_ensemble(spec, setup, cfg, jax.random.fold_in(key, 10**9), jnp.float64)
    step, forward, _, chunk = window_functions(setup)
    out = {"per_call": per_call}
    # one window per call (step, then the forecast)
    single = [jax.device_put(w) for w in windows]
    t0 = time.perf_counter()
    analysis, _ = step(background, single[0], key, np.uint32(0), np.bool_(False))  # compile both
    jax.block_until_ready(forward(analysis))
    out["core_single_compile_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ens = background
    for i, wobs in enumerate(single):
        analysis, _ = step(ens, wobs, key, np.uint32(i), np.bool_(False))
        ens = forward(analysis)
    jax.block_until_ready(ens)
    out["core_single_seconds"] = time.perf_counter() - t0
    del single
    # per_call windows per call, as the CLI runs them
    calls = []
    for c in range(0, n_windows, per_call):
        part = windows[c:c + per_call]
        m = len(part)
        part = part + [part[-1]] * (per_call - m)
        calls.append(jax.device_put((
            np.asarray([0] + [1] * (m - 1) + [0] * (per_call - m), np.int64) if c == 0 else
            np.asarray([1] * m + [0] * (per_call - m), np.int64),
            jax.tree.map(lambda *v: np.stack(v), *part), np.arange(c, c + per_call, dtype=np.uint32),
            np.zeros(per_call, bool), np.arange(per_call) < m)))
    t0 = time.perf_counter()
    n_adv, wobs, ks, search, active = calls[0]
    jax.block_until_ready(chunk(background, n_adv, wobs, key, ks, search, active)[0])  # compile
    out["core_compile_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ens = background
    for n_adv, wobs, ks, search, active in calls:
        ens, _ = chunk(ens, n_adv, wobs, key, ks, search, active)
    jax.block_until_ready(ens)
    out["core_seconds"] = time.perf_counter() - t0
    return out


def part_cycles(n_windows: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, LEVDA_CACHE_DIR=str(tmp / "cache"))
        duration = n_windows * 0.05
        _levda("simulate", "lorenz96", "--out", "truth.zarr", "--duration", f"{duration:g}", cwd=tmp, env=env)
        _levda("observe", "truth.zarr", "--out", "obs.csv", cwd=tmp, env=env)
        cmd = ["assimilate", "obs.csv", "-c", REPO / "configs" / "lorenz96.toml", "--truth", "truth.zarr",
               "--out", "an.zarr", "--json", "-q"]
        t0 = time.perf_counter()
        out = _levda(*cmd, cwd=tmp, env=env)
        cli_seconds = time.perf_counter() - t0
        summary = json.loads(out.stdout.strip().splitlines()[-1])
        # the same run again with the compilation cache the first one filled (a new store)
        t0 = time.perf_counter()
        warm_summary = json.loads(_levda(*cmd[:-3], "an_warm.zarr", "--json", "-q", cwd=tmp, env=env)
                                  .stdout.strip().splitlines()[-1])
        cli_warm_seconds = time.perf_counter() - t0
        files = sum(1 for p in (tmp / "an.zarr").rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in (tmp / "an.zarr").rglob("*") if p.is_file())
        import numpy as np

        rows = summary["windows"]
        rmse = float(np.mean([r["rmse_filter"] for r in rows[len(rows) // 10:]]))
        spread = float(np.mean([r["spread_filter"] for r in rows[len(rows) // 10:]]))
        code = (f"import json,sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import scale; "
                f"print(json.dumps(scale._core_cycles({str(tmp / 'obs.csv')!r}, {n_windows})))")
        core = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                         env=env).stdout.strip().splitlines()[-1])
    return {"windows": n_windows, "cli_seconds": cli_seconds, "compile_seconds": summary["compile_seconds"],
            "analysis_seconds": summary["analysis_seconds"], **core,
            "cli_warm_seconds": cli_warm_seconds, "warm_compile_seconds": warm_summary["compile_seconds"],
            "ratio": cli_seconds / core["core_seconds"], "files": files, "store_mib": size / 2**20,
            "rmse_filter": rmse, "spread_filter": spread, "unconverged": len(summary["windows_unconverged"])}


def write_markdown() -> str:
    """benchmarks/results/scale.md from the JSON results of both parts (whichever exist)."""
    parts = {}
    for name in ("scale", "scale_linearisation", "scale_cycles"):
        path = RESULTS / f"{name}.json"
        if path.exists():
            data = json.loads(path.read_text())
            for key in ("linearisation", "cycles"):
                if key in data:
                    parts[key] = (data, data[key])
    text = ["# Scale on one device", ""]
    if "linearisation" in parts:
        data, rows = parts["linearisation"]
        text += [
            f"## One window's observation term ({data['machine']}, CPU, JAX {_jax_version()}; {data['date']})",
            "",
            "Observations at random places and 20 random whole-second times in one 20-minute window; float64.",
            "Iteration: one blocked linearisation and the N x N Gauss-Newton step. Floor: the same points along",
            "the same directions in one batched JVP (no blocks, no scan), in the same process. Peak RSS: the",
            "whole process after the timed iterations (its start, JAX and the model included: see `before`).",
            "",
            "| mode | obs / window | N | directions | block | s / iteration | floor s | ratio | peak RSS MiB | before MiB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            if "error" in r:
                text.append(f"| {r['mode']} | {r['n_obs']} | {r['n_ens']} | failed: {r['error'][-80:]} |")
                continue
            text.append(f"| {r['mode']} | {r['n_obs']:,} | {r['n_ens']} | {r['directions']} | {r['block']} | "
                        f"{r['seconds_per_iteration']:.3f} | {r['floor_seconds']:.3f} | {r['ratio']:.2f} | "
                        f"{r['peak_rss_mib_iteration']:.0f} | {r['rss_before_mib']:.0f} |")
        text.append("")
    if "cycles" in parts:
        data, c = parts["cycles"]
        text += [
            f"## {c['windows']:,} Lorenz-96 cycles ({data['machine']}, CPU; {data['date']})",
            "",
            "N = 20, L = 1, 40 observations per 6-hourly window (CSV), `--truth`, members stored. CLI: the whole",
            "`levda assimilate` process, first with an empty compilation cache (cold), then again into a new",
            "store with the cache the first run filled (warm). Core: the CLI's own compiled calls in a Python loop",
            f"({c.get('per_call', 1)} windows per call, as the CLI makes them; and one window per call with the",
            "forecast as its own call, the CLI before 0.11) on observations prepared on the device beforehand",
            "(no reading, no diagnostics, no store), after compiling.",
            "",
            "| | seconds |",
            "|---|---|",
            f"| `levda assimilate`, cold cache (whole process) | {c['cli_seconds']:.1f} |",
            f"| of which compiling (reported by the run) | {c['compile_seconds']:.1f} |",
            f"| `levda assimilate`, warm cache (whole process) | {c.get('cli_warm_seconds', float('nan')):.1f} |",
            f"| of which loading the compiled calls (reported by the run) | "
            f"{c.get('warm_compile_seconds', float('nan')):.1f} |",
            f"| core alone, {c.get('per_call', 1)} windows per call | {c['core_seconds']:.1f} |",
            f"| its compile | {c.get('core_compile_seconds', float('nan')):.1f} |",
            f"| core alone, one window per call | {c.get('core_single_seconds', float('nan')):.1f} |",
            "",
            f"Warm CLI / core = {c.get('cli_warm_seconds', float('nan')) / c['core_seconds']:.2f}; cold CLI / (core + "
            f"its compile) = {c['cli_seconds'] / (c['core_seconds'] + c.get('core_compile_seconds', float('nan'))):.2f}. "
            f"Store: {c['files']} files, {c['store_mib']:.0f} MiB. Filter RMSE {c['rmse_filter']:.3f}, spread "
            f"{c['spread_filter']:.3f} (after the first 10 %); {c['unconverged']} unconverged windows.",
            "",
        ]
    notes = RESULTS / "scale_notes.md"
    if notes.exists():
        text += [notes.read_text().rstrip("\n"), ""]
    (RESULTS / "scale.md").write_text("\n".join(text) + "\n")
    return "\n".join(text)


def _jax_version() -> str:
    import jax

    return jax.__version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["all", "linearisation", "cycles"], default="all")
    ap.add_argument("--windows", type=int, default=10_000)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--ensembles", default="16,64")
    ap.add_argument("--modes", default="latent,full")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--markdown-only", action="store_true", help="rewrite scale.md from the JSON results")
    args = ap.parse_args()
    if args.markdown_only:
        print(write_markdown())
        return
    machine = f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores"
    results = {"machine": machine, "date": time.strftime("%Y-%m-%d")}
    if args.part in ("all", "linearisation"):
        results["linearisation"] = part_linearisation([int(s) for s in args.sizes.split(",")],
                                                      [int(s) for s in args.ensembles.split(",")],
                                                      args.modes.split(","), args.repeats)
    if args.part in ("all", "cycles"):
        results["cycles"] = part_cycles(args.windows)
        print(results["cycles"], flush=True)
    RESULTS.mkdir(exist_ok=True)
    name = "scale" if args.part == "all" else f"scale_{args.part}"
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=1) + "\n")
    print(write_markdown())


if __name__ == "__main__":
    main()

"""Shipped surrogates: held-out error, training time, size, the cost of one roll-out plus decode
at 10^4 points, and one latent 4DEnVar window against one full-state window (same observations).

    python benchmarks/surrogate.py NAME=CHECKPOINT:STORE ...
    e.g. python benchmarks/surrogate.py tsunami=sample_data/surrogates/tsunami.ckpt:tsunami.zarr

The stores are made by the commands in sample_data/surrogates/README.md. Writes
benchmarks/results/surrogate.md.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from levda_cli.core import GaussNewton, Problem, WindowObs, WindowSetup, analyse_window  # noqa: E402
from levda_cli.io.checkpoint import load_checkpoint  # noqa: E402
from levda_cli.models import model_spec  # noqa: E402
from levda_cli.training import evaluate  # noqa: E402


def timed(fn, *args, repeat=5):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def window_costs(model, header, n_ens=16, n_obs=256):
    """One analyse_window, latent and full-state, on the same observation layout."""
    rng = np.random.default_rng(0)
    lows = np.array([c["low"] for c in header["coordinates"]])
    highs = np.array([c["high"] for c in header["coordinates"]])
    coords = rng.uniform(lows, highs, (n_obs, len(lows)))
    interval = header["time"]["frame_interval"]
    obs = WindowObs(times=jnp.array([interval, 2 * interval]), time_index=jnp.asarray(rng.integers(0, 2, n_obs)),
                    coords=jnp.asarray(coords), field=jnp.asarray(rng.integers(0, len(header["fields"]), n_obs)),
                    value=jnp.zeros(n_obs), error=jnp.ones(n_obs), mask=jnp.ones(n_obs, bool))
    out = {}
    # Latent: control [z; mu].
    mu0 = jnp.asarray([p["default"] for p in header["parameters"]])
    latent = Problem(model, mu0, tuple(range(len(mu0))))
    n_win = int(round(2 * interval / model.dt))
    setup = WindowSetup(latent, GaussNewton(max_iterations=3, tolerance=1e-12), n_window=n_win, n_shift=n_win,
                        n_field=len(header["fields"]))
    ens = jnp.concatenate([0.1 * jnp.asarray(rng.standard_normal((n_ens, model.n_state))),
                           mu0 + 0.01 * jnp.abs(mu0) * jnp.asarray(rng.standard_normal((n_ens, len(mu0))))], axis=1)
    f = eqx.filter_jit(analyse_window)
    out["latent_s"] = timed(f, setup, ens, obs, jax.random.PRNGKey(0), repeat=3)
    # Full state: the physics at the training resolution and at the full size of DESIGN section 2.
    for label, size in (("", len(header["grid"][header["grid"]["dims"][-1]])), ("_150", 150)):
        spec = model_spec(header["benchmark"], size)
        full = Problem(spec.dynamics, mu0)
        n_full = int(round(2 * interval / spec.dynamics.dt))
        setup_f = WindowSetup(full, GaussNewton(max_iterations=3, tolerance=1e-12), n_window=n_full,
                              n_shift=n_full, n_field=len(header["fields"]))
        x0 = spec.initial_state(mu0, jax.random.PRNGKey(0), 1.0)
        ens_f = x0 + 1e-3 * jnp.asarray(rng.standard_normal((n_ens, x0.shape[0])))
        out["full_s" + label] = timed(f, setup_f, ens_f, obs, jax.random.PRNGKey(0), repeat=3)
        out["n_state_full" + label] = int(x0.shape[0])
    return out


def main(args):
    rows = []
    for arg in args:
        name, _, rest = arg.partition("=")
        ckpt, _, store = rest.partition(":")
        model, header = load_checkpoint(ckpt, dtype=jnp.float64)
        result = evaluate(ckpt, store, "test")
        pts = jnp.asarray(np.random.default_rng(0).uniform(
            [c["low"] for c in header["coordinates"]], [c["high"] for c in header["coordinates"]],
            (10_000, len(header["coordinates"]))))
        mu = jnp.asarray([p["default"] for p in header["parameters"]])
        t_end = header["time"]["last_frame"] - header["time"]["origin"]
        n_steps = int(np.ceil(t_end / model.dt - 1e-9))

        @jax.jit
        def rollout_decode(mu):
            z = model.latent_trajectory(mu, jnp.array([t_end]), n_steps)[0]
            return jax.vmap(lambda p: model.decode(z, p))(pts)

        cost = timed(rollout_decode, mu)
        win = window_costs(model, header)
        rows.append((name, header, result, cost, win, Path(ckpt).stat().st_size))
    lines = [
        "# Shipped surrogates",
        "",
        f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, CPU; JAX {jax.__version__}; "
        f"{time.strftime('%Y-%m-%d')}.",
        "Relative L2 error over whole test trajectories (all frames, all grid points); roll-out from z = 0 to the",
        "last frame plus decoding at 10^4 random points (float64, median of 5); one 4DEnVar window",
        "(N = 16, 256 observations at two times, 3 Gauss-Newton iterations), latent against full state",
        "on the training grid, same observation layout (median of 3).",
        "",
        "| surrogate | test rel. L2 per field | training s | epochs | trainable parameters | file KiB "
        "| roll-out + 10^4 decodes ms | latent window ms | full-state window ms (state size) | speed-up "
        "| full-state 150 x 150 window ms (state size) | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, h, res, cost, win, size in rows:
        errs = ", ".join(f"{f} {v:.1%}" for f, v in res["rel_l2"].items())
        lines.append(
            f"| {name} | {errs} | {h['training']['seconds']} | {h['training']['epochs']} | {h['n_parameters']} "
            f"| {size / 1024:.0f} | {cost * 1e3:.1f} | {win['latent_s'] * 1e3:.1f} "
            f"| {win['full_s'] * 1e3:.1f} ({win['n_state_full']}) | {win['full_s'] / win['latent_s']:.1f}x "
            f"| {win['full_s_150'] * 1e3:.0f} ({win['n_state_full_150']}) | {win['full_s_150'] / win['latent_s']:.0f}x |")
    out = Path(__file__).parent / "results" / "surrogate.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])

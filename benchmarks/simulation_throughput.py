"""Simulation throughput of each benchmark's physics: trajectory-steps per second.

For each model at its CI size and at the full size of DESIGN section 2, a batch of trajectories
is integrated with the production step function (vmapped, jitted, float64); the compile is done
first and not timed.

    python benchmarks/simulation_throughput.py

Writes benchmarks/results/simulation_throughput.md.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

from levda_cli.models import model_spec  # noqa: E402

CASES = [  # model, size, trajectories in the batch, steps timed
    ("lorenz96", 40, 64, 2000),
    ("tsunami", 50, 8, 200),
    ("tsunami", 150, 4, 50),
    ("kolmogorov", 32, 8, 200),
    ("kolmogorov", 150, 2, 20),
    ("sphere", 21, 4, 50),
    ("sphere", 42, 2, 20),
]


def measure(name, size, batch, steps):
    spec = model_spec(name, size)
    dyn = spec.dynamics
    mu = jnp.asarray([[v for v in spec.params.values()]] * batch)
    keys = jax.random.split(jax.random.PRNGKey(0), batch)
    x0 = jax.vmap(lambda m, k: spec.initial_state(m, k, 1.0))(mu, keys)

    @jax.jit
    def run(x):
        def body(i, x):
            return jax.vmap(lambda xi, mi: dyn.step(xi, mi, jnp.asarray(dyn.dt, xi.dtype)))(x, mu)

        return jax.lax.fori_loop(0, steps, body, x)

    run(x0).block_until_ready()
    t0 = time.perf_counter()
    run(x0).block_until_ready()
    wall = time.perf_counter() - t0
    return {"model": name, "size": size, "n_state": dyn.n_state, "dt": dyn.dt, "batch": batch,
            "steps": steps, "wall_s": wall, "traj_steps_per_s": batch * steps / wall}


def main():
    rows = [measure(*case) for case in CASES]
    lines = [
        "# Simulation throughput",
        "",
        f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"{jax.devices()[0].platform.upper()}; JAX {jax.__version__}; float64; {time.strftime('%Y-%m-%d')}.",
        "Production step functions, vmapped over the batch, compile excluded. Full size: 150 x 150;",
        "the sphere at T21 (CI, 64 x 32 Gaussian grid) and T42 (128 x 64). dt in model time units",
        "(Lorenz-96 units, seconds, Kolmogorov time units, hours).",
        "",
        "| model | grid | state size | dt | batch | steps | wall s | trajectory-steps/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['size']} | {r['n_state']} | {r['dt']:.4g} | {r['batch']} | {r['steps']} "
                     f"| {r['wall_s']:.2f} | {r['traj_steps_per_s']:.1f} |")
    out = Path(__file__).parent / "results" / "simulation_throughput.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

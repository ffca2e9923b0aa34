"""The exact posterior of a surrogate's parameter given a set of observations, on a grid.

Where every truth starts from the surrogate's own initial state (the Kolmogorov benchmark: one shared
state, z = 0 at the origin), the parameters alone set the surrogate's trajectory, so the posterior of a
single parameter given all observations needs no ensemble, no windows and no Gaussian approximation:
run the surrogate at each value of a grid over the checkpoint's range, decode at every observation,
and weigh with levda's likelihood (variance = observation error^2 + the checkpoint's recorded surrogate
error^2 at the observation's lead time) under a uniform prior. Used by ``test_latent.py`` and
``benchmarks/kolmogorov_posterior.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

EPOCH = np.datetime64("2000-01-01T00:00:00")


def grid_moments(grid, J):
    """Mean and standard deviation of the density proportional to ``exp(-J)`` on ``grid``."""
    p = np.exp(-(J - J.min()))
    p /= p.sum()
    mean = float((p * grid).sum())
    return mean, float(np.sqrt((p * (grid - mean) ** 2).sum()))


def surrogate_posterior(ckpt: Path, obs_path: Path, name: str, n_grid: int = 401,
                        error_scales=(1.0,)) -> tuple[float, float] | list[tuple[float, float]]:
    """Mean and spread of parameter ``name`` (the checkpoint's only one) given every observation in the
    flat NetCDF file ``obs_path`` (times in seconds since 2000-01-01), under the surrogate (see above);
    with several ``error_scales`` (multiples of the recorded surrogate error, as ``model.surrogate_error``),
    one pair per scale."""
    import jax
    import jax.numpy as jnp
    import xarray as xr

    jax.config.update("jax_enable_x64", True)
    from levda_cli.models import surrogate_error_sd, surrogate_spec

    spec, header = surrogate_spec(ckpt)
    assert list(spec.prior) == [name], f"{ckpt} has parameters {list(spec.prior)}"
    dyn = spec.dynamics
    obs = xr.open_dataset(obs_path)
    t = (obs.time.values - EPOCH) / np.timedelta64(1, "s") / header["time"]["unit_seconds"]  # model time
    times, index = np.unique(t - header["time"]["origin"], return_inverse=True)
    n_steps = int(np.ceil(float(times.max()) / dyn.dt)) + 1
    field = np.array([spec.fields.index(v) for v in obs.variable.values])
    coords = jnp.asarray(np.stack([obs[c].values for c in spec.coords], 1))
    sd = surrogate_error_sd(header, 1.0)
    surrogate_var = np.array([sd(spec.fields[f], tt) for f, tt in zip(field, t)]) ** 2
    y = obs.value.values

    @jax.jit
    def h(mu):
        z = dyn.latent_trajectory(jnp.reshape(mu, (1,)), jnp.asarray(times), n_steps)
        return jax.vmap(lambda zi, c, f: dyn.decode(zi, c)[f])(z[index], coords, jnp.asarray(field))

    grid = np.linspace(*spec.prior[name], n_grid)
    misfit2 = np.stack([(y - np.asarray(h(jnp.float64(g)))) ** 2 for g in grid])
    out = [grid_moments(grid, 0.5 * (misfit2 / (obs.error.values ** 2 + k ** 2 * surrogate_var)).sum(1))
           for k in error_scales]
    return out[0] if len(out) == 1 else out

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
from types import SimpleNamespace

import numpy as np

EPOCH = np.datetime64("2000-01-01T00:00:00")


def grid_moments(grid, J):
    """Mean and standard deviation of the density proportional to ``exp(-J)`` on ``grid``."""
    p = np.exp(-(J - J.min()))
    p /= p.sum()
    mean = float((p * grid).sum())
    return mean, float(np.sqrt((p * (grid - mean) ** 2).sum()))


def at_observations(ckpt: Path, obs_path: Path) -> SimpleNamespace:
    """The surrogate of ``ckpt`` run from z = 0 and decoded where and when the observations of the flat
    NetCDF file ``obs_path`` are (times in seconds since 2000-01-01), as levda's latent mode does:
    ``trajectory(mu)`` (z at the distinct observation times ``seconds``), ``h(mu)`` (one value per
    observation), with the observations' ``value``, ``error`` and the recorded surrogate error variance
    ``surrogate_var`` at each observation's lead time; ``spec`` and ``header`` of the checkpoint."""
    import jax
    import jax.numpy as jnp
    import xarray as xr

    jax.config.update("jax_enable_x64", True)
    from levda_cli.models import surrogate_error_sd, surrogate_spec

    spec, header = surrogate_spec(ckpt)
    dyn = spec.dynamics
    obs = xr.open_dataset(obs_path)
    seconds = (obs.time.values - EPOCH) / np.timedelta64(1, "s")
    t = seconds / header["time"]["unit_seconds"]  # model time
    times, index = np.unique(t - header["time"]["origin"], return_inverse=True)
    n_steps = int(np.ceil(float(times.max()) / dyn.dt)) + 1
    field = np.array([spec.fields.index(v) for v in obs.variable.values])
    coords = jnp.asarray(np.stack([obs[c].values for c in spec.coords], 1))
    sd = surrogate_error_sd(header, 1.0)

    @jax.jit
    def trajectory(mu):
        return dyn.latent_trajectory(jnp.atleast_1d(jnp.asarray(mu, jnp.float64)), jnp.asarray(times), n_steps)

    @jax.jit
    def h(mu):
        return jax.vmap(lambda zi, c, f: dyn.decode(zi, c)[f])(trajectory(mu)[index], coords, jnp.asarray(field))

    return SimpleNamespace(spec=spec, header=header, trajectory=trajectory, h=h, seconds=np.unique(seconds),
                           field=field, value=obs.value.values, error=obs.error.values,
                           surrogate_var=np.array([sd(spec.fields[f], tt) for f, tt in zip(field, t)]) ** 2)


def posterior(at: SimpleNamespace, name: str, n_grid: int = 401, error_scales=(1.0,)) -> list[tuple[float, float]]:
    """Mean and spread of parameter ``name`` (the checkpoint's only one) given the observations of ``at``
    (``at_observations``), one pair per multiple of the recorded surrogate error in ``error_scales`` (as
    ``model.surrogate_error``)."""
    assert list(at.spec.prior) == [name], f"the checkpoint has parameters {list(at.spec.prior)}"
    grid = np.linspace(*at.spec.prior[name], n_grid)
    misfit2 = np.stack([(at.value - np.asarray(at.h(g))) ** 2 for g in grid])
    return [grid_moments(grid, 0.5 * (misfit2 / (at.error ** 2 + k ** 2 * at.surrogate_var)).sum(1))
            for k in error_scales]


def surrogate_posterior(ckpt: Path, obs_path: Path, name: str, n_grid: int = 401) -> tuple[float, float]:
    """Mean and spread of parameter ``name`` given every observation in ``obs_path``, under the surrogate
    of ``ckpt`` (see above)."""
    return posterior(at_observations(ckpt, obs_path), name, n_grid)[0]

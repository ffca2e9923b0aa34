"""Truths and synthetic observations from the benchmark physics (``levda simulate``/``observe``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from levda_cli.config import ObserveConfig, SimulateConfig, resolved
from levda_cli.errors import ConfigError, ObservationError
from levda_cli.io import observations as obsio
from levda_cli.io.store import dumps_attr
from levda_cli.io.trajectories import open_trajectories, write_trajectories
from levda_cli.models import full_state_model


def _steps(interval: float, dt: float, what: str) -> int:
    n = interval / dt
    if abs(n - round(n)) > 1e-9 or round(n) < 1:
        raise ConfigError(f"{what} {interval} is not a whole number of model steps (dt = {dt})")
    return int(round(n))


def simulate(cfg: SimulateConfig, out: Path, overwrite: bool = False, command: str = "") -> dict:
    """Run the physics from random states (spun up) and write the trajectories to ``out``."""
    import jax
    import jax.numpy as jnp
    import xarray as xr

    from levda_cli.cycling import configure_jax

    configure_jax("float64")
    spec = full_state_model(cfg.model.name, cfg.model.n_state, cfg.model.dt)
    dyn = spec.dynamics
    every = _steps(cfg.interval, cfg.model.dt, "output interval")
    n_out = _steps(cfg.duration, cfg.interval, "duration") if cfg.duration >= cfg.interval else 0
    if n_out < 1:
        raise ConfigError(f"duration {cfg.duration} is shorter than the output interval {cfg.interval}")
    n_spin = round(cfg.spinup / cfg.model.dt)
    key = jax.random.PRNGKey(cfg.seed)
    x0 = cfg.forcing + jax.random.normal(key, (cfg.trajectories, dyn.n_state), jnp.float64)

    @jax.jit
    def run(x0):
        def one(x):
            if n_spin:
                x = dyn.integrate(x, cfg.forcing, n_spin, 1)[-1]
            return jnp.concatenate([x[None], dyn.integrate(x, cfg.forcing, n_out * every, every)])

        return jax.vmap(one)(x0)

    states = np.asarray(run(x0))
    epoch = np.datetime64(cfg.time.epoch.replace(tzinfo=None), "s")
    model_time = np.arange(n_out + 1) * cfg.interval
    seconds = np.round(model_time * cfg.time.unit_seconds).astype(np.int64)
    ds = xr.Dataset(
        {
            "x": (("trajectory", "time", "site"), states, {"long_name": "Lorenz-96 state"}),
            "F": (("trajectory",), np.full(cfg.trajectories, cfg.forcing), {"long_name": "forcing"}),
        },
        coords={
            "trajectory": np.arange(cfg.trajectories),
            "time": ("time", epoch + seconds.astype("timedelta64[s]"), {"standard_name": "time"}),
            "model_time": ("time", model_time, {"units": "model time units"}),
            "site": np.arange(dyn.n_state),
        },
        attrs={
            "benchmark": spec.name, "epoch": str(cfg.time.epoch.isoformat()),
            "time_unit_seconds": cfg.time.unit_seconds, "dt": cfg.model.dt,
            "config": dumps_attr(resolved(cfg)), "command": command,
        },
    )
    ds["time"].encoding.update(units="seconds since 1970-01-01T00:00:00", dtype="int64")
    write_trajectories(ds, out, overwrite)
    return {"store": str(out), "trajectories": cfg.trajectories, "times": n_out + 1,
            "n_state": dyn.n_state, "model_time_end": float(model_time[-1])}


def observe(cfg: ObserveConfig, truth: Path, out: Path) -> dict:
    """Sample the truth every ``interval`` at the chosen sites, with Gaussian noise of std ``error``."""
    ds = open_trajectories(truth)
    if "x" not in ds or "site" not in ds.coords:
        raise ConfigError(f"{truth}: 'levda observe' samples Lorenz-96 truths (field x on sites) for now")
    if cfg.trajectory >= ds.sizes["trajectory"]:
        raise ConfigError(f"{truth} has {ds.sizes['trajectory']} trajectories; asked for {cfg.trajectory}")
    n_site = ds.sizes["site"]
    rng = np.random.default_rng(cfg.seed)
    kind, _, arg = cfg.sites.partition(":")
    if kind == "all":
        sites = np.arange(n_site)
    elif kind == "every" and arg.isdigit() and int(arg) >= 1:
        sites = np.arange(0, n_site, int(arg))
    elif kind == "random" and arg.isdigit() and 1 <= int(arg) <= n_site:
        sites = np.sort(rng.choice(n_site, int(arg), replace=False))
    else:
        raise ConfigError(f"sites '{cfg.sites}' not understood; use 'all', 'every:K' or 'random:K' (K <= {n_site})")
    model_time = ds["model_time"].values
    stride = cfg.interval / float(model_time[1] - model_time[0])
    if abs(stride - round(stride)) > 1e-9:
        raise ConfigError(f"interval {cfg.interval} is not a multiple of the truth's output interval "
                          f"{model_time[1] - model_time[0]}")
    t_idx = np.arange(int(round(stride)), len(model_time), int(round(stride)))
    if len(t_idx) == 0:
        raise ObservationError(f"{truth} is too short for one observation every {cfg.interval}")
    truth_x = ds["x"].isel(trajectory=cfg.trajectory).values[t_idx][:, sites]
    times = ds["time"].values.astype("datetime64[s]")[t_idx]
    n = truth_x.size
    obs = obsio.ObservationSet(
        time=np.repeat(times, len(sites)),
        coords={"site": np.tile(sites.astype(float), len(t_idx))},
        variable=np.full(n, "x", dtype=object),
        value=truth_x.ravel() + cfg.error * rng.standard_normal(n),
        error=np.full(n, cfg.error),
        source=np.full(n, str(out), dtype=object),
        row=np.arange(n),
    )
    obsio.write_observations(obs, out, cfg.format)
    return {"file": str(out), "n_obs": n, "n_times": len(t_idx), "n_sites": len(sites),
            "first": obsio.format_time(times[0]), "last": obsio.format_time(times[-1])}

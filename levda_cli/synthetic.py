"""Truths and synthetic observations from the benchmark physics (``levda simulate``/``observe``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from levda_cli.config import ObserveConfig, SimulateConfig, resolved
from levda_cli.errors import ConfigError, ObservationError
from levda_cli.io import observations as obsio
from levda_cli.io import obsfiles
from levda_cli.io.store import dumps_attr
from levda_cli.io.trajectories import load_checked, open_trajectories, write_trajectories_batches
from levda_cli.models import ModelSpec, model_spec

SPLITS = ("train", "validation", "test")


def _steps(interval: float, dt: float, what: str) -> int:
    n = interval / dt
    if abs(n - round(n)) > 1e-6 * max(1.0, n) or round(n) < 1:
        raise ConfigError(f"{what} {interval} is not a whole number of model steps (dt = {dt})")
    return int(round(n))


def draw_parameters(cfg: SimulateConfig, spec: ModelSpec, rng: np.random.Generator) -> dict[str, np.ndarray]:
    unknown = [p for p in cfg.parameters if p not in spec.params]
    if unknown:
        raise ConfigError(f"[parameters] names {unknown}; model '{spec.name}' has {list(spec.params)}")
    out = {}
    for name in spec.params:
        p = cfg.parameters.get(name)
        if p is not None and p.value is not None:
            out[name] = np.full(cfg.trajectories, p.value)
        else:
            lo, hi = p.range if p is not None and p.range is not None else spec.prior[name]
            out[name] = rng.uniform(lo, hi, cfg.trajectories) if hi > lo else np.full(cfg.trajectories, lo)
    return out


def simulate(cfg: SimulateConfig, out: Path, overwrite: bool = False, command: str = "",
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Run the physics for every trajectory (batched, vmapped) and write them to ``out``."""
    import jax
    import jax.numpy as jnp
    import xarray as xr

    from levda_cli.jaxsetup import configure_jax

    configure_jax("float64")
    spec = cfg.model.spec()
    dyn = spec.dynamics
    interval = cfg.interval or spec.interval
    duration = cfg.duration or spec.duration
    spinup = spec.spinup if cfg.spinup is None else cfg.spinup
    every = _steps(interval, dyn.dt, "output interval")
    n_out = _steps(duration, interval, "duration")
    n_spin = int(round(spinup / dyn.dt))
    rng = np.random.default_rng(cfg.seed)
    params = draw_parameters(cfg, spec, rng)
    mu_all = np.stack([params[p] for p in spec.params], axis=1)
    order = rng.permutation(cfg.trajectories)
    counts = np.floor(np.asarray(cfg.split) * cfg.trajectories).astype(int)
    counts[0] = cfg.trajectories - counts[1:].sum()
    split = np.empty(cfg.trajectories, dtype=object)
    split[order] = np.repeat(np.asarray(SPLITS, dtype=object), counts)
    key = jax.random.PRNGKey(cfg.seed if cfg.initial_state_seed is None else cfg.initial_state_seed)
    unit = cfg.time.unit_seconds or spec.unit_seconds

    mu_default = jnp.asarray([spec.params[p] for p in spec.params])

    def spun_up(mu, k, mu_spin):
        x = spec.initial_state(mu, k, 1.0)

        def spin(x, _):
            return dyn.step(x, mu_spin, jnp.asarray(dyn.dt, x.dtype)), None

        if n_spin:
            x, _ = jax.lax.scan(spin, x, None, length=n_spin)
        return x

    # Shared: one state, spun up with the default parameters, starts every trajectory, so
    # trajectories differ only through their parameters from the first stored frame on.
    # (The state itself may depend on the trajectory's parameters, e.g. the tsunami's bump; where
    # it does not, the spin-up runs once for the whole store, not once per trajectory.)
    spin_once = cfg.shared_initial_state and not spec.initial_state_uses_parameters
    shared_x = (jax.jit(spun_up)(mu_default, jax.random.fold_in(key, 0), mu_default) if spin_once else None)

    def one(mu, k):
        if spin_once:
            x = shared_x
        else:
            x = spun_up(mu, k, mu_default if cfg.shared_initial_state else mu)

        def inner(x, _, m=mu):
            return dyn.step(x, m, jnp.asarray(dyn.dt, x.dtype)), None

        def frame(x, _):
            x, _ = jax.lax.scan(inner, x, None, length=every)
            return x, x

        _, xs = jax.lax.scan(frame, x, None, length=n_out)
        xs = jnp.concatenate([x[None], xs])
        return jax.vmap(spec.to_fields)(xs), jax.vmap(spec.to_restart)(xs)

    run = jax.jit(jax.vmap(one))
    epoch = np.datetime64(cfg.time.epoch.replace(tzinfo=None), "s")
    model_time = np.arange(n_out + 1) * interval
    seconds = np.round(model_time * unit).astype(np.int64)
    grid_coords = {d: ("" if d in spec.grid_dims else d, spec.grid[d]) for d in spec.grid}
    coords = {
        "time": ("time", epoch + seconds.astype("timedelta64[s]"), {"standard_name": "time"}),
        "model_time": ("time", model_time, {"units": "model time units",
                                            "seconds_per_unit": unit}),
        **{d: (d, np.asarray(v), {"units": spec.units.get(d, "1")}) for d, (_, v) in grid_coords.items()},
    }
    attrs = {
        "benchmark": spec.name, "epoch": cfg.time.epoch.isoformat(), "time_unit_seconds": unit,
        "dt": dyn.dt, "size": spec.size, "first_frame_model_clock": float(spinup),
        "fields": dumps_attr(list(spec.fields)), "parameters": dumps_attr(list(spec.params)),
        "config": dumps_attr(resolved(cfg)), "command": command, "Conventions": "CF-1.8",
    }

    def batches():
        for start in range(0, cfg.trajectories, cfg.batch):
            idx = np.arange(start, min(start + cfg.batch, cfg.trajectories))
            seeds = jnp.zeros_like(jnp.asarray(idx)) if cfg.shared_initial_state else jnp.asarray(idx)
            keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(seeds)
            fields, restart = jax.tree.map(np.asarray, run(jnp.asarray(mu_all[idx]), keys))
            data = {f: (("trajectory", "time", *spec.grid_dims), fields[f].astype(cfg.field_precision),
                        {"units": spec.units.get(f, "1")})
                    for f in spec.fields}
            data.update({r: (("trajectory", "time", *dims), restart[r], {"long_name": f"{r} (exact restart state)"})
                         for r, dims in spec.restart_vars.items()})
            data.update({p: (("trajectory",), params[p][idx], {"units": spec.units.get(p, "1")})
                         for p in spec.params})
            data["split"] = (("trajectory",), np.asarray(split[idx], dtype="<U10"))
            ds = xr.Dataset(data, coords={"trajectory": idx, **coords}, attrs=attrs)
            ds["time"].encoding.update(units="seconds since 1970-01-01T00:00:00", dtype="int64")
            if progress is not None:
                progress(int(idx[-1]) + 1, cfg.trajectories)
            yield ds

    if not np.all(np.isfinite(mu_all)):
        raise ConfigError("parameter values must be finite")
    write_trajectories_batches(batches(), out, overwrite)
    return {"store": str(out), "benchmark": spec.name, "trajectories": cfg.trajectories, "times": n_out + 1,
            "grid": {d: len(spec.grid[d]) for d in spec.grid_dims}, "model_time_end": float(model_time[-1]),
            "split": {s: int(c) for s, c in zip(SPLITS, counts)}}


def _network_points(cfg: ObserveConfig, spec: ModelSpec, times: np.ndarray, rng, duration: float) -> list[np.ndarray]:
    """Coordinates ``(n_points, n_coord)`` observed at each time."""
    kind, _, arg = cfg.network.partition(":")
    lows = np.array([spec.domain[c][0] for c in spec.coords])
    highs = np.array([spec.domain[c][1] for c in spec.coords])
    # Grid points in observation-coordinate order (coords are x, y; the grid is stored y, x).
    axes = [np.asarray(spec.grid[c] if c in spec.grid else spec.grid["site"], float) for c in spec.coords]
    mesh = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)
    if kind == "grid":
        return [mesh] * len(times)
    if kind == "every":
        k = int(arg)
        sub = np.stack([m.ravel() for m in np.meshgrid(*[a[::k] for a in axes], indexing="ij")], axis=1)
        return [sub] * len(times)
    if kind == "random":
        return [rng.uniform(lows, highs, (int(arg), len(lows))) for _ in times]
    if kind == "fixed":
        pts = rng.uniform(lows, highs, (int(arg), len(lows)))
        return [pts] * len(times)
    if kind == "stations":
        path = Path(arg)
        try:
            table = np.genfromtxt(path, delimiter=",", names=True)
        except OSError as err:
            raise ConfigError(f"cannot read station file {path}: {err}") from None
        names = table.dtype.names or ()
        missing = [c for c in spec.coords if c not in names]
        if missing:
            raise ConfigError(f"{path}: the header must name the coordinates {list(spec.coords)}; missing {missing}")
        pts = np.stack([np.atleast_1d(table[c]) for c in spec.coords], axis=1).astype(float)
        outside = ~np.all((pts >= lows) & (pts < highs), axis=1)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise ConfigError(f"{path}, station {i + 1}: coordinates {pts[i].tolist()} are outside the domain")
        return [pts] * len(times)
    # tracks: straight lines at constant speed, reflected at walls or wrapped on periodic axes.
    n = int(arg)
    width = highs - lows
    speed = cfg.track_speed if cfg.track_speed is not None else 1.0 / duration
    start = rng.uniform(lows, highs, (n, len(lows)))
    heading = rng.normal(size=(n, len(lows)))
    heading /= np.linalg.norm(heading, axis=1, keepdims=True)
    points = []
    for t in times:
        raw = (start - lows) / width + heading * speed * (t - times[0] if len(times) else 0.0)
        frac = np.empty_like(raw)
        for j, c in enumerate(spec.coords):
            if c in spec.periodic:
                frac[:, j] = np.mod(raw[:, j], 1.0)
            else:  # reflect: a triangle wave on [0, 1]
                r = np.mod(raw[:, j], 2.0)
                frac[:, j] = np.where(r > 1.0, 2.0 - r, r)
        points.append(np.minimum(lows + frac * width, np.nextafter(highs, lows)))
    return points


def observe(cfg: ObserveConfig, truth: Path, out: Path) -> dict:
    """Sample the truth at the network's places and times, exactly, with Gaussian noise.

    An observation between two stored frames is made by restarting the model from the frame
    before it and integrating to its exact time; its value at an arbitrary place is the
    model's own observation operator (interpolation on the model grid, or the Fourier series
    for spectral models), so nothing is snapped to a frame or a grid node.
    """
    import jax
    import jax.numpy as jnp

    from levda_cli.core import Problem
    from levda_cli.core.dynamics import states_at
    from levda_cli.jaxsetup import configure_jax

    configure_jax("float64")
    ds = open_trajectories(truth)
    try:
        spec = model_spec(ds.attrs["benchmark"], int(ds.attrs.get("size", 0)) or None, float(ds.attrs["dt"]))
    except KeyError as err:
        raise ConfigError(f"{truth} lacks the attribute {err}; was it written by 'levda simulate'?") from None
    if cfg.trajectory >= ds.sizes["trajectory"]:
        raise ConfigError(f"{truth} has {ds.sizes['trajectory']} trajectories; asked for {cfg.trajectory}")
    variables = cfg.variables or list(spec.fields)
    unknown = [v for v in variables if v not in spec.fields]
    if unknown:
        raise ConfigError(f"unknown variable(s) {unknown}; {spec.name} has {list(spec.fields)}")
    rng = np.random.default_rng(cfg.seed)
    traj = load_checked(ds.isel(trajectory=cfg.trajectory), truth, f"trajectory {cfg.trajectory}")
    mu = jnp.asarray([float(traj[p]) for p in spec.params])
    model_time = np.asarray(ds["model_time"].values, float)
    frame_dt = float(model_time[1] - model_time[0])
    interval = cfg.interval or frame_dt
    n_times = int(math.floor((model_time[-1] - model_time[0]) / interval + 1e-9))
    if n_times < 1:
        raise ObservationError(f"{truth} is too short for one observation every {interval}")
    if cfg.times == "regular":
        times = model_time[0] + interval * np.arange(1, n_times + 1)
    else:
        # Whole seconds, as files store them: the sampled value is the truth at the stored time.
        unit = float(ds.attrs["time_unit_seconds"])
        seconds = np.unique(np.round(rng.uniform(model_time[0], model_time[-1], n_times) * unit))
        times = seconds / unit
        times = times[(times > model_time[0]) & (times <= model_time[-1])]
    # The model's own step must divide the frame interval for an exact restart from a frame.
    every = _steps(frame_dt, spec.dynamics.dt, "the truth's output interval")
    points = _network_points(cfg, spec, times, rng, float(model_time[-1] - model_time[0]))
    problem = Problem(spec.dynamics, mu)
    field_index = {f: i for i, f in enumerate(spec.fields)}

    @jax.jit
    def sample(state, rel_times, time_index, coords, fields):
        xs = states_at(problem, state, rel_times, every)  # the state at each distinct time
        return jax.vmap(lambda i, c, f: spec.dynamics.observe(xs[i], mu, c, f))(time_index, coords, fields)

    def pow2(n: int) -> int:
        return 1 << max(4, math.ceil(math.log2(max(n, 1))))  # padded sizes: few compilations

    frame_vars = list(spec.fields) + list(spec.restart_vars)
    unit = float(ds.attrs["time_unit_seconds"])
    epoch = np.datetime64(ds["time"].values[0], "s") - np.timedelta64(int(round(model_time[0] * unit)), "s")
    k_of = np.clip(np.floor((times - model_time[0]) / frame_dt + 1e-9).astype(int), 0, len(model_time) - 1)
    recs_t, recs_c, recs_v, recs_truth = [], [], [], []
    for k in np.unique(k_of):
        idx = np.flatnonzero(k_of == k)
        frame = {v: traj[v].isel(time=int(k)).values for v in frame_vars}
        state = jnp.asarray(spec.from_frame(frame))
        rel = times[idx] - model_time[k]
        coords, fields, tpos = [], [], []
        for j, i in enumerate(idx):
            for v in variables:
                coords.append(points[i])
                fields.append(np.full(len(points[i]), field_index[v]))
                tpos.append(np.full(len(points[i]), j))
        coords, fields, tpos = np.concatenate(coords), np.concatenate(fields), np.concatenate(tpos)
        n, n_pad, t_pad = len(coords), pow2(len(coords)), pow2(len(rel))
        values = sample(
            state,
            jnp.asarray(np.pad(rel, (0, t_pad - len(rel)))),
            jnp.asarray(np.pad(tpos, (0, n_pad - n))),
            jnp.asarray(np.pad(coords, ((0, n_pad - n), (0, 0)))),
            jnp.asarray(np.pad(fields, (0, n_pad - n))),
        )
        recs_t.append(times[idx][tpos])
        recs_c.append(coords)
        recs_v.append(fields)
        recs_truth.append(np.asarray(values)[:n])
    t_model = np.concatenate(recs_t)
    coords = np.concatenate(recs_c)
    fields = np.concatenate(recs_v)
    truth_values = np.concatenate(recs_truth)
    n = len(truth_values)
    if cfg.noise == "additive":
        error = np.full(n, cfg.error)
    else:
        error = np.maximum(cfg.error * np.abs(truth_values), cfg.error_floor)
    value = truth_values + error * rng.standard_normal(n)
    seconds = np.round(t_model * unit).astype(np.int64)
    obs = obsio.ObservationSet(
        time=epoch + seconds.astype("timedelta64[s]"),
        coords={c: coords[:, j] for j, c in enumerate(spec.coords)},
        variable=np.asarray(spec.fields, dtype=object)[fields],
        value=value, error=error,
        source=np.full(n, str(out), dtype=object), row=np.arange(n),
    )
    if not np.isfinite(obs.value).all():
        raise ObservationError(f"{truth}: the truth is not finite at some sampled points")
    obsfiles.write_observations(obs, out, cfg.format)
    return {"file": str(out), "n_obs": n, "n_times": len(times), "variables": variables,
            "first": obsio.format_time(obs.time.min()), "last": obsio.format_time(obs.time.max())}

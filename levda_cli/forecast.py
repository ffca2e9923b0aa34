"""``levda forecast``: an analysis store's ensemble run forward with the model that made it.

The chosen window's filter ensemble (the analysis at the window's end, state and estimated
parameters) is integrated by the same model the store was made with (the surrogate of the
checkpoint the store names, checked by its SHA-256, or the physical model in full-state mode)
and written every ``every`` for ``lead`` on the output grid: ensemble mean and spread per field
(latent spreads include the surrogate's recorded error at that lead time, as the analysis store's
do), optionally every member, and with ``points`` the same at given coordinates.

The output is a CF-style Zarr store (``time``, ``forecast_reference_time``, ``forecast_period``),
written under a hidden name and renamed into place when complete, so a killed forecast leaves
nothing; run again, it starts over. A forecast whose store already exists with the same request
(store, window, lead, interval, members, points) is not repeated (a cron retry is cheap); another
request refuses to replace it without ``overwrite``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np

from levda_cli.errors import ConfigError, ModelError, StoreError
from levda_cli.io.atomic import replacing
from levda_cli.io.observations import format_seconds as _iso

UNIX = np.datetime64("1970-01-01T00:00:00", "s")
_UNITS = {"s": 1, "sec": 1, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400, "days": 86400}



def parse_duration(text: str, unit_seconds: float, what: str) -> float:
    """``'24h'``, ``'90min'``, ``'3600s'``, ``'2d'`` -> model time units; a bare number is in model time units."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*", str(text))
    if not m or (m.group(2) and m.group(2) not in _UNITS):
        raise ConfigError(f"{what} '{text}': give a number with a unit (s, min, h, d), e.g. 24h, or a bare number "
                          "in model time units")
    value = float(m.group(1))
    if not value > 0:
        raise ConfigError(f"{what} '{text}' must be positive")
    return value * _UNITS[m.group(2)] / unit_seconds if m.group(2) else value


def read_points(path: Path, coords: tuple[str, ...], domain: dict, periodic: tuple[str, ...]):
    """``(names, (n_point, n_coord) array)`` from a CSV file with a column per model coordinate and an
    optional ``name`` column; every row checked (numbers, inside the domain)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"points file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read points file {path}: {err}") from None
    rows = list(csv.DictReader(line for line in text.splitlines() if line.strip() and not line.startswith("#")))
    if not rows:
        raise ConfigError(f"points file {path} has no rows (a header with {', '.join(coords)} and a row per point)")
    missing = [c for c in coords if c not in rows[0]]
    if missing:
        raise ConfigError(f"points file {path} lacks the column(s) {missing}; this model's coordinates are "
                          f"{', '.join(coords)} (and an optional 'name')")
    names, values = [], []
    for i, row in enumerate(rows, start=2):
        point = []
        for c in coords:
            try:
                v = float(row[c])
            except (TypeError, ValueError):
                raise ConfigError(f"{path}, line {i}: {c} = {row[c]!r} is not a number") from None
            low, high = domain[c]
            if c in periodic:
                v = low + (v - low) % (high - low)
            if not (np.isfinite(v) and low <= v < high):
                raise ConfigError(f"{path}, line {i}: {c} = {row[c]} is outside the model's domain [{low:g}, {high:g})")
            point.append(v)
        names.append(row.get("name") or f"point{i - 1}")
        values.append(point)
    if len(set(names)) != len(names):
        raise ConfigError(f"points file {path}: the names are not unique")
    return names, np.asarray(values, float)


def _model(ds, checkpoint: Path | None, warn):
    """(config, spec, header or None, checkpoint path) of the run that made the store."""
    from levda_cli.config import AssimilateConfig
    from levda_cli.io.checkpoint import file_sha256

    data = json.loads(ds.attrs["config"])
    if ds.attrs.get("mode") == "latent":
        path = Path(checkpoint or ds.attrs.get("checkpoint") or "")
        if not path.is_file():
            raise ModelError(f"the store was made with the surrogate {ds.attrs.get('checkpoint')}, which is not there "
                             "now; give its path with --checkpoint")
        want = ds.attrs.get("checkpoint_sha256")
        if want and file_sha256(path) != want:
            raise ModelError(f"{path} is not the checkpoint the store was made with (SHA-256 {want[:12]}...); a "
                             "forecast must run the same surrogate")
        data["model"]["checkpoint"] = str(path)
    elif checkpoint is not None:
        raise ConfigError("--checkpoint is for stores made in latent mode; this one is full-state "
                          f"({ds.attrs.get('model')})")
    try:
        cfg = AssimilateConfig.model_validate(data)
    except Exception as err:
        raise StoreError(f"the store's config does not validate with this levda: {err}") from None
    from levda_cli.jaxsetup import configure_jax

    configure_jax(cfg.output.precision)
    if cfg.model.latent:
        from levda_cli.models import surrogate_spec

        spec, header = surrogate_spec(cfg.model.checkpoint, cfg.ensemble.latent_noise, warn=warn)
    else:
        spec, header = cfg.model.spec(), None
    return cfg, spec, header


def request_digest(request: dict) -> str:
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


def run_forecast(store: Path, out: Path, lead: str, every: str | None = None, window: int = -1,
                 members: bool = False, points: Path | None = None, checkpoint: Path | None = None,
                 overwrite: bool = False, warn=lambda m: None, command: str = "", beyond_horizon: bool = False) -> dict:
    import xarray as xr

    from levda_cli import __version__
    from levda_cli.report import open_store

    out = Path(out)
    if not out.parent.is_dir():
        raise StoreError(f"cannot create {out}: the folder {out.parent} does not exist")
    if out.exists() and not out.is_dir():
        raise StoreError(f"{out} is a file, not a Zarr store; point --out at a new store")
    ds = open_store(store)
    n = ds.sizes["window"]
    if not -n <= window < n:
        raise ConfigError(f"--window {window}: {store} holds {n} window(s) (positions 0..{n - 1}, -1 the last)")
    pos = window % n
    row = ds.isel(window=pos)
    from levda_cli.io.trajectories import load_checked

    ensemble = np.asarray(load_checked(row["filter"], store, "the filter ensemble").values, np.float64)
    end = np.datetime64(row["window_end"].values, "s")
    cfg, spec, header = _model(ds, checkpoint, warn)
    unit_s = cfg.time.unit_seconds or spec.unit_seconds
    lead_t = parse_duration(lead, unit_s, "--lead")
    every_t = parse_duration(every, unit_s, "--every") if every else spec.interval
    dt_model = spec.dynamics.dt
    n_every = every_t / dt_model
    if abs(n_every - round(n_every)) > 1e-6 or round(n_every) < 1:
        raise ConfigError(f"--every {every or every_t}: {every_t:g} model time units is not a whole number of model "
                          f"steps (dt = {dt_model:g} = {dt_model * unit_s:g} s)")
    n_out = lead_t / every_t
    if abs(n_out - round(n_out)) > 1e-6 or round(n_out) < 1:
        raise ConfigError(f"--lead {lead} is not a whole number of output intervals (--every = {every_t * unit_s:g} s)")
    n_every, n_out = int(round(n_every)), int(round(n_out))
    names, where = (None, None)
    if points is not None:
        names, where = read_points(points, spec.coords, spec.domain, spec.periodic)

    request = {"store": str(Path(store).resolve()), "window_index": int(row["window_index"]),
               "lead": lead_t, "every": every_t, "members": members, "beyond_horizon": beyond_horizon,
               "points": None if points is None else [names, where.tolist()],
               "checkpoint_sha256": ds.attrs.get("checkpoint_sha256", "")}
    digest = request_digest(request)
    if out.exists():
        try:
            previous = xr.open_zarr(out, consolidated=True).attrs.get("levda_request_sha256")
        except Exception:
            previous = None
        if previous == digest and not overwrite:
            return {"forecast": str(out), "written": False, "reason": "already written with the same request",
                    "reference_time": str(end) + "Z", "frames": n_out + 1}
        if not overwrite:
            raise StoreError(f"{out} already exists (another forecast, or not one of levda's); pass --overwrite to "
                             "replace it, or choose another --out")

    import jax
    import jax.numpy as jnp

    from levda_cli.config import parameter_setup, window_setup
    from levda_cli.core import propagate

    est = parameter_setup(cfg, spec.params, spec.prior)[1]
    problem = window_setup(cfg, spec).problem  # the run's own model, parameters and estimated ones
    if ensemble.shape[1] != problem.n_ctrl:
        raise StoreError(f"{store}: the filter ensemble has {ensemble.shape[1]} control components; the model makes "
                         f"{problem.n_ctrl} (another model size?)")
    from levda_cli.cycling import Clock

    clock = Clock.from_config(cfg, spec, header["time"]["epoch"] if header else None)
    ref_s = int((end - UNIX).astype(np.int64))
    horizon = header["time"]["last_frame"] if header is not None else math.inf
    start_t = float(clock.model_time(ref_s))
    if start_t + lead_t > horizon + 1e-9:
        # A surrogate is only known to be right where it was trained: beyond its last training frame its
        # output is extrapolation with an unmeasured error (on a held-out Kolmogorov case: field error 30x
        # the ensemble spread one frame past the horizon), so a forecast there is refused unless asked for.
        what = (f"the forecast would run to model time {start_t + lead_t:g}, beyond the surrogate's training horizon "
                f"(model time {horizon:g}, {_iso(clock.epoch_s + horizon * unit_s)}); its fields there are "
                "untrained extrapolation whose error is unmeasured")
        if not beyond_horizon:
            longest = max(0.0, horizon - start_t)
            raise ModelError(f"{what}. The longest lead from this analysis is {longest * unit_s:g} s; pass "
                             "--beyond-horizon to write it anyway (the frames beyond are flagged "
                             "'beyond_training_horizon')")
        warn(f"{what}: the frames beyond are flagged 'beyond_training_horizon' and their spread (the last recorded "
             "error) is not to be trusted")
    from levda_cli.models import surrogate_error_sd

    sd = surrogate_error_sd(header, cfg.model.surrogate_error)
    fields = spec.fields

    @jax.jit
    def advance(ens):
        return propagate(problem, ens, n_every)[-1]

    geometry = None if where is None else jnp.asarray(where)

    @jax.jit
    def products(ens):
        stack = jax.vmap(lambda v: spec.to_fields(v[: problem.n_state]))(ens)
        out_ = {f: stack[f] for f in fields}
        if geometry is not None:
            def at_points(v):
                x, mu = problem.split(v)
                return jnp.stack([jax.vmap(lambda c: spec.dynamics.observe(x, mu, c, jnp.asarray(i)))(geometry)
                                  for i in range(len(fields))])  # (field, point)
            out_["points"] = jax.vmap(at_points)(ens)  # (member, field, point)
        return out_

    ens = jnp.asarray(ensemble)
    frames = []
    for j in range(n_out + 1):
        if j:
            ens = advance(ens)
        frames.append(jax.tree.map(np.asarray, products(ens)))
    if not all(np.isfinite(a).all() for fr in frames for a in fr.values()):
        from levda_cli.errors import DivergenceError

        bad = next(j for j, fr in enumerate(frames) if not all(np.isfinite(a).all() for a in fr.values()))
        raise DivergenceError(f"the forecast from {store} window {int(row['window_index'])} is not finite from lead "
                              f"{bad * every_t * unit_s:g} s on; nothing was written")

    period_s = np.round(np.arange(n_out + 1) * every_t * unit_s).astype(np.int64)
    times = np.datetime64(ref_s, "s") + period_s.astype("timedelta64[s]")
    model_sd = np.zeros((n_out + 1, len(fields)))
    if sd is not None:
        model_t = clock.model_time(ref_s + period_s)
        model_sd = np.stack([sd(f, model_t) for f in fields], axis=1)
    units = spec.units
    grid_dims = spec.grid_dims
    data_vars = {}
    for i, f in enumerate(fields):
        stack = np.stack([fr[f] for fr in frames])  # (time, member, *grid)
        extra = model_sd[:, i].reshape((-1,) + (1,) * len(grid_dims))
        attrs = {"units": units.get(f, "1")}
        data_vars[f"{f}_mean"] = (("time", *grid_dims), stack.mean(axis=1),
                                  {**attrs, "long_name": f"{f}, ensemble mean", "cell_methods": "realization: mean"})
        data_vars[f"{f}_spread"] = (("time", *grid_dims), np.sqrt(stack.var(axis=1, ddof=1) + extra**2),
                                    {**attrs, "long_name": f"{f}, ensemble standard deviation"
                                     + (" with the surrogate's error" if sd is not None else ""),
                                     "cell_methods": "realization: standard_deviation"})
        if members:
            data_vars[f"{f}_members"] = (("time", "member", *grid_dims), stack,
                                         {**attrs, "long_name": f"{f}, ensemble members"})
        if geometry is not None:
            at = np.stack([fr["points"][:, i] for fr in frames])  # (time, member, point)
            data_vars[f"{f}_points_mean"] = (("time", "point"), at.mean(axis=1),
                                             {**attrs, "long_name": f"{f} at the points, ensemble mean"})
            data_vars[f"{f}_points_spread"] = (("time", "point"), np.sqrt(at.var(axis=1, ddof=1) + model_sd[:, i:i + 1]**2),
                                               {**attrs, "long_name": f"{f} at the points, ensemble standard deviation"})
            if members:
                data_vars[f"{f}_points_members"] = (("time", "member", "point"), at, {**attrs})
    if header is not None:
        beyond = (clock.model_time(ref_s + period_s) > horizon + 1e-9).astype(np.int8)
        data_vars["beyond_training_horizon"] = (("time",), beyond, {
            "long_name": "1 where the surrogate runs past its last training frame (untrained extrapolation)",
            "flag_values": [0, 1], "training_horizon_model_time": float(horizon)})
    n_state = problem.n_state
    for j, p in enumerate(est):
        vals = ensemble[:, n_state + j]
        data_vars[f"{p}"] = ((), float(vals.mean()), {"units": units.get(p, "1"), "long_name": f"{p}, ensemble mean "
                                                     "(constant over the forecast)", "spread": float(vals.std(ddof=1))})
    coords = {
        "time": ("time", times.astype("datetime64[ns]"), {"standard_name": "time", "axis": "T"}),
        "forecast_period": ("time", period_s, {"standard_name": "forecast_period", "units": "s"}),
        "forecast_reference_time": ((), np.datetime64(ref_s, "s").astype("datetime64[ns]"),
                                    {"standard_name": "forecast_reference_time"}),
        "member": ("member", np.arange(ensemble.shape[0]), {"standard_name": "realization"}),
    }
    axis = {"x": "X", "lon": "X", "site": "X", "y": "Y", "lat": "Y"}
    std = {"lon": "longitude", "lat": "latitude"}
    for d in grid_dims:
        a = {"units": units.get(d, "1"), "axis": axis.get(d, "")}
        if d in std:
            a["standard_name"] = std[d]
        coords[d] = (d, np.asarray(spec.grid[d]), {k: v for k, v in a.items() if v})
    if geometry is not None:
        coords["point"] = ("point", np.asarray(names, dtype="<U64"))
        for j, c in enumerate(spec.coords):
            coords[f"point_{c}"] = ("point", where[:, j], {"units": units.get(c, "1")})
    attrs = {
        "title": "levda ensemble forecast", "Conventions": "CF-1.8", "levda_version": __version__,
        "source_store": str(store), "source_window_index": int(row["window_index"]), "model": ds.attrs.get("model"),
        "mode": ds.attrs.get("mode"), "checkpoint_sha256": ds.attrs.get("checkpoint_sha256", ""),
        "ensemble_size": int(ensemble.shape[0]), "command": command, "levda_request_sha256": digest,
        "history": f"levda forecast from {store}, window {int(row['window_index'])} (analysis valid {end}Z)",
    }
    result = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    for v in result.variables.values():
        v.encoding.pop("chunks", None)
    result["time"].encoding.update({"units": "seconds since 1970-01-01T00:00:00", "calendar": "proleptic_gregorian",
                                    "dtype": "int64"})
    result["forecast_reference_time"].encoding.update({"units": "seconds since 1970-01-01T00:00:00",
                                                       "calendar": "proleptic_gregorian", "dtype": "int64"})
    with replacing(out) as tmp:
        result.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True)
    return {"forecast": str(out), "written": True, "reference_time": str(end) + "Z", "frames": n_out + 1,
            "lead_seconds": int(period_s[-1]), "members": members, "points": len(names) if names else 0,
            "parameters": {p: float(ensemble[:, n_state + j].mean()) for j, p in enumerate(est)}}

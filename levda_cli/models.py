"""The physical models levda knows by name, described for the layers above the core.

A spec says what a user meets: field, coordinate and parameter names, each coordinate's domain,
the parameters' defaults and prior ranges, the output grid, how a state becomes fields on it,
and how a stored frame becomes a state again (so observations can be made at any time between
stored frames by integrating from the frame before).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from levda_cli.errors import ModelError

from levda_cli.registry import BENCHMARKS



@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    size: int  # the resolution setting: sites, cells a side, or spectral truncation
    dynamics: object  # an AbstractDynamics
    fields: tuple[str, ...]
    coords: tuple[str, ...]  # observation coordinate names, in the order the dynamics takes them
    domain: dict[str, tuple[float, float]]  # half-open [low, high) per coordinate
    periodic: tuple[str, ...]  # coordinates that wrap around
    params: dict[str, float]  # name -> default value
    prior: dict[str, tuple[float, float]]  # name -> uniform range for drawing trajectories
    grid_dims: tuple[str, ...]  # dimensions of a stored field
    grid: dict[str, np.ndarray]  # one axis per grid dimension
    to_fields: Callable  # state -> {field: array over grid_dims}
    restart_vars: dict[str, tuple[str, ...]]  # extra stored variables for an exact restart
    to_restart: Callable  # state -> {name: array}
    from_frame: Callable  # ({name: array} of one stored frame) -> state
    initial_state: Callable  # (mu, key, scale) -> state before spin-up
    spinup: float  # default spin-up, model time units
    interval: float  # default output interval
    duration: float  # default stored duration
    unit_seconds: float  # seconds per model time unit
    units: dict[str, str]
    forcing_periods: tuple[float, ...] = ()  # periods (model time) of a forcing that moves with time
    initial_state_uses_parameters: bool = True  # False: initial_state ignores mu (one shared spin-up serves all)

    def grid_points(self) -> np.ndarray:
        """``(n_point, n_coord)``: every grid point, in the order stored fields flatten."""
        return grid_points(self.grid_dims, self.grid, self.coords)


def grid_points(grid_dims, grid, coords) -> np.ndarray:
    """The coordinates (in ``coords`` order) of each point of a field stored over ``grid_dims``,
    flattened C-order; a coordinate that is not a grid dimension (Lorenz-96's site) takes the first."""
    mesh = np.meshgrid(*[np.asarray(grid[d], float) for d in grid_dims], indexing="ij")
    by_dim = {d: m.ravel() for d, m in zip(grid_dims, mesh)}
    return np.stack([by_dim[c if c in by_dim else grid_dims[0]] for c in coords], axis=1)


def model_spec(name: str, size: int | None = None, dt: float | None = None) -> ModelSpec:
    """The spec of model ``name`` (a ``registry`` entry) at resolution ``size`` (sites, cells a side, or
    spectral truncation) and step ``dt``."""
    import importlib

    entry = BENCHMARKS.get(name)
    if entry is None:
        raise ModelError(f"unknown model '{name}'; levda knows: {', '.join(BENCHMARKS)}")
    module, _, function = entry.builder.partition(":")
    return getattr(importlib.import_module(module), function)(size, dt)


def lorenz96_spec(size: int | None, dt: float | None) -> ModelSpec:
    import jax
    import jax.numpy as jnp

    name = "lorenz96"
    from levda_cli.physics.lorenz96 import COORDS, FIELDS, Lorenz96

    n = size or 40
    dyn = Lorenz96(n_state=n, dt=dt or 0.05)
    return ModelSpec(
        name=name, size=n, dynamics=dyn, fields=FIELDS, coords=COORDS, domain={"site": (0.0, float(n))},
        periodic=("site",), params={"F": 8.0}, prior={"F": (8.0, 8.0)}, grid_dims=("site",),
        grid={"site": np.arange(n)}, to_fields=lambda x: {"x": x}, restart_vars={},
        to_restart=lambda x: {}, from_frame=lambda frame: jnp.asarray(frame["x"]),
        initial_state=lambda mu, key, scale: mu[0] + scale * jax.random.normal(key, (n,), jnp.float64),
        spinup=20.0, interval=0.05, duration=20.0, unit_seconds=432000.0, units={"x": "1", "F": "1"},
    )


def tsunami_spec(size: int | None, dt: float | None) -> ModelSpec:
    import jax.numpy as jnp

    name = "tsunami"
    from levda_cli.physics.tsunami import COORDS, FIELDS, Tsunami

    n = size or 50
    probe = Tsunami(n=n, dt=1.0)
    # The largest step with Courant number <= 0.5 that divides the 600 s output interval.
    cfl_dt = 0.5 * probe.dx / (probe.gravity * probe.depth) ** 0.5
    dyn = Tsunami(n=n, dt=dt or 600.0 / math.ceil(600.0 / cfl_dt))
    centres = np.asarray(dyn.centres())
    faces = np.arange(n + 1) * dyn.dx

    def to_restart(x):
        _, u, v = dyn.unpack(x)
        return {"u_face": u, "v_face": v}

    return ModelSpec(
        name=name, size=n, dynamics=dyn, fields=FIELDS, coords=COORDS,
        domain={"x": (0.0, dyn.length), "y": (0.0, dyn.length)}, periodic=(),
        params={"x0": 5e5, "y0": 5e5}, prior={"x0": (2.5e5, 7.5e5), "y0": (2.5e5, 7.5e5)},
        grid_dims=("y", "x"), grid={"y": centres, "x": centres, "x_face": faces, "y_face": faces},
        to_fields=dyn.fields, restart_vars={"u_face": ("y", "x_face"), "v_face": ("y_face", "x")},
        to_restart=to_restart,
        from_frame=lambda f: dyn.pack(jnp.asarray(f["eta"]), jnp.asarray(f["u_face"]), jnp.asarray(f["v_face"])),
        initial_state=lambda mu, key, scale: dyn.initial_state(mu),
        spinup=0.0, interval=600.0, duration=21600.0, unit_seconds=1.0,
        units={"u": "m s-1", "v": "m s-1", "eta": "m", "x": "m", "y": "m", "x0": "m", "y0": "m"},
    )


def kolmogorov_spec(size: int | None, dt: float | None) -> ModelSpec:
    import jax.numpy as jnp

    name = "kolmogorov"
    from levda_cli.physics.kolmogorov import COORDS, FIELDS, Kolmogorov

    n = size or 32
    # Stable step ~0.64 / n, rounded down to a divisor of 0.02 so the usual intervals (0.2) and
    # windows are whole numbers of steps at every size (150: 0.004, not 0.00427).
    dyn = Kolmogorov(n=n, dt=dt or 0.02 / math.ceil(0.02 * n / 0.64 - 1e-9))
    g = np.asarray(dyn.grid())
    return ModelSpec(
        name=name, size=n, dynamics=dyn, fields=FIELDS, coords=COORDS,
        domain={"x": (0.0, 2 * np.pi), "y": (0.0, 2 * np.pi)}, periodic=("x", "y"),
        params={"Re": 1000.0}, prior={"Re": (500.0, 1500.0)}, grid_dims=("y", "x"), grid={"y": g, "x": g},
        to_fields=dyn.fields, restart_vars={}, to_restart=lambda x: {},
        from_frame=lambda f: dyn.vorticity_from_velocity(jnp.asarray(f["u"]), jnp.asarray(f["v"])),
        initial_state=lambda mu, key, scale: dyn.random_state(key),
        spinup=30.0, interval=0.2, duration=20.0, unit_seconds=3600.0, units={"u": "1", "v": "1", "Re": "1"},
        initial_state_uses_parameters=False,
    )


def sphere_spec(size: int | None, dt: float | None) -> ModelSpec:
    import jax.numpy as jnp

    name = "sphere"
    from levda_cli.physics.sphere import COORDS, FIELDS, HOURS_PER_DAY, HOURS_PER_YEAR, Sphere, require_dinosaur

    try:
        require_dinosaur()
    except ImportError as err:
        raise ModelError(str(err)) from None
    trunc = size or 21
    # Half an hour at T21, shorter in proportion at higher truncations, dividing the 6 h output.
    dyn = Sphere(truncation=f"T{trunc}", dt=dt or 6.0 / math.ceil(6.0 / (0.5 * 21 / max(trunc, 21))))
    lon, lat = dyn.lon_lat_degrees()
    m, l = dyn.modal_shape

    def to_restart(x):
        vort, div, pot, clock = dyn.unpack(x)
        return {"vorticity_modal": vort[0], "divergence_modal": div[0], "potential_modal": pot[0], "clock": clock}

    return ModelSpec(
        name=name, size=trunc, dynamics=dyn, fields=FIELDS, coords=COORDS,
        domain={"lon": (0.0, 360.0), "lat": (-90.0, float(np.nextafter(90.0, 91.0)))}, periodic=("lon",),
        params={"amplitude": 100.0, "width": 20.0}, prior={"amplitude": (50.0, 150.0), "width": (10.0, 30.0)},
        grid_dims=("lat", "lon"), grid={"lat": lat, "lon": lon, "m": np.arange(m), "l": np.arange(l)},
        to_fields=dyn.fields,
        restart_vars={"vorticity_modal": ("m", "l"), "divergence_modal": ("m", "l"),
                      "potential_modal": ("m", "l"), "clock": ()},
        to_restart=to_restart,
        from_frame=lambda f: dyn.pack(*(jnp.asarray(f[k])[None] for k in (
            "vorticity_modal", "divergence_modal", "potential_modal")), jnp.asarray(f["clock"])),
        initial_state=lambda mu, key, scale: dyn.initial_state(mu),
        spinup=120.0, interval=6.0, duration=240.0, unit_seconds=3600.0,
        units={"h": "m", "u": "m s-1", "v": "m s-1", "lon": "degrees_east", "lat": "degrees_north",
               "amplitude": "m", "width": "degree"},
        forcing_periods=(HOURS_PER_DAY, HOURS_PER_YEAR),  # the forcing's longitude and latitude cycles
    )


def surrogate_spec(path, latent_noise: float = 0.0, warn=None, trusted_sha256: str | None = None
                   ) -> tuple[ModelSpec, dict]:
    """A spec for latent mode: the checkpoint's surrogate is the model, its latent vector the state.

    Members start from ``z = 0`` at the surrogate's time origin (plus ``latent_noise`` if asked)
    and differ by their parameters; fields are decoded on the training grid for the store.
    """
    import jax
    import jax.numpy as jnp

    from levda_cli.io.checkpoint import load_checkpoint

    model, header = load_checkpoint(path, dtype=jnp.float64, warn=warn, trusted_sha256=trusted_sha256)
    coords = tuple(c["name"] for c in header["coordinates"])
    grid_dims = tuple(header["grid"]["dims"])
    grid = {d: np.asarray(header["grid"][d]) for d in grid_dims}
    points = jnp.asarray(grid_points(grid_dims, grid, coords))
    shape = tuple(len(grid[d]) for d in grid_dims)
    fields = tuple(header["fields"])

    @jax.jit
    def to_fields(z):
        # The grid is a constant of the trace: without the barrier XLA folds the decoder's coordinate
        # part over every grid point at compile time (14 s at 150 x 150, and again in each program).
        grid_points_ = jax.lax.optimization_barrier(points)
        values = jax.vmap(lambda p: model.decode(z, p))(grid_points_)
        return {f: values[:, i].reshape(shape) for i, f in enumerate(fields)}

    n = model.n_state
    # noise on z only: a forced surrogate's clock (its last entry) starts at 0 in every member
    noise_mask = jnp.arange(n) < model.n_latent
    spec = ModelSpec(
        name=f"surrogate:{header['benchmark']}", size=n, dynamics=model, fields=fields, coords=coords,
        domain={c["name"]: (c["low"], c["high"]) for c in header["coordinates"]},
        periodic=tuple(c["name"] for c in header["coordinates"] if c["periodic"]),
        params={p["name"]: p["default"] for p in header["parameters"]},
        prior={p["name"]: (p["low"], p["high"]) for p in header["parameters"]},
        grid_dims=grid_dims, grid=grid, to_fields=to_fields, restart_vars={}, to_restart=lambda x: {},
        from_frame=lambda f: None,
        initial_state=lambda mu, key, scale: latent_noise * noise_mask * jax.random.normal(key, (n,), jnp.float64),
        spinup=0.0, interval=header["time"]["frame_interval"], duration=header["time"]["last_frame"],
        unit_seconds=header["time"]["unit_seconds"],
        units={**dict(zip(fields, header["field_units"])), **{c["name"]: c["units"] for c in header["coordinates"]},
               **{p["name"]: p["units"] for p in header["parameters"]}},
    )
    return spec, header


def surrogate_error(header: dict) -> dict | None:
    """The surrogate's error per field, as ``{field: (frame_times, rmse_by_frame)}`` in model time (a
    version-3 checkpoint's validation RMSE per output frame), or for a version-2 checkpoint its
    validation relative L2 times the field's RMS over the training data, the same at every time; None
    when the checkpoint records neither."""
    fields = header["fields"]
    t = header["time"]
    block = header.get("surrogate_error")
    if block:
        out = {}
        for f in fields:
            series = np.asarray(block["rmse_by_frame"][f], float)
            out[f] = (t["first_frame"] + t["frame_interval"] * np.arange(len(series)), series)
        return out
    rel = (header.get("training") or {}).get("validation_rel_l2")
    norm = header.get("normalisation") or {}
    if not isinstance(rel, dict) or "field_mean" not in norm or "field_std" not in norm:
        return None
    out = {}
    for i, f in enumerate(fields):
        if not isinstance(rel.get(f), (int, float)) or not np.isfinite(rel[f]):
            return None
        rms = float(np.hypot(norm["field_mean"][i], norm["field_std"][i]))
        out[f] = (np.asarray([t["first_frame"]], float), np.asarray([rel[f] * rms]))
    return out


def surrogate_error_sd(header: dict | None, scale: float):
    """``sd(field, model_times) -> array``: ``scale`` x the surrogate's recorded error of ``field`` at
    those model times (interpolated between frames, held beyond them); None in full-state mode, with
    ``scale = 0``, or when the checkpoint records no error (``surrogate_error``)."""
    table = surrogate_error(header) if header is not None and scale > 0 else None
    if table is None:
        return None
    return lambda field, t: scale * np.interp(np.asarray(t, float), *table[field])

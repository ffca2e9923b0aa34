"""Forced shallow water on the sphere, on dinosaur's spectral dynamical core.

dinosaur (Google's JAX spectral core, an optional dependency: ``pip install 'levda[sphere]'``)
supplies the spherical-harmonic transforms and the semi-implicit shallow-water equations; this
module adds a moving height forcing and drag:

    d Phi'/dt = ... + (g h_f(lon, lat, t) - Phi') / tau_relax
    d zeta/dt = ... - zeta / tau_drag,     d delta/dt = ... - delta / tau_drag

    h_f = a cos(lon - lon_c(t)) exp(-(lat - lat_c(t))^2 / sigma^2)

with ``lon_c`` going round once a day (diurnal) and ``lat_c = 23.44 deg sin(2 pi t / year)``
(seasonal). Amplitude ``a`` (m) and width ``sigma`` (degrees) are the unknown parameters. The
forcing has zero zonal mean, so the relaxation neither adds nor removes mass.

Time stepping: dinosaur's IMEX SIL3 (gravity waves implicit) with a scale-selective exponential
filter whose strength is proportional to the step, so a zero-length step is the identity (an
observation exactly at a stored time sees the stored state). The model time is carried in the
state (its last entry) because the forcing moves. The state vector is
``[vorticity, divergence, potential (modal, non-dimensional), time (non-dimensional)]``;
model time units are hours.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from levda_cli.core.dynamics import GridInterpolated

FIELDS = ("h", "u", "v")
COORDS = ("lon", "lat")
PARAMS = ("amplitude", "width")
HOURS_PER_DAY = 24.0
HOURS_PER_YEAR = 365.25 * 24.0


def require_dinosaur():
    """ImportError with the install hint when dinosaur is missing (the CLI layer turns it into its
    model error, exit 4; physics imports nothing of the layers above it)."""
    try:
        import dinosaur  # noqa: F401
    except ImportError:
        raise ImportError("the sphere benchmark needs dinosaur: pip install 'levda[sphere]'") from None


@functools.lru_cache(maxsize=8)
def _setup(truncation: str):
    require_dinosaur()
    from dinosaur import coordinate_systems, layer_coordinates, spherical_harmonic, units

    grid = getattr(spherical_harmonic.Grid, truncation)()
    coords = coordinate_systems.CoordinateSystem(grid, layer_coordinates.LayerCoordinates(1))
    specs = units.SimUnits.from_si()
    return grid, coords, specs


def _forced_equation_class():
    import tree_math
    from dinosaur import shallow_water

    @tree_math.struct
    class ForcedState:
        vorticity: jax.Array
        divergence: jax.Array
        potential: jax.Array
        time: jax.Array

    class ForcedShallowWater(shallow_water.ShallowWaterEquations):
        """dinosaur's equations plus relaxation to a moving height forcing, drag and a clock."""

        def __init__(self, coords, specs, mean_potential, forcing_fn, relax, drag):
            super().__init__(coords, specs, None, mean_potential)
            self.forcing_fn, self.relax, self.drag = forcing_fn, relax, drag

        @staticmethod
        def _plain(state):
            return shallow_water.State(state.vorticity, state.divergence, state.potential)

        def explicit_terms(self, state):
            base = super().explicit_terms(self._plain(state))
            grid = self.coords.horizontal
            target = grid.to_modal(self.forcing_fn(state.time))[None]
            return ForcedState(
                base.vorticity - self.drag * state.vorticity,
                base.divergence - self.drag * state.divergence,
                base.potential + grid.clip_wavenumbers(self.relax * (target - state.potential)),
                jnp.ones_like(state.time),
            )

        def implicit_terms(self, state):
            base = super().implicit_terms(self._plain(state))
            return ForcedState(base.vorticity, base.divergence, base.potential, jnp.zeros_like(state.time))

        def implicit_inverse(self, state, step_size):
            base = super().implicit_inverse(self._plain(state), step_size)
            return ForcedState(base.vorticity, base.divergence, base.potential, state.time)

    return ForcedState, ForcedShallowWater


class Sphere(GridInterpolated):
    """Forced shallow water on the sphere; parameters ``mu = [amplitude (m), width (deg)]``."""

    truncation: str = eqx.field(static=True, default="T21")
    dt: float = eqx.field(static=True, default=0.5)  # hours
    mean_depth: float = eqx.field(static=True, default=3000.0)  # m
    relax_hours: float = eqx.field(static=True, default=6.0)
    drag_hours: float = eqx.field(static=True, default=120.0)
    filter_hours: float = eqx.field(static=True, default=2.0)  # e-folding of the smallest scale
    forced: bool = eqx.field(static=True, default=True)

    # -- geometry and units --------------------------------------------------------------------
    @property
    def grid(self):
        return _setup(self.truncation)[0]

    @property
    def specs(self):
        return _setup(self.truncation)[2]

    @property
    def modal_shape(self) -> tuple[int, int]:
        return tuple(self.grid.modal_shape)

    @property
    def n_state(self) -> int:  # type: ignore[override]
        m, l = self.modal_shape
        return 3 * m * l + 1

    def hours(self, h):
        """Hours -> dinosaur's non-dimensional time."""
        from dinosaur import scales

        return h * self.specs.nondimensionalize(1.0 * scales.units.hour)

    def _nondim(self, value, unit):
        from dinosaur import scales

        return self.specs.nondimensionalize(value * getattr(scales.units, unit))

    def _dim(self, value, unit):
        from dinosaur import scales

        return value / self.specs.nondimensionalize(1.0 * getattr(scales.units, unit))

    @property
    def mean_potential(self) -> np.ndarray:
        return np.array([self._nondim(self.mean_depth, "meter") * self.specs.g])

    def lon_lat_degrees(self) -> tuple[np.ndarray, np.ndarray]:
        lon, sin_lat = self.grid.nodal_mesh
        return np.degrees(lon[:, 0]), np.degrees(np.arcsin(sin_lat[0, :]))

    # -- state layout --------------------------------------------------------------------------
    def unpack(self, x):
        m, l = self.modal_shape
        size = m * l
        parts = [x[i * size : (i + 1) * size].reshape(1, m, l) for i in range(3)]
        return (*parts, x[-1])

    def pack(self, vorticity, divergence, potential, time):
        return jnp.concatenate([vorticity.ravel(), divergence.ravel(), potential.ravel(), jnp.atleast_1d(time)])

    def initial_state(self, mu, key=None) -> jax.Array:
        """A fluid at rest with a flat surface at time 0 (the forcing spins it up)."""
        zeros = jnp.zeros((1, *self.modal_shape))
        return self.pack(zeros, zeros, zeros, jnp.zeros(()))

    def zonal_flow_state(self, u0: float) -> jax.Array:
        """Williamson et al. (1992) test case 2: a steady, geostrophically balanced zonal flow."""
        grid = self.grid
        u0_nd = self._nondim(u0, "meter") / self._nondim(1.0, "second")
        lon, sin_lat = grid.nodal_mesh
        cos_lat = np.sqrt(1 - sin_lat**2)
        u = u0_nd * cos_lat
        vel = grid.to_modal(jnp.stack([u, jnp.zeros_like(u)])[:, None] / cos_lat)
        vorticity = grid.curl_cos_lat(vel)
        potential = -(self.specs.radius * self.specs.angular_velocity * u0_nd + u0_nd**2 / 2) * sin_lat**2
        potential = potential - np.sum(potential * grid.quadrature_weights) / np.sum(
            grid.quadrature_weights * np.ones_like(potential))
        return self.pack(vorticity, jnp.zeros_like(vorticity), grid.to_modal(potential[None]), jnp.zeros(()))

    # -- dynamics ------------------------------------------------------------------------------
    def forcing_potential(self, mu, time):
        """``g h_f`` on the nodal grid at non-dimensional ``time``."""
        grid = self.grid
        lon, sin_lat = grid.nodal_mesh
        lat = jnp.arcsin(sin_lat)
        lon_c = 2 * jnp.pi * time / self.hours(HOURS_PER_DAY)
        lat_c = jnp.radians(23.44) * jnp.sin(2 * jnp.pi * time / self.hours(HOURS_PER_YEAR))
        sigma = jnp.radians(mu[1])
        amp = mu[0] * self._nondim(1.0, "meter") * self.specs.g
        return amp * jnp.cos(lon - lon_c) * jnp.exp(-((lat - lat_c) ** 2) / sigma**2)

    def step(self, x, mu, dt):
        from dinosaur import time_integration

        state_cls, eq_cls = _forced_equation_class()
        _, coords, specs = _setup(self.truncation)
        relax = 1.0 / self.hours(self.relax_hours) if self.forced else 0.0
        drag = 1.0 / self.hours(self.drag_hours) if self.forced else 0.0
        forcing = (lambda t: self.forcing_potential(mu, t)) if self.forced else (lambda t: jnp.zeros(self.grid.nodal_shape))
        eq = eq_cls(coords, specs, self.mean_potential, forcing, relax, drag)
        dt_nd = self.hours(dt)
        vort, div, pot, time = self.unpack(x)
        state = state_cls(vort, div, pot, time)
        new = time_integration.imex_rk_sil3(eq, dt_nd)(state)
        # Scale-selective filter, strength proportional to the step (identity for dt = 0).
        l_total = self.grid.modal_mesh[1]
        l_max = l_total.max()
        damp = jnp.exp(-(dt / self.filter_hours) * (l_total / l_max) ** 8)[None]
        return self.pack(new.vorticity * damp, new.divergence * damp, new.potential * damp, new.time)

    # -- fields and observation ----------------------------------------------------------------
    def fields(self, x) -> dict[str, jax.Array]:
        """``h`` (m), ``u``, ``v`` (m/s) on the Gaussian grid, arrays ``(lat, lon)``."""
        from dinosaur import spherical_harmonic

        grid = self.grid
        vort, div, pot, _ = self.unpack(x)
        cos_lat_uv = jnp.stack(spherical_harmonic.get_cos_lat_vector(vort, div, grid))
        u, v = grid.to_nodal(cos_lat_uv)[:, 0] / grid.cos_lat
        phi = grid.to_nodal(pot)[0] + self.mean_potential[0]
        metre = self._nondim(1.0, "meter")
        speed = metre / self._nondim(1.0, "second")
        return {"h": (phi / self.specs.g / metre).T, "u": (u / speed).T, "v": (v / speed).T}

    def observe(self, x, mu, coords, field):
        """Bilinear interpolation on the Gaussian grid (periodic in longitude)."""
        lon_deg, lat_deg = self.lon_lat_degrees()
        values = jnp.stack([self.fields(x)[f] for f in FIELDS])[field]  # (lat, lon)
        n_lon = len(lon_deg)
        dlon = 360.0 / n_lon
        fx = jnp.mod(coords[0] - lon_deg[0], 360.0) / dlon
        i0 = jnp.floor(fx).astype(jnp.int32) % n_lon
        wx = fx - jnp.floor(fx)
        lat_nodes = jnp.asarray(lat_deg)
        lat = jnp.clip(coords[1], lat_nodes[0], lat_nodes[-1])
        j0 = jnp.clip(jnp.searchsorted(lat_nodes, lat) - 1, 0, len(lat_deg) - 2)
        wy = (lat - lat_nodes[j0]) / (lat_nodes[j0 + 1] - lat_nodes[j0])
        row = lambda j: (1 - wx) * values[j, i0] + wx * values[j, (i0 + 1) % n_lon]  # noqa: E731
        return (1 - wy) * row(j0) + wy * row(j0 + 1)

    def prepare(self, xs, mu):
        """The nodal ``h, u, v`` of every time, flattened: one spectral transform per time."""
        return jax.vmap(lambda x: jnp.stack([self.fields(x)[f] for f in FIELDS]).ravel())(xs)

    def geometry(self, coords, field):
        """Indices into a prepared time's flat fields of the four points ``observe`` uses, and weights."""
        lon_deg, lat_deg = self.lon_lat_degrees()
        n_lon, n_lat = len(lon_deg), len(lat_deg)
        fx = jnp.mod(coords[0] - lon_deg[0], 360.0) / (360.0 / n_lon)
        i0 = jnp.floor(fx).astype(jnp.int32) % n_lon
        wx = fx - jnp.floor(fx)
        lat_nodes = jnp.asarray(lat_deg)
        lat = jnp.clip(coords[1], lat_nodes[0], lat_nodes[-1])
        j0 = jnp.clip(jnp.searchsorted(lat_nodes, lat) - 1, 0, n_lat - 2)
        wy = (lat - lat_nodes[j0]) / (lat_nodes[j0 + 1] - lat_nodes[j0])
        i1 = (i0 + 1) % n_lon
        base = field * n_lat * n_lon
        index = base + jnp.stack([j0 * n_lon + i0, j0 * n_lon + i1, (j0 + 1) * n_lon + i0, (j0 + 1) * n_lon + i1])
        weight = jnp.stack([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx])
        return index, weight

    def mean_potential_anomaly(self, x) -> jax.Array:
        """The area mean of Phi' (zero when mass is conserved)."""
        grid = self.grid
        pot = grid.to_nodal(self.unpack(x)[2])[0]
        w = np.broadcast_to(grid.quadrature_weights, pot.shape)
        return jnp.sum(pot * w) / np.sum(w)

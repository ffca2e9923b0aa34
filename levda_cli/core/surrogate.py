"""The continuous space-time latent surrogate: a Latent Dynamics Network (Regazzoni et al. 2024).

- Latent dynamics ``dz/dt = f(z, mu_n) / T``: an MLP on the latent state and the normalised
  parameters, in normalised time (``T`` is the time scale); integrated with RK4 from
  ``z(t_origin) = 0`` to any time (a partial last step reaches times between steps exactly,
  see ``core.dynamics.states_at``), so the trajectory is set by ``mu`` alone.
- Decoder ``u(x, t) = g(z(t), gamma(x_n))``: Fourier features of the normalised coordinates
  (integer frequencies on periodic axes, so the decoder is periodic there) and a residual MLP,
  returning every field at any coordinate.
- A forced flow (the sphere's forcing moves with the sun) is not autonomous: with
  ``forcing_periods`` the state carries a clock ``tau`` (its last entry, time since the origin,
  ``dtau/dt = 1``), and the dynamics and the decoder also take the forcing's phases
  ``sin, cos(2 pi (tau + forcing_offset) / P)`` for each period ``P`` (e.g. a day and a year).
  The clock starts at 0 with ``z``, so ``z(t_origin) = 0`` still starts every trajectory; the
  members of an ensemble share it (zero anomalies), so assimilation never moves it.
- Normalisation of coordinates, fields, parameters and time is part of the model, so callers
  use physical units. Normalisation constants and Fourier frequencies are not trained
  (``stop_gradient``).

``Surrogate`` is an ``AbstractDynamics``: the 4DEnVar core runs on it unchanged, with the
latent state as the model state.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from levda_cli.core.dynamics import AbstractDynamics, Problem, rk4, states_at


class ResidualMLP(eqx.Module):
    """``in -> width -> (depth residual blocks) -> out`` with GELU."""

    inp: eqx.nn.Linear
    blocks: tuple[eqx.nn.Linear, ...]
    out: eqx.nn.Linear

    def __init__(self, n_in: int, n_out: int, width: int, depth: int, key: PRNGKeyArray, out_scale: float = 1.0):
        keys = jax.random.split(key, depth + 2)
        self.inp = eqx.nn.Linear(n_in, width, key=keys[0])
        self.blocks = tuple(eqx.nn.Linear(width, width, key=k) for k in keys[1:-1])
        out = eqx.nn.Linear(width, n_out, key=keys[-1])
        self.out = eqx.tree_at(lambda l: (l.weight, l.bias), out, (out.weight * out_scale, out.bias * 0.0))

    def __call__(self, x: Float[Array, " n_in"]) -> Float[Array, " n_out"]:
        h = jax.nn.gelu(self.inp(x))
        for block in self.blocks:
            h = h + jax.nn.gelu(block(h))
        return self.out(h)


class FourierFeatures(eqx.Module):
    """``[x, sin(2 pi B x), cos(2 pi B x)]`` for coordinates normalised to [0, 1).

    On periodic axes the frequencies are integers and the raw coordinate is left out (zero),
    so the features, and the decoder, are periodic there.
    """

    frequencies: Float[Array, "n_coord n_freq"]
    periodic: tuple[bool, ...] = eqx.field(static=True)

    def __init__(self, n_coord: int, n_freq: int, scale: float, periodic: tuple[bool, ...], key: PRNGKeyArray):
        b = scale * jax.random.normal(key, (n_coord, n_freq))
        self.frequencies = jnp.where(jnp.asarray(periodic)[:, None], jnp.round(b), b)
        self.periodic = tuple(bool(p) for p in periodic)

    def __call__(self, x: Float[Array, " n_coord"]) -> Array:
        phase = 2.0 * jnp.pi * (x @ jax.lax.stop_gradient(self.frequencies))
        raw = jnp.where(jnp.asarray(self.periodic), 0.0, x)
        return jnp.concatenate([raw, jnp.sin(phase), jnp.cos(phase)])


class Surrogate(AbstractDynamics):
    """A trained latent surrogate; the state is the latent vector ``z``."""

    dynamics_net: ResidualMLP
    decoder_net: ResidualMLP
    features: FourierFeatures
    coord_low: Float[Array, " n_coord"]
    coord_high: Float[Array, " n_coord"]
    field_mean: Float[Array, " n_field"]
    field_std: Float[Array, " n_field"]
    param_low: Float[Array, " n_param"]
    param_high: Float[Array, " n_param"]
    n_state: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    time_scale: float = eqx.field(static=True)
    forcing_periods: tuple[float, ...] = eqx.field(static=True, default=())
    forcing_offset: float = eqx.field(static=True, default=0.0)

    @staticmethod
    def build(*, n_latent: int, n_coord: int, n_field: int, n_param: int, dynamics_width: int,
              dynamics_depth: int, decoder_width: int, decoder_depth: int, n_fourier: int, fourier_scale: float,
              periodic: tuple[bool, ...], dt: float, time_scale: float, key: PRNGKeyArray,
              coord_low=None, coord_high=None, field_mean=None, field_std=None, param_low=None,
              param_high=None, forcing_periods: tuple[float, ...] = (), forcing_offset: float = 0.0) -> Surrogate:
        k1, k2, k3 = jax.random.split(key, 3)
        n_phase = 2 * len(forcing_periods)
        ones = lambda n: jnp.ones(n)  # noqa: E731
        zeros = lambda n: jnp.zeros(n)  # noqa: E731
        return Surrogate(
            dynamics_net=ResidualMLP(n_latent + n_param + n_phase, n_latent, dynamics_width, dynamics_depth, k1,
                                     out_scale=0.1),
            decoder_net=ResidualMLP(n_latent + n_phase + n_coord + 2 * n_fourier, n_field, decoder_width,
                                    decoder_depth, k2),
            features=FourierFeatures(n_coord, n_fourier, fourier_scale, periodic, k3),
            coord_low=zeros(n_coord) if coord_low is None else jnp.asarray(coord_low, float),
            coord_high=ones(n_coord) if coord_high is None else jnp.asarray(coord_high, float),
            field_mean=zeros(n_field) if field_mean is None else jnp.asarray(field_mean, float),
            field_std=ones(n_field) if field_std is None else jnp.asarray(field_std, float),
            param_low=zeros(n_param) if param_low is None else jnp.asarray(param_low, float),
            param_high=ones(n_param) if param_high is None else jnp.asarray(param_high, float),
            n_state=n_latent + (1 if forcing_periods else 0), dt=dt, time_scale=time_scale,
            forcing_periods=tuple(float(p) for p in forcing_periods), forcing_offset=float(forcing_offset),
        )

    @property
    def n_latent(self) -> int:
        """The learned latent size (the state without the clock)."""
        return self.n_state - (1 if self.forcing_periods else 0)

    def latent_inputs(self, x: Float[Array, " n_state"]) -> Array:
        """What the decoder and the dynamics read of a state: ``z``, and the forcing's phases at its clock."""
        if not self.forcing_periods:
            return x
        periods = jnp.asarray(self.forcing_periods, x.dtype)
        angle = 2.0 * jnp.pi * (x[-1] + self.forcing_offset) / periods
        return jnp.concatenate([x[:-1], jnp.sin(angle), jnp.cos(angle)])

    # -- normalisation -------------------------------------------------------------------------
    def normalise_params(self, mu: Float[Array, " n_param"]) -> Array:
        lo, hi = jax.lax.stop_gradient(self.param_low), jax.lax.stop_gradient(self.param_high)
        return 2.0 * (mu - lo) / jnp.where(hi > lo, hi - lo, 1.0) - 1.0

    def normalise_coords(self, x: Float[Array, " n_coord"]) -> Array:
        lo, hi = jax.lax.stop_gradient(self.coord_low), jax.lax.stop_gradient(self.coord_high)
        return (x - lo) / (hi - lo)

    # -- dynamics ------------------------------------------------------------------------------
    def tendency(self, z: Float[Array, " n_state"], mu: Float[Array, " n_param"]) -> Array:
        if not self.forcing_periods:
            return self.dynamics_net(jnp.concatenate([z, self.normalise_params(mu)])) / self.time_scale
        inputs = self.latent_inputs(z)
        dz = self.dynamics_net(jnp.concatenate([inputs[: self.n_latent], self.normalise_params(mu),
                                                inputs[self.n_latent:]])) / self.time_scale
        return jnp.concatenate([dz, jnp.ones((1,), z.dtype)])

    def step(self, x, mu, dt):
        return rk4(lambda z: self.tendency(z, mu), x, dt)

    # -- decoding ------------------------------------------------------------------------------
    def decode_normalised(self, z: Float[Array, " n_state"], coords: Float[Array, " n_coord"]) -> Array:
        return self.decoder_net(jnp.concatenate([self.latent_inputs(z), self.features(self.normalise_coords(coords))]))

    def decode(self, z: Float[Array, " n_latent"], coords: Float[Array, " n_coord"]) -> Float[Array, " n_field"]:
        """Every field at one point, in physical units."""
        mean, std = jax.lax.stop_gradient(self.field_mean), jax.lax.stop_gradient(self.field_std)
        return self.decode_normalised(z, coords) * std + mean

    def observe(self, x, mu, coords, field):
        return self.decode(x, coords)[field]

    # The decoder for many observations: the coordinates' Fourier features once per window.
    def prepare(self, xs, mu):
        return jax.vmap(self.latent_inputs)(xs)

    def geometry(self, coords, field):
        return self.features(self.normalise_coords(coords))

    def sample(self, prepared, mu, t, geometry, field):
        mean, std = jax.lax.stop_gradient(self.field_mean), jax.lax.stop_gradient(self.field_std)
        out = self.decoder_net(jnp.concatenate([prepared[t], geometry]))
        return out[field] * std[field] + mean[field]

    @property
    def observation_footprint(self) -> int:
        return self.decoder_net.inp.out_features * (len(self.decoder_net.blocks) + 2)

    # -- trajectories --------------------------------------------------------------------------
    def latent_trajectory(self, mu: Float[Array, " n_param"], times: Float[Array, " n_times"], n_steps: int) -> Array:
        """``z`` at ``times`` (model time since the origin, each in ``[0, n_steps * dt]``), from ``z = 0``."""
        problem = Problem(self, mu)
        return states_at(problem, jnp.zeros(self.n_state, mu.dtype), times, n_steps)

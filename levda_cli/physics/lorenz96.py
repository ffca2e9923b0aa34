"""Lorenz-96 (Lorenz 1996; Lorenz & Emanuel 1998) with the forcing F as a parameter.

``dx_i/dt = (x_{i+1} - x_{i-2}) x_{i-1} - x_i + F`` on a ring of ``n`` sites, integrated with
classical RK4. The observation operator interpolates linearly, periodically, between sites,
so an observation may sit at any real coordinate ``site`` in ``[0, n)``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from levda_cli.core.dynamics import GridInterpolated, rk4

FIELDS = ("x",)
COORDS = ("site",)
PARAMS = ("F",)


def tendency(x: Float[Array, " n"], forcing: Float[Array, ""]) -> Float[Array, " n"]:
    return (jnp.roll(x, -1) - jnp.roll(x, 2)) * jnp.roll(x, 1) - x + forcing


class Lorenz96(GridInterpolated):
    """Lorenz-96 on ``n`` sites; parameters ``mu = [F]``."""

    n_state: int = eqx.field(static=True, default=40)
    dt: float = eqx.field(static=True, default=0.05)

    def __check_init__(self):
        if self.n_state < 4:
            raise ValueError(f"Lorenz-96 needs at least 4 sites, got {self.n_state}")
        if not self.dt > 0:
            raise ValueError(f"time step must be positive, got {self.dt}")

    def step(self, x, mu, dt):
        return rk4(lambda y: tendency(y, mu[0]), x, dt)

    def observe(self, x, mu, coords, field):
        site = jnp.mod(coords[0], self.n_state)
        i0 = jnp.floor(site).astype(jnp.int32)
        frac = site - i0
        return (1.0 - frac) * x[i0 % self.n_state] + frac * x[(i0 + 1) % self.n_state]

    def geometry(self, coords, field):
        """The two neighbouring sites and their interpolation weights."""
        site = jnp.mod(coords[0], self.n_state)
        i0 = jnp.floor(site).astype(jnp.int32)
        frac = site - i0
        return jnp.stack([i0 % self.n_state, (i0 + 1) % self.n_state]), jnp.stack([1.0 - frac, frac])

    def integrate(self, x0: Float[Array, " n"], forcing, n_steps: int, every: int = 1) -> Float[Array, "n_out n"]:
        """States after every ``every`` steps, ``n_steps // every`` of them, starting state excluded."""
        mu = jnp.atleast_1d(jnp.asarray(forcing, x0.dtype))
        dt = jnp.asarray(self.dt, x0.dtype)

        def inner(x, _):
            return self.step(x, mu, dt), None

        def outer(x, _):
            x, _ = jax.lax.scan(inner, x, None, length=every)
            return x, x

        _, xs = jax.lax.scan(outer, x0, None, length=n_steps // every)
        return xs

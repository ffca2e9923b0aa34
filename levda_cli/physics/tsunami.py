"""2-D shallow water on a beta-plane: linear momentum with Coriolis, nonlinear continuity.

    du/dt =  f v - g deta/dx
    dv/dt = -f u - g deta/dy
    deta/dt = -div((H + eta) u),        f = f0 + beta (y - L/2)

on the square ``[0, L]^2`` with closed walls, starting from rest with a Gaussian bump of
``eta`` whose centre ``(x0, y0)`` is the unknown parameter pair. Arakawa C-grid (``eta`` at
cell centres, ``u`` and ``v`` on the faces normal to them, zero on the walls): the flux form of
the continuity equation conserves the total mass to round-off. Classical RK4 in time.

The state vector is ``[eta (n*n), interior u (n*(n-1)), interior v ((n-1)*n)]``; time in
seconds, lengths in metres.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from levda_cli.core.dynamics import GridInterpolated, rk4

FIELDS = ("u", "v", "eta")
COORDS = ("x", "y")
PARAMS = ("x0", "y0")


class Tsunami(GridInterpolated):
    """The tsunami benchmark on an ``n x n`` C-grid; parameters ``mu = [x0, y0]`` (metres)."""

    n: int = eqx.field(static=True, default=50)
    dt: float = eqx.field(static=True, default=100.0)
    length: float = eqx.field(static=True, default=1.0e6)
    depth: float = eqx.field(static=True, default=100.0)
    f0: float = eqx.field(static=True, default=1.0e-4)
    beta: float = eqx.field(static=True, default=2.0e-11)
    gravity: float = eqx.field(static=True, default=9.81)
    amplitude: float = eqx.field(static=True, default=1.0)
    width: float = eqx.field(static=True, default=5.0e4)
    nonlinear: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if self.n < 4:
            raise ValueError(f"the tsunami grid needs at least 4 cells a side, got {self.n}")
        courant = self.dt * (self.gravity * self.depth) ** 0.5 / self.dx
        if courant > 1.0:
            raise ValueError(f"time step {self.dt} s gives a Courant number {courant:.2f} > 1 on a "
                             f"{self.n}x{self.n} grid; use dt <= {self.dx / (self.gravity * self.depth) ** 0.5:.0f} s")

    @property
    def dx(self) -> float:
        return self.length / self.n

    @property
    def n_state(self) -> int:  # type: ignore[override]
        return self.n * self.n + 2 * self.n * (self.n - 1)

    # -- state layout --------------------------------------------------------------------------
    def unpack(self, x: Float[Array, " n_state"]) -> tuple[Array, Array, Array]:
        """``eta (n, n)``, ``u (n, n+1)`` and ``v (n+1, n)`` with the wall faces (zeros)."""
        n = self.n
        eta = x[: n * n].reshape(n, n)
        u_in = x[n * n : n * n + n * (n - 1)].reshape(n, n - 1)
        v_in = x[n * n + n * (n - 1) :].reshape(n - 1, n)
        u = jnp.pad(u_in, ((0, 0), (1, 1)))
        v = jnp.pad(v_in, ((1, 1), (0, 0)))
        return eta, u, v

    def pack(self, eta: Array, u: Array, v: Array) -> Float[Array, " n_state"]:
        return jnp.concatenate([eta.ravel(), u[:, 1:-1].ravel(), v[1:-1, :].ravel()])

    def centres(self) -> Array:
        return (jnp.arange(self.n) + 0.5) * self.dx

    def initial_state(self, mu: Float[Array, " 2"]) -> Float[Array, " n_state"]:
        """Fluid at rest with a Gaussian bump of ``eta`` centred at ``mu = (x0, y0)``."""
        c = self.centres()
        X, Y = jnp.meshgrid(c, c)  # rows: y, columns: x
        eta = self.amplitude * jnp.exp(-((X - mu[0]) ** 2 + (Y - mu[1]) ** 2) / (2 * self.width**2))
        zeros_u = jnp.zeros((self.n, self.n + 1), eta.dtype)
        zeros_v = jnp.zeros((self.n + 1, self.n), eta.dtype)
        return self.pack(eta, zeros_u, zeros_v)

    # -- dynamics ------------------------------------------------------------------------------
    def tendency(self, x: Float[Array, " n_state"]) -> Float[Array, " n_state"]:
        eta, u, v = self.unpack(x)
        dx, g = self.dx, self.gravity
        y_c = self.centres()
        y_f = jnp.arange(self.n + 1) * dx
        f_u = (self.f0 + self.beta * (y_c - self.length / 2))[:, None]  # rows of u points
        f_v = (self.f0 + self.beta * (y_f - self.length / 2))[:, None]  # rows of v points
        # v averaged to u points and u to v points (four neighbours each).
        v_at_u = 0.25 * (v[:-1, :-1] + v[:-1, 1:] + v[1:, :-1] + v[1:, 1:])  # (n, n-1): interior u
        u_at_v = 0.25 * (u[:-1, :-1] + u[:-1, 1:] + u[1:, :-1] + u[1:, 1:])  # (n-1, n): interior v
        du = f_u * v_at_u - g * (eta[:, 1:] - eta[:, :-1]) / dx
        dv = -f_v[1:-1] * u_at_v - g * (eta[1:, :] - eta[:-1, :]) / dx
        h = self.depth + eta if self.nonlinear else jnp.full_like(eta, self.depth)
        h_u = jnp.pad(0.5 * (h[:, 1:] + h[:, :-1]), ((0, 0), (1, 1)))
        h_v = jnp.pad(0.5 * (h[1:, :] + h[:-1, :]), ((1, 1), (0, 0)))
        flux_x, flux_y = h_u * u, h_v * v
        deta = -(flux_x[:, 1:] - flux_x[:, :-1]) / dx - (flux_y[1:, :] - flux_y[:-1, :]) / dx
        return jnp.concatenate([deta.ravel(), du.ravel(), dv.ravel()])

    def step(self, x, mu, dt):
        return rk4(self.tendency, x, dt)

    # -- fields and observation ----------------------------------------------------------------
    def fields(self, x: Float[Array, " n_state"]) -> dict[str, Array]:
        """``u``, ``v`` and ``eta`` at the cell centres, ``(n, n)`` each (rows: y)."""
        eta, u, v = self.unpack(x)
        return {"u": 0.5 * (u[:, 1:] + u[:, :-1]), "v": 0.5 * (v[1:, :] + v[:-1, :]), "eta": eta}

    def observe(self, x, mu, coords, field):
        """Bilinear interpolation from each field's own C-grid points (no grid snapping)."""
        eta, u, v = self.unpack(x)
        dx = self.dx
        xo, yo = coords[0] / dx, coords[1] / dx

        def bilinear(a, x0, y0, px, py):
            # a sampled at (x0 + i, y0 + j) in grid units; clamp to the array (walls, edges).
            fx = jnp.clip(px - x0, 0.0, a.shape[1] - 1.0)
            fy = jnp.clip(py - y0, 0.0, a.shape[0] - 1.0)
            i0 = jnp.clip(jnp.floor(fx).astype(jnp.int32), 0, a.shape[1] - 2)
            j0 = jnp.clip(jnp.floor(fy).astype(jnp.int32), 0, a.shape[0] - 2)
            wx, wy = fx - i0, fy - j0
            return ((1 - wy) * ((1 - wx) * a[j0, i0] + wx * a[j0, i0 + 1])
                    + wy * ((1 - wx) * a[j0 + 1, i0] + wx * a[j0 + 1, i0 + 1]))

        values = jnp.stack([
            bilinear(u, 0.0, 0.5, xo, yo),  # u at (i, j + 1/2)
            bilinear(v, 0.5, 0.0, xo, yo),  # v at (i + 1/2, j)
            bilinear(eta, 0.5, 0.5, xo, yo),
        ])
        return values[field]

    def geometry(self, coords, field):
        """Indices into the packed state of the four grid points ``observe`` interpolates between,
        and their weights (zero on the walls, where the normal velocity is zero)."""
        n, dx = self.n, self.dx
        xo, yo = coords[0] / dx, coords[1] / dx

        def corners(rows, cols, x0, y0):
            fx = jnp.clip(xo - x0, 0.0, cols - 1.0)
            fy = jnp.clip(yo - y0, 0.0, rows - 1.0)
            i0 = jnp.clip(jnp.floor(fx).astype(jnp.int32), 0, cols - 2)
            j0 = jnp.clip(jnp.floor(fy).astype(jnp.int32), 0, rows - 2)
            wx, wy = fx - i0, fy - j0
            j = jnp.stack([j0, j0, j0 + 1, j0 + 1])
            i = jnp.stack([i0, i0 + 1, i0, i0 + 1])
            w = jnp.stack([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx])
            return j, i, w

        # u on (n, n+1) faces: interior columns 1..n-1 are packed after eta
        j, i, w_u = corners(n, n + 1, 0.0, 0.5)
        inside = (i >= 1) & (i <= n - 1)
        idx_u = jnp.where(inside, n * n + j * (n - 1) + (i - 1), 0)
        w_u = jnp.where(inside, w_u, 0.0)
        # v on (n+1, n) faces: interior rows 1..n-1 are packed after u
        j, i, w_v = corners(n + 1, n, 0.5, 0.0)
        inside = (j >= 1) & (j <= n - 1)
        idx_v = jnp.where(inside, n * n + n * (n - 1) + (j - 1) * n + i, 0)
        w_v = jnp.where(inside, w_v, 0.0)
        j, i, w_e = corners(n, n, 0.5, 0.5)
        idx_e = j * n + i
        index = jnp.stack([idx_u, idx_v, idx_e])[field]
        weight = jnp.stack([w_u, w_v, w_e])[field]
        return index, weight

    def mass(self, x) -> Float[Array, ""]:
        return jnp.sum(self.unpack(x)[0]) * self.dx**2

    def energy(self, x) -> Float[Array, ""]:
        """``1/2 sum(H (u^2 + v^2) + g eta^2) dA``: conserved by the linear equations."""
        eta, u, v = self.unpack(x)
        return 0.5 * self.dx**2 * (self.depth * (jnp.sum(u**2) + jnp.sum(v**2)) + self.gravity * jnp.sum(eta**2))

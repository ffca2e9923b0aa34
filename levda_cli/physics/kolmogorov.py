"""2-D incompressible Navier-Stokes on the periodic ``[0, 2 pi]^2`` with Kolmogorov forcing.

Vorticity form, pseudo-spectral with 2/3-rule dealiasing:

    dw/dt + u . grad w = nu lap w - alpha w - k_f cos(k_f y),     nu = 1 / Re

(the body force ``(sin(k_f y), 0)``, wavenumber ``k_f = 4``, linear drag ``alpha = 0.1``), the
set-up of the Kolmogorov benchmark of jax-cfd and of the LEVDA paper. The Reynolds number is the
unknown parameter. Time stepping: classical RK4 with the viscous and drag terms integrated
exactly (integrating factor), so the time step is limited by advection only.

The state is the vorticity on the ``n x n`` grid (rows: y); the fields are the velocities
``u``, ``v``, which the decoder evaluates anywhere by their Fourier series (exact spectral
interpolation).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from levda_cli.core.dynamics import AbstractDynamics

FIELDS = ("u", "v")
COORDS = ("x", "y")
PARAMS = ("Re",)
TWO_PI = 2.0 * jnp.pi


class Kolmogorov(AbstractDynamics):
    """Kolmogorov flow on an ``n x n`` grid; parameters ``mu = [Re]``."""

    n: int = eqx.field(static=True, default=32)
    dt: float = eqx.field(static=True, default=0.01)
    forcing_wavenumber: int = eqx.field(static=True, default=4)
    drag: float = eqx.field(static=True, default=0.1)
    forced: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        if self.n < 8 or self.n % 2:
            raise ValueError(f"the Kolmogorov grid needs an even n >= 8, got {self.n}")

    @property
    def n_state(self) -> int:  # type: ignore[override]
        return self.n * self.n

    def _wavenumbers(self):
        k = jnp.fft.fftfreq(self.n, 1.0 / self.n)
        kr = jnp.fft.rfftfreq(self.n, 1.0 / self.n)
        ky, kx = jnp.meshgrid(k, kr, indexing="ij")  # (n, n//2+1)
        k2 = kx**2 + ky**2
        cut = self.n // 3
        dealias = (jnp.abs(kx) <= cut) & (jnp.abs(ky) <= cut)
        return kx, ky, k2, dealias

    def grid(self) -> Array:
        return jnp.arange(self.n) * TWO_PI / self.n

    def velocity_hat(self, w_hat):
        kx, ky, k2, _ = self._wavenumbers()
        psi_hat = jnp.where(k2 > 0, w_hat / jnp.where(k2 > 0, k2, 1.0), 0.0)  # lap psi = -w
        return 1j * ky * psi_hat, -1j * kx * psi_hat  # u = dpsi/dy, v = -dpsi/dx

    def _nonlinear_hat(self, w_hat):
        kx, ky, _, dealias = self._wavenumbers()
        u_hat, v_hat = self.velocity_hat(w_hat)
        shape = (self.n, self.n)
        u, v = jnp.fft.irfft2(u_hat, shape), jnp.fft.irfft2(v_hat, shape)
        wx, wy = jnp.fft.irfft2(1j * kx * w_hat, shape), jnp.fft.irfft2(1j * ky * w_hat, shape)
        return jnp.where(dealias, jnp.fft.rfft2(-(u * wx + v * wy)), 0.0)

    def _forcing_hat(self, dtype):
        if not self.forced:
            return 0.0
        y = self.grid().astype(dtype)
        k = self.forcing_wavenumber
        force = -k * jnp.cos(k * y)[:, None] * jnp.ones((1, self.n), dtype)
        return jnp.fft.rfft2(force)

    def step(self, x, mu, dt):
        """RK4 with an integrating factor for ``-(nu k^2 + alpha)``."""
        _, _, k2, _ = self._wavenumbers()
        nu = 1.0 / mu[0]
        lam = -(nu * k2 + self.drag)
        w_hat = jnp.fft.rfft2(x.reshape(self.n, self.n))
        forcing = self._forcing_hat(x.dtype)
        rhs = lambda wh: self._nonlinear_hat(wh) + forcing  # noqa: E731
        e_half, e_full = jnp.exp(lam * dt / 2), jnp.exp(lam * dt)
        k1 = rhs(w_hat)
        k2_ = rhs(e_half * (w_hat + dt / 2 * k1))
        k3 = rhs(e_half * w_hat + dt / 2 * k2_)
        k4 = rhs(e_full * w_hat + dt * e_half * k3)
        w_new = e_full * w_hat + dt / 6 * (e_full * k1 + 2 * e_half * (k2_ + k3) + k4)
        return jnp.fft.irfft2(w_new, (self.n, self.n)).ravel()

    def fields(self, x) -> dict[str, Array]:
        u_hat, v_hat = self.velocity_hat(jnp.fft.rfft2(x.reshape(self.n, self.n)))
        shape = (self.n, self.n)
        return {"u": jnp.fft.irfft2(u_hat, shape), "v": jnp.fft.irfft2(v_hat, shape)}

    def vorticity_from_velocity(self, u: Array, v: Array) -> Array:
        """The state from stored velocities (exact: the velocity is spectral and mean-free)."""
        kx, ky, _, _ = self._wavenumbers()
        w_hat = 1j * kx * jnp.fft.rfft2(v) - 1j * ky * jnp.fft.rfft2(u)
        return jnp.fft.irfft2(w_hat, u.shape).ravel()

    def observe(self, x, mu, coords, field):
        """The velocity's Fourier series evaluated at the point: exact spectral interpolation."""
        w_hat = jnp.fft.fft2(x.reshape(self.n, self.n))
        k = jnp.fft.fftfreq(self.n, 1.0 / self.n)
        ky, kx = jnp.meshgrid(k, k, indexing="ij")
        k2 = kx**2 + ky**2
        psi_hat = jnp.where(k2 > 0, w_hat / jnp.where(k2 > 0, k2, 1.0), 0.0)
        # Nyquist modes are zero after dealiasing, so the series is unambiguous.
        vel_hat = jnp.where(field == 0, 1j * ky * psi_hat, -1j * kx * psi_hat)
        phase = jnp.exp(1j * (kx * coords[0] + ky * coords[1]))
        return jnp.real(jnp.sum(vel_hat * phase)) / self.n**2

    # Exact spectral interpolation for many observations: the velocity's Fourier coefficients once
    # per time, the separable phases exp(i kx x), exp(i ky y) once per observation.
    def prepare(self, xs, mu):
        k = jnp.fft.fftfreq(self.n, 1.0 / self.n)
        ky, kx = jnp.meshgrid(k, k, indexing="ij")
        k2 = kx**2 + ky**2

        def coefficients(x):
            w_hat = jnp.fft.fft2(x.reshape(self.n, self.n))
            psi_hat = jnp.where(k2 > 0, w_hat / jnp.where(k2 > 0, k2, 1.0), 0.0)
            return jnp.stack([1j * ky * psi_hat, -1j * kx * psi_hat]) / self.n**2

        return jax.vmap(coefficients)(xs)

    def geometry(self, coords, field):
        k = jnp.fft.fftfreq(self.n, 1.0 / self.n)
        return jnp.exp(1j * k * coords[0]), jnp.exp(1j * k * coords[1])

    def sample(self, prepared, mu, t, geometry, field):
        ex, ey = geometry
        return jnp.real(ey @ prepared[t, field] @ ex)

    @property
    def observation_footprint(self) -> int:
        return 2 * self.n * self.n  # complex coefficients read per observation

    def random_state(self, key, dtype=jnp.float64) -> Array:
        """A random band-limited vorticity field (wavenumbers 1-6), the start of a spin-up."""
        kx, ky, k2, _ = self._wavenumbers()
        k1, k2key = jax.random.split(key)
        amp = jnp.where((k2 >= 1) & (k2 <= 36), 1.0, 0.0)
        noise = jax.random.normal(k1, k2.shape, dtype) + 1j * jax.random.normal(k2key, k2.shape, dtype)
        w = jnp.fft.irfft2(amp * noise * self.n, (self.n, self.n))
        return (w / jnp.std(w) * 5.0).ravel()

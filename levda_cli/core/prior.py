"""The background term of the cost in ensemble space, ``J_b(w)``.

Both terms are written so the Gauss-Newton Hessian of ``J_b`` is ``zeta(w) I``: the solver's
Hessian is ``zeta I + S^T S`` and its gradient ``zeta w - S^T d``. ``1 / sqrt(zeta)`` at the
minimum is the window's adaptive (pre-)inflation of the background anomalies.

The finite-size term's coefficients depend on how informative the window's observations are
(``S^T S`` at the current iterate), so every method takes ``StS``; the Gaussian term ignores it.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

Matrix = Float[Array, "n_ens n_ens"]


class AbstractPrior(eqx.Module):
    """``J_b(w)`` and its curvature ``zeta(w)`` (gradient ``zeta(w) w``), given ``S^T S``."""

    @abc.abstractmethod
    def value(self, w: Float[Array, " n_ens"], StS: Matrix) -> Float[Array, ""]: ...

    @abc.abstractmethod
    def zeta(self, w: Float[Array, " n_ens"], StS: Matrix) -> Float[Array, ""]: ...

    def hessian(self, w: Float[Array, " n_ens"], StS: Matrix) -> Matrix:
        """The exact Hessian of ``J_b`` at fixed ``S^T S`` (used for the posterior); ``zeta I``
        unless overridden."""
        return self.zeta(w, StS) * jnp.eye(w.shape[0], dtype=w.dtype)

    def for_ensemble(self, n_ens: int, n_ctrl: int) -> AbstractPrior:
        """This term for an ensemble of ``n_ens`` members of a control of size ``n_ctrl``."""
        return self


class GaussianPrior(AbstractPrior):
    """``J_b = w^T w / 2``: the ensemble covariance taken at face value (after any inflation)."""

    def value(self, w, StS=None):
        return 0.5 * (w @ w)

    def zeta(self, w, StS=None):
        return jnp.ones((), w.dtype)


class FiniteSizePrior(AbstractPrior):
    """The finite-size EnKF-N background term (Bocquet 2011; Bocquet & Sakov 2012, IEnKS-N) with
    the hyperprior of Bocquet, Raanes & Hannart (2015).

    The ensemble's mean and covariance are treated as uncertain, which gives (in the
    normalisation ``X = (E - mean) / sqrt(N - 1)``)

        ``J_b(w) = (N - 1) c_L / 2 * ln(1 + w^T w / ((N - 1) e_N))``,
        ``zeta(w) = (N - 1) c_L / ((N - 1) e_N + w^T w)``,

    with ``e_N = (N + 1) / N`` and ``c_L = (N + g) / (N - 1)`` (``g`` the nullity of the
    anomalies: ``max(0, N - 1 - n_ctrl)``). ``zeta`` falls when the observations pull far from the
    background: an inflation chosen by the data in every window, which keeps a badly started or
    under-dispersive ensemble from diverging.

    ``mode_correction`` (BRH15, eq. 36, as in DAPPER's ``hyperprior_coeffs``) moves the
    hyperprior's mode towards no inflation as the window's observations lose their weight,
    ``e_N -> e_N / m``, ``c_L -> c_L m`` with ``m = (e_N / c_L)^(tr((I + S^T S)^-1) / (2N))``: a
    window without observations then leaves the ensemble exactly as it was (the uncorrected term
    deflates it by ``sqrt((N - 1) / N)`` per window). ``x_n`` multiplies both coefficients: the
    hyperprior's confidence, 1 for a fully agnostic one (chaotic or stochastic models), larger
    for more linear, deterministic ones (the inflation moves less from window to window).

    The coefficients are held fixed within a Gauss-Newton step (they are re-evaluated at every
    iterate, as in DAPPER's iEnKS); the rank-one part of the exact Hessian is used for the
    posterior only where that Hessian stays positive definite (``core.window``).
    """

    x_n: float = eqx.field(static=True, default=1.0)
    mode_correction: bool = eqx.field(static=True, default=True)
    nullity: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        if not self.x_n > 0:
            raise ValueError(f"the hyperprior confidence x_n must be positive, got {self.x_n}")
        if self.nullity < 0:
            raise ValueError(f"the anomalies' nullity must be >= 0, got {self.nullity}")

    def for_ensemble(self, n_ens, n_ctrl):
        return FiniteSizePrior(self.x_n, self.mode_correction, max(0, n_ens - 1 - n_ctrl))

    def coefficients(self, n: int, StS: Matrix, dtype) -> tuple[Array, Array]:
        """``(e_N, c_L)`` for ``n`` members and this window's ``S^T S``."""
        e_n = jnp.asarray((n + 1.0) / n, dtype)
        c_l = jnp.asarray((n + self.nullity) / (n - 1.0), dtype)
        if self.mode_correction:
            eye = jnp.eye(n, dtype=dtype)
            prior_weight = jnp.trace(jnp.linalg.solve(eye + StS, eye)) / n  # about 1 / (1 + HBH^T / R)
            m = jnp.sqrt((e_n / c_l) ** prior_weight)
            e_n, c_l = e_n / m, c_l * m
        return self.x_n * e_n, self.x_n * c_l

    def _parts(self, w, StS):
        n = w.shape[0]
        e_n, c_l = self.coefficients(n, StS, w.dtype)
        return (n - 1.0) * c_l, (n - 1.0) * e_n + w @ w, (n - 1.0) * e_n

    def value(self, w, StS):
        a, denominator, base = self._parts(w, StS)
        return 0.5 * a * jnp.log(denominator / base)  # J_b(0) = 0

    def zeta(self, w, StS):
        a, denominator, _ = self._parts(w, StS)
        return a / denominator

    def hessian(self, w, StS):
        a, d, _ = self._parts(w, StS)
        return a / d * jnp.eye(w.shape[0], dtype=w.dtype) - 2.0 * a * jnp.outer(w, w) / d**2

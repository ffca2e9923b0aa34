"""The background term of the cost in ensemble space, ``J_b(w)``.

Both terms are written so the Gauss-Newton Hessian of ``J_b`` is ``zeta(w) I``: the solver's
Hessian is ``zeta I + S^T S`` and its gradient ``zeta w - S^T d``.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float


class AbstractPrior(eqx.Module):
    """``J_b(w)`` and its curvature ``zeta(w)`` (gradient ``zeta(w) w``)."""

    @abc.abstractmethod
    def value(self, w: Float[Array, " n_ens"]) -> Float[Array, ""]: ...

    @abc.abstractmethod
    def zeta(self, w: Float[Array, " n_ens"]) -> Float[Array, ""]: ...

    def hessian(self, w: Float[Array, " n_ens"]) -> Float[Array, "n_ens n_ens"]:
        """The exact Hessian of ``J_b`` (used for the posterior); ``zeta I`` unless overridden."""
        return self.zeta(w) * jnp.eye(w.shape[0], dtype=w.dtype)


class GaussianPrior(AbstractPrior):
    """``J_b = w^T w / 2``: the ensemble covariance taken at face value (after any inflation)."""

    def value(self, w):
        return 0.5 * (w @ w)

    def zeta(self, w):
        return jnp.ones((), w.dtype)


class FiniteSizePrior(AbstractPrior):
    """The finite-size EnKF-N background term (Bocquet 2011; Bocquet & Sakov 2012, IEnKS-N).

    The ensemble's mean and covariance are treated as uncertain (a Jeffreys hyperprior), which
    gives ``J_b = (N + 1)/2 ln(eps_N + w^T w / (N - 1))`` with ``eps_N = 1 + 1/N`` in the
    normalisation ``X = (E - mean) / sqrt(N - 1)``. Its curvature
    ``zeta = (N + 1) / ((N - 1) eps_N + w^T w)`` is ``N / (N - 1)`` at ``w = 0`` and falls when
    the observations pull far from the background: an inflation chosen by the data in every
    window, which keeps a badly started or under-dispersive ensemble from diverging. The rank-one
    part of the exact Hessian of ``J_b`` is left out (a Gauss-Newton approximation); the
    minimiser is unchanged by that.
    """

    def _denominator(self, w):
        n = w.shape[0]
        return (n - 1.0) * (1.0 + 1.0 / n) + w @ w

    def value(self, w):
        n = w.shape[0]
        eps_n = (n - 1.0) * (1.0 + 1.0 / n)
        return 0.5 * (n + 1.0) * jnp.log1p((w @ w) / eps_n)  # shifted so that J_b(0) = 0

    def zeta(self, w):
        return (w.shape[0] + 1.0) / self._denominator(w)

    def hessian(self, w):
        n, d = w.shape[0], self._denominator(w)
        return (n + 1.0) / d * jnp.eye(n, dtype=w.dtype) - 2.0 * (n + 1.0) * jnp.outer(w, w) / d**2

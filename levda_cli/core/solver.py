"""Minimisers of the ensemble-subspace 4DEnVar cost.

``J(w) = 1/2 w^T w + 1/2 d(w)^T d(w)`` with the normalised innovation
``d(w) = R^{-1/2} (y - h(v_bar + X w))`` (masked entries are zero). ``S = -dd/dw`` is the
observation-space image of the ensemble directions; it is built by forward-mode autodiff
(one JVP per ensemble direction, ``N`` in all), so no tangent-linear code is written by hand.
The Gauss-Newton Hessian is ``H = zeta I + S^T S`` (N x N), ``zeta`` the curvature of the
background term (1 for the Gaussian term; see ``prior.py``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from levda_cli.core.prior import AbstractPrior


class Minimum(eqx.Module):
    """Where a minimiser stopped, with everything the analysis transform needs."""

    w: Float[Array, " n_ens"]
    d: Float[Array, " n_obs"]  # normalised innovation at w
    S: Float[Array, "n_obs n_ens"]  # -dd/dw at w
    iterations: Int[Array, ""]
    converged: Bool[Array, ""]
    step_norm: Float[Array, ""]


def linearise(residual: Callable[[Array], Array], w: Float[Array, " n_ens"]) -> tuple[Array, Array]:
    """The residual at ``w`` and ``S = -d residual / dw`` by N forward-mode products."""
    eye = jnp.eye(w.shape[0], dtype=w.dtype)
    d, jac = jax.vmap(lambda e: jax.jvp(residual, (w,), (e,)), out_axes=(None, 1))(eye)
    return d, -jac


def cost(prior: AbstractPrior, w: Array, d: Array) -> Array:
    return prior.value(w) + 0.5 * (d @ d)


class AbstractSolver(eqx.Module):
    """Minimises the cost in ``w`` starting from ``w = 0``."""

    max_iterations: eqx.AbstractVar[int]
    tolerance: eqx.AbstractVar[float]

    @abc.abstractmethod
    def minimise(self, residual: Callable[[Array], Array], prior: AbstractPrior, n_ens: int, dtype) -> Minimum: ...


def _damped_iterations(residual, prior, n_ens, dtype, max_iterations, tolerance, damping, factor) -> Minimum:
    """Gauss-Newton (``damping == 0``) or Levenberg-Marquardt iterations.

    With damping, a step that raises the cost is refused and the damping multiplied by
    ``factor``; an accepted step divides it. Stops when ``||dw|| < tolerance`` or after
    ``max_iterations`` steps.
    """
    w0 = jnp.zeros(n_ens, dtype)
    d0, S0 = linearise(residual, w0)
    eye = jnp.eye(n_ens, dtype=dtype)
    inf = jnp.asarray(jnp.inf, dtype)

    def cond(state):
        _, _, _, it, norm, _ = state
        return (it < max_iterations) & (norm >= tolerance)

    def body(state):
        w, d, S, it, _, lam = state
        zeta = prior.zeta(w)
        H = zeta * eye + S.T @ S
        g = S.T @ d - zeta * w
        dw = jnp.linalg.solve(H + lam * eye, g)
        w_new = w + dw
        d_new, S_new = linearise(residual, w_new)
        if damping == 0.0:
            accept = jnp.asarray(True)
        else:
            accept = cost(prior, w_new, d_new) <= cost(prior, w, d)
        lam_new = jnp.where(accept, lam / factor, lam * factor)
        pick = lambda a, b: jnp.where(accept, a, b)  # noqa: E731
        return (pick(w_new, w), pick(d_new, d), pick(S_new, S), it + 1, jnp.linalg.norm(dw), lam_new)

    state = (w0, d0, S0, jnp.asarray(0), inf, jnp.asarray(damping, dtype))
    w, d, S, it, norm, _ = jax.lax.while_loop(cond, body, state)
    return Minimum(w=w, d=d, S=S, iterations=it, converged=norm < tolerance, step_norm=norm)


class GaussNewton(AbstractSolver):
    """Gauss-Newton in ``w`` with the exact ``N x N`` Hessian ``I + S^T S``."""

    max_iterations: int = eqx.field(static=True, default=20)
    tolerance: float = eqx.field(static=True, default=1e-3)

    def __check_init__(self):
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be at least 1, got {self.max_iterations}")
        if not self.tolerance > 0:
            raise ValueError(f"tolerance must be positive, got {self.tolerance}")

    def minimise(self, residual, prior, n_ens, dtype) -> Minimum:
        return _damped_iterations(residual, prior, n_ens, dtype, self.max_iterations, self.tolerance, 0.0, 1.0)


class LevenbergMarquardt(AbstractSolver):
    """Levenberg-Marquardt: Gauss-Newton with adaptive damping, for strongly nonlinear windows."""

    max_iterations: int = eqx.field(static=True, default=30)
    tolerance: float = eqx.field(static=True, default=1e-3)
    damping: float = eqx.field(static=True, default=1e-2)
    factor: float = eqx.field(static=True, default=4.0)

    def __check_init__(self):
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be at least 1, got {self.max_iterations}")
        if not (self.tolerance > 0 and self.damping > 0 and self.factor > 1):
            raise ValueError("Levenberg-Marquardt needs tolerance > 0, damping > 0 and factor > 1")

    def minimise(self, residual, prior, n_ens, dtype) -> Minimum:
        return _damped_iterations(
            residual, prior, n_ens, dtype, self.max_iterations, self.tolerance, self.damping, self.factor
        )

"""Minimisers of the ensemble-subspace 4DEnVar cost.

``J(w) = 1/2 w^T w + 1/2 d(w)^T d(w)`` with the normalised innovation
``d(w) = R^{-1/2} (y - h(v_bar + X w))`` (masked entries are zero). ``S = -dd/dw`` is the
observation-space image of the ensemble directions, built by forward-mode autodiff (no
tangent-linear code is written by hand); the minimisers see it only through ``S^T S`` and
``S^T d`` (``core.linearise``, which never forms ``S`` whole). The Gauss-Newton Hessian is
``H = zeta I + S^T S`` (N x N), ``zeta`` the curvature of the background term (1 for the
Gaussian term; see ``prior.py``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from levda_cli.core.linearise import Linearisation
from levda_cli.core.prior import AbstractPrior

Linearise = Callable[[Array], Linearisation]


class Minimum(eqx.Module):
    """Where a minimiser stopped, with everything the analysis transform needs."""

    w: Float[Array, " n_ens"]
    d: Float[Array, " n_obs"]  # normalised innovation at w
    StS: Float[Array, "n_ens n_ens"]  # S^T S at w, S = -dd/dw
    StS_initial: Float[Array, "n_ens n_ens"]  # S^T S at w = 0 (the background's spread in observation space)
    iterations: Int[Array, ""]
    converged: Bool[Array, ""]
    step_norm: Float[Array, ""]


def cost(prior: AbstractPrior, w: Array, d: Array, StS: Array) -> Array:
    """``J(w)``; ``StS`` sets the finite-size background term's coefficients (``prior.py``)."""
    return prior.value(w, StS) + 0.5 * (d @ d)


class AbstractSolver(eqx.Module):
    """Minimises the cost in ``w`` starting from ``w = 0``."""

    max_iterations: eqx.AbstractVar[int]
    tolerance: eqx.AbstractVar[float]

    @abc.abstractmethod
    def minimise(self, linearise: Linearise, prior: AbstractPrior, n_ens: int, dtype, w0=None) -> Minimum:
        """From ``w0`` (default ``w = 0``, the background mean)."""


def _damped_iterations(linearise: Linearise, prior, n_ens, dtype, max_iterations, tolerance, damping, factor,
                       w0=None) -> Minimum:
    """Gauss-Newton (``damping == 0``) or Levenberg-Marquardt iterations.

    With damping, a step that raises the cost is refused and the damping multiplied by
    ``factor``; an accepted step divides it. Gauss-Newton takes every finite step; a step to
    non-finite values (a model blown up far from the background) is refused and the next one
    damped (Levenberg-Marquardt's rule until a step is accepted), not an abort. Stops when an
    accepted step has ``||dw|| < tolerance`` or after ``max_iterations`` steps.
    """
    w0 = jnp.zeros(n_ens, dtype) if w0 is None else w0
    lin0 = linearise(w0)
    eye = jnp.eye(n_ens, dtype=dtype)
    inf = jnp.asarray(jnp.inf, dtype)

    def cond(state):
        _, _, it, norm, _ = state
        return (it < max_iterations) & (norm >= tolerance)

    def body(state):
        w, lin, it, _, lam = state
        zeta = prior.zeta(w, lin.StS)
        H = zeta * eye + lin.StS
        g = lin.Std - zeta * w
        dw = jnp.linalg.solve(H + lam * eye, g)
        w_new = w + dw
        lin_new = linearise(w_new)
        # both costs with this iterate's background coefficients (the finite-size term's depend on S^T S)
        j_new = cost(prior, w_new, lin_new.d, lin.StS)
        finite = jnp.isfinite(j_new) & jnp.isfinite(lin_new.StS).all() & jnp.isfinite(lin_new.Std).all()
        if damping == 0.0:
            accept = finite
            # Gauss-Newton again after an accepted step; after a refused one, damped as LM would
            lam_new = jnp.where(accept, 0.0, jnp.maximum(lam * 10.0, zeta))
        else:
            # a step to non-finite values is refused like one that raises the cost
            accept = finite & (j_new <= cost(prior, w, lin.d, lin.StS))
            lam_new = jnp.where(accept, lam / factor, lam * factor)
        keep = jax.tree.map(lambda a, b: jnp.where(accept, a, b), (w_new, lin_new), (w, lin))
        # the step norm that decides convergence is the accepted step's (a refused step is no step)
        norm = jnp.where(accept, jnp.linalg.norm(dw), inf)
        return (*keep, it + 1, norm, lam_new)

    state = (w0, lin0, jnp.asarray(0), inf, jnp.asarray(damping, dtype))
    w, lin, it, norm, _ = jax.lax.while_loop(cond, body, state)
    return Minimum(w=w, d=lin.d, StS=lin.StS, StS_initial=lin0.StS, iterations=it, converged=norm < tolerance,
                   step_norm=norm)


class GaussNewton(AbstractSolver):
    """Gauss-Newton in ``w`` with the exact ``N x N`` Hessian ``I + S^T S``."""

    max_iterations: int = eqx.field(static=True, default=20)
    tolerance: float = eqx.field(static=True, default=1e-3)

    def __check_init__(self):
        if self.max_iterations < 1:
            raise ValueError(f"max_iterations must be at least 1, got {self.max_iterations}")
        if not self.tolerance > 0:
            raise ValueError(f"tolerance must be positive, got {self.tolerance}")

    def minimise(self, linearise, prior, n_ens, dtype, w0=None) -> Minimum:
        return _damped_iterations(linearise, prior, n_ens, dtype, self.max_iterations, self.tolerance, 0.0, 1.0, w0)


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

    def minimise(self, linearise, prior, n_ens, dtype, w0=None) -> Minimum:
        return _damped_iterations(
            linearise, prior, n_ens, dtype, self.max_iterations, self.tolerance, self.damping, self.factor, w0
        )

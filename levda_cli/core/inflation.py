"""Inflation and anti-collapse strategies.

Each strategy may act on the background before the analysis (``before``) and on the analysis
afterwards (``after``); the default of each is to do nothing. Ensembles are arrays of shape
``(n_ens, n_ctrl)``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

Ensemble = Float[Array, "n_ens n_ctrl"]


def _anomalies(ens: Ensemble) -> tuple[Array, Array]:
    mean = ens.mean(axis=0)
    return mean, ens - mean


class AbstractInflation(eqx.Module):
    """How the ensemble is kept from collapsing between windows."""

    def before(self, background: Ensemble, key: PRNGKeyArray) -> Ensemble:
        return background

    def after(self, background: Ensemble, analysis: Ensemble, key: PRNGKeyArray,
              stats: WindowStats | None = None) -> Ensemble:
        """The analysis kept; ``stats``: the window's statistics, for strategies that read them."""
        return analysis


class WindowStats(eqx.Module):
    """What an analysis strategy may read of its window, in observation space normalised by R^-1/2."""

    innovation: Float[Array, ""]  # |R^-1/2 (y - h(mean_b))|^2
    n_obs: Float[Array, ""]
    variance_b: Float[Array, ""]  # tr(S^T S) at the background mean: the background members' variance
    spread_b: Float[Array, ""]  # tr(S^T S) at the minimum (the analysis' linearisation)
    spread_a: Float[Array, ""]  # tr(S^T S H^-1) there: the analysis members' variance (degrees of freedom for signal)


class Multiplicative(AbstractInflation):
    """Multiplies the background anomalies by ``rho`` (the ``rho`` of ``X`` in the cost)."""

    rho: float

    def __check_init__(self):
        if not self.rho >= 1.0:
            raise ValueError(f"multiplicative inflation must be >= 1, got {self.rho}")

    def before(self, background, key):
        mean, anom = _anomalies(background)
        return mean + self.rho * anom


class RTPS(AbstractInflation):
    """Relaxation to prior spread (Whitaker & Hamill 2012), per control component."""

    alpha: float

    def __check_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"RTPS alpha must lie in [0, 1], got {self.alpha}")

    def after(self, background, analysis, key, stats=None):
        return relax(background, analysis, self.alpha)


def relax(background: Ensemble, analysis: Ensemble, alpha) -> Ensemble:
    """The analysis anomalies scaled per component by ``alpha sigma_b / sigma_a + 1 - alpha``."""
    _, anom_b = _anomalies(background)
    mean_a, anom_a = _anomalies(analysis)
    sd_b = anom_b.std(axis=0)
    sd_a = anom_a.std(axis=0)
    ratio = jnp.where(sd_a > 0, sd_b / jnp.where(sd_a > 0, sd_a, 1.0), 1.0)
    return mean_a + anom_a * (alpha * ratio + 1.0 - alpha)


def adaptive_relaxation(stats: WindowStats) -> Array:
    """The RTPS relaxation estimated from the window's innovations (Kotsuki, Ota & Miyoshi 2017).

    The background variance the innovations ask for, as a multiple of the ensemble's (Desroziers et al.
    2005; Li, Kalnay & Miyoshi 2009), ``beta = (|d|^2 - n_obs) / tr(S^T S)``, is given to the analysis
    instead: relaxing by ``alpha`` multiplies the analysis spread by ``1 + alpha (r - 1)``, with
    ``r = sigma_b / sigma_a`` (here in observation space: ``r^2 = tr(S^T S) / tr(S^T S H^-1)`` at the
    minimum), so ``alpha = (sqrt(beta) - 1) / (r - 1)``, within ``[0, 1]``. Where the spread and R
    explain the innovations (``beta <= 1``), and in a window without observations, it is 0: a relaxation
    that appears only where the ensemble has too little spread.
    """
    has_obs = (stats.n_obs > 0) & (stats.variance_b > 0) & (stats.spread_b > 0) & (stats.spread_a > 0)
    beta = (stats.innovation - stats.n_obs) / jnp.where(has_obs, stats.variance_b, 1.0)
    ratio = jnp.sqrt(stats.spread_b / jnp.where(has_obs, stats.spread_a, 1.0))
    alpha = (jnp.sqrt(jnp.maximum(beta, 1.0)) - 1.0) / jnp.maximum(ratio - 1.0, 1e-12)
    return jnp.where(has_obs, jnp.clip(alpha, 0.0, 1.0), 0.0)


class AdaptiveRTPS(RTPS):
    """Relaxation to prior spread with ``alpha`` estimated every window (``adaptive_relaxation``), at most
    ``alpha`` (the configured ceiling)."""

    def after(self, background, analysis, key, stats=None):
        if stats is None:
            raise ValueError("the adaptive relaxation needs the window's statistics")
        return relax(background, analysis, jnp.minimum(adaptive_relaxation(stats), self.alpha))


class ParameterJitter(AbstractInflation):
    """Additive Gaussian noise on the trailing (parameter) components of the analysis.

    Parameters persist across windows with no model error, so without jitter their spread
    collapses and the filter stops learning them. The noise is re-centred so the mean is kept.
    """

    std: Float[Array, " n_param"]

    def after(self, background, analysis, key, stats=None):
        n_param = self.std.shape[0]
        if n_param == 0:
            return analysis
        noise = jax.random.normal(key, (analysis.shape[0], n_param), analysis.dtype) * self.std
        noise = noise - noise.mean(axis=0)
        return analysis.at[:, -n_param:].add(noise)

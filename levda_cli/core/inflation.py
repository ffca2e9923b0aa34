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

    def after(self, background: Ensemble, analysis: Ensemble, key: PRNGKeyArray) -> Ensemble:
        return analysis


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

    def after(self, background, analysis, key):
        _, anom_b = _anomalies(background)
        mean_a, anom_a = _anomalies(analysis)
        sd_b = anom_b.std(axis=0)
        sd_a = anom_a.std(axis=0)
        ratio = jnp.where(sd_a > 0, sd_b / jnp.where(sd_a > 0, sd_a, 1.0), 1.0)
        return mean_a + anom_a * (self.alpha * ratio + 1.0 - self.alpha)


class ParameterJitter(AbstractInflation):
    """Additive Gaussian noise on the trailing (parameter) components of the analysis.

    Parameters persist across windows with no model error, so without jitter their spread
    collapses and the filter stops learning them. The noise is re-centred so the mean is kept.
    """

    std: Float[Array, " n_param"]

    def after(self, background, analysis, key):
        n_param = self.std.shape[0]
        if n_param == 0:
            return analysis
        noise = jax.random.normal(key, (analysis.shape[0], n_param), analysis.dtype) * self.std
        noise = noise - noise.mean(axis=0)
        return analysis.at[:, -n_param:].add(noise)

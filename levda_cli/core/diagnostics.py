"""Ensemble and innovation statistics, as values (printing and files belong elsewhere)."""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int


def field_stats(
    innovation: Float[Array, " n_obs"], field: Int[Array, " n_obs"], mask: Bool[Array, " n_obs"], n_field: int
) -> tuple[Array, Array, Array]:
    """Mean and RMS of ``innovation`` per field over the valid observations (NaN where none)."""
    onehot = (field[:, None] == jnp.arange(n_field)[None, :]) & mask[:, None]
    count = onehot.sum(axis=0)
    safe = jnp.maximum(count, 1)
    mean = (onehot * innovation[:, None]).sum(axis=0) / safe
    rms = jnp.sqrt((onehot * innovation[:, None] ** 2).sum(axis=0) / safe)
    nan = jnp.asarray(jnp.nan, innovation.dtype)
    return jnp.where(count > 0, mean, nan), jnp.where(count > 0, rms, nan), count


def rmse(ensemble: Float[Array, "n_ens n"], truth: Float[Array, " n"]) -> Float[Array, ""]:
    """Root-mean-square error of the ensemble mean against the truth."""
    return jnp.sqrt(jnp.mean((ensemble.mean(axis=0) - truth) ** 2))


def spread(ensemble: Float[Array, "n_ens n"]) -> Float[Array, ""]:
    """Root of the mean ensemble variance (unbiased), the quantity compared with the RMSE."""
    return jnp.sqrt(jnp.mean(ensemble.var(axis=0, ddof=1)))


def crps(ensemble: Float[Array, "n_ens n"], truth: Float[Array, " n"]) -> Float[Array, ""]:
    """Continuous ranked probability score of the ensemble, averaged over components.

    ``E|X - y| - E|X - X'|/2`` with the pairwise term from the sorted members,
    ``sum_{i,j} |x_i - x_j| = 2 sum_i (2i - N + 1) x_(i)`` (0-based ranks): memory ``N x n``, not
    ``N x N x n``."""
    n_ens = ensemble.shape[0]
    term1 = jnp.abs(ensemble - truth).mean(axis=0)
    ranks = 2.0 * jnp.arange(n_ens, dtype=ensemble.dtype) - n_ens + 1.0
    term2 = 2.0 * (ranks[:, None] * jnp.sort(ensemble, axis=0)).sum(axis=0) / n_ens**2
    return jnp.mean(term1 - 0.5 * term2)

"""The window's observation term linearised in blocks of observations.

For the ensemble-space cost ``J(w) = J_b(w) + 1/2 d(w)^T d(w)``, with
``d(w) = R^{-1/2} (y - h(v_bar + X w))``, Gauss-Newton and Levenberg-Marquardt need only

- ``d`` itself (``n_obs`` numbers: the cost and the feedback ``h(x) = y - R^{1/2} d``),
- ``S^T S`` (``N x N``) and ``S^T d`` (``N``), with ``S = -dd/dw`` (``n_obs x N``).

So ``S`` is never formed whole: the observations are taken ``block`` at a time (``lax.scan``), each
block's rows of ``S`` are built, added into the two sums and dropped. Memory is set by the block
size, not the observation count.

The directions of differentiation are the fewer of the two bases of the same subspace: with a
control smaller than the ensemble (latent mode: latent size + estimated parameters) the Jacobian
is taken along the ``n_ctrl`` control axes and multiplied by the anomalies ``X``
(``dh/dw = (dh/dv) X``); otherwise along the ``N`` columns of ``X`` directly. Either way, one
forward integration with ``min(N, n_ctrl)`` tangents per linearisation; the states at the
distinct observation times are prepared once (``AbstractDynamics.prepare``), and what depends
only on the observations' places once per window (``AbstractDynamics.geometry``).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from levda_cli.core import sharding
from levda_cli.core.dynamics import Problem, WindowObs, states_at


class Linearisation(eqx.Module):
    """What the minimisers need of the observation term at one ``w``."""

    d: Float[Array, " n_obs"]  # normalised innovation (zero where masked)
    StS: Float[Array, "n_ens n_ens"]
    Std: Float[Array, " n_ens"]


def dense(residual: Callable[[Array], Array], w: Float[Array, " n_ens"]) -> tuple[Array, Array]:
    """The residual at ``w`` and ``S = -d residual / dw`` whole, by N forward-mode products.

    The reference the blocked form is tested against (memory ``n_obs x N``)."""
    eye = jnp.eye(w.shape[0], dtype=w.dtype)
    d, jac = jax.vmap(lambda e: jax.jvp(residual, (w,), (e,)), out_axes=(None, 1))(eye)
    return d, -jac


def in_precision(tree, dtype):
    """``tree`` with its floating arrays cast to ``dtype`` (the model and decoder's compute precision)."""
    def cast(a):
        if eqx.is_array(a) and jnp.issubdtype(a.dtype, jnp.floating):
            return a.astype(dtype)
        return a

    return jax.tree.map(cast, tree)


def _per_observation(obs: WindowObs, geometry):
    """The arrays with one row per observation, in the order the block bodies unpack them."""
    safe_error = jnp.where(obs.mask, obs.error, 1.0)
    return (obs.time_index, geometry, obs.field, obs.value, safe_error, obs.mask)


def _blocks(arrays, block: int):
    """The per-observation arrays padded to whole blocks and shaped ``(n_blocks, block, ...)``."""
    n_obs = arrays[3].shape[0]
    size = max(1, min(block, n_obs))
    n_blocks = -(-n_obs // size)
    pad = n_blocks * size - n_obs

    def shape(a):
        a = jnp.pad(a, ((0, pad),) + ((0, 0),) * (a.ndim - 1))  # padded rows are masked (mask pads False)
        return a.reshape(n_blocks, size, *a.shape[1:])

    return jax.tree.map(shape, arrays)


def _scan(body, carry, blocks):
    """``lax.scan`` over the blocks; with one block, the body itself (no loop: less overhead per
    iteration for the small windows of long cycling runs)."""
    if jax.tree.leaves(blocks)[0].shape[0] == 1:
        carry, out = body(carry, jax.tree.map(lambda a: a[0], blocks))
        return carry, out[None]
    return jax.lax.scan(body, carry, blocks)


class ObservationTerm(eqx.Module):
    """A window's observation operator about ``v_bar + X w``, evaluated block by block.

    With ``compute = "float32"`` the model and the decoder run in single precision (the problem,
    the times and the geometry are cast once); innovations, the sums and everything after them
    stay in the ensemble's precision (float64)."""

    problem: Problem  # in the compute precision
    obs: WindowObs
    times: Array  # the distinct times, in the compute precision
    geometry: object  # per observation, from ``dynamics.geometry`` (once per window)
    n_steps: int = eqx.field(static=True)
    block: int = eqx.field(static=True)
    compute: str = eqx.field(static=True, default="float64")
    mesh: object = eqx.field(static=True, default=None)  # a ``core.sharding`` mesh, or None: one device
    n_obs: int | None = eqx.field(static=True, default=None)  # the observations before padding to whole shares

    @classmethod
    def build(cls, problem: Problem, obs: WindowObs, n_steps: int, block: int,
              compute: str = "float64", mesh=None) -> ObservationTerm:
        n_obs = obs.value.shape[0]
        obs = sharding.pad_observations(obs, sharding.size(mesh))
        dtype = jnp.dtype(compute)
        if compute != "float64":
            problem = in_precision(problem, dtype)
        geometry = jax.vmap(problem.dynamics.geometry)(in_precision(obs.coords, dtype) if compute != "float64"
                                                       else obs.coords, obs.field)
        times = obs.times.astype(dtype) if compute != "float64" else obs.times
        return cls(problem, obs, times, geometry, n_steps, int(block), compute, mesh, n_obs)

    def _prepare(self, v):
        if self.compute != "float64":
            v = v.astype(self.compute)
        xs = states_at(self.problem, v, self.times, self.n_steps)
        _, mu = self.problem.split(v)
        return self.problem.dynamics.prepare(xs, mu), mu

    def _sample(self, prepared, mu, time_index, geometry, field):
        dyn = self.problem.dynamics
        return jax.vmap(lambda t, g, f: dyn.sample(prepared, mu, t, g, f))(time_index, geometry, field)

    def _map_observations(self, local, replicated, per_obs_out):
        """``local(term, *replicated, per_obs)`` over the observations: on one device directly (``term`` is
        this term); on a mesh, each device on its share (``sharding.over_observations``). Per-observation
        outputs come back without the padding ``build`` added."""
        per_obs = _per_observation(self.obs, self.geometry)
        if self.mesh is None:
            out = local(self, *replicated, per_obs)
        else:
            out = sharding.over_observations(self.mesh, local, self, replicated, per_obs, per_obs_out)
        return tuple(o[: self.n_obs] if per else o for o, per in zip(out, per_obs_out))

    def predict(self, v: Float[Array, " n_ctrl"]) -> Float[Array, " n_obs"]:
        """``h(v)`` for every (padded) observation, block by block."""
        def local(term, prepared, mu, per_obs):
            def body(_, blk):
                ti, g, f = blk[:3]
                return None, term._sample(prepared, mu, ti, g, f)

            _, h = _scan(body, None, _blocks(per_obs, self.block))
            return (h.reshape(-1)[: per_obs[3].shape[0]],)

        (h,) = self._map_observations(local, self._prepare(v), (True,))
        return h.astype(v.dtype)

    def linearise(self, v_bar: Float[Array, " n_ctrl"], X: Float[Array, "n_ctrl n_ens"],
                  w: Float[Array, " n_ens"]) -> Linearisation:
        """``d``, ``S^T S`` and ``S^T d`` at ``w`` without forming ``S``."""
        n_ctrl, n_ens = X.shape
        control_space = n_ctrl < n_ens  # static: the smaller set of tangent directions
        T = jnp.eye(n_ctrl, dtype=X.dtype) if control_space else X
        v = v_bar + X @ w
        if self.compute != "float64":
            T, v = T.astype(self.compute), v.astype(self.compute)
        (prepared, mu), (d_prepared, d_mu) = jax.vmap(
            lambda t: jax.jvp(self._prepare, (v,), (t,)), in_axes=1, out_axes=(None, 0))(T)

        def local(term, prepared, mu, d_prepared, d_mu, X, per_obs):
            def body(carry, blk):
                StS, Std = carry
                ti, g, f, y, e, m = blk
                h_of = lambda p, u: term._sample(p, u, ti, g, f)  # noqa: E731
                h, dh = jax.vmap(lambda dp, du: jax.jvp(h_of, (prepared, mu), (dp, du)),
                                 out_axes=(None, 1))(d_prepared, d_mu)  # dh: (block, directions)
                h, dh = h.astype(X.dtype), dh.astype(X.dtype)
                d = jnp.where(m, (y - h) / e, 0.0)
                S = jnp.where(m[:, None], dh / e[:, None], 0.0)  # S = -dd/dw
                if control_space:
                    S = S @ X
                return (StS + S.T @ S, Std + S.T @ d), d

            zero = (jnp.zeros((n_ens, n_ens), X.dtype), jnp.zeros(n_ens, X.dtype))
            (StS, Std), d = _scan(body, zero, _blocks(per_obs, self.block))
            if self.mesh is not None:  # the Gauss-Newton sums of every device's share
                StS, Std = jax.lax.psum((StS, Std), sharding.AXIS)
            return StS, Std, d.reshape(-1)[: per_obs[3].shape[0]]

        StS, Std, d = self._map_observations(local, (prepared, mu, d_prepared, d_mu, X), (False, False, True))
        return Linearisation(d=d, StS=StS, Std=Std)

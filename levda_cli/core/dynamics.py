"""The dynamics interface, the control vector and the window observation operator.

A window's control vector is ``v = [x(t0); mu_est]``: the model state at the window start
(a latent state for a surrogate, the gridded fields in full-state mode) and the estimated
parameters. ``h(v)`` integrates the model from ``t0`` to every observation time and applies
the model's observation operator at the observation coordinates.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, Bool


def rk4(f, x, dt):
    """One classical Runge-Kutta step of ``dx/dt = f(x)``; a step of length 0 is the identity."""
    k1 = f(x)
    k2 = f(x + 0.5 * dt * k1)
    k3 = f(x + 0.5 * dt * k2)
    k4 = f(x + dt * k3)
    return x + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


class AbstractDynamics(eqx.Module):
    """A time-stepping model with a pointwise observation operator.

    Concrete models provide ``dt`` (the fixed step, model time units), ``n_state``,
    ``step`` (one step of any length ``<= dt``, so observations between steps are reached
    exactly) and ``observe`` (one field at one coordinate).
    """

    dt: eqx.AbstractVar[float]
    # ``n_state`` (the length of the state vector) is a field or a property of each model.

    @abc.abstractmethod
    def step(
        self, x: Float[Array, " n_state"], mu: Float[Array, " n_param"], dt: Float[Array, ""]
    ) -> Float[Array, " n_state"]:
        """Advance the state by ``dt`` (``0 <= dt <= self.dt``) with parameters ``mu``."""

    @abc.abstractmethod
    def observe(
        self,
        x: Float[Array, " n_state"],
        mu: Float[Array, " n_param"],
        coords: Float[Array, " n_coord"],
        field: Int[Array, ""],
    ) -> Float[Array, ""]:
        """The value of field ``field`` at coordinates ``coords`` for state ``x``."""

    # -- the observation operator in three stages, for many observations at once -------------
    # ``predict`` and the blocked linearisation (``core.linearise``) call these: whatever depends
    # only on where an observation is (``geometry``) is computed once per window; whatever depends
    # only on the state at a time (``prepare``) once per distinct time; ``sample`` is the cheap
    # per-observation rest and must read ``prepared`` by index (never copy a whole state per
    # observation). The defaults fall back to ``observe``, which suits small states.

    @property
    def observation_footprint(self) -> int:
        """About how many numbers ``sample`` reads or makes per observation and direction (sizes
        the default observation block; ``n_state`` is the safe guess for the defaults below)."""
        return self.n_state

    def prepare(self, xs: Float[Array, "n_times n_state"], mu: Float[Array, " n_param"]):
        """What ``sample`` reads, for the states at a window's distinct observation times."""
        return xs

    def geometry(self, coords: Float[Array, " n_coord"], field: Int[Array, ""]):
        """Everything about one observation that does not depend on the state."""
        return coords

    def sample(self, prepared, mu: Float[Array, " n_param"], t: Int[Array, ""], geometry,
               field: Int[Array, ""]) -> Float[Array, ""]:
        """One observation's predicted value from the prepared states, at time index ``t``."""
        return self.observe(prepared[t], mu, geometry, field)


class GridInterpolated(AbstractDynamics):
    """Dynamics whose observation is a weighted sum of a few values of the prepared state: its
    ``geometry`` returns ``(indices into one prepared time, weights)`` (interpolation from grid
    points), and ``sample`` gathers them. Lorenz-96, the tsunami and the sphere share this."""

    def sample(self, prepared, mu, t, geometry, field):
        index, weight = geometry
        return (weight * prepared[t, index]).sum()

    @property
    def observation_footprint(self) -> int:
        return 4  # at most four grid points per observation (bilinear)


class Problem(eqx.Module):
    """Maps a control vector to a state and a full parameter vector.

    ``param_default`` holds every parameter in the model's units; the indices in
    ``estimated`` are replaced by the control's trailing entries, the rest stay fixed.
    """

    dynamics: AbstractDynamics
    param_default: Float[Array, " n_param_all"]
    estimated: tuple[int, ...] = eqx.field(static=True, default=())

    @property
    def n_state(self) -> int:
        return self.dynamics.n_state

    @property
    def n_ctrl(self) -> int:
        return self.dynamics.n_state + len(self.estimated)

    def split(self, v: Float[Array, " n_ctrl"]) -> tuple[Array, Array]:
        x = v[: self.n_state]
        mu = self.param_default
        if self.estimated:
            mu = mu.at[jnp.asarray(self.estimated)].set(v[self.n_state :])
        return x, mu

    def join(self, x: Array, v: Array) -> Array:
        """A control vector with state ``x`` and the estimated parameters of ``v``."""
        return jnp.concatenate([x, v[self.n_state :]])


class WindowObs(eqx.Module):
    """The observations of one window, padded to a fixed size so one compilation serves a run.

    ``times`` are the distinct observation times relative to the window start (model units,
    padded with zeros); each observation points at its time through ``time_index``.
    ``value`` and ``error`` (standard deviation) are zero-weighted where ``mask`` is False.
    """

    times: Float[Array, " n_times"]
    time_index: Int[Array, " n_obs"]
    coords: Float[Array, "n_obs n_coord"]
    field: Int[Array, " n_obs"]
    value: Float[Array, " n_obs"]
    error: Float[Array, " n_obs"]
    mask: Bool[Array, " n_obs"]


def forecast(problem: Problem, v: Float[Array, " n_ctrl"], n_steps: int) -> Float[Array, "n_steps+1 n_ctrl"]:
    """The control trajectory over ``n_steps`` model steps (parameters are constant)."""
    dyn = problem.dynamics
    _, mu = problem.split(v)
    dt = jnp.asarray(dyn.dt, v.dtype)

    def body(x, _):
        x = dyn.step(x, mu, dt)
        return x, x

    x0 = v[: problem.n_state]
    # short windows unrolled: a loop of a few steps costs more in loop overhead than in arithmetic
    _, xs = jax.lax.scan(body, x0, None, length=n_steps, unroll=n_steps <= 4)
    xs = jnp.concatenate([x0[None], xs])
    params = jnp.broadcast_to(v[problem.n_state :], (n_steps + 1, v.shape[0] - problem.n_state))
    return jnp.concatenate([xs, params], axis=1)


def states_at(problem: Problem, v: Float[Array, " n_ctrl"], times: Float[Array, " n_times"], n_steps: int) -> Float[Array, "n_times n_state"]:
    """States at arbitrary times in ``[0, n_steps*dt]``: full steps, then one partial step.

    The partial step uses the model's own scheme, so an observation between two steps is
    predicted at its exact time, not at the nearest step.
    """
    dyn = problem.dynamics
    _, mu = problem.split(v)
    traj = forecast(problem, v, n_steps)[:, : problem.n_state]
    # The small offset keeps a time that is a multiple of dt from landing one step short.
    k = jnp.clip(jnp.floor(times / dyn.dt + 1e-9).astype(jnp.int32), 0, n_steps)
    rest = jnp.clip(times - k * dyn.dt, 0.0, dyn.dt)
    return jax.vmap(lambda x, r: dyn.step(x, mu, r))(traj[k], rest)


def predict(problem: Problem, v: Float[Array, " n_ctrl"], obs: WindowObs, n_steps: int) -> Float[Array, " n_obs"]:
    """``h(v)``: the model's prediction of every (padded) observation of a window.

    The plain form (every observation at once through ``observe``): the reference the blocked
    linearisation of ``core.linearise`` is tested against."""
    _, mu = problem.split(v)
    xs = states_at(problem, v, obs.times, n_steps)
    dyn = problem.dynamics
    return jax.vmap(lambda i, c, f: dyn.observe(xs[i], mu, c, f))(obs.time_index, obs.coords, obs.field)

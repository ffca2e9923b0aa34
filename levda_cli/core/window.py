"""One 4DEnVar window: background ensemble in, analysis ensembles and diagnostics out.

The ensemble-subspace IEnKS of Bocquet & Sakov (2014), with the observation operator
differentiated by JAX:

- control ``v(w) = v_bar + X w`` with ``X = (E - v_bar)^T / sqrt(N - 1)`` (after the
  background inflation strategies);
- the cost's minimiser ``w*`` (``solver``) and the Hessian ``H = zeta I + S^T S`` at ``w*``
  (``zeta = 1`` for the Gaussian background term, adaptive for the finite-size EnKF-N one);
- analysis members ``v_bar + X W`` with ``W = w* 1^T + sqrt(N - 1) H^{-1/2} U``, the symmetric
  square root and ``U`` either the identity or a random mean-preserving rotation.

The analysis at the window start is the smoother estimate; the analysis members propagated by
``n_window`` steps give the filter estimate at the window end, and by ``n_shift`` steps the
next window's background. Each observation must be given to exactly one window (single
assimilation, "SDA"): with a shift shorter than the window, the caller passes only the
observations that are new to the window.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from levda_cli.core import sharding
from levda_cli.core.diagnostics import field_stats
from levda_cli.core.dynamics import Problem, WindowObs, forecast
from levda_cli.core.inflation import AbstractInflation, WindowStats, adaptive_relaxation
from levda_cli.core.linearise import ObservationTerm, in_precision
from levda_cli.core.prior import AbstractPrior, GaussianPrior
from levda_cli.core.solver import AbstractSolver, GaussNewton, cost


class WindowSetup(eqx.Module):
    """Everything about a window that is fixed for a whole run."""

    problem: Problem
    solver: AbstractSolver = GaussNewton()
    inflation: tuple[AbstractInflation, ...] = ()
    prior: AbstractPrior = GaussianPrior()
    n_window: int = eqx.field(static=True, default=1)
    n_shift: int = eqx.field(static=True, default=1)
    n_field: int = eqx.field(static=True, default=1)
    rotate: bool = eqx.field(static=True, default=False)
    exact_hessian: bool = eqx.field(static=True, default=True)  # the posterior from J_b's exact Hessian
    obs_ranks: bool = eqx.field(static=True, default=False)  # rank histogram of the observations (N forecasts)
    search_candidates: int = eqx.field(static=True, default=0)  # random starts besides the mean and members
    # where the estimated parameters may be searched (a surrogate is trusted only within its training ranges)
    search_low: Float[Array, " n_est"] | None = None
    search_high: Float[Array, " n_est"] | None = None
    block: int = eqx.field(static=True, default=4096)  # observations per linearisation block
    compute: str = eqx.field(static=True, default="float64")  # the model and decoder's precision
    # the devices the observations and members are split over (``core.sharding``); None: one device
    mesh: object = eqx.field(static=True, default=None)
    # observations per device below which a window is not split (run whole on every device: no collectives)
    split_min_observations: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        if self.compute not in ("float64", "float32"):
            raise ValueError(f"compute precision must be float64 or float32, got {self.compute!r}")
        if self.block < 1:
            raise ValueError(f"the observation block size must be positive, got {self.block}")
        if not 1 <= self.n_shift <= self.n_window:
            raise ValueError(
                f"window shift ({self.n_shift} steps) must lie between 1 and the window length "
                f"({self.n_window} steps)"
            )


class WindowResult(eqx.Module):
    """Ensembles (``n_ens x n_ctrl``) and diagnostics of one window."""

    background: Float[Array, "n_ens n_ctrl"]  # at the window start, before inflation
    analysis: Float[Array, "n_ens n_ctrl"]  # smoother, at the window start
    filter: Float[Array, "n_ens n_ctrl"]  # analysis propagated to the window end
    next_background: Float[Array, "n_ens n_ctrl"]  # propagated to the next window's start
    w: Float[Array, " n_ens"]
    cost_initial: Float[Array, ""]
    cost_final: Float[Array, ""]
    cost_b: Float[Array, ""]
    cost_o: Float[Array, ""]
    iterations: Int[Array, ""]
    converged: Bool[Array, ""]
    dfs: Float[Array, ""]  # degrees of freedom for signal, tr(S^T S H^-1)
    zeta: Float[Array, ""]  # background-term curvature at the minimum (1/zeta: adaptive inflation^2)
    inflation: Float[Array, ""]  # 1/sqrt(zeta): the adaptive inflation of the background anomalies
    chi2_min: Float[Array, ""]  # (zeta |w*|^2 + |d(w*)|^2) / n_obs: 2 J_min / n_obs, expected 1 (Talagrand)
    innovation_ratio: Float[Array, ""]  # |d(0)|^2 / (n_obs + tr S^T S at w = 0): 1 when spread and R explain o - b
    relaxation: Float[Array, ""]  # the RTPS relaxation the innovations ask for (``adaptive_relaxation``), in [0, 1]
    rank_obs: Int[Array, "n_field rank"]  # ranks of each observation among the perturbed background members
    n_obs: Int[Array, ""]
    hofx_background: Float[Array, " n_obs"]
    hofx_analysis: Float[Array, " n_obs"]
    omb_mean: Float[Array, " n_field"]
    omb_rms: Float[Array, " n_field"]
    oma_mean: Float[Array, " n_field"]
    oma_rms: Float[Array, " n_field"]
    n_obs_field: Int[Array, " n_field"]


def mean_preserving_rotation(key: PRNGKeyArray, n: int, dtype) -> Float[Array, "n n"]:
    """A random orthogonal ``U`` with ``U 1 = 1`` (Sakov & Oke 2008)."""
    ones = jnp.ones((n, 1), dtype) / jnp.sqrt(n)
    # An orthonormal basis whose first column is 1/sqrt(n); the rest spans 1-perp.
    basis, _ = jnp.linalg.qr(jnp.concatenate([ones, jnp.eye(n, dtype=dtype)[:, 1:]], axis=1))
    basis = basis * jnp.sign(basis[0, 0])
    perp = basis[:, 1:]
    q, r = jnp.linalg.qr(jax.random.normal(key, (n - 1, n - 1), dtype))
    q = q * jnp.sign(jnp.diag(r))
    return ones @ ones.T + perp @ q @ perp.T


def propagate(problem: Problem, ensemble: Float[Array, "n_ens n_ctrl"], n_steps: int, mesh=None) -> Array:
    """Every member's control trajectory over ``n_steps`` steps: ``(n_steps+1, n_ens, n_ctrl)``; on a
    mesh, the members split over its devices (``sharding.over_members``)."""
    return sharding.over_members(mesh, lambda p, v: forecast(p, v, n_steps), ensemble, problem, member_axis_out=1)


def forecast_ensemble(setup: WindowSetup, ensemble: Float[Array, "n_ens n_ctrl"], n_steps: int,
                      observations_split: bool = False) -> Array:
    """``propagate`` in the setup's compute precision, returned in the ensemble's; on the setup's mesh,
    the members split as ``sharding.for_members`` decides."""
    mesh = sharding.for_members(setup.mesh, ensemble.shape, observations_split)
    if setup.compute == "float64":
        return propagate(setup.problem, ensemble, n_steps, mesh)
    low = jnp.dtype(setup.compute)
    return propagate(in_precision(setup.problem, low), ensemble.astype(low), n_steps, mesh).astype(ensemble.dtype)


def advance_windows(setup: WindowSetup, ensemble: Float[Array, "n_ens n_ctrl"],
                    n_windows: Int[Array, ""]) -> Float[Array, "n_ens n_ctrl"]:
    """The ensemble forecast ``n_windows`` window shifts ahead, across windows without observations.

    ``n_windows`` is traced (a gap of any length is one compiled call); each shift is the same
    ``forecast_ensemble(..., n_shift)[-1]`` a window's own forecast makes, so a gap gives the
    numbers a run through empty windows would give without their analyses.
    """
    return jax.lax.fori_loop(0, n_windows, lambda i, x: forecast_ensemble(setup, x, setup.n_shift)[-1], ensemble)


def search_start(term: ObservationTerm, prior_term: AbstractPrior, v_bar, X, obs: WindowObs,
                 key: PRNGKeyArray, n_random: int = 0, low=None, high=None, h_known=None) -> Array:
    """The start of the minimisation among the background mean (``w = 0``), the N members (``w_i``
    with ``v_bar + X w_i`` the i-th member) and ``n_random`` draws ``w ~ N(0, I)`` from the
    background (half of them three times as wide), those with estimated parameters in
    ``[low, high]`` (when given): the one of lowest cost. A strongly nonlinear window (a source far from the prior
    mean, seen by few observations) can have several minima; starting from the candidate that
    already explains the observations best finds the one the data favour instead of the one
    nearest the mean. Costs one forecast per candidate; ``h_known`` (``(N + 1, n_obs)``: h of the mean
    and of each member, when the caller has them) saves those."""
    n_ens = X.shape[1]
    dtype = X.dtype
    members = jnp.sqrt(n_ens - 1.0) * (jnp.eye(n_ens, dtype=dtype) - 1.0 / n_ens)  # row i: w_i
    # half of the draws from the background, half three times as wide: a source in the prior's tail
    scale = jnp.where(jnp.arange(n_random) < n_random // 2, 1.0, 3.0).astype(dtype)
    draws = jax.random.normal(key, (n_random, n_ens), dtype) * scale[:, None]
    starts = jnp.concatenate([jnp.zeros((1, n_ens), dtype), members, draws])
    safe_error = jnp.where(obs.mask, obs.error, 1.0)

    def cost_of(w, h):
        v = v_bar + X @ w
        d = jnp.where(obs.mask, (obs.value - h) / safe_error, 0.0)
        j = prior_term.value(w, jnp.zeros((n_ens, n_ens), dtype)) + 0.5 * (d @ d)
        if low is not None:  # a candidate whose parameters leave the allowed ranges is no candidate
            params = v[v.shape[0] - low.shape[0]:]
            j = jnp.where(jnp.all((params >= low) & (params <= high)), j, jnp.inf)
        return jnp.where(jnp.isfinite(j), j, jnp.inf)

    def cost_at(w):
        return cost_of(w, term.predict(v_bar + X @ w))

    if h_known is None:
        costs = jax.lax.map(cost_at, starts)
    else:
        known = jax.vmap(cost_of)(starts[: n_ens + 1], h_known)
        costs = jnp.concatenate([known, jax.lax.map(cost_at, draws)]) if n_random else known
    return starts[jnp.argmin(costs)]


def analyse_window(
    setup: WindowSetup,
    background: Float[Array, "n_ens n_ctrl"],
    obs: WindowObs,
    key: PRNGKeyArray,
    search: Bool[Array, ""] | bool = False,
) -> WindowResult:
    """Assimilate one window's observations into ``background`` (members at the window start).

    ``search`` (traced): start the minimisation from the lowest-cost of the mean and the members
    (``search_start``) instead of the mean."""
    problem = setup.problem
    n_ens = background.shape[0]
    dtype = background.dtype
    keys = jax.random.split(key, 2 * len(setup.inflation) + 3)

    prior = background
    for i, strategy in enumerate(setup.inflation):
        prior = strategy.before(prior, keys[i])
    v_bar = prior.mean(axis=0)
    X = (prior - v_bar).T / jnp.sqrt(n_ens - 1.0)

    safe_error = jnp.where(obs.mask, obs.error, 1.0)
    term = ObservationTerm.build(problem, obs, setup.n_window, setup.block, setup.compute,
                                 sharding.for_observations(setup.mesh, obs.value.shape[0], setup.split_min_observations))
    prior_term = setup.prior.for_ensemble(n_ens, background.shape[1])
    hofx_b = term.predict(v_bar)
    # the background members in observation space (rank histogram, innovation ratio, search), once
    h_members = jax.vmap(term.predict)(prior) if setup.obs_ranks else None
    if isinstance(search, bool) and not search:
        w_start = None
    else:
        h_known = None if h_members is None else jnp.concatenate([hofx_b[None], h_members])
        w_start = jax.lax.cond(jnp.asarray(search), lambda: search_start(term, prior_term, v_bar, X, obs, keys[-3],
                                                                          setup.search_candidates, setup.search_low,
                                                                          setup.search_high, h_known),
                               lambda: jnp.zeros(n_ens, dtype))
    minimum = setup.solver.minimise(lambda w: term.linearise(v_bar, X, w), prior_term, n_ens, dtype, w_start)
    w, StS = minimum.w, minimum.StS
    zeta = prior_term.zeta(w, StS)
    # The exact Hessian of the background term (Bocquet & Sakov 2012), unless far from the
    # background it is not positive definite; then the always-positive Gauss-Newton one.
    H_exact = prior_term.hessian(w, StS) + StS
    H_gn = zeta * jnp.eye(n_ens, dtype=dtype) + StS
    if setup.exact_hessian:
        H = jnp.where(jnp.linalg.eigvalsh(H_exact)[0] > 1e-8 * zeta, H_exact, H_gn)
    else:  # as DAPPER's iEnKS: the Gauss-Newton Hessian zeta I + S^T S
        H = H_gn
    evals, evecs = jnp.linalg.eigh(H)
    H_inv_sqrt = (evecs / jnp.sqrt(evals)) @ evecs.T
    U = mean_preserving_rotation(keys[-2], n_ens, dtype) if setup.rotate else jnp.eye(n_ens, dtype=dtype)
    W = w[:, None] + jnp.sqrt(n_ens - 1.0) * H_inv_sqrt @ U
    analysis = v_bar + (X @ W).T
    hofx_a = obs.value - minimum.d * safe_error  # h(v_bar + X w*), recovered from the residual
    hofx_a = jnp.where(obs.mask, hofx_a, 0.0)
    d0 = jnp.where(obs.mask, (obs.value - hofx_b) / safe_error, 0.0)
    omb_mean, omb_rms, n_field_obs = field_stats(obs.value - hofx_b, obs.field, obs.mask, setup.n_field)
    oma_mean, oma_rms, _ = field_stats(obs.value - hofx_a, obs.field, obs.mask, setup.n_field)
    n_obs = obs.mask.sum()
    # Innovation consistency: E|d(0)|^2 = n_obs + tr(S^T S) when the background spread (after inflation)
    # and R explain the observation-minus-background differences; far above 1: the ensemble has lost the truth.
    # tr(S^T S) at w = 0 is the members' normalised variance in observation space: from the members themselves
    # when they were forecast, else from the minimisation's first linearisation (at w = 0 unless a search moved it).
    if h_members is None:
        spread_obs = jnp.trace(minimum.StS_initial)
    else:
        spread_obs = jnp.sum(jnp.where(obs.mask, h_members.var(axis=0, ddof=1) / safe_error**2, 0.0))
    innovation_ratio = (d0 @ d0) / jnp.maximum(n_obs + spread_obs, 1.0)
    dfs = jnp.trace(StS @ ((evecs / evals) @ evecs.T))
    stats = WindowStats(innovation=d0 @ d0, n_obs=n_obs.astype(dtype), variance_b=spread_obs,
                        spread_b=jnp.trace(StS), spread_a=dfs)
    for i, strategy in enumerate(setup.inflation):
        analysis = strategy.after(prior, analysis, keys[len(setup.inflation) + i], stats)

    traj = forecast_ensemble(setup, analysis, setup.n_window, term.mesh is not None)
    if setup.obs_ranks:
        # the observation's rank among the background members in observation space, each perturbed with
        # the observation's error (Hamill 2001): flat when the ensemble and R are calibrated
        members = h_members + safe_error * jax.random.normal(keys[-1], h_members.shape, dtype)
        ranks = (members < obs.value).sum(axis=0)
        rank_obs = jnp.zeros((setup.n_field, n_ens + 1), jnp.int32).at[obs.field, ranks].add(obs.mask.astype(jnp.int32))
    else:
        rank_obs = jnp.zeros((setup.n_field, n_ens + 1), jnp.int32)
    return WindowResult(
        background=background,
        analysis=analysis,
        filter=traj[setup.n_window],
        next_background=traj[setup.n_shift],
        w=w,
        cost_initial=cost(prior_term, jnp.zeros_like(w), d0, StS),
        cost_final=cost(prior_term, w, minimum.d, StS),
        cost_b=prior_term.value(w, StS),
        cost_o=0.5 * (minimum.d @ minimum.d),
        iterations=minimum.iterations,
        converged=minimum.converged,
        dfs=dfs,
        zeta=zeta,
        inflation=1.0 / jnp.sqrt(zeta),
        innovation_ratio=innovation_ratio,
        relaxation=adaptive_relaxation(stats),
        chi2_min=(zeta * (w @ w) + minimum.d @ minimum.d) / jnp.maximum(n_obs, 1),
        rank_obs=rank_obs,
        n_obs=n_obs,
        hofx_background=jnp.where(obs.mask, hofx_b, 0.0),
        hofx_analysis=hofx_a,
        omb_mean=omb_mean,
        omb_rms=omb_rms,
        oma_mean=oma_mean,
        oma_rms=oma_rms,
        n_obs_field=n_field_obs,
    )

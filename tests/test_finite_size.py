"""The finite-size (EnKF-N) background term with the hyperprior of Bocquet, Raanes & Hannart (2015),
against answers computed here independently: the adaptive inflation of a linear-Gaussian window
(a scalar fixed point solved by bisection, then the Kalman smoother with the inflated covariance),
no change of the ensemble in windows without observations, and Gauss-Newton steps to non-finite
values refused and damped."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from levda_cli.core import FiniteSizePrior, GaussianPrior, GaussNewton, Problem, WindowObs, WindowSetup, analyse_window
from levda_cli.core.linearise import Linearisation, dense
from levda_cli.core.solver import _damped_iterations
from tests.test_kalman_smoother import LinearModel, interp_row, kalman_smoother


def _coefficients(lam, n, x_n, g):
    """e_N, c_L of DAPPER's hyperprior_coeffs (mode correction, x_N boost), written from the paper:
    lam are the eigenvalues of S^T S in the normalisation X = A / sqrt(N - 1)."""
    e_n, c_l = (n + 1) / n, (n + g) / (n - 1)
    prior_weight = np.mean(1 / (1 + lam))  # ~ 1 / (1 + HBH^T / R)
    mc = np.sqrt((e_n / c_l) ** prior_weight)
    return x_n * e_n / mc, x_n * c_l * mc


def _linear_window(rng, n_ens=9):
    n = 4
    A = 0.3 * rng.standard_normal((n, n))
    b = rng.standard_normal(n)
    model = LinearModel(A=jnp.asarray(A), b=jnp.asarray(b))
    ens = rng.standard_normal((n_ens, n)) @ np.diag(rng.uniform(0.5, 2.0, n)) + 1.0
    times = np.array([0.2, 0.5])
    sites = [np.array([0.0, 1.5, 3.25]), np.array([2.0, 0.5, 1.0])]
    tidx = np.concatenate([[i] * len(s) for i, s in enumerate(sites)])
    coords = np.concatenate(sites)
    error = rng.uniform(0.3, 1.0, len(coords))
    value = rng.standard_normal(len(coords)) * 3 + 1.0  # far from the background: the inflation moves
    obs = WindowObs(times=jnp.asarray(times), time_index=jnp.asarray(tidx), coords=jnp.asarray(coords)[:, None],
                    field=jnp.zeros(len(coords), int), value=jnp.asarray(value), error=jnp.asarray(error),
                    mask=jnp.ones(len(coords), bool))
    M = np.eye(n) + 0.1 * A
    # the observation operator of the initial state (mu = 0.7 is a known forcing: an affine offset)
    H, offset = [], []
    for i, t in enumerate(times):
        k = int(round(t / 0.1))
        Mk = np.linalg.matrix_power(M, k)
        forcing = sum(np.linalg.matrix_power(M, j) @ (0.1 * 0.7 * b) for j in range(k))
        for s in sites[i]:
            H.append(interp_row(s, n) @ Mk)
            offset.append(interp_row(s, n) @ forcing)
    return model, ens, obs, np.array(H), np.array(offset), value, error, times, sites, tidx, M, b


@pytest.mark.parametrize("x_n", [1.0, 2.0, 5.0])
def test_linear_gaussian_inflation_is_the_fixed_point_and_the_analysis_the_inflated_kalman_smoother(x_n):
    rng = np.random.default_rng(11)
    model, ens, obs, H, offset, value, error, times, sites, tidx, M, b = _linear_window(rng)
    n_ens, n = ens.shape
    setup = WindowSetup(Problem(model, jnp.array([0.7])), GaussNewton(max_iterations=200, tolerance=1e-13), (),
                        FiniteSizePrior(x_n=x_n), n_window=5, n_shift=5, exact_hessian=False)
    res = analyse_window(setup, jnp.asarray(ens), obs, jax.random.PRNGKey(0))
    assert bool(res.converged)

    # The known answer: S = R^-1/2 H X, d0 = R^-1/2 (y - H m - offset); w(zeta) = (zeta I + S^T S)^-1 S^T d0;
    # zeta* solves zeta = (N-1) c_L / ((N-1) e_N + |w(zeta)|^2) (monotone: bisection).
    m0 = ens.mean(0)
    X = (ens - m0).T / np.sqrt(n_ens - 1)
    S = (H @ X) / error[:, None]
    d0 = (value - H @ m0 - offset) / error
    StS = S.T @ S
    e_n, c_l = _coefficients(np.linalg.eigvalsh(StS), n_ens, x_n, max(0, n_ens - 1 - n))

    def gap(z):
        w = np.linalg.solve(z * np.eye(n_ens) + StS, S.T @ d0)
        return z - (n_ens - 1) * c_l / ((n_ens - 1) * e_n + w @ w)

    lo, hi = 1e-8, 10.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
    zeta = 0.5 * (lo + hi)
    np.testing.assert_allclose(float(res.inflation), 1 / np.sqrt(zeta), rtol=1e-8)
    assert float(res.inflation) > 1.05  # the observations were far: the data asked for inflation

    # ... and the analysis is the Kalman smoother's with the background covariance P / zeta*.
    F = np.eye(n + 1)
    F[:n, :n], F[:n, n] = M, 0.1 * b
    P0 = np.zeros((n + 1, n + 1))
    P0[:n, :n] = np.cov(ens.T, ddof=1) / zeta
    obs_by_step = {}
    for i, t in enumerate(times):
        rows = np.array([np.append(interp_row(s, n), 0.0) for s in sites[i]])
        sel = tidx == i
        obs_by_step[int(round(t / 0.1))] = [(rows, value[sel], np.diag(error[sel] ** 2))]
    (ms, Ps), _ = kalman_smoother(np.append(m0, 0.7), P0, F, obs_by_step, 5)
    an = np.asarray(res.analysis)
    np.testing.assert_allclose(an.mean(0), ms[:n], atol=1e-8)
    np.testing.assert_allclose(np.cov(an.T, ddof=1), Ps[:n, :n], atol=1e-8)


@pytest.mark.parametrize("mode_correction", [True, False])
def test_fifty_empty_windows_keep_the_spread(mode_correction):
    """No observations: the corrected term leaves the ensemble as it is; Bocquet 2011's deflates it
    by sqrt(1 - 1/N^2) per window (the finding of the issue: x 0.28 after 50 windows at N = 20
    for the earlier (N + 1) form)."""
    rng = np.random.default_rng(2)
    model, ens, obs, *_ = _linear_window(rng, n_ens=4)  # N - 1 < n: no nullity
    empty = WindowObs(times=obs.times, time_index=obs.time_index, coords=obs.coords, field=obs.field,
                      value=obs.value, error=obs.error, mask=jnp.zeros_like(obs.mask))
    setup = WindowSetup(Problem(model, jnp.array([0.7])), GaussNewton(), (),
                        FiniteSizePrior(x_n=1.0, mode_correction=mode_correction), n_window=5, n_shift=5)
    step = jax.jit(lambda e, k: analyse_window(setup, e, empty, k).analysis)
    x = jnp.asarray(ens)
    for k in range(50):
        x = step(x, jax.random.PRNGKey(k))  # analysis only: the spread the analysis leaves at the start
    ratio = float(np.asarray(x).std(0, ddof=1).mean() / ens.std(0, ddof=1).mean())
    if mode_correction:
        assert abs(ratio - 1) < 1e-10
    else:
        np.testing.assert_allclose(ratio, (1 - 1 / 16) ** 25, rtol=1e-10)


def test_gauss_newton_refuses_a_step_to_non_finite_values_and_damps():
    """h(w) = -log(1 - w_0): the full Gauss-Newton step from 0 lands where h is undefined."""
    y = 5.0

    def residual(w):
        return jnp.array([y + jnp.log(1 - w[0])])

    def linearise(w):
        d, S = dense(residual, w)
        return Linearisation(d=d, StS=S.T @ S, Std=S.T @ d)

    m = _damped_iterations(linearise, GaussianPrior(), 3, jnp.float64, 100, 1e-10, 0.0, 1.0)
    assert bool(m.converged) and np.isfinite(np.asarray(m.w)).all()
    # the minimiser of w0^2 / 2 + (y + log(1 - w0))^2 / 2 on a fine grid
    grid = np.linspace(-5, 0.999999, 2_000_001)
    best = grid[np.argmin(grid**2 / 2 + (y + np.log(1 - grid)) ** 2 / 2)]
    np.testing.assert_allclose(float(m.w[0]), best, atol=1e-5)
    np.testing.assert_allclose(np.asarray(m.w[1:]), 0.0, atol=1e-12)


class _DoubleWell(LinearModel):
    """x stays put; the observation is (x_0^2 - 4)^2: zero at x_0 = +-2, a saddle of the cost at x_0 = 0."""

    def observe(self, x, mu, coords, field):
        return (x[0] ** 2 - 4.0) ** 2


def test_search_leaves_a_saddle_that_gauss_newton_cannot():
    """From a background mean at the saddle (S = 0 there) Gauss-Newton stops at once with a huge misfit;
    starting from the lowest-cost candidate, it finds a well (x_0 = +-2: the known minimisers)."""
    n = 4
    model = _DoubleWell(A=jnp.zeros((n, n)), b=jnp.zeros(n))
    half = np.random.default_rng(4).normal(0.0, 1.5, (5, n))
    ens = jnp.asarray(np.concatenate([half, -half]))  # mean exactly 0
    obs = WindowObs(times=jnp.array([0.1]), time_index=jnp.zeros(3, int), coords=jnp.zeros((3, 1)),
                    field=jnp.zeros(3, int), value=jnp.zeros(3), error=jnp.full(3, 0.1), mask=jnp.ones(3, bool))
    means, costs = [], []
    for search in (False, True):
        setup = WindowSetup(Problem(model, jnp.array([0.0])), GaussNewton(max_iterations=50, tolerance=1e-10), (),
                            GaussianPrior(), n_window=1, n_shift=1, search_candidates=16)
        res = analyse_window(setup, ens, obs, jax.random.PRNGKey(0), jnp.asarray(search))
        means.append(float(res.analysis[:, 0].mean()))
        costs.append(float(res.cost_final))
    assert abs(means[0]) < 1e-8 and costs[0] > 1e4  # stuck at the saddle
    assert abs(abs(means[1]) - 2.0) < 0.05 and costs[1] < 1e-2 * costs[0]


def test_adaptive_relaxation_is_the_innovation_estimate_applied_as_rtps():
    """inflation.rtps = "adaptive" (Kotsuki, Ota & Miyoshi 2017) in a linear-Gaussian window, against the
    formula computed here: beta = (|d0|^2 - n_obs) / tr(S^T S) (Desroziers; Li, Kalnay & Miyoshi 2009),
    r^2 = tr(S^T S) / tr(S^T S H^-1), alpha = (sqrt(beta) - 1) / (r - 1), applied as RTPS; 0 where the
    innovations are what the spread and R predict and in a window without observations; at most the ceiling."""
    from levda_cli.core import RTPS, AdaptiveRTPS
    from levda_cli.core.inflation import WindowStats, adaptive_relaxation

    rng = np.random.default_rng(5)
    model, ens, obs, H, offset, value, error, *_ = _linear_window(rng)
    n_ens = ens.shape[0]
    m0 = ens.mean(0)
    S = (H @ ((ens - m0).T / np.sqrt(n_ens - 1))) / error[:, None]
    d0 = (value - H @ m0 - offset) / error
    StS = S.T @ S
    Hess = np.eye(n_ens) + StS
    beta = (d0 @ d0 - len(d0)) / np.trace(StS)
    r = np.sqrt(np.trace(StS) / np.trace(StS @ np.linalg.inv(Hess)))
    alpha = (np.sqrt(beta) - 1) / (r - 1)
    assert 0.05 < alpha < 1  # the observations are far from this background: a relaxation between the bounds

    def run(strategies):
        setup = WindowSetup(Problem(model, jnp.array([0.7])), GaussNewton(max_iterations=50, tolerance=1e-13),
                            strategies, GaussianPrior(), n_window=5, n_shift=5)
        return analyse_window(setup, jnp.asarray(ens), obs, jax.random.PRNGKey(0))

    plain, adaptive, capped = run(()), run((AdaptiveRTPS(1.0),)), run((AdaptiveRTPS(0.5 * alpha),))
    fixed, fixed_cap = run((RTPS(float(alpha)),)), run((RTPS(float(0.5 * alpha)),))
    np.testing.assert_allclose(float(plain.relaxation), alpha, rtol=1e-8)  # the diagnostic, with or without it
    np.testing.assert_allclose(np.asarray(adaptive.analysis), np.asarray(fixed.analysis), atol=1e-10)
    np.testing.assert_allclose(np.asarray(capped.analysis), np.asarray(fixed_cap.analysis), atol=1e-10)
    assert np.asarray(adaptive.analysis).std(0).mean() > np.asarray(plain.analysis).std(0).mean()

    # innovations exactly as the spread and R predict (beta = 1), or fewer; no observations: no relaxation
    base = dict(n_obs=jnp.asarray(10.0), variance_b=jnp.asarray(4.0), spread_b=jnp.asarray(4.0),
                spread_a=jnp.asarray(2.0))
    assert float(adaptive_relaxation(WindowStats(innovation=jnp.asarray(14.0), **base))) == 0.0
    assert float(adaptive_relaxation(WindowStats(innovation=jnp.asarray(3.0), **base))) == 0.0
    none = {**base, "n_obs": jnp.asarray(0.0), "variance_b": jnp.asarray(0.0)}
    assert float(adaptive_relaxation(WindowStats(innovation=jnp.asarray(0.0), **none))) == 0.0
    # beta = 4: the analysis spread should double; r = sqrt(2): alpha = 1 / (sqrt(2) - 1) > 1, capped at 1
    assert float(adaptive_relaxation(WindowStats(innovation=jnp.asarray(26.0), **base))) == 1.0
    np.testing.assert_allclose(float(adaptive_relaxation(WindowStats(innovation=jnp.asarray(15.76), **base))),
                               (1.2 - 1) / (np.sqrt(2) - 1), rtol=1e-12)

"""Linear model, linear observations, anomalies spanning the state: the 4DEnVar analysis must
equal the exact Kalman smoother (and its propagation the Kalman filter) to float64 precision."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from levda_cli.core import (
    AbstractDynamics, GaussNewton, LevenbergMarquardt, Problem, WindowObs, WindowSetup, analyse_window,
)


class LinearModel(AbstractDynamics):
    """dx/dt = A x + mu * b, stepped by forward Euler: linear in (x, mu) for any step length."""

    A: jax.Array = None
    b: jax.Array = None
    n_state: int = eqx.field(static=True, default=4)
    dt: float = eqx.field(static=True, default=0.1)

    def step(self, x, mu, dt):
        return x + dt * (self.A @ x + mu[0] * self.b)

    def observe(self, x, mu, coords, field):  # periodic linear interpolation, as for Lorenz-96
        site = jnp.mod(coords[0], self.n_state)
        i0 = jnp.floor(site).astype(int)
        f = site - i0
        return (1 - f) * x[i0 % self.n_state] + f * x[(i0 + 1) % self.n_state]


def kalman_smoother(m0, P0, F, obs_by_step, n_steps):
    """Kalman filter forward over steps 1..n_steps, then RTS back to step 0 (no model noise)."""
    ms, Ps, mp, Pp = [m0], [P0], [None], [None]
    m, P = m0, P0
    for k in range(1, n_steps + 1):
        m, P = F @ m, F @ P @ F.T
        mp.append(m), Pp.append(P)
        for Hk, yk, Rk in obs_by_step.get(k, []):
            K = P @ Hk.T @ np.linalg.inv(Hk @ P @ Hk.T + Rk)
            m = m + K @ (yk - Hk @ m)
            P = (np.eye(len(m)) - K @ Hk) @ P
        ms.append(m), Ps.append(P)
    m_s, P_s = ms[-1], Ps[-1]
    for k in range(n_steps - 1, -1, -1):
        G = Ps[k] @ F.T @ np.linalg.pinv(Pp[k + 1], rcond=1e-12)  # pinv: a fixed parameter has zero variance
        m_s = ms[k] + G @ (m_s - mp[k + 1])
        P_s = Ps[k] + G @ (P_s - Pp[k + 1]) @ G.T
    return (m_s, P_s), (ms[-1], Ps[-1])


def interp_row(site, n):
    row = np.zeros(n)
    i0 = int(np.floor(site)) % n
    f = site - np.floor(site)
    row[i0] += 1 - f
    row[(i0 + 1) % n] += f
    return row


@pytest.mark.parametrize("estimate", [False, True], ids=["state", "state+parameter"])
@pytest.mark.parametrize("solver", [GaussNewton(tolerance=1e-12), LevenbergMarquardt(tolerance=1e-12)],
                         ids=["gauss-newton", "levenberg-marquardt"])
@pytest.mark.parametrize("rotate", [False, True], ids=["symmetric", "rotated"])
def test_window_equals_kalman_smoother(estimate, solver, rotate):
    rng = np.random.default_rng(3)
    n, n_steps, n_ens = 4, 5, 9
    A = 0.3 * rng.standard_normal((n, n))
    b = rng.standard_normal(n)
    model = LinearModel(A=jnp.asarray(A), b=jnp.asarray(b))
    problem = Problem(model, jnp.array([0.7]), (0,) if estimate else ())
    n_ctrl = problem.n_ctrl
    setup = WindowSetup(problem, solver, (), n_window=n_steps, n_shift=2, rotate=rotate)

    ens = rng.standard_normal((n_ens, n_ctrl)) @ np.diag(rng.uniform(0.5, 2.0, n_ctrl)) + 1.0
    # Observations at three times (steps 2, 3 and 5) at real-valued sites, with errors that
    # differ per observation, padded with three masked slots that must not count.
    times = np.array([0.2, 0.3, 0.5])
    sites = [np.array([0.0, 1.5, 3.25]), np.array([2.0, 0.5]), np.array([1.0, 2.75, 3.0, 0.25])]
    tidx = np.concatenate([[i] * len(s) for i, s in enumerate(sites)])
    coords = np.concatenate(sites)
    error = rng.uniform(0.3, 1.0, len(coords))
    value = rng.standard_normal(len(coords)) + 1.0
    pad = 3
    obs = WindowObs(
        times=jnp.asarray(np.append(times, 0.0)),
        time_index=jnp.asarray(np.pad(tidx, (0, pad))),
        coords=jnp.asarray(np.pad(coords, (0, pad)))[:, None],
        field=jnp.zeros(len(coords) + pad, int),
        value=jnp.asarray(np.pad(value, (0, pad), constant_values=99.0)),
        error=jnp.asarray(np.pad(error, (0, pad), constant_values=1.0)),
        mask=jnp.asarray(np.arange(len(coords) + pad) < len(coords)),
    )
    res = analyse_window(setup, jnp.asarray(ens), obs, jax.random.PRNGKey(0))

    # The same problem as a linear-Gaussian system in the control [x; mu].
    M = np.eye(n) + 0.1 * A
    F = np.eye(n_ctrl)
    F[:n, :n] = M
    if estimate:
        F[:n, n] = 0.1 * b
    m0 = ens.mean(axis=0)
    P0 = np.cov(ens.T, ddof=1)
    obs_by_step = {}
    for i, t in enumerate(times):
        k = int(round(t / 0.1))
        rows = np.array([np.pad(interp_row(s, n), (0, n_ctrl - n)) for s in sites[i]])
        sel = tidx == i
        y = value[sel]
        obs_by_step[k] = [(rows, y, np.diag(error[sel] ** 2))]
    if not estimate:
        # Fixed mu enters as a known forcing: augment with a zero-variance mu state instead.
        F = np.eye(n + 1)
        F[:n, :n], F[:n, n] = M, 0.1 * b
        m0, P = np.append(m0, 0.7), np.zeros((n + 1, n + 1))
        P[:n, :n] = P0
        P0 = P
        obs_by_step = {k: [(np.pad(H, ((0, 0), (0, 1))), y, R)] for k, [(H, y, R)] in obs_by_step.items()}
    (ms, Ps), (mf, Pf) = kalman_smoother(m0, P0, F, obs_by_step, n_steps)

    an = np.asarray(res.analysis)
    fi = np.asarray(res.filter)
    k = n_ctrl
    np.testing.assert_allclose(an.mean(axis=0), ms[:k], rtol=0, atol=1e-8)
    np.testing.assert_allclose(np.cov(an.T, ddof=1), Ps[:k, :k], rtol=0, atol=1e-8)
    np.testing.assert_allclose(fi.mean(axis=0), mf[:k], rtol=0, atol=1e-8)
    np.testing.assert_allclose(np.cov(fi.T, ddof=1), Pf[:k, :k], rtol=0, atol=1e-8)
    assert bool(res.converged)
    # In the linear case the cost is quadratic: Gauss-Newton lands on the minimum in one step.
    if isinstance(solver, GaussNewton):
        assert int(res.iterations) <= 2


def test_observation_between_steps_is_exact():
    """An observation between two model steps is predicted at its exact time (partial step)."""
    from levda_cli.core import predict

    model = LinearModel(A=jnp.eye(4) * -0.5, b=jnp.zeros(4))
    problem = Problem(model, jnp.array([0.0]))
    v = jnp.arange(1.0, 5.0)
    obs = WindowObs(times=jnp.array([0.25]), time_index=jnp.array([0]), coords=jnp.array([[1.0]]),
                    field=jnp.array([0]), value=jnp.array([0.0]), error=jnp.array([1.0]), mask=jnp.array([True]))
    # Euler: two full steps of 0.1, then one of 0.05.
    expected = 2.0 * (1 - 0.05) ** 2 * (1 - 0.025)
    np.testing.assert_allclose(predict(problem, v, obs, 3)[0], expected, rtol=1e-14)

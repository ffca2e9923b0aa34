"""Autodiff through the Lorenz-96 integrator and the window observation operator against
central finite differences (float64), plain, under jit and under vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from levda_cli.core import Problem, WindowObs, forecast, predict
from levda_cli.core.linearise import dense as linearise
from levda_cli.physics import Lorenz96


@pytest.fixture
def problem():
    return Problem(Lorenz96(), jnp.array([8.0]), (0,))


@pytest.fixture
def v0():
    x = Lorenz96().integrate(8.0 + jax.random.normal(jax.random.PRNGKey(1), (40,)), 8.0, 200)[-1]
    return jnp.append(x, 8.0)


@pytest.fixture
def obs():
    rng = np.random.default_rng(0)
    n = 30
    return WindowObs(times=jnp.array([0.05, 0.17, 0.5]), time_index=jnp.asarray(rng.integers(0, 3, n)),
                     coords=jnp.asarray(rng.uniform(0, 40, (n, 1))), field=jnp.zeros(n, int),
                     value=jnp.asarray(rng.standard_normal(n)), error=jnp.ones(n), mask=jnp.ones(n, bool))


def fd_jvp(f, x, t, eps=1e-6):
    return (f(x + eps * t) - f(x - eps * t)) / (2 * eps)


def test_forecast_jvp_matches_finite_differences(problem, v0):
    f = lambda v: forecast(problem, v, 10)[-1]  # noqa: E731
    for seed in range(3):
        t = jax.random.normal(jax.random.PRNGKey(seed), v0.shape)
        _, jvp = jax.jvp(f, (v0,), (t,))
        np.testing.assert_allclose(jvp, fd_jvp(f, v0, t), rtol=1e-6, atol=1e-7)


def test_gradient_wrt_forcing(problem, v0):
    """The parameter's gradient (reverse mode) against finite differences."""
    f = lambda F: jnp.sum(forecast(problem, v0.at[-1].set(F), 10)[-1] ** 2)  # noqa: E731
    g = jax.grad(f)(8.0)
    fd = (f(8.0 + 1e-6) - f(8.0 - 1e-6)) / 2e-6
    np.testing.assert_allclose(g, fd, rtol=1e-6)


def test_observation_jacobian_plain_jit_vmap(problem, v0, obs):
    h = lambda v: predict(problem, v, obs, 10)  # noqa: E731
    J = jax.jacfwd(h)(v0)
    eye = np.eye(v0.shape[0])
    fd = np.stack([fd_jvp(h, v0, eye[i]) for i in range(0, 41, 5)], axis=1)
    np.testing.assert_allclose(J[:, ::5], fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(jax.jit(jax.jacfwd(h))(v0), J, rtol=1e-12)
    batch = jnp.stack([v0, v0 * 1.01])
    Jb = jax.vmap(jax.jacfwd(h))(batch)
    np.testing.assert_allclose(Jb[0], J, rtol=1e-12)


def test_linearise_gives_ensemble_space_jacobian(problem, v0, obs):
    X = 0.1 * jax.random.normal(jax.random.PRNGKey(5), (41, 6))
    res = lambda w: (obs.value - predict(problem, v0 + X @ w, obs, 10)) / obs.error  # noqa: E731
    w = 0.3 * jnp.ones(6)
    d, S = linearise(res, w)
    np.testing.assert_allclose(d, res(w), rtol=1e-14)
    fd = np.stack([-fd_jvp(res, w, e) for e in np.eye(6)], axis=1)
    np.testing.assert_allclose(S, fd, rtol=1e-6, atol=1e-8)


def test_lorenz96_energy_budget():
    """With F = 0 the advection conserves sum(x^2)/2; the only change is the -x damping:
    d/dt E = -2E, so E(t) = E0 exp(-2t) (to RK4 accuracy)."""
    dyn = Lorenz96()
    x0 = jax.random.normal(jax.random.PRNGKey(2), (40,))
    x = dyn.integrate(x0, 0.0, 20)[-1]
    e0, e1 = jnp.sum(x0**2) / 2, jnp.sum(x**2) / 2
    np.testing.assert_allclose(e1, e0 * np.exp(-2 * 20 * 0.05), rtol=2e-3)

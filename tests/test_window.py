"""Properties of one window and of cycling with the core directly."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from levda_cli.core import RTPS, GaussNewton, Multiplicative, ParameterJitter, Problem, WindowObs, WindowSetup, analyse_window
from levda_cli.core.window import mean_preserving_rotation
from levda_cli.physics import Lorenz96


def _obs(values, n_valid, n_max=48):
    mask = np.arange(n_max) < n_valid
    return WindowObs(times=jnp.array([0.05, 0.0]), time_index=jnp.zeros(n_max, int),
                     coords=jnp.asarray(np.arange(n_max) % 40, float)[:, None], field=jnp.zeros(n_max, int),
                     value=jnp.asarray(np.where(mask, values[:n_max], 0.0)), error=jnp.ones(n_max),
                     mask=jnp.asarray(mask))


def test_one_compilation_serves_a_run():
    """Windows with different values and numbers of observations reuse one trace."""
    traces = []

    def counted(setup, ens, obs, key):
        traces.append(1)
        return analyse_window(setup, ens, obs, key)

    step = eqx.filter_jit(counted)
    setup = WindowSetup(Problem(Lorenz96(), jnp.array([8.0])), GaussNewton(), (Multiplicative(1.02),))
    rng = np.random.default_rng(0)
    ens = jnp.asarray(8 + rng.standard_normal((10, 40)))
    for n_valid in (40, 13, 48, 1):
        res = step(setup, ens, _obs(rng.standard_normal(48), n_valid), jax.random.PRNGKey(n_valid))
        ens = res.next_background
    assert len(traces) == 1


def test_mean_preserving_rotation():
    U = mean_preserving_rotation(jax.random.PRNGKey(0), 7, jnp.float64)
    np.testing.assert_allclose(U @ U.T, np.eye(7), atol=1e-12)
    np.testing.assert_allclose(U @ np.ones(7), np.ones(7), atol=1e-12)


def test_inflation_strategies():
    rng = np.random.default_rng(1)
    prior = jnp.asarray(rng.standard_normal((12, 5)))
    post = prior.mean(0) + 0.2 * (prior - prior.mean(0))
    relaxed = RTPS(1.0).after(prior, post, None)
    np.testing.assert_allclose(relaxed.std(0), prior.std(0), rtol=1e-12)
    np.testing.assert_allclose(relaxed.mean(0), post.mean(0), atol=1e-12)
    inflated = Multiplicative(1.5).before(prior, None)
    np.testing.assert_allclose(inflated.std(0), 1.5 * prior.std(0), rtol=1e-12)
    jittered = ParameterJitter(jnp.array([0.1])).after(prior, post, jax.random.PRNGKey(0))
    np.testing.assert_allclose(jittered[:, :4], post[:, :4])
    np.testing.assert_allclose(jittered.mean(0), post.mean(0), atol=1e-12)
    assert float(jittered[:, 4].std()) > float(post[:, 4].std())


def test_cycling_tracks_lorenz96_and_learns_forcing():
    """Short filter run from the core: the analysis tracks the truth and F moves toward 8."""
    dyn = Lorenz96()
    key = jax.random.PRNGKey(0)
    truth = dyn.integrate(dyn.integrate(8 + jax.random.normal(key, (40,)), 8.0, 400)[-1], 8.0, 300)
    noise = jax.random.normal(jax.random.PRNGKey(1), truth.shape)
    setup = WindowSetup(Problem(dyn, jnp.array([8.0]), (0,)), GaussNewton(),
                        (Multiplicative(1.02), ParameterJitter(jnp.array([0.002]))))
    ens = jnp.concatenate([truth[0] + jax.random.normal(key, (20, 40)),
                           7.0 + jax.random.normal(jax.random.PRNGKey(2), (20, 1))], axis=1)
    step = eqx.filter_jit(analyse_window)
    errors, forcing = [], []
    for k in range(250):
        obs = _obs(np.asarray(truth[k + 1] + noise[k + 1]), 40, 40)
        res = step(setup, ens, obs, jax.random.PRNGKey(k))
        ens = res.next_background
        errors.append(float(jnp.sqrt(jnp.mean((res.filter[:, :40].mean(0) - truth[k + 1]) ** 2))))
        forcing.append(float(res.analysis[:, 40].mean()))
    assert np.mean(errors[150:]) < 0.3
    assert abs(np.mean(forcing[-50:]) - 8.0) < 0.15


def test_finite_size_prior_derivatives():
    """zeta(w) w is the gradient of J_b and hessian() its Hessian (autodiff) at fixed S^T S."""
    from levda_cli.core import FiniteSizePrior, GaussianPrior

    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.standard_normal(9))
    a = rng.standard_normal((9, 9))
    StS = jnp.asarray(a @ a.T)
    for prior in (FiniteSizePrior(), FiniteSizePrior(x_n=3.0, mode_correction=False), GaussianPrior()):
        np.testing.assert_allclose(jax.grad(prior.value)(w, StS), prior.zeta(w, StS) * w, rtol=1e-12)
        np.testing.assert_allclose(jax.hessian(prior.value)(w, StS), prior.hessian(w, StS), rtol=1e-12, atol=1e-14)
        assert float(prior.value(jnp.zeros(9), StS)) == 0.0
    # Without the mode correction zeta(0) = (N - 1) c_L / ((N - 1) e_N) = N^2 / (N^2 - 1): a deflation.
    np.testing.assert_allclose(FiniteSizePrior(mode_correction=False).zeta(jnp.zeros(9), StS), 81 / 80, rtol=1e-14)
    # With it, a window whose observations weigh nothing (S^T S = 0) neither inflates nor deflates.
    np.testing.assert_allclose(FiniteSizePrior(x_n=2.0).zeta(jnp.zeros(9), 0 * StS), 1.0, rtol=1e-14)


def test_finite_size_prior_recovers_from_a_climatological_start():
    """A free-run ensemble (spread ~3.6) that fixed inflation cannot bring onto the truth:
    the EnKF-N background term inflates while the innovations are large, and converges."""
    from levda_cli.core import FiniteSizePrior

    dyn = Lorenz96()
    truth = dyn.integrate(dyn.integrate(8 + jax.random.normal(jax.random.PRNGKey(0), (40,)), 8.0, 400)[-1], 8.0, 400)
    noise = jax.random.normal(jax.random.PRNGKey(1), truth.shape)
    ens = jax.vmap(lambda x: dyn.integrate(x, 8.0, 400)[-1])(8 + jax.random.normal(jax.random.PRNGKey(5), (20, 40)))
    setup = WindowSetup(Problem(dyn, jnp.array([8.0])), GaussNewton(), (), FiniteSizePrior(x_n=3.0), exact_hessian=False)
    step = eqx.filter_jit(analyse_window)
    errors = []
    for k in range(300):
        res = step(setup, ens, _obs(np.asarray(truth[k + 1] + noise[k + 1]), 40, 40), jax.random.PRNGKey(k))
        ens = res.next_background
        errors.append(float(jnp.sqrt(jnp.mean((res.filter.mean(0) - truth[k + 1]) ** 2))))
    assert errors[0] > 2.0
    assert np.mean(errors[200:]) < 0.3


def test_crps_by_sorting_equals_the_pairwise_definition():
    from levda_cli.core.diagnostics import crps

    rng = np.random.default_rng(3)
    for n_ens in (2, 5, 20):
        ens, truth = rng.normal(size=(n_ens, 30)), rng.normal(size=30)
        pairwise = np.abs(ens - truth).mean(0) - 0.5 * np.abs(ens[:, None] - ens[None]).mean((0, 1))
        np.testing.assert_allclose(crps(jnp.asarray(ens), jnp.asarray(truth)), pairwise.mean(), rtol=1e-12)

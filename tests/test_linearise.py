"""The blocked observation term (``core.linearise``) against the plain one, float64.

- each model's three-stage operator (``prepare``/``geometry``/``sample``) equals its pointwise
  ``observe`` (the reference, written independently);
- ``d``, ``S^T S`` and ``S^T d`` built block by block, for block sizes that do and do not divide
  the observation count, equal the whole ``S`` from one JVP per member (``dense``) to 1e-12;
- with a control smaller than the ensemble (latent mode) the Jacobian taken along the control's
  axes and multiplied by the anomalies equals the member-space one.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from levda_cli.core import Problem, WindowObs, predict
from levda_cli.core.linearise import ObservationTerm, dense
from levda_cli.core.surrogate import Surrogate
from levda_cli.physics import Lorenz96
from levda_cli.physics.kolmogorov import Kolmogorov
from levda_cli.physics.tsunami import Tsunami


def _surrogate():
    return Surrogate.build(n_latent=5, n_coord=2, n_field=2, n_param=2, dynamics_width=16, dynamics_depth=1,
                           decoder_width=16, decoder_depth=1, n_fourier=4, fourier_scale=2.0,
                           periodic=(False, True), dt=0.1, time_scale=2.0, key=jax.random.PRNGKey(3),
                           coord_low=[0.0, 0.0], coord_high=[1e6, 2 * np.pi], field_mean=[1.0, -2.0],
                           field_std=[0.5, 3.0], param_low=[0.0, 500.0], param_high=[1.0, 1500.0])


def _cases():
    """(name, problem, control v0, coordinate sampler, number of fields, steps per window)."""
    l96 = Lorenz96()
    x = l96.integrate(8.0 + jax.random.normal(jax.random.PRNGKey(1), (40,)), 8.0, 200)[-1]
    yield "lorenz96", Problem(l96, jnp.array([8.0]), (0,)), jnp.append(x, 8.0), \
        lambda r, n: r.uniform(0, 40, (n, 1)), 1, 6
    ts = Tsunami(n=8, dt=2000.0)
    x = ts.initial_state(jnp.array([4.1e5, 5.3e5]))
    x = jax.lax.fori_loop(0, 5, lambda i, y: ts.step(y, None, 2000.0), x)
    yield "tsunami", Problem(ts, jnp.array([5e5, 5e5])), x, lambda r, n: r.uniform(0, 1e6, (n, 2)), 3, 4
    ko = Kolmogorov(n=8, dt=0.02)
    yield "kolmogorov", Problem(ko, jnp.array([800.0]), (0,)), jnp.append(ko.random_state(jax.random.PRNGKey(4)), 800.0), \
        lambda r, n: r.uniform(0, 2 * np.pi, (n, 2)), 2, 4
    sur = _surrogate()
    z = 0.3 * jax.random.normal(jax.random.PRNGKey(6), (5,))
    yield "surrogate", Problem(sur, jnp.array([0.5, 900.0]), (0, 1)), jnp.concatenate([z, jnp.array([0.4, 1100.0])]), \
        lambda r, n: np.stack([r.uniform(0, 1e6, n), r.uniform(0, 2 * np.pi, n)], axis=1), 2, 4


CASES = {c[0]: c[1:] for c in _cases()}


def _obs(sampler, n_field, dt, n_steps, n=37, seed=0):
    r = np.random.default_rng(seed)
    times = np.sort(r.uniform(0, n_steps * dt, 5))
    mask = np.ones(n, bool)
    mask[-4:] = False  # padding, as the window loop makes it
    return WindowObs(times=jnp.asarray(times), time_index=jnp.asarray(r.integers(0, 5, n), jnp.int32),
                     coords=jnp.asarray(sampler(r, n)), field=jnp.asarray(r.integers(0, n_field, n), jnp.int32),
                     value=jnp.asarray(r.standard_normal(n)), error=jnp.asarray(r.uniform(0.5, 2.0, n)),
                     mask=jnp.asarray(mask))


@pytest.mark.parametrize("name", list(CASES))
def test_three_stage_operator_equals_observe(name):
    problem, v0, sampler, n_field, n_steps = CASES[name]
    obs = _obs(sampler, n_field, problem.dynamics.dt, n_steps)
    term = ObservationTerm.build(problem, obs, n_steps, block=8)
    np.testing.assert_allclose(term.predict(v0), predict(problem, v0, obs, n_steps), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,n_ens", [(n, 4) for n in CASES] + [("surrogate", 9)])
def test_blocked_linearisation_equals_dense(name, n_ens):
    problem, v0, sampler, n_field, n_steps = CASES[name]
    obs = _obs(sampler, n_field, problem.dynamics.dt, n_steps)
    n_ctrl = v0.shape[0]
    scale = jnp.abs(v0) * 1e-3 + 1e-2
    X = scale[:, None] * jax.random.normal(jax.random.PRNGKey(7), (n_ctrl, n_ens))
    w = 0.2 * jax.random.normal(jax.random.PRNGKey(8), (n_ens,))
    safe = jnp.where(obs.mask, obs.error, 1.0)
    residual = lambda w: jnp.where(obs.mask, (obs.value - predict(problem, v0 + X @ w, obs, n_steps)) / safe, 0.0)  # noqa: E731
    d_ref, S = dense(residual, w)
    for block in (5, 64):  # not dividing the 37 observations; one block
        lin = ObservationTerm.build(problem, obs, n_steps, block).linearise(v0, X, w)
        np.testing.assert_allclose(lin.d, d_ref, rtol=1e-12, atol=1e-12)
        scale_sts = float(jnp.abs(S.T @ S).max())
        np.testing.assert_allclose(lin.StS, S.T @ S, rtol=1e-12, atol=1e-12 * scale_sts)
        np.testing.assert_allclose(lin.Std, S.T @ d_ref, rtol=1e-12, atol=1e-12 * float(jnp.abs(S.T @ d_ref).max()))


def test_latent_control_is_smaller_than_the_ensemble_in_the_case_above():
    """The surrogate case at N = 9 differentiates along 7 control axes (the control-space path)."""
    problem, v0, *_ = CASES["surrogate"]
    assert v0.shape[0] < 9 and CASES["lorenz96"][1].shape[0] > 9


@pytest.mark.parametrize("name", ["tsunami", "surrogate"])
def test_float32_compute_path_agrees_with_float64(name):
    """Model and decoder in single precision, innovations and sums in double: the same numbers to
    single-precision accuracy, and the sums come back as float64."""
    problem, v0, sampler, n_field, n_steps = CASES[name]
    obs = _obs(sampler, n_field, problem.dynamics.dt, n_steps)
    n_ens = 6
    X = (jnp.abs(v0) * 1e-3 + 1e-2)[:, None] * jax.random.normal(jax.random.PRNGKey(7), (v0.shape[0], n_ens))
    w = 0.2 * jax.random.normal(jax.random.PRNGKey(8), (n_ens,))
    ref = ObservationTerm.build(problem, obs, n_steps, 16).linearise(v0, X, w)
    low = ObservationTerm.build(problem, obs, n_steps, 16, "float32").linearise(v0, X, w)
    assert low.d.dtype == low.StS.dtype == jnp.float64
    scale = float(jnp.abs(ref.d).max())
    np.testing.assert_allclose(low.d, ref.d, rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(low.StS, ref.StS, rtol=0, atol=1e-3 * float(jnp.abs(ref.StS).max()))


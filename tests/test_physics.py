"""The benchmark solvers against what they must satisfy: conservation laws, exact solutions,
steady states and convergence under refinement (small grids, float64)."""

import jax
import pytest
import jax.numpy as jnp
import numpy as np

from levda_cli.physics.kolmogorov import Kolmogorov
from levda_cli.physics.tsunami import Tsunami


def run(model, x, n, mu=None):
    mu = jnp.zeros(1) if mu is None else mu
    return jax.jit(lambda x: jax.lax.fori_loop(0, n, lambda i, x: model.step(x, mu, model.dt), x))(x)


# -- tsunami -----------------------------------------------------------------------------------

def test_tsunami_conserves_mass_to_round_off():
    m = Tsunami(n=40, dt=200.0)
    x0 = m.initial_state(jnp.array([3e5, 6.5e5]))
    x = run(m, x0, 150)
    assert float(jnp.abs(m.unpack(x)[0]).max()) > 0.01  # the bump has spread, walls reached
    np.testing.assert_allclose(m.mass(x), m.mass(x0), rtol=1e-13)


def test_tsunami_linear_energy_conserved_and_rk4_converges():
    """Without rotation and with linear continuity the semi-discrete C-grid conserves energy;
    what RK4 loses must shrink at least 16-fold when the step is halved."""
    losses = []
    for dt in (200.0, 100.0):
        m = Tsunami(n=40, dt=dt, f0=0.0, beta=0.0, nonlinear=False)
        x0 = m.initial_state(jnp.array([5e5, 5e5]))
        x = run(m, x0, int(20000 / dt))
        losses.append(float((m.energy(x0) - m.energy(x)) / m.energy(x0)))
    assert 0 < losses[0] < 1e-4
    assert losses[0] / losses[1] > 16


def test_tsunami_symmetry_and_wave_speed():
    """A centred bump on an f-plane-free basin stays symmetric under x <-> y, and its leading
    ring travels at the gravity-wave speed sqrt(g H)."""
    m = Tsunami(n=80, dt=100.0, f0=0.0, beta=0.0, nonlinear=False)
    x = run(m, m.initial_state(jnp.array([5e5, 5e5])), 80)  # 8000 s: c t = 250 km
    eta = np.asarray(m.unpack(x)[0])
    np.testing.assert_allclose(eta, eta.T, atol=1e-12)
    c = np.asarray(m.centres())
    r = np.hypot(*np.meshgrid(c - 5e5, c - 5e5))
    r_peak = r[np.unravel_index(np.argmax(eta * (r > 1e5)), eta.shape)]
    assert abs(r_peak - np.sqrt(9.81 * 100) * 8000) < 3 * m.dx


def test_tsunami_observe_interpolates_exactly_at_points():
    m = Tsunami(n=20, dt=100.0)
    x = run(m, m.initial_state(jnp.array([4e5, 6e5])), 10)
    eta, u, v = m.unpack(x)
    dx = m.dx
    np.testing.assert_allclose(m.observe(x, None, jnp.array([5.5 * dx, 7.5 * dx]), 2), eta[7, 5], rtol=1e-12)
    np.testing.assert_allclose(m.observe(x, None, jnp.array([5 * dx, 7.5 * dx]), 0), u[7, 5], rtol=1e-12)
    mid = m.observe(x, None, jnp.array([5.5 * dx, 8.0 * dx]), 2)  # half-way between two rows
    np.testing.assert_allclose(mid, 0.5 * (eta[7, 5] + eta[8, 5]), rtol=1e-12)


# -- Kolmogorov --------------------------------------------------------------------------------

def test_taylor_green_decays_exactly():
    m = Kolmogorov(n=32, dt=0.05, forced=False)
    X, Y = jnp.meshgrid(m.grid(), m.grid())
    w0 = (2 * jnp.sin(X) * jnp.sin(Y)).ravel()
    Re = 200.0
    x = run(m, w0, 40, jnp.array([Re]))
    np.testing.assert_allclose(x, w0 * np.exp(-(2 / Re + 0.1) * 2.0), atol=1e-12)


def test_laminar_kolmogorov_flow_is_steady():
    """u = (A sin 4y, 0) with (16 nu + alpha) A = 1 balances the forcing exactly."""
    m = Kolmogorov(n=32, dt=0.02)
    Re = 800.0
    A = 1.0 / (16.0 / Re + 0.1)
    Y = jnp.meshgrid(m.grid(), m.grid())[1]
    w0 = (-4.0 * A * jnp.cos(4.0 * Y)).ravel()
    x = run(m, w0, 100, jnp.array([Re]))
    np.testing.assert_allclose(x, w0, atol=1e-10)
    np.testing.assert_allclose(m.fields(x)["u"], A * np.sin(4.0 * np.asarray(Y)), atol=1e-10)


def test_inviscid_truncated_euler_conserves_energy_and_enstrophy():
    """The dealiased nonlinear term conserves both quadratic invariants; RK4 errors only."""
    m = Kolmogorov(n=32, dt=0.005, forced=False, drag=0.0)
    w0 = m.random_state(jax.random.PRNGKey(0)) * 0.2
    x = run(m, w0, 200, jnp.array([1e12]))
    assert float(jnp.abs(x - w0).max()) > 0.1  # the flow evolved

    def invariants(w):
        f = m.fields(w)
        return float(jnp.sum(f["u"] ** 2 + f["v"] ** 2)), float(jnp.sum(w**2))

    (e0, z0), (e1, z1) = invariants(w0), invariants(x)
    np.testing.assert_allclose(e1, e0, rtol=1e-6)
    np.testing.assert_allclose(z1, z0, rtol=1e-6)


def test_kolmogorov_point_evaluation_is_spectral():
    m = Kolmogorov(n=16, dt=0.02)
    x = m.random_state(jax.random.PRNGKey(1))
    f = m.fields(x)
    g = np.asarray(m.grid())
    np.testing.assert_allclose(m.observe(x, None, jnp.array([g[3], g[5]]), 1), f["v"][5, 3], rtol=1e-10)
    # Off the grid: the Fourier series of a single mode is that mode.
    X, Y = jnp.meshgrid(m.grid(), m.grid())
    w = (2 * jnp.sin(X) * jnp.sin(Y)).ravel()  # u = sin x cos y... from psi = sin x sin y
    p = jnp.array([0.123, 2.5])
    np.testing.assert_allclose(m.observe(w, None, p, 0), np.sin(0.123) * np.cos(2.5), rtol=1e-10)
    np.testing.assert_allclose(m.vorticity_from_velocity(f["u"], f["v"]), x, atol=1e-10)


# -- shallow water on the sphere (dinosaur) --------------------------------------------------------

def test_sphere_conserves_mass_and_keeps_williamson_2_steady():
    """Williamson et al. (1992) case 2, a steady geostrophic zonal flow, unforced: the height
    field stays put; with the moving forcing (zero zonal mean) the mean height is conserved."""
    pytest.importorskip("dinosaur")
    from levda_cli.physics.sphere import Sphere

    free = Sphere(forced=False)
    mu = jnp.array([100.0, 20.0])
    x0 = free.zonal_flow_state(20.0)
    x = run(free, x0, 96, mu)  # two days
    h0, h1 = free.fields(x0)["h"], free.fields(x)["h"]
    assert float(jnp.linalg.norm(h1 - h0) / jnp.linalg.norm(h0 - h0.mean())) < 1e-5
    np.testing.assert_allclose(free.fields(x0)["u"].max(), 20.0, rtol=1e-2)

    forced = Sphere()
    y = run(forced, forced.initial_state(mu), 96, mu)
    assert float(jnp.abs(forced.fields(y)["h"] - 3000.0).max()) > 1.0  # the forcing drives a response
    assert abs(float(forced.mean_potential_anomaly(y))) < 1e-14
    np.testing.assert_allclose(y[-1], forced.hours(48.0), rtol=1e-12)  # the clock in the state
    np.testing.assert_array_equal(forced.step(y, mu, jnp.asarray(0.0)), y)  # a zero step is the identity

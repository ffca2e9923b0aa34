"""Calibration diagnostics and the checks that make a dubious analysis loud: unconverged and
chi2-inconsistent windows flagged (exit 7 on request), a degenerate ensemble refused, rank
histograms flat for a calibrated ensemble, and a version-3 store migrated when resumed."""


import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from levda_cli.core import GaussNewton, Problem, WindowObs, WindowSetup, analyse_window
from tests.test_faults import CONFIG, FAST, _json, _obs, _run
from tests.test_kalman_smoother import LinearModel


def _from_truth(path, hours, error, declared=None, seed=0):
    """Lorenz-96 observations of a free run (every site every 6 h) with noise ``error``."""
    from levda_cli.physics.lorenz96 import Lorenz96

    dyn = Lorenz96()
    rng = np.random.default_rng(seed)
    x = dyn.integrate(jnp.asarray(8 + rng.standard_normal(40)), 8.0, 400)[-1]
    truth = np.asarray(dyn.integrate(x, 8.0, max(hours) // 6))
    rows = ["time,site,variable,value,error"]
    for h in hours:
        t = np.datetime64("2000-01-01T00:00:00") + np.timedelta64(h, "h")
        rows += [f"{t}Z,{s}.0,x,{truth[h // 6 - 1, s] + error * rng.standard_normal():.6f},{declared or error}"
                 for s in range(40)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_unconverged_windows_are_counted_flagged_and_exit_7_on_request(tmp_path, cli_env):
    _obs(tmp_path / "o.csv", [6, 12, 18])
    args = ["assimilate", "o.csv", "--model", "lorenz96", "-c", CONFIG, *FAST, "--set", "solver.max_iterations=1",
            "--set", "solver.tolerance=1e-12", "--json"]
    result = _run([*args, "--out", "a.zarr"], tmp_path, cli_env)
    assert result.exit_code == 0, result.output
    summary = _json(result.output)
    assert summary["windows_unconverged"] == [0, 1, 2]
    assert "stopped at solver.max_iterations" in result.output
    assert (xr.open_zarr(tmp_path / "a.zarr")["converged"].values == 0).all()
    strict = _run([*args, "--out", "b.zarr", "--set", "solver.require_convergence=true"], tmp_path, cli_env)
    assert strict.exit_code == 7 and "solver.require_convergence" in strict.output
    assert not (tmp_path / "b.zarr").exists()  # the first window failed: nothing committed, nothing left


def test_chi2_inconsistent_windows_flagged_and_exit_7_on_request(tmp_path, cli_env):
    """Noise of 1 declared as 0.05: chi2 in the hundreds; the store says so per window."""
    _from_truth(tmp_path / "o.csv", [6, 12, 18, 24], error=1.0, declared=0.05)
    args = ["assimilate", "o.csv", "--model", "lorenz96", "-c", CONFIG, *FAST, "--json"]
    result = _run([*args, "--out", "a.zarr"], tmp_path, cli_env)
    assert result.exit_code == 0, result.output
    ds = xr.open_zarr(tmp_path / "a.zarr")
    assert (ds["consistent"].values == 0).all() and (ds["chi2"].values > 5).all()
    assert _json(result.output)["windows_inconsistent"] == [0, 1, 2, 3]
    strict = _run([*args, "--out", "b.zarr", "--set", "solver.require_consistency=true"], tmp_path, cli_env)
    assert strict.exit_code == 7 and "solver.require_consistency" in strict.output

    # The same truth with the right error: 2 J_min / n_obs two orders of magnitude smaller (a climatological first
    # guess spins up for tens of windows, flagged honestly meanwhile: no claim of consistency here)
    _from_truth(tmp_path / "good.csv", [6, 12, 18, 24], error=1.0)
    good = _run([*args[:-1], "--json", "--out", "g.zarr"][0:1] + ["good.csv", *args[2:], "--out", "g.zarr"],
                tmp_path, cli_env)
    assert good.exit_code == 0, good.output
    bad_chi2 = xr.open_zarr(tmp_path / "a.zarr")["chi2_min"].values
    good_chi2 = xr.open_zarr(tmp_path / "g.zarr")["chi2_min"].values
    assert (bad_chi2 > 50 * good_chi2).all() and (good_chi2 < 20).all()
    assert np.isfinite(xr.open_zarr(tmp_path / "g.zarr")["inflation"].values).all()


def test_filter_divergence_is_flagged_and_exit_7_on_request(tmp_path, cli_env):
    """Errors declared 20 x too small: from the second window on the innovations are thousands of times
    what the spread and R allow; the third such window in a row is flagged (and with
    solver.require_no_divergence, refused: the store keeps the windows before it)."""
    _from_truth(tmp_path / "o.csv", [6, 12, 18, 24, 30, 36], error=1.0, declared=0.05)
    args = ["assimilate", "o.csv", "--model", "lorenz96", "-c", CONFIG, *FAST, "--json"]
    result = _run([*args, "--out", "a.zarr"], tmp_path, cli_env)
    assert result.exit_code == 0, result.output
    ds = xr.open_zarr(tmp_path / "a.zarr")
    assert (ds["innovation_ratio"].values[1:] > 100).all()
    assert list(ds["diverging"].values) == [0, 0, 0, 1, 1, 1]
    summary = _json(result.output)
    assert summary["windows_diverging"] == [3, 4, 5] and "filter divergence" in result.output
    # the run's observation rank histogram: every observation counted once, piled at the edges (R far too small)
    hist = np.asarray(summary["rank_histograms"]["rank_observations"]["x"])
    np.testing.assert_array_equal(hist, ds["rank_observations"].values[:, 0].sum(axis=0))
    assert hist.sum() == 240 and hist[0] + hist[-1] > 0.8 * hist.sum()
    strict = _run([*args, "--out", "b.zarr", "--set", "solver.require_no_divergence=true"], tmp_path, cli_env)
    assert strict.exit_code == 7 and "solver.require_no_divergence" in strict.output
    assert xr.open_zarr(tmp_path / "b.zarr").sizes["window"] == 3
    # the streak of inconsistent windows continues across a resume: a run split after window 1 flags the same
    rows = (tmp_path / "o.csv").read_text().splitlines()
    (tmp_path / "first.csv").write_text("\n".join([rows[0], *[r for r in rows[1:] if r < "2000-01-01T12:00:01"]]) + "\n")
    assert _run(["assimilate", "first.csv", *args[2:], "--out", "c.zarr"], tmp_path, cli_env).exit_code == 0
    assert _run([*args, "--out", "c.zarr"], tmp_path, cli_env).exit_code == 0
    assert list(xr.open_zarr(tmp_path / "c.zarr")["diverging"].values) == [0, 0, 0, 1, 1, 1]


def test_degenerate_ensemble_is_refused(tmp_path, cli_env):
    _obs(tmp_path / "o.csv", [6, 12])
    result = _run(["assimilate", "o.csv", "--model", "lorenz96", "-c", CONFIG, "-q", "--set", "ensemble.spinup=0",
                   "--set", "ensemble.perturbation=1e-14", "--out", "a.zarr"], tmp_path, cli_env)
    assert result.exit_code == 7
    assert "degenerate" in result.output and "solver.spread_floor" in result.output
    assert not (tmp_path / "a.zarr").exists()


def test_version_3_store_is_migrated_on_resume(tmp_path, cli_env):
    import zarr

    from levda_cli.io.store import ADDED_IN_4

    _obs(tmp_path / "a.csv", [6, 12])
    _obs(tmp_path / "b.csv", [18, 24], seed=1)
    args = ["--model", "lorenz96", "-c", CONFIG, *FAST, "--out", "s.zarr"]
    assert _run(["assimilate", "a.csv", *args], tmp_path, cli_env).exit_code == 0
    # make it the store levda 0.5 wrote: no new arrays, no rank coordinate, version 3
    root = zarr.open_group(tmp_path / "s.zarr", mode="r+", use_consolidated=False)
    for name in (*ADDED_IN_4, "rank"):
        del root[name]
    root.attrs["levda_store_version"] = 3
    zarr.consolidate_metadata(root.store)
    result = _run(["assimilate", "b.csv", *args], tmp_path, cli_env)
    assert result.exit_code == 0, result.output
    ds = xr.open_zarr(tmp_path / "s.zarr")
    assert ds.attrs["levda_store_version"] == 4 and ds.sizes["window"] == 4
    assert np.isnan(ds["inflation"].values[:2]).all() and np.isfinite(ds["inflation"].values[2:]).all()
    assert np.isnan(ds["consistent"].values[:2]).all() and set(ds["consistent"].values[2:]) <= {0, 1}  # -1: masked
    assert (ds["rank_observations"].values[2:].sum(axis=-1) == 40).all()


def test_rank_histograms_of_a_calibrated_ensemble_are_flat():
    """Truth, members and observations drawn from one distribution: every rank equally likely, for
    the observation ranks of the window (members perturbed with R) and the truth ranks of the store."""
    from levda_cli.windowstep import window_products as _window_products

    rng = np.random.default_rng(0)
    n, n_ens, n_windows = 4, 9, 300
    model = LinearModel(A=jnp.zeros((n, n)), b=jnp.zeros(n))
    setup = WindowSetup(Problem(model, jnp.array([0.0])), GaussNewton(max_iterations=1), (), n_window=1, n_shift=1,
                        obs_ranks=True)
    sites = jnp.arange(n, dtype=float)[:, None]
    step = jax.jit(lambda e, y, k: analyse_window(setup, e, WindowObs(
        times=jnp.array([0.0]), time_index=jnp.zeros(n, int), coords=sites, field=jnp.zeros(n, int), value=y,
        error=jnp.full(n, 0.5), mask=jnp.ones(n, bool)), k).rank_obs)
    products = jax.jit(lambda e, t: _window_products(lambda v: {"x": v}, ["x"], n, False, e, e, e, t, t)["rank_truth"])
    obs_counts = np.zeros(n_ens + 1)
    truth_counts = np.zeros(n_ens + 1)
    for k in range(n_windows):
        draws = rng.standard_normal((n_ens + 1, n)) * 2.0 + 1.0
        truth, members = draws[0], draws[1:]
        obs_counts += np.asarray(step(jnp.asarray(members), jnp.asarray(truth + 0.5 * rng.standard_normal(n)),
                                      jax.random.PRNGKey(k)))[0]
        truth_counts += np.asarray(products(jnp.asarray(members), jnp.asarray(truth)))[0]
    for counts in (obs_counts, truth_counts):
        assert counts.sum() == n * n_windows
        expected = counts.sum() / (n_ens + 1)
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < 30  # 9 degrees of freedom: P(chi2 > 30) ~ 4e-4
    # an under-dispersive ensemble (spread 1/4 of the truth's): a U-shaped histogram
    counts = np.zeros(n_ens + 1)
    for k in range(100):
        truth, members = rng.standard_normal(n) * 2.0, rng.standard_normal((n_ens, n)) * 0.5
        counts += np.asarray(products(jnp.asarray(members), jnp.asarray(truth)))[0]
    assert counts[0] + counts[-1] > 0.5 * counts.sum()


def test_initial_ensemble_from_a_store_continues_it(tmp_path, cli_env):
    """A new store started from another's last analysis equals that store resumed (to rounding:
    the two forecast the same members by differently compiled programs)."""
    _obs(tmp_path / "a.csv", [6, 12, 18])
    _obs(tmp_path / "b.csv", [24, 30], seed=1)
    args = ["--model", "lorenz96", "-c", CONFIG, *FAST]
    assert _run(["assimilate", "a.csv", *args, "--out", "a.zarr"], tmp_path, cli_env).exit_code == 0
    import shutil

    shutil.copytree(tmp_path / "a.zarr", tmp_path / "resumed.zarr")
    assert _run(["assimilate", "b.csv", *args, "--out", "resumed.zarr"], tmp_path, cli_env).exit_code == 0
    # a.zarr's last window starts at 12 h = 0.1 model time units
    result = _run(["assimilate", "b.csv", *args, "--out", "new.zarr", "--initial-ensemble", "a.zarr",
                   "--set", "window.start=0.1"], tmp_path, cli_env)
    assert result.exit_code == 0, result.output
    resumed, new = xr.open_zarr(tmp_path / "resumed.zarr"), xr.open_zarr(tmp_path / "new.zarr")
    np.testing.assert_allclose(new["analysis"].values, resumed["analysis"].values[3:], rtol=0, atol=1e-9)
    assert list(new["window_start"].values) == list(resumed["window_start"].values[3:])


def test_initial_ensemble_file_checked(tmp_path, cli_env):
    _obs(tmp_path / "o.csv", [6, 12])
    rng = np.random.default_rng(0)
    base = ["assimilate", "o.csv", "--model", "lorenz96", "-c", CONFIG, *FAST]
    good = xr.Dataset({"ensemble": (("member", "ctrl"), 8 + rng.standard_normal((8, 40)))},
                      attrs={"time": "2000-01-01T00:00:00Z"})
    good.to_netcdf(tmp_path / "e.nc")
    result = _run([*base, "--out", "s.zarr", "--initial-ensemble", "e.nc"], tmp_path, cli_env)
    assert result.exit_code == 0, result.output
    ds = xr.open_zarr(tmp_path / "s.zarr")
    # no spin-up: the first background is the file's members (valid at the first window's start)
    np.testing.assert_allclose(ds["background"].values[0], good["ensemble"].values, rtol=0, atol=0)
    # a background mean and spread instead: members drawn with exactly that mean and spread
    xr.Dataset({"mean": (("ctrl",), np.full(40, 8.0)), "spread": ((), 0.5)},
               attrs={"time": "2000-01-01T00:00:00Z"}).to_netcdf(tmp_path / "ms.nc")
    result = _run([*base, "--out", "ms.zarr", "--initial-ensemble", "ms.nc"], tmp_path, cli_env)
    assert result.exit_code == 0, result.output
    first = xr.open_zarr(tmp_path / "ms.zarr")["background"].values[0]
    np.testing.assert_allclose(first.mean(0), 8.0, atol=1e-12)
    np.testing.assert_allclose(first.std(0, ddof=1), 0.5, rtol=1e-12)
    for name, bad, needle in [
        ("shape", xr.Dataset({"ensemble": (("member", "ctrl"), rng.standard_normal((5, 40)))},
                             attrs={"time": "2000-01-01T00:00:00Z"}), "has shape (5, 40)"),
        ("late", good.assign_attrs(time="2000-01-01T03:00:00Z"), "must be at or before it"),
        ("nan", good.copy(data={"ensemble": np.where(np.eye(8, 40) > 0, np.nan, 8.0)}), "member 0, control entry 0"),
        ("no time", xr.Dataset({"ensemble": good["ensemble"]}), "no valid time"),
        ("neither", xr.Dataset({"members": good["ensemble"]}, attrs={"time": "2000-01-01T00:00:00Z"}),
         "neither 'ensemble'"),
    ]:
        bad.to_netcdf(tmp_path / f"{name}.nc")
        out = _run([*base, "--out", f"{name}.zarr", "--initial-ensemble", f"{name}.nc"], tmp_path, cli_env)
        assert out.exit_code == 2 and needle in out.output and f"{name}.nc" in out.output, (name, out.output)
        assert not (tmp_path / f"{name}.zarr").exists()


def test_adaptive_relaxation_through_the_cli(tmp_path, cli_env):
    """inflation.rtps = "adaptive": observations whose declared error is a third of their real one make the
    innovations exceed what the spread and R explain, so the relaxation is positive; it is in the --json
    rows and, with the setting, in the store's `relaxation` array; a fixed rtps outside [0, 1] is refused."""
    _from_truth(tmp_path / "o.csv", [6, 12, 18, 24], error=1.0, declared=0.3, seed=3)
    args = ["assimilate", "o.csv", "--model", "lorenz96", "-c", CONFIG, *FAST, "--json"]
    result = _run([*args, "--out", "a.zarr", "--set", "inflation.rtps=adaptive"], tmp_path, cli_env)
    assert result.exit_code == 0, result.output
    rows = _json(result.output)["windows"]
    alpha = np.array([r["relaxation"] for r in rows])
    assert ((alpha >= 0) & (alpha <= 1)).all() and alpha.max() > 0
    np.testing.assert_allclose(xr.open_zarr(tmp_path / "a.zarr")["relaxation"].values, alpha, rtol=1e-12)
    plain = _run([*args, "--out", "b.zarr"], tmp_path, cli_env)
    assert plain.exit_code == 0, plain.output
    assert "relaxation" not in xr.open_zarr(tmp_path / "b.zarr")
    assert "relaxation" in _json(plain.output)["windows"][0]  # the diagnostic, whatever the setting
    # b.zarr resumed with the setting: refused with a message naming the array and the setting
    _from_truth(tmp_path / "o2.csv", [6, 12, 18, 24, 30], error=1.0, declared=0.3, seed=3)
    more = _run(["assimilate", "o2.csv", *args[2:], "--out", "b.zarr", "--set", "inflation.rtps=adaptive"], tmp_path,
                cli_env)
    assert more.exit_code != 0 and "'relaxation'" in more.output and "inflation.rtps" in more.output
    assert xr.open_zarr(tmp_path / "b.zarr").sizes["window"] == 4  # untouched
    bad = _run([*args, "--out", "c.zarr", "--set", "inflation.rtps=1.5"], tmp_path, cli_env)
    assert bad.exit_code == 2 and "rtps" in bad.output and not (tmp_path / "c.zarr").exists()

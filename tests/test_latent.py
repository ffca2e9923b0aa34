"""Latent mode end to end with the shipped, really trained tsunami checkpoint: simulate a truth,
observe it, assimilate with `--checkpoint` in a subprocess, read the store with xarray."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from clirun import levda

from levda_cli.io.checkpoint import read_header

CKPT = Path(__file__).parents[1] / "sample_data" / "surrogates" / "tsunami.ckpt"


@pytest.mark.skipif(not CKPT.exists(), reason="the sample checkpoint is made by sample_data/surrogates/README.md")
def test_latent_assimilation_end_to_end(tmp_path, cli_env, strict_summary):
    header, _ = read_header(CKPT)
    size = len(header["grid"]["x"])
    truth_xy = (420000.0, 580000.0)
    levda("simulate", "tsunami", "--out", "truth.zarr", "--size", size, "--duration", 7200, "--trajectories", 1,
          "--set", f"parameters.x0.value={truth_xy[0]}", "--set", f"parameters.y0.value={truth_xy[1]}",
          env=cli_env, cwd=tmp_path)
    levda("observe", "truth.zarr", "--out", "obs.nc", "--format", "ioda", "--network", "fixed:40",
          "--variables", "eta", "--error", "0.05", env=cli_env, cwd=tmp_path)
    (tmp_path / "latent.toml").write_text(
        "[window]\nlength = 1200.0\n[ensemble]\nsize = 16\n"
        "[parameters.x0]\nestimate = true\nprior_std = 100000.0\n"
        "[parameters.y0]\nestimate = true\nprior_std = 100000.0\n"
        '[solver]\nmethod = "levenberg-marquardt"\n')
    proc = levda("assimilate", "obs.nc", "--checkpoint", CKPT, "-c", "latent.toml", "--out", "an.zarr",
                 "--truth", "truth.zarr", "--json", env=cli_env, cwd=tmp_path)
    summary = strict_summary(proc.stdout, "assimilate")
    assert summary["windows_run"] == 6 and summary["n_obs_assimilated"] == 480
    windows = summary["windows"]
    assert all(w["cost_final"] <= w["cost_initial"] + 1e-9 for w in windows)
    ds = xr.open_zarr(tmp_path / "an.zarr")
    assert ds.attrs["mode"] == "latent" and ds.attrs["checkpoint_payload_sha256"] == header["payload_sha256"]
    assert ds.attrs["checkpoint_sha256"] == hashlib.sha256(CKPT.read_bytes()).hexdigest()
    assert ds["analysis"].shape == (6, 16, header["hyperparameters"]["n_latent"] + 2)
    assert ds["eta_analysis_mean"].dims == ("window", "y", "x") and ds.sizes["x"] == size
    assert list(ds["param"].values) == ["x0", "y0"]
    assert np.isfinite(ds["rmse_analysis"].values).all()
    # The bump centre, from a prior 100 km wide around (500, 500) km, lands within 25 km of the
    # truth (about 5 km here), and the decoded field tracks the truth.
    final = ds["param_analysis"].isel(window=-1).mean("member").values
    assert np.hypot(*(final - truth_xy)) < 25e3
    assert float(ds["rmse_analysis"].isel(window=-1)) < 0.02
    # The float32 compute path (model and decoder in single precision) on the same case: it runs
    # without warnings, converges about as often as float64 (a window at the iteration cap may tip either
    # way), and lands on the same answer to single precision.
    proc32 = levda("assimilate", "obs.nc", "--checkpoint", CKPT, "-c", "latent.toml", "--out", "an32.zarr",
                   "--truth", "truth.zarr", "--json", "--set", "output.precision=float32", env=cli_env, cwd=tmp_path)
    assert "Warning" not in proc32.stderr
    windows32 = json.loads(proc32.stdout)["windows"]
    assert sum(w["converged"] for w in windows32) >= sum(w["converged"] for w in windows) - 1
    final32 = xr.open_zarr(tmp_path / "an32.zarr")["param_analysis"].isel(window=-1).mean("member").values
    assert ds["analysis"].dtype == np.float64 and np.hypot(*(final32 - final)) < 100.0

    # The surrogate's error (a version-2 checkpoint: validation relative L2 x the field's RMS) is in the
    # observation variances, and the summary says how much; the truth's parameters give the coverage.
    rel, norm = header["training"]["validation_rel_l2"]["eta"], header["normalisation"]
    i = header["fields"].index("eta")
    expected = rel * np.hypot(norm["field_mean"][i], norm["field_std"][i])
    np.testing.assert_allclose(summary["surrogate_error_added"]["eta"], expected, rtol=1e-9)
    cover = summary["parameter_coverage"]
    assert set(cover) == {"x0", "y0"} and cover["x0"]["truth"] == truth_xy[0]
    assert abs(cover["x0"]["estimate"] - final[0]) < 1e-6 and 0 <= cover["x0"]["within_2_spreads"] <= 1
    off = levda("assimilate", "obs.nc", "--checkpoint", CKPT, "-c", "latent.toml", "--out", "noerr.zarr", "--json",
                "--set", "model.surrogate_error=0", env=cli_env, cwd=tmp_path)
    assert json.loads(off.stdout)["surrogate_error_added"] == {}
    assert not np.array_equal(xr.open_zarr(tmp_path / "noerr.zarr")["analysis"].values, ds["analysis"].values)

    # Nothing estimated: the members' latent states still differ (spun up with the parameters drawn from
    # the checkpoint's ranges), so the ensemble has spread and the observations reduce the field error.
    fixed = levda("assimilate", "obs.nc", "--checkpoint", CKPT, "-c", "latent.toml", "--out", "fixed.zarr",
                  "--truth", "truth.zarr", "--json", "--set", "parameters.x0.estimate=false",
                  "--set", "parameters.y0.estimate=false", env=cli_env, cwd=tmp_path)
    assert fixed.returncode == 0
    fx = xr.open_zarr(tmp_path / "fixed.zarr")
    assert (fx["spread_analysis"].values > 1e-4).all()
    assert float(fx["rmse_analysis"].values[1:].mean()) < float(fx["rmse_background"].values[0])

    # The report of the latent store: the error maps, recomputed from the truth file, have the store's RMSE.
    levda("report", "an.zarr", "--out", "rep", "--truth", "truth.zarr", "--maps", "0,-1", env=cli_env, cwd=tmp_path)
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["maps"]["windows"] == [0, 5] and (tmp_path / "rep" / "map_5.png").exists()
    errors = np.stack([np.asarray(data["maps"]["fields"][f]["error"]) for f in header["fields"]])  # field, window, y, x
    np.testing.assert_allclose(np.sqrt((errors**2).mean(axis=(0, 2, 3))), ds["rmse_analysis"].values[[0, 5]], rtol=1e-9)
    assert data["parameters"]["x0"]["truth"] == truth_xy[0]

    # The forecast: lead 0 is the store's filter analysis (spread with the surrogate's error, as stored), and a
    # point at a grid cell's centre gets the decoded value of that cell.
    x, y = float(ds["x"][7]), float(ds["y"][20])
    (tmp_path / "points.csv").write_text(f"name,x,y\ncell,{x},{y}\n")
    fc_proc = levda("forecast", "an.zarr", "--lead", "30min", "--out", "fc.zarr", "--points", "points.csv", "--json",
                    env=cli_env, cwd=tmp_path)
    assert strict_summary(fc_proc.stdout, "forecast")["frames"] == 4  # every 10 minutes, the surrogate's frame interval
    fc = xr.open_zarr(tmp_path / "fc.zarr")
    np.testing.assert_allclose(fc["eta_mean"].values[0], ds["eta_filter_mean"].values[-1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fc["eta_spread"].values[0], ds["eta_filter_spread"].values[-1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fc["eta_points_mean"].values[:, 0], fc["eta_mean"].values[:, 20, 7], rtol=1e-9,
                               atol=1e-12)
    assert np.isfinite(fc["u_spread"].values).all() and (fc["eta_spread"].values > 0).all()
    moved = levda("forecast", "an.zarr", "--lead", "30min", "--out", "fc2.zarr", "--checkpoint", tmp_path / "latent.toml",
                  env=cli_env, cwd=tmp_path, check=False)
    assert moved.returncode == 4 and "not the checkpoint" in moved.stderr
    # Past the surrogate's last training frame (6 h) its fields are untrained extrapolation: refused (exit 4,
    # with the longest possible lead), or written with --beyond-horizon and those frames flagged.
    far = levda("forecast", "an.zarr", "--lead", "5h", "--out", "far.zarr", env=cli_env, cwd=tmp_path, check=False)
    assert far.returncode == 4 and "training horizon" in far.stderr and "14400 s" in far.stderr
    assert not (tmp_path / "far.zarr").exists()
    levda("forecast", "an.zarr", "--lead", "5h", "--every", "1h", "--out", "far.zarr", "--beyond-horizon",
          env=cli_env, cwd=tmp_path)
    flags = xr.open_zarr(tmp_path / "far.zarr")["beyond_training_horizon"].values
    assert flags.tolist() == [0, 0, 0, 0, 0, 1]  # 2 h ... 7 h: only 7 h lies past 6 h


def test_readme_main_job_full_size(tmp_path, cli_env, strict_summary):
    """The README's main job as written: the 150 x 150 sample (40 gauges, source at (420, 580) km) with
    the shipped full-size surrogate; the source within 2 posterior spreads and 25 km, every window
    converged and consistent."""
    root = Path(__file__).parents[1]
    proc = levda("assimilate", root / "sample_data" / "tsunami150_obs.nc", "--checkpoint",
                 root / "sample_data" / "surrogates" / "tsunami150.ckpt", "--config", root / "configs" /
                 "latent_tsunami.toml", "--truth", root / "sample_data" / "tsunami150_truth.zarr", "--out",
                 "analysis.zarr", "--json", env=cli_env, cwd=tmp_path)
    summary = strict_summary(proc.stdout, "assimilate")
    cover = summary["parameter_coverage"]
    for p, truth in (("x0", 420e3), ("y0", 580e3)):
        assert cover[p]["truth"] == truth and abs(cover[p]["z"]) <= 2 and abs(cover[p]["estimate"] - truth) < 25e3
    assert summary["windows_unconverged"] == [] and summary["windows_inconsistent"] == []
    ds = xr.open_zarr(tmp_path / "analysis.zarr")
    assert ds.sizes["x"] == 150 and float(ds["rmse_analysis"].isel(window=-1)) < 0.02


@pytest.mark.skipif(not CKPT.exists(), reason="the sample checkpoint is made by sample_data/surrogates/README.md")
def test_restart_gets_a_settled_ensemble_out_of_a_wrong_mode(tmp_path, cli_env, strict_summary):
    """A first guess sure of a wrong source (x0, y0 = 700, 300 +- 2 km; the sample's truth is 420, 580 km): cycled
    alone it stays wrong, every window flagged inconsistent; with solver.restart (latent default) the inconsistent
    window is analysed again from the climatological first guess, which fits better, and the source is found."""
    root = Path(__file__).parents[1]
    header, _ = read_header(CKPT)
    n_latent = header["hyperparameters"]["n_latent"]
    rng = np.random.default_rng(0)
    members = np.concatenate([np.zeros((16, n_latent)), np.array([700e3, 300e3]) + 2e3 * rng.standard_normal((16, 2))],
                             axis=1)
    origin = np.datetime64("2000-01-01T00:00:00") + np.timedelta64(int(header["time"]["origin"]), "s")
    xr.Dataset({"ensemble": (("member", "ctrl"), members)}, attrs={"time": f"{origin}Z"}).to_netcdf(tmp_path / "wrong.nc")
    args = ["assimilate", root / "sample_data" / "tsunami_obs.nc", "--checkpoint", CKPT, "-c",
            root / "configs" / "latent_tsunami.toml", "--truth", root / "sample_data" / "tsunami_truth.zarr",
            "--initial-ensemble", "wrong.nc", "--json",
            # the hyperprior's default confidence and no relaxation: the posterior shrinks as fast as it can
            "--set", "inflation.xn=3", "--set", "inflation.rtps=0"]
    stuck = strict_summary(levda(*args, "--out", "off.zarr", "--set", "solver.restart=off", env=cli_env,
                                 cwd=tmp_path).stdout, "assimilate")
    found = levda(*args, "--out", "on.zarr", env=cli_env, cwd=tmp_path)
    summary = strict_summary(found.stdout, "assimilate")
    truth = np.array([420e3, 580e3])

    def final(s):
        return np.array([s["windows"][-1]["parameters"][p] for p in ("x0", "y0")])

    assert stuck["windows_restarted"] == [] and len(stuck["windows_inconsistent"]) >= 3
    assert np.hypot(*(final(stuck) - truth)) > 50e3
    assert summary["windows_restarted"] and summary["windows_restarted"][0] == 0
    assert [w["window"] for w in summary["windows"] if w["restarted"]] == summary["windows_restarted"]
    assert "solver.restart" in found.stderr
    assert np.hypot(*(final(summary) - truth)) < 25e3
    ds = xr.open_zarr(tmp_path / "on.zarr")
    assert float(ds["param_background"].isel(window=0).std("member").max()) > 20e3  # the kept, climatological one


KOLMOGOROV = Path(__file__).parents[1] / "sample_data" / "surrogates" / "kolmogorov.ckpt"


def test_latent_parameter_posterior_is_the_exact_one(tmp_path, cli_env, strict_summary):
    """A known answer for the nonlinear case, with the shipped Kolmogorov surrogate: every benchmark flow
    starts from the training data's shared state (z = 0), so Re alone sets the surrogate's trajectory and
    the exact posterior of Re given all the observations is a one-dimensional integral
    (``exact_posterior.py``: a grid over the checkpoint's range, levda's own likelihood). The windowed
    ensemble filter (10 windows, N = 16, an ensemble Gaussian per window), run through the CLI, ends with
    that posterior: its mean within half a posterior spread, its spread within 0.7-1.5x. The posterior is
    informative (a fifth of the prior's spread), so the prior alone would not pass."""
    from exact_posterior import surrogate_posterior

    re_true = 937.8  # benchmarks/results/calibration.md's Kolmogorov case 1 (seed 2026)
    levda("simulate", "kolmogorov", "--size", 32, "--interval", 0.2, "--seed", 0, "--set", "spinup=30",
          "--duration", 4, "--trajectories", 1, "--set", f"parameters.Re.value={re_true}", "--out", "truth.zarr",
          "-q", env=cli_env, cwd=tmp_path)
    levda("observe", "truth.zarr", "--out", "obs.nc", "--network", "random:10", "--times", "random",
          "--interval", 0.2, "--error", 0.1, "--seed", 301, env=cli_env, cwd=tmp_path)
    config = Path(__file__).parents[1] / "configs" / "latent_kolmogorov.toml"
    proc = levda("assimilate", "obs.nc", "-k", KOLMOGOROV, "-c", config, "--out", "an.zarr", "--json", "-q",
                 env=cli_env, cwd=tmp_path)
    summary = strict_summary(proc.stdout, "assimilate")
    assert summary["n_obs_assimilated"] == 400 and not summary["windows_inconsistent"]
    members = xr.open_zarr(tmp_path / "an.zarr").param_analysis.sel(param="Re").values[-1]
    mean, spread = float(members.mean()), float(members.std(ddof=1))
    exact_mean, exact_spread = surrogate_posterior(KOLMOGOROV, tmp_path / "obs.nc", "Re")
    prior = read_header(KOLMOGOROV)[0]["parameters"][0]  # Re, uniform over [low, high]
    assert exact_spread < 0.2 * (prior["high"] - prior["low"]) / np.sqrt(12)
    assert abs(mean - exact_mean) < 0.5 * exact_spread, (mean, spread, exact_mean, exact_spread)
    assert 0.7 < spread / exact_spread < 1.5, (mean, spread, exact_mean, exact_spread)

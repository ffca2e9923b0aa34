"""`levda report` and `levda forecast` in subprocesses on a real Lorenz-96 analysis store: the numbers
plotted are the store's (or recomputed from the truth independently), the forecast starts at the
filter analysis and follows the model (an independent RK4 here), and bad requests exit with their codes."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from clirun import levda, strict_json

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def work(tmp_path_factory, cli_env):
    d = tmp_path_factory.mktemp("report")
    levda("simulate", "lorenz96", "--out", "truth.zarr", "--duration", "2", "--seed", "5", env=cli_env, cwd=d)
    levda("observe", "truth.zarr", "--out", "obs.csv", "--seed", "2", env=cli_env, cwd=d)
    levda("assimilate", "obs.csv", "--model", "lorenz96", "-c", ROOT / "configs" / "lorenz96_estimate_F.toml",
          "--truth", "truth.zarr", "--out", "an.zarr", "-q", env=cli_env, cwd=d)
    return d


def test_report_plots_the_stores_numbers(work, cli_env, strict_summary):
    proc = levda("report", "an.zarr", "--out", "rep", "--json", env=cli_env, cwd=work)
    summary = strict_summary(proc.stdout, "report")
    data = strict_json((work / "rep" / "report.json").read_text())
    ds = xr.open_zarr(work / "an.zarr")
    n = ds.sizes["window"]
    assert data["n_windows"] == n == summary["summary"]["windows"] == 40
    np.testing.assert_array_equal(data["scores"]["rmse_analysis"], ds["rmse_analysis"].values)
    np.testing.assert_array_equal(data["scores"]["spread_filter"], ds["spread_filter"].values)
    np.testing.assert_array_equal(data["checks"]["chi2"], ds["chi2"].values)
    np.testing.assert_array_equal(data["checks"]["iterations"], ds["iterations"].values)
    np.testing.assert_allclose(data["parameters"]["F"]["analysis_mean"],
                               ds["param_analysis"].sel(param="F").mean("member").values, rtol=1e-12)
    # O-B over all windows, against the per-window RMS the core computed in the analysis
    inn = data["innovations"]["x"]
    n_obs = ds["n_obs_variable"].values[:, 0]
    assert inn["n"] == n_obs.sum() == 1600
    pooled = np.sqrt((n_obs * ds["omb_rms"].values[:, 0] ** 2).sum() / n_obs.sum())
    np.testing.assert_allclose(inn["omb_rms"], pooled, rtol=1e-9)
    assert 0.98 * inn["n"] <= sum(inn["omb_counts"]) <= inn["n"]  # the central 99 % of O-B and O-A
    assert len(inn["edges"]) == len(inn["omb_counts"]) + 1
    assert sum(data["ranks"]["rank_truth"]["x"]) == n * 40  # every site of every window ranked once
    assert sum(data["ranks"]["rank_observations"]["x"]) == 1600
    # every figure named in the page exists and is a PNG
    page = (work / "rep" / "index.html").read_text()
    assert data["figures"] and {f["file"] for f in data["figures"]} >= {"rmse_spread.png", "parameters.png",
                                                                       "innovations.png", "checks.png", "section_x.png"}
    for f in data["figures"]:
        assert f'src="{f["file"]}"' in page
        assert (work / "rep" / f["file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_with_truth_recomputes_rmse_and_errors(work, cli_env):
    levda("report", "an.zarr", "--out", "rep_truth", "--truth", "truth.zarr", env=cli_env, cwd=work)
    data = strict_json((work / "rep_truth" / "report.json").read_text())
    ds = xr.open_zarr(work / "an.zarr")
    # recomputed here from the stored means and the truth file; the store's came from the run itself
    np.testing.assert_allclose(data["scores"]["rmse_analysis"], ds["rmse_analysis"].values, rtol=1e-9)
    np.testing.assert_allclose(data["scores"]["rmse_filter"], ds["rmse_filter"].values, rtol=1e-9)
    assert data["parameters"]["F"]["truth"] == 8.0
    rows = data["maps"]["windows"]
    error = np.asarray(data["maps"]["fields"]["x"]["error"])
    np.testing.assert_allclose(np.sqrt((error**2).mean(axis=1)), ds["rmse_analysis"].values[rows], rtol=1e-9)


def test_report_reads_only_committed_windows(work, cli_env, tmp_path):
    """A store whose writer is mid-commit (arrays grown, consolidated metadata not yet) reads as before."""
    lines = (work / "obs.csv").read_text().splitlines()
    (tmp_path / "first.csv").write_text("\n".join(lines[: 1 + 40 * 20]) + "\n")
    shutil.copytree(work / "truth.zarr", tmp_path / "truth.zarr")
    args = ("--model", "lorenz96", "-c", ROOT / "configs" / "lorenz96_estimate_F.toml", "-q", "--out", "an.zarr")
    levda("assimilate", "first.csv", *args, env=cli_env, cwd=tmp_path)
    committed = (tmp_path / "an.zarr" / ".zmetadata").read_bytes()
    levda("report", "an.zarr", "--out", "before", env=cli_env, cwd=tmp_path)
    shutil.copy(work / "obs.csv", tmp_path / "all.csv")
    levda("assimilate", "all.csv", *args, env=cli_env, cwd=tmp_path)
    (tmp_path / "an.zarr" / ".zmetadata").write_bytes(committed)  # as a reader sees it mid-commit
    levda("report", "an.zarr", "--out", "during", env=cli_env, cwd=tmp_path)
    before = strict_json((tmp_path / "before" / "report.json").read_text())
    during = strict_json((tmp_path / "during" / "report.json").read_text())
    assert before["n_windows"] == during["n_windows"] == 20
    assert before["scores"] == during["scores"] and before["innovations"] == during["innovations"]


def test_report_refusals(work, cli_env, tmp_path):
    missing = levda("report", tmp_path / "nope.zarr", "--out", tmp_path / "r", env=cli_env, cwd=work, check=False)
    assert missing.returncode == 5 and "does not exist" in missing.stderr
    foreign = levda("report", "truth.zarr", "--out", tmp_path / "r", env=cli_env, cwd=work, check=False)
    assert foreign.returncode == 5 and "not a levda analysis store" in foreign.stderr
    maps = levda("report", "an.zarr", "--out", tmp_path / "r", "--maps", "first", env=cli_env, cwd=work, check=False)
    assert maps.returncode == 2 and "--maps" in maps.stderr
    assert not (tmp_path / "r").exists()


def _l96_rk4(x, F, dt, n):
    def f(x):
        return (np.roll(x, -1, -1) - np.roll(x, 2, -1)) * np.roll(x, 1, -1) - x + F[:, None]
    for _ in range(n):
        k1 = f(x)
        k2 = f(x + dt / 2 * k1)
        k3 = f(x + dt / 2 * k2)
        k4 = f(x + dt * k3)
        x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def test_forecast_follows_the_model_from_the_filter_analysis(work, cli_env, strict_summary):
    (work / "points.csv").write_text("name,site\nfive,5\ntwelve,12\n")
    proc = levda("forecast", "an.zarr", "--lead", "0.2", "--every", "0.05", "--out", "fc.zarr", "--members",
                 "--points", "points.csv", "--window", "-2", "--json", env=cli_env, cwd=work)
    result = strict_summary(proc.stdout, "forecast")
    assert result["written"] and result["frames"] == 5
    ds, fc = xr.open_zarr(work / "an.zarr"), xr.open_zarr(work / "fc.zarr")
    last = ds.isel(window=-2)
    assert fc["time"].values[0] == last["window_end"].values
    assert fc["time"].values[-1] - fc["time"].values[0] == np.timedelta64(24, "h")  # 0.2 x 5 days
    assert fc.attrs["Conventions"].startswith("CF") and fc["forecast_period"].attrs["standard_name"] == "forecast_period"
    # lead 0 is the store's filter analysis
    np.testing.assert_allclose(fc["x_mean"].values[0], last["x_filter_mean"].values, rtol=1e-12)
    np.testing.assert_allclose(fc["x_spread"].values[0], last["x_filter_spread"].values, rtol=1e-12)
    # later leads: each member by its own F, as an independent RK4 integration of Lorenz-96 gives
    filt = last["filter"].values
    expected = _l96_rk4(filt[:, :40], filt[:, 40], 0.05, 4)
    np.testing.assert_allclose(fc["x_members"].values[-1], expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(float(fc["F"]), filt[:, 40].mean(), rtol=1e-12)
    # at points on the grid: the grid values themselves
    np.testing.assert_allclose(fc["x_points_mean"].sel(point="twelve").values, fc["x_mean"].sel(site=12).values,
                               rtol=1e-12)
    # the same request again: nothing to do; another one: refused without --overwrite
    again = strict_json(levda("forecast", "an.zarr", "--lead", "0.2", "--every", "0.05", "--out", "fc.zarr",
                              "--members", "--points", "points.csv", "--window", "-2", "--json",
                              env=cli_env, cwd=work).stdout)
    assert again["written"] is False
    other = levda("forecast", "an.zarr", "--lead", "6h", "--out", "fc.zarr", env=cli_env, cwd=work, check=False)
    assert other.returncode == 5 and "--overwrite" in other.stderr
    replaced = strict_json(levda("forecast", "an.zarr", "--lead", "6h", "--out", "fc.zarr", "--overwrite", "--json",
                                 env=cli_env, cwd=work).stdout)
    assert replaced["frames"] == 2 and xr.open_zarr(work / "fc.zarr").sizes["time"] == 2


@pytest.mark.parametrize("args,code,needle", [
    (("--lead", "2 weeks"), 2, "--lead"),
    (("--lead", "6h", "--every", "0.03"), 2, "whole number of model steps"),
    (("--lead", "7h"), 2, "whole number of output intervals"),
    (("--lead", "6h", "--window", "40"), 2, "holds 40 window"),
    (("--lead", "6h", "--points", "bad_points.csv"), 2, "line 3"),
])
def test_forecast_refusals(work, cli_env, args, code, needle):
    (work / "bad_points.csv").write_text("name,site\na,1\nb,north\n")
    proc = levda("forecast", "an.zarr", "--out", "refused.zarr", *args, env=cli_env, cwd=work, check=False)
    assert proc.returncode == code and needle in proc.stderr, proc.stderr
    assert not (work / "refused.zarr").exists()

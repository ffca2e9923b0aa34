"""The real command line in subprocesses: simulate -> observe -> assimilate -> xarray, resume,
and every bad-input case with its exit code and no store written."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from clirun import LEVDA, levda

CONFIG = Path(__file__).parents[1] / "configs" / "lorenz96.toml"


@pytest.fixture(scope="module")
def work(tmp_path_factory, cli_env):
    d = tmp_path_factory.mktemp("cli")
    levda("simulate", "lorenz96", "--out", "truth.zarr", "--duration", "2", "--seed", "3", env=cli_env, cwd=d)
    levda("observe", "truth.zarr", "--out", "obs.csv", "--seed", "1", env=cli_env, cwd=d)
    levda("observe", "truth.zarr", "--out", "obs.nc", "--seed", "1", env=cli_env, cwd=d)
    levda("observe", "truth.zarr", "--out", "obs_ioda.nc", "--format", "ioda", "--seed", "1", env=cli_env, cwd=d)
    return d


def test_help_version_and_exit_codes_documented(cli_env, tmp_path):
    out = levda("--help", env=cli_env, cwd=tmp_path).stdout
    assert "assimilate" in out and "Exit codes" in out
    assert levda("--version", env=cli_env, cwd=tmp_path).stdout.startswith("levda ")


def test_simulate_writes_cf_store(work):
    ds = xr.open_zarr(work / "truth.zarr")
    assert ds["x"].dims == ("trajectory", "time", "site")
    assert ds.sizes["time"] == 41 and ds.sizes["site"] == 40
    assert np.issubdtype(ds["time"].dtype, np.datetime64)
    assert ds["time"].values[1] - ds["time"].values[0] == np.timedelta64(6, "h")
    assert float(ds["F"][0]) == 8.0


def test_end_to_end_store_contents(work, cli_env, strict_summary):
    proc = levda("assimilate", "obs.csv", "--model", "lorenz96", "-c", CONFIG, "--out", "an.zarr",
                 "--truth", "truth.zarr", "--json", env=cli_env, cwd=work)
    summary = strict_summary(proc.stdout, "assimilate")  # strict JSON, valid against the shipped schema
    assert summary["windows_run"] == 40 and summary["n_obs_assimilated"] == 1600
    first = summary["windows"][0]
    for key in ("start", "end", "cost_initial", "cost_final", "iterations", "n_obs", "rmse", "spread"):
        assert key in first
    assert first["start"] == "2000-01-01T00:00:00Z" and first["end"] == "2000-01-01T06:00:00Z"
    assert all(w["cost_final"] <= w["cost_initial"] for w in summary["windows"])

    ds = xr.open_zarr(work / "an.zarr")
    assert ds.sizes["window"] == 40 and ds.sizes["member"] == 20
    assert ds["analysis"].shape == (40, 20, 40)
    assert np.issubdtype(ds["window_start"].dtype, np.datetime64)
    assert (ds["n_obs"].values == 40).all()
    assert ds["x_analysis_mean"].dims == ("window", "site")
    rmse = ds["rmse_analysis"].values
    assert np.isfinite(rmse).all() and np.isfinite(ds["rmse_filter"].values).all()
    assert rmse[-10:].mean() < rmse[0]  # the analysis closes in on the truth from a climatological start
    np.testing.assert_allclose(ds["x_analysis_mean"].values, ds["analysis"].values.mean(axis=1), rtol=1e-12)
    # Observation-space feedback: O-A smaller than O-B, and consistent with the stored H(x).
    omb = ds["obs_value"] - ds["hofx_background"]
    oma = ds["obs_value"] - ds["hofx_analysis"]
    assert float((oma**2).mean()) < float((omb**2).mean())
    np.testing.assert_allclose(np.sqrt((oma**2).mean("obs")).values, ds["oma_rms"].values[:, 0], rtol=1e-10)
    assert json.loads(ds.attrs["config"])["ensemble"]["size"] == 20
    assert "levda assimilate" in ds.attrs["command"]
    # calibration in the summary: RMS spread over RMS error across the windows, and the mean of the ratios
    spread = ds["spread_analysis"].values
    assert summary["spread_skill"] == pytest.approx(np.sqrt(np.mean(spread**2) / np.mean(rmse**2)), rel=1e-9)
    assert summary["mean_spread_skill"] == pytest.approx(np.mean(spread / rmse), rel=1e-9)
    np.testing.assert_allclose(ds["spread_skill"].values, spread / rmse, rtol=1e-12)
    # a run whose spread is far from its error against the truth says so (here: a cold start's first windows)
    ratio = summary["spread_skill"]
    assert ("dispersive here" in proc.stderr) == (not 0.5 <= ratio <= 2), (ratio, proc.stderr)


@pytest.mark.parametrize("other", ["obs.nc", "obs_ioda.nc"])
def test_netcdf_ioda_and_csv_inputs_agree(work, cli_env, other):
    a = levda("assimilate", other, "--model", "lorenz96", "--out", f"from_{other}.zarr", "--json", "-q",
              "--set", "window.length=0.5", env=cli_env, cwd=work)
    b = levda("assimilate", "obs.csv", "--model", "lorenz96", "--out", f"from_csv_{other}.zarr", "--json", "-q",
              "--set", "window.length=0.5", env=cli_env, cwd=work)
    wa, wb = json.loads(a.stdout)["windows"], json.loads(b.stdout)["windows"]
    assert len(wa) == 4 and [w["cost_final"] for w in wa] == pytest.approx([w["cost_final"] for w in wb], rel=1e-12)


def test_resume_equals_one_run(work, cli_env, strict_summary):
    lines = (work / "obs.csv").read_text().splitlines()
    half = work / "obs_first.csv"
    half.write_text("\n".join(lines[: 1 + 40 * 20]) + "\n")
    args = ("--model", "lorenz96", "-q", "--set", "window.length=0.2", "--set", "window.shift=0.1")
    levda("assimilate", "obs.csv", "--out", "whole.zarr", *args, env=cli_env, cwd=work)
    levda("assimilate", half.name, "--out", "parts.zarr", *args, env=cli_env, cwd=work)
    assert xr.open_zarr(work / "parts.zarr").sizes["window"] == 9  # windows end at 0.2 + 0.1 k
    proc = levda("assimilate", "obs.csv", "--out", "parts.zarr", *args, "--json", env=cli_env, cwd=work)
    summary = strict_summary(proc.stdout, "assimilate")
    assert summary["resumed_after"] == 9 and summary["windows_in_store"] == 19
    assert summary["rejected"] == {"already_assimilated": 800}
    again = json.loads(levda("assimilate", "obs.csv", "--out", "parts.zarr", *args, "--json",
                             env=cli_env, cwd=work).stdout)
    assert again["windows_run"] == 0  # cron calling again with nothing new: a no-op
    whole, parts = xr.open_zarr(work / "whole.zarr"), xr.open_zarr(work / "parts.zarr")
    np.testing.assert_allclose(parts["analysis"].values, whole["analysis"].values, rtol=0, atol=1e-9)


BAD = {
    "malformed row": ("2000-01-01T06:00:00Z,3.0,x,1.5\n", "line 3", "malformed row"),
    "unparsable number": ("2000-01-01T06:00:00Z,3.0,x,abc,1.0\n", "line 3", "not a number"),
    "nan value": ("2000-01-01T06:00:00Z,3.0,x,nan,1.0\n", "line 3", "NaN"),
    "zero error": ("2000-01-01T06:00:00Z,3.0,x,1.0,0.0\n", "line 3", "must be positive"),
    "negative error": ("2000-01-01T06:00:00Z,3.0,x,1.0,-2.0\n", "line 3", "must be positive"),
    "unknown variable": ("2000-01-01T06:00:00Z,3.0,temperature,1.0,1.0\n", "line 3", "unknown variable 'temperature'"),
    "outside domain": ("2000-01-01T06:00:00Z,47.5,x,1.0,1.0\n", "line 3", "outside the domain"),
    "outside windows": ("1999-12-31T18:00:00Z,3.0,x,1.0,1.0\n", "line 3", "outside every window"),
    "bad time": ("yesterday,3.0,x,1.0,1.0\n", "line 3", "cannot read time"),
    "duplicate": ("2000-01-01T06:00:00Z,1.0,x,2.5,1.0\n", "line 3", "duplicate of"),
    "mixed time zones": ("2000-01-01T08:00:00+02:00,3.0,x,1.0,1.0\n", "line 3", "zone +02:00"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_observations_refused_without_store(case, tmp_path, cli_env):
    row, where, what = BAD[case]
    path = tmp_path / "bad.csv"
    path.write_text("time,site,variable,value,error\n2000-01-01T06:00:00Z,1.0,x,2.0,1.0\n" + row)
    proc = levda("assimilate", path.name, "--model", "lorenz96", "--out", "an.zarr", env=cli_env,
                 cwd=tmp_path, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "bad.csv" in proc.stderr and where in proc.stderr and what in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".an.zarr.lock")) == ["bad.csv"]


def test_reject_mode_counts_bad_records(tmp_path, cli_env):
    path = tmp_path / "obs.csv"
    path.write_text("time,site,variable,value,error\n2000-01-01T06:00:00Z,1.0,x,2.0,1.0\n"
                    "2000-01-01T06:00:00Z,2.0,x,nan,1.0\n2000-01-01T06:00:00Z,2.0,y,1.0,1.0\n")
    proc = levda("assimilate", path.name, "--model", "lorenz96", "--out", "an.zarr", "--json", "-q",
                 "--set", 'observations.on_invalid="reject"', "--set", "ensemble.spinup=1.0",
                 env=cli_env, cwd=tmp_path)
    summary = json.loads(proc.stdout)
    assert summary["rejected"] == {"nan": 1, "unknown_variable": 1} and summary["n_obs_assimilated"] == 1
    assert int(xr.open_zarr(tmp_path / "an.zarr")["n_rejected"][0]) == 2


def test_locked_store(work, cli_env):
    from filelock import FileLock

    with FileLock(work / ".locked.zarr.lock"):
        proc = levda("assimilate", "obs.csv", "--model", "lorenz96", "--out", "locked.zarr", env=cli_env,
                     cwd=work, check=False)
    assert proc.returncode == 6 and "another levda process" in proc.stderr
    assert not (work / "locked.zarr").exists()


def test_damaged_store(work, cli_env):
    bad = work / "damaged.zarr"
    bad.mkdir()
    (bad / "junk.txt").write_text("not zarr")
    proc = levda("assimilate", "obs.csv", "--model", "lorenz96", "--out", bad.name, env=cli_env, cwd=work,
                 check=False)
    assert proc.returncode == 5 and "damaged.zarr" in proc.stderr
    assert (bad / "junk.txt").read_text() == "not zarr"  # nothing of the user's is touched


@pytest.mark.parametrize("args,needle", [
    (("--set", "window.lenght=1"), "lenght"),
    (("--set", "window.length=0.07"), "whole number of model steps"),
    (("--ensemble-size", "1"), "ensemble.size"),
    (("-c", "missing.toml"), "does not exist"),
    (("--set", "parameters.G.value=1"), "[parameters] names ['G']"),  # brackets are text, not rich markup
])
def test_config_errors(work, cli_env, args, needle):
    proc = levda("assimilate", "obs.csv", "--model", "lorenz96", "--out", "cfg.zarr", *args, env=cli_env,
                 cwd=work, check=False)
    assert proc.returncode == 2 and needle in proc.stderr
    assert not (work / "cfg.zarr").exists()


def test_missing_observation_file(tmp_path, cli_env):
    proc = levda("assimilate", "nowhere.csv", "--model", "lorenz96", "--out", "an.zarr", env=cli_env,
                 cwd=tmp_path, check=False)
    assert proc.returncode == 3 and "nowhere.csv" in proc.stderr


def test_divergence_keeps_finished_windows(tmp_path, cli_env):
    path = tmp_path / "obs.csv"
    path.write_text("time,site,variable,value,error\n2000-01-01T06:00:00Z,1.0,x,2.0,1.0\n"
                    "2000-01-01T12:00:00Z,1.0,x,1e300,1.0\n")
    proc = levda("assimilate", path.name, "--model", "lorenz96", "--out", "an.zarr", "--set", "ensemble.spinup=1.0",
                 env=cli_env, cwd=tmp_path, check=False)
    assert proc.returncode == 7 and "window 1" in proc.stderr and "not finite" in proc.stderr
    assert xr.open_zarr(tmp_path / "an.zarr").sizes["window"] == 1


def test_sigterm_commits_finished_windows_and_resumes(tmp_path, cli_env):
    """A batch scheduler's SIGTERM mid-run: exit 130, whole windows kept, the next run completes."""
    import signal
    import time

    levda("simulate", "lorenz96", "--out", "t.zarr", "--duration", "20", env=cli_env, cwd=tmp_path)
    levda("observe", "t.zarr", "--out", "o.csv", env=cli_env, cwd=tmp_path)  # every site: a well-posed filter
    args = [*LEVDA, "assimilate", "o.csv", "--model", "lorenz96", "--out", "an.zarr", "-q",
            "--set", "output.commit_seconds=0"]
    proc = subprocess.Popen(args, env=cli_env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "an.zarr").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 130, err
    n = xr.open_zarr(tmp_path / "an.zarr").sizes["window"]
    assert 0 < n < 400 and "stopped after window" in err
    done = json.loads(levda("assimilate", "o.csv", "--model", "lorenz96", "--out", "an.zarr", "-q", "--json",
                            env=cli_env, cwd=tmp_path).stdout)
    assert done["resumed_after"] == n and done["windows_in_store"] == 400


def test_obs_check(work, cli_env, tmp_path):
    ok = levda("obs", "check", "obs_ioda.nc", "--model", "lorenz96", "--json", env=cli_env, cwd=work)
    summary = json.loads(ok.stdout)
    assert summary["records"] == 1600 and summary["valid"] == 1600 and summary["problems"] == {}
    assert summary["variables"]["x"]["count"] == 1600 and summary["coordinates"]["site"] == {"min": 0.0, "max": 39.0}
    assert summary["time_first"] == "2000-01-01T06:00:00Z" and summary["distinct_times"] == 40
    # The CSV and the IODA file hold the same observations: together, every second one is a duplicate.
    both = levda("obs", "check", "obs.csv", "obs_ioda.nc", "--json", env=cli_env, cwd=work, check=False)
    assert both.returncode == 3 and json.loads(both.stdout)["problems"]["duplicate"]["count"] == 1600
    bad = tmp_path / "bad.csv"
    bad.write_text("time,site,variable,value,error\n2000-01-01T06:00:00Z,1,x,1,1\n2000-01-01T06:00:00Z,1,x,2,1\n"
                   "2000-01-01T06:00:00Z,2,x,1,-1\n2000-01-01T06:00:00Z,50,x,1,1\n")
    proc = levda("obs", "check", bad, "--model", "lorenz96", env=cli_env, cwd=tmp_path, check=False)
    assert proc.returncode == 3
    for needle in ("duplicate: 1 (first: ", "nonpositive_error: 1", "outside_domain: 1", "bad.csv, line 5"):
        assert needle in proc.stderr


def test_the_command_process_pauses_the_collector_and_exits_with_its_code(tmp_path, cli_env):
    """levda_cli.process: the command pauses Python's cyclic collector for its start-up and resumes it
    (everything alive frozen) once settled; importing levda_cli leaves the collector alone; the process
    ends with the command's exit code, its threads done and its output flushed."""
    import sys

    probe = ("import gc, sys\n"
             "import levda_cli, levda_cli.cli, levda_cli.cycling\n"
             "assert gc.isenabled() and gc.get_freeze_count() == 0  # a library import changes nothing\n"
             "from levda_cli import process\n"
             "process.pause(); assert not gc.isenabled()\n"
             "process.settle(); assert gc.isenabled() and gc.get_freeze_count() > 0\n"
             "process.settle(); assert gc.isenabled()\n"
             "import threading, time\n"
             "threading.Thread(target=lambda: (time.sleep(0.5), print('thread done', flush=True))).start()\n"
             "print('x' * 100000)  # buffered: flushed by exit_now\n"
             "process.exit_now(7)\n")
    proc = subprocess.run([sys.executable, "-c", probe], env=cli_env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout.startswith("x" * 100000) and proc.stdout.rstrip().endswith("thread done")
    bad = tmp_path / "bad.csv"
    bad.write_text("time,site,variable,value,error\n2000-01-01T06:00:00Z,3,x,1.0,-1\n")
    proc = subprocess.run([*LEVDA, "obs", "check", str(bad)], env=cli_env, cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 3 and "bad.csv" in proc.stderr and "Traceback" not in proc.stderr

"""The shipped examples run as documented: the cron cycle script over several cycles gives the
store of one run over all the files, and sets aside a file levda refuses."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr

REPO = Path(__file__).parents[1]
SCRIPT = REPO / "examples" / "cron" / "levda-cycle.sh"


def test_cron_cycles_equal_one_run(tmp_path, cli_env):
    lines = (REPO / "sample_data" / "lorenz96_obs.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    times = sorted({r.split(",")[0] for r in rows})[:24]  # 24 six-hourly windows, 4 cycles of 6
    files = []
    for c in range(4):
        cycle_times = set(times[6 * c:6 * (c + 1)])
        path = tmp_path / f"obs_{c}.csv"
        path.write_text("\n".join([header, *(r for r in rows if r.split(",")[0] in cycle_times)]) + "\n")
        files.append(path)
    (tmp_path / "bad.csv").write_text(header + "\n2000-01-09T00:00:00Z,3.0,x,nan,1.0\n")
    env = dict(cli_env, LEVDA=f"{sys.executable} -m levda_cli", LEVDA_CONFIG=str(REPO / "configs" / "lorenz96.toml"),
               LEVDA_MODEL="lorenz96", LEVDA_STORE="cycled.zarr", LEVDA_LOG_DIR="logs")
    for i, path in enumerate([*files[:2], tmp_path / "bad.csv", *files[2:]]):
        proc = subprocess.run(["bash", str(SCRIPT), path.name], cwd=tmp_path, env=env, capture_output=True, text=True)
        if path.name == "bad.csv":
            assert proc.returncode == 3 and "refused" in proc.stdout, proc.stdout + proc.stderr
            assert (tmp_path / "logs" / "rejected" / "bad.csv").exists() and not path.exists()
        else:
            assert proc.returncode == 0 and "window(s) added" in proc.stdout, proc.stdout + proc.stderr
    assert len(list((tmp_path / "logs").glob("summary-*.json"))) == 5
    whole = subprocess.run([sys.executable, "-m", "levda_cli", "assimilate", *[f.name for f in files], "--model",
                            "lorenz96", "-c", str(REPO / "configs" / "lorenz96.toml"), "--out", "whole.zarr", "-q"],
                           cwd=tmp_path, env=cli_env, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    cycled, ref = xr.open_zarr(tmp_path / "cycled.zarr"), xr.open_zarr(tmp_path / "whole.zarr")
    assert cycled.sizes["window"] == ref.sizes["window"] == 24
    for name in ("analysis", "filter", "x_analysis_mean", "cost_final", "hofx_analysis"):
        assert np.array_equal(cycled[name].values, ref[name].values, equal_nan=True), name
    assert os.access(SCRIPT, os.X_OK)


SBATCH = REPO / "examples" / "slurm" / "levda-assimilate.sbatch"


def test_slurm_job_requeues_at_the_time_limit_and_resumes(tmp_path, cli_env):
    """The batch script as Slurm runs it (bash; a recording `scontrol` on PATH): SIGTERM mid-run -> levda
    commits and exits 130 -> the job requeues itself; the next run completes the store and reports it."""
    run = lambda *a: subprocess.run([sys.executable, "-m", "levda_cli", *a], cwd=tmp_path, env=cli_env,  # noqa: E731
                                    capture_output=True, text=True, check=True)
    run("simulate", "lorenz96", "--out", "truth.zarr", "--duration", "60", "--seed", "4")
    run("observe", "truth.zarr", "--out", "obs.nc", "--seed", "4")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/usr/bin/env bash\necho "$@" >> {tmp_path / "scontrol.log"}\n')
    (bin_dir / "scontrol").chmod(0o755)
    env = dict(cli_env, LEVDA=f"{sys.executable} -m levda_cli", LEVDA_CONFIG=str(REPO / "configs" / "lorenz96.toml"),
               LEVDA_MODEL="lorenz96", LEVDA_OBS="obs.nc", LEVDA_STORE="an.zarr",
               LEVDA_ARGS="--set output.commit_seconds=0.5", SLURM_JOB_ID="4242", SLURM_CPUS_PER_TASK="1",
               PATH=f"{bin_dir}:{os.environ['PATH']}")
    job = subprocess.Popen(["bash", str(SBATCH)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    import time

    deadline = time.monotonic() + 120
    while not (tmp_path / "an.zarr").exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(15)  # Slurm's --signal=B:TERM goes to the batch shell
    out, err = job.communicate(timeout=120)
    assert job.returncode == 130, out + err
    assert "requeued" in out and (tmp_path / "scontrol.log").read_text().split() == ["requeue", "4242"]
    stopped_at = xr.open_zarr(tmp_path / "an.zarr").sizes["window"]
    assert 0 < stopped_at < 1200
    env.pop("SLURM_JOB_ID")
    second = subprocess.run(["bash", str(SBATCH)], cwd=tmp_path, env=dict(env, LEVDA_REPORT="report"),
                            capture_output=True, text=True)
    assert second.returncode == 0, second.stdout + second.stderr
    assert xr.open_zarr(tmp_path / "an.zarr").sizes["window"] == 1200
    assert (tmp_path / "report" / "index.html").exists()

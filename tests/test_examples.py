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


MULTI = REPO / "examples" / "slurm" / "assimilate.sbatch"
FAKE_SRUN = """#!/usr/bin/env bash
# srun on one host: NTASKS copies of the command with Slurm's task environment (JAX reads it)
rc=0; pids=()
for ((i = 0; i < NTASKS; i++)); do
    SLURM_NTASKS=$NTASKS SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_STEP_NODELIST=localhost \\
        SLURM_STEP_NUM_NODES=1 "$@" 2> "task$i.err" &
    pids+=($!); echo $! >> tasks.pids
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null' TERM
for p in "${pids[@]}"; do
    while true; do wait "$p"; r=$?; kill -0 "$p" 2>/dev/null || break; done
    (( r > rc )) && rc=$r
done
exit $rc
"""


def test_multi_process_slurm_job_detects_slurm_stops_together_and_resumes(tmp_path, cli_env):
    """examples/slurm/assimilate.sbatch with a one-host `srun` giving two tasks Slurm's environment: JAX
    finds the coordinator, process count and index from it; SIGTERM to one task stops both after the
    same window (exit 130, requeued); the resubmitted job completes the store with one JSON summary."""
    import json
    import random

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "scontrol").write_text(f'#!/usr/bin/env bash\necho "$@" >> {tmp_path / "scontrol.log"}\n')
    for f in ("srun", "scontrol"):
        (bin_dir / f).chmod(0o755)
    job_id = str(random.randrange(10_000, 99_999))  # JAX's coordinator port is derived from it
    lines = (REPO / "sample_data" / "lorenz96_obs.csv").read_text().splitlines()
    (tmp_path / "obs.csv").write_text("\n".join(lines[: 1 + 40 * 60]) + "\n")  # the first 60 windows
    env = dict(cli_env, LEVDA=f"{sys.executable} -m levda_cli", LEVDA_CONFIG=str(REPO / "configs" / "lorenz96.toml"),
               LEVDA_MODEL="lorenz96", LEVDA_OBS="obs.csv", LEVDA_STORE="an.zarr",
               LEVDA_ARGS="--set output.commit_seconds=0", SLURM_JOB_ID=job_id, SLURM_CPUS_PER_TASK="1", NTASKS="2",
               PATH=f"{bin_dir}:{os.environ['PATH']}")
    job = subprocess.Popen(["bash", str(MULTI)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    import time

    deadline = time.monotonic() + 180
    while not (tmp_path / "an.zarr" / ".zmetadata").exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = (tmp_path / "tasks.pids").read_text().split()
    os.kill(int(pids[1]), 15)  # the signal reaches one task (process 1) first: both stop after the same window
    out, err = job.communicate(timeout=180)
    errs = [(tmp_path / f"task{i}.err").read_text() for i in (0, 1)]
    assert job.returncode == 130, out + err + errs[0][-2000:] + errs[1][-2000:]
    assert "requeued" in out and (tmp_path / "scontrol.log").read_text().split() == ["requeue", job_id]
    stopped_at = xr.open_zarr(tmp_path / "an.zarr").sizes["window"]
    assert 0 < stopped_at < 60
    (tmp_path / "tasks.pids").unlink()
    second = subprocess.run(["bash", str(MULTI)], cwd=tmp_path, env=dict(env, SLURM_JOB_ID=str(int(job_id) + 1),
                                                                         LEVDA_ARGS=""), capture_output=True, text=True)
    assert second.returncode == 0, second.stdout + second.stderr + (tmp_path / "task0.err").read_text()[-2000:]
    summary = json.loads((tmp_path / f"levda-summary-{int(job_id) + 1}.json").read_text())
    assert summary["processes"] == 2 and summary["resumed_after"] == stopped_at
    assert xr.open_zarr(tmp_path / "an.zarr").sizes["window"] == 60

"""Faults a cron job meets: a full disk or a read-only store mid-run, damaged chunks, gaps of any
length, times far in the future, and runs split (or killed) anywhere that must equal one run."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from levda_cli.cli.main import app

REPO = Path(__file__).parents[1]
CONFIG = REPO / "configs" / "lorenz96.toml"
FAST = ["--set", "ensemble.spinup=1.0", "--set", "ensemble.size=8", "-q"]


def _obs(path: Path, hours: list[int], sites=range(40), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    rows = ["time,site,variable,value,error"]
    for h in hours:
        t = np.datetime64("2000-01-01T00:00:00") + np.timedelta64(h, "h")
        rows += [f"{t}Z,{s}.0,x,{rng.normal(2, 3):.6f},1.0" for s in sites]
    path.write_text("\n".join(rows) + "\n")
    return path


def _json(output: str) -> dict:
    """The --json summary among the human lines (the test runner mixes stdout and stderr), parsed
    strictly: a bare NaN or Infinity (not JSON) fails the test."""

    def refuse(name):
        raise AssertionError(f"--json printed {name}, which is not JSON")

    return json.loads(next(line for line in output.splitlines() if line.startswith('{"')), parse_constant=refuse)


def _run(args, cwd, env):
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, [str(a) for a in args], env={"LEVDA_CACHE_DIR": env["LEVDA_CACHE_DIR"]})
    finally:
        os.chdir(old)


def test_full_disk_mid_run_keeps_committed_windows(tmp_path, cli_env, monkeypatch):
    """An OSError (ENOSPC) on the third commit: exit 5, the store keeps its two committed windows and
    opens; the same command after space is freed finishes and equals one uninterrupted run."""
    from levda_cli.io import store as store_mod

    obs = _obs(tmp_path / "obs.csv", [6 * k for k in range(1, 6)])
    args = ["assimilate", obs, "--model", "lorenz96", "-c", CONFIG, *FAST, "--set", "output.commit_seconds=0"]
    real = store_mod.AnalysisStore._append
    calls = []

    def failing(self, windows):
        calls.append(len(windows))
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path / "analysis"))
        return real(self, windows)

    monkeypatch.setattr(store_mod.AnalysisStore, "_append", failing)
    result = _run([*args, "--out", "an.zarr"], tmp_path, cli_env)
    assert result.exit_code == 5, result.output
    assert "No space left on device" in result.output and "keeps its 2 committed window(s)" in result.output
    assert xr.open_zarr(tmp_path / "an.zarr").sizes["window"] == 2
    monkeypatch.setattr(store_mod.AnalysisStore, "_append", real)
    assert _run([*args, "--out", "an.zarr"], tmp_path, cli_env).exit_code == 0
    assert _run([*args, "--out", "whole.zarr"], tmp_path, cli_env).exit_code == 0
    a, b = xr.open_zarr(tmp_path / "an.zarr"), xr.open_zarr(tmp_path / "whole.zarr")
    assert a.sizes["window"] == 5 and np.array_equal(a["analysis"].values, b["analysis"].values)


def test_a_real_full_disk(tmp_path, cli_env):
    """The same on a 256 KiB tmpfs (only where this process may mount one: root on Linux)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a size-limited tmpfs here")
    try:
        obs = _obs(tmp_path / "obs.csv", [6 * k for k in range(1, 200)])
        result = _run(["assimilate", obs, "--model", "lorenz96", "-c", CONFIG, *FAST, "--set",
                       "output.commit_seconds=0", "--out", mnt / "an.zarr"], tmp_path, cli_env)
        assert result.exit_code == 5, result.output
        assert "No space left on device" in result.output or "cannot create" in result.output
        if (mnt / "an.zarr").exists():
            n = xr.open_zarr(mnt / "an.zarr").sizes["window"]
            assert n >= 1  # every committed window readable
    finally:
        # a busy mount (a file still closing) is retried, then detached lazily: a mount left under the base
        # temporary folder would make pytest's own clean-up of it fail in a later session
        for _ in range(10):
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_read_only_store_refused_before_any_work(tmp_path, cli_env, monkeypatch):
    """A store that cannot be written is refused at the start with exit 5 (simulated for root, whom
    permissions do not stop)."""
    obs = _obs(tmp_path / "obs.csv", [6, 12])
    args = ["assimilate", obs, "--model", "lorenz96", "-c", CONFIG, *FAST, "--out", "an.zarr"]
    assert _run(args, tmp_path, cli_env).exit_code == 0
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode == os.W_OK and "an.zarr" in str(p)
                        else real_access(p, mode))
    later = _obs(tmp_path / "later.csv", [18])
    result = _run(["assimilate", later, *args[2:]], tmp_path, cli_env)
    assert result.exit_code == 5 and "not writable" in result.output


def test_damaged_last_window_refused_on_resume(tmp_path, cli_env):
    obs = _obs(tmp_path / "obs.csv", [6, 12])
    args = ["--model", "lorenz96", "-c", CONFIG, *FAST, "--out", "an.zarr"]
    assert _run(["assimilate", obs, *args], tmp_path, cli_env).exit_code == 0
    chunk = tmp_path / "an.zarr" / "filter" / "0.0.0"  # both windows share one chunk
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x10  # one flipped bit: the Zstandard checksum catches it
    chunk.write_bytes(bytes(data))
    later = _obs(tmp_path / "later.csv", [18])
    result = _run(["assimilate", later, *args], tmp_path, cli_env)
    assert result.exit_code == 5 and "'filter'" in result.output and "window 1" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("version,needle", [(1, "levda <= 0.3.1"), (2, "levda 0.4")])
def test_older_store_layouts_refused_with_a_message(tmp_path, cli_env, version, needle):
    """Store v3 (0.5) added per-window timing arrays; a v1 or v2 store is refused, not half-appended."""
    obs = _obs(tmp_path / "obs.csv", [6])
    args = ["--model", "lorenz96", "-c", CONFIG, *FAST, "--out", "an.zarr"]
    assert _run(["assimilate", obs, *args], tmp_path, cli_env).exit_code == 0
    meta_path = tmp_path / "an.zarr" / ".zmetadata"
    meta = json.loads(meta_path.read_text())
    meta["metadata"][".zattrs"]["levda_store_version"] = version
    meta_path.write_text(json.dumps(meta))
    before = sorted((p.name, p.stat().st_size) for p in (tmp_path / "an.zarr").rglob("*"))
    result = _run(["assimilate", _obs(tmp_path / "later.csv", [12]), *args], tmp_path, cli_env)
    assert result.exit_code == 5 and needle in result.output and "Traceback" not in result.output
    assert sorted((p.name, p.stat().st_size) for p in (tmp_path / "an.zarr").rglob("*")) == before


def test_exported_window_programs_are_reused_and_a_damaged_one_rewritten(tmp_path, cli_env):
    """The compiled calls (here several windows per call) are exported into the cache folder once; a
    later run (a cron cycle) loads them instead of tracing, with the same bits as a run without any
    cache; a damaged export file is ignored and written again."""
    obs = _obs(tmp_path / "obs.csv", [6, 12, 18])
    args = ["assimilate", obs, "--model", "lorenz96", "-c", CONFIG, *FAST]
    cache = tmp_path / "cache"
    env = {"LEVDA_CACHE_DIR": str(cache)}
    assert _run([*args, "--out", "a.zarr"], tmp_path, env).exit_code == 0
    exports = sorted((cache / "exports").glob("*.jaxexport"))
    assert {p.name.split("-")[0] for p in exports} == {"window_chunk"}
    stamps = {p: p.stat().st_mtime_ns for p in exports}
    assert _run([*args, "--out", "b.zarr"], tmp_path, env).exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in exports} == stamps  # loaded, not written again
    step_file = next(p for p in exports if p.name.startswith("window_chunk"))
    step_file.write_bytes(b"not an export")
    assert _run([*args, "--out", "c.zarr"], tmp_path, env).exit_code == 0
    assert step_file.read_bytes() != b"not an export"
    assert _run([*args, "--out", "d.zarr"], tmp_path, {"LEVDA_CACHE_DIR": "off"}).exit_code == 0
    ref = xr.open_zarr(tmp_path / "d.zarr")["analysis"].values
    for name in "abc":
        assert np.array_equal(xr.open_zarr(tmp_path / f"{name}.zarr")["analysis"].values, ref), name


def test_gap_is_one_forecast_not_a_window_loop(tmp_path, cli_env):
    """Observations, then nothing for 5,000 windows (about 3.4 years of 6-hourly cycles), then more:
    two analyses, the ensemble forecast across the gap, and the background after it equals the
    stored analysis propagated by the gap."""
    import jax
    import jax.numpy as jnp

    from levda_cli.core import propagate
    from levda_cli.models import model_spec

    obs = _obs(tmp_path / "obs.csv", [6, 6 * 5002])
    t0 = time.perf_counter()
    result = _run(["assimilate", obs, "--model", "lorenz96", "-c", CONFIG, *FAST, "--out", "an.zarr", "--json"],
                  tmp_path, cli_env)
    seconds = time.perf_counter() - t0
    assert result.exit_code == 0, result.output
    summary = _json(result.output)
    assert summary["windows_run"] == 2 and summary["windows_without_observations"] == 5000
    ds = xr.open_zarr(tmp_path / "an.zarr")
    assert ds["window_index"].values.tolist() == [0, 5001]
    spec = model_spec("lorenz96", 40, 0.05)
    from levda_cli.core import Problem

    problem = Problem(spec.dynamics, jnp.asarray([8.0]), ())
    x = jnp.asarray(ds["analysis"].values[0])
    x = jax.jit(lambda x: jax.lax.fori_loop(0, 5001, lambda i, x: propagate(problem, x, 1)[-1], x))(x)
    np.testing.assert_allclose(ds["background"].values[1], np.asarray(x), rtol=0, atol=1e-9)
    print(f"a 5,000-window gap: {seconds:.1f} s")  # timing is a benchmark's job, not a test's


@pytest.mark.parametrize("on_invalid,code,unit", [("error", 3, 432000), ("reject", 0, 432000), ("reject", 0, 20)])
def test_times_far_beyond_the_run_refused(tmp_path, cli_env, on_invalid, code, unit):
    """Years 2100 and 9999 in a 2000 run; with unit 20 s a window lasts 1 s, so year 9999 is window ~2.5e11
    (nothing may be sized by that number)."""
    obs = _obs(tmp_path / "obs.csv", [6, 12])
    with obs.open("a") as f:
        f.write("2100-01-01T00:00:00Z,3.0,x,1.0,1.0\n9999-12-31T00:00:00Z,4.0,x,1.0,1.0\n")
    result = _run(["assimilate", obs, "--model", "lorenz96", "-c", CONFIG, *FAST, "--out", "an.zarr", "--json",
                   "--set", f'observations.on_invalid="{on_invalid}"', "--set", f"time.unit_seconds={unit}"],
                  tmp_path, cli_env)
    assert result.exit_code == code, result.output
    if code:
        assert "max_windows" in result.output and "line 82" in result.output
    else:
        summary = _json(result.output)
        assert summary["rejected"] == {"beyond_horizon": 2} and summary["windows_run"] == 2


@pytest.mark.parametrize("split,per_call", [(3, 0), (11, 0), (7, 4)])
def test_resume_anywhere_equals_one_run_bitwise(tmp_path, cli_env, split, per_call):
    """Windows with different observation counts (so different padding); a run split after any
    window gives bit-for-bit the numbers of one run, with calls of several windows (per_call 0: the
    default, 64; 4: calls that end inside a run of equally padded windows)."""
    rng = np.random.default_rng(5)
    rows = ["time,site,variable,value,error"]
    for k in range(1, 16):
        t = np.datetime64("2000-01-01T00:00:00") + np.timedelta64(6 * k, "h")
        for s in sorted(rng.choice(40, size=int(rng.integers(3, 40)), replace=False)):
            # values drawn from Lorenz-96's climate, not its dynamics: an error that allows it (with error 1 the
            # adaptive inflation rightly blows the ensemble up on such data: exit 7)
            rows.append(f"{t}Z,{s}.0,x,{rng.normal(2, 3):.6f},3.0")
    (tmp_path / "all.csv").write_text("\n".join(rows) + "\n")
    first = [r for r in rows[1:] if r < f"2000-01-{1 + (6 * split) // 24:02d}T{(6 * split) % 24:02d}:00:01Z"]
    (tmp_path / "first.csv").write_text("\n".join([rows[0], *first]) + "\n")
    # N = 20 (the config's): at N = 8 the bits agreed even when the next background came from another
    # compiled program than a resumed run's; at N = 20 they did not
    args = ["--model", "lorenz96", "-c", CONFIG, "--set", "ensemble.spinup=1.0", "-q", "--set", "solver.rotate=true",
            "--set", f"solver.windows_per_call={per_call}"]
    assert _run(["assimilate", "all.csv", *args, "--out", "whole.zarr"], tmp_path, cli_env).exit_code == 0
    assert _run(["assimilate", "first.csv", *args, "--out", "parts.zarr"], tmp_path, cli_env).exit_code == 0
    assert xr.open_zarr(tmp_path / "parts.zarr").sizes["window"] == split
    assert _run(["assimilate", "all.csv", *args, "--out", "parts.zarr"], tmp_path, cli_env).exit_code == 0
    whole, parts = xr.open_zarr(tmp_path / "whole.zarr"), xr.open_zarr(tmp_path / "parts.zarr")
    for name in ("background", "analysis", "filter", "cost_final", "x_analysis_mean", "hofx_analysis"):
        assert np.array_equal(parts[name].values, whole[name].values, equal_nan=True), name


def test_windows_per_call_gives_the_numbers_of_one_window_per_call(tmp_path, cli_env):
    """Several windows per compiled call (lax.scan) and one per call are different programs: the same
    numbers to rounding, the same windows, flags and counts; a gap without observations is crossed
    inside the call as it is between calls."""
    obs = _obs(tmp_path / "obs.csv", [6, 12, 18, 24, 60, 66, 72])  # a gap of 5 empty windows
    runs = {}
    for per_call in (1, 3, 0):
        out = f"an{per_call}.zarr"
        result = _run(["assimilate", obs, "--model", "lorenz96", "-c", CONFIG, *FAST, "--out", out, "--json",
                       "--set", f"solver.windows_per_call={per_call}"], tmp_path, cli_env)
        assert result.exit_code == 0, result.output
        runs[per_call] = (_json(result.output), xr.open_zarr(tmp_path / out))
    one, ds_one = runs[1]
    for per_call in (3, 0):
        summary, ds = runs[per_call]
        assert summary["windows_run"] == one["windows_run"] == 7
        assert summary["windows_without_observations"] == one["windows_without_observations"] == 5
        assert [r["window"] for r in summary["windows"]] == [r["window"] for r in one["windows"]]
        for name in ("background", "analysis", "filter", "x_analysis_mean", "hofx_analysis"):
            np.testing.assert_allclose(ds[name].values, ds_one[name].values, rtol=0, atol=1e-9, err_msg=name)
        for name in ("iterations", "converged", "consistent", "n_obs", "window_index"):
            assert np.array_equal(ds[name].values, ds_one[name].values), name


def test_windows_per_call_refused_where_the_host_decides_between_windows(tmp_path, cli_env):
    obs = _obs(tmp_path / "obs.csv", [6, 12])
    result = _run(["assimilate", obs, "--model", "lorenz96", "-c", CONFIG, *FAST, "--out", "an.zarr",
                   "--set", "solver.windows_per_call=8", "--set", "solver.restart=on"], tmp_path, cli_env)
    assert result.exit_code == 2, result.output
    assert "solver.windows_per_call" in result.output and "solver.restart" in result.output
    assert not (tmp_path / "an.zarr").exists()


def test_resume_check_uses_the_checkpoint_checksum(tmp_path, cli_env):
    """A moved checkpoint resumes; another checkpoint at the same path is refused."""
    sample = REPO / "sample_data"
    shutil.copy(sample / "surrogates" / "tsunami.ckpt", tmp_path / "a.ckpt")
    cfg = REPO / "configs" / "latent_tsunami.toml"
    obs_all = sample / "tsunami_obs.nc"
    from levda_cli.io import observations as obsio
    from levda_cli.io import obsfiles

    obs = obsfiles.read_observations([obs_all])
    first = obs.time <= obs.time.min() + np.timedelta64(1200, "s")
    part = obsio.ObservationSet(time=obs.time[first], coords={c: v[first] for c, v in obs.coords.items()},
                                variable=obs.variable[first], value=obs.value[first], error=obs.error[first],
                                source=obs.source[first], row=obs.row[first])
    obsio.write_csv(part, tmp_path / "first.csv")
    obsio.write_csv(obs, tmp_path / "all.csv")
    args = ["-c", cfg, "-q", "--set", "ensemble.size=8", "--out", "an.zarr"]
    assert _run(["assimilate", "first.csv", "-k", "a.ckpt", *args], tmp_path, cli_env).exit_code == 0
    shutil.move(tmp_path / "a.ckpt", tmp_path / "moved.ckpt")
    shutil.copy(sample / "surrogates" / "kolmogorov.ckpt", tmp_path / "a.ckpt")
    refused = _run(["assimilate", "all.csv", "-k", "a.ckpt", *args], tmp_path, cli_env)
    assert refused.exit_code in (3, 5), refused.output  # another model: its variables differ, or the store's
    result = _run(["assimilate", "all.csv", "-k", "moved.ckpt", *args], tmp_path, cli_env)
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_sigkill_anywhere_then_resume_equals_one_run(tmp_path, cli_env):
    """SIGKILL at 8 random moments of a real CLI run (committing after every window): after each,
    the store opens; resumed to the end, it equals one uninterrupted run bit for bit."""
    obs = _obs(tmp_path / "obs.csv", [6 * k for k in range(1, 121)], seed=3)
    cmd = [sys.executable, "-m", "levda_cli", "assimilate", str(obs), "--model", "lorenz96", "-c", str(CONFIG),
           "--set", "ensemble.spinup=1.0", "-q", "--set", "output.commit_seconds=0"]
    subprocess.run([*cmd, "--out", "whole.zarr"], cwd=tmp_path, env=cli_env, check=True, capture_output=True)
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(8):
        proc = subprocess.Popen([*cmd, "--out", "killed.zarr"], cwd=tmp_path, env=cli_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=float(rng.uniform(2.0, 5.0)))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        if (tmp_path / "killed.zarr").exists():
            part = xr.open_zarr(tmp_path / "killed.zarr")
            n = part.sizes["window"]
            counts.append(n)
            whole = xr.open_zarr(tmp_path / "whole.zarr")
            assert np.array_equal(part["analysis"].values, whole["analysis"].values[:n])  # the committed prefix
    subprocess.run([*cmd, "--out", "killed.zarr"], cwd=tmp_path, env=cli_env, check=True, capture_output=True)
    whole, killed = xr.open_zarr(tmp_path / "whole.zarr"), xr.open_zarr(tmp_path / "killed.zarr")
    assert counts == sorted(counts) and killed.sizes["window"] == 120
    for name in ("background", "analysis", "filter", "cost_final", "x_analysis_mean"):
        assert np.array_equal(killed[name].values, whole[name].values, equal_nan=True), name


def test_unconverged_and_inconsistent_windows_are_reported(tmp_path, cli_env):
    """The sample's observations with their true error (1) fit once the filter has locked on; the same
    values declared 5x more accurate cannot fit (chi2 ~ 25): counted in --json and warned about. A
    one-iteration cap leaves every window unconverged: counted and warned about too."""
    lines = (REPO / "sample_data" / "lorenz96_obs.csv").read_text().splitlines()[: 1 + 40 * 60]
    (tmp_path / "true.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "over.csv").write_text("\n".join([lines[0], *(r.rsplit(",", 1)[0] + ",0.2" for r in lines[1:])]) + "\n")
    args = ["--model", "lorenz96", "-c", CONFIG, "--json"]
    good = _run(["assimilate", "true.csv", *args, "--out", "true.zarr"], tmp_path, cli_env)
    s = _json(good.output)
    assert s["windows_unconverged"] == [] and all(k < 30 for k in s["windows_inconsistent"])
    over = _run(["assimilate", "over.csv", *args, "--out", "over.zarr"], tmp_path, cli_env)
    s = _json(over.output)
    assert len(s["windows_inconsistent"]) > 50 and "chi2" in over.output and "warning" in over.output
    capped = _run(["assimilate", "true.csv", *args, "--out", "capped.zarr", "--set", "solver.max_iterations=1"],
                  tmp_path, cli_env)
    s = _json(capped.output)
    assert s["windows_unconverged"] == list(range(60)) and "solver.max_iterations" in capped.output


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("bash") is None,
                    reason="an address-space limit (ulimit -v) as on a Linux host")
def test_a_run_that_does_not_fit_in_memory_is_exit_2_with_a_message_and_no_store(tmp_path, cli_env):
    """A size that cannot fit is refused as the user's choice, never a traceback (issue 10): full-state
    tsunami 150 x 150 at N = 64 needs ~5 GiB; in a process limited to 3 GiB of address space (a small
    host or a full accelerator, as XLA reports either) the CLI ends with exit 2 and an out-of-memory
    message naming what to shrink, and leaves no store behind (nothing was committed). The limit is set
    by the shell (`ulimit -v`), not by a pre-exec hook, which would fork this JAX-holding process."""
    out = tmp_path / "big.zarr"
    cmd = [sys.executable, "-m", "levda_cli", "assimilate", REPO / "sample_data" / "tsunami150_obs.nc",
           "--model", "tsunami", "-c", REPO / "configs" / "latent_tsunami.toml", "--set", "model.size=150",
           "--set", "ensemble.size=64", "--out", out, "-q"]
    proc = subprocess.run(["bash", "-c", 'ulimit -v 3145728 && exec "$@"', "levda", *map(str, cmd)],
                          capture_output=True, text=True, env=cli_env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "out of memory" in proc.stdout + proc.stderr
    assert "use a smaller ensemble" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not out.exists()

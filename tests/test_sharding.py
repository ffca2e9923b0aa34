"""Splitting a window over devices (``--devices``) and processes (``--distributed``).

- core: the blocked observation term and the ensemble forecast on a mesh of 4 forced host devices
  equal the single-device ones to 1e-12 (relative) for every model, with an observation count the
  device count does not divide (masked padding);
- CLI: the Lorenz-96 sample on 4 forced devices, its windows split, gives the 1-device store to 1e-10
  (200 windows: rounding of the reordered sums, carried through the cycle; measured 7e-14 relative);
  by default such small windows are not split and give the same bits, as does ``--devices 1``;
- two processes on localhost (``jax.distributed``, Gloo collectives) give the one-process store; only
  process 0 writes (process 1 runs in another folder with the same relative --out, which stays
  empty) and only it prints the JSON summary;
- a process killed mid-run ends the other with exit 8 and a store of whole windows that a plain run
  resumes; a peer that never joins ends the other with exit 8 (--join-timeout); a locked store ends both
  processes with exit 6; bad --devices / options exit 2.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from clirun import LEVDA, levda

REPO = Path(__file__).parents[1]
SAMPLE = REPO / "sample_data"
CONFIGS = REPO / "configs"
FORCE4 = "--xla_force_host_platform_device_count=4"
L96 = [SAMPLE / "lorenz96_obs.csv", "--config", CONFIGS / "lorenz96.toml", "--truth", SAMPLE / "lorenz96_truth.zarr"]
SPLIT = ["--set", "solver.split_min_observations=0"]  # split even the sample's 40-observation windows


def _env4(env):
    return {**env, "XLA_FLAGS": f"{env.get('XLA_FLAGS', '')} {FORCE4}".strip()}


def test_core_on_four_devices_equals_one(cli_env):
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO / 'tests')!r})
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        import equinox as eqx
        from test_linearise import CASES, _obs
        from levda_cli.core.linearise import ObservationTerm
        from levda_cli.core import sharding
        from levda_cli.core.window import propagate
        assert len(jax.devices()) == 4
        mesh = sharding.make_mesh(jax.devices())
        rel = lambda a, b: float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))
        for name in ("lorenz96", "tsunami", "surrogate"):  # member- and control-space directions, a PDE's geometry
            problem, v0, sampler, n_field, n_steps = CASES[name]
            obs = _obs(sampler, n_field, problem.dynamics.dt, n_steps)  # 37 observations: padded to 40
            X = 0.01 * jax.random.normal(jax.random.PRNGKey(0), (v0.shape[0], 8)) * (jnp.abs(v0) + 1)[:, None]
            w = 0.3 * jnp.ones(8)
            # on the mesh, the model's arrays come in placed on it, as the CLI's compiled step gets them
            placed = jax.tree.map(lambda a: sharding.to_global(a, sharding.replicated(mesh))
                                  if eqx.is_array(a) else a, problem)
            def both(m, prob):
                def f(prob, v0, X, w):
                    term = ObservationTerm.build(prob, obs, n_steps, 8, mesh=m)
                    return term.linearise(v0, X, w), term.predict(v0)
                return eqx.filter_jit(f)(prob, v0, X, w)
            (a, p1), (b, p4) = both(None, problem), both(mesh, placed)
            assert b.d.shape == a.d.shape == p4.shape == (37,)
            ens = v0 + (10 * X).T
            e1, e4 = (eqx.filter_jit(lambda p, e: propagate(p, e, 3, m))(p, ens)
                      for m, p in ((None, problem), (mesh, placed)))
            errs = [rel(a.d, b.d), rel(a.StS, b.StS), rel(a.Std, b.Std), rel(p1, p4), rel(e1, e4)]
            assert max(errs) < 1e-12, (name, errs)
            print(name, max(errs))
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env4(cli_env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.split("\n")) >= 4


@pytest.fixture(scope="module")
def one_device_store(tmp_path_factory, cli_env):
    tmp = tmp_path_factory.mktemp("one-device")
    proc = levda("assimilate", *L96, "--out", tmp / "one.zarr", "--json", "-q", env=cli_env, cwd=tmp)
    return tmp / "one.zarr", json.loads(proc.stdout)


def _same_store(a: Path, b: Path, tol: float):
    A, B = xr.open_zarr(a), xr.open_zarr(b)
    assert A.sizes["window"] == B.sizes["window"] == 200
    for name in ("analysis", "filter", "background", "hofx_analysis", "cost_final", "rmse_analysis"):
        x, y = A[name].values, B[name].values
        scale = np.nanmax(np.abs(x))
        assert np.nanmax(np.abs(x - y)) <= tol * scale, (name, np.nanmax(np.abs(x - y)) / scale)
    for name in ("iterations", "converged", "n_obs", "window_index"):
        np.testing.assert_array_equal(A[name].values, B[name].values)


def test_four_devices_give_the_one_device_store(one_device_store, tmp_path, cli_env, strict_summary):
    ref, ref_summary = one_device_store
    proc = levda("assimilate", *L96, *SPLIT, "--out", tmp_path / "four.zarr", "--json", "-q", env=_env4(cli_env),
                 cwd=tmp_path)
    summary = strict_summary(proc.stdout, "assimilate")
    assert summary["devices"] == 4 and summary["processes"] == 1 and ref_summary["devices"] == 1
    assert summary["windows_split"] == 200 and ref_summary["windows_split"] == 0
    _same_store(ref, tmp_path / "four.zarr", 1e-10)
    # by default such small windows are not split (no collectives): every device computes the whole
    # window, the same bits as one device; and --devices 1 is today's single-device program
    for name, extra in (("default", []), ("one", ["--devices", "1"])):
        proc = levda("assimilate", *L96, *extra, "--out", tmp_path / f"{name}.zarr", "--json", "-q",
                     env=_env4(cli_env), cwd=tmp_path)
        assert json.loads(proc.stdout)["windows_split"] == 0
        np.testing.assert_array_equal(xr.open_zarr(tmp_path / f"{name}.zarr").analysis.values,
                                      xr.open_zarr(ref).analysis.values)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(args, cwds, env, extra=()):
    port = _port()
    return [subprocess.Popen([*LEVDA, "assimilate", *map(str, args), *extra, "--distributed", "--coordinator",
                              f"localhost:{port}", "--num-processes", str(len(cwds)), "--process-id", str(i)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
            for i, cwd in enumerate(cwds)]


def test_two_processes_give_the_one_process_store(one_device_store, tmp_path, cli_env, strict_summary):
    ref, _ = one_device_store
    cwds = [tmp_path / "p0", tmp_path / "p1"]
    for c in cwds:
        c.mkdir()
    procs = _launch([*L96, *SPLIT, "--out", "run.zarr", "--json", "-q"], cwds, cli_env)
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    summary = strict_summary(outs[0][0], "assimilate")
    assert summary["processes"] == 2 and summary["devices"] == 2 and summary["windows_in_store"] == 200
    assert summary["windows_split"] == 200
    assert outs[1][0] == ""  # one voice per job, and no collective library's chatter on stdout
    assert list(cwds[1].iterdir()) == []  # process 1 never touched a store or a lock
    _same_store(ref, cwds[0] / "run.zarr", 1e-10)


def test_a_killed_process_ends_the_job_with_whole_windows(tmp_path, cli_env):
    cwds = [tmp_path / "p0", tmp_path / "p1"]
    for c in cwds:
        c.mkdir()
    out = tmp_path / "run.zarr"
    procs = _launch([*L96, "--out", out, "--set", "output.commit_seconds=0"], cwds, cli_env)
    deadline = time.monotonic() + 300
    while not (out / ".zmetadata").exists() and time.monotonic() < deadline and procs[0].poll() is None:
        time.sleep(0.2)  # until the first window is committed
    procs[1].send_signal(signal.SIGKILL)
    _, err = procs[0].communicate(timeout=300)
    procs[1].communicate()
    assert procs[0].returncode == 8, err[-3000:]
    assert "distributed run error" in err
    n = xr.open_zarr(out).sizes["window"]
    assert 1 <= n < 200
    proc = levda("assimilate", *L96, "--out", out, "--json", "-q", env=cli_env, cwd=tmp_path)
    assert json.loads(proc.stdout)["windows_in_store"] == 200


def test_a_locked_store_ends_every_process(tmp_path, cli_env):
    from filelock import FileLock

    cwds = [tmp_path / "p0", tmp_path / "p1"]
    for c in cwds:
        c.mkdir()
    with FileLock(cwds[0] / ".run.zarr.lock"):
        procs = _launch([*L96, "--out", "run.zarr", "-q"], cwds, cli_env)
        outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [6, 6], [o[1][-2000:] for o in outs]
    assert "store locked" in outs[0][1] and "process 0 could not open" in outs[1][1]


@pytest.mark.parametrize("args, message", [
    (["--devices", "2"], "--devices 2: this process has 1 device"),
    (["--coordinator", "localhost:1"], "need --distributed"),
])
def test_bad_parallel_options(tmp_path, cli_env, args, message):
    proc = levda("assimilate", *L96, "--out", tmp_path / "x.zarr", *args, env=cli_env, cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in " ".join(proc.stderr.split())
    assert not (tmp_path / "x.zarr").exists()



def test_a_peer_that_never_joins_ends_with_exit_8(tmp_path, cli_env):
    proc = levda("assimilate", *L96, "--out", "run.zarr", "--distributed", "--coordinator", f"localhost:{_port()}",
                 "--num-processes", "2", "--process-id", "0", "--join-timeout", "5", env=cli_env, cwd=tmp_path,
                 check=False)
    assert proc.returncode == 8, proc.stderr[-2000:]
    assert "did not all join within 5 s" in " ".join(proc.stderr.split())
    assert not (tmp_path / "run.zarr").exists()

"""The latent surrogate and its checkpoint: differentiability, continuity, save/load, refusals,
and training that learns."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from levda_cli.config import SimulateConfig, TrainConfig
from levda_cli.core.surrogate import Surrogate
from levda_cli.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

HP = dict(n_latent=6, dynamics_width=16, dynamics_depth=1, decoder_width=16, decoder_depth=1, n_fourier=4,
          fourier_scale=2.0, dt=0.1, time_scale=2.0)


def _model(key=0):
    return Surrogate.build(n_coord=2, n_field=2, n_param=2, periodic=(False, True), key=jax.random.PRNGKey(key),
                           coord_low=[0.0, 0.0], coord_high=[1e6, 2 * np.pi], field_mean=[1.0, -2.0],
                           field_std=[0.5, 3.0], param_low=[0.0, 500.0], param_high=[1.0, 1500.0], **HP)


def _header():
    return {"model_kind": "latent-dynamics-network", "benchmark": "test", "hyperparameters": HP,
            "fields": ["a", "b"], "field_units": ["1", "1"],
            "coordinates": [{"name": "x", "periodic": False, "low": 0.0, "high": 1e6, "units": "m"},
                            {"name": "y", "periodic": True, "low": 0.0, "high": 2 * np.pi, "units": "1"}],
            "parameters": [{"name": "p", "low": 0.0, "high": 1.0, "default": 0.5, "units": "1"},
                           {"name": "q", "low": 500.0, "high": 1500.0, "default": 1000.0, "units": "1"}],
            "time": {"epoch": "2000-01-01T00:00:00+00:00", "unit_seconds": 1.0, "origin": 0.0,
                     "frame_interval": 0.1, "first_frame": 0.1, "last_frame": 2.0},
            "grid": {"dims": ["x", "y"], "x": [0.0, 5e5], "y": [0.0, 3.0]},
            "normalisation": {"field_mean": [1.0, -2.0], "field_std": [0.5, 3.0]}}


def fd(f, x, t, eps=1e-6):
    return (f(x + eps * t) - f(x - eps * t)) / (2 * eps)


def test_gradients_match_finite_differences():
    m = _model()
    z = jax.random.normal(jax.random.PRNGKey(3), (6,))
    mu = jnp.array([0.4, 900.0])
    x = jnp.array([3e5, 1.2])
    # The decoder w.r.t. the latent state and the coordinates.
    for f, arg in ((lambda zz: m.decode(zz, x), z), (lambda xx: m.decode(z, xx), x)):
        t = jax.random.normal(jax.random.PRNGKey(4), arg.shape) * jnp.where(arg > 1e3, 1e4, 1.0)
        np.testing.assert_allclose(jax.jvp(f, (arg,), (t,))[1], fd(f, arg, t), rtol=1e-5, atol=1e-8)
    # The time integration w.r.t. the parameters (and the latent start).
    g = lambda p: m.decode(m.latent_trajectory(p, jnp.array([1.37]), 14)[0], x)  # noqa: E731
    for t in (jnp.array([1.0, 0.0]), jnp.array([0.0, 100.0])):
        np.testing.assert_allclose(jax.jvp(g, (mu,), (t,))[1], fd(g, mu, t), rtol=1e-5, atol=1e-8)
    # Reverse mode agrees with forward mode.
    np.testing.assert_allclose(jax.grad(lambda p: g(p)[0])(mu), jax.jacfwd(g)(mu)[0], rtol=1e-8)


def test_prediction_is_continuous_in_time_and_periodic_where_declared():
    m = _model()
    mu = jnp.array([0.4, 900.0])
    times = 1.0 + jnp.array([0.0, 1e-7, 0.05, 0.05 + 1e-7, 0.1 - 1e-7, 0.1])  # across a step boundary
    z = m.latent_trajectory(mu, times, 12)
    assert float(jnp.abs(z[1] - z[0]).max()) < 1e-5 and float(jnp.abs(z[3] - z[2]).max()) < 1e-5
    assert float(jnp.abs(z[5] - z[4]).max()) < 1e-5
    np.testing.assert_allclose(m.decode(z[0], jnp.array([3e5, 0.3])), m.decode(z[0], jnp.array([3e5, 0.3 + 2 * np.pi])),
                               rtol=1e-9, atol=1e-12)


def test_save_load_is_bit_identical(tmp_path):
    m = _model()
    save_checkpoint(tmp_path / "m.ckpt", m, _header())
    m2, header = load_checkpoint(tmp_path / "m.ckpt")
    mu, x = jnp.array([0.4, 900.0]), jnp.array([3e5, 1.2])
    z, z2 = m.latent_trajectory(mu, jnp.array([0.7, 1.9]), 20), m2.latent_trajectory(mu, jnp.array([0.7, 1.9]), 20)
    assert np.array_equal(z, z2) and np.array_equal(m.decode(z[1], x), m2.decode(z2[1], x))
    assert header["format_version"] == 4 and len(header["payload_sha256"]) == 64 and header["header_verified"]


def _corrupt(path, how):
    """Damage a checkpoint as a transfer, an editor or someone else's training code would."""
    from levda_cli.io.checkpoint import _write

    data = path.read_bytes()
    body, trailer = data[:-65], data[-65:]
    line, _, payload = body.partition(b"\n")
    header = json.loads(line)
    if how == "truncated":
        path.write_bytes(data[:-100])
    elif how == "changed payload byte":
        i = len(payload) // 2
        path.write_bytes(line + b"\n" + payload[:i] + bytes([payload[i] ^ 1]) + payload[i + 1:] + trailer)
    elif how == "changed header byte":
        i = line.index(b'"dt"') + 7  # a digit of the latent step: a valid header that reads the payload wrongly
        path.write_bytes(line[:i] + bytes([line[i] ^ 1]) + line[i + 1:] + b"\n" + payload + trailer)
    elif how == "edited header":
        header["time"]["unit_seconds"] = 60.0
        path.write_bytes(json.dumps(header).encode() + b"\n" + payload + trailer)
    elif how == "trailer removed":
        path.write_bytes(body)
    elif how == "unknown version":
        header["format_version"] = 99
        path.write_bytes(json.dumps(header).encode() + b"\n" + payload)
    elif how == "header mismatch":  # consistent checksums, a header that does not describe the payload
        header["hyperparameters"]["n_latent"] = 7
        _write(path, header, payload)
    elif how == "normalisation mismatch":
        header["normalisation"]["field_std"] = [0.5, 4.0]
        _write(path, header, payload)
    elif how == "bad header value":
        header["hyperparameters"]["decoder_width"] = "wide"
        _write(path, header, payload)
    elif how == "not a checkpoint":
        path.write_bytes(b"\x89PNG\r\n" + payload)


CORRUPTIONS = {
    "truncated": "is damaged: a version-4 checkpoint ends with the SHA-256",
    "changed payload byte": "is corrupt: the SHA-256 of its header and payload",
    "changed header byte": "is corrupt: the SHA-256 of its header and payload",
    "edited header": "is corrupt: the SHA-256 of its header and payload",
    "trailer removed": "is damaged: a version-4 checkpoint ends with the SHA-256",
    "unknown version": "format version 99",
    "header mismatch": "does not match the model its header describes",
    "normalisation mismatch": "normalisation 'field_std' does not match",
    "bad header value": "header key 'hyperparameters.decoder_width' is 'wide'",
    "not a checkpoint": "is not a levda checkpoint",
}


def test_version_1_files_read_with_a_warning_and_upgrade(tmp_path):
    from levda_cli.io.checkpoint import read_header, upgrade_checkpoint

    path = tmp_path / "m.ckpt"
    save_checkpoint(path, _model(), _header())
    line, _, payload = path.read_bytes()[:-65].partition(b"\n")
    header = json.loads(line)
    header["format_version"] = 1
    v1 = tmp_path / "v1.ckpt"
    v1.write_bytes(json.dumps(header).encode() + b"\n" + payload)  # the 0.3.1 layout: no trailer
    warnings = []
    model, h = load_checkpoint(v1, warn=warnings.append)
    assert h["format_version"] == 1 and h["header_verified"] is False
    assert len(warnings) == 1 and "header is not covered by a checksum" in warnings[0]
    # a v1 header is unverified, but its values are still checked
    header["time"]["unit_seconds"] = 0.0
    v1.write_bytes(json.dumps(header).encode() + b"\n" + payload)
    with pytest.raises(CheckpointError, match="time.unit_seconds"):
        read_header(v1)
    header["time"]["unit_seconds"] = 1.0
    v1.write_bytes(json.dumps(header).encode() + b"\n" + payload)
    upgrade_checkpoint(v1, tmp_path / "v2.ckpt")
    h2, payload2 = read_header(tmp_path / "v2.ckpt", warn=warnings.append)
    assert h2["format_version"] == 4 and h2["header_verified"] and payload2 == payload and len(warnings) == 1


def test_trusted_sha256(tmp_path):
    import hashlib

    from levda_cli.io.checkpoint import read_header

    path = tmp_path / "m.ckpt"
    save_checkpoint(path, _model(), _header())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_header(path, trusted_sha256=digest.upper())[0]["header_verified"]
    with pytest.raises(CheckpointError, match="not the trusted"):
        read_header(path, trusted_sha256="0" * 64)


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_damaged_checkpoints_refused(tmp_path, how):
    path = tmp_path / "m.ckpt"
    save_checkpoint(path, _model(), _header())
    _corrupt(path, how)
    with pytest.raises(CheckpointError, match=CORRUPTIONS[how]):
        load_checkpoint(path)


@pytest.mark.parametrize("how", ["truncated", "changed header byte", "unknown version"])
def test_cli_refuses_damaged_checkpoints_with_exit_code_4(tmp_path, how, cli_env):
    path = tmp_path / "m.ckpt"
    save_checkpoint(path, _model(), _header())
    ok = subprocess.run([sys.executable, "-m", "levda_cli", "surrogate", "info", str(path), "--json"],
                        capture_output=True, text=True, env=cli_env)
    assert ok.returncode == 0 and json.loads(ok.stdout)["checksum_verified"] is True
    _corrupt(path, how)
    proc = subprocess.run([sys.executable, "-m", "levda_cli", "surrogate", "info", str(path)],
                          capture_output=True, text=True, env=cli_env)
    assert proc.returncode == 4 and "m.ckpt" in proc.stderr and CORRUPTIONS[how] in proc.stderr


def test_training_reduces_validation_error_and_resumes_identically(tmp_path):
    from levda_cli.synthetic import simulate
    from levda_cli.training import evaluate, train

    store = tmp_path / "k.zarr"
    simulate(SimulateConfig.model_validate({"model": {"name": "lorenz96", "size": 8}, "trajectories": 10,
                                            "duration": 0.5, "interval": 0.05, "spinup": 0.0,
                                            "parameters": {"F": {"range": [0.5, 1.5]}},
                                            "split": [0.6, 0.2, 0.2]}), store)
    cfg = TrainConfig.model_validate({"epochs": 40, "batch_trajectories": 3, "points_per_frame": 8,
                                      "learning_rate": 1e-2, "save_every": 10,
                                      "surrogate": {"n_latent": 4, "dynamics_width": 16, "decoder_width": 16,
                                                    "decoder_depth": 1, "n_fourier": 4}})
    seen = []
    summary = train(cfg, store, tmp_path / "a.ckpt", progress=lambda e, n, row: seen.append(row))
    first = seen[0]["validation_rel_l2"]["x"]
    last = seen[-1]["validation_rel_l2"]["x"]
    assert last < 0.7 * first
    # Interrupted after 20 epochs, then the same command again: the same checkpoint.
    calls = []
    with pytest.raises(Exception, match="stopped after epoch 20"):
        train(cfg, store, tmp_path / "b.ckpt", stop=lambda: len(calls) >= 20,
              progress=lambda e, n, row: calls.append(e))
    train(cfg, store, tmp_path / "b.ckpt")
    a, b = load_checkpoint(tmp_path / "a.ckpt")[0], load_checkpoint(tmp_path / "b.ckpt")[0]
    np.testing.assert_allclose(np.asarray(a.decoder_net.out.weight), np.asarray(b.decoder_net.out.weight), rtol=1e-6)
    # the trained surrogate's own error, per field and frame, in the header (format version 3)
    header = load_checkpoint(tmp_path / "a.ckpt")[1]
    err = header["surrogate_error"]
    assert header["format_version"] == 4 and err["source"] == "validation" and len(err["rmse_by_frame"]["x"]) == 11
    np.testing.assert_allclose(err["rmse"]["x"], np.sqrt(np.mean(np.square(err["rmse_by_frame"]["x"]))), rtol=1e-6)
    result = evaluate(tmp_path / "a.ckpt", store, "test")
    assert set(result["rel_l2"]) == {"x"} and len(result["rel_l2_by_lead_time"]["x"]) == 11
    assert set(result["rel_l2_anomaly"]) == {"x"} and result["rel_l2_anomaly"]["x"] >= result["rel_l2"]["x"] > 0
    assert summary["parameters"] > 0


SHIPPED = sorted((__import__("pathlib").Path(__file__).parents[1] / "sample_data" / "surrogates").glob("*.ckpt"))


@pytest.mark.parametrize("ckpt", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_checkpoints_verify_and_evaluate(ckpt, tmp_path, cli_env):
    info = subprocess.run([sys.executable, "-m", "levda_cli", "surrogate", "info", str(ckpt), "--json"],
                          capture_output=True, text=True, env=cli_env, check=True)
    header = json.loads(info.stdout)
    assert header["checksum_verified"] and header["training"]["epochs"] > 0
    # the simulate size: cells a side, or the sphere's truncation (T21: 32 latitudes, T42: 64)
    size = {32: 21, 64: 42}[len(header["grid"]["lat"])] if header["benchmark"] == "sphere" else len(header["grid"]["x"])
    store = tmp_path / "fresh.zarr"
    cfg = {"model": {"name": header["benchmark"], "size": size}, "trajectories": 2, "split": [0.0, 0.0, 1.0],
           "duration": 2 * header["time"]["frame_interval"], "interval": header["time"]["frame_interval"],
           "seed": 7}
    if header["benchmark"] == "kolmogorov":
        # The flows all start from the training data's shared state (seed 0, 30 units at Re 1000);
        # the Reynolds numbers here are new ones (seed 7).
        cfg.update(spinup=30.0, initial_state_seed=0, parameters={"Re": {"range": [900.0, 1100.0]}})
    from levda_cli.synthetic import simulate

    simulate(SimulateConfig.model_validate(cfg), store)
    proc = subprocess.run([sys.executable, "-m", "levda_cli", "surrogate", "evaluate", str(ckpt), "--data", str(store),
                           "--plot", str(tmp_path / "e.png"), "--json"], capture_output=True, text=True, env=cli_env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result["rel_l2"]) == set(header["fields"]) and (tmp_path / "e.png").stat().st_size > 1000
    assert all(v < 0.5 for v in result["rel_l2"].values())  # early lead times of unseen trajectories


def test_training_holds_a_bounded_draw_of_points_and_resumes_identically(tmp_path):
    """A grid larger than points_in_memory: each draw keeps that many points per frame and trajectory,
    read one chunk of trajectories at a time (float32 fields on disk), redrawn every refresh_epochs;
    a run stopped between draws and resumed gives the uninterrupted run's checkpoint."""
    from levda_cli.synthetic import simulate
    from levda_cli.training import TrainingData, train

    store = tmp_path / "l.zarr"
    simulate(SimulateConfig.model_validate({"model": {"name": "lorenz96", "size": 12}, "trajectories": 10, "batch": 3,
                                            "duration": 0.5, "interval": 0.05, "spinup": 0.0,
                                            "parameters": {"F": {"range": [0.5, 1.5]}}, "split": [0.6, 0.2, 0.2],
                                            "field_precision": "float32"}), store)
    data = TrainingData(store)
    assert data.ds["x"].dtype == np.float32 and data.ds["x"].chunks[0][0] == 3
    idx = data.indices("train")
    whole = data.read(idx)
    assert whole.shape == (6, 11, 12, 1) and whole.dtype == np.float32
    np.testing.assert_array_equal(data.read(idx, lambda v: v[:, :, [1, 5]]), whole[:, :, [1, 5]])
    cfg = TrainConfig.model_validate({"epochs": 30, "batch_trajectories": 3, "points_per_frame": 2,
                                      "points_in_memory": 4, "refresh_epochs": 7, "learning_rate": 1e-2,
                                      "frames_per_step": 5,  # of 11: a random set per trajectory and step
                                      "save_every": 5, "validation_points": 12,
                                      "surrogate": {"n_latent": 4, "dynamics_width": 16, "decoder_width": 16,
                                                    "decoder_depth": 1, "n_fourier": 4}})
    seen = []
    summary = train(cfg, store, tmp_path / "a.ckpt", progress=lambda e, n, row: seen.append(row))
    assert summary["points_in_memory"] == 4 and summary["read_seconds"] >= 0
    assert seen[-1]["validation_rel_l2"]["x"] < 0.8 * seen[0]["validation_rel_l2"]["x"]
    calls = []
    with pytest.raises(Exception, match="stopped after epoch 15"):  # saved at 15: resumes inside draw 2
        train(cfg, store, tmp_path / "b.ckpt", stop=lambda: len(calls) >= 15,
              progress=lambda e, n, row: calls.append(e))
    train(cfg, store, tmp_path / "b.ckpt")
    a, b = load_checkpoint(tmp_path / "a.ckpt"), load_checkpoint(tmp_path / "b.ckpt")
    np.testing.assert_allclose(np.asarray(a[0].decoder_net.out.weight), np.asarray(b[0].decoder_net.out.weight),
                               rtol=1e-6)
    assert a[1]["training"]["points_in_memory"] == 4 and a[1]["training"]["points"] == 12


def test_forced_surrogate_carries_a_clock_and_round_trips(tmp_path):
    """Format 4: a surrogate of a flow with a moving forcing takes the forcing's phases and carries a
    clock (exact: dtau/dt = 1); its gradients match finite differences; save/load keeps it; the
    assimilation's ensemble never moves the clock (zero anomalies) and a latent cold start starts it at 0."""
    m = Surrogate.build(n_coord=2, n_field=2, n_param=2, periodic=(False, True), key=jax.random.PRNGKey(1),
                        coord_low=[0.0, 0.0], coord_high=[1e6, 2 * np.pi], field_mean=[1.0, -2.0],
                        field_std=[0.5, 3.0], param_low=[0.0, 500.0], param_high=[1.0, 1500.0],
                        forcing_periods=(0.7, 5.0), forcing_offset=0.3, **HP)
    assert m.n_state == HP["n_latent"] + 1 and m.n_latent == HP["n_latent"]
    mu, x = jnp.array([0.4, 900.0]), jnp.array([3e5, 1.2])
    zs = m.latent_trajectory(mu, jnp.array([0.0, 0.37, 1.37]), 14)
    np.testing.assert_allclose(zs[:, -1], [0.0, 0.37, 1.37], rtol=1e-12, atol=1e-15)
    # the phase is an input: the same z one forcing period later decodes the same; half a period later not
    z = zs[1]
    period = m.forcing_periods[0] * m.forcing_periods[1] / np.gcd(7, 50) * 10  # 35: a whole number of both
    np.testing.assert_allclose(m.decode(z.at[-1].add(period), x), m.decode(z, x), rtol=1e-9)
    assert not np.allclose(m.decode(z.at[-1].add(0.35), x), m.decode(z, x), rtol=1e-3)
    g = lambda p: m.decode(m.latent_trajectory(p, jnp.array([1.37]), 14)[0], x)  # noqa: E731
    for t in (jnp.array([1.0, 0.0]), jnp.array([0.0, 100.0])):
        np.testing.assert_allclose(jax.jvp(g, (mu,), (t,))[1], fd(g, mu, t), rtol=1e-5, atol=1e-8)
    # the decoder for many observations (prepare/geometry/sample) agrees with decode
    prepared = m.prepare(zs, mu)
    np.testing.assert_allclose(m.sample(prepared, mu, 2, m.geometry(x, 1), 1), m.decode(zs[2], x)[1], rtol=1e-12)
    header = {**_header(), "hyperparameters": {**HP, "forcing_periods": [0.7, 5.0], "forcing_offset": 0.3}}
    save_checkpoint(tmp_path / "f.ckpt", m, header)
    loaded, h = load_checkpoint(tmp_path / "f.ckpt", dtype=jnp.float64)
    assert h["format_version"] == 4 and loaded.forcing_periods == (0.7, 5.0) and loaded.forcing_offset == 0.3
    np.testing.assert_allclose(loaded.latent_trajectory(mu, jnp.array([1.37]), 14),
                               m.latent_trajectory(mu, jnp.array([1.37]), 14), rtol=1e-6)
    bad = {**header, "hyperparameters": {**HP, "forcing_periods": [0.7, -1.0]}}
    with pytest.raises(CheckpointError, match=r"forcing_periods\[1\]"):
        save_checkpoint(tmp_path / "g.ckpt", m, bad)
    from levda_cli.models import surrogate_spec

    spec, _ = surrogate_spec(tmp_path / "f.ckpt", latent_noise=0.5)
    x0 = spec.initial_state(mu, jax.random.PRNGKey(0), 1.0)
    assert x0[-1] == 0.0 and np.all(x0[:-1] != 0.0)


def test_training_a_forced_surrogate_on_the_sphere_records_its_clock(tmp_path):
    pytest.importorskip("dinosaur")
    from levda_cli.synthetic import simulate
    from levda_cli.training import train

    store = tmp_path / "s.zarr"
    simulate(SimulateConfig.model_validate({"model": {"name": "sphere"}, "trajectories": 3, "duration": 12.0,
                                            "interval": 6.0, "spinup": 6.0, "split": [0.4, 0.3, 0.3]}), store)
    cfg = TrainConfig.model_validate({"epochs": 2, "batch_trajectories": 1, "points_per_frame": 4,
                                      "validation_points": 8, "points_in_memory": 64,
                                      "surrogate": {"n_latent": 3, "dynamics_width": 8, "decoder_width": 8,
                                                    "decoder_depth": 1, "n_fourier": 2, "steps_per_interval": 6}})
    train(cfg, store, tmp_path / "s.ckpt")
    model, header = load_checkpoint(tmp_path / "s.ckpt")
    hp = header["hyperparameters"]
    # the sun's day and year; the clock's zero is the origin (one frame before the first), 6 h of spin-up later
    assert hp["forcing_periods"] == [24.0, 8766.0] and hp["forcing_offset"] == pytest.approx(-6.0 + 6.0)
    assert model.n_state == 4
    off = TrainConfig.model_validate({**cfg.model_dump(), "surrogate": {**cfg.surrogate.model_dump(), "forcing": False}})
    train(off, store, tmp_path / "a.ckpt")
    assert load_checkpoint(tmp_path / "a.ckpt")[0].n_state == 3


def test_normalisation_is_accurate_for_large_float32_fields():
    """Millions of float32 values near 3000 (the sphere's depth): the mean and scale the surrogate is
    normalised by must be those of the data (a float32 sum was off by 300 m, the scale 20x too large)."""
    from levda_cli.training import normalisation

    rng = np.random.default_rng(0)
    values = (3000.0 + 15.0 * rng.standard_normal((2_000_000, 3))).astype(np.float32)  # three fields: strided
    mean, std = normalisation(values.reshape(50, 40_000, 3))
    np.testing.assert_allclose(mean, [3000.0] * 3, atol=0.1)
    np.testing.assert_allclose(std, [15.0] * 3, rtol=1e-2)
    assert mean.dtype == std.dtype == np.float32


def test_offgrid_training_targets_are_the_fields_between_the_nodes(tmp_path):
    """`offgrid = true`: the decoder is fitted at random places between the grid nodes, with targets from
    the model's own observation operator. For the spectral Kolmogorov model those are the stored frame's
    Fourier series, checked here against one evaluated independently with NumPy; a short training run
    on them learns the fields (the validation error, at the nodes, falls)."""
    from levda_cli.synthetic import simulate
    from levda_cli.training import TrainingData, offgrid_draw, train

    store = tmp_path / "k.zarr"
    simulate(SimulateConfig.model_validate({"model": {"name": "kolmogorov", "size": 16}, "trajectories": 6,
                                            "duration": 0.6, "interval": 0.2, "spinup": 1.0,
                                            "parameters": {"Re": {"range": [500.0, 1500.0]}},
                                            "split": [0.5, 0.5, 0.0]}), store)
    data = TrainingData(store)
    idx = data.indices("train")
    values, places = offgrid_draw(data, idx, 7, np.random.default_rng(0))
    assert values.shape == (3, 4, 7, 2) and places.shape == (3, 4, 7, 2)
    n = 16
    k = np.fft.fftfreq(n, 1.0 / n)
    for t in range(3):
        for f, name in enumerate(("u", "v")):
            grid = np.asarray(data.ds[name].isel(trajectory=int(idx[t]), time=2).values, float)  # (y, x)
            coef = np.fft.fft2(grid) / n**2
            x, y = places[t, 2, :, 0].astype(float), places[t, 2, :, 1].astype(float)
            series = np.real(np.exp(1j * (np.outer(y, k)[:, :, None] + np.outer(x, k)[:, None, :])) * coef).sum((1, 2))
            np.testing.assert_allclose(values[t, 2, :, f], series, atol=2e-5)
    cfg = TrainConfig.model_validate({"epochs": 100, "batch_trajectories": 3, "points_per_frame": 32,
                                      "points_in_memory": 64, "refresh_epochs": 25, "learning_rate": 1e-2,
                                      "offgrid": True, "validation_points": 64,
                                      "surrogate": {"n_latent": 4, "dynamics_width": 16, "decoder_width": 32,
                                                    "decoder_depth": 1, "n_fourier": 8}})
    seen = []
    train(cfg, store, tmp_path / "o.ckpt", progress=lambda e, n_, row: seen.append(row))
    assert seen[-1]["validation_rel_l2"]["u"] < 0.8 * seen[0]["validation_rel_l2"]["u"]

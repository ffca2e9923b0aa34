"""simulate and observe, in-process: trajectories, splits, and observations exact at any time and place."""

import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

from levda_cli.config import ObserveConfig, SimulateConfig
from levda_cli.core import Problem
from levda_cli.core.dynamics import states_at
from levda_cli.io.obsfiles import read_observations
from levda_cli.models import model_spec
from levda_cli.synthetic import observe, simulate

CASES = {
    "kolmogorov": dict(model={"name": "kolmogorov", "size": 16}, duration=1.0, spinup=1.0),
    "tsunami": dict(model={"name": "tsunami", "size": 12}, duration=3600.0),
    "lorenz96": dict(model={"name": "lorenz96"}, duration=0.5, spinup=1.0),
    "sphere": dict(model={"name": "sphere"}, duration=12.0, spinup=6.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_observations_are_exact_between_frames(name, tmp_path):
    if name == "sphere":
        pytest.importorskip("dinosaur")
    store = tmp_path / "truth.zarr"
    simulate(SimulateConfig.model_validate({**CASES[name], "trajectories": 2, "seed": 1}), store)
    cfg = ObserveConfig(network="random:4", times="random", error=1e-12, trajectory=1, seed=3)
    observe(cfg, store, tmp_path / "obs.nc")
    obs = read_observations([tmp_path / "obs.nc"])
    ds = xr.open_zarr(store)
    spec = model_spec(name, ds.attrs["size"], ds.attrs["dt"])
    traj = ds.isel(trajectory=1)
    mu = jnp.asarray([float(traj[p]) for p in spec.params])
    frame0 = {v: traj[v].isel(time=0).values for v in [*spec.fields, *spec.restart_vars]}
    unit = ds.attrs["time_unit_seconds"]
    t = (obs.time - np.datetime64(ds["time"].values[0], "s")).astype(float) / unit
    assert not np.allclose(t / float(ds["model_time"][1]), np.round(t / float(ds["model_time"][1])))  # off-frame
    # Reference: one continuous integration from the first frame to each exact time.
    n_steps = int(round(float(ds["model_time"][-1]) / spec.dynamics.dt))
    xs = states_at(Problem(spec.dynamics, mu), jnp.asarray(spec.from_frame(frame0)), jnp.asarray(t), n_steps)
    coords = np.stack([obs.coords[c] for c in spec.coords], axis=1)
    fields = np.array([spec.fields.index(v) for v in obs.variable])
    ref = [float(spec.dynamics.observe(xs[i], mu, jnp.asarray(coords[i]), fields[i])) for i in range(len(t))]
    scale = np.abs(ref).max()
    np.testing.assert_allclose(obs.value, ref, rtol=0, atol=1e-8 * scale)


def test_simulate_draws_parameters_and_splits(tmp_path):
    cfg = SimulateConfig.model_validate({"model": {"name": "kolmogorov", "size": 16}, "trajectories": 10,
                                         "duration": 0.4, "spinup": 0.2, "batch": 4, "seed": 0})
    simulate(cfg, tmp_path / "k.zarr")
    ds = xr.open_zarr(tmp_path / "k.zarr")
    assert ds.sizes["trajectory"] == 10 and ds["u"].dims == ("trajectory", "time", "y", "x")
    re = ds["Re"].values
    assert ((re >= 500) & (re <= 1500)).all() and len(np.unique(re)) == 10
    assert sorted(ds["split"].values.tolist()) == ["test"] + ["train"] * 8 + ["validation"]
    again = tmp_path / "k2.zarr"
    simulate(cfg, again)
    np.testing.assert_array_equal(xr.open_zarr(again)["u"].values, ds["u"].values)  # deterministic


def test_held_out_set_keeps_the_shared_initial_state(tmp_path):
    """A test set with a new seed and the training seed's initial state: same first frame, other parameters;
    its trajectories equal the same parameters run from the training store's state (one spin-up serves all)."""
    base = {"model": {"name": "kolmogorov", "size": 16}, "duration": 0.4, "spinup": 0.4, "batch": 2}
    simulate(SimulateConfig.model_validate({**base, "trajectories": 3, "seed": 0}), tmp_path / "train.zarr")
    simulate(SimulateConfig.model_validate({**base, "trajectories": 3, "seed": 7, "initial_state_seed": 0}),
             tmp_path / "test.zarr")
    simulate(SimulateConfig.model_validate({**base, "trajectories": 1, "seed": 7}), tmp_path / "other.zarr")
    train, test, other = (xr.open_zarr(tmp_path / f"{n}.zarr") for n in ("train", "test", "other"))
    first = train["u"].isel(trajectory=0, time=0).values
    np.testing.assert_array_equal(test["u"].isel(time=0).values, np.broadcast_to(first, (3, 16, 16)))
    assert not np.allclose(other["u"].isel(time=0).values, train["u"].isel(trajectory=0, time=0).values)
    assert not np.intersect1d(test["Re"].values, train["Re"].values).size
    # Re of a test trajectory run from the training state, with the physics directly.
    spec = model_spec("kolmogorov", 16, train.attrs["dt"])
    mu = jnp.asarray([float(test["Re"][1])])
    x = jnp.asarray(spec.from_frame({v: train[v].isel(trajectory=0, time=0).values for v in spec.fields}))
    n = int(round(0.4 / spec.dynamics.dt))
    for _ in range(n):
        x = spec.dynamics.step(x, mu, spec.dynamics.dt)
    np.testing.assert_allclose(spec.to_fields(x)["u"], test["u"].isel(trajectory=1, time=-1).values, atol=1e-6)


def test_kolmogorov_step_divides_the_usual_intervals():
    for n in (16, 32, 64, 100, 150, 256):
        dt = model_spec("kolmogorov", n, None).dynamics.dt
        assert dt <= 0.64 / n + 1e-15 and abs(0.2 / dt - round(0.2 / dt)) < 1e-9


def test_networks_stay_in_the_domain(tmp_path):
    store = tmp_path / "t.zarr"
    simulate(SimulateConfig.model_validate({**CASES["tsunami"], "trajectories": 1}), store)
    stations = tmp_path / "stations.csv"
    stations.write_text("x,y\n100000,200000\n900000,500000\n")
    for network in ("tracks:5", "fixed:7", "every:3", f"stations:{stations}", "grid"):
        cfg = ObserveConfig(network=network, error=0.01, variables=["eta"], seed=2, track_speed=3.0 / 3600)
        out = tmp_path / f"{network.split(':')[0]}.csv"
        observe(cfg, store, out)
        obs = read_observations([out])
        assert ((obs.coords["x"] >= 0) & (obs.coords["x"] < 1e6)).all()
        assert ((obs.coords["y"] >= 0) & (obs.coords["y"] < 1e6)).all()
        assert set(obs.variable) == {"eta"}
    per_time = read_observations([tmp_path / "tracks.csv"])
    first = per_time.time == per_time.time.min()
    second = per_time.time == np.unique(per_time.time)[1]
    assert not np.allclose(per_time.coords["x"][first], per_time.coords["x"][second])  # platforms move

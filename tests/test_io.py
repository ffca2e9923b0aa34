"""Observation files and the analysis store, in-process."""

import numpy as np
import pytest
import xarray as xr

from levda_cli.errors import ObservationError
from levda_cli.io import observations as obsio
from levda_cli.io.store import AnalysisStore, ArraySpec


def _obs(n=7):
    rng = np.random.default_rng(0)
    t = np.datetime64("2000-01-01T06:00:00", "s") + (rng.integers(0, 10**6, n)).astype("timedelta64[s]")
    return obsio.ObservationSet(
        time=t, coords={"site": rng.uniform(0, 40, n)}, variable=np.array(["x"] * n, dtype=object),
        value=rng.standard_normal(n), error=rng.uniform(0.1, 2, n), source=np.full(n, "mem", dtype=object),
        row=np.arange(n))


@pytest.mark.parametrize("suffix", [".csv", ".nc"])
def test_round_trip(tmp_path, suffix):
    obs = _obs()
    path = tmp_path / f"o{suffix}"
    obsio.write_observations(obs, path)
    back = obsio.read_observations([path])
    np.testing.assert_array_equal(back.time, obs.time)
    np.testing.assert_array_equal(back.value, obs.value)  # repr() in CSV keeps every bit
    np.testing.assert_array_equal(back.error, obs.error)
    np.testing.assert_array_equal(back.coords["site"], obs.coords["site"])
    assert list(back.variable) == list(obs.variable)


def test_time_zones_are_converted_to_utc(tmp_path):
    path = tmp_path / "o.csv"
    path.write_text("time,site,variable,value,error\n2000-01-01T08:00:00+02:00,1,x,1,1\n2000-01-01T06:00:00,1,x,1,1\n")
    obs = obsio.read_csv(path)
    assert (obs.time == np.datetime64("2000-01-01T06:00:00")).all()


def test_screen_names_the_record(tmp_path):
    obs = _obs()
    obs.error[4] = 0.0
    with pytest.raises(ObservationError, match="record 4: error standard deviation must be positive"):
        obsio.screen(obs, ("x",), {"site": (0, 40)}, "error")
    obsio.screen(obs, ("x",), {"site": (0, 40)}, "reject")
    assert obs.qc[4] == obsio.QC_NONPOSITIVE_ERROR and (np.delete(obs.qc, 4) == 0).all()


def _specs():
    return {"a": ArraySpec(("member",), (3,), "f8"), "obs_value": ArraySpec(("obs",), (4,), "f8")}


def test_store_commits_atomically_and_repairs(tmp_path):
    path = tmp_path / "s.zarr"
    with AnalysisStore.open_or_create(path, _specs(), {"member": np.arange(3)}, {"title": "t"}) as store:
        assert not path.exists()  # nothing visible before the first commit
        store.append([{"a": np.ones(3), "obs_value": np.arange(2.0)}, {"a": 2 * np.ones(3), "obs_value": np.arange(6.0)}])
    ds = xr.open_zarr(path)
    assert ds.sizes["window"] == 2 and ds.sizes["obs"] == 6  # observation slots grew
    assert np.isnan(ds["obs_value"].values[0, 2:]).all()

    # A writer killed mid-commit: arrays grown and written, consolidated metadata not yet.
    import zarr

    root = zarr.open_group(path, mode="r+", use_consolidated=False)
    root["a"].resize((3, 3))
    root["a"][2] = 99.0
    root.attrs["n_windows"] = 3
    assert xr.open_zarr(path).sizes["window"] == 2  # readers see the last complete window
    with AnalysisStore.open_or_create(path, _specs(), {}, {}) as store:
        assert store.n_windows == 2
        np.testing.assert_array_equal(store.read_last("a"), 2 * np.ones(3))
    assert zarr.open_group(path, mode="r", use_consolidated=False)["a"].shape == (2, 3)


def test_store_failure_before_first_commit_leaves_nothing(tmp_path):
    path = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError):
        with AnalysisStore.open_or_create(path, _specs(), {}, {}):
            raise RuntimeError("solver failed")
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []

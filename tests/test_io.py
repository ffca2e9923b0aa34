"""Observation files and the analysis store, in-process."""

import numpy as np
import pytest
import xarray as xr

from levda_cli.errors import ObservationError
from levda_cli.io import observations as obsio
from levda_cli.io import obsfiles
from levda_cli.io.store import AnalysisStore, ArraySpec


def _obs(n=7):
    rng = np.random.default_rng(0)
    t = np.datetime64("2000-01-01T06:00:00", "s") + (rng.integers(0, 10**6, n)).astype("timedelta64[s]")
    return obsio.ObservationSet(
        time=t, coords={"site": rng.uniform(0, 40, n)}, variable=np.array(["x"] * n, dtype=object),
        value=rng.standard_normal(n), error=rng.uniform(0.1, 2, n), source=np.full(n, "mem", dtype=object),
        row=np.arange(n))


@pytest.mark.parametrize("fmt", ["csv", "netcdf", "ioda"])
def test_round_trip(tmp_path, fmt):
    obs = _obs()
    obs.variable[2] = "y"  # two quantities, one location shared (IODA puts them on one row)
    obs.time[2], obs.coords["site"][2] = obs.time[1], obs.coords["site"][1]
    path = tmp_path / ("o.csv" if fmt == "csv" else "o.nc")
    obsfiles.write_observations(obs, path, fmt)
    back = obsfiles.read_observations([path])
    order = np.lexsort((back.variable.astype(str), back.coords["site"], back.time))
    ref = np.lexsort((obs.variable.astype(str), obs.coords["site"], obs.time))
    back = obsio.ObservationSet(**{f: (getattr(back, f)[order] if f != "coords" else
                                       {c: v[order] for c, v in back.coords.items()})
                                   for f in ("time", "coords", "variable", "value", "error", "source", "row", "qc")})
    obs = obsio.ObservationSet(**{f: (getattr(obs, f)[ref] if f != "coords" else
                                      {c: v[ref] for c, v in obs.coords.items()})
                                  for f in ("time", "coords", "variable", "value", "error", "source", "row", "qc")})
    np.testing.assert_array_equal(back.time, obs.time)
    np.testing.assert_array_equal(back.value, obs.value)  # repr() in CSV keeps every bit
    np.testing.assert_array_equal(back.error, obs.error)
    np.testing.assert_array_equal(back.coords["site"], obs.coords["site"])
    assert list(back.variable) == list(obs.variable)


def test_time_zones_are_converted_to_utc(tmp_path):
    path = tmp_path / "o.csv"
    path.write_text("time,site,variable,value,error\n2000-01-01T08:00:00+02:00,1,x,1,1\n2000-01-01T07:30:00+02:00,2,x,1,1\n")
    obs = obsio.read_csv(path)
    assert list(obs.time) == [np.datetime64("2000-01-01T06:00:00"), np.datetime64("2000-01-01T05:30:00")]


@pytest.mark.parametrize("second", ["2000-01-01T06:00:00", "2000-01-01T08:00:00+02:00"])
def test_mixed_time_zones_refused(tmp_path, second):
    path = tmp_path / "o.csv"
    path.write_text(f"time,site,variable,value,error\n2000-01-01T06:00:00Z,1,x,1,1\n{second},2,x,1,1\n")
    with pytest.raises(ObservationError, match="o.csv, line 3: time .* but line 2 has zone Z; write every time in UTC"):
        obsio.read_csv(path)


def test_chunked_reading_keeps_line_numbers(tmp_path):
    path = tmp_path / "o.csv"
    rows = [f"2000-01-01T{h:02d}:00:00Z,{h % 40},x,{h},1" for h in range(20)]
    rows[13] = "2000-01-01T13:00:00Z,13,x,oops,1"
    path.write_text("time,site,variable,value,error\n" + "\n".join(rows) + "\n")
    with pytest.raises(ObservationError, match="line 15: column 'value' is not a number: 'oops'"):
        obsio.read_csv(path, chunk_rows=4)
    rows[13] = "2000-01-01T13:00:00Z,13,x,13,1"
    path.write_text("time,site,variable,value,error\n" + "\n".join(rows) + "\n")
    obs = obsio.read_csv(path, chunk_rows=4)
    assert list(obs.row) == list(range(2, 22)) and list(obs.value) == list(range(20))


@pytest.mark.parametrize("variant", ["plain", "crlf", "bom", "offset_zone", "no_final_newline", "spaces", "quoted",
                                     "blank_row", "two_coordinates"])
def test_whole_block_and_row_by_row_reading_agree(tmp_path, variant):
    """A plain file is split a block at a time; anything else (quotes, blank rows) row by row: same records."""
    header, zone = ("time,x,y,variable,value,error" if variant == "two_coordinates" else "time,site,variable,value,error",
                    "+02:00" if variant == "offset_zone" else "Z")
    rng = np.random.default_rng(1)
    rows = []
    for i in range(37):
        coords = f"{rng.uniform(0, 40)!r},{rng.uniform(0, 9)!r}" if variant == "two_coordinates" else f"{i % 40}"
        rows.append(f"2000-01-0{1 + i // 10}T{i % 24:02d}:00:00{zone},{coords},x,{rng.standard_normal()!r},{0.5 + i}")
    if variant == "spaces":
        rows = [r.replace(",", " , ") for r in rows]
    if variant == "quoted":
        rows[5] = rows[5].replace(",x,", ',"x",')
    if variant == "blank_row":
        rows.insert(9, "")
    end = "\r\n" if variant == "crlf" else "\n"
    text = end.join([header, *rows]) + ("" if variant == "no_final_newline" else end)
    data = (b"\xef\xbb\xbf" if variant == "bom" else b"") + text.encode()
    path = tmp_path / "o.csv"
    path.write_bytes(data)
    plain = obsio._read_csv_plain(path, 256)  # blocks of a few lines: records split across blocks
    assert (plain is None) == (variant in ("quoted", "blank_row"))
    whole = obsio.read_csv(path, chunk_rows=8)
    original = obsio._read_csv_plain
    try:
        obsio._read_csv_plain = lambda *a, **k: None
        by_row = obsio.read_csv(path, chunk_rows=8)
    finally:
        obsio._read_csv_plain = original
    for got in (whole, by_row):
        assert len(got) == 37
    for name in ("time", "variable", "value", "error", "source", "row", "qc"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(by_row, name))
    assert list(whole.coords) == list(by_row.coords)
    for c in whole.coords:
        np.testing.assert_array_equal(whole.coords[c], by_row.coords[c])
    if variant == "offset_zone":
        assert whole.time[0] == np.datetime64("1999-12-31T22:00:00")


def test_duplicates_named(tmp_path):
    obs = _obs(5)
    obs.time[3], obs.coords["site"][3] = obs.time[1], obs.coords["site"][1]
    with pytest.raises(ObservationError, match="mem, record 3: duplicate of mem, record 1"):
        obsio.screen(obs, ("x",), {"site": (0, 40)}, "error")


def test_ioda_layout_and_v2_names(tmp_path):
    import netCDF4

    from levda_cli.io import ioda

    obs = _obs(6)
    obs.qc[4] = 1  # written as PreQC != 0, read back as rejected
    path = tmp_path / "v3.nc"
    ioda.write_ioda(obs, path)
    with netCDF4.Dataset(path) as ds:
        assert list(ds.dimensions) == ["Location"] and {"MetaData", "ObsValue", "ObsError", "PreQC"} <= set(ds.groups)
        t = ds["MetaData"]["dateTime"]
        assert t.dtype == np.int64 and t.units.startswith("seconds since")
        assert hasattr(ds["ObsValue"]["x"], "_FillValue") and hasattr(ds["ObsError"]["x"], "_FillValue")
    back = obsfiles.read_observations([path])
    assert back.qc[np.argmin(np.abs(back.value - obs.value[4]))] == obsio.QC_PREQC
    # A v2 file: nlocs, MetaData/datetime strings, a missing value as a fill.
    v2 = tmp_path / "v2.nc"
    with netCDF4.Dataset(v2, "w") as ds:
        ds.createDimension("nlocs", 3)
        meta = ds.createGroup("MetaData")
        dtv = meta.createVariable("datetime", str, ("nlocs",))
        dtv[:] = np.array(["2000-01-01T06:00:00Z", "2000-01-01T12:00:00Z", "2000-01-01T18:00:00Z"], dtype=object)
        meta.createVariable("site", "f8", ("nlocs",))[:] = [1.0, 2.0, 3.5]
        fill = -3.3687953e38
        ds.createGroup("ObsValue").createVariable("x", "f4", ("nlocs",), fill_value=np.float32(fill))[:] = [1.0, fill, 3.0]
        ds.createGroup("ObsError").createVariable("x", "f4", ("nlocs",), fill_value=np.float32(fill))[:] = [0.5, 0.5, 0.5]
    back = obsfiles.read_observations([v2])
    assert list(back.value) == [1.0, 3.0] and list(back.coords["site"]) == [1.0, 3.5]
    assert back.time[1] == np.datetime64("2000-01-01T18:00:00")


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
    root["obs_value"].resize((3, 9))  # killed before it had grown its other obs arrays (if any)
    root.attrs["n_windows"] = 3
    assert xr.open_zarr(path).sizes["window"] == 2  # readers see the last complete window
    with AnalysisStore.open_or_create(path, _specs(), {}, {}) as store:
        assert store.n_windows == 2
        np.testing.assert_array_equal(store.read_last("a"), 2 * np.ones(3))
    repaired = zarr.open_group(path, mode="r", use_consolidated=False)
    assert repaired["a"].shape == (2, 3) and repaired["obs_value"].shape == (2, 6)  # the committed shapes
    assert xr.open_zarr(path).sizes["obs"] == 6


@pytest.mark.parametrize("chunk_bytes", [64, 4 << 20])
def test_levda_chunk_writer_writes_what_zarr_writes(tmp_path, monkeypatch, chunk_bytes):
    """A resumed store is read and appended to by levda's own chunk reader and writer (io/chunks.py, no
    zarr-python: a cron cycle's cost); every file it writes equals zarr-python's byte for byte: chunks
    shared by several windows, chunks crossed by one append, observation slots that grow, a chunk that
    holds only the fill value (not stored), integer arrays; and what it reads equals what was written."""
    from levda_cli.io import store as store_mod

    monkeypatch.setattr(store_mod, "CHUNK_BYTES", chunk_bytes)  # 64: two or three windows per chunk
    specs = {"a": ArraySpec(("member",), (3,), "f8"), "obs_value": ArraySpec(("obs",), (4,), "f8"),
             "k": ArraySpec((), (), "i8"), "flag": ArraySpec((), (), "i1")}
    rng = np.random.default_rng(0)
    windows = [{"a": np.full(3, np.nan) if i in (4, 5) else rng.normal(size=3),
                "obs_value": rng.normal(size=[2, 6, 3, 9, 1][i % 5]), "k": np.int64(i), "flag": np.int8(i % 2 - 1)}
               for i in range(10)]
    # runs (one open each) of commits: the first run creates the store (zarr-python), then goes on with
    # levda's writer after its first commit, as a resumed store does from its open
    runs = [[windows[0:1], windows[1:3]], [windows[3:5]], [windows[5:6], windows[6:9]], [windows[9:10]]]
    for io in ("zarr", "levda"):
        monkeypatch.setenv("LEVDA_STORE_IO", io)
        path = tmp_path / f"{io}.zarr"
        for r, commits in enumerate(runs):
            with AnalysisStore.open_or_create(path, specs, {"member": np.arange(3)}, {"title": "t"}) as store:
                assert (store._direct is not None) == (io == "levda" and r > 0)
                for batch in commits:
                    if store.n_windows:
                        np.testing.assert_array_equal(store.read_tail("k", 3),
                                                      [w["k"] for w in windows][:store.n_windows][-3:])
                        last = windows[store.n_windows - 1]["obs_value"]
                        np.testing.assert_array_equal(store.read_last("obs_value")[:last.size], last)
                        assert np.isnan(store.read_last("obs_value")[last.size:]).all()
                    store.append(batch)
                    assert (store._direct is not None) == (io == "levda")
    files = sorted(p.relative_to(tmp_path / "zarr.zarr") for p in (tmp_path / "zarr.zarr").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "levda.zarr") for p in (tmp_path / "levda.zarr").rglob("*")
                           if p.is_file())
    assert not any(f.name.startswith(".") and f.name.endswith(".partial") for f in files)
    for f in files:
        assert (tmp_path / "zarr.zarr" / f).read_bytes() == (tmp_path / "levda.zarr" / f).read_bytes(), f
    if chunk_bytes == 64:
        assert not (tmp_path / "levda.zarr" / "a" / "2.0").exists()  # windows 4 and 5: only NaN, no chunk
    ds = xr.open_zarr(tmp_path / "levda.zarr")
    assert ds.sizes["window"] == 10 and ds.sizes["obs"] == 9
    np.testing.assert_array_equal(ds["k"].values, np.arange(10))
    np.testing.assert_array_equal(ds["a"].values[6], windows[6]["a"])


def test_store_failure_before_first_commit_leaves_nothing(tmp_path):
    path = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError):
        with AnalysisStore.open_or_create(path, _specs(), {}, {}):
            raise RuntimeError("solver failed")
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_ioda_value_without_error_is_refused(tmp_path):
    import netCDF4

    from levda_cli.io import ioda

    path = tmp_path / "v3.nc"
    ioda.write_ioda(_obs(4), path)
    with netCDF4.Dataset(path, "a") as ds:
        var = ds["ObsError"]["x"]
        var.set_auto_mask(False)
        var[2] = var._FillValue
    with pytest.raises(ObservationError, match="v3.nc, location 2: ObsValue/x is present but ObsError/x is missing"):
        obsfiles.read_observations([path])


@pytest.mark.parametrize("times", [["2000-01-01T00:00:01Z", "2000-02-29T23:59:59Z", "1969-07-20T20:17:40Z"],
                                   ["2000-01-01T00:00:01z"], ["2000-01-01 00:00:01Z"], ["2000-01-01T00:00:01+00:00"],
                                   ["2000-01-01T00:00Z"], ["2000-02-30T00:00:00Z"], ["2000-01-01T00:00:60Z"],
                                   [" 2000-01-01T00:00:01Z"], ["2000-01-01T00:00:01Z", "2000-01-01T00:00:02"]])
def test_times_parsed_as_bytes_or_one_by_one_agree(times):
    """'YYYY-MM-DDTHH:MM:SSZ' is checked and parsed as a block of bytes; anything else (another spelling,
    a date that does not exist, mixed zones) one string at a time: the same times or the same error."""
    from pathlib import Path

    col, lines = np.array(times, dtype=object), np.arange(2, 2 + len(times))

    def parse(fast):
        original = obsio._parse_plain_utc
        try:
            if not fast:
                obsio._parse_plain_utc = lambda *a: None
            return list(obsio._parse_distinct_times(col, Path("o.csv"), lines, []))
        except ObservationError as err:
            return str(err)
        finally:
            obsio._parse_plain_utc = original

    assert parse(True) == parse(False)
    assert (obsio._parse_plain_utc(col, lines, []) is not None) == (len(times) == 3)


def test_truth_read_without_xarray_equals_xarray():
    """The sample truth read straight from Zarr (the run's fast path) and through xarray: same times,
    fields, parameters; a store it does not recognise (another benchmark) goes to xarray's checks."""
    from pathlib import Path

    from levda_cli.errors import StoreError
    from levda_cli.io import trajectories as tr

    path = Path(__file__).parent.parent / "sample_data" / "tsunami_truth.zarr"
    fields, params = ["u", "v", "eta"], ["x0", "y0", "nope"]
    fast = tr._read_plain(path, fields, params, 0, "tsunami", None)
    assert fast is not None
    ds = tr.open_trajectories(path)
    index, at = tr.truth_lookup(ds, fields, 0, benchmark="tsunami")
    assert fast[0] == index and len(index) > 3
    for i in (0, len(index) // 2, len(index) - 1):
        np.testing.assert_array_equal(fast[1](i), at(i))
    assert fast[2] == {p: float(ds[p].values[0]) for p in ("x0", "y0")}
    assert tr.read_truth(path, fields, params, 0, "tsunami")[2] == fast[2]
    assert tr._read_plain(path, fields, params, 0, "lorenz96", None) is None
    with pytest.raises(StoreError, match="truth store of 'tsunami', this run is 'lorenz96'"):
        tr.read_truth(path, fields, params, 0, "lorenz96")


"""Property-based tests (hypothesis): generated observation files and configs, valid and mutated.

Valid files round-trip through every format; mutated ones are read or refused with a
``LevdaError`` (exit code 2-5), never another exception; ``levda obs check`` on them exits 0
or 3, never 1.
"""

import datetime as dt
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from levda_cli.cli.main import app
from levda_cli.config import AssimilateConfig, load_config
from levda_cli.errors import LevdaError
from levda_cli.io import observations as obsio
from levda_cli.io import obsfiles

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
EPOCH = np.datetime64("2000-01-01T00:00:00", "s")

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-9, max_value=1e9, allow_nan=False, allow_infinity=False)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)


@st.composite
def observation_sets(draw):
    n = draw(st.integers(1, 40))
    n_coord = draw(st.integers(1, 3))
    coord_names = draw(st.lists(st.sampled_from(["x", "y", "z", "lon", "lat", "site"]), min_size=n_coord,
                                max_size=n_coord, unique=True))
    seconds = np.array(draw(st.lists(st.integers(0, 10**9), min_size=n, max_size=n)), np.int64)
    return obsio.ObservationSet(
        time=EPOCH + seconds.astype("timedelta64[s]"),
        coords={c: np.array(draw(st.lists(finite, min_size=n, max_size=n))) for c in coord_names},
        variable=np.array(draw(st.lists(names, min_size=n, max_size=n)), dtype=object),
        value=np.array(draw(st.lists(finite, min_size=n, max_size=n))),
        error=np.array(draw(st.lists(positive, min_size=n, max_size=n))),
        source=np.full(n, "generated", dtype=object),
        row=np.arange(n),
    )


def _records(obs):
    """Records as a sorted list of tuples (IODA regroups records by location)."""
    cols = [obs.time.astype(np.int64), *(obs.coords[c] for c in sorted(obs.coords)), obs.variable.astype(str),
            obs.value, obs.error]
    return sorted(zip(*(c.tolist() for c in cols)))


@pytest.mark.parametrize("fmt,suffix", [("csv", ".csv"), ("netcdf", ".nc"), ("ioda", ".nc")])
@SETTINGS
@given(obs=observation_sets())
def test_valid_files_round_trip(tmp_path, fmt, suffix, obs):
    path = tmp_path / f"obs-{fmt}{suffix}"
    obsfiles.write_observations(obs, path, fmt)
    back = obsfiles.read_observations([path])
    assert _records(back) == _records(obs)
    assert (back.qc == 0).all()


_GOOD = obsio.ObservationSet(
    time=EPOCH + np.array([3600, 3600, 7200, 10800], "timedelta64[s]"),
    coords={"x": np.array([0.5, 1.5, 2.5, 3.5]), "y": np.array([1.0, 2.0, 3.0, 4.0])},
    variable=np.array(["u", "v", "u", "v"], dtype=object), value=np.array([1.0, -2.0, 3.5, 0.25]),
    error=np.array([0.1, 0.2, 0.1, 0.2]), source=np.full(4, "g", dtype=object), row=np.arange(4))


def _check(path: Path):
    """Read directly (only LevdaError may escape) and through `levda obs check` (exit 0 or 3)."""
    try:
        obsfiles.read_observations([path])
    except LevdaError as err:
        assert 2 <= err.exit_code <= 5
    result = CliRunner().invoke(app, ["obs", "check", str(path)])
    assert result.exit_code in (0, 3), result.output
    assert "Traceback" not in result.output


@st.composite
def byte_mutations(draw, size: int):
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]))
        pos = draw(st.integers(0, max(0, size - 1)))
        ops.append((kind, pos, draw(st.integers(0, 255))))
    return ops


def _mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for kind, pos, byte in ops:
        pos = min(pos, max(0, len(b) - 1))
        if not b:
            break
        if kind == "flip":
            b[pos] ^= byte or 1
        elif kind == "delete":
            del b[pos]
        elif kind == "insert":
            b.insert(pos, byte)
        elif kind == "truncate":
            del b[pos:]
        else:
            b[pos:pos] = b[pos:pos + 20]
    return bytes(b)


@SETTINGS
@given(data=st.data())
def test_mutated_csv_is_read_or_refused_cleanly(tmp_path, data):
    path = tmp_path / "m.csv"
    obsio.write_csv(_GOOD, path)
    raw = path.read_bytes()
    prefix = data.draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    crlf = data.draw(st.booleans())
    raw = prefix + (raw.replace(b"\n", b"\r\n") if crlf else raw)
    path.write_bytes(_mutate(raw, data.draw(byte_mutations(len(raw)))))
    _check(path)


@SETTINGS
@given(data=st.data())
def test_mutated_netcdf_is_read_or_refused_cleanly(tmp_path, data):
    """Structural mutations a writer could make (types, shapes, names, fills, units), and truncation."""
    import netCDF4

    ioda = data.draw(st.booleans())
    path = tmp_path / "m.nc"
    obsfiles.write_observations(_GOOD, path, "ioda" if ioda else "netcdf")
    mutation = data.draw(st.sampled_from(["dtype", "shape", "drop", "units", "fill", "attr", "truncate", "nan"]))
    if mutation == "truncate":
        raw = path.read_bytes()
        path.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1))])
        _check(path)
        return
    src = netCDF4.Dataset(path)
    src.set_auto_mask(False)
    groups = [src] + list(src.groups.values())
    candidates = [(g.path, v) for g in groups for v in g.variables if v != "Location"]
    gpath, target = data.draw(st.sampled_from(candidates))
    out = tmp_path / "mut.nc"
    with netCDF4.Dataset(out, "w") as dst:
        _copy(src, dst, gpath, target, mutation, data)
    src.close()
    _check(out)


def _copy(src, dst, gpath, target, mutation, data):
    for name, dim in src.dimensions.items():
        dst.createDimension(name, len(dim))
    if mutation == "shape":
        dst.createDimension("extra", data.draw(st.integers(1, 3)))
        dst.createDimension("other", data.draw(st.integers(0, 7)))
    for attr in src.ncattrs():
        dst.setncattr(attr, src.getncattr(attr))
    if mutation == "attr":
        dst.setncattr("coordinate_names", data.draw(st.sampled_from(["", "x y z", "q", "x"])))

    def copy_group(s, d):
        for vname, var in s.variables.items():
            hit = s.path == gpath and vname == target
            if hit and mutation == "drop":
                continue
            dims, dtype = var.dimensions, var.dtype
            values = var[:]
            fill = getattr(var, "_FillValue", None)
            if hit and mutation == "dtype":
                dtype = data.draw(st.sampled_from([str, "f4", "i4", "i8", "u1"]))
                if dtype is str:
                    values = np.array([str(v) for v in np.ravel(values)], dtype=object)
                else:
                    values = np.asarray(values if np.asarray(values).dtype.kind in "iuf" else np.zeros(len(values)))
                    values = np.nan_to_num(values).clip(-100, 100).astype(dtype)
                fill = None
            if hit and mutation == "shape":
                if data.draw(st.booleans()):
                    dims = (*dims, "extra")
                    values = np.repeat(np.asarray(values)[..., None], len(dst.dimensions["extra"]), axis=-1)
                else:
                    dims = ("other",)
                    values = np.resize(np.asarray(values), len(dst.dimensions["other"]))
            v = d.createVariable(vname, dtype, dims, fill_value=fill if fill is not None else None)
            v.set_auto_mask(False)
            for attr in var.ncattrs():
                if attr != "_FillValue":
                    v.setncattr(attr, var.getncattr(attr))
            if hit and mutation == "units":
                v.setncattr("units", data.draw(st.sampled_from(["days since 2000-01-01", "seconds", "", "s since x",
                                                                "seconds since 2000-13-01"])))
            if hit and mutation == "fill" and np.asarray(values).dtype.kind == "f":
                values = np.asarray(values).copy()
                values[0] = -3.3687953e38
            if hit and mutation == "nan" and np.asarray(values).dtype.kind == "f":
                values = np.asarray(values).copy()
                values[-1] = np.nan
            if np.size(values):
                v[:] = values
        for gname, grp in s.groups.items():
            copy_group(grp, d.createGroup(gname))

    copy_group(src, dst)


_VALID = {
    "model": {"name": "lorenz96", "size": 40, "dt": 0.05},
    "time": {"epoch": dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc), "unit_seconds": 432000.0},
    "window": {"length": 0.05, "shift": 0.05, "start": 0.0},
    "ensemble": {"size": 20, "seed": 0, "spinup": 20.0, "perturbation": 1.0},
    "parameters": {"F": {"value": 8.0, "estimate": False}},
    "inflation": {"finite_size": True, "multiplicative": 1.0, "rtps": 0.0},
    "solver": {"method": "gauss-newton", "max_iterations": 20, "tolerance": 1e-3, "rotate": False},
    "observations": {"on_invalid": "error", "max_windows": 1000},
    "output": {"members": True, "precision": "float64", "commit_seconds": 2.0},
}
_WILD = st.one_of(st.floats(), st.integers(-2**70, 2**70), st.text(max_size=12), st.booleans(),
                  st.lists(st.integers(), max_size=3), st.dictionaries(names, st.integers(), max_size=2),
                  st.datetimes(timezones=st.just(dt.timezone.utc)))


def _toml(data: dict) -> str:
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float):
            return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
        if isinstance(v, (int, str)):
            return str(v) if isinstance(v, int) else '"' + v.encode("unicode_escape").decode().replace('"', '\\"') + '"'
        if isinstance(v, dt.datetime):
            return v.isoformat()
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(v)

    lines = []

    def table(prefix, d):
        scalars = {k: v for k, v in d.items() if not (isinstance(v, dict) and k in ("parameters", "F") or
                                                       isinstance(v, dict) and prefix == "")}
        if prefix:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{k} = {value(v)}")
        for k, v in d.items():
            if k not in scalars:
                table(f"{prefix}.{k}" if prefix else k, v)

    table("", data)
    return "\n".join(lines) + "\n"


@SETTINGS
@given(data=st.data())
def test_generated_configs_are_valid_or_refused_with_exit_2(tmp_path, data):
    """A valid config with a few keys set to anything: either valid (and then the config-driven setup
    runs), or refused as a configuration error; never another exception."""
    import copy

    from levda_cli.config import window_setup
    from levda_cli.cycling import Clock

    cfg = copy.deepcopy(_VALID)
    for _ in range(data.draw(st.integers(1, 3))):
        table = data.draw(st.sampled_from(sorted(k for k in cfg if k != "parameters")))
        key = data.draw(st.sampled_from(sorted(cfg[table]) + ["unknown_key"]))
        cfg[table][key] = data.draw(_WILD)
    text = _toml(cfg)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        pass
    path = tmp_path / "c.toml"
    path.write_text(text)
    try:
        parsed = load_config(AssimilateConfig, path)
        spec = parsed.model.spec()
        Clock.from_config(parsed, spec)
        window_setup(parsed, spec)
    except LevdaError as err:
        assert err.exit_code in (2, 4), err

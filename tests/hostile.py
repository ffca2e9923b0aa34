"""A collection of bad and unusual inputs, as a new user's files and a cron job's faults make them.

``build(root)`` writes every case's files under ``root`` and returns the cases: a class, a name,
the ``levda`` arguments (run with ``root`` as the working directory), and what a user may expect:

- ``"ok"``: valid but unusual input (a byte-order mark, CRLF, zone offsets): exit 0;
- ``"refuse"``: invalid input: a clear message and an exit code in 2..7 (no traceback, no hang,
  no silent acceptance), and ``code`` when one exit code is the right one.

Used by ``tests/test_hostile.py`` (in-process, every case, in CI) and by
``benchmarks/robustness.py`` (real subprocesses, with timing; writes ``benchmarks/results/robustness.md``).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
HEADER = "time,site,variable,value,error"
GOOD_ROWS = [f"2000-01-01T06:00:00Z,{s}.0,x,{np.sin(s):.6f},1.0" for s in range(40)] + [
    f"2000-01-01T12:00:00Z,{s}.0,x,{np.cos(s):.6f},1.0" for s in range(40)]
FAST = ["--set", "ensemble.spinup=1.0", "--set", "ensemble.size=8", "-q"]


@dataclasses.dataclass
class Case:
    cls: str
    name: str
    args: list[str]
    expect: str = "refuse"  # or "ok"
    code: int | None = None
    needle: str | None = None  # a word the message must contain (the file or item named)


def _csv(root: Path, name: str, text: str | bytes, *, rows=None) -> str:
    path = root / "csv" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return str(path.relative_to(root))


def _good_csv_text(extra: str = "", header: str = HEADER, sep: str = "\n") -> str:
    return sep.join([header, *GOOD_ROWS]) + sep + extra


def _assim(obs: str, *more: str) -> list[str]:
    return ["assimilate", obs, "--model", "lorenz96", "--config", "l96.toml", "--out", "out.zarr", *FAST, *more]


def _csv_cases(root: Path) -> list[Case]:
    cases: list[Case] = []
    good = _good_csv_text()

    def both(cls, name, data, expect="refuse", code=3, needle=None, check_too=True):
        rel = _csv(root, f"{name}.csv", data)
        out = [Case(cls, f"{name} (assimilate)", _assim(rel, "--out", f"out-{name}.zarr"), expect, code,
                    needle)]
        if check_too:
            out.append(Case(cls, f"{name} (obs check)", ["obs", "check", rel], expect, code, needle))
        return out

    # -- bytes and encodings -------------------------------------------------------------------
    b = "bytes and encodings"
    cases += both(b, "bom", "\ufeff" + good, "ok", 0)
    cases += both(b, "crlf", _good_csv_text(sep="\r\n"), "ok", 0)
    cases += both(b, "quoted_fields", good.replace(",x,", ',"x",').replace("time,site", '"time","site"'), "ok", 0)
    cases += both(b, "bom_crlf_quoted", "\ufeff" + _good_csv_text(sep="\r\n").replace(",x,", ',"x",'), "ok", 0)
    cases += both(b, "trailing_blank_lines", good + "\n\n  \n", "ok", 0)
    cases += both(b, "spaces_around_fields", good.replace(",x,", ", x ,"), "ok", 0)
    cases += both(b, "latin1_variable", good.encode() + "2000-01-01T06:00:00Z,3.0,\xe9t\xe9,1.0,1.0\n".encode("latin-1"),
                  needle="line 82")
    cases += both(b, "latin1_header", ("time,site,variable,value,error,r\xe9marque\n".encode("latin-1")
                                        + b"2000-01-01T06:00:00Z,3.0,x,1.0,1.0,a\n"), needle="line 1")
    cases += both(b, "binary_garbage", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    cases += both(b, "gzip_named_csv", gzip.compress(good.encode()), needle="gzip")
    cases += both(b, "nul_in_row", good + "2000-01-01T18:00:00Z,3.0,x,1.\x005,1.0\n", needle="line 82")
    cases += both(b, "nul_in_header", "time,si\x00te,variable,value,error\n" + "\n".join(GOOD_ROWS) + "\n",
                  needle="line 1")
    cases += both(b, "utf16", good.encode("utf-16"))
    cases += both(b, "empty_file", "", needle="empty")
    cases += both(b, "only_whitespace", "\n\n   \n")
    cases += both(b, "header_only", HEADER + "\n", needle="no observation")
    cases += both(b, "tab_separated", good.replace(",", "\t"), needle="line 1")
    cases += both(b, "semicolon_separated", good.replace(",", ";"), needle="line 1")
    cases += both(b, "unterminated_quote", good + '2000-01-01T18:00:00Z,3.0,"x,1.0,1.0\n')
    cases += both(b, "duplicate_header_column", "time,site,variable,value,error,value\n"
                  "2000-01-01T06:00:00Z,3.0,x,1.0,1.0,2.0\n", needle="value")
    cases += both(b, "missing_error_column", "time,site,variable,value\n2000-01-01T06:00:00Z,3.0,x,1.0\n",
                  needle="error")
    cases += both(b, "huge_line", good + "2000-01-01T18:00:00Z,3.0,x," + "1" * 300_000 + ",1.0\n")
    cases += both(b, "html_page", "<!DOCTYPE html><html><body>404 Not Found</body></html>\n")
    cases += both(b, "too_many_fields", good + "2000-01-01T18:00:00Z,3.0,x,1.0,1.0,7\n", needle="line 82")
    cases += both(b, "too_few_fields", good + "2000-01-01T18:00:00Z,3.0,x\n", needle="line 82")
    # -- times ----------------------------------------------------------------------------------
    t = "times"
    row = "{},3.0,x,1.0,1.0\n"
    for name, text in [("empty_time", ""), ("nat_time", "NaT"), ("nan_time", "nan"), ("number_time", "12345"),
                       ("float_time", "36000.5"), ("year_2100", "2100-01-01T00:00:00Z"),
                       ("year_9999", "9999-12-31T00:00:00Z"), ("month_13", "2000-13-01T00:00:00Z"),
                       ("hour_25", "2000-01-01T25:00:00Z"), ("word_time", "tomorrow"),
                       ("year_0001", "0001-01-01T00:00:00Z"), ("negative_year", "-2000-01-01T00:00:00Z"),
                       ("five_digit_year", "12000-01-01T00:00:00Z"), ("feb_30", "2000-02-30T00:00:00Z"),
                       ("garbage_after_time", "2000-01-01T18:00:00Zjunk"), ("time_inf", "inf")]:
        far = name in ("year_2100", "year_9999", "year_0001")
        # valid times far from any window: obs check (no config, no windows) accepts them, assimilate does not
        out = both(t, name, good + row.format(text), needle="line 82")
        if far:
            out[1].expect, out[1].code, out[1].needle = "ok", 0, None
        cases += out
    cases += both(t, "date_only", good.replace("2000-01-01T12:00:00Z", "2000-01-02"), needle="line")
    cases += both(t, "zone_offsets_all_rows", good.replace("T06:00:00Z", "T08:00:00+02:00").replace(
        "T12:00:00Z", "T14:00:00+02:00"), "ok", 0)
    cases += both(t, "fraction_of_second", good + row.format("2000-01-01T18:00:00.5Z"), needle="line 82")
    cases += both(t, "space_separator", good.replace("T06:00:00Z", " 06:00:00Z").replace("T12:00:00Z", " 12:00:00Z"),
                  "ok", 0)
    cases += both(t, "lowercase_z", good.replace(":00Z", ":00z"), "ok", 0)
    # -- values ---------------------------------------------------------------------------------
    v = "values and records"
    row = "2000-01-01T18:00:00Z,{},{},{},{}\n"
    for name, fields in [("nan_value", ("3.0", "x", "nan", "1.0")), ("inf_value", ("3.0", "x", "inf", "1.0")),
                         ("overflow_value", ("3.0", "x", "1e400", "1.0")), ("empty_value", ("3.0", "x", "", "1.0")),
                         ("word_value", ("3.0", "x", "high", "1.0")), ("hex_value", ("3.0", "x", "0x10", "1.0")),
                         ("nan_error", ("3.0", "x", "1.0", "nan")), ("zero_error", ("3.0", "x", "1.0", "0")),
                         ("negative_error", ("3.0", "x", "1.0", "-1")), ("inf_error", ("3.0", "x", "1.0", "inf")),
                         ("empty_error", ("3.0", "x", "1.0", "")), ("unknown_variable", ("3.0", "T", "1.0", "1.0")),
                         ("empty_variable", ("3.0", "", "1.0", "1.0")), ("site_40", ("40.0", "x", "1.0", "1.0")),
                         ("site_negative", ("-1.0", "x", "1.0", "1.0")), ("site_nan", ("nan", "x", "1.0", "1.0")),
                         ("site_empty", ("", "x", "1.0", "1.0")), ("site_huge", ("1e308", "x", "1.0", "1.0"))]:
        # obs check without a model cannot know the variables or the domain: checked with --model
        rel = _csv(root, f"{name}.csv", good + row.format(*fields))
        cases.append(Case(v, f"{name} (assimilate)", _assim(rel, "--out", f"out-{name}.zarr"), "refuse", 3,
                          "line 82"))
        cases.append(Case(v, f"{name} (obs check --model)", ["obs", "check", rel, "--model", "lorenz96"],
                          "refuse", 3, "line 82"))
    cases += both(v, "duplicate_record", good + GOOD_ROWS[5] + "\n", needle="line 82")
    cases += both(v, "unknown_coordinate_column", "time,lat,variable,value,error\n2000-01-01T06:00:00Z,3.0,x,1,1\n",
                  check_too=False, needle="lat")
    cases += both(v, "two_coordinates_for_1d", "time,site,depth,variable,value,error\n"
                  "2000-01-01T06:00:00Z,3.0,1.0,x,1,1\n", check_too=False, needle="depth")
    # on_invalid = "reject": counted and the run goes on (exit 0)
    rel = _csv(root, "reject_mixed.csv", good + "2000-01-01T18:00:00Z,3.0,x,nan,1.0\n"
               "2000-01-01T18:00:00Z,3.0,T,1.0,1.0\n2000-01-01T18:00:00Z,50.0,x,1.0,1.0\n")
    cases.append(Case(v, "reject mode counts bad records", _assim(rel, "--out", "out-reject.zarr", "--set",
                                                                 'observations.on_invalid="reject"'), "ok", 0))
    return cases


def _netcdf_cases(root: Path) -> list[Case]:
    import netCDF4

    d = root / "nc"
    d.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def flat(name, *, time=None, time_dtype="i8", units="seconds since 1970-01-01T00:00:00Z", value=None,
             value_dtype="f8", error_dtype="f8", variable=None, extra=None, dims=None, drop=(), site=None):
        path = d / f"{name}.nc"
        n = 80
        with netCDF4.Dataset(path, "w") as ds:
            ds.createDimension("obs", n)
            if dims:
                for dn, size in dims.items():
                    ds.createDimension(dn, size)
            base_t = np.repeat([946706400, 946728000], 40)
            if "time" not in drop:
                tv = ds.createVariable("time", time_dtype, ("obs",))
                if units is not None:
                    tv.units = units
                tv[:] = base_t if time is None else time
            if "site" not in drop:
                sv = ds.createVariable("site", "f8", ("obs",))
                sv[:] = np.tile(np.arange(40.0), 2) if site is None else site
            if "variable" not in drop:
                vv = ds.createVariable("variable", str, ("obs",))
                vv[:] = np.array(["x"] * n, dtype=object) if variable is None else variable
            if "value" not in drop:
                if value is None:
                    ds.createVariable("value", value_dtype, ("obs",))[:] = np.sin(np.arange(n))
                else:
                    value(ds)
            if "error" not in drop:
                if error_dtype == "str":
                    ev = ds.createVariable("error", str, ("obs",))
                    ev[:] = np.array(["1.0"] * n, dtype=object)
                else:
                    ds.createVariable("error", error_dtype, ("obs",))[:] = np.ones(n)
            ds.coordinate_names = "site"
            if extra:
                extra(ds)
        return str(path.relative_to(root))

    def both(name, rel, expect="refuse", code=3, needle=None):
        return [Case("NetCDF (flat)", f"{name} (assimilate)", _assim(rel, "--out", f"out-nc-{name}.zarr"), expect,
                     code, needle),
                Case("NetCDF (flat)", f"{name} (obs check)", ["obs", "check", rel], expect, code, needle)]

    def strings(var, n=80, fmt="{}"):
        def make(ds):
            v = ds.createVariable(var, str, ("obs",))
            v[:] = np.array([fmt.format(np.sin(i)) for i in range(n)], dtype=object)
        return make

    cases += both("valid", flat("valid"), "ok", 0)
    cases += both("value_as_strings", flat("value_as_strings", value=strings("value")), needle="value")
    cases += both("error_as_strings", flat("error_as_strings", error_dtype="str"), needle="error")

    def time_strings(name):
        path = d / f"{name}.nc"
        flat(name, drop=("time",))
        with netCDF4.Dataset(path, "a") as ds:
            tv = ds.createVariable("time", str, ("obs",))
            tv.units = "seconds since 1970-01-01T00:00:00Z"
            tv[:] = np.array(["2000-01-01T06:00:00Z"] * 80, dtype=object)
        return str(path.relative_to(root))

    cases += both("time_as_strings", time_strings("time_as_strings"), needle="time")
    cases += both("time_as_float_fraction", flat("time_as_float_fraction", time_dtype="f8",
                                                 time=np.repeat([946706400.5, 946728000.0], 40)), needle="time")
    cases += both("time_as_float_whole", flat("time_as_float_whole", time_dtype="f8"), "ok", 0)
    cases += both("time_days_since", flat("time_days_since", units="days since 2000-01-01"), needle="units")
    cases += both("time_no_units", flat("time_no_units", units=None), needle="units")
    cases += both("time_units_garbage", flat("time_units_garbage", units="seconds since yesterday"), needle="units")

    def value_2d(ds):
        ds.createDimension("two", 2)
        ds.createVariable("value", "f8", ("obs", "two"))[:] = np.ones((80, 2))

    cases += both("value_2d", flat("value_2d", value=value_2d), needle="value")

    def value_other_dim(ds):
        ds.createDimension("other", 79)
        ds.createVariable("value", "f8", ("other",))[:] = np.ones(79)

    cases += both("value_length_mismatch", flat("value_length_mismatch", value=value_other_dim), needle="value")
    cases += both("value_scalar", flat("value_scalar", value=lambda ds: ds.createVariable("value", "f8", ())),
                  needle="value")
    cases += both("missing_value", flat("missing_value", drop=("value",)), needle="value")
    cases += both("missing_time", flat("missing_time", drop=("time",)), needle="time")
    cases += both("variable_as_ints", flat("variable_as_ints", drop=("variable",),
                                           extra=lambda ds: ds.createVariable("variable", "i4", ("obs",))),
                  needle="variable")
    cases += both("nan_time_float", flat("nan_time_float", time_dtype="f8",
                                         time=np.r_[np.repeat([946706400.0, 946728000.0], 40)[:-1], np.nan]),
                  needle="time")
    cases += both("time_year_9999", flat("time_year_9999", time=np.r_[np.repeat([946706400, 946728000], 40)[:-1],
                                                                      253402214400]), needle="time")
    cases += both("time_int_overflow", flat("time_int_overflow", time=np.r_[np.repeat([946706400, 946728000], 40)[:-1],
                                                                            np.iinfo(np.int64).max]), needle="time")
    cases += both("value_with_fill", flat("value_with_fill", value=lambda ds: _with_fill(ds)), needle="value")
    cases += both("coordinate_names_missing_var", flat(
        "coordinate_names_missing_var", extra=lambda ds: setattr(ds, "coordinate_names", "site depth")), needle="depth")
    cases += both("coordinate_as_strings", flat("coordinate_as_strings", drop=("site",), extra=strings("site")),
                  needle="site")
    cases += both("empty_obs", _empty_flat(d / "empty_obs.nc", root), needle="no observation")
    # files that are not (whole) NetCDF
    good = (d / "valid.nc").read_bytes()
    for name, data in [("truncated_half", good[: len(good) // 2]), ("truncated_header", good[:100]),
                       ("zero_bytes", b""), ("garbage_nc", bytes(range(256)) * 16),
                       ("csv_named_nc", _good_csv_text().encode()), ("gzip_named_nc", gzip.compress(good))]:
        p = d / f"{name}.nc"
        p.write_bytes(data)
        cases += both(name, str(p.relative_to(root)), needle=name)
    p = d / "no_suffix"
    p.write_bytes(good)
    cases += both("unknown_suffix", str(p.relative_to(root)), needle="no_suffix")
    (d / "a_directory.nc").mkdir(exist_ok=True)
    cases += both("directory_as_file", str((d / "a_directory.nc").relative_to(root)), needle="a_directory")
    return cases


def _with_fill(ds):
    v = ds.createVariable("value", "f8", ("obs",), fill_value=-9999.0)
    data = np.sin(np.arange(80))
    data[7] = -9999.0
    v.set_auto_mask(False)
    v[:] = data


def _empty_flat(path: Path, root: Path) -> str:
    import netCDF4

    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("obs", 0)
        t = ds.createVariable("time", "i8", ("obs",))
        t.units = "seconds since 1970-01-01T00:00:00Z"
        ds.createVariable("site", "f8", ("obs",))
        ds.createVariable("variable", str, ("obs",))
        ds.createVariable("value", "f8", ("obs",))
        ds.createVariable("error", "f8", ("obs",))
        ds.coordinate_names = "site"
    return str(path.relative_to(root))


def _ioda_cases(root: Path) -> list[Case]:
    import netCDF4

    d = root / "ioda"
    d.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    n = 80
    times = np.repeat([946706400, 946728000], 40)

    def ioda(name, *, v2=False, override=None, skip=(), extra=None):
        """A valid IODA file with some variables replaced: ``override[(group, var)] = (dtype, data, dims)``."""
        override = dict(override or {})
        path = d / f"{name}.nc"
        dim = "nlocs" if v2 else "Location"
        with netCDF4.Dataset(path, "w") as ds:
            ds.createDimension(dim, n)
            groups = {g: ds.createGroup(g) for g in ("MetaData", "ObsValue", "ObsError") if g not in skip}
            if v2:
                default_t = ("datetime", (str, np.array(["2000-01-01T06:00:00Z"] * 40 + ["2000-01-01T12:00:00Z"] * 40,
                                                        dtype=object), None))
            else:
                default_t = ("dateTime", ("i8", times, None))
            specs = {("MetaData", default_t[0]): default_t[1],
                     ("MetaData", "site"): ("f8", np.tile(np.arange(40.0), 2), None),
                     ("ObsValue", "x"): ("f8", np.sin(np.arange(n)), None),
                     ("ObsError", "x"): ("f8", np.ones(n), None)}
            specs.update(override)
            for (g, var), (dtype, data, dims) in specs.items():
                if g in skip or (g, var) in skip:
                    continue
                grp = groups.get(g) or ds.createGroup(g)
                groups[g] = grp
                for dn in dims or ():
                    if dn not in ds.dimensions:
                        ds.createDimension(dn, np.shape(data)[list(dims).index(dn)])
                fill = -3.3687953e38 if dtype == "f8" and g in ("ObsValue", "ObsError") else None
                v = grp.createVariable(var, dtype, tuple(dims) if dims else (dim,), fill_value=fill)
                if var == "dateTime" and dtype != str:
                    v.units = "seconds since 1970-01-01T00:00:00Z"
                v.set_auto_mask(False)
                if data is not None:
                    v[:] = data
            ds.coordinate_names = "site"
            if extra:
                extra(ds)
        return str(path.relative_to(root))

    def both(name, rel, expect="refuse", code=3, needle=None):
        return [Case("IODA", f"{name} (assimilate)", _assim(rel, "--out", f"out-ioda-{name}.zarr"), expect, code,
                     needle),
                Case("IODA", f"{name} (obs check)", ["obs", "check", rel], expect, code, needle)]

    strings = np.array([f"{np.sin(i)}" for i in range(n)], dtype=object)
    cases += both("valid_v3", ioda("valid_v3"), "ok", 0)
    cases += both("valid_v2", ioda("valid_v2", v2=True), "ok", 0)
    cases += both("obsvalue_as_strings", ioda("obsvalue_as_strings", override={("ObsValue", "x"): (str, strings, None)}),
                  needle="ObsValue")
    cases += both("obserror_as_strings", ioda("obserror_as_strings", override={
        ("ObsError", "x"): (str, np.array(["1"] * n, dtype=object), None)}), needle="ObsError")
    v2times = np.array(["2000-01-01T06:00:00Z"] * 40 + ["2000-01-01T12:00:00Z"] * 40, dtype=object)
    cases += both("v2_strings_under_v3_name", ioda("v2_strings_under_v3_name", override={
        ("MetaData", "dateTime"): (str, v2times, None)}), "ok", 0)
    cases += both("datetime_float", ioda("datetime_float", override={
        ("MetaData", "dateTime"): ("f8", np.repeat([946706400.25, 946728000.0], 40), None)}), needle="dateTime")
    cases += both("obsvalue_2d", ioda("obsvalue_2d", override={
        ("ObsValue", "x"): ("f8", np.ones((n, 2)), ("Location", "two"))}), needle="ObsValue")
    cases += both("obserror_length_mismatch", ioda("obserror_length_mismatch", override={
        ("ObsError", "x"): ("f8", np.ones(n - 1), ("other",))}), needle="ObsError")
    cases += both("coordinate_length_mismatch", ioda("coordinate_length_mismatch", override={
        ("MetaData", "site"): ("f8", np.ones(n - 3), ("short",))}), needle="site")
    cases += both("coordinate_as_strings", ioda("coordinate_as_strings", override={
        ("MetaData", "site"): (str, np.array(["3"] * n, dtype=object), None)}), needle="site")
    cases += both("no_obserror_group", ioda("no_obserror_group", skip=("ObsError",)), needle="ObsError")
    cases += both("no_metadata_group", ioda("no_metadata_group", skip=("MetaData",)), needle="MetaData")
    cases += both("obsvalue_without_error", ioda("obsvalue_without_error", override={
        ("ObsValue", "y"): ("f8", np.ones(n), None)}), needle="ObsError/y")
    cases += both("no_location_dim", _ioda_no_dim(d / "no_location_dim.nc", root), needle="Location")
    cases += both("v2_bad_datetime", ioda("v2_bad_datetime", v2=True, override={
        ("MetaData", "datetime"): (str, np.array(["soon"] * n, dtype=object), None)}), needle="datetime")
    cases += both("v2_empty_datetime", ioda("v2_empty_datetime", v2=True, override={
        ("MetaData", "datetime"): (str, np.array([""] * n, dtype=object), None)}), needle="datetime")
    cases += both("datetime_fill", ioda("datetime_fill", extra=_datetime_fill, skip=(("MetaData", "dateTime"),)),
                  needle="dateTime")
    cases += both("preqc_as_strings", ioda("preqc_as_strings", override={
        ("PreQC", "x"): (str, np.array(["0"] * n, dtype=object), None)}), needle="PreQC")
    cases += both("empty_obsvalue_group", ioda("empty_obsvalue_group", skip=(("ObsValue", "x"),)),
                  needle="ObsValue")
    cases += both("nan_obsvalue", ioda("nan_obsvalue", override={
        ("ObsValue", "x"): ("f8", np.r_[np.ones(n - 1), np.nan], None)}), needle="record 79")
    cases += both("datetime_year_9999", ioda("datetime_year_9999", override={
        ("MetaData", "dateTime"): ("i8", np.r_[times[:-1], 253402214400], None)}), needle="9999")
    cases += both("datetime_int32", ioda("datetime_int32", override={
        ("MetaData", "dateTime"): ("i4", times.astype(np.int32), None)}), "ok", 0)
    cases += both("metadata_not_group", _ioda_meta_var(d / "metadata_not_group.nc", root), needle="MetaData")
    return cases


def _datetime_fill(ds):
    meta = ds.groups["MetaData"]
    t = meta.createVariable("dateTime", "i8", ("Location",), fill_value=np.int64(-9223372036854775806))
    t.units = "seconds since 1970-01-01T00:00:00Z"
    t.set_auto_mask(False)
    data = np.repeat([946706400, 946728000], 40)
    data[3] = -9223372036854775806
    t[:] = data


def _ioda_no_dim(path: Path, root: Path) -> str:
    import netCDF4

    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("n", 4)
        for g in ("MetaData", "ObsValue", "ObsError"):
            ds.createGroup(g).createVariable("x", "f8", ("n",))
    return str(path.relative_to(root))


def _ioda_meta_var(path: Path, root: Path) -> str:
    import netCDF4

    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("Location", 4)
        ds.createGroup("ObsValue").createVariable("x", "f8", ("Location",))
        ds.createVariable("MetaData", "f8", ("Location",))
    return str(path.relative_to(root))


def _config_cases(root: Path, obs: str) -> list[Case]:
    d = root / "cfg"
    d.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    c = "configs"
    base = (root / "l96.toml").read_text()

    def cfg(name, text: str | bytes, expect="refuse", code=2, needle=None, model_flag=True):
        p = d / f"{name}.toml"
        p.write_bytes(text.encode() if isinstance(text, str) else text)
        rel = str(p.relative_to(root))
        flag = ["--model", "lorenz96"] if model_flag else []
        return Case(c, name, ["assimilate", obs, *flag, "-c", rel, "--out", f"out-cfg-{name}.zarr", "-q"], expect,
                    code, needle or name)

    for key in ("length", "shift", "start"):
        for bad in ("inf", "nan", "-inf"):
            cases.append(cfg(f"window_{key}_{bad}", _set_key(base, "window", key, bad), needle="window"))
    for bad in ("inf", "nan"):
        cases.append(cfg(f"spinup_{bad}", _set_key(base, "ensemble", "spinup", bad), needle="spinup"))
        cases.append(cfg(f"unit_seconds_{bad}", _set_key(base, "time", "unit_seconds", bad), needle="unit_seconds"))
        cases.append(cfg(f"tolerance_{bad}", _set_key(base, "solver", "tolerance", bad), needle="tolerance"))
        cases.append(cfg(f"inflation_{bad}", _set_key(base, "inflation", "multiplicative", bad),
                         needle="multiplicative"))
        cases.append(cfg(f"perturbation_{bad}", _set_key(base, "ensemble", "perturbation", bad),
                         needle="perturbation"))
        cases.append(cfg(f"commit_seconds_{bad}", _set_key(base, "output", "commit_seconds", bad),
                         needle="commit_seconds"))
    cases.append(cfg("window_start_huge", _set_key(base, "window", "start", "1e300"), needle="window"))
    cases.append(cfg("window_length_tiny", _set_key(base, "window", "length", "1e-300"), needle="window"))
    cases.append(cfg("binary", bytes(range(256)) * 4, needle="binary"))
    cases.append(cfg("latin1", base.encode() + "\n# r\xe9glage\n".encode("latin-1"), needle="latin1"))
    cases.append(cfg("utf16", base.encode("utf-16"), needle="utf16"))
    cases.append(cfg("bom", "\ufeff" + base, "ok", 0))
    cases.append(cfg("crlf", base.replace("\n", "\r\n"), "ok", 0))
    cases.append(cfg("empty", "", "ok", 0))
    cases.append(cfg("unknown_key", base + "\n[extra]\nfoo = 1\n", needle="extra"))
    cases.append(cfg("misspelt_key", _set_key(base, "window", "lenght", "0.05"), needle="lenght"))
    cases.append(cfg("wrong_type", _set_key(base, "ensemble", "size", '"twenty"'), needle="size"))
    cases.append(cfg("ensemble_size_1", _set_key(base, "ensemble", "size", "1"), needle="size"))
    cases.append(cfg("ensemble_size_huge", _set_key(base, "ensemble", "size", "100000000000"), needle="size"))
    cases.append(cfg("seed_negative", _set_key(base, "ensemble", "seed", "-1"), needle="seed"))
    cases.append(cfg("seed_huge", _set_key(base, "ensemble", "seed", "99999999999999999999"), needle="seed"))
    cases.append(cfg("max_iterations_huge", _set_key(base, "solver", "max_iterations", "10000000000000"),
                     needle="max_iterations"))
    cases.append(cfg("epoch_garbage", _set_key(base, "time", "epoch", '"yesterday"'), needle="epoch"))
    cases.append(cfg("not_toml", "this is : not = toml [", needle="not_toml"))
    cases.append(cfg("table_as_value", base.replace("[window]", "window = 3\n[windowx]"), needle="window"))
    cases.append(cfg("model_unknown", _set_key(base, "model", "name", '"lorenz63"'), needle="lorenz63",
                     model_flag=False))
    cases.append(cfg("parameter_unknown", base + "\n[parameters.G]\nvalue = 1.0\n", needle="G"))
    cases.append(cfg("parameter_value_nan", _set_key(base, "parameters.F", "value", "nan"), needle="F"))
    cases.append(cfg("prior_std_inf", base.replace("estimate = false", "estimate = true\nprior_std = inf"),
                     needle="prior_std"))
    cases.append(cfg("model_size_huge", _set_key(base, "model", "size", "1000000000000"), needle="size"))
    cases.append(cfg("model_dt_nan", _set_key(base, "model", "dt", "nan"), needle="dt"))
    (d / "a_directory.toml").mkdir(exist_ok=True)
    cases.append(Case(c, "directory_as_config", ["assimilate", obs, "--model", "lorenz96", "-c", "cfg/a_directory.toml",
                                                 "--out", "out-cfg-dir.zarr", "-q"], "refuse", 2, "a_directory"))
    cases.append(Case(c, "missing_config", ["assimilate", obs, "--model", "lorenz96", "-c", "cfg/nope.toml",
                                            "--out", "out-cfg-missing.zarr", "-q"], "refuse", 2, "nope.toml"))
    for name, item in [("set_no_equals", "window.length"), ("set_nan", "window.length=nan"),
                       ("set_inf_spinup", "ensemble.spinup=inf"), ("set_empty_key", "=3"),
                       ("set_through_scalar", "window.length.x=1"), ("set_unknown_table", "nosuch.key=1"),
                       ("set_bad_precision", 'output.precision="float16"')]:
        cases.append(Case(c, name, ["assimilate", obs, "--model", "lorenz96", "--set", item, "--out",
                                    f"out-cfg-{name}.zarr", "-q"], "refuse", 2, None))
    cases.append(Case(c, "both_model_and_checkpoint", ["assimilate", obs, "--model", "lorenz96", "-k", "x.ckpt",
                                                       "--out", "out-cfg-both.zarr"], "refuse", 2, "--model"))
    cases.append(Case(c, "neither_model_nor_checkpoint", ["assimilate", obs, "--out", "out-cfg-neither.zarr",
                                                          *FAST], "ok", 0))
    cases.append(Case(c, "unknown_model_flag", ["assimilate", obs, "--model", "lorenz63", "--out", "o.zarr"],
                      "refuse", 2, "lorenz63"))
    cases.append(Case(c, "unknown_model_obs_check", ["obs", "check", obs, "--model", "lorenz63"], "refuse", 2,
                      "lorenz63"))
    cases.append(Case(c, "negative_ensemble_flag", ["assimilate", obs, "--model", "lorenz96", "-N", "-3", "--out",
                                                    "o.zarr"], "refuse", 2, "size"))
    cases.append(Case(c, "negative_truth_trajectory", ["assimilate", obs, "--model", "lorenz96", "--truth",
                                                       "truth.zarr", "--truth-trajectory", "-1", "--out",
                                                       "out-cfg-negtraj.zarr", *FAST], "refuse", None, "trajectory"))
    return cases


def _set_key(base: str, table: str, key: str, value: str) -> str:
    """``base`` with ``[table] key = value`` (replacing an existing key of that table)."""
    lines = base.splitlines()
    out, in_table, done = [], False, False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            if in_table and not done:
                out.append(f"{key} = {value}")
                done = True
            in_table = stripped == f"[{table}]"
        if in_table and stripped.split("=")[0].strip() == key:
            out.append(f"{key} = {value}")
            done = True
            continue
        out.append(line)
    if not done:
        if in_table:
            out.append(f"{key} = {value}")
        else:
            out += [f"[{table}]", f"{key} = {value}"]
    return "\n".join(out) + "\n"


def _checkpoint_cases(root: Path) -> list[Case]:
    d = root / "ckpt"
    d.mkdir(parents=True, exist_ok=True)
    src = SAMPLE / "surrogates" / "tsunami.ckpt"
    data = src.read_bytes()
    line, _, rest = data.partition(b"\n")
    payload, trailer = rest[:-65], rest[-65:]  # format version 2: the payload, then the checksum line
    header = json.loads(line)
    cases: list[Case] = []
    k = "checkpoints"

    def ck(name, blob: bytes, expect="refuse", code=4, needle=None, assimilate=False):
        p = d / f"{name}.ckpt"
        p.write_bytes(blob)
        rel = str(p.relative_to(root))
        out = [Case(k, f"{name} (surrogate info)", ["surrogate", "info", rel], expect, code, needle or name)]
        if assimilate:
            out.append(Case(k, f"{name} (assimilate)", ["assimilate", str(SAMPLE / "tsunami_obs.nc"), "-k", rel,
                                                        "-c", str(REPO / "configs" / "latent_tsunami.toml"),
                                                        "--out", f"out-ck-{name}.zarr", "-q"], expect, code,
                            needle or name))
        return out

    cases += ck("valid", data, "ok", 0)
    v1 = json.loads(line)
    v1["format_version"] = 1
    cases += ck("version_1_without_checksum_line", json.dumps(v1, sort_keys=True).encode() + b"\n" + payload, "ok", 0)

    def edit(mutate) -> bytes:
        h = json.loads(line)
        mutate(h)
        return json.dumps(h, sort_keys=True).encode() + b"\n" + payload + trailer  # edited, checksum stale

    def put(path, value):
        def mutate(h):
            node = h
            for p in path[:-1]:
                node = node[p]
            node[path[-1]] = value
        return mutate

    # header edits a user or a transfer could make; each must be caught by the header checksum
    edits = [
        ("hyper_n_latent", ("hyperparameters", "n_latent"), 17),
        ("hyper_dt", ("hyperparameters", "dt"), 600.0),
        ("hyper_time_scale", ("hyperparameters", "time_scale"), 1.0),
        ("hyper_fourier_scale", ("hyperparameters", "fourier_scale"), 8.0),
        ("hyper_width_string", ("hyperparameters", "decoder_width"), "wide"),
        ("hyper_depth_negative", ("hyperparameters", "decoder_depth"), -1),
        ("dtype_float16", ("dtype",), "float16"),
        ("dtype_garbage", ("dtype",), "quaternion"),
        ("time_epoch", ("time", "epoch"), "1999-01-01T00:00:00+00:00"),
        ("time_epoch_garbage", ("time", "epoch"), "whenever"),
        ("time_unit", ("time", "unit_seconds"), 60.0),
        ("time_unit_zero", ("time", "unit_seconds"), 0.0),
        ("time_origin", ("time", "origin"), 600.0),
        ("grid_dims", ("grid", "dims"), ["x"]),
        ("grid_axis_short", ("grid", "x"), header["grid"]["x"][:-1]),
        ("fields_renamed", ("fields",), ["u", "v", "ssh"]),
        ("fields_dropped", ("fields",), ["u", "v"]),
        ("coordinate_high", ("coordinates",), [{**c, "high": c["high"] * 2} for c in header["coordinates"]]),
        ("parameters_low", ("parameters",), [{**p, "low": p["low"] - 1} for p in header["parameters"]]),
        ("parameters_empty", ("parameters",), []),
        ("normalisation_field_std", ("normalisation", "field_std"),
         [v * 1.5 for v in header["normalisation"]["field_std"]]),
        ("benchmark", ("benchmark",), "kolmogorov"),
        ("model_kind", ("model_kind",), "transformer"),
        ("payload_bytes_string", ("payload_bytes",), "many"),
        ("payload_sha_null", ("payload_sha256",), None),
        ("format_version_1", ("format_version",), 1),
        ("format_version_99", ("format_version",), 99),
        ("format_version_string", ("format_version",), "1"),
    ]
    for name, path, value in edits:
        cases += ck(f"header_{name}", edit(put(path, value)), assimilate=name in ("hyper_dt", "time_epoch",
                                                                                  "normalisation_field_std"))
    # one flipped byte at several places of the header line
    for frac in (0.05, 0.2, 0.4, 0.6, 0.8, 0.95):
        i = int(len(line) * frac)
        blob = bytearray(data)
        blob[i] = blob[i] ^ 0x01 if chr(blob[i] ^ 0x01).isprintable() else blob[i] ^ 0x02
        cases += ck(f"flip_header_{int(frac * 100)}pct", bytes(blob))
    for frac in (0.01, 0.5, 0.99):
        i = len(line) + 1 + int(len(payload) * frac)
        blob = bytearray(data)
        blob[i] ^= 0xFF
        cases += ck(f"flip_payload_{int(frac * 100)}pct", bytes(blob), assimilate=frac == 0.5)
    cases += ck("truncated_payload", data[:-100], assimilate=True)
    cases += ck("truncated_in_header", data[: len(line) // 2])
    cases += ck("header_only", line + b"\n")
    cases += ck("no_newline", line)
    cases += ck("appended_bytes", data + b"\x00" * 10)
    cases += ck("empty", b"", assimilate=True)
    cases += ck("random_bytes", bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)))
    cases += ck("gzip", gzip.compress(data))
    cases += ck("json_list_header", b"[1, 2, 3]\n" + payload)
    cases += ck("json_nan_header", line.replace(b'"dt": 300.0', b'"dt": NaN') + b"\n" + payload)
    cases += ck("header_not_utf8", line[:50] + b"\xff\xfe" + line[50:] + b"\n" + payload)
    cases += ck("crlf_line_end", line + b"\r\n" + payload)
    (d / "a_directory.ckpt").mkdir(exist_ok=True)
    cases.append(Case(k, "directory (surrogate info)", ["surrogate", "info", "ckpt/a_directory.ckpt"], "refuse", 4,
                      "a_directory"))
    cases.append(Case(k, "missing (surrogate info)", ["surrogate", "info", "ckpt/nope.ckpt"], "refuse", 4, "nope"))
    cases.append(Case(k, "zarr store as checkpoint", ["surrogate", "info", "truth.zarr"], "refuse", 4, "truth.zarr"))
    cases.append(Case(k, "kolmogorov checkpoint for tsunami obs", [
        "assimilate", str(SAMPLE / "tsunami_obs.nc"), "-k", str(SAMPLE / "surrogates" / "kolmogorov.ckpt"),
        "-c", str(REPO / "configs" / "latent_tsunami.toml"), "--out", "out-ck-kolmo.zarr", "-q"], "refuse", None,
        "kolmogorov"))
    return cases


def _store_cases(root: Path, obs: str, later: str) -> list[Case]:
    """Faults of the output store and the truth store. ``base.zarr`` holds one committed window."""
    d = root / "stores"
    d.mkdir(parents=True, exist_ok=True)
    base = root / "base.zarr"
    s = "stores and output"
    cases: list[Case] = []

    def copy(name) -> Path:
        p = d / name
        if p.exists():
            shutil.rmtree(p)
        shutil.copytree(base, p)
        return p

    def resume(name, p, expect="refuse", code=5, needle=None, extra=()):
        return Case(s, name, ["assimilate", later, "--model", "lorenz96", "-c", "l96.toml", "--out",
                              str(p.relative_to(root)), *FAST, *extra], expect, code, needle or p.name)

    cases.append(resume("resume valid store", copy("valid.zarr"), "ok", 0))
    # damaged chunks of the last committed window, and of earlier metadata
    # damaged chunks of the last committed window (the one a resumed run reads and checks first)
    def last_chunk(array_dir: Path) -> Path:
        """The chunk file holding the store's last window (chunks hold many windows)."""
        files = [f for f in array_dir.iterdir() if f.name[0].isdigit()]
        return max(files, key=lambda f: tuple(int(i) for i in f.name.split(".")))

    for array in ("analysis", "filter", "background", "cost_final", "x_analysis_mean", "obs_value", "window_start",
                  "window_index"):
        if not (base / array).exists():  # an older levda's store (the benchmark's --baseline runs)
            continue
        p = copy(f"garbage_chunk_{array}.zarr")
        chunk = last_chunk(p / array)
        chunk.write_bytes(b"garbage" * 10)
        cases.append(resume(f"garbage chunk in {array}", p, needle=array))
        p = copy(f"flipped_bit_{array}.zarr")
        chunk = last_chunk(p / array)
        raw = bytearray(chunk.read_bytes())
        raw[len(raw) // 2] ^= 0x04
        chunk.write_bytes(bytes(raw))
        cases.append(resume(f"one flipped bit in {array}", p, needle=array))
    p = copy("truncated_chunk.zarr")
    chunk = last_chunk(p / "analysis")
    chunk.write_bytes(chunk.read_bytes()[:20])
    cases.append(resume("truncated chunk in analysis", p, needle="analysis"))
    p = copy("missing_chunk.zarr")
    last_chunk(p / "analysis").unlink()
    cases.append(resume("missing chunk in analysis", p, needle="analysis"))
    p = copy("missing_chunk_window_start.zarr")
    last_chunk(p / "window_start").unlink()
    cases.append(resume("missing chunk in window_start", p, needle="window_start"))
    p = copy("garbage_zmetadata.zarr")
    (p / ".zmetadata").write_text("{not json")
    cases.append(resume("garbage consolidated metadata", p))
    p = copy("missing_zmetadata.zarr")
    (p / ".zmetadata").unlink()
    cases.append(resume("missing consolidated metadata", p))
    p = copy("garbage_zarray.zarr")
    (p / "analysis" / ".zarray").write_text("[]")
    cases.append(resume("garbage .zarray", p))
    p = copy("missing_array.zarr")
    shutil.rmtree(p / "filter")
    cases.append(resume("missing array directory", p, needle="filter"))
    # consolidated metadata the store's own chunk reader does not take (io/chunks.py): zarr-python's path,
    # which reads each array's own .zarray, resumes it and the next commit rewrites .zmetadata
    p = copy("zero_chunks_zmetadata.zarr")
    meta = json.loads((p / ".zmetadata").read_text())
    meta["metadata"]["analysis/.zarray"]["chunks"][0] = 0
    (p / ".zmetadata").write_text(json.dumps(meta))
    cases.append(resume("chunk size 0 in consolidated metadata", p, "ok", 0))
    p = copy("big_endian_zmetadata.zarr")
    meta = json.loads((p / ".zmetadata").read_text())
    meta["metadata"]["analysis/.zarray"]["dtype"] = ">f8"
    (p / ".zmetadata").write_text(json.dumps(meta))
    cases.append(resume("another dtype in consolidated metadata than in .zarray", p, "ok", 0))
    p = copy("nwindows_string.zarr")
    meta = json.loads((p / ".zmetadata").read_text())
    meta["metadata"][".zattrs"]["n_windows"] = "three"
    (p / ".zmetadata").write_text(json.dumps(meta))
    cases.append(resume("n_windows not a number", p))
    p = copy("nwindows_too_many.zarr")
    meta = json.loads((p / ".zmetadata").read_text())
    meta["metadata"][".zattrs"]["n_windows"] = 5
    (p / ".zmetadata").write_text(json.dumps(meta))
    cases.append(resume("n_windows beyond the arrays", p))
    p = copy("version_99.zarr")
    meta = json.loads((p / ".zmetadata").read_text())
    meta["metadata"][".zattrs"]["levda_store_version"] = 99
    (p / ".zmetadata").write_text(json.dumps(meta))
    cases.append(resume("store version 99", p, needle="version"))
    p = copy("other_settings.zarr")
    cases.append(resume("store of other window settings", p, needle="settings",
                        extra=("--set", "window.length=0.1")))
    # not a levda store
    p = d / "foreign.zarr"
    p.mkdir(exist_ok=True)
    (p / "notes.txt").write_text("my thesis")
    cases.append(resume("a foreign directory as --out", p))
    p = d / "a_file.zarr"
    p.write_text("x")
    cases.append(resume("a plain file as --out", p))
    cases.append(resume("the truth store as --out", root / "truth.zarr", needle="truth.zarr"))
    cases.append(Case(s, "--out in a missing folder", ["assimilate", obs, "--model", "lorenz96", "-c", "l96.toml",
                                                       "--out", "no/such/dir/out.zarr", *FAST], "refuse", 5,
                      "no/such/dir"))
    # permissions (skipped by the runner when running as root, which ignores them)
    ro = d / "readonly_dir"
    ro.mkdir(exist_ok=True)
    cases.append(Case(s, "read-only folder for --out", ["assimilate", obs, "--model", "lorenz96", "-c", "l96.toml",
                                                        "--out", str((ro / "out.zarr").relative_to(root)), *FAST],
                      "refuse", 5, "readonly_dir"))
    p = copy("readonly_store.zarr")
    cases.append(resume("read-only existing store", p, needle="readonly_store"))
    p = copy("lockdir.zarr")
    (d / ".lockdir.zarr.lock").mkdir(exist_ok=True)
    cases.append(resume("lock path is a directory", p, needle="lock"))
    # the truth store
    t = d / "truth_garbage.zarr"
    if t.exists():
        shutil.rmtree(t)
    shutil.copytree(root / "truth.zarr", t)
    for f in (t / "x").glob("0*"):
        f.write_bytes(b"junk")
    for name, truth in [("garbage chunk in truth store", "stores/truth_garbage.zarr"),
                        ("truth store of another model", str(SAMPLE / "tsunami_truth.zarr")),
                        ("truth store missing", "stores/nope.zarr"),
                        ("truth is a CSV file", obs),
                        ("truth is the output store", "base.zarr")]:
        cases.append(Case(s, name, ["assimilate", obs, "--model", "lorenz96", "-c", "l96.toml", "--truth", truth,
                                    "--out", f"out-truth-{name.replace(' ', '_')}.zarr", *FAST], "refuse", 5,
                          Path(truth).name))
    return cases


def _other_command_cases(root: Path) -> list[Case]:
    """The other commands' inputs: truth and training stores, checkpoints for evaluate, outputs."""
    o = "other commands"
    ckpt = str(SAMPLE / "surrogates" / "tsunami.ckpt")
    cases = [
        Case(o, "observe: truth store missing", ["observe", "nope.zarr", "--out", "o1.csv"], "refuse", 5, "nope.zarr"),
        Case(o, "observe: truth is a CSV file", ["observe", "obs.csv", "--out", "o2.csv"], "refuse", 5, "obs.csv"),
        Case(o, "observe: truth chunk damaged", ["observe", "stores/truth_garbage.zarr", "--out", "o3.csv"], "refuse",
             5, "truth_garbage"),
        Case(o, "observe: output folder missing", ["observe", "truth.zarr", "--out", "no/dir/o.csv"], "refuse", None,
             "no/dir"),
        Case(o, "observe: unknown network", ["observe", "truth.zarr", "--out", "o4.csv", "--network", "spiral:3"],
             "refuse", 2, "spiral"),
        Case(o, "observe: unknown variable", ["observe", "truth.zarr", "--out", "o5.csv", "--variables", "T"],
             "refuse", 2, "T"),
        Case(o, "observe: NaN error", ["observe", "truth.zarr", "--out", "o6.csv", "--error", "nan"], "refuse", 2,
             "error"),
        Case(o, "observe: stations file missing", ["observe", "truth.zarr", "--out", "o7.csv", "--network",
                                                    "stations:nope.csv"], "refuse", None, "nope.csv"),
        Case(o, "observe: valid", ["observe", "truth.zarr", "--out", "o8.csv"], "ok", 0),
        Case(o, "simulate: unknown model", ["simulate", "lorenz63", "--out", "s1.zarr"], "refuse", 2, "lorenz63"),
        Case(o, "simulate: output folder missing (made, like mkdir -p)", ["simulate", "lorenz96", "--out",
                                                                            "new/dir/s.zarr", "--duration", "1"],
             "ok", 0),
        Case(o, "simulate: output exists", ["simulate", "lorenz96", "--out", "truth.zarr", "--duration", "1"],
             "refuse", None, "truth.zarr"),
        Case(o, "simulate: NaN duration", ["simulate", "lorenz96", "--out", "s2.zarr", "--duration", "nan"],
             "refuse", 2, "duration"),
        Case(o, "evaluate: damaged checkpoint", ["surrogate", "evaluate", "ckpt/flip_payload_50pct.ckpt", "--data",
                                                 str(SAMPLE / "tsunami_truth.zarr")], "refuse", 4, "flip_payload"),
        Case(o, "evaluate: data of another model", ["surrogate", "evaluate", ckpt, "--data", "truth.zarr"], "refuse",
             None, "truth.zarr"),
        Case(o, "evaluate: data missing", ["surrogate", "evaluate", ckpt, "--data", "nope.zarr"], "refuse", 5,
             "nope.zarr"),
        Case(o, "train: data is a CSV file", ["surrogate", "train", "--data", "obs.csv", "--out", "t.ckpt"], "refuse",
             5, "obs.csv"),
        Case(o, "train: data of no trajectories split", ["surrogate", "train", "--data", "base.zarr", "--out",
                                                         "t2.ckpt"], "refuse", 5, "base.zarr"),
        Case(o, "info: trusted SHA-256 differs", ["surrogate", "info", ckpt, "--trusted-sha256", "0" * 64], "refuse",
             4, "trusted"),
        Case(o, "assimilate: trusted SHA-256 differs", ["assimilate", str(SAMPLE / "tsunami_obs.nc"), "-k", ckpt,
                                                        "-c", str(REPO / "configs" / "latent_tsunami.toml"),
                                                        "--trusted-sha256", "ab" * 32, "--out", "o-trust.zarr"],
             "refuse", 4, "trusted"),
        Case(o, "obs check: no files match a glob", ["assimilate", "csv/*.nothing", "--model", "lorenz96", "--out",
                                                     "o-glob.zarr"], "refuse", 3, "nothing"),
    ]
    return cases


def permissions_apply() -> bool:
    return os.geteuid() != 0


def build(root: Path, run_levda) -> list[Case]:
    """Write every case under ``root``. ``run_levda(args, cwd)`` runs the CLI (for the base store)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "l96.toml").write_text((REPO / "configs" / "lorenz96.toml").read_text())
    (root / "obs.csv").write_text(_good_csv_text())
    (root / "later.csv").write_text(HEADER + "\n" + "\n".join(
        f"2000-01-01T18:00:00Z,{s}.0,x,{np.sin(s + 1):.6f},1.0" for s in range(40)) + "\n")
    if not (root / "truth.zarr").exists():
        shutil.copytree(SAMPLE / "lorenz96_truth.zarr", root / "truth.zarr")
    if not (root / "base.zarr").exists():
        code = run_levda(["assimilate", "obs.csv", "--model", "lorenz96", "-c", "l96.toml", "--out", "base.zarr",
                          *FAST], root)
        if code != 0:
            raise RuntimeError(f"could not make the base store (exit {code})")
    cases = (_csv_cases(root) + _netcdf_cases(root) + _ioda_cases(root) + _config_cases(root, "obs.csv")
             + _checkpoint_cases(root) + _store_cases(root, "obs.csv", "later.csv") + _other_command_cases(root))
    return cases


def prepare_permissions(root: Path) -> None:
    """Make the read-only cases read-only (after ``build``; undone by ``undo_permissions``)."""
    for p in (root / "stores" / "readonly_dir", root / "stores" / "readonly_store.zarr"):
        for q in [p, *p.rglob("*")]:
            q.chmod(q.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def undo_permissions(root: Path) -> None:
    for p in (root / "stores" / "readonly_dir", root / "stores" / "readonly_store.zarr"):
        if p.exists():
            for q in [p, *p.rglob("*")]:
                q.chmod(q.stat().st_mode | stat.S_IWUSR)


def judge(case: Case, code: int, output: str, timed_out: bool) -> str:
    """'pass', or what went wrong: 'hang', 'traceback', 'silent acceptance', 'wrong code', 'refused valid',
    'message does not name the item'."""
    if timed_out:
        return "hang"
    if "Traceback" in output or code == 1:
        return "traceback"
    if case.expect == "ok":
        return "pass" if code == 0 else "refused valid"
    if code == 0:
        return "silent acceptance"
    if not 2 <= code <= 7:
        return "wrong code"
    if case.code is not None and code != case.code:
        return "wrong code"
    if case.needle and case.needle.lower() not in output.lower():
        return "message does not name the item"
    return "pass"

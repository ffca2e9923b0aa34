"""IODA observation files (JEDI): v3 layout, and reading the v2 names.

v3: root dimension ``Location``; group ``MetaData`` with ``dateTime`` (int64, "seconds since
<epoch>") and one variable per coordinate; groups ``ObsValue``, ``ObsError`` (standard
deviation, not variance) and optionally ``PreQC`` with one variable per observed quantity.
Missing values are ``_FillValue``s. Several quantities observed at one location share its
row; a quantity absent there holds the fill value.

v2 (read only): dimension ``nlocs``; ``MetaData/datetime`` as ISO strings (or ``dateTime``).
Records with a non-zero PreQC are read and marked rejected (``rejected_by_preqc``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from levda_cli.errors import ObservationError
from levda_cli.io.observations import (
    QC_PREQC,
    TIME_UNITS,
    UNIX_EPOCH,
    ObservationSet,
    _check_not_empty,
    _seconds_since,
    netcdf_column,
    open_netcdf,
    parse_time,
    times_from_seconds,
)

FILL_FLOAT = np.float64(np.float32(-3.3687953e38))  # IODA's float fill value (stored as double)
FILL_INT = np.int32(-2147483643)


def is_ioda(path: Path) -> bool:
    """An IODA file has groups (MetaData, ObsValue) or an IODA dimension; a flat file has neither."""
    with open_netcdf(path) as ds:
        return bool(ds.groups) or "Location" in ds.dimensions or "nlocs" in ds.dimensions


def write_ioda(obs: ObservationSet, path: Path) -> None:
    """Write IODA v3: one row per distinct (time, coordinates); quantities as columns."""
    import netCDF4

    path = Path(path)
    seconds = (obs.time - UNIX_EPOCH).astype(np.int64)
    names = list(obs.coords)
    key = np.stack([seconds.astype(float), *(obs.coords[c] for c in names)], axis=1)
    variables = sorted(set(obs.variable.astype(str)))
    var_index = np.searchsorted(variables, obs.variable.astype(str))
    _, loc = np.unique(key, axis=0, return_inverse=True)
    loc = loc.ravel()
    # A quantity repeated at one location goes to a row of its own.
    rank = np.zeros(len(obs), int)
    order = np.lexsort((var_index, loc))
    same = (loc[order][1:] == loc[order][:-1]) & (var_index[order][1:] == var_index[order][:-1])
    for j in np.flatnonzero(same):
        rank[order[j + 1]] = rank[order[j]] + 1
    row_key = loc * (rank.max() + 1) + rank
    rows, row = np.unique(row_key, return_inverse=True)
    n_loc = len(rows)
    first = np.zeros(n_loc, int)
    first[row[::-1]] = np.arange(len(obs))[::-1]
    tmp = path.with_name(path.name + ".tmp")
    with netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
        ds.createDimension("Location", n_loc)
        loc_var = ds.createVariable("Location", "i4", ("Location",))
        loc_var[:] = np.arange(n_loc)
        ds._ioda_layout = "ObsGroup"
        ds._ioda_layout_version = np.int32(3)
        ds.coordinate_names = " ".join(names)
        meta = ds.createGroup("MetaData")
        t = meta.createVariable("dateTime", "i8", ("Location",), fill_value=np.int64(-9223372036854775806))
        t.units = TIME_UNITS
        t[:] = seconds[first]
        for c in names:
            v = meta.createVariable(c, "f8", ("Location",), fill_value=FILL_FLOAT)
            v[:] = obs.coords[c][first]
        groups = {g: ds.createGroup(g) for g in ("ObsValue", "ObsError", "PreQC")}
        for k, name in enumerate(variables):
            sel = var_index == k
            # Doubles (which JEDI's ioda reads) so that a round trip keeps every bit.
            for g, data, dtype, fill in (("ObsValue", obs.value, "f8", FILL_FLOAT),
                                         ("ObsError", obs.error, "f8", FILL_FLOAT),
                                         ("PreQC", obs.qc.astype(np.int32), "i4", FILL_INT)):
                column = np.full(n_loc, fill, dtype=dtype)
                column[row[sel]] = data[sel]
                var = groups[g].createVariable(name, dtype, ("Location",), fill_value=fill)
                var.set_auto_mask(False)
                var[:] = column
                if g == "ObsError":
                    var.long_name = "observation error standard deviation"
    tmp.replace(path)


def _fill_of(var) -> float | None:
    return getattr(var, "_FillValue", None)


def _iso_times(texts: np.ndarray, path: Path, label: str, dim: str) -> np.ndarray:
    out = np.empty(len(texts), dtype="datetime64[s]")
    for i, t in enumerate(texts):
        try:
            out[i] = parse_time(str(t))
        except ValueError:
            raise ObservationError(f"{path}, location {i}: {label} '{t}' is not an ISO 8601 time such as "
                                   "2000-01-01T06:00:00Z") from None
    return out


def read_ioda(path: Path) -> ObservationSet:
    """Read IODA v3 (or v2 names) into records, one per valid (location, quantity)."""
    path = Path(path)
    with open_netcdf(path) as ds:
        dim = "Location" if "Location" in ds.dimensions else "nlocs" if "nlocs" in ds.dimensions else None
        if dim is None:
            raise ObservationError(f"{path}: an IODA file needs a 'Location' (v3) or 'nlocs' (v2) dimension")
        for g in ("MetaData", "ObsValue"):
            if g not in ds.groups:
                raise ObservationError(f"{path}: no group '{g}'; an IODA file has groups MetaData, ObsValue, "
                                       "ObsError")
        n = len(ds.dimensions[dim])
        _check_not_empty(n, path)
        meta = ds.groups["MetaData"]
        name = "dateTime" if "dateTime" in meta.variables else "datetime" if "datetime" in meta.variables else None
        if name is None:
            raise ObservationError(f"{path}: MetaData has neither dateTime (v3) nor datetime (v2)")
        tv = meta.variables[name]
        label = f"MetaData/{name}"
        if tv.dtype is str or getattr(tv.dtype, "kind", "") in "SU":
            # ISO strings: the v2 layout, also found under the v3 name in converted files
            texts = netcdf_column(meta, name, path, dim, "string", label)
            times = _iso_times(texts, path, label, dim)
        else:
            origin = _seconds_since(getattr(tv, "units", ""), path, label)
            raw = netcdf_column(meta, name, path, dim, "number", label, fills_allowed=True)
            fill = _fill_of(tv)
            if fill is not None and (raw == fill).any():
                i = int(np.flatnonzero(raw == fill)[0])
                raise ObservationError(f"{path}, location {i}: {label} is missing (fill value)")
            times = times_from_seconds(origin, raw, path, label, "location")
        names_attr = getattr(ds, "coordinate_names", "")
        if not isinstance(names_attr, str):
            raise ObservationError(f"{path}: the attribute coordinate_names must be text, e.g. 'x y'")
        skip = {"dateTime", "datetime", "time", "stationIdentification", "Location", "nlocs"}
        coord_names = names_attr.split() if names_attr else [
            v for v, var in meta.variables.items()
            if v not in skip and var.dimensions == (dim,) and np.issubdtype(var.dtype, np.number)
        ]
        coords_all = {}
        for c in coord_names:
            if c not in meta.variables:
                raise ObservationError(f"{path}: coordinate MetaData/{c} (named in coordinate_names) is missing")
            coords_all[c] = netcdf_column(meta, c, path, dim, "number", f"MetaData/{c}").astype(float)
        values_g = ds.groups["ObsValue"]
        errors_g = ds.groups.get("ObsError")
        preqc_g = ds.groups.get("PreQC")
        if errors_g is None:
            raise ObservationError(f"{path}: no ObsError group; levda needs an error standard deviation per value")
        parts = []
        for name, var in values_g.variables.items():
            value = netcdf_column(values_g, name, path, dim, "number", f"ObsValue/{name}", fills_allowed=True)
            value = value.astype(float)
            fill = _fill_of(var)
            # A NaN is kept (and refused by the checks): IODA marks missing values with fills only.
            valid = ~np.isclose(value, fill, rtol=1e-6) if fill is not None else np.ones(len(value), bool)
            if name not in errors_g.variables:
                raise ObservationError(f"{path}: ObsValue/{name} has no ObsError/{name}")
            ev = errors_g.variables[name]
            error = netcdf_column(errors_g, name, path, dim, "number", f"ObsError/{name}", fills_allowed=True)
            error = error.astype(float)
            efill = _fill_of(ev)
            missing_err = valid & np.isclose(error, efill, rtol=1e-6) if efill is not None else np.zeros_like(valid)
            if missing_err.any():
                i = int(np.flatnonzero(missing_err)[0])
                raise ObservationError(f"{path}, location {i}: ObsValue/{name} is present but ObsError/{name} "
                                       "is missing (fill value)")
            qc = np.zeros(len(value), np.int8)
            if preqc_g is not None and name in preqc_g.variables:
                pq = netcdf_column(preqc_g, name, path, dim, "integer", f"PreQC/{name}", fills_allowed=True)
                qc[(pq != 0) & (pq != _fill_of(preqc_g.variables[name]))] = QC_PREQC
            idx = np.flatnonzero(valid)
            parts.append(ObservationSet(
                time=times[idx], coords={c: a[idx] for c, a in coords_all.items()},
                variable=np.full(len(idx), name, dtype=object), value=value[idx], error=error[idx],
                source=np.full(len(idx), str(path), dtype=object), row=idx, qc=qc[idx],
            ))
        if not parts:
            raise ObservationError(f"{path}: the ObsValue group holds no variables")
        return ObservationSet.concat(parts)

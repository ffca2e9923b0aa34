"""Trajectory stores written by ``levda simulate`` (Zarr, CF-style coordinates).

Layout: data variables ``<field>(trajectory, time, <coords>)`` and ``<param>(trajectory)``;
``time`` is a UTC datetime coordinate with ``model_time`` (model units) beside it; attributes
``benchmark``, ``epoch``, ``time_unit_seconds``, ``dt``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from levda_cli.errors import StoreError
from levda_cli.io.atomic import replacing


def write_trajectories_batches(batches, path: Path, overwrite: bool = False) -> None:
    """Write datasets (batches of trajectories) one after another along ``trajectory``, into a
    hidden sibling folder renamed into place at the end: memory holds one batch at a time, and
    an interrupted run leaves nothing at ``path``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise StoreError(f"{path} already exists; pass --overwrite to replace it")
    with replacing(path) as tmp:
        for i, ds in enumerate(batches):
            if i == 0:
                ds.to_zarr(tmp, mode="w", zarr_format=2, consolidated=True)
            else:
                ds.to_zarr(tmp, append_dim="trajectory", zarr_format=2, consolidated=True)


def open_trajectories(path: Path):
    """Open a trajectory store, refusing anything that is not one with a clear message."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise StoreError(f"trajectory store {path} does not exist (make one with 'levda simulate')")
    if not path.is_dir():
        raise StoreError(f"{path} is a file, not a Zarr trajectory store (make one with 'levda simulate')")
    try:
        ds = xr.open_zarr(path, consolidated=None)
    except Exception as err:  # zarr raises several types for a damaged store
        raise StoreError(f"cannot open {path} as a Zarr trajectory store: {type(err).__name__}: {err}") from None
    ds.encoding["source"] = str(path)
    for attr in ("benchmark", "time_unit_seconds", "epoch"):
        if attr not in ds.attrs:
            raise StoreError(f"{path} lacks the attribute '{attr}'; was it written by 'levda simulate'?")
    if "time" not in ds.coords or "model_time" not in ds.coords:
        raise StoreError(f"{path} lacks the 'time' and 'model_time' coordinates")
    return ds


def load_checked(obj, path, what: str = "values"):
    """``obj.load()`` (an xarray dataset, variable or selection, read into memory) with a damaged chunk
    turned into a StoreError naming the store."""
    try:
        return obj.load()
    except Exception as err:  # zarr/numcodecs raise several types for a damaged chunk
        raise StoreError(f"cannot read {what} from {path} (damaged chunk?): {type(err).__name__}: "
                         f"{str(err)[:160]}") from None


def truth_lookup(ds, fields, trajectory: int = 0, benchmark: str | None = None, grid_shape: tuple | None = None):
    """Map 'seconds since 1970' -> time index, and a function giving the truth's fields at an
    index as one flat vector (fields in order, each raveled), for RMSE against the analysis.

    The store is checked against the run: its benchmark, its fields and their grid, the
    trajectory asked for; every value is read here, so a damaged chunk is refused at the start
    (exit code 5) rather than in the middle of a run.
    """
    path = ds.encoding.get("source", "the truth store")
    if benchmark is not None and ds.attrs.get("benchmark") != benchmark:
        raise StoreError(f"{path} is a truth store of '{ds.attrs.get('benchmark')}', this run is '{benchmark}'; "
                         "give the truth of the model being assimilated")
    missing = [f for f in fields if f not in ds]
    if missing:
        raise StoreError(f"{path} has no field(s) {missing}; it has {', '.join(map(str, ds.data_vars))}")
    if not 0 <= trajectory < ds.sizes.get("trajectory", 1):
        raise StoreError(f"{path} has {ds.sizes.get('trajectory', 1)} trajectories; asked for {trajectory}")
    seconds = (ds["time"].values.astype("datetime64[s]") - np.datetime64("1970-01-01T00:00:00", "s")).astype(np.int64)
    values = {f: np.asarray(load_checked(ds[f].isel(trajectory=trajectory), path, f"the truth's '{f}'").values, float)
              for f in fields}
    if grid_shape is not None:
        for f, v in values.items():
            if tuple(v.shape[1:]) != tuple(grid_shape):
                raise StoreError(f"{path}: field '{f}' is on a grid of shape {tuple(v.shape[1:])}; this run's grid is "
                                 f"{tuple(grid_shape)} (another resolution?)")

    return _lookup(seconds, values, fields)


def _lookup(seconds, values: dict, fields):
    """(time index by seconds since 1970, the fields at an index as one flat vector)."""

    def at(i: int) -> np.ndarray:
        return np.concatenate([values[f][i].ravel() for f in fields])

    return {int(s): i for i, s in enumerate(seconds)}, at


def _read_plain(path: Path, fields, params, trajectory: int, benchmark, grid_shape):
    """``read_truth`` without xarray (whose import and lazy indexing cost a cron cycle ~0.6 s): the store
    as ``levda simulate`` writes it (Zarr format 2, time in whole seconds since 1970, no scaling),
    else ``None``, and xarray reads it, with every check and message."""
    import json

    def meta(*parts):
        return json.loads(path.joinpath(*parts).read_text())

    try:
        attrs = meta(".zattrs")
        time_attrs, time_meta = meta("time", ".zattrs"), meta("time", ".zarray")
        if any(a not in attrs for a in ("benchmark", "time_unit_seconds", "epoch")):
            return None
        if (attrs.get("benchmark") != benchmark and benchmark is not None) or "model_time" not in [
                p.name for p in path.iterdir()]:
            return None
        if (time_attrs.get("units") not in ("seconds since 1970-01-01T00:00:00", "seconds since 1970-01-01")
                or time_attrs.get("calendar", "proleptic_gregorian") not in ("proleptic_gregorian", "standard",
                                                                             "gregorian")
                or time_meta.get("fill_value") is not None or not time_meta.get("dtype", "").startswith(("<i", "<u"))):
            return None
        for name in fields:
            zattrs, zarray = meta(name, ".zattrs"), meta(name, ".zarray")
            if (zattrs.get("_ARRAY_DIMENSIONS", [None])[:2] != ["trajectory", "time"]
                    or {"scale_factor", "add_offset", "_FillValue", "missing_value"} & set(zattrs)
                    or zarray.get("fill_value") not in ("NaN", None) or not zarray.get("dtype", "").startswith("<f")):
                return None
        import zarr

        group = zarr.open_group(str(path), mode="r", zarr_format=2)
        seconds = np.asarray(group["time"][:], np.int64)
        values = {}
        for name in fields:
            array = group[name]
            if not 0 <= trajectory < array.shape[0] or (grid_shape is not None
                                                        and tuple(array.shape[2:]) != tuple(grid_shape)):
                return None
            values[name] = np.asarray(array[trajectory], float)
        truth_params = {}
        for name in params:
            if name in group and group[name].ndim == 1 and group[name].shape[0] > trajectory:
                truth_params[name] = float(group[name][trajectory])
    except Exception:  # anything unusual, or damaged: xarray's path says what
        return None

    return (*_lookup(seconds, values, fields), truth_params)


def read_truth(path: Path, fields, params, trajectory: int = 0, benchmark: str | None = None,
               grid_shape: tuple | None = None):
    """A truth store for scoring a run: ``(time index by seconds since 1970, fields at an index as one
    vector, the trajectory's parameter values)``, checked as ``truth_lookup`` checks it."""
    path = Path(path)
    plain = _read_plain(path, fields, params, trajectory, benchmark, grid_shape) if path.is_dir() else None
    if plain is not None:
        return plain
    ds = open_trajectories(path)
    truth_params = {p: float(ds[p].values[trajectory]) for p in params
                    if p in ds and ds[p].ndim == 1 and ds[p].shape[0] > trajectory}
    return (*truth_lookup(ds, fields, trajectory, benchmark=benchmark, grid_shape=grid_shape), truth_params)


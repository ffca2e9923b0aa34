"""A given first-guess ensemble (``--initial-ensemble``): a previous levda analysis store, or a Zarr
or NetCDF file holding ``ensemble(member, ctrl)`` and its valid ``time``, or a background
``mean(ctrl)`` with its ``spread`` (``(ctrl)`` or a scalar), from which the members are drawn
(Gaussian, independent components, with the run's ensemble seed).

From a levda store the last window's analysis (smoother) ensemble is taken, valid at that window's
start; the caller forecasts it to the first window of the new run. Every refusal is a
``ConfigError`` (exit 2) naming the file and the item.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from levda_cli.errors import ConfigError

UNIX = np.datetime64("1970-01-01T00:00:00", "s")


def _seconds(value, path: Path) -> int:
    try:
        if isinstance(value, (bytes, np.bytes_)):
            value = value.decode()
        t = np.datetime64(str(value).rstrip("Z"), "s") if isinstance(value, (str, np.str_)) else np.datetime64(value, "s")
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: its 'time' ({value!r}) is not a date and time (ISO 8601, e.g. "
                          "2000-01-01T06:00:00Z)") from None
    if np.isnat(t):
        raise ConfigError(f"{path}: its 'time' is not set")
    return int((t - UNIX).astype(np.int64))


def read_initial_ensemble(path: Path, n_ens: int, n_ctrl: int, control_names: list[str], seed: int = 0
                          ) -> tuple[np.ndarray, int]:
    """``(ensemble (n_ens, n_ctrl), valid time in seconds since 1970)``."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"initial ensemble {path} does not exist")
    zmeta = path / ".zmetadata"
    if path.is_dir() and zmeta.exists():
        try:
            attrs = json.loads(zmeta.read_text())["metadata"][".zattrs"]
        except (ValueError, KeyError, OSError) as err:
            raise ConfigError(f"initial ensemble {path}: unreadable Zarr metadata ({err})") from None
        if "levda_store_version" in attrs:
            return _from_store(path, attrs, n_ens, n_ctrl, control_names)
    try:
        import xarray as xr

        ds = xr.open_zarr(path) if path.is_dir() else xr.open_dataset(path, decode_times=False)
    except Exception as err:  # netCDF4/zarr raise many types for a file that is not theirs
        raise ConfigError(f"initial ensemble {path} is not a readable Zarr or NetCDF file "
                          f"({type(err).__name__}: {str(err)[:120]})") from None
    with ds:
        if "ensemble" in ds:
            values = np.asarray(ds["ensemble"].values, np.float64)
        elif "mean" in ds and "spread" in ds:
            mean = np.asarray(ds["mean"].values, np.float64)
            sd = np.broadcast_to(np.asarray(ds["spread"].values, np.float64), mean.shape) if mean.ndim == 1 else None
            if mean.shape != (n_ctrl,) or sd is None:
                raise ConfigError(f"initial ensemble {path}: 'mean' has shape {mean.shape}; this run's control has "
                                  f"{n_ctrl} entries (state + estimated parameters)")
            if not (np.isfinite(sd).all() and (sd > 0).all()):
                raise ConfigError(f"initial ensemble {path}: 'spread' must be finite and positive everywhere")
            draws = np.random.default_rng(seed).standard_normal((n_ens, n_ctrl))
            draws = (draws - draws.mean(axis=0)) / draws.std(axis=0, ddof=1)  # exactly the given mean and spread
            values = mean + sd * draws
        else:
            raise ConfigError(f"initial ensemble {path} has neither 'ensemble' (member, ctrl) nor 'mean' and "
                              f"'spread' (ctrl); it has {sorted(ds.data_vars)}")
        time = ds.attrs.get("time", ds["time"].values if "time" in ds else None)
        if time is None:
            raise ConfigError(f"initial ensemble {path} gives no valid time (a 'time' attribute or variable)")
        if isinstance(time, np.ndarray):
            time = time.reshape(-1)[0] if time.size == 1 else time
        return _checked(values, path, n_ens, n_ctrl), _seconds(time, path)


def _from_store(path: Path, attrs: dict, n_ens: int, n_ctrl: int, control_names: list[str]):
    import zarr

    n = attrs.get("n_windows")
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"initial ensemble {path} is a levda store with no committed window")
    stored_names = json.loads(attrs.get("control_names", "[]"))
    if stored_names and stored_names != control_names:
        raise ConfigError(f"initial ensemble {path}: its control ({len(stored_names)} entries: "
                          f"{', '.join(stored_names[-3:])} ...) is not this run's ({len(control_names)}: "
                          f"{', '.join(control_names[-3:])} ...): another model, checkpoint or set of estimated "
                          "parameters")
    try:
        root = zarr.open_group(path, mode="r", use_consolidated=False)
        analysis = np.asarray(root["analysis"][n - 1], np.float64)
        start = int(np.asarray(root["window_start"][n - 1]))
    except Exception as err:
        raise ConfigError(f"initial ensemble {path}: its last analysis cannot be read ({type(err).__name__}: "
                          f"{str(err)[:120]})") from None
    return _checked(analysis, path, n_ens, n_ctrl), start


def _checked(values: np.ndarray, path: Path, n_ens: int, n_ctrl: int) -> np.ndarray:
    if values.shape != (n_ens, n_ctrl):
        raise ConfigError(f"initial ensemble {path}: 'ensemble' has shape {values.shape}; this run needs "
                          f"(members, control) = ({n_ens}, {n_ctrl}) (ensemble.size, state + estimated parameters)")
    if not np.isfinite(values).all():
        bad = np.argwhere(~np.isfinite(values))[0]
        raise ConfigError(f"initial ensemble {path}: member {bad[0]}, control entry {bad[1]} is not finite")
    return values

"""Observation files by format: the one place that knows every reader and writer.

``observations`` (the record set, CSV and flat NetCDF, screening) and ``ioda`` (IODA v3) know
nothing of each other beyond ``ioda`` using the record set; this module picks between them.
"""

from __future__ import annotations

from pathlib import Path

from levda_cli.errors import ObservationError
from levda_cli.io import ioda
from levda_cli.io.observations import ObservationSet, read_csv, read_netcdf, write_csv, write_netcdf


def read_observations(paths: list[Path]) -> ObservationSet:
    """Read every file (format from the suffix: .csv, or .nc/.nc4/.netcdf) into one set."""
    if not paths:
        raise ObservationError("no observation files given")
    sets = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise ObservationError(f"observation file {path} does not exist")
        if path.is_dir():
            raise ObservationError(f"observation file {path} is a directory; give the files in it "
                                   f"(e.g. '{path}/*.csv')")
        suffix = path.suffix.lower()
        if suffix == ".csv":
            sets.append(read_csv(path))
        elif suffix in (".nc", ".nc4", ".netcdf", ".h5"):
            sets.append(ioda.read_ioda(path) if ioda.is_ioda(path) else read_netcdf(path))
        else:
            raise ObservationError(f"{path}: unknown observation format '{suffix}'; use .csv or .nc")
    return ObservationSet.concat(sets)


def write_observations(obs: ObservationSet, path: Path, fmt: str = "auto") -> None:
    """Write as CSV, flat NetCDF or IODA v3 (``fmt``, or from the suffix: .csv or NetCDF)."""
    path = Path(path)
    if fmt == "auto":
        fmt = "csv" if path.suffix.lower() == ".csv" else "netcdf"
    if fmt == "ioda":
        ioda.write_ioda(obs, path)
    else:
        (write_csv if fmt == "csv" else write_netcdf)(obs, path)

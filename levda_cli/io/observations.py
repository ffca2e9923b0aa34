"""Observation files: CSV and flat NetCDF (DESIGN section 5), into one in-memory set.

One record is a time (UTC), coordinates, a variable name, a value and an error standard
deviation. Readers check the syntax of every record and keep where each came from (file and
row), so later checks (unknown variable, outside the domain, outside every window) can name
the record. Nothing here knows about models: the caller supplies what is valid.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import itertools
import re
from pathlib import Path

import numpy as np

from levda_cli.errors import ObservationError

UNIX_EPOCH = np.datetime64("1970-01-01T00:00:00", "s")
TIME_UNITS = "seconds since 1970-01-01T00:00:00Z"
REQUIRED = ("time", "variable", "value", "error")

# Reason codes of rejected observations (stored per observation as qc_flag).
QC_OK = 0
QC_NAN = 1
QC_NONPOSITIVE_ERROR = 2
QC_UNKNOWN_VARIABLE = 3
QC_OUTSIDE_DOMAIN = 4
QC_OUTSIDE_WINDOWS = 5
QC_ALREADY_ASSIMILATED = 6
QC_PREQC = 7
QC_DUPLICATE = 8
QC_BEYOND_HORIZON = 9
QC_NAMES = {
    QC_OK: "ok",
    QC_NAN: "nan",
    QC_NONPOSITIVE_ERROR: "nonpositive_error",
    QC_UNKNOWN_VARIABLE: "unknown_variable",
    QC_OUTSIDE_DOMAIN: "outside_domain",
    QC_OUTSIDE_WINDOWS: "outside_windows",
    QC_ALREADY_ASSIMILATED: "already_assimilated",
    QC_PREQC: "rejected_by_preqc",
    QC_DUPLICATE: "duplicate",
    QC_BEYOND_HORIZON: "beyond_horizon",
}
CHUNK_ROWS = 200_000


@dataclasses.dataclass
class ObservationSet:
    """Observations as columns. ``time`` is ``datetime64[s]`` UTC; ``qc`` 0 means usable."""

    time: np.ndarray
    coords: dict[str, np.ndarray]
    variable: np.ndarray  # str
    value: np.ndarray
    error: np.ndarray
    source: np.ndarray  # file name per record
    row: np.ndarray  # line (CSV, 1-based, header is line 1) or index (NetCDF, 0-based)
    qc: np.ndarray = None

    def __post_init__(self):
        if self.qc is None:
            self.qc = np.zeros(len(self.value), np.int8)

    def __len__(self) -> int:
        return len(self.value)

    def where(self, i: int) -> str:
        """Where record ``i`` came from, for messages."""
        unit = "line" if str(self.source[i]).lower().endswith(".csv") else "record"
        return f"{self.source[i]}, {unit} {self.row[i]}"

    @staticmethod
    def concat(sets: list[ObservationSet]) -> ObservationSet:
        names = list(sets[0].coords)
        for s in sets[1:]:
            if list(s.coords) != names:
                raise ObservationError(
                    f"{s.source[0] if len(s) else 'a file'} has coordinates {list(s.coords)}, "
                    f"the first file has {names}; all files of one run must use the same coordinates"
                )
        cat = lambda attr: np.concatenate([getattr(s, attr) for s in sets])  # noqa: E731
        return ObservationSet(
            time=cat("time"),
            coords={n: np.concatenate([s.coords[n] for s in sets]) for n in names},
            variable=cat("variable"),
            value=cat("value"),
            error=cat("error"),
            source=cat("source"),
            row=cat("row"),
            qc=cat("qc"),
        )


def parse_time(text: str) -> np.datetime64:
    """An ISO 8601 time; a time without a zone is UTC, any zone is converted to UTC."""
    stamp = dt.datetime.fromisoformat(text.strip())
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return np.datetime64(stamp, "s")


def format_time(t: np.datetime64) -> str:
    return f"{np.datetime_as_string(np.asarray(t).astype('datetime64[s]'), unit='s')}Z"


_EPOCH = dt.datetime(1970, 1, 1)


def format_seconds(seconds) -> str:
    """Whole seconds since 1970 as ISO 8601 UTC, e.g. 2000-01-01T06:00:00Z (numpy's spelling; the
    standard library's datetime is five times faster, and its years 1-9999 cover any real run)."""
    try:
        return (_EPOCH + dt.timedelta(seconds=int(seconds))).isoformat() + "Z"
    except (OverflowError, ValueError):
        return format_time(np.datetime64(int(seconds), "s"))


def _zone(text: str) -> str:
    """'Z', an offset such as '+02:00', or '' for a time without a zone."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        return "Z"
    tail = text[-6:]
    if len(text) > 10 and tail[0] in "+-" and tail[3] == ":":
        return "Z" if tail in ("+00:00", "-00:00") else tail
    return ""


def _parse_times(col: np.ndarray, path: Path, lines: np.ndarray, zone_seen: list) -> np.ndarray:
    """ISO 8601 strings -> datetime64[s] UTC. Each distinct string is parsed once (observations share
    times: 40 stations, one time), in the order of first appearance, so an error names the first line
    with that time."""
    index = {t: i for i, t in enumerate(dict.fromkeys(col))}
    inverse = np.fromiter(map(index.__getitem__, col), dtype=np.int64, count=len(col))
    first = np.empty(len(index), np.int64)
    first[inverse[::-1]] = np.arange(len(col) - 1, -1, -1)  # earliest row of each distinct string
    distinct = np.empty(len(index), dtype=object)
    distinct[:] = list(index)
    return _parse_distinct_times(distinct, path, lines[first], zone_seen)[inverse]


_DIGITS = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])
_MARKS = {4: ord("-"), 7: ord("-"), 10: ord("T"), 13: ord(":"), 16: ord(":"), 19: ord("Z")}


def _parse_plain_utc(col: np.ndarray, lines: np.ndarray, zone_seen: list) -> np.ndarray | None:
    """Every string exactly 'YYYY-MM-DDTHH:MM:SSZ' (what levda and most tools write): checked and parsed
    as a block of bytes, not string by string (a million distinct times: 0.1 s instead of 1 s). ``None``
    for anything else, which ``_parse_distinct_times`` reads, checks and names."""
    if not len(col) or (zone_seen and zone_seen[0] != "Z"):
        return None
    try:
        raw = np.array(col.tolist(), dtype=bytes)
    except (UnicodeEncodeError, TypeError, ValueError):
        return None
    if raw.dtype.itemsize != 20:
        return None
    chars = raw.view(np.uint8).reshape(len(raw), 20)  # a shorter string ends in NUL bytes: no 'Z' at 19
    digits = chars[:, _DIGITS]
    if not (((digits >= 48) & (digits <= 57)).all() and all((chars[:, i] == c).all() for i, c in _MARKS.items())):
        return None
    try:
        out = raw.astype("S19").astype("datetime64[s]")
    except ValueError:  # February 30, hour 25: the slow path names the line
        return None
    if not zone_seen:
        zone_seen.extend(["Z", int(lines[0])])
    return out


def _parse_distinct_times(col: np.ndarray, path: Path, lines: np.ndarray, zone_seen: list) -> np.ndarray:
    """ISO 8601 strings -> datetime64[s] UTC, vectorised when the chunk shares one zone."""
    plain = _parse_plain_utc(col, lines, zone_seen)
    if plain is not None:
        return plain
    zones = np.array([_zone(t) for t in col], dtype=object)
    # Rows that do not even look like a date are left to the parser, which names them.
    dated = np.array([len(t) >= 10 and t.strip()[:4].isdigit() and t.strip()[4:5] == "-" for t in col], bool)
    if dated.any() and not zone_seen:
        first = int(np.flatnonzero(dated)[0])
        zone_seen.extend([zones[first], int(lines[first])])
    differ = np.flatnonzero(dated & (zones != zone_seen[0])) if dated.any() else []
    if len(differ):
        i = int(differ[0])
        describe = lambda zz: "no time zone" if zz == "" else f"zone {zz}"  # noqa: E731
        raise ObservationError(
            f"{path}, line {lines[i]}: time '{col[i]}' has {describe(zones[i])}, but line {zone_seen[1]} has "
            f"{describe(zone_seen[0])}; write every time in UTC (e.g. 2000-01-01T06:00:00Z)"
        )
    zone = zones[0] if len(zones) else ""
    naive = np.char.strip(col.astype(str))
    if zone == "Z":
        naive = np.char.rstrip(np.char.replace(np.char.replace(naive, "+00:00", ""), "-00:00", ""), "Zz")
    elif zone:
        naive = np.array([t[:-6] for t in naive])
    _check_iso(naive, col, path, lines)
    try:
        out = naive.astype("datetime64[s]")
    except ValueError:  # a date or hour that does not exist (February 30, hour 25): find and name it
        for i, text in enumerate(naive):
            try:
                np.datetime64(text, "s")
            except ValueError:
                raise ObservationError(
                    f"{path}, line {lines[i]}: time '{col[i]}' is not a valid date and time; write ISO 8601 UTC "
                    "such as 2000-01-01T06:00:00Z"
                ) from None
        raise
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        out = out - np.timedelta64(sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60), "s")
    return out


def _parse_numbers(col: np.ndarray, name: str, path: Path, lines: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(col, dtype=str).astype(float)
    except ValueError:
        for i, text in enumerate(col):
            try:
                float(text)
            except ValueError:
                raise ObservationError(f"{path}, line {lines[i]}: column '{name}' is not a number: '{text}'") from None
        raise


def _signature(head: bytes) -> str | None:
    """What a file's first bytes say it is, when that is not text: for messages that name the cause."""
    if head[:2] == b"\x1f\x8b":
        return "gzip-compressed"
    if head[:4] == b"\x89HDF" or head[:3] == b"CDF":
        return "NetCDF"
    if head[:4] == b"PK\x03\x04":
        return "a zip archive (a spreadsheet?)"
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16 text"
    return None


def _read_head(path: Path) -> bytes:
    if path.is_dir():
        raise ObservationError(f"observation file {path} is a directory; give the files in it (e.g. '{path}/*')")
    try:
        with path.open("rb") as handle:
            return handle.read(8)
    except OSError as err:
        raise ObservationError(f"cannot read observation file {path}: {err.strerror}") from None


def _decoded_lines(handle, path: Path):
    """The file's lines as text: UTF-8 (a leading byte-order mark dropped), CRLF or LF; a line with
    bytes that are not UTF-8, or with a NUL byte, is refused with its number."""
    for number, raw in enumerate(handle, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ObservationError(
                f"{path}, line {number}: byte 0x{raw[err.start]:02x} at column {err.start + 1} is not UTF-8 "
                "(a Latin-1 or binary file?); save the file as UTF-8"
            ) from None
        if "\x00" in text:
            raise ObservationError(f"{path}, line {number}: a NUL byte at column {text.index(chr(0)) + 1}; the file "
                                   "is binary or damaged")
        yield text


_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?")


def _check_iso(naive: np.ndarray, original: np.ndarray, path: Path, lines: np.ndarray) -> None:
    """Every time (zone removed) must be ISO 8601 to whole seconds: numpy's parser also takes bare
    numbers ('12345' as a year), 'NaT' and empty strings, which are not times."""
    distinct, first = np.unique(naive, return_index=True)  # times repeat: check each spelling once
    match = _ISO.fullmatch
    for text, i in zip(distinct, first):
        if match(text) is None:
            hint = (" (fractions of a second: levda's times are whole seconds; round them)"
                    if re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}\.\d+", text) else "")
            raise ObservationError(
                f"{path}, line {lines[i]}: cannot read time '{original[i]}'{hint}; write ISO 8601 UTC such as "
                "2000-01-01T06:00:00Z"
            )


def _read_csv_plain(path: Path, block_bytes: int) -> ObservationSet | None:
    """The common file read fast: UTF-8 without quotes, NUL bytes or blank rows, every row with the
    header's number of fields, every number readable. Blocks of whole lines (memory for one block
    at a time), each split at once rather than row by row. ``None`` at the first thing that is not
    plain: ``read_csv`` then reads the file row by row, and names the line of any error."""
    parts: list[ObservationSet] = []
    zone_seen: list = []
    header, ncol, line0, rest = None, 0, 1, b""
    with path.open("rb") as handle:
        while True:
            block = handle.read(block_bytes)
            data = rest + block
            if block:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    if len(data) > 4 * block_bytes:
                        return None  # no line end in a long stretch: not a plain table
                    rest = data
                    continue
                data, rest = data[:cut], data[cut:]
            elif not data:
                break
            else:
                rest = b""
            if header is None and data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            if b"\r" in data:
                data = data.replace(b"\r\n", b"\n")
            if b'"' in data or b"\x00" in data or b"\r" in data:
                return None
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                return None
            lines = text.split("\n")
            if lines[-1] == "":
                lines.pop()
            if header is None:
                if not lines:
                    return None
                header = [h.strip() for h in lines[0].split(",")]
                ncol = len(header)
                if any(c not in header for c in REQUIRED) or "" in header or len(set(header)) != ncol:
                    return None
                lines = lines[1:]
            if not lines:
                continue
            if set(map(str.count, lines, itertools.repeat(","))) != {ncol - 1}:
                return None  # a blank or malformed row
            flat = ",".join(lines).split(",")
            columns = {name: flat[j::ncol] for j, name in enumerate(header)}
            n = len(lines)
            try:
                numbers = {name: np.fromiter(map(float, columns[name]), float, n)
                           for name in header if name not in ("time", "variable", "qc")}
            except ValueError:
                return None
            rows = np.arange(line0 + 1, line0 + 1 + n)
            line0 += n
            times = np.empty(n, dtype=object)
            times[:] = columns["time"]
            parts.append(ObservationSet(
                time=_parse_times(times, path, rows, zone_seen),
                coords={c: numbers[c] for c in header if c not in REQUIRED and c != "qc"},
                variable=np.char.strip(np.asarray(columns["variable"], dtype=str)).astype(object),
                value=numbers["value"],
                error=numbers["error"],
                source=np.full(n, str(path), dtype=object),
                row=rows,
            ))
    return ObservationSet.concat(parts) if parts else None


def read_csv(path: Path, chunk_rows: int = CHUNK_ROWS) -> ObservationSet:
    """Read a CSV with a header naming ``time``, coordinates, ``variable``, ``value``, ``error``.

    Rows are parsed in vectorised chunks, so a file of millions of records is read at numpy
    speed with memory for one chunk of text at a time. Every error names the line. UTF-8 with
    or without a byte-order mark, LF or CRLF line ends, quoted fields; anything else (Latin-1,
    UTF-16, NUL bytes, compressed or binary files) is refused with what it looks like.
    """
    path = Path(path)
    kind = _signature(_read_head(path))
    if kind is not None:
        hint = {"gzip-compressed": "decompress it first (gunzip)", "NetCDF": "name it .nc",
                "UTF-16 text": "save it as UTF-8 (with or without a byte-order mark)"}.get(kind, "export it as UTF-8 CSV")
        raise ObservationError(f"{path} is {kind}, not CSV text; {hint}")
    try:
        plain = _read_csv_plain(path, max(chunk_rows, 1) * 64)
    except ObservationError:
        plain = None  # read again row by row: its message is the one users get (the same line, the same words)
    if plain is not None:
        return plain
    with path.open("rb") as handle:
        reader = csv.reader(_decoded_lines(handle, path))
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise ObservationError(f"{path} is empty: expected a header row such as "
                                   "'time,site,variable,value,error'") from None
        except csv.Error as err:
            raise ObservationError(f"{path}, line 1: not CSV ({err})") from None
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            hint = ""
            for sep, name in (("\t", "tabs"), (";", "semicolons"), ("|", "bars")):
                if len(header) == 1 and sep in header[0]:
                    hint = f"; the columns seem to be separated by {name}: levda reads comma-separated files"
            raise ObservationError(
                f"{path}, line 1: the header lacks column(s) {', '.join(missing)}; found "
                f"{', '.join(repr(h) for h in header)[:200]}{hint}"
            )
        seen = set()
        for h in header:
            if not h:
                raise ObservationError(f"{path}, line 1: the header has an empty column name")
            if h in seen:
                raise ObservationError(f"{path}, line 1: the header names column '{h}' twice")
            seen.add(h)
        col = {name: i for i, name in enumerate(header)}
        coord_names = [h for h in header if h not in REQUIRED and h != "qc"]
        parts: list[ObservationSet] = []
        rows: list[list[str]] = []
        lines: list[int] = []
        zone_seen: list = []

        def flush():
            if not rows:
                return
            table = np.array(rows, dtype=object)
            ln = np.asarray(lines)
            n = len(rows)
            parts.append(ObservationSet(
                time=_parse_times(table[:, col["time"]], path, ln, zone_seen),
                coords={c: _parse_numbers(table[:, col[c]], c, path, ln) for c in coord_names},
                variable=np.char.strip(table[:, col["variable"]].astype(str)).astype(object),
                value=_parse_numbers(table[:, col["value"]], "value", path, ln),
                error=_parse_numbers(table[:, col["error"]], "error", path, ln),
                source=np.full(n, str(path), dtype=object),
                row=ln,
            ))
            rows.clear()
            lines.clear()

        try:
            line = 1
            for fields in reader:
                line = reader.line_num
                if not fields or not "".join(fields).strip():  # a blank row
                    continue
                if len(fields) != len(header):
                    raise ObservationError(
                        f"{path}, line {line}: malformed row: {len(fields)} fields where the header has "
                        f"{len(header)} ({','.join(fields)[:80]})"
                    )
                rows.append(fields)
                lines.append(line)
                if len(rows) >= chunk_rows:
                    flush()
        except csv.Error as err:
            raise ObservationError(f"{path}, line {reader.line_num}: unreadable CSV ({err})") from None
        flush()
    if not parts:
        raise ObservationError(f"{path} holds no observation records (a header and no rows); a cycle with no "
                               "observations needs no file")
    return ObservationSet.concat(parts)


def write_csv(obs: ObservationSet, path: Path) -> None:
    path = Path(path)
    names = list(obs.coords)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["time", *names, "variable", "value", "error"])
        # columns formatted whole (each distinct time once), rows written by the C writer: repr() keeps every bit
        distinct, inverse = np.unique(np.asarray(obs.time).astype("datetime64[s]"), return_inverse=True)
        stamps = [f"{t}Z" for t in np.datetime_as_string(distinct, unit="s").tolist()]
        floats = lambda a: list(map(repr, np.asarray(a, float).tolist()))  # noqa: E731
        w.writerows(zip(map(stamps.__getitem__, np.ravel(inverse).tolist()), *(floats(obs.coords[n]) for n in names),
                        obs.variable, floats(obs.value), floats(obs.error)))
    tmp.replace(path)


def _seconds_since(units: str, path: Path, name: str) -> np.datetime64:
    try:
        unit, since = str(units).split(" since ")
        if unit.strip() != "seconds":
            raise ValueError
        return parse_time(since.strip())
    except ValueError:
        raise ObservationError(
            f"{path}: variable '{name}' has units '{units}'; expected 'seconds since <ISO time>'"
        ) from None


def open_netcdf(path: Path):
    """An open NetCDF dataset with automatic masking off (fill values are checked explicitly)."""
    import netCDF4

    path = Path(path)
    head = _read_head(path)
    kind = _signature(head)
    if kind != "NetCDF":
        what = kind or ("empty" if not head else "not NetCDF (it does not start with a NetCDF or HDF5 signature)")
        if kind is None and head[:4].isascii() and b"," in head:
            what += "; it looks like CSV text: name it .csv"
        if kind == "gzip-compressed":
            what += "; decompress it first (gunzip)"
        raise ObservationError(f"observation file {path} is {what}")
    try:
        ds = netCDF4.Dataset(path, "r")
    except OSError as err:
        raise ObservationError(f"cannot read observation file {path} as NetCDF (truncated or damaged?): "
                               f"{err}") from None
    ds.set_auto_mask(False)
    return ds


def netcdf_column(group, name: str, path: Path, dim: str, kind: str, label: str | None = None,
                  fills_allowed: bool = False) -> np.ndarray:
    """A one-dimensional variable along ``dim`` with the right kind of values, read whole.

    ``kind``: ``"number"`` (integers or floats), ``"integer"``, ``"string"``; anything else
    (strings where numbers belong, a 2-D array, another length) is refused naming the variable,
    and so is a value equal to the variable's ``_FillValue`` unless ``fills_allowed`` (IODA).
    """
    label = label or name
    if name not in group.variables:
        raise ObservationError(f"{path}: variable '{label}' is missing")
    var = group.variables[name]
    if var.dimensions != (dim,):
        raise ObservationError(f"{path}: variable '{label}' has dimensions {var.dimensions}; expected ('{dim}',), "
                               f"one value per observation")
    is_str = var.dtype is str or getattr(var.dtype, "kind", "") in "SUO"
    numeric = not is_str and np.dtype(var.dtype).kind in "iuf"
    if kind == "string" and not is_str:
        raise ObservationError(f"{path}: variable '{label}' holds {var.dtype} values; expected strings")
    if kind == "number" and not numeric:
        raise ObservationError(f"{path}: variable '{label}' holds {'strings' if is_str else var.dtype}; expected "
                               "numbers (integers or floats)")
    if kind == "integer" and not (numeric and np.dtype(var.dtype).kind in "iu"):
        raise ObservationError(f"{path}: variable '{label}' holds {'strings' if is_str else var.dtype}; expected "
                               "integers")
    try:
        data = var[:]
    except (RuntimeError, OSError, ValueError, IndexError) as err:
        raise ObservationError(f"{path}: cannot read variable '{label}' (damaged file?): {err}") from None
    data = np.asarray(data)
    fill = getattr(var, "_FillValue", None)
    if not fills_allowed and fill is not None and kind != "string":
        hit = data == fill
        if hit.any():
            i = int(np.flatnonzero(hit)[0])
            raise ObservationError(f"{path}, record {i}: '{label}' holds its fill value {fill} (a missing value); "
                                   "drop the record or give its value")
    if kind == "string" and data.dtype.kind == "S" and data.ndim == 2:
        import netCDF4

        data = netCDF4.chartostring(data)
    return data


def times_from_seconds(origin: np.datetime64, data: np.ndarray, path: Path, label: str,
                       unit: str = "record") -> np.ndarray:
    """Seconds since ``origin`` (integers, or floats holding whole seconds) as UTC datetimes; every
    value finite, whole, and within years 1-9999."""
    if data.dtype.kind == "f":
        bad = ~np.isfinite(data) | (data != np.round(data))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ObservationError(f"{path}, {unit} {i}: {label} = {data[i]} is not a whole number of seconds "
                                   "(levda's times are whole seconds)")
    # about 8,000 years: beyond it the datetime arithmetic below could overflow
    big = np.abs(data.astype(float)) > 2.5e11
    if big.any():
        i = int(np.flatnonzero(big)[0])
        raise ObservationError(f"{path}, {unit} {i}: {label} = {data[i]} seconds is not a time levda can place "
                               "(beyond years 1-9999)")
    times = origin + data.astype(np.int64).astype("timedelta64[s]")
    lo, hi = np.datetime64("0001-01-01T00:00:00", "s"), np.datetime64("9999-12-31T23:59:59", "s")
    out = (times < lo) | (times > hi)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise ObservationError(f"{path}, {unit} {i}: {label} is outside years 1-9999")
    return times


def _check_not_empty(n: int, path: Path) -> None:
    if n == 0:
        raise ObservationError(f"{path} holds no observation records; a cycle with no observations needs no file")


def read_netcdf(path: Path) -> ObservationSet:
    """Read a flat NetCDF observation file (dimension ``obs``)."""
    path = Path(path)
    with open_netcdf(path) as ds:
        if "obs" not in ds.dimensions:
            raise ObservationError(
                f"{path}: no dimension 'obs'; a flat observation file has dimension 'obs' and "
                "variables time, <coordinates>, variable, value, error"
            )
        missing = [v for v in REQUIRED if v not in ds.variables]
        if missing:
            raise ObservationError(f"{path}: missing variable(s) {', '.join(missing)}")
        n = len(ds.dimensions["obs"])
        _check_not_empty(n, path)
        tvar = ds.variables["time"]
        origin = _seconds_since(getattr(tvar, "units", ""), path, "time")
        seconds = netcdf_column(ds, "time", path, "obs", "number")
        names = getattr(ds, "coordinate_names", "")
        if not isinstance(names, str):
            raise ObservationError(f"{path}: the attribute coordinate_names must be text, e.g. 'x y'")
        coord_names = names.split() if names else [
            v for v, var in ds.variables.items()
            if v not in (*REQUIRED, "qc") and var.dimensions == ("obs",)
        ]
        for c in coord_names:
            if c not in ds.variables:
                raise ObservationError(f"{path}: coordinate variable '{c}' (named in coordinate_names) is missing")
        return ObservationSet(
            time=times_from_seconds(origin, seconds, path, "time"),
            coords={c: netcdf_column(ds, c, path, "obs", "number").astype(float) for c in coord_names},
            variable=np.asarray(netcdf_column(ds, "variable", path, "obs", "string"), dtype=object).reshape(n),
            value=netcdf_column(ds, "value", path, "obs", "number").astype(float),
            error=netcdf_column(ds, "error", path, "obs", "number").astype(float),
            source=np.full(n, str(path), dtype=object),
            row=np.arange(n),
        )


def write_netcdf(obs: ObservationSet, path: Path) -> None:
    import netCDF4

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with netCDF4.Dataset(tmp, "w", format="NETCDF4") as ds:
        ds.createDimension("obs", len(obs))
        t = ds.createVariable("time", "i8", ("obs",))
        t.units = TIME_UNITS
        t.calendar = "standard"
        t.standard_name = "time"
        t[:] = (obs.time - UNIX_EPOCH).astype(np.int64)
        for name, values in obs.coords.items():
            ds.createVariable(name, "f8", ("obs",))[:] = values
        var = ds.createVariable("variable", str, ("obs",))
        var[:] = np.asarray(obs.variable, dtype=object)
        ds.createVariable("value", "f8", ("obs",))[:] = obs.value
        err = ds.createVariable("error", "f8", ("obs",))
        err.long_name = "observation error standard deviation"
        err[:] = obs.error
        ds.coordinate_names = " ".join(obs.coords)
        ds.Conventions = "levda-flat-obs-1"
    tmp.replace(path)


def screen(
    obs: ObservationSet,
    fields: tuple[str, ...],
    domain: dict[str, tuple[float, float]],
    on_invalid: str,
    model: str = "this model",
) -> None:
    """Check every record; raise on the first bad one, or mark it rejected in ``obs.qc``.

    Checks, in order: NaN or infinite value/error/coordinate, error <= 0, unknown variable,
    duplicate records (same time, coordinates and variable), missing or unexpected
    coordinates, coordinates outside the half-open ``domain`` boxes. Records a reader already
    rejected (IODA PreQC) stay rejected and are not checked further.
    """
    missing = [c for c in domain if c not in obs.coords]
    extra = [c for c in obs.coords if c not in domain]
    if missing or extra:
        src = obs.source[0] if len(obs) else "the observation files"
        raise ObservationError(
            f"{src}: the observations have coordinates {list(obs.coords) or 'none'}, {model} expects "
            f"{list(domain)}" + (f" (missing {missing})" if missing else "") + (f" (unknown {extra})" if extra else "")
        )

    def flag(mask: np.ndarray, code: int, message) -> None:
        mask = mask & (obs.qc == QC_OK)
        if not mask.any():
            return
        if on_invalid == "error":
            i = int(np.flatnonzero(mask)[0])
            raise ObservationError(f"{obs.where(i)}: {message(i)} ({int(mask.sum())} such record(s) in all; "
                                   "fix the file, or set observations.on_invalid = \"reject\" to skip them)")
        obs.qc[mask] = code

    finite = np.isfinite(obs.value) & np.isfinite(obs.error)
    for c in obs.coords.values():
        finite &= np.isfinite(c)
    flag(~finite, QC_NAN, lambda i: f"value {obs.value[i]}, error {obs.error[i]} or a coordinate is NaN or infinite "
         f"(variable '{obs.variable[i]}')")
    flag(obs.error <= 0, QC_NONPOSITIVE_ERROR,
         lambda i: f"error standard deviation must be positive, got {obs.error[i]} (variable '{obs.variable[i]}')")
    known = np.isin(obs.variable.astype(str), np.asarray(fields, dtype=str))
    flag(~known, QC_UNKNOWN_VARIABLE,
         lambda i: f"unknown variable '{obs.variable[i]}'; {model} has {', '.join(fields)}")
    _flag_duplicates(obs, flag)
    for name, (lo, hi) in domain.items():
        c = obs.coords[name]
        with np.errstate(invalid="ignore"):
            outside = ~((c >= lo) & (c < hi))
        flag(outside, QC_OUTSIDE_DOMAIN,
             lambda i, name=name, lo=lo, hi=hi: f"coordinate {name} = {obs.coords[name][i]} is outside the domain "
             f"[{lo}, {hi}) (variable '{obs.variable[i]}')")


def _flag_duplicates(obs: ObservationSet, flag) -> None:
    """A record with the same time, coordinates and variable as an earlier one."""
    if len(obs) < 2:
        return
    keys = [obs.time.astype(np.int64), *(obs.coords[c] for c in obs.coords), np.unique(obs.variable.astype(str),
                                                                                      return_inverse=True)[1]]
    order = np.lexsort(keys[::-1])
    same = np.ones(len(obs) - 1, bool)
    for k in keys:
        ks = k[order]
        same &= ks[1:] == ks[:-1]
    dup = np.zeros(len(obs), bool)
    dup[order[1:][same]] = True
    first = {int(order[1:][j]): int(order[:-1][j]) for j in np.flatnonzero(same)}
    flag(dup, QC_DUPLICATE, lambda i: f"duplicate of {obs.where(first.get(i, i))} (same time, coordinates and "
         f"variable '{obs.variable[i]}')")


def check_syntax(obs: ObservationSet, on_invalid: str) -> None:
    """The model-free checks of ``screen`` (for ``levda obs check`` without a model)."""
    fields = tuple(sorted(set(obs.variable.astype(str))))
    domain = {c: (-np.inf, np.inf) for c in obs.coords}
    screen(obs, fields, domain, on_invalid)

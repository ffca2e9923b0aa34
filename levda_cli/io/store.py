"""The Zarr analysis store: appended window by window, each window committed atomically.

Format: Zarr v2 with consolidated metadata (``.zmetadata``), readable by ``xarray.open_zarr``
and by every Zarr implementation. Every array has the window as its first dimension; a chunk
holds many windows (about 1 MiB, see ``_chunks``), so a 10^4-window store has hundreds of
files, not hundreds of thousands. Appending rewrites the last chunk of each array; zarr's local
store writes every file under a temporary name and renames it, so a chunk is always either its
old or its new self, and the committed windows in it are rewritten with the same values.

Commit protocol: the new window's chunks and each array's grown shape are written first (each
file is written to a temporary name and renamed, by zarr's local store), then the root
attribute ``n_windows``, and last the consolidated metadata. Readers of the consolidated
metadata (xarray does this by default) see either the old or the new window count, never a
half-written window. A store whose arrays run ahead of its consolidated metadata (a killed
writer) is repaired on the next open by shrinking them back to their committed shapes (windows and
observation slots).

A new store is built under a hidden temporary name and renamed into place when its first
window commits, so a run that fails before that leaves nothing behind. A second writer is
kept out by a lock file beside the store (``.<name>.lock``), released by the OS if the
holder dies.

Faults: every chunk is compressed with Zstandard with its content checksum on, so a changed
byte in a chunk is detected when it is read; opening a store to resume reads and checks the
last committed window of every array (decodes, and finite where it must be), so a damaged
store is refused with exit code 5 and the array named before any work is done. An I/O error
while writing (a read-only folder, a full disk) ends as a ``StoreError`` too; the windows
committed before it stay committed.

Version 2 (levda 0.4): many windows per chunk, observation slots 1024 per chunk, Zstandard with
checksums, the ``window_index`` array (windows without observations are not analysed and not
stored, so the store's windows need not be consecutive).
Version 3 (levda 0.5): 4 MiB chunks, observation slots chunked as wide as the first run's fullest
window, ``seconds`` and ``compile_seconds``.
Version 4 (levda 0.6): calibration diagnostics per window (``chi2_min``, ``consistent``, ``diverging``,
``inflation``, ``innovation_ratio``, ``spread_skill``, ``rank_observations``, ``rank_truth``) and the
``rank`` coordinate. A version-3 store is migrated in place when a run resumes it (the new arrays
filled with NaN / -1 for its windows). Version-1 and -2 stores are refused with a message: start a
new store.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from levda_cli.errors import StoreError, StoreLockedError

FORMAT_VERSION = 4
# arrays version 4 added (levda 0.6); a version-3 store gains them, filled as unknown for its windows
ADDED_IN_4 = ("chi2_min", "consistent", "diverging", "inflation", "innovation_ratio", "spread_skill", "rank_observations",
              "rank_truth")
TIME_ATTRS = {"units": "seconds since 1970-01-01T00:00:00", "calendar": "proleptic_gregorian"}


@dataclasses.dataclass(frozen=True)
class ArraySpec:
    """One stored array: dimensions after ``window``, their sizes, dtype and attributes."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str
    attrs: dict = dataclasses.field(default_factory=dict)

    @property
    def fill(self):
        return np.nan if np.dtype(self.dtype).kind == "f" else -1


_MUST_BE_FINITE = ("analysis", "filter", "background", "model_time_start", "cost_final")
_MUST_BE_SET = ("window_start", "window_end", "window_index")


CHUNK_BYTES = 4 << 20  # target size of one chunk before compression
OBS_CHUNK = 4096  # at most this many observation slots per chunk
MAX_WINDOWS_PER_CHUNK = 4096


def _chunks(spec: ArraySpec) -> tuple[int, ...]:
    """Chunks hold many windows (about ``CHUNK_BYTES`` each, at most ``MAX_WINDOWS_PER_CHUNK``), so the
    store's file count grows with its size, not with windows x arrays; observation slots are chunked
    as wide as the array's initial width (the first run's largest window), at most ``OBS_CHUNK``.
    Appending rewrites the last chunk of each array (atomically: written aside, then renamed)."""
    inner = [min(OBS_CHUNK, max(1, n)) if d == "obs" else max(1, n) for d, n in zip(spec.dims, spec.shape)]
    per_window = int(np.prod(inner)) * np.dtype(spec.dtype).itemsize
    windows = int(min(MAX_WINDOWS_PER_CHUNK, max(1, CHUNK_BYTES // per_window)))
    return (windows, *inner)


def _codec():
    """Zstandard with its content checksum: a damaged chunk fails to decode instead of reading wrong."""
    from numcodecs import Zstd

    return Zstd(level=1, checksum=True)


def _lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


class AnalysisStore:
    """An open, locked store. Use ``open_or_create`` and ``close`` (or ``with``)."""

    def __init__(self, path: Path, lock, root, n_windows: int, tmp: Path | None, attrs: dict, direct=None):
        self.path = path
        self._lock = lock
        self._root = root  # zarr-python's group, or None where ``direct`` (``chunks.Chunks``) reads and writes
        self._direct = direct
        self.n_windows = n_windows
        self._tmp = tmp  # building a new store here until its first commit
        self.attrs = attrs

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open_or_create(cls, path: Path, specs: dict[str, ArraySpec], coords: dict[str, np.ndarray],
                       attrs: dict) -> AnalysisStore:
        from filelock import FileLock, Timeout

        path = Path(path)
        if not path.parent.is_dir():
            raise StoreError(f"cannot create {path}: the folder {path.parent} does not exist")
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path} is a file, not a Zarr store; point --out at a new or existing store")
        lock_path = _lock_path(path)
        if lock_path.is_dir():
            raise StoreError(f"the lock path {lock_path} of {path} is a directory; remove it (levda keeps a lock file "
                             "there)")
        lock = FileLock(lock_path)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise StoreLockedError(
                f"{path} is being written by another levda process (lock {lock_path} is held); "
                "wait for it to finish, or check for a stuck job"
            ) from None
        except OSError as err:
            raise StoreError(f"cannot create the lock file {lock_path} of {path}: {err.strerror or err} "
                             f"(is {path.parent} writable?)") from None
        try:
            if path.exists():
                return cls._open_existing(path, lock, specs, coords)
            if not os.access(path.parent, os.W_OK):
                raise StoreError(f"cannot create {path}: the folder {path.parent} is not writable")
            try:
                return cls._create(path, lock, specs, coords, attrs)
            except OSError as err:
                raise StoreError(f"cannot create {path}: {err.strerror or err} ({err.filename or path.parent})") \
                    from None
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _create(cls, path, lock, specs, coords, attrs):
        import zarr

        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        root = zarr.open_group(tmp, mode="w", zarr_format=2)
        for name, values in coords.items():
            values = np.asarray(values)
            arr = root.create_array(name, shape=values.shape, dtype=values.dtype, compressors=_codec(),
                                    attributes={"_ARRAY_DIMENSIONS": [name]}, fill_value=None)
            arr[...] = values
        for name, spec in specs.items():
            root.create_array(
                name,
                # observation slots grow with the widest window written; spec.shape sets their chunking
                shape=(0, *(0 if d == "obs" else n for d, n in zip(spec.dims, spec.shape))),
                chunks=_chunks(spec),
                dtype=spec.dtype,
                fill_value=spec.fill,
                compressors=_codec(),
                attributes={"_ARRAY_DIMENSIONS": ["window", *spec.dims], **spec.attrs},
            )
        root.attrs.update({**attrs, "levda_store_version": FORMAT_VERSION, "n_windows": 0})
        return cls(path, lock, root, 0, tmp, dict(root.attrs))

    @classmethod
    def _open_existing(cls, path, lock, specs, coords=None):
        try:
            # The commit point is the consolidated metadata, read as written (zarr itself would
            # take a v2 group's attributes from .zattrs, which a killed writer may have advanced).
            consolidated = json.loads((path / ".zmetadata").read_text())
            attrs = consolidated["metadata"][".zattrs"]
            if "levda_store_version" not in attrs:
                raise StoreError(f"{path} is a Zarr store but not a levda analysis store (no levda_store_version); "
                                 "point --out at a new path")
            version = attrs.get("levda_store_version")
            if version == 3 and not cls._migrate_3(path, specs, coords, attrs):
                version = None
            if version == 3:
                consolidated = json.loads((path / ".zmetadata").read_text())
                attrs = consolidated["metadata"][".zattrs"]
                version = attrs.get("levda_store_version")
            if version != FORMAT_VERSION:
                raise StoreError(f"{path} has store version {version}; this levda writes version {FORMAT_VERSION} "
                                 f"({ {1: 'written by levda <= 0.3.1: ', 2: 'written by levda 0.4: '}.get(version, '')}start a new store, "
                                 "or use the levda version that wrote it)")
            n = attrs["n_windows"]
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise StoreError(f"{path}: n_windows in its consolidated metadata is {n!r}, not a window count; "
                                 "the store is damaged")
            direct = cls._direct_for(path, consolidated, specs, n)
            if direct is not None:  # the common case, a cron cycle's: no zarr-python at all (``chunks``)
                if not os.access(path, os.W_OK):
                    raise StoreError(f"{path} is not writable; a resumed run appends to it (check its permissions)")
                store = cls(path, lock, None, n, None, attrs, direct)
                store.verify_last(specs)
                return store
            import zarr

            root = zarr.open_group(path, mode="r+", use_consolidated=False)
        except StoreError:
            raise
        except Exception as err:
            raise StoreError(
                f"{path} is not a readable levda store ({type(err).__name__}: {err}); "
                "move it aside and start a new one, or point --out elsewhere"
            ) from None
        if not os.access(path, os.W_OK):
            raise StoreError(f"{path} is not writable; a resumed run appends to it (check its permissions)")
        repaired = False
        for name, spec in specs.items():
            try:
                present = name in root
            except Exception as err:  # a damaged .zarray or .zgroup
                raise StoreError(f"{path}: the metadata of array '{name}' is damaged ({type(err).__name__}: "
                                 f"{err}); move the store aside and start a new one") from None
            if not present:
                raise StoreError(f"{path} lacks the array '{name}': it was written by a different levda "
                                 "version or model, or with other output settings (output.members and "
                                 "inflation.rtps = \"adaptive\" add arrays); resume it with the settings it was "
                                 "made with, or write to a new store")
            try:
                arr = root[name]
                shape = arr.shape
            except Exception as err:  # a damaged .zarray
                raise StoreError(f"{path}: the metadata of array '{name}' is damaged ({type(err).__name__}: "
                                 f"{err}); move the store aside and start a new one") from None
            if len(shape) != 1 + len(spec.shape) or shape[0] < n:
                raise StoreError(f"{path}: array '{name}' has shape {shape}, but the store records {n} committed "
                                 "windows; the store is damaged: move it aside and start a new one")
            # the committed shape: a killed writer may have grown an array by windows and, for observation
            # arrays, by slots; all of it goes back (arrays sharing the obs dimension must agree on it)
            committed = consolidated["metadata"].get(f"{name}/.zarray", {}).get("shape")
            target = (tuple(committed) if isinstance(committed, list) and len(committed) == len(shape)
                      and committed[0] == n and all(isinstance(c, int) and c >= 0 for c in committed)
                      else (n, *shape[1:]))
            if tuple(shape) != target:
                try:
                    arr.resize(target)  # drop what a killed writer left uncommitted
                except OSError as err:
                    raise StoreError(f"cannot repair {path}: {err.strerror or err}") from None
                repaired = True
        store = cls(path, lock, root, n, None, attrs)
        store.verify_last(specs)
        if repaired or dict(root.attrs).get("n_windows") != n:
            try:
                root.attrs["n_windows"] = n
                store._consolidate()
            except OSError as err:
                raise StoreError(f"cannot repair {path}: {err.strerror or err}") from None
        return store

    @staticmethod
    def _direct_for(path: Path, consolidated: dict, specs: dict[str, ArraySpec | None], n: int):
        """``chunks.Chunks`` for a store whose window arrays it handles and whose files agree with the
        consolidated metadata (each array ``n`` windows long); None sends the open through zarr-python
        (a layout ``chunks`` does not handle, a missing or damaged array, a repair after a killed writer)."""
        from levda_cli.io import chunks

        if os.environ.get("LEVDA_STORE_IO") == "zarr" or not chunks.usable(consolidated, specs):
            return None
        direct = chunks.Chunks(path, consolidated)
        for name, spec in specs.items():
            shape = direct.shape(name)
            if shape[0] != n or (spec is not None and len(shape) != 1 + len(spec.shape)):
                return None
        return direct if direct.agrees_on_disk(specs) else None

    @staticmethod
    def _migrate_3(path: Path, specs: dict[str, ArraySpec], coords: dict | None, attrs: dict) -> bool:
        """Version 3 -> 4 in place (the lock is held): the new arrays, filled with their fill value (NaN or
        -1: unknown) for the committed windows, then the version. Idempotent, so a migration killed
        half-way is finished by the next open. False if this store is not one the new layout fits."""
        import zarr

        n = attrs.get("n_windows")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0 or coords is None:
            return False
        root = zarr.open_group(path, mode="r+", use_consolidated=False)
        for name, values in coords.items():
            if name not in root:
                values = np.asarray(values)
                arr = root.create_array(name, shape=values.shape, dtype=values.dtype, compressors=_codec(),
                                        attributes={"_ARRAY_DIMENSIONS": [name]}, fill_value=None)
                arr[...] = values
        for name in ADDED_IN_4:
            spec = specs.get(name)
            if spec is None or name in root:
                continue
            root.create_array(name, shape=(n, *spec.shape), chunks=_chunks(spec), dtype=spec.dtype,
                              fill_value=spec.fill, compressors=_codec(),
                              attributes={"_ARRAY_DIMENSIONS": ["window", *spec.dims], **spec.attrs})
        root.attrs["levda_store_version"] = FORMAT_VERSION
        zarr.consolidate_metadata(root.store)
        return True

    def verify_last(self, specs: dict[str, ArraySpec]) -> None:
        """Read the last committed window of every array: each chunk decodes (checksum) and holds
        what a committed window must (the window's times, a finite ensemble)."""
        if self.n_windows == 0:
            return
        k = self.n_windows - 1
        for name in specs:
            try:
                value = self._read(name, k, k + 1)[0]
            except Exception as err:  # zarr/numcodecs raise several types for a damaged chunk
                raise StoreError(f"{self.path}: the chunk of array '{name}' for window {k} is damaged "
                                 f"({type(err).__name__}: {str(err)[:120]}); the store cannot be resumed: move it "
                                 "aside and start a new one") from None
            if name in _MUST_BE_FINITE and not np.isfinite(value).all():
                raise StoreError(f"{self.path}: array '{name}' of window {k} is missing or not finite (a lost "
                                 "chunk?); the store cannot be resumed: move it aside and start a new one")
            if name in _MUST_BE_SET and (value < 0).any():
                raise StoreError(f"{self.path}: array '{name}' of window {k} is missing (a lost chunk?); the store "
                                 "cannot be resumed: move it aside and start a new one")

    # -- reading -------------------------------------------------------------------------------
    def read_last(self, name: str) -> np.ndarray:
        if self.n_windows == 0:
            raise StoreError(f"{self.path} holds no committed window")
        return self._read(name, self.n_windows - 1, self.n_windows)[0]

    def read_tail(self, name: str, n: int) -> np.ndarray:
        """The last ``n`` committed windows of an array, oldest first."""
        return self._read(name, max(0, self.n_windows - n), self.n_windows)

    def _read(self, name: str, start: int, stop: int) -> np.ndarray:
        if self._direct is not None:
            return self._direct.read(name, start, stop)
        return np.asarray(self._root[name][start:stop])

    # -- writing -------------------------------------------------------------------------------
    def append(self, windows: list[dict[str, np.ndarray]]) -> None:
        """Write complete windows (every array of the layout) and commit them together.

        Batching amortises the metadata writes of a commit; each window is still whole or
        absent, since the consolidated metadata is written last.
        """
        if not windows:
            return
        try:
            self._append(windows)
        except OSError as err:
            raise StoreError(f"cannot write to {self.path}: {err.strerror or err} ({err.filename or self.path}); "
                             f"it keeps its {self.n_windows} committed window(s): free space or fix permissions and "
                             "run the same command again") from None

    def _append(self, windows: list[dict[str, np.ndarray]]) -> None:
        n, b = self.n_windows, len(windows)
        direct = self._direct
        arrays = self._arrays() if direct is None else None
        for name in windows[0]:
            arr = arrays[name] if direct is None else None
            # dtype: a zarr property that costs microseconds: once per array, not per window
            dtype = arr.dtype if direct is None else direct.dtype(name)
            values = [np.asarray(w[name], dtype=dtype) for w in windows]
            inner = tuple(arr.shape[1:] if direct is None else direct.shape(name)[1:])
            if all(v.shape == inner for v in values):  # fixed-shape arrays: one stack
                shape = [n + b, *inner]
                block = np.stack(values) if b > 1 else values[0][None]
            else:
                shape = [n + b, *inner]
                for value in values:
                    for axis, size in enumerate(value.shape, start=1):
                        shape[axis] = max(shape[axis], size)  # the observation slots may grow
                block = np.full((b, *shape[1:]), np.nan if dtype.kind == "f" else -1, dtype)
                for i, value in enumerate(values):
                    block[(i, *(slice(0, s) for s in value.shape))] = value
            if direct is not None:
                direct.write(name, n, block)  # chunks, then the grown .zarray
                continue
            if tuple(shape) != tuple(arr.shape):
                arr.resize(tuple(shape))
            arr[n : n + b] = block
        if direct is not None:
            direct.set_attrs({"n_windows": n + b})
            direct.commit()
        else:
            self._root.attrs["n_windows"] = n + b
            self._consolidate()
        self.n_windows = n + b
        if self._tmp is not None:
            import zarr

            if self.path.exists():
                raise StoreError(f"{self.path} appeared while this run was creating it; another process wrote it")
            os.replace(self._tmp, self.path)
            self._tmp = None
            # from here on as a resumed store: levda's own chunk writer where it applies (``chunks``)
            self._direct = self._direct_for(self.path, json.loads((self.path / ".zmetadata").read_bytes()),
                                            {name: None for name in windows[0]}, n + b)
            self._root = None if self._direct is not None else zarr.open_group(self.path, mode="r+",
                                                                               use_consolidated=False)
            self._cache = None

    _cache = None

    def _arrays(self) -> dict:
        if self._cache is None:
            self._cache = {name: arr for name, arr in self._root.arrays()}
        return self._cache

    def _consolidate(self) -> None:
        import zarr

        zarr.consolidate_metadata(self._root.store)

    def set_attrs(self, attrs: dict) -> None:
        """Update root attributes; they become visible with the next commit."""
        if self._direct is not None:
            self._direct.set_attrs(attrs)
        else:
            self._root.attrs.update(attrs)

    def close(self) -> None:
        if self._tmp is not None and self._tmp.exists():
            shutil.rmtree(self._tmp, ignore_errors=True)  # nothing committed: leave nothing behind
        self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def dumps_attr(value) -> str:
    """Structured attributes are stored as JSON text (NetCDF-safe, no bool/None/dict attrs)."""
    return json.dumps(value, sort_keys=True)

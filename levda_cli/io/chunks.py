"""A levda store's window arrays read and written chunk by chunk, without zarr-python.

A cron cycle resumes a store, appends one window and exits. Through zarr-python that costs about
0.3 CPU s for a 57-array store (its import, then a few milliseconds of Python per array and
operation: open, check the last window, resize, write, consolidate), a quarter of the whole cycle.
The store is plain Zarr v2 (``store.py``): each chunk is the C-ordered bytes of a full-size chunk,
compressed by one numcodecs codec; metadata is JSON. ``Chunks`` reads and writes exactly that, for
the arrays levda itself appends to, and writes the same bytes zarr-python writes (checked by
``tests/test_store.py``): a chunk that holds only the fill value is not stored (zarr's default
``write_empty_chunks = False``), metadata JSON is indented as zarr indents it, and every file is
written under a temporary name and renamed into place.

Only what levda writes is handled (``usable``): format 2, C order, no filters, "." as the dimension
separator, one compressor, a fixed-size dtype and a fill value. Anything else (and a store whose
arrays disagree with its consolidated metadata, which the zarr path repairs) goes through zarr-python.
The commit protocol is the store's: chunks, then each array's ``.zarray``, then the root ``.zattrs``,
then ``.zmetadata`` last.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from pathlib import Path

import numpy as np

_DTYPES = {"<f8", "<f4", "<i8", "<i4", "<i2", "|i1", "|u1", "<u2", "<u4", "<u8", "|b1"}
_INDENT = 2  # zarr-python's default ``json_indent``


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fill(meta: dict, dtype: np.dtype):
    value = meta["fill_value"]
    if isinstance(value, str):  # "NaN", "Infinity", "-Infinity" in Zarr v2 JSON
        return dtype.type(float(value.replace("Infinity", "inf")))
    return dtype.type(value)


def usable(consolidated: dict, names) -> bool:
    """Whether every array in ``names`` is one ``Chunks`` reads and writes as zarr-python would."""
    metadata = consolidated.get("metadata", {})
    for name in names:
        meta = metadata.get(f"{name}/.zarray")
        if not isinstance(meta, dict):
            return False
        compressor = meta.get("compressor")
        if (meta.get("zarr_format") != 2 or meta.get("order") != "C" or meta.get("filters") is not None
                or meta.get("dimension_separator") != "." or meta.get("dtype") not in _DTYPES
                or meta.get("fill_value") is None or not isinstance(compressor, dict)
                or compressor.get("id") != "zstd"):
            return False
        shape, chunks = meta.get("shape"), meta.get("chunks")
        if not (isinstance(shape, list) and isinstance(chunks, list) and len(shape) == len(chunks) >= 1
                and all(type(n) is int and n >= 0 for n in shape) and all(type(c) is int and c > 0 for c in chunks)):
            return False
    return True


class Chunks:
    """The window arrays of the store at ``path``, from its consolidated metadata (``.zmetadata``)."""

    def __init__(self, path: Path, consolidated: dict):
        self.path = Path(path)
        self.consolidated = consolidated
        self.metadata = consolidated["metadata"]
        self._codecs: dict[str, object] = {}

    def meta(self, name: str) -> dict:
        return self.metadata[f"{name}/.zarray"]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.meta(name)["shape"])

    def dtype(self, name: str) -> np.dtype:
        return np.dtype(self.meta(name)["dtype"])

    def _codec(self, name: str):
        codec = self._codecs.get(name)
        if codec is None:
            from numcodecs import get_codec

            codec = self._codecs[name] = get_codec(dict(self.meta(name)["compressor"]))
        return codec

    def _key(self, name: str, index) -> Path:
        return self.path / name / ".".join(map(str, index))

    def _read_chunk(self, name: str, index, meta: dict, dtype: np.dtype):
        """A chunk's full-size array, or None where no chunk is stored (all fill value)."""
        try:
            data = self._key(name, index).read_bytes()
        except FileNotFoundError:
            return None
        raw = self._codec(name).decode(data)
        return np.frombuffer(raw, dtype=dtype).reshape(meta["chunks"])

    @staticmethod
    def _overlaps(chunks, lo, hi):
        """The chunks the region ``lo:hi`` touches: (chunk index, the overlap within the chunk, the overlap
        within the region, whether the region covers the whole chunk)."""
        ranges = [range(l // c, (h - 1) // c + 1) if h > l else range(0) for l, h, c in zip(lo, hi, chunks)]
        for index in itertools.product(*ranges):
            c_lo = [i * c for i, c in zip(index, chunks)]
            a = [max(l, cl) for l, cl in zip(lo, c_lo)]
            b = [min(h, cl + c) for h, cl, c in zip(hi, c_lo, chunks)]
            whole = all(x == cl and y == cl + c for x, y, cl, c in zip(a, b, c_lo, chunks))
            yield (index, tuple(slice(x - cl, y - cl) for x, y, cl in zip(a, b, c_lo)),
                   tuple(slice(x - l, y - l) for x, y, l in zip(a, b, lo)), whole)

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Windows ``start:stop`` of an array (all of its other dimensions)."""
        meta = self.meta(name)
        dtype = np.dtype(meta["dtype"])
        shape, chunks = meta["shape"], meta["chunks"]
        stop = min(stop, shape[0])
        start = min(start, stop)
        lo, hi = [start, *(0 for _ in shape[1:])], [stop, *shape[1:]]
        out = np.full([h - l for l, h in zip(lo, hi)], _fill(meta, dtype), dtype)
        for index, inside, part, _ in self._overlaps(chunks, lo, hi):
            chunk = self._read_chunk(name, index, meta, dtype)
            if chunk is not None:
                out[part] = chunk[inside]
        return out

    def write(self, name: str, start: int, block: np.ndarray) -> None:
        """Write ``block`` at windows ``start:start + len(block)`` (its other dimensions from 0), growing
        the array's shape where the block reaches beyond it; the new ``.zarray`` is written at once
        (the commit is ``.zmetadata``)."""
        meta = self.meta(name)
        dtype = np.dtype(meta["dtype"])
        chunks = meta["chunks"]
        block = np.asarray(block, dtype)
        lo = [start, *(0 for _ in block.shape[1:])]
        hi = [start + block.shape[0], *block.shape[1:]]
        fill = _fill(meta, dtype)
        codec = self._codec(name)
        for index, inside, part, whole in self._overlaps(chunks, lo, hi):
            old = None if whole else self._read_chunk(name, index, meta, dtype)
            chunk = np.full(chunks, fill, dtype) if old is None else old.copy()
            chunk[inside] = block[part]
            key = self._key(name, index)
            if (np.isnan(chunk).all() if dtype.kind == "f" and np.isnan(fill) else (chunk == fill).all()):
                key.unlink(missing_ok=True)  # zarr-python stores no chunk that holds only the fill value
            else:
                _atomic_write(key, codec.encode(np.ascontiguousarray(chunk)))
        shape = [max(s, h) for s, h in zip(meta["shape"], hi)]
        if shape != meta["shape"]:
            meta["shape"] = shape
            _atomic_write(self.path / name / ".zarray", json.dumps(meta, indent=_INDENT, allow_nan=True).encode())

    def set_attrs(self, attrs: dict) -> None:
        """Update the root attributes (``.zattrs`` now; readers see them with the next ``commit``)."""
        self.metadata[".zattrs"].update(attrs)
        _atomic_write(self.path / ".zattrs", json.dumps(self.metadata[".zattrs"], indent=_INDENT,
                                                        allow_nan=True).encode())

    def commit(self) -> None:
        """The consolidated metadata, written last: the commit point."""
        _atomic_write(self.path / ".zmetadata", json.dumps(self.consolidated, allow_nan=True).encode())

    def agrees_on_disk(self, names) -> bool:
        """Each array's own ``.zarray`` and the root ``.zattrs`` equal the consolidated metadata (false
        after a writer was killed between its chunks and its commit: the zarr path repairs that)."""
        try:
            for name in names:
                if json.loads((self.path / name / ".zarray").read_bytes()) != self.meta(name):
                    return False
            return json.loads((self.path / ".zattrs").read_bytes()) == self.metadata[".zattrs"]
        except (OSError, ValueError):
            return False


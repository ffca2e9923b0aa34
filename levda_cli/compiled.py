"""Compiled functions kept across processes: a cron cycle should not trace the window step again.

JAX's persistent compilation cache skips XLA's compile in a second process, but not the Python
tracing and lowering that come before it (about a second for the window step, half of a warm
cron cycle). ``CachedFunction`` exports the traced program once per argument signature with
``jax.export`` (its StableHLO, JAX's public serialisation format) into the cache folder; a later
process deserialises it and jit-compiles it (a persistent-cache hit) without tracing.

Every call goes through an exported program, whether or not it was read from disk, so a run that
exports and a run that loads compile the same module and give the same bits. The file name is a
hash of everything that shapes the program: the caller's key (levda version, resolved config,
checkpoint SHA-256), the function's name, the argument shapes and dtypes, the JAX and jaxlib
versions and the backend. A file that cannot be read or deserialised is ignored and written again;
a function JAX cannot export runs under plain ``jax.jit``.

On a mesh of several devices (``sharding``: a replicated ``NamedSharding``, perhaps spanning
processes) the function runs under plain ``jax.jit`` (no export; the persistent compilation cache
still serves a second process), its arguments placed on the mesh and its outputs replicated, so
every process holds every result.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np


def signature(leaves) -> tuple:
    return tuple((tuple(int(n) for n in np.shape(x)), np.dtype(getattr(x, "dtype", None) or np.result_type(x)).str)
                 for x in leaves)


class CachedFunction:
    """``fn(*arrays) -> outputs``, compiled once per signature, its export kept in ``folder``.

    ``meta`` maps a signature to JSON-able facts ``fn`` records while it is traced (the packed
    output's layout, say); they are saved beside the export and restored with it.
    """

    def __init__(self, fn: Callable, name: str, key: str, folder: Path | None, meta: dict | None = None,
                 sharding=None):
        self.fn, self.name, self.key, self.folder, self.sharding = fn, name, key, folder, sharding
        self.meta = meta if meta is not None else {}
        self._calls: dict[tuple, Callable] = {}

    def _path(self, sig) -> Path | None:
        if self.folder is None:
            return None
        import jax
        import jaxlib

        text = json.dumps([self.key, self.name, repr(sig), jax.__version__, jaxlib.__version__,
                           jax.default_backend(), jax.local_devices()[0].device_kind])
        return self.folder / f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:40]}"

    def _load(self, path: Path, sig):
        from jax import export

        try:
            blob = path.with_suffix(".jaxexport").read_bytes()
            meta = json.loads(path.with_suffix(".json").read_text())
            exported = export.deserialize(bytearray(blob))
        except Exception:  # absent, damaged, or written by another JAX: export again
            return None
        if meta.get("signature") != repr(sig):
            return None
        if meta.get("meta") is not None:
            self.meta[sig] = meta["meta"]
        return exported

    def _save(self, path: Path, exported, sig) -> None:
        try:
            blob = exported.serialize()
            path.parent.mkdir(parents=True, exist_ok=True)
            for suffix, data in ((".jaxexport", blob),
                                 (".json", json.dumps({"signature": repr(sig), "meta": self.meta.get(sig)}).encode())):
                tmp = path.with_name(f".{path.name}{suffix}.{uuid.uuid4().hex[:8]}")
                tmp.write_bytes(data)
                os.replace(tmp, path.with_suffix(suffix))  # atomic: a reader sees the old file or the new
        except Exception:  # no flatbuffers, a read-only cache, a full disk: the run goes on uncached
            pass

    def _build(self, leaves, sig) -> Callable:
        import jax
        from jax import export

        if self.sharding is not None:
            return jax.jit(self.fn, out_shardings=self.sharding)
        path = self._path(sig)
        exported = self._load(path, sig) if path is not None else None
        if exported is None:
            structs = [jax.ShapeDtypeStruct(shape, np.dtype(dtype)) for shape, dtype in sig]
            try:
                exported = export.export(jax.jit(self.fn))(*structs)
            except Exception:  # not exportable (a host callback, say): plain jit, traced in every process
                return jax.jit(self.fn)
            if path is not None:
                self._save(path, exported, sig)
        return jax.jit(exported.call)

    def __call__(self, *leaves):
        import jax

        # Device arrays committed: an exported program's compiled form depends on whether an
        # argument is committed (host arrays count as committed), and a mix (a first ensemble from an eager slice, later
        # ones from a compiled forecast) would compile the window step twice.
        if self.sharding is not None:
            from levda_cli.core.sharding import to_global

            leaves = [to_global(x, self.sharding) for x in leaves]
        else:
            device = jax.local_devices()[0]
            leaves = [jax.device_put(x, device) if isinstance(x, jax.Array) and not x.committed else x
                      for x in leaves]
        sig = signature(leaves)
        call = self._calls.get(sig)
        if call is None:
            call = self._calls[sig] = self._build(leaves, sig)
        return call(*leaves)

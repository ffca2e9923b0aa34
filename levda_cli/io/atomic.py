"""Folders (Zarr stores, report folders) built aside and put in place whole."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from pathlib import Path


@contextlib.contextmanager
def replacing(out: Path):
    """Yield a hidden sibling path to build ``out`` in (not created). When the block ends normally it
    takes ``out``'s place (a previous ``out`` is moved aside first and then deleted, so ``out`` is never
    half-written); when it raises, what was built is removed and ``out`` is left as it was."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

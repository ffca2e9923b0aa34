"""JAX for levda's commands: precision, the persistent compilation cache and the exported-program
folder, and a count of the time spent compiling (so a window's time can be split)."""

from __future__ import annotations

import functools
import os
from pathlib import Path


def cache_folder() -> Path | None:
    """LEVDA_CACHE_DIR, by default ~/.cache/levda/jax; None when set to "off"."""
    cache = os.environ.get("LEVDA_CACHE_DIR", str(Path.home() / ".cache" / "levda" / "jax"))
    return None if not cache or cache.lower() == "off" else Path(cache)


def export_folder() -> Path | None:
    """Where exported window programs are kept (``compiled.CachedFunction``)."""
    folder = cache_folder()
    return None if folder is None else folder / "exports"


def configure_jax(precision: str = "float64") -> None:
    """Precision and the persistent compilation cache (a cron cycle's second start is faster)."""
    import jax

    # float64 always: the ensemble, the N x N algebra and the cost; output.precision = "float32" runs
    # the model and the decoder in single precision (core.linearise.ObservationTerm)
    jax.config.update("jax_enable_x64", True)
    cache = os.environ.get("LEVDA_CACHE_DIR", str(Path.home() / ".cache" / "levda" / "jax"))
    if cache and cache.lower() != "off":
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


COMPILE_SECONDS = [0.0]  # JAX's tracing, lowering and compiling time in this process


def _compile_listener(event: str, duration: float, **_) -> None:
    if event.startswith("/jax/core/compile/"):
        COMPILE_SECONDS[0] += duration


def watch_compilation() -> None:
    """Count JAX's compile-time events (once per process), so each window's time can be split."""
    import jax

    if not getattr(watch_compilation, "done", False):
        jax.monitoring.register_event_duration_secs_listener(_compile_listener)
        watch_compilation.done = True


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """SHA-256 of levda's own source files: an exported window program is reused only by the code that
    made it (a changed window step under an unchanged version number must not load a stale export)."""
    import hashlib

    digest = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()

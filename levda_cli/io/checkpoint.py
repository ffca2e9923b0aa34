"""The surrogate checkpoint: one file, a JSON header line, equinox's serialised leaves, a checksum.

Layout (format version 3; version 2 is the same without the optional ``surrogate_error`` block)::

    {"format": "levda-checkpoint", "format_version": 3, ..., "payload_bytes": N,
     "payload_sha256": "..."}\\n
    <N bytes: eqx.tree_serialise_leaves of the Surrogate (numpy .npy records, no pickle)>
    <64 hex digits: SHA-256 of everything before them>\\n

The trailer covers the header and the payload together, and is verified before anything in
the header is read: the header decides how the payload is read (shapes, dtype, normalisation,
time), so a changed byte there must be caught like one in the payload. Checked by hand with
``head -c -65 model.ckpt | sha256sum`` against ``tail -c 65 model.ckpt``. Then the header's
schema is validated (types, ranges, sizes that agree), the payload is read into a skeleton
built from the header alone, and the normalisation stored in both is compared.

Version 1 files (levda <= 0.3.1: no trailer; the checksum covered the payload only) are still
read, with a warning that their header is unverified; ``levda surrogate upgrade`` rewrites one
in the current version. Version 3 (levda 0.6) adds ``surrogate_error``: the trained surrogate's
RMSE per field and per output frame on its validation trajectories (physical units), which
assimilation adds to each observation's error variance; a version-2 checkpoint has none, and its
per-field validation relative L2 times the field's RMS stands in (``models.surrogate_error``).
Version 4 (levda 0.9) adds ``hyperparameters.forcing_periods`` and ``forcing_offset``: a surrogate of
a flow whose forcing moves with time (the sphere) carries a clock in its state and takes the
forcing's phases (``core.surrogate``); a version 1-3 checkpoint has neither and loads as the
autonomous surrogate it is. Every refusal is a ``CheckpointError`` (exit code 4) naming the file and the item.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from levda_cli.errors import ModelError

FORMAT = "levda-checkpoint"
FORMAT_VERSION = 4  # 3: the optional surrogate_error block (levda 0.6); 4: forcing_periods (levda 0.9)
SUPPORTED_VERSIONS = (1, 2, 3, 4)
TRAILER_BYTES = 65  # 64 hex digits and a newline
_HEX64 = re.compile(rb"[0-9a-f]{64}\n")


class CheckpointError(ModelError):
    kind = "checkpoint error"


def file_sha256(path: Path) -> str:
    """The SHA-256 of the whole file, as ``sha256sum`` prints it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _skeleton(header: dict):
    import jax

    from levda_cli.core.surrogate import Surrogate

    import equinox as eqx
    import jax.numpy as jnp

    h = header["hyperparameters"]
    dtype = jnp.dtype(header.get("dtype", "float32"))
    # Shapes and dtypes only (eval_shape): no random initialisation to throw away (it took seconds).
    model = eqx.filter_eval_shape(lambda: Surrogate.build(
        n_latent=h["n_latent"], n_coord=len(header["coordinates"]), n_field=len(header["fields"]),
        n_param=len(header["parameters"]), dynamics_width=h["dynamics_width"], dynamics_depth=h["dynamics_depth"],
        decoder_width=h["decoder_width"], decoder_depth=h["decoder_depth"], n_fourier=h["n_fourier"],
        fourier_scale=h["fourier_scale"], periodic=tuple(c["periodic"] for c in header["coordinates"]),
        dt=h["dt"], time_scale=h["time_scale"], key=jax.random.PRNGKey(0),
        forcing_periods=tuple(h.get("forcing_periods", ())), forcing_offset=h.get("forcing_offset", 0.0),
    ))
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, dtype if jnp.issubdtype(a.dtype, jnp.inexact) else a.dtype)
                        if isinstance(a, jax.ShapeDtypeStruct) else a, model)


def save_checkpoint(path: Path, model, header: dict) -> dict:
    """Write ``model`` with ``header`` (completed with format, sizes and checksums) atomically."""
    import equinox as eqx

    import jax

    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, model)
    payload = buf.getvalue()
    dtypes = {str(a.dtype) for a in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))}
    if len(dtypes) != 1:
        raise ValueError(f"a checkpoint's arrays must share one floating dtype, got {sorted(dtypes)}")
    header = {**header, "format": FORMAT, "format_version": FORMAT_VERSION, "dtype": dtypes.pop(),
              "payload_bytes": len(payload), "payload_sha256": hashlib.sha256(payload).hexdigest()}
    header.pop("header_verified", None)
    validate_header(header, Path(path))
    _write(Path(path), header, payload)
    return header


def _write(path: Path, header: dict, payload: bytes) -> None:
    line = json.dumps(header, sort_keys=True, allow_nan=False).encode()
    body = line + b"\n" + payload
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(body + hashlib.sha256(body).hexdigest().encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write checkpoint {path}: {err.strerror or err}") from None


def upgrade_checkpoint(src: Path, dst: Path, warn: Callable[[str], None] | None = None) -> dict:
    """Rewrite a version-1 checkpoint (payload verified) in the current format version (header and payload covered)."""
    header, payload = read_header(src, warn=warn)
    header = {k: v for k, v in header.items() if k != "header_verified"}
    header["format_version"] = FORMAT_VERSION
    _write(Path(dst), header, payload)
    return read_header(dst)[0]


def read_header(path: Path, warn: Callable[[str], None] | None = None,
                trusted_sha256: str | None = None) -> tuple[dict, bytes]:
    """The header and the payload bytes, with the checksums, the format and the header's schema verified.

    ``trusted_sha256``: the whole file's SHA-256 must equal it (operational pinning of one
    known checkpoint). ``warn`` receives the warning a version-1 file (unverified header) gets.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a checkpoint file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err.strerror}") from None
    if trusted_sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != trusted_sha256.strip().lower():
            raise CheckpointError(f"{path} has SHA-256 {digest}, not the trusted {trusted_sha256}; it is another "
                                  "or a changed checkpoint")
    if data[:2] == b"\x1f\x8b":
        raise CheckpointError(f"{path} is gzip-compressed; decompress it first (gunzip)")
    tail = data[-TRAILER_BYTES:]
    signed = len(data) > TRAILER_BYTES and _HEX64.fullmatch(tail) is not None
    if signed:
        digest = hashlib.sha256(data[:-TRAILER_BYTES]).hexdigest()
        if digest.encode() != tail[:64]:
            raise CheckpointError(
                f"{path} is corrupt: the SHA-256 of its header and payload is {digest[:16]}..., its last line records "
                f"{tail[:16].decode()}... (a changed byte, or a damaged copy); copy it again from its source")
        data = data[:-TRAILER_BYTES]
    line, sep, payload = data.partition(b"\n")
    try:
        header = json.loads(line, parse_constant=_no_constant)
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is not a levda checkpoint (its first line is not a levda JSON header)") from None
    version = header.get("format_version")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this levda reads versions "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}. Upgrade levda, or re-export the checkpoint"
        )
    if version >= 2 and not signed:
        raise CheckpointError(f"{path} is damaged: a version-{version} checkpoint ends with the SHA-256 of its "
                              "header and payload, and this file does not (truncated, or extended); copy it again")
    if version == 1 and signed:
        raise CheckpointError(f"{path} says format version 1 but carries a version-2+ checksum; the header was changed")
    expected = header.get("payload_bytes")
    if not isinstance(expected, int) or isinstance(expected, bool) or expected < 0:
        raise CheckpointError(f"{path}: the header's payload_bytes is {expected!r}, not a byte count")
    if not sep or len(payload) != expected:
        what = "truncated" if len(payload) < expected else "longer than its header says"
        raise CheckpointError(f"{path} is {what}: the header announces {expected} payload bytes, the file has "
                              f"{len(payload)}. Copy it again from its source")
    digest = hashlib.sha256(payload).hexdigest()
    if digest != header.get("payload_sha256"):
        raise CheckpointError(f"{path} is corrupt: the payload's SHA-256 is {digest[:16]}..., the header records "
                              f"{str(header.get('payload_sha256'))[:16]}...; copy it again from its source")
    validate_header(header, path)
    header["header_verified"] = version >= 2
    if version == 1 and warn is not None:
        warn(f"{path} is a version-1 checkpoint: its payload is verified but its header is not covered by a "
             f"checksum; rewrite it with 'levda surrogate upgrade {path} --out NEW.ckpt'")
    return header, payload


def _no_constant(name: str):
    raise ValueError(f"{name} is not allowed in a checkpoint header")


def validate_header(h: dict, path: Path) -> None:
    """Types, ranges and agreeing sizes of every header key a reader uses; a ``CheckpointError`` naming
    the key otherwise (a header written by other training code, or an edited version-1 file)."""

    def fail(key: str, what: str):
        raise CheckpointError(f"{path}: header key '{key}' {what}")

    def number(key, value, *, low=None, positive=False, integer=False):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if integer:
            ok = ok and isinstance(value, int)
        if not ok:
            fail(key, f"is {value!r}; expected a finite {'integer' if integer else 'number'}")
        if positive and value <= 0:
            fail(key, f"is {value!r}; expected a positive value")
        if low is not None and value < low:
            fail(key, f"is {value!r}; expected at least {low}")
        return value

    def text(key, value):
        if not isinstance(value, str) or not value:
            fail(key, f"is {value!r}; expected a non-empty string")
        return value

    def table(key, value):
        if not isinstance(value, dict):
            fail(key, f"is {type(value).__name__}; expected a table")
        return value

    if h.get("model_kind") != "latent-dynamics-network":
        fail("model_kind", f"is {h.get('model_kind')!r}; this levda reads 'latent-dynamics-network'")
    if h.get("dtype") not in ("float32", "float64"):
        fail("dtype", f"is {h.get('dtype')!r}; expected 'float32' or 'float64'")
    text("benchmark", h.get("benchmark"))
    hp = table("hyperparameters", h.get("hyperparameters"))
    for k in ("n_latent", "dynamics_width", "decoder_width"):
        number(f"hyperparameters.{k}", hp.get(k), low=1, integer=True)
    if "steps_per_interval" in hp:  # training only
        number("hyperparameters.steps_per_interval", hp["steps_per_interval"], low=1, integer=True)
    for k in ("dynamics_depth", "decoder_depth", "n_fourier"):
        number(f"hyperparameters.{k}", hp.get(k), low=0, integer=True)
    for k in ("fourier_scale", "dt", "time_scale"):
        number(f"hyperparameters.{k}", hp.get(k), positive=True)
    periods = hp.get("forcing_periods", [])  # version 4
    if not isinstance(periods, list):
        fail("hyperparameters.forcing_periods", f"is {periods!r}; expected a list of periods")
    for i, p in enumerate(periods):
        number(f"hyperparameters.forcing_periods[{i}]", p, positive=True)
    if "forcing_offset" in hp:
        number("hyperparameters.forcing_offset", hp["forcing_offset"])
    fields = h.get("fields")
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields) \
            or len(set(fields)) != len(fields):
        fail("fields", f"is {fields!r}; expected a list of distinct field names")
    units = h.get("field_units")
    if not isinstance(units, list) or len(units) != len(fields):
        fail("field_units", f"has {len(units) if isinstance(units, list) else units!r} entries for {len(fields)} fields")
    coords = h.get("coordinates")
    if not isinstance(coords, list) or not coords:
        fail("coordinates", "must be a non-empty list")
    names = []
    for i, c in enumerate(coords):
        c = table(f"coordinates[{i}]", c)
        names.append(text(f"coordinates[{i}].name", c.get("name")))
        lo = number(f"coordinates[{i}].low", c.get("low"))
        hi = number(f"coordinates[{i}].high", c.get("high"))
        if not lo < hi:
            fail(f"coordinates[{i}]", f"has low {lo} >= high {hi}")
        if not isinstance(c.get("periodic"), bool):
            fail(f"coordinates[{i}].periodic", "must be true or false")
    params = h.get("parameters")
    if not isinstance(params, list):
        fail("parameters", "must be a list")
    for i, p in enumerate(params):
        p = table(f"parameters[{i}]", p)
        text(f"parameters[{i}].name", p.get("name"))
        lo, hi = number(f"parameters[{i}].low", p.get("low")), number(f"parameters[{i}].high", p.get("high"))
        if not lo <= hi:
            fail(f"parameters[{i}]", f"has low {lo} > high {hi}")
        number(f"parameters[{i}].default", p.get("default"))
    t = table("time", h.get("time"))
    try:
        dt.datetime.fromisoformat(text("time.epoch", t.get("epoch")))
    except ValueError:
        fail("time.epoch", f"is {t.get('epoch')!r}; expected an ISO 8601 time")
    number("time.unit_seconds", t.get("unit_seconds"), positive=True)
    number("time.frame_interval", t.get("frame_interval"), positive=True)
    for k in ("origin", "first_frame", "last_frame"):
        number(f"time.{k}", t.get(k))
    grid = table("grid", h.get("grid"))
    dims = grid.get("dims")
    if not isinstance(dims, list) or sorted(map(str, dims)) != sorted(names):
        fail("grid.dims", f"is {dims!r}; expected the coordinates {names} in some order")
    for d in dims:
        axis = grid.get(d)
        if not isinstance(axis, list) or not axis or not all(
                isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in axis):
            fail(f"grid.{d}", "must be a non-empty list of finite numbers")
    norm = table("normalisation", h.get("normalisation", {}))
    sizes = {"coord_low": len(coords), "coord_high": len(coords), "field_mean": len(fields), "field_std": len(fields),
             "param_low": len(params), "param_high": len(params)}
    for k, v in norm.items():
        arr = np.asarray(v, dtype=object)
        if k in sizes and (arr.shape != (sizes[k],) or not all(
                isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in arr)):
            fail(f"normalisation.{k}", f"must be {sizes[k]} finite numbers")
    if "surrogate_error" in h:  # version 3: the surrogate's error by field and frame
        err = table("surrogate_error", h["surrogate_error"])
        rmse = table("surrogate_error.rmse", err.get("rmse"))
        by_frame = table("surrogate_error.rmse_by_frame", err.get("rmse_by_frame"))
        for f in fields:
            number(f"surrogate_error.rmse.{f}", rmse.get(f), low=0)
            series = by_frame.get(f)
            if not isinstance(series, list) or not series:
                fail(f"surrogate_error.rmse_by_frame.{f}", "must be a non-empty list of numbers >= 0")
            for i, v in enumerate(series):
                number(f"surrogate_error.rmse_by_frame.{f}[{i}]", v, low=0)


def load_checkpoint(path: Path, dtype=None, warn: Callable[[str], None] | None = None,
                    trusted_sha256: str | None = None):
    """``(model, header)``: the surrogate rebuilt from the header and filled from the payload
    (then cast to ``dtype`` if given, e.g. float64 for assimilation)."""
    import equinox as eqx

    header, payload = read_header(path, warn=warn, trusted_sha256=trusted_sha256)
    try:
        skeleton = _skeleton(header)
        model = eqx.tree_deserialise_leaves(io.BytesIO(payload), skeleton)
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: the header lacks or misstates a hyperparameter ({err})") from None
    except Exception as err:  # equinox/numpy raise several types for a shape or size mismatch
        raise CheckpointError(f"{path}: the payload does not match the model its header describes "
                              f"({type(err).__name__}: {str(err)[:200]})") from None
    norm = header.get("normalisation", {})
    for name, value in norm.items():
        stored = getattr(model, name, None)
        if stored is None:
            raise CheckpointError(f"{path}: the header's normalisation '{name}' is not part of the model")
        stored = np.asarray(stored)
        if stored.shape != np.shape(value) or not np.allclose(stored, value, rtol=1e-12):
            raise CheckpointError(f"{path}: the header's normalisation '{name}' does not match the payload's")
    if dtype is not None:
        import jax

        model = jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, model)
    return model, header

"""The surrogate checkpoint: one file, a JSON header line, then equinox's serialised leaves.

Layout::

    {"format": "levda-checkpoint", "format_version": 1, ..., "payload_bytes": N,
     "payload_sha256": "..."}\\n
    <N bytes: eqx.tree_serialise_leaves of the Surrogate (numpy .npy records, no pickle)>

The header alone rebuilds the model's skeleton (``hyperparameters``); the payload fills its
arrays. Loading refuses, with the reason: a file whose first line is not a levda header, an
unknown format version, a payload shorter or longer than the header says (truncated or
appended), a payload whose SHA-256 differs (a changed byte), and a payload that does not fit
the header's model (wrong shapes, or normalisation that differs from the header's copy).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from levda_cli.errors import ModelError

FORMAT = "levda-checkpoint"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)


class CheckpointError(ModelError):
    kind = "checkpoint error"


def _skeleton(header: dict):
    import jax

    from levda_cli.core.surrogate import Surrogate

    import equinox as eqx
    import jax.numpy as jnp

    h = header["hyperparameters"]
    dtype = jnp.dtype(header.get("dtype", "float32"))
    model = Surrogate.build(
        n_latent=h["n_latent"], n_coord=len(header["coordinates"]), n_field=len(header["fields"]),
        n_param=len(header["parameters"]), dynamics_width=h["dynamics_width"], dynamics_depth=h["dynamics_depth"],
        decoder_width=h["decoder_width"], decoder_depth=h["decoder_depth"], n_fourier=h["n_fourier"],
        fourier_scale=h["fourier_scale"], periodic=tuple(c["periodic"] for c in header["coordinates"]),
        dt=h["dt"], time_scale=h["time_scale"], key=jax.random.PRNGKey(0),
    )
    return jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, model)


def save_checkpoint(path: Path, model, header: dict) -> dict:
    """Write ``model`` with ``header`` (completed with format, sizes and checksum) atomically."""
    import equinox as eqx

    import jax

    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, model)
    payload = buf.getvalue()
    dtypes = {str(a.dtype) for a in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))}
    if len(dtypes) != 1:
        raise ValueError(f"a checkpoint's arrays must share one floating dtype, got {sorted(dtypes)}")
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **header, "dtype": dtypes.pop(),
              "payload_bytes": len(payload), "payload_sha256": hashlib.sha256(payload).hexdigest()}
    line = json.dumps(header, sort_keys=True, allow_nan=False).encode()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(line + b"\n" + payload)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return header


def read_header(path: Path) -> tuple[dict, bytes]:
    """The header and the payload bytes, with the format, length and checksum verified."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err.strerror}") from None
    line, sep, payload = data.partition(b"\n")
    try:
        header = json.loads(line)
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{path} is not a levda checkpoint (its first line is not a levda JSON header)") from None
    version = header.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; this levda reads versions "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}. Upgrade levda, or re-export the checkpoint"
        )
    expected = header.get("payload_bytes")
    if not sep or len(payload) != expected:
        what = "truncated" if len(payload) < (expected or 0) else "longer than its header says"
        raise CheckpointError(f"{path} is {what}: the header announces {expected} payload bytes, the file has "
                              f"{len(payload)}. Copy it again from its source")
    digest = hashlib.sha256(payload).hexdigest()
    if digest != header.get("payload_sha256"):
        raise CheckpointError(f"{path} is corrupt: the payload's SHA-256 is {digest[:16]}..., the header records "
                              f"{str(header.get('payload_sha256'))[:16]}...; copy it again from its source")
    return header, payload


def load_checkpoint(path: Path, dtype=None):
    """``(model, header)``: the surrogate rebuilt from the header and filled from the payload
    (then cast to ``dtype`` if given, e.g. float64 for assimilation)."""
    import equinox as eqx

    header, payload = read_header(path)
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
        stored = np.asarray(getattr(model, name, None))
        if stored is None or stored.shape != np.shape(value) or not np.allclose(stored, value, rtol=1e-12):
            raise CheckpointError(f"{path}: the header's normalisation '{name}' does not match the payload's")
    if dtype is not None:
        import jax

        model = jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, model)
    return model, header

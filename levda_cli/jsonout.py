"""Strict JSON for everything levda prints or writes: NaN and infinities become null, since strict
parsers (jq, JavaScript, Go) refuse bare NaN."""

from __future__ import annotations

import json
import math


def finite(value):
    """``value`` with every non-finite float (in dicts, lists and tuples too) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def dumps(data) -> str:
    return json.dumps(finite(data), allow_nan=False)

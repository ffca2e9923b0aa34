"""Running the real `levda` command in a subprocess, for the end-to-end tests."""

from __future__ import annotations

import json
import subprocess
import sys

LEVDA = [sys.executable, "-m", "levda_cli"]


def levda(*args, env, cwd, check=True) -> subprocess.CompletedProcess:
    """``levda ARGS`` in ``cwd`` with ``env``; unless ``check`` is False, a non-zero exit fails with its stderr."""
    proc = subprocess.run([*LEVDA, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"levda {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def strict_json(text: str):
    """Parse JSON refusing NaN and Infinity (what jq, JavaScript and Go refuse)."""
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)

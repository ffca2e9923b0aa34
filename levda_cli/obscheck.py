"""``levda obs check``: validate and summarise observation files without assimilating."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from levda_cli.io import observations as obsio
from levda_cli.io import obsfiles


def check(paths: list[Path], model: str | None = None, size: int | None = None) -> dict:
    """Read every file, run every check in counting mode, and summarise what was found.

    Syntax errors (an unreadable row) stop the reading and raise; record-level problems (NaN,
    error <= 0, duplicates, and with a model: unknown variables and coordinates outside the
    domain) are counted by reason with the first offending record named.
    """
    if model is not None:
        from levda_cli.errors import ConfigError
        from levda_cli.registry import BENCHMARKS, listing

        if model not in BENCHMARKS:  # a usage error, as in every other command
            raise ConfigError(f"unknown model '{model}'; levda knows: {listing()}")
    obs = obsfiles.read_observations(paths)
    if model is not None:
        from levda_cli.models import model_spec

        spec = model_spec(model, size)
        obsio.screen(obs, spec.fields, spec.domain, "reject")
    else:
        obsio.check_syntax(obs, "reject")
    problems = {}
    for code in np.unique(obs.qc):
        if code == obsio.QC_OK:
            continue
        idx = np.flatnonzero(obs.qc == code)
        problems[obsio.QC_NAMES[int(code)]] = {"count": int(len(idx)), "first": obs.where(int(idx[0]))}
    ok = obs.qc == obsio.QC_OK
    per_var = {}
    for name in sorted(set(obs.variable.astype(str))):
        sel = ok & (obs.variable.astype(str) == name)
        if not sel.any():
            per_var[name] = {"count": 0}
            continue
        err = obs.error[sel]
        per_var[name] = {
            "count": int(sel.sum()),
            "value_min": float(obs.value[sel].min()), "value_max": float(obs.value[sel].max()),
            "error_min": float(err.min()), "error_median": float(np.median(err)), "error_max": float(err.max()),
        }
    summary = {
        "files": [str(p) for p in paths],
        "records": len(obs),
        "valid": int(ok.sum()),
        "problems": problems,
        "variables": per_var,
        "coordinates": {c: {"min": float(np.nanmin(v[ok])), "max": float(np.nanmax(v[ok]))}
                        for c, v in obs.coords.items()} if ok.any() else {},
    }
    if ok.any():
        summary["time_first"] = obsio.format_time(obs.time[ok].min())
        summary["time_last"] = obsio.format_time(obs.time[ok].max())
        summary["distinct_times"] = int(len(np.unique(obs.time[ok])))
    return summary

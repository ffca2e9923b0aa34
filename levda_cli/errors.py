"""One exception hierarchy; each class carries the exit code the CLI turns it into.

Exit codes (stable; scripts may rely on them):

    0  success
    1  unexpected internal error (a bug: please report it)
    2  usage or configuration error (bad flag, bad config file)
    3  observation input error (unreadable file, bad row, NaN, error <= 0, unknown variable,
       coordinates outside the domain, time outside every window)
    4  model or checkpoint error (unknown model, corrupt or mismatched checkpoint)
    5  store error (damaged or incompatible output store, truth store unreadable)
    6  store locked by another writer
    7  numerical divergence (non-finite cost or ensemble)
    8  distributed run error (``--distributed``: coordinator unreachable, a peer process failed)
  130  stopped by SIGTERM or Ctrl-C (the windows finished so far are committed)
"""

from __future__ import annotations


class LevdaError(Exception):
    """Base of every error levda reports to a user. ``str(err)`` is the whole message."""

    exit_code = 1
    kind = "error"


class ConfigError(LevdaError):
    exit_code = 2
    kind = "configuration error"


class ObservationError(LevdaError):
    exit_code = 3
    kind = "observation error"


class ModelError(LevdaError):
    exit_code = 4
    kind = "model error"


class StoreError(LevdaError):
    exit_code = 5
    kind = "store error"


class StoreLockedError(StoreError):
    exit_code = 6
    kind = "store locked"


class DivergenceError(LevdaError):
    exit_code = 7
    kind = "numerical divergence"


class Interrupted(LevdaError):
    exit_code = 130
    kind = "stopped"


class ParallelError(LevdaError):
    """The distributed runtime failed: no coordinator, a peer process gone, or another process's error."""

    exit_code = 8
    kind = "distributed run error"

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:  # a peer's error, with its exit code (the job ends as the writer's would)
            self.exit_code = exit_code

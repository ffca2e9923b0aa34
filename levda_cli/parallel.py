"""Devices and processes of a run: ``--devices`` and ``--distributed`` (JAX's distributed runtime).

levda has no parallel layer of its own: one process drives a mesh of its local devices
(``core.sharding``: observations and members split, Gauss-Newton sums added with ``psum``), and
under ``jax.distributed`` every process of the job runs the same program on its devices of one
global mesh, XLA's collectives (NCCL on GPUs, Gloo on CPUs) joining them.

Every process reads the observations (the window arrays are built identically everywhere and
each device takes its share); exactly one process, index 0, opens, locks and writes the store;
the others receive what a resume needs from it (``broadcast``) and never touch the store. A
window's results are replicated on every process, so every process takes the same decisions
(a divergence stops all of them); a stop request on any process stops all after the same window.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from levda_cli.errors import ConfigError, ParallelError


@dataclasses.dataclass(frozen=True)
class Parallel:
    mesh: object = None  # a core.sharding mesh over the run's devices, or None: one device
    process_index: int = 0
    process_count: int = 1

    @property
    def writer(self) -> bool:
        """The one process that opens, locks and writes the store."""
        return self.process_index == 0

    @property
    def devices(self) -> int:
        from levda_cli.core.sharding import size

        return size(self.mesh)

    def broadcast(self, tree):
        """Process 0's ``tree`` (NumPy arrays of shapes every process knows) on every process."""
        if self.process_count == 1:
            return tree
        from jax.experimental import multihost_utils

        try:
            return multihost_utils.broadcast_one_to_all(tree, is_source=self.writer)
        except Exception as err:  # noqa: BLE001 - a peer gone: XLA's runtime error, reported as ours
            raise ParallelError(f"process {self.process_index}: the broadcast from process 0 failed ({err})") from err

    def any(self, flag: bool) -> bool:
        """``flag`` true on any process (a stop request seen by one stops all, after the same window)."""
        if self.process_count == 1:
            return bool(flag)
        from jax.experimental import multihost_utils

        try:
            return bool(np.asarray(multihost_utils.process_allgather(np.asarray([flag], np.int32))).any())
        except Exception as err:  # noqa: BLE001
            raise ParallelError(f"process {self.process_index}: a peer process did not answer ({err})") from err


def _stdout_for_results_only() -> None:
    """Point file descriptor 1 at stderr and keep the real stdout for Python's ``sys.stdout``: the
    collectives' C++ libraries (Gloo) print status lines to descriptor 1, and ``--json`` must stay the
    only thing on stdout."""
    import os
    import sys

    sys.stdout.flush()
    kept = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(kept, "w", buffering=1, encoding="utf-8")


def _join(coordinator, num_processes, process_id, join_seconds: float, heartbeat_seconds: int) -> None:
    """``jax.distributed.initialize``, given up after ``join_seconds`` with levda's message and exit 8:
    when a peer never comes, JAX's C++ client would abort the process (134) with its own log line."""
    import os
    import sys
    import threading

    import jax

    def give_up():
        sys.stderr.write(f"distributed run error: process {process_id if process_id is not None else '?'}: the job's "
                         f"{num_processes or 'other'} processes did not all join within {join_seconds:g} s (coordinator "
                         f"{coordinator or 'from the cluster environment'}); nothing was written. Check that every "
                         "process was started with the same --coordinator and --num-processes, or raise "
                         "--join-timeout\n")
        sys.stderr.flush()
        os._exit(8)

    timer = threading.Timer(join_seconds, give_up)
    timer.daemon = True
    timer.start()
    try:
        # SLURM, Open MPI and cloud clusters are detected by JAX when the three are not given; JAX's own
        # deadline is set past levda's so that levda's message comes first
        jax.distributed.initialize(coordinator, num_processes, process_id,
                                   heartbeat_timeout_seconds=heartbeat_seconds,
                                   initialization_timeout=int(join_seconds) + 60)
    finally:
        timer.cancel()


def start(devices: int | None = None, distributed: bool = False, coordinator: str | None = None,
          num_processes: int | None = None, process_id: int | None = None,
          heartbeat_seconds: int = 60, join_seconds: float = 120.0) -> Parallel:
    """Join the distributed runtime (``distributed``; every process within ``join_seconds``) and build
    the mesh: ``devices`` per process (default every local device). Call before anything else touches JAX."""
    import jax

    from levda_cli.core.sharding import make_mesh

    if not distributed and any(v is not None for v in (coordinator, num_processes, process_id)):
        raise ConfigError("--coordinator, --num-processes and --process-id need --distributed")
    if distributed:
        _stdout_for_results_only()
        try:
            _join(coordinator, num_processes, process_id, join_seconds, heartbeat_seconds)
        except (ValueError, RuntimeError) as err:
            raise ParallelError(
                f"could not join the distributed run (coordinator {coordinator or 'from the cluster environment'}, "
                f"{num_processes or '?'} processes, this one {process_id if process_id is not None else '?'}): "
                f"{err}. Outside a cluster JAX detects (SLURM, Open MPI), give --coordinator HOST:PORT, "
                "--num-processes and --process-id") from err
    local = jax.local_devices()
    if devices is not None and not 1 <= devices <= len(local):
        raise ConfigError(f"--devices {devices}: this process has {len(local)} device(s) "
                          f"({local[0].platform}); give 1 to {len(local)}")
    per_process = len(local) if devices is None else devices
    if jax.process_count() == 1:
        chosen = local[:per_process]
    else:  # the first devices of every process, process by process (each process the same count)
        chosen = [d for p in range(jax.process_count())
                  for d in sorted((d for d in jax.devices() if d.process_index == p), key=lambda d: d.id)[:per_process]]
    mesh = make_mesh(chosen) if len(chosen) > 1 else None
    return Parallel(mesh, jax.process_index(), jax.process_count())

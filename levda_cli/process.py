"""The levda process itself: garbage collection during start-up and a prompt exit.

A levda command imports JAX, zarr and the rest (about a million long-lived Python objects) and then
does its work. While those imports run, CPython's cyclic collector repeatedly re-scans everything
imported so far (each full collection happens when the heap has grown by a quarter), and at exit the
interpreter scans and tears all of it down again: together about a fifth of a short cron cycle's CPU
time. So the command line (``cli.main.run``) starts with the collector paused; ``settle()``, called
once the start-up is over (by the app's callback once a command's arguments are parsed, or, in
``assimilate``, just before its window loop: its store opened, its observations read), moves everything
alive into the collector's permanent generation (``gc.freeze``) and resumes normal collection; and
``exit_now`` ends the process after flushing and closing what it must, without the interpreter's
teardown. Library use (``import levda_cli``) changes nothing: only ``run()`` calls ``pause()``.

The price: cyclic garbage made during the start-up is frozen with the rest and never collected
(plain garbage is still freed by reference counting at once); that is bounded by the start-up's
own work, once per process. Without the freeze the first full collection in the window loop
re-scans the import graph, ~0.15 CPU s of a one-window cron cycle's ~1.0.
"""

from __future__ import annotations

import gc
import os
import sys

_PAUSED = [False]


def pause() -> None:
    """Pause the cyclic collector for the start-up (the command line only)."""
    if gc.isenabled():
        gc.disable()
        _PAUSED[0] = True


def settle() -> None:
    """Start-up over: what is alive now stays alive (modules, JAX's tables); collect normally from here."""
    if _PAUSED[0]:
        _PAUSED[0] = False
        gc.freeze()
        gc.enable()


def exit_now(code: int) -> None:
    """End the process with ``code`` once its threads are done, its exit handlers have run (JAX's
    distributed shutdown, temporary folders) and its output is flushed, skipping the interpreter's scan
    and teardown of every object (~0.3 CPU s after a run). Every file levda writes is closed by then:
    stores commit, close and unlock inside the command."""
    import atexit
    import logging
    import threading

    try:
        # what the interpreter does first at exit: wait for non-daemon threads (a pool's workers
        # finish their queued work), then run the exit handlers
        shutdown = getattr(threading, "_shutdown", None)
        if shutdown is not None:
            shutdown()
        atexit._run_exitfuncs()
        logging.shutdown()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a closed or broken pipe: nothing more can be said there
                pass
        os._exit(code)

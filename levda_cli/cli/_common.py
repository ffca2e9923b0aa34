"""Shared pieces of the commands: the stderr console, error reporting, JSON output."""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import traceback

import typer
from rich.console import Console
from rich.markup import escape

from levda_cli.errors import LevdaError
from levda_cli.jsonout import dumps

console = Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    """A warning on stderr; the message is text (brackets in it are not rich markup)."""
    console.print(f"[yellow]warning[/]: {escape(message)}", soft_wrap=True)


def command_line() -> str:
    return shlex.join(["levda", *sys.argv[1:]])


class StopFlag:
    """Set by SIGTERM or Ctrl-C; long loops check it between units of work, so a stop never
    lands in the middle of a commit."""

    def __init__(self):
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    def install(self) -> None:
        def handler(signum, frame):
            if self.signal is not None:  # a second signal: stop at once
                raise KeyboardInterrupt
            self.signal = signum

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


stop_requested = StopFlag()


@contextlib.contextmanager
def reporting():
    """Turn a ``LevdaError`` into its message and exit code; anything else into exit code 1.

    SIGTERM and Ctrl-C end with code 130 after the finished windows are committed.
    """
    stop_requested.install()
    try:
        yield
    except LevdaError as err:
        console.print(f"[bold red]{err.kind}[/]: {escape(str(err))}", soft_wrap=True)
        raise typer.Exit(err.exit_code) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: the windows finished so far are committed")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except OSError as err:  # the environment, not levda: a full disk, a permission, a vanished file
        where = f" ({err.filename})" if err.filename else ""
        console.print(f"[bold red]I/O error[/]: {err.strerror or err}{where}; nothing half-written was left "
                      "in place (levda writes to a temporary name and renames)", soft_wrap=True)
        raise typer.Exit(5) from None
    except MemoryError:
        console.print("[bold red]out of memory[/]: this run does not fit in this machine's memory; use a smaller "
                      "ensemble, model size or observation count", soft_wrap=True)
        raise typer.Exit(2) from None
    except Exception as err:
        if "RESOURCE_EXHAUSTED" in str(err) or "Out of memory" in str(err):
            console.print(f"[bold red]out of memory[/]: the accelerator or host ran out of memory "
                          f"({str(err).splitlines()[0][:200]}); use a smaller ensemble, model size or observation "
                          "count", soft_wrap=True)
            raise typer.Exit(2) from None
        console.print(traceback.format_exc(), markup=False)
        console.print("[bold red]internal error[/]: this is a bug in levda; please report it with the "
                      "traceback above")
        raise typer.Exit(1) from None


def emit_json(data) -> None:
    sys.stdout.write(dumps(data) + "\n")
    sys.stdout.flush()

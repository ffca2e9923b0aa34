"""Shared pieces of the commands: the stderr console, error reporting, JSON output."""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
import traceback

import typer
from rich.console import Console

from levda_cli.errors import LevdaError

console = Console(stderr=True, highlight=False)


def command_line() -> str:
    return shlex.join(["levda", *sys.argv[1:]])


@contextlib.contextmanager
def reporting():
    """Turn a ``LevdaError`` into its message and exit code; anything else into exit code 1."""
    try:
        yield
    except LevdaError as err:
        console.print(f"[bold red]{err.kind}[/]: {err}", soft_wrap=True)
        raise typer.Exit(err.exit_code) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: committed windows are kept")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception:
        console.print(traceback.format_exc(), markup=False)
        console.print("[bold red]internal error[/]: this is a bug in levda; please report it with the "
                      "traceback above")
        raise typer.Exit(1) from None


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=None, allow_nan=True) + "\n")
    sys.stdout.flush()

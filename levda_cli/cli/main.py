"""The ``levda`` application. Imports stay light so ``levda --help`` is instant (no JAX)."""

from __future__ import annotations

import sys

import typer

from levda_cli import __version__
from levda_cli.cli import assimilate, forecast, obs, observe, report, simulate, surrogate

app = typer.Typer(
    name="levda",
    help="Latent ensemble-variational data assimilation (4DEnVar) from the command line.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    epilog="Exit codes: 0 ok, 1 internal error, 2 usage/config (or out of memory), 3 observations, "
    "4 model/checkpoint, 5 store or I/O, 6 store locked, 7 numerical divergence, 8 distributed run (a process "
    "failed), 130 stopped by SIGTERM/Ctrl-C (finished windows kept).",
)


def _version(value: bool):
    if value:
        typer.echo(f"levda {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """levda: windowed 4DEnVar with joint parameter estimation; see `levda COMMAND --help`."""
    if ctx.invoked_subcommand != "assimilate":  # it settles before its window loop (levda_cli.process)
        from levda_cli.process import settle

        settle()


app.command("simulate")(simulate.simulate)
app.command("observe")(observe.observe)
app.command("assimilate")(assimilate.assimilate)
app.command("forecast")(forecast.forecast)
app.command("report")(report.report)
app.add_typer(obs.app, name="obs")
app.add_typer(surrogate.app, name="surrogate")


def run() -> None:
    """The console script: the collector paused for the start-up and a prompt exit (``levda_cli.process``)."""
    from levda_cli import process

    process.pause()
    try:
        app()
        code = 0
    except SystemExit as stop:
        code = stop.code
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): said on stderr, status 1, as Python does
        print(code, file=sys.stderr)
        code = 1
    process.exit_now(code)

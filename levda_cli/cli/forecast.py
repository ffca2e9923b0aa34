"""``levda forecast``: run an analysis ensemble forward."""

from __future__ import annotations

from pathlib import Path

import typer

from levda_cli.cli._common import command_line, console, emit_json, reporting, warn


def forecast(
    store: Path = typer.Argument(..., help="The analysis store (from `levda assimilate`); only read."),
    lead: str = typer.Option(..., "--lead", "-l", help="How far: 24h, 90min, 3600s, 2d, or a bare number in model "
                             "time units."),
    out: Path = typer.Option(..., "--out", "-o", help="Zarr store for the forecast (CF-style; written aside and "
                             "renamed into place)."),
    every: str = typer.Option(None, help="Output interval, same units as --lead (default: the model's output "
                              "interval)."),
    window: int = typer.Option(-1, help="Which window's analysis, as a store position (-1: the last)."),
    members: bool = typer.Option(False, "--members", help="Write every member, not only mean and spread."),
    points: Path = typer.Option(None, help="CSV file with a column per model coordinate (and an optional 'name'): the "
                                "forecast at those points too."),
    checkpoint: Path = typer.Option(None, "--checkpoint", "-k", help="Latent stores: the surrogate, if it has moved "
                                    "(checked against the store's SHA-256)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing forecast store."),
    beyond_horizon: bool = typer.Option(False, "--beyond-horizon", help="Latent stores: forecast past the surrogate's "
                                        "last training frame anyway (refused by default; those frames are flagged)."),
    json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Run the analysis ensemble of a store forward: mean, spread (and members) on the grid and at points."""
    with reporting():
        from levda_cli.forecast import run_forecast

        result = run_forecast(store, out, lead, every, window, members, points, checkpoint, overwrite,
                              warn=warn, command=command_line(), beyond_horizon=beyond_horizon)
        if result["written"]:
            console.print(f"{result['frames']} frame(s) from {result['reference_time']} written to {out}")
        else:
            console.print(f"nothing to do: {out} holds this forecast already ({result['reason']})")
        if json:
            emit_json(result)

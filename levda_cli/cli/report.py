"""``levda report``: figures and a page about an analysis store."""

from __future__ import annotations

from pathlib import Path

import typer

from levda_cli.cli._common import console, emit_json, reporting


def report(
    store: Path = typer.Argument(..., help="The analysis store (from `levda assimilate`); only read, no lock taken."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for index.html, report.md, report.json and the PNGs "
                             "(replaced as a whole)."),
    truth: Path = typer.Option(None, help="Truth store (from `levda simulate`): RMSE, error maps and parameter truths "
                               "from it (else the store's own RMSE, if it was run with --truth)."),
    truth_trajectory: int = typer.Option(0, min=0, help="Which trajectory of the truth store."),
    maps: str = typer.Option(None, help="Windows to map (2-D models), as store positions: '0,10,-1' (default: first, "
                             "middle, last)."),
    json: bool = typer.Option(False, "--json", help="Print the report's summary as JSON on stdout."),
) -> None:
    """Plot an analysis store: RMSE and spread, parameters, O-B/O-A, chi2, rank histograms, maps."""
    with reporting():
        from levda_cli.errors import ConfigError
        from levda_cli.report import write_report

        chosen = None
        if maps:
            try:
                chosen = [int(w) for w in maps.split(",") if w.strip()]
            except ValueError:
                raise ConfigError(f"--maps '{maps}': give window positions separated by commas, e.g. 0,10,-1") \
                    from None
        result = write_report(store, out, truth, truth_trajectory, chosen)
        console.print(f"report of {result['summary']['windows']} window(s) written to {out}/index.html "
                      f"({len(result['files']) - 3} figures)")
        if json:
            emit_json(result)

"""``levda obs``: observation file tools."""

from __future__ import annotations

from pathlib import Path

import typer

from levda_cli.cli._common import console, emit_json, reporting
from levda_cli.registry import listing

app = typer.Typer(help="Observation file tools.", no_args_is_help=True)


@app.command("check")
def check(
    files: list[Path] = typer.Argument(..., help="Observation files (.csv, flat NetCDF, IODA v3/v2)."),
    model: str = typer.Option(None, "--model", "-m", help="Also check variables and domain against this model (" + listing() + ")."),
    size: int = typer.Option(None, help="The model's resolution (sites or cells a side), if not the default."),
    json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Validate and summarise observation files; exit 3 if any record is invalid."""
    with reporting():
        from rich.table import Table

        from levda_cli.errors import ObservationError
        from levda_cli.obscheck import check as run

        summary = run(files, model, size)
        if json:
            emit_json(summary)
        table = Table(title=f"{summary['records']} records, {summary['valid']} valid", title_justify="left")
        for col in ("variable", "count", "value min", "value max", "error min", "error median", "error max"):
            table.add_column(col, justify="right" if col != "variable" else "left")
        for name, v in summary["variables"].items():
            if v["count"]:
                table.add_row(name, str(v["count"]), *(f"{v[k]:.4g}" for k in (
                    "value_min", "value_max", "error_min", "error_median", "error_max")))
            else:
                table.add_row(name, "0", *["-"] * 5)
        console.print(table)
        if summary.get("time_first"):
            console.print(f"times: {summary['time_first']} to {summary['time_last']} "
                          f"({summary['distinct_times']} distinct)")
        for c, r in summary["coordinates"].items():
            console.print(f"{c}: {r['min']:.6g} to {r['max']:.6g}")
        if summary["problems"]:
            lines = [f"{reason}: {p['count']} (first: {p['first']})" for reason, p in summary["problems"].items()]
            raise ObservationError("invalid records found:\n  " + "\n  ".join(lines))
        console.print("[green]all records valid[/]")

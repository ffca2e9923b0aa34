"""``levda simulate``: truths and training trajectories from a benchmark's physics."""

from __future__ import annotations

from pathlib import Path

import typer

from levda_cli.cli._common import command_line, console, emit_json, reporting
from levda_cli.registry import listing


def simulate(
    name: str = typer.Argument(..., help="Benchmark: " + listing() + "."),
    out: Path = typer.Option(..., "--out", "-o", help="Zarr store to write."),
    config: Path = typer.Option(None, "--config", "-c", help="TOML config; see configs/simulate_*.toml."),
    trajectories: int = typer.Option(None, help="Number of trajectories (parameters drawn from their ranges)."),
    duration: float = typer.Option(None, help="Stored model time after the spin-up."),
    interval: float = typer.Option(None, help="Output interval, model time units."),
    size: int = typer.Option(None, help="Resolution: Lorenz-96 sites, or grid cells a side."),
    seed: int = typer.Option(None, help="Random seed (initial states, parameters, split)."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config key: table.key=value."),
    overwrite: bool = typer.Option(False, help="Replace an existing store."),
    json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Run a benchmark's physics and write trajectories (truths, training data) to a Zarr store."""
    with reporting():
        from levda_cli.config import SimulateConfig, load_config

        flags = {"trajectories": trajectories, "duration": duration, "interval": interval,
                 "model.size": size, "seed": seed}
        sets = [f'model.name="{name}"', *(f"{k}={v}" for k, v in flags.items() if v is not None), *overrides]
        cfg = load_config(SimulateConfig, config, sets)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from levda_cli.synthetic import simulate as run

        columns = (TextColumn(f"[bold]simulating {name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, disable=quiet) as bar:
            task = bar.add_task("trajectories", total=cfg.trajectories)
            summary = run(cfg, out, overwrite, command_line(),
                          progress=lambda done, total: bar.update(task, completed=done))
        console.print(f"wrote {summary['trajectories']} trajectory(ies) x {summary['times']} times on "
                      f"{summary['grid']} to {out} (split {summary['split']})")
        if json:
            emit_json(summary)

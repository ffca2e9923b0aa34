"""``levda simulate``: truths and training trajectories from a benchmark's physics."""

from __future__ import annotations

from pathlib import Path

import typer

from levda_cli.cli._common import command_line, console, emit_json, reporting


def simulate(
    name: str = typer.Argument(..., help="Benchmark: lorenz96."),
    out: Path = typer.Option(..., "--out", "-o", help="Zarr store to write."),
    config: Path = typer.Option(None, "--config", "-c", help="TOML config ([model], [time], forcing, ...)."),
    duration: float = typer.Option(None, help="Stored model time after the spin-up."),
    interval: float = typer.Option(None, help="Output interval, model time units."),
    forcing: float = typer.Option(None, help="Lorenz-96 forcing F."),
    trajectories: int = typer.Option(None, help="Number of trajectories."),
    seed: int = typer.Option(None, help="Random seed of the initial states."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config key: table.key=value."),
    overwrite: bool = typer.Option(False, help="Replace an existing store."),
    json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Run a benchmark's physics and write the truth to a Zarr store."""
    with reporting():
        from levda_cli.config import SimulateConfig, load_config
        from levda_cli.errors import ConfigError

        flags = {"duration": duration, "interval": interval, "forcing": forcing,
                 "trajectories": trajectories, "seed": seed}
        sets = [*(f"{k}={v}" for k, v in flags.items() if v is not None), *overrides, f"model.name=\"{name}\""]
        if name != "lorenz96":
            raise ConfigError(f"unknown benchmark '{name}'; this version simulates: lorenz96")
        cfg = load_config(SimulateConfig, config, sets)
        from levda_cli.synthetic import simulate as run

        with console.status(f"simulating {name}"):
            summary = run(cfg, out, overwrite, command_line())
        console.print(f"wrote {summary['trajectories']} trajectory(ies) x {summary['times']} times to {out}")
        if json:
            emit_json(summary)

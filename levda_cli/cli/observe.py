"""``levda observe``: synthetic observations from a truth."""

from __future__ import annotations

from pathlib import Path

import typer

from levda_cli.cli._common import console, emit_json, reporting


def observe(
    truth: Path = typer.Argument(..., help="Truth store written by `levda simulate`."),
    out: Path = typer.Option(..., "--out", "-o", help="Observation file: .csv or .nc (flat NetCDF)."),
    config: Path = typer.Option(None, "--config", "-c", help="TOML config with the keys below."),
    interval: float = typer.Option(None, help="Time between observations, model time units."),
    sites: str = typer.Option(None, help="'all', 'every:K' or 'random:K'."),
    error: float = typer.Option(None, help="Noise standard deviation (also the declared error)."),
    trajectory: int = typer.Option(None, help="Which trajectory of the truth store."),
    seed: int = typer.Option(None, help="Random seed of the noise and site choice."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config key: key=value."),
    json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Sample observations with Gaussian noise from a truth store."""
    with reporting():
        from levda_cli.config import ObserveConfig, load_config

        flags = {"interval": interval, "error": error, "trajectory": trajectory, "seed": seed}
        sets = [*(f"{k}={v}" for k, v in flags.items() if v is not None), *overrides]
        if sites is not None:
            sets.append(f'sites="{sites}"')
        cfg = load_config(ObserveConfig, config, sets)
        from levda_cli.synthetic import observe as run

        summary = run(cfg, truth, out)
        console.print(f"wrote {summary['n_obs']} observations ({summary['n_times']} times x "
                      f"{summary['n_sites']} sites, {summary['first']} to {summary['last']}) to {out}")
        if json:
            emit_json(summary)

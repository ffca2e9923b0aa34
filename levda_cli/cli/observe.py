"""``levda observe``: synthetic observations from a truth."""

from __future__ import annotations

from pathlib import Path

import typer

from levda_cli.cli._common import console, emit_json, reporting


def observe(
    truth: Path = typer.Argument(..., help="Truth store written by `levda simulate`."),
    out: Path = typer.Option(..., "--out", "-o", help="Observation file: .csv, or .nc (flat; --format ioda for IODA)."),
    config: Path = typer.Option(None, "--config", "-c", help="TOML config with the keys below."),
    network: str = typer.Option(None, help="grid | every:K | random:K | fixed:K | stations:FILE | tracks:K."),
    sites: str = typer.Option(None, help="Lorenz-96 spelling of --network: all | every:K | random:K."),
    times: str = typer.Option(None, help="regular (every --interval) or random (between stored frames)."),
    interval: float = typer.Option(None, help="Time between observations, model time units."),
    variables: str = typer.Option(None, help="Comma-separated fields to observe (default: all)."),
    error: float = typer.Option(None, help="Noise standard deviation (also the declared error)."),
    noise: str = typer.Option(None, help="additive or relative (error x |truth|)."),
    trajectory: int = typer.Option(None, help="Which trajectory of the truth store."),
    seed: int = typer.Option(None, help="Random seed of the noise and the network."),
    fmt: str = typer.Option(None, "--format", help="auto (from the suffix), csv, netcdf or ioda."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config key: key=value."),
    json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Sample observations, exact in time and place, with Gaussian noise, from a truth store."""
    with reporting():
        from levda_cli.config import ObserveConfig, load_config

        numbers = {"interval": interval, "error": error, "trajectory": trajectory, "seed": seed}
        words = {"network": network or (sites.replace("random:", "fixed:") if sites else None),
                 "times": times, "noise": noise, "format": fmt}
        sets = [*(f"{k}={v}" for k, v in numbers.items() if v is not None),
                *(f'{k}="{v}"' for k, v in words.items() if v is not None), *overrides]
        if variables:
            sets.append("variables=[" + ",".join(f'"{v.strip()}"' for v in variables.split(",")) + "]")
        cfg = load_config(ObserveConfig, config, sets)
        from levda_cli.synthetic import observe as run

        with console.status("sampling observations"):
            summary = run(cfg, truth, out)
        console.print(f"wrote {summary['n_obs']} observations of {', '.join(summary['variables'])} at "
                      f"{summary['n_times']} times ({summary['first']} to {summary['last']}) to {out}")
        if json:
            emit_json(summary)

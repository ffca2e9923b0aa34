"""``levda assimilate``: the main job."""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

import typer

from levda_cli.cli._common import command_line, console, emit_json, reporting, stop_requested, warn
from levda_cli.registry import listing


def _expand(patterns: list[str]) -> list[Path]:
    from levda_cli.errors import ObservationError

    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if any(ch in pattern for ch in "*?[") else [pattern]
        if not matches:
            raise ObservationError(f"no observation file matches '{pattern}'")
        paths.extend(Path(m) for m in matches)
    return paths


def assimilate(
    observations: list[str] = typer.Argument(..., help="Observation files or globs (.csv, .nc)."),
    out: Path = typer.Option(..., "--out", "-o", help="Zarr analysis store (created, or resumed)."),
    model: str = typer.Option(None, "--model", "-m", help="Full-state mode with this physical model "
                              "(" + listing() + ")."),
    checkpoint: Path = typer.Option(None, "--checkpoint", "-k", help="Latent mode with this surrogate checkpoint."),
    config: Path = typer.Option(None, "--config", "-c", help="TOML config; see configs/."),
    truth: Path = typer.Option(None, help="Truth store (from `levda simulate`) for RMSE and CRPS."),
    truth_trajectory: int = typer.Option(0, min=0, help="Which trajectory of the truth store."),
    trusted_sha256: str = typer.Option(None, "--trusted-sha256", help="Latent mode: refuse the checkpoint unless "
                                       "its SHA-256 (as sha256sum prints it) is this."),
    ensemble_size: int = typer.Option(None, "--ensemble-size", "-N", help="Override ensemble.size."),
    window_length: float = typer.Option(None, help="Override window.length (model time units)."),
    window_shift: float = typer.Option(None, help="Override window.shift (model time units)."),
    inflation: float = typer.Option(None, help="Override inflation.multiplicative."),
    seed: int = typer.Option(None, help="Override ensemble.seed."),
    initial_ensemble: Path = typer.Option(None, "--initial-ensemble", help="First guess from this file: a levda "
                                          "store (its last analysis) or a Zarr/NetCDF ensemble(member, ctrl) with a "
                                          "valid time (ensemble.initial)."),
    overrides: list[str] = typer.Option([], "--set", help="Override any config key: table.key=value."),
    devices: int = typer.Option(None, "--devices", min=1, help="Devices of this process to split each window over "
                                "(observations and members; default: every local device; 1: one device)."),
    distributed: bool = typer.Option(False, "--distributed", help="Join a multi-process run (jax.distributed: "
                                     "SLURM and Open MPI detected; else the three options below). Process 0 "
                                     "writes the store; the others never touch it."),
    coordinator: str = typer.Option(None, "--coordinator", help="--distributed: process 0's HOST:PORT."),
    num_processes: int = typer.Option(None, "--num-processes", min=1, help="--distributed: processes in the job."),
    process_id: int = typer.Option(None, "--process-id", min=0, help="--distributed: this process's index."),
    join_timeout: float = typer.Option(120.0, "--join-timeout", min=1.0, help="--distributed: seconds for every "
                                       "process to join; then exit 8."),
    json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout (humans read stderr)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Assimilate observations window by window into a Zarr store; resume after its last window."""
    try:
        _assimilate(observations, out, model, checkpoint, config, truth, truth_trajectory, trusted_sha256,
                    ensemble_size, window_length, window_shift, inflation, seed, initial_ensemble, overrides, devices,
                    distributed, coordinator, num_processes, process_id, join_timeout, json, quiet)
    except typer.Exit as stop:
        if distributed and stop.exit_code:
            # leave at once with this code: JAX's exit handler would wait at a shutdown barrier for peers that
            # may be gone and then abort (134), hiding the exit code (the store is closed by now)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(stop.exit_code)
        raise


def _assimilate(observations, out, model, checkpoint, config, truth, truth_trajectory, trusted_sha256, ensemble_size,
                window_length, window_shift, inflation, seed, initial_ensemble, overrides, devices, distributed,
                coordinator, num_processes, process_id, join_timeout, json, quiet) -> None:
    with reporting():
        from levda_cli.config import AssimilateConfig, load_config

        flags = {"ensemble.size": ensemble_size, "window.length": window_length, "window.shift": window_shift,
                 "inflation.multiplicative": inflation, "ensemble.seed": seed}
        sets = [*(f"{k}={v}" for k, v in flags.items() if v is not None), *overrides]
        if model is not None and checkpoint is not None:
            from levda_cli.errors import ConfigError

            raise ConfigError("give --model (full-state mode) or --checkpoint (latent mode), not both")
        if model is not None:
            sets.append(f'model.name="{model}"')
        if checkpoint is not None:
            sets.append(f'model.checkpoint="{checkpoint}"')
        if initial_ensemble is not None:
            sets.append(f'ensemble.initial="{initial_ensemble}"')
        cfg = load_config(AssimilateConfig, config, sets)
        paths = _expand(observations)
        from levda_cli import parallel as par
        from levda_cli.jaxsetup import configure_jax

        configure_jax(cfg.output.precision)
        parallel = par.start(devices, distributed, coordinator, num_processes, process_id, join_seconds=join_timeout)
        if distributed:  # jax.distributed installs a SIGTERM handler of its own (preemption): levda's again
            stop_requested.install()
        if not parallel.writer:  # one voice per job: process 0 reports; the others only fail loudly
            quiet, json = True, False
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from levda_cli import cycling

        columns = (TextColumn("[bold]assimilating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[info]}"))
        with Progress(*columns, console=console, disable=quiet, transient=False) as bar:
            task = bar.add_task("windows", total=None, info="reading observations")

            def progress(done, total, row):
                info = f"J {row['cost_initial']:.1f}->{row['cost_final']:.1f}, {row['iterations']} it"
                if row["rmse"] == row["rmse"]:
                    info += f", rmse {row['rmse']:.3f}"
                bar.update(task, completed=done, total=total, info=info)

            summary = cycling.run(cfg, paths, out, truth, truth_trajectory, command_line(), progress,
                                  warn=warn if parallel.writer else (lambda message: None), stop=stop_requested,
                                  trusted_sha256=trusted_sha256, parallel=parallel)
        if not parallel.writer:
            return
        if summary["windows_run"] == 0:
            console.print(f"nothing to do: no observations beyond the {summary['windows_in_store']} window(s) in {out}")
        else:
            rows = summary["windows"]
            console.print(
                f"{summary['windows_run']} window(s) committed to {out} ({summary['windows_in_store']} in all), "
                f"{summary['n_obs_assimilated']} observations assimilated"
                + (f", rejected: {summary['rejected']}" if summary["rejected"] else "")
            )
            if "parameters" in rows[-1]:
                console.print("parameters at the last window: " + ", ".join(
                    f"{k} = {v:.6g} +- {rows[-1]['parameters_spread'][k]:.2g}" for k, v in rows[-1]["parameters"].items()))
            rmses = [r["rmse"] for r in rows if r["rmse"] == r["rmse"]]
            if rmses:
                console.print(f"mean analysis RMSE {sum(rmses) / len(rmses):.4f}, "
                              f"mean spread {sum(r['spread'] for r in rows) / len(rows):.4f}"
                              + (f", spread/skill {summary['spread_skill']:.2f} (RMS over windows)"
                                 if summary.get("spread_skill") is not None else ""))
        if json:
            emit_json(summary)

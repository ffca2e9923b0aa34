"""``levda surrogate train | info | evaluate``."""

from __future__ import annotations

from pathlib import Path

import typer

from levda_cli.cli._common import console, emit_json, reporting, stop_requested, warn

app = typer.Typer(help="Train, describe and evaluate latent surrogates.", no_args_is_help=True)


@app.command("train")
def train(
    data: Path = typer.Option(..., "--data", "-d", help="Trajectory store from `levda simulate`."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint file to write."),
    config: Path = typer.Option(None, "--config", "-c", help="TOML config; see configs/train_*.toml."),
    epochs: int = typer.Option(None, help="Override epochs."),
    seed: int = typer.Option(None, help="Override seed."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config key: table.key=value."),
    json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
) -> None:
    """Train a surrogate; rerunning the same command after an interruption continues it."""
    with reporting():
        from levda_cli.config import TrainConfig, load_config

        flags = {"epochs": epochs, "seed": seed}
        cfg = load_config(TrainConfig, config, [*(f"{k}={v}" for k, v in flags.items() if v is not None), *overrides])
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from levda_cli.jaxsetup import configure_jax
        from levda_cli.training import train as run

        configure_jax("float32")
        columns = (TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   TextColumn("{task.fields[info]}"))
        with Progress(*columns, console=console, disable=quiet) as bar:
            task = bar.add_task("epochs", total=cfg.epochs, info="")

            def progress(epoch, total, row):
                val = ", ".join(f"{k} {v:.3f}" for k, v in row["validation_rel_l2"].items())
                bar.update(task, completed=epoch, info=f"mse {row['train_mse']:.4f}; val rel L2 {val}")

            summary = run(cfg, data, out, progress, stop=stop_requested)
        console.print(f"wrote {out}: {summary['parameters']} parameters, {summary['seconds']} s, "
                      f"validation rel. L2 {summary['validation_rel_l2']}")
        if json:
            emit_json({k: v for k, v in summary.items() if k != "history"})


@app.command("info")
def info(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file."),
    trusted_sha256: str = typer.Option(None, "--trusted-sha256", help="Refuse the file unless its SHA-256 "
                                       "(as sha256sum prints it) is this."),
    json: bool = typer.Option(False, "--json", help="Print the header as JSON on stdout."),
) -> None:
    """Describe a checkpoint (its header) after verifying its checksums."""
    with reporting():
        from rich.table import Table

        from levda_cli.training import describe

        header = describe(checkpoint, warn=warn,
                          trusted_sha256=trusted_sha256)
        if json:
            emit_json(header)
            return
        table = Table(title=str(checkpoint), show_header=False, title_justify="left")
        h = header
        training = h.get("training") if isinstance(h.get("training"), dict) else {}
        rows = [
            ("format", f"{h['format']} v{h['format_version']} ({h['model_kind']}), "
                       + ("header and payload SHA-256 verified" if h["header_verified"] else
                          "payload SHA-256 verified, header NOT verified (version 1)")),
            ("file SHA-256", h["file_sha256"]),
            ("benchmark", h["benchmark"]),
            ("fields", ", ".join(f"{f} [{u}]" for f, u in zip(h["fields"], h["field_units"]))),
            ("coordinates", ", ".join(f"{c['name']} in [{c['low']:g}, {c['high']:g})" for c in h["coordinates"])),
            ("parameters", ", ".join(f"{p['name']} in [{p['low']:g}, {p['high']:g}]" for p in h["parameters"])),
            ("time", f"epoch {h['time']['epoch']}, {h['time']['unit_seconds']:g} s per unit, z = 0 at "
                     f"{h['time']['origin']:g}, frames {h['time']['first_frame']:g} to {h['time']['last_frame']:g}"),
            ("hyperparameters", ", ".join(f"{k}={v}" for k, v in h["hyperparameters"].items())),
            ("size", f"{h.get('n_parameters', '?')} trainable parameters, {h['file_bytes']} bytes"),
            ("training", f"{training.get('epochs')} epochs, {training.get('seconds')} s on "
                         f"{training.get('trajectories')} trajectories of {training.get('data')}"),
            ("validation rel. L2", str(training.get("validation_rel_l2"))),
        ]
        for k, v in rows:
            table.add_row(k, v)
        console.print(table)


@app.command("evaluate")
def evaluate(
    checkpoint: Path = typer.Argument(..., help="Checkpoint file."),
    data: Path = typer.Option(..., "--data", "-d", help="Trajectory store with a test split."),
    split: str = typer.Option("test", help="Which split: test, validation or train."),
    plot: Path = typer.Option(None, help="Write a PNG of truth, prediction and error."),
    json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Relative L2 error per field and per lead time on a split of a trajectory store."""
    with reporting():
        from levda_cli.jaxsetup import configure_jax
        from levda_cli.training import evaluate as run

        configure_jax("float32")
        result = run(checkpoint, data, split, plot)
        console.print(f"{result['trajectories']} {split} trajectories; relative L2 over the trajectory: "
                      + ", ".join(f"{f} {v:.2%}" for f, v in result["rel_l2"].items())
                      + "; about each frame's mean: "
                      + ", ".join(f"{f} {v:.2%}" for f, v in result["rel_l2_anomaly"].items()))
        if plot is not None:
            console.print(f"wrote {plot}")
        if json:
            emit_json(result)


@app.command("upgrade")
def upgrade(
    checkpoint: Path = typer.Argument(..., help="A version-1 checkpoint (levda <= 0.3.1)."),
    out: Path = typer.Option(..., "--out", "-o", help="The checkpoint to write, in the current format version."),
) -> None:
    """Rewrite a checkpoint in the current format: the checksum then covers the header too."""
    with reporting():
        from levda_cli.io.checkpoint import file_sha256, upgrade_checkpoint

        header = upgrade_checkpoint(checkpoint, out)
        console.print(f"wrote {out}: format version {header['format_version']}, SHA-256 {file_sha256(out)}")

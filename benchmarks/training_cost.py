"""Training cost from trajectory stores at 32 x 32 and 150 x 150 (issue 9, item 1).

    python benchmarks/training_cost.py [--trajectories 64] [--epochs 12] [--workdir /tmp/levda-training-cost]

For each grid size: `levda simulate tsunami` writes a store of the same trajectories (float32
fields), then `levda surrogate train` (configs/train_tsunami.toml, the shipped recipe) runs a few
epochs in a child process. Reported: seconds per Adam step and per epoch (after the first epoch,
which compiles), seconds per draw of the points held in memory (a read of every training trajectory
from the store), the child's peak resident memory, and what the training fields would take in
memory whole (what levda <= 0.8 held). Writes benchmarks/results/training_cost.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from levda_cli.jaxsetup import configure_jax
configure_jax("float32")
from levda_cli.config import TrainConfig, load_config
from levda_cli.training import train
store, out, epochs, refresh = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cfg = load_config(TrainConfig, Path(sys.argv[5]), [f"epochs={epochs}", f"refresh_epochs={refresh}", "warmup_epochs=1",
                                                   f"save_every={epochs}"])
stamps = []
summary = train(cfg, Path(store), Path(out), progress=lambda e, n, row: stamps.append(time.perf_counter()))
print(json.dumps({"stamps": stamps, "read_seconds": summary["read_seconds"],
                  "points_in_memory": summary["points_in_memory"],
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trajectories", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/levda-training-cost"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    config = ROOT / "configs" / "train_tsunami.toml"
    refresh = max(1, args.epochs // 3)  # three draws: the read cost is measured twice after the first
    rows = []
    for size in (32, 150):
        store = args.workdir / f"tsunami{size}.zarr"
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "levda_cli", "simulate", "tsunami", "-c", str(ROOT / "configs" /
                        "simulate_tsunami.toml"), "--size", str(size), "--set", f"trajectories={args.trajectories}",
                        "--set", "field_precision=float32", "--out", str(store), "--overwrite", "-q"], check=True)
        simulate_s = time.perf_counter() - t0
        disk = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
        proc = subprocess.run([sys.executable, "-c", CHILD, str(store), str(args.workdir / f"t{size}.ckpt"),
                               str(args.epochs), str(refresh), str(config)], capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        stamps = res["stamps"]
        n_train = args.trajectories - 2 * int(0.1 * args.trajectories)
        steps = max(1, n_train // 8)
        # epochs after the first (compile); those that started a new draw include its read
        per_epoch = [b - a for a, b in zip(stamps[:-1], stamps[1:])]
        draw_epochs = {e for e in range(1, args.epochs) if e % refresh == 0}
        plain = [d for e, d in enumerate(per_epoch, start=1) if e not in draw_epochs]
        epoch_s = sorted(plain)[len(plain) // 2]
        draws = 1 + len(draw_epochs)
        whole_mib = n_train * 37 * size * size * 3 * 4 / 2**20
        rows.append(dict(size=size, trajectories=args.trajectories, train=n_train, simulate_s=round(simulate_s, 1),
                         store_mib=round(disk / 2**20), epoch_s=round(epoch_s, 3),
                         step_ms=round(1e3 * epoch_s / steps, 1), steps_per_epoch=steps,
                         draw_s=round(res["read_seconds"] / draws, 2), points_in_memory=res["points_in_memory"],
                         peak_rss_mib=round(res["peak_rss_mib"]), whole_fields_mib=round(whole_mib)))
        print(rows[-1], flush=True)
    lines = [
        "# Training cost from trajectory stores (issue 9)", "",
        f"Machine: {platform.node() or 'vm'} {platform.machine()}, {os.cpu_count()} cores, CPU; "
        f"{time.strftime('%Y-%m-%d')}. `python benchmarks/training_cost.py --trajectories {args.trajectories} "
        f"--epochs {args.epochs}`: the tsunami recipe (configs/train_tsunami.toml: 8 trajectories x 37 frames x "
        "32 points per step) on stores of the same trajectories at two grid sizes; median epoch after the "
        "first (compilation), the draws' reads apart; float32 fields on disk.", "",
        "| grid | trajectories (train) | simulate s | store MiB | points held per frame | s per epoch "
        "(steps) | ms per step | s per draw (read) | peak RSS MiB | training fields whole MiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['size']} x {r['size']} | {r['trajectories']} ({r['train']}) | {r['simulate_s']} | "
                     f"{r['store_mib']} | {r['points_in_memory']} | {r['epoch_s']} ({r['steps_per_epoch']}) | "
                     f"{r['step_ms']} | {r['draw_s']} | {r['peak_rss_mib']} | {r['whole_fields_mib']} |")
    a, b = rows
    lines += ["", f"A step costs {b['step_ms'] / a['step_ms']:.2f}x at 150 x 150 what it costs at 32 x 32 (the decoder's "
              "cost is per sampled point); the grid size shows in the draws (reads of the store, every "
              "refresh_epochs epochs) and in the store, not in the step. Memory holds at most "
              "points_in_memory points per frame and trajectory plus one chunk of trajectories being read.", ""]
    out = ROOT / "benchmarks" / "results" / "training_cost.md"
    out.write_text("\n".join(lines))
    (out.with_suffix(".json")).write_text(json.dumps(rows, indent=1))
    print(out.read_text())


if __name__ == "__main__":
    main()

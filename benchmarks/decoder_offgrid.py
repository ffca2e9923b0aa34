"""The shipped surrogates' decoders between the grid nodes they were trained on.

Observations sit anywhere, not on the training grid. For each shipped surrogate, a truth (the sample's,
or one simulated here) is observed exactly (error 1e-9, ``levda observe --network random:K`` at the
frame times, the model's own observation operator: Fourier series for the spectral Kolmogorov model,
interpolation on the tsunami's grid); the surrogate's free run at the truth's own parameters is decoded
(a) at those places and (b) at every grid node at the same times, and both are scored against the truth:
RMS error per field and together. (b) is what the checkpoint's recorded error measures; (a) is what an
observation sees.

    python benchmarks/decoder_offgrid.py
    python benchmarks/decoder_offgrid.py --kolmogorov CKPT [CKPT ...]   # other 32 x 32 Kolmogorov checkpoints

Writes benchmarks/results/decoder_offgrid.{md,json} (the shipped checkpoints only).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibration import REPO, levda  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from exact_posterior import at_observations  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SURROGATES = REPO / "sample_data" / "surrogates"


def score(ckpt: Path, truth_path: Path, obs_path: Path) -> dict:
    import xarray as xr

    at = at_observations(ckpt, obs_path)  # the surrogate decoded where and when the observations are
    spec = at.spec
    truth = xr.open_zarr(truth_path)
    mu = [float(truth[p].values[0]) for p in spec.params]
    off = np.asarray(at.h(mu)) - at.value
    z = at.trajectory(mu)
    epoch = np.datetime64("2000-01-01T00:00:00")
    on = {f: [] for f in spec.fields}
    for k, s in enumerate(at.seconds):
        frame = truth.sel(time=epoch + np.timedelta64(int(round(s)), "s"))
        fields = spec.to_fields(z[k])
        for f in spec.fields:
            on[f].append(np.ravel(np.asarray(fields[f]) - frame[f].values[0]))
    rms = lambda e: float(np.sqrt(np.mean(np.square(e))))  # noqa: E731
    row = {"n_obs": int(len(off)), "frames": int(len(at.seconds)),
           "off_grid": rms(off), "on_grid": rms(np.concatenate([np.concatenate(v) for v in on.values()]))}
    for i, f in enumerate(spec.fields):
        sel = at.field == i
        row[f"off_grid_{f}"] = rms(off[sel])
        row[f"on_grid_{f}"] = rms(np.concatenate(on[f]))
        row[f"rms_{f}"] = rms(at.value[sel])
    return row


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kolmogorov", type=Path, nargs="+", help="score these 32 x 32 Kolmogorov checkpoints instead "
                    "(printed, not written)")
    args = ap.parse_args()
    env = dict(os.environ)
    env["PYTHONWARNINGS"] = "ignore"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = [("tsunami.ckpt", REPO / "sample_data" / "tsunami_truth.zarr", 600),
                 ("tsunami150.ckpt", REPO / "sample_data" / "tsunami150_truth.zarr", 600)]
        kolmogorov = ((32, "kolmogorov.ckpt"), (150, "kolmogorov150.ckpt"))
        if args.kolmogorov:
            cases, kolmogorov = [], ((32, p.resolve()) for p in args.kolmogorov)
        for size, ckpt in kolmogorov:
            truth = tmp / f"kolmogorov{size}.zarr"  # the benchmark's: the shared initial state, Re 1023
            if not truth.exists():
                code, _, err, _ = levda(["simulate", "kolmogorov", "--size", size, "--interval", 0.2, "--seed", 0,
                                         "--set", "spinup=30", "--out", truth, "--duration", 2, "--trajectories",
                                         1, "--set", "parameters.Re.value=1023", "-q"], tmp, env)
                assert code == 0, err
            cases.append((ckpt, truth, 0.2))
        for n, (ckpt, truth, interval) in enumerate(cases):
            obs = tmp / f"obs{n}.nc"
            code, _, err, _ = levda(["observe", truth, "--out", obs, "--network", "random:200", "--interval",
                                     interval, "--error", 1e-9, "--seed", 5], tmp, env)
            assert code == 0, err
            row = {"checkpoint": str(ckpt), "truth": truth.name, **score(SURROGATES / ckpt, truth, obs)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.kolmogorov:
        return
    meta = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
            "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "decoder_offgrid.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["# The shipped decoders between their training grid's nodes", "",
             f"Machine: {meta['machine']}; {meta['date']}. `benchmarks/decoder_offgrid.py`: each surrogate's free run "
             "at its truth's own parameters, decoded at 200 random places per frame (observed exactly by `levda "
             "observe`: the model's own observation operator) and at every grid node at the same frames; RMS error "
             "against the truth (field RMS in brackets). Truths: the samples (tsunami, x0, y0 = 420, 580 km) and "
             "the Kolmogorov benchmark's shared-state flow at Re 1023 (2 time units).", "",
             "| checkpoint | field | at grid nodes | between them (random places) | ratio |", "|---|---|---|---|---|"]
    for r in rows:
        fields = [k[len("on_grid_"):] for k in r if k.startswith("on_grid_")]
        for f in fields:
            lines.append(f"| {r['checkpoint']} | {f} (rms {r[f'rms_{f}']:.3g}) | {r[f'on_grid_{f}']:.4f} "
                         f"| {r[f'off_grid_{f}']:.4f} | {r[f'off_grid_{f}'] / r[f'on_grid_{f}']:.1f} |")
        lines.append(f"| {r['checkpoint']} | all | {r['on_grid']:.4f} | {r['off_grid']:.4f} "
                     f"| {r['off_grid'] / r['on_grid']:.1f} |")
    (RESULTS / "decoder_offgrid.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""How many latent dimensions the Kolmogorov training data need: the POD (linear) floor (issue 8).

The shipped 32 x 32 Kolmogorov surrogate (``n_latent = 24``) has a held-out error of about 2 %, flat in
lead time, which keeps the latent analysis above issue 8's "1/3 of the free run". This script makes the
surrogate's training data as ``sample_data/surrogates/README.md`` does (``levda simulate kolmogorov -c
configs/simulate_kolmogorov.toml --duration 4``: 64 trajectories from one shared state, Re in [500,
1500]), takes the proper orthogonal decomposition of the training trajectories' frames (u and v
together), and reports how well the first k modes reconstruct the held-out test trajectories (relative
L2 over every frame and grid point): the best any decoder linear in a k-dimensional latent state can
do, a yardstick for ``surrogate.n_latent``. Also: the test trajectories' distance from the training
trajectories' mean (what the Reynolds number changes).

    python benchmarks/kolmogorov_pod.py
    python benchmarks/kolmogorov_pod.py --random-initial-states

Writes benchmarks/results/kolmogorov_pod.md. With ``--random-initial-states`` (``kolmogorov_pod_attractor.md``):
the same floor for the flows a benchmark with an *unknown* initial state would need a surrogate of, each
trajectory from its own random state (``shared_initial_state = false``) after the same spin-up, 20 time
units: the size of a latent state that describes the chaotic attractor rather than one trajectory per Re.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
MODES = (0, 4, 8, 16, 24, 32, 40, 48, 64)


def _simulate(duration: str, *settings: str):
    """The training data as ``sample_data/surrogates/README.md`` makes them (``settings``: extra
    ``--set`` values): the training and held-out test trajectories, u and v of each frame in one vector."""
    import xarray as xr

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "kolmogorov.zarr"
        subprocess.run([sys.executable, "-m", "levda_cli", "simulate", "kolmogorov", "-c",
                        str(REPO / "configs" / "simulate_kolmogorov.toml"), "--duration", duration,
                        *[a for kv in settings for a in ("--set", kv)], "--out", str(store), "-q"], check=True,
                       env=dict(os.environ, LEVDA_CACHE_DIR=str(Path(tmp) / "cache")))
        ds = xr.open_zarr(store).load()
    split = ds["split"].values
    frames = np.concatenate([ds["u"].values, ds["v"].values], axis=-1)  # trajectory, time, y, 2 x
    frames = frames.reshape(frames.shape[0], frames.shape[1], -1).astype(np.float64)
    return frames[split == "train"], frames[split == "test"]


def _pod_floor(train, test):
    """``(relative L2, RMS error)`` of the held-out frames in the first k POD modes of the training
    frames, as a function of k, and the number of modes there are. The modes are orthonormal, so the
    residual of k modes is the held-out anomaly less its first k coefficients' energy."""
    snapshots = train.reshape(-1, train.shape[-1])
    mean = snapshots.mean(axis=0)
    _, _, vt = np.linalg.svd(snapshots - mean, full_matrices=False)
    truth = test.reshape(-1, test.shape[-1])
    anomaly = truth - mean
    # residual energy after k modes, k = 0 .. all
    left = np.sum(anomaly**2) - np.concatenate([[0.0], np.cumsum(np.sum((anomaly @ vt.T) ** 2, axis=0))])
    left = np.maximum(left, 0.0)
    norm = np.linalg.norm(truth)

    def floor(k: int) -> tuple[float, float]:
        return float(np.sqrt(left[k]) / norm), float(np.sqrt(left[k] / truth.size))

    return floor, vt.shape[0], mean, truth


def attractor() -> None:
    """The POD floor of flows from random initial states (see the module's docstring)."""
    train, test = _simulate("20", "shared_initial_state=false")
    floor, n_modes, mean, truth = _pod_floor(train, test)
    rms = float(np.sqrt((truth ** 2).mean()))
    rows = [(k, *floor(k)) for k in (0, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)]
    # what one would need for a given error
    need = {t: next((k for k in range(1, n_modes + 1) if floor(k)[0] <= t), None) for t in (0.30, 0.10, 0.03)}
    # two flows from different random states: how far apart (the free run of such a benchmark)
    apart = float(np.sqrt(((test[0] - test[1]) ** 2).mean()))
    off_mean = float(np.sqrt(((truth - mean) ** 2).mean()))
    text = [
        "# Kolmogorov 32 x 32 from random initial states: the POD floor of the attractor",
        "",
        f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}. "
        "`benchmarks/kolmogorov_pod.py --random-initial-states`: `levda simulate kolmogorov -c "
        "configs/simulate_kolmogorov.toml --duration 20 --set shared_initial_state=false` (each trajectory from "
        f"its own random state, the same 30-unit spin-up, Re in [500, 1500]), {len(train)} training trajectories x "
        f"{train.shape[1]} frames, {len(test)} held-out; u and v together (field RMS {rms:.3f}, "
        f"{train.shape[-1]} values per frame).",
        "",
        "| POD modes k | held-out relative L2 | held-out RMS error |",
        "|---|---|---|",
        *(f"| {k} | {r * 100:.3g} % | {a:.2g} |" for k, r, a in rows),
        "",
        "Modes needed for a held-out relative error of " + ", ".join(
            f"{t * 100:.0f} %: {need[t] if need[t] is not None else '> ' + str(n_modes)}" for t in (0.30, 0.10, 0.03)) + ".",
        f"Held-out frames lie {off_mean:.3f} (RMS) from the training mean (the free run of a benchmark whose "
        f"initial state is unknown, started from the climatological mean) and two held-out flows {apart:.3f} from "
        "each other.",
        "",
        "What it means for issue 8's \"latent analysis at most 1/3 of the free run, and below full state\" on "
        "a Kolmogorov benchmark with unknown initial states (written by hand from the run of 2026-11-29: 92, "
        "338, 429 modes; 0.965 and 1.282): the free run from the climatological mean is about 0.97, so a third "
        "of it is about 0.32, and even a *linear* decoder needs about 90 latent dimensions to represent the "
        "held-out states that well (10 %: about 340 of the about 450 that the dealiased 32 x 32 fields span at "
        "all: 512 modes reproduce them to round-off). A latent control of 90+ dimensions at N = 16 is "
        "rank-deficient in the same way as the full state (15 ensemble directions), so the premise of the "
        "latent method, a control small enough for the ensemble to span, fails for this chaotic flow at this "
        "resolution; with the benchmark's shared initial state (`kolmogorov_pod.md`: 24 modes leave 1.5 %) it "
        "holds, but there the exact model from the known state has only Re to find.",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kolmogorov_pod_attractor.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


def main() -> None:
    if "--random-initial-states" in sys.argv[1:]:
        attractor()
        return

    train, test = _simulate("4")
    floor, _, _, truth = _pod_floor(train, test)
    rows = [(k, *floor(k)) for k in MODES]
    mean_traj = train.mean(axis=0)
    off_mean = float(np.sqrt(((test - mean_traj) ** 2).mean()))
    rms = float(np.sqrt((truth ** 2).mean()))
    text = [
        "# Kolmogorov 32 x 32: how many latent dimensions the training data need (POD floor)",
        "",
        f"Machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}. "
        "`benchmarks/kolmogorov_pod.py`: the shipped surrogate's training data (`levda simulate kolmogorov -c "
        f"configs/simulate_kolmogorov.toml --duration 4`), {len(train)} training trajectories x "
        f"{train.shape[1]} frames, {len(test)} held-out test trajectories; u and v together (field RMS {rms:.3f}).",
        "",
        "| POD modes k | held-out relative L2 | held-out RMS error |",
        "|---|---|---|",
        *(f"| {k} | {r * 100:.3g} % | {a:.2g} |" for k, r, a in rows),
        "",
        f"The test trajectories lie {off_mean:.3f} (RMS) from the training trajectories' mean: what the Reynolds "
        "number changes in these flows. The surrogate shipped up to levda 0.13 (`n_latent = 24`, nonlinear "
        "decoder, fitted at the grid nodes) has a held-out error of 2.1 / 2.2 % (u / v; the one shipped from "
        "0.14, fitted between the nodes too: 2.2 / 2.3 %), about the 24-mode linear floor; with 48 modes the floor is "
        "far below the ~0.3 % that issue 8's \"latent analysis at most 1/3 of the free run\" would need, so "
        "there the limit is learning the latent dynamics and decoder, not the latent size. Measured by hand "
        "(2026-11-29, 2 cores): the shipped recipe with `--set surrogate.n_latent=48` reaches 1.46 / 1.43 % "
        "validation error in 1,500 epochs (5 min) and 1.19 / 1.24 % in 3,000 epochs at learning rate 5e-3 "
        "(10 min); 8,000 epochs at 4e-3 (36 min, sharing the machine): 0.75 / 0.79 %; 5,000 epochs at 1e-2 "
        "diverged. With the 8,000-epoch checkpoint on `calibration.md`'s 5 Kolmogorov cases the free run "
        "improves to 0.0155 (0.0218 with levda 0.13's) and the latent analysis to 0.0122 (0.0181), but "
        "Re lies within 2 spreads in 3 of 5 (two cases biased high by 2.2-2.6 spreads) and the analysis is "
        "worse than the free run in 3 of 5: with an accurate surrogate the analysis, not the surrogate, is "
        "what limits this benchmark.",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kolmogorov_pod.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()

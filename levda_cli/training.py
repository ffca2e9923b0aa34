"""Training, evaluating and describing latent surrogates (``levda surrogate ...``).

Training data: a trajectory store from ``levda simulate`` (fields on a grid, parameters per
trajectory, a train/validation/test split). Each step rolls out whole latent trajectories for
a batch of training trajectories (from ``z = 0`` one output interval before the first frame)
and fits the decoder at random grid points of every frame. The training state is saved every
``save_every`` epochs beside the output, and a rerun of the same command continues from it;
per-epoch random keys make a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from levda_cli import __version__
from levda_cli.config import TrainConfig, resolved
from levda_cli.errors import ConfigError, StoreError
from levda_cli.io.trajectories import load_checked, open_trajectories
from levda_cli.models import ModelSpec, model_spec


class TrainingData:
    """A trajectory store as arrays: fields ``(trajectory, frame, point, field)`` and coordinates."""

    def __init__(self, path: Path):
        self.path = Path(path)
        ds = open_trajectories(path)
        try:
            self.spec: ModelSpec = model_spec(ds.attrs["benchmark"], int(ds.attrs["size"]), float(ds.attrs["dt"]))
        except KeyError as err:
            raise StoreError(f"{path} lacks the attribute {err}; was it written by 'levda simulate'?") from None
        spec = self.spec
        self.ds = ds
        self.model_time = np.asarray(ds["model_time"].values, float)
        if len(self.model_time) < 2:
            raise StoreError(f"{path} holds fewer than two times; nothing to learn dynamics from")
        self.interval = float(self.model_time[1] - self.model_time[0])
        self.coords = spec.grid_points()
        self.params = np.stack([np.asarray(load_checked(ds[p], path, f"parameter '{p}'").values, float)
                                for p in spec.params], axis=1)
        self.split = np.asarray(ds["split"].values).astype(str) if "split" in ds else np.full(ds.sizes["trajectory"], "train")
        self.unit_seconds = float(ds.attrs["time_unit_seconds"])
        self.epoch = ds.attrs["epoch"]
        meta = self.path / ".zmetadata"
        digest = hashlib.sha256(meta.read_bytes() if meta.exists() else str(self.path).encode())
        self.identity = digest.hexdigest()

    def fields(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """``(values (n_traj, n_frame, n_point, n_field), parameters (n_traj, n_param))`` of a split."""
        idx = np.flatnonzero(self.split == which)
        if len(idx) == 0:
            raise StoreError(f"{self.path} has no '{which}' trajectories (split: "
                             f"{dict(zip(*np.unique(self.split, return_counts=True)))})")
        arrays = [np.asarray(load_checked(self.ds[f].isel(trajectory=idx), self.path, f"field '{f}'").values,
                             np.float32)
                  for f in self.spec.fields]
        n_traj, n_frame = arrays[0].shape[:2]
        stacked = np.stack([a.reshape(n_traj, n_frame, -1) for a in arrays], axis=-1)
        return stacked, self.params[idx]


def _header(cfg: TrainConfig, data: TrainingData, model, origin: float, n_params: int) -> dict:
    spec = data.spec
    return {
        "model_kind": "latent-dynamics-network",
        "levda_version": __version__,
        "benchmark": spec.name,
        "hyperparameters": {**cfg.surrogate.model_dump(), "dt": model.dt, "time_scale": model.time_scale},
        "fields": list(spec.fields),
        "field_units": [spec.units.get(f, "1") for f in spec.fields],
        "coordinates": [{"name": c, "low": float(spec.domain[c][0]), "high": float(spec.domain[c][1]),
                         "periodic": c in spec.periodic, "units": spec.units.get(c, "1")} for c in spec.coords],
        "parameters": [{"name": p, "low": float(model.param_low[i]), "high": float(model.param_high[i]),
                        "default": float(spec.params[p]), "units": spec.units.get(p, "1")}
                       for i, p in enumerate(spec.params)],
        "time": {"epoch": data.epoch, "unit_seconds": data.unit_seconds, "origin": origin,
                 "frame_interval": data.interval, "first_frame": float(data.model_time[0]),
                 "last_frame": float(data.model_time[-1])},
        "grid": {"dims": list(spec.grid_dims), **{d: np.asarray(spec.grid[d], float).tolist() for d in spec.grid_dims}},
        "normalisation": {k: np.asarray(getattr(model, k)).tolist() for k in (
            "coord_low", "coord_high", "field_mean", "field_std", "param_low", "param_high")},
        "n_parameters": n_params,
        "training": {},
    }


def train(cfg: TrainConfig, data_path: Path, out: Path, progress: Callable[[int, int, dict], None] | None = None,
          stop: Callable[[], bool] = lambda: False) -> dict:
    """Train a surrogate on ``data_path`` and write the checkpoint ``out``."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    from levda_cli.core.surrogate import Surrogate
    from levda_cli.io.checkpoint import save_checkpoint

    data = TrainingData(data_path)
    spec = data.spec
    train_y, train_mu = data.fields("train")
    val_y, val_mu = data.fields("validation") if (data.split == "validation").any() else (train_y, train_mu)
    n_traj, n_frame, n_point, n_field = train_y.shape
    sc = cfg.surrogate
    dt_latent = data.interval / sc.steps_per_interval
    origin = float(data.model_time[0]) - data.interval  # z = 0 one interval before the first frame
    times = data.model_time - origin
    n_steps = int(round(times[-1] / dt_latent))
    mean = train_y.reshape(-1, n_field).mean(axis=0)
    std = train_y.reshape(-1, n_field).std(axis=0) + 1e-12
    key = jax.random.PRNGKey(cfg.seed)
    model = Surrogate.build(
        n_latent=sc.n_latent, n_coord=len(spec.coords), n_field=n_field, n_param=len(spec.params),
        dynamics_width=sc.dynamics_width, dynamics_depth=sc.dynamics_depth, decoder_width=sc.decoder_width,
        decoder_depth=sc.decoder_depth, n_fourier=sc.n_fourier, fourier_scale=sc.fourier_scale,
        periodic=tuple(c in spec.periodic for c in spec.coords), dt=dt_latent, time_scale=float(times[-1]),
        key=jax.random.fold_in(key, 1),
        coord_low=[spec.domain[c][0] for c in spec.coords],
        coord_high=[spec.domain[c][1] for c in spec.coords],
        field_mean=mean, field_std=std, param_low=data.params.min(axis=0), param_high=data.params.max(axis=0),
    )
    model = jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, model)
    steps_per_epoch = max(1, n_traj // cfg.batch_trajectories)
    total = cfg.epochs * steps_per_epoch
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, cfg.learning_rate, max(1, cfg.warmup_epochs * steps_per_epoch), max(total, 2),
        end_value=cfg.final_learning_rate)
    optimiser = optax.adam(schedule)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimiser.init(params)

    y_dev = jnp.asarray((train_y - mean) / std)
    mu_dev = jnp.asarray(train_mu, jnp.float32)
    coords_dev = jnp.asarray(data.coords, jnp.float32)
    times_dev = jnp.asarray(times, jnp.float32)
    n_pts = min(cfg.points_per_frame, n_point)

    def predict(model, mu, idx):
        z = model.latent_trajectory(mu, times_dev, n_steps)  # (frame, latent)
        pts = coords_dev[idx]  # (frame, point, coord)
        return jax.vmap(lambda zf, pf: jax.vmap(lambda p: model.decode_normalised(zf, p))(pf))(z, pts)

    def loss_fn(params, traj, idx):
        model = eqx.combine(params, static)
        pred = jax.vmap(lambda mu, ix: predict(model, mu, ix))(mu_dev[traj], idx)
        target = jax.vmap(lambda t, ix: jnp.take_along_axis(y_dev[t], ix[..., None], axis=1))(traj, idx)
        return jnp.mean((pred - target) ** 2)

    @eqx.filter_jit
    def epoch_step(params, opt_state, key):
        def body(carry, k):
            params, opt_state = carry
            k1, k2 = jax.random.split(k)
            traj = jax.random.choice(k1, n_traj, (cfg.batch_trajectories,), replace=n_traj < cfg.batch_trajectories)
            idx = jax.random.randint(k2, (cfg.batch_trajectories, n_frame, n_pts), 0, n_point)
            loss, grads = jax.value_and_grad(loss_fn)(params, traj, idx)
            updates, opt_state = optimiser.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), jax.random.split(key, steps_per_epoch))
        return params, opt_state, losses.mean()

    val_idx = np.random.default_rng(cfg.seed).choice(n_point, min(cfg.validation_points, n_point), replace=False)

    @eqx.filter_jit
    def validate(params, y, mu):
        model = eqx.combine(params, static)
        idx = jnp.broadcast_to(jnp.asarray(val_idx), (n_frame, len(val_idx)))
        pred = jax.vmap(lambda m: predict(model, m, idx))(mu) * jnp.asarray(std) + jnp.asarray(mean)
        return jnp.sqrt(jnp.sum((pred - y) ** 2, axis=(0, 1, 2)) / jnp.sum(y**2, axis=(0, 1, 2)))

    @eqx.filter_jit
    def frame_rmse(params, y, mu):
        model = eqx.combine(params, static)
        idx = jnp.broadcast_to(jnp.asarray(val_idx), (n_frame, len(val_idx)))
        pred = jax.vmap(lambda m: predict(model, m, idx))(mu) * jnp.asarray(std) + jnp.asarray(mean)
        return jnp.sqrt(jnp.mean((pred - y) ** 2, axis=(0, 2)))  # (frame, field)

    val_y_sub = jnp.asarray(val_y[:, :, val_idx])
    val_mu_dev = jnp.asarray(val_mu, jnp.float32)
    out = Path(out)
    state_path = out.with_name(out.name + ".train-state")
    meta_path = out.with_name(out.name + ".train-state.json")
    fingerprint = hashlib.sha256(json.dumps({"cfg": resolved(cfg), "data": data.identity}, sort_keys=True)
                                 .encode()).hexdigest()
    start_epoch, history, elapsed = 0, [], 0.0
    if state_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") != fingerprint:
            raise ConfigError(f"{state_path} is the saved state of a different training run (other config or data); "
                              "delete it to start afresh, or rerun with the same config and data")
        params, opt_state = eqx.tree_deserialise_leaves(state_path, (params, opt_state))
        start_epoch, history, elapsed = meta["epoch"], meta["history"], meta.get("seconds", 0.0)

    def save_state(epoch):
        tmp = state_path.with_name(state_path.name + ".tmp")
        eqx.tree_serialise_leaves(tmp, (params, opt_state))
        tmp.replace(state_path)
        meta_path.write_text(json.dumps({"fingerprint": fingerprint, "epoch": epoch, "history": history,
                                         "seconds": elapsed}))

    t0 = time.perf_counter() - elapsed
    for epoch in range(start_epoch, cfg.epochs):
        params, opt_state, loss = epoch_step(params, opt_state, jax.random.fold_in(key, 1000 + epoch))
        val = np.asarray(validate(params, val_y_sub, val_mu_dev))
        row = {"epoch": epoch + 1, "train_mse": float(loss), "validation_rel_l2": dict(zip(spec.fields, map(float, val)))}
        history.append(row)
        elapsed = time.perf_counter() - t0
        if (epoch + 1) % cfg.save_every == 0 or epoch + 1 == cfg.epochs or stop():
            save_state(epoch + 1)
        if progress is not None:
            progress(epoch + 1, cfg.epochs, row)
        if not np.isfinite(float(loss)):
            from levda_cli.errors import DivergenceError

            raise DivergenceError(f"training diverged at epoch {epoch + 1} (loss {float(loss)}); lower the "
                                  "learning rate")
        if stop() and epoch + 1 < cfg.epochs:
            from levda_cli.errors import Interrupted

            raise Interrupted(f"stopped after epoch {epoch + 1}; the state is in {state_path}. Run the same "
                              "command again to continue")
    model = eqx.combine(params, static)
    n_params = int(sum(a.size for a in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array))))
    header = _header(cfg, data, model, origin, n_params)
    # The surrogate's own error, per field and frame (lead time from its origin), on the validation
    # trajectories in physical units: assimilation adds it to each observation's variance.
    by_frame = np.asarray(frame_rmse(params, val_y_sub, val_mu_dev))  # (frame, field)
    header["surrogate_error"] = {
        "source": "validation" if (data.split == "validation").any() else "training",
        "trajectories": int(val_y.shape[0]), "points_per_frame": int(len(val_idx)),
        "rmse": {f: float(np.sqrt(np.mean(by_frame[:, i] ** 2))) for i, f in enumerate(spec.fields)},
        "rmse_by_frame": {f: [float(v) for v in by_frame[:, i]] for i, f in enumerate(spec.fields)},
    }
    last = history[-1] if history else {}
    header["training"] = {
        "data": str(data_path), "data_sha256": data.identity, "trajectories": int(n_traj),
        "frames": int(n_frame), "points": int(n_point), "epochs": cfg.epochs, "seconds": round(elapsed, 1),
        "final_train_mse": last.get("train_mse"), "validation_rel_l2": last.get("validation_rel_l2"),
        "config": resolved(cfg), "seed": cfg.seed,
    }
    header = save_checkpoint(out, model, header)
    state_path.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)
    return {"checkpoint": str(out), "epochs": cfg.epochs, "seconds": round(elapsed, 1), "parameters": n_params,
            "validation_rel_l2": last.get("validation_rel_l2"), "history": history}


def describe(path: Path, warn=None, trusted_sha256: str | None = None) -> dict:
    """The checkpoint's header, with its checksums verified (the header's too, from format version 2)."""
    from levda_cli.io.checkpoint import file_sha256, read_header

    header, payload = read_header(path, warn=warn, trusted_sha256=trusted_sha256)
    return {**header, "checksum_verified": True, "file_bytes": Path(path).stat().st_size,
            "file_sha256": file_sha256(path)}


def evaluate(ckpt: Path, data_path: Path, split: str = "test", plot: Path | None = None) -> dict:
    """Relative L2 error per field (over the whole trajectory) and per lead time on one split."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from levda_cli.io.checkpoint import load_checkpoint

    model, header = load_checkpoint(ckpt)
    data = TrainingData(data_path)
    if data.spec.name != header["benchmark"] or list(data.spec.fields) != header["fields"]:
        raise StoreError(f"{data_path} holds {data.spec.name} fields {list(data.spec.fields)}; the checkpoint is for "
                         f"{header['benchmark']} fields {header['fields']}")
    y, mu = data.fields(split)
    origin = header["time"]["origin"]
    times = jnp.asarray(data.model_time - origin, jnp.float32)
    n_steps = int(np.ceil(float(times[-1]) / model.dt - 1e-6))
    coords = jnp.asarray(data.coords, jnp.float32)

    @eqx.filter_jit
    def rollout(model, m):
        z = model.latent_trajectory(m, times, n_steps)
        return jax.vmap(lambda zf: jax.vmap(lambda p: model.decode(zf, p))(coords))(z)

    t0 = time.perf_counter()
    pred = np.stack([np.asarray(rollout(model, jnp.asarray(m, jnp.float32))) for m in mu])
    seconds = time.perf_counter() - t0
    err = pred - y
    per_field = np.sqrt((err**2).sum(axis=(0, 1, 2)) / (y**2).sum(axis=(0, 1, 2)))
    norm = (y**2).sum(axis=(0, 2))  # (frame, field)
    # A frame where the truth is zero (e.g. a fluid at rest) has no relative error: null.
    defined = norm > 1e-12 * norm.max(axis=0, keepdims=True)
    per_lead = np.where(defined, np.sqrt((err**2).sum(axis=(0, 2)) / np.where(defined, norm, 1.0)), np.nan)
    fields = header["fields"]
    result = {
        "checkpoint": str(ckpt), "data": str(data_path), "split": split, "trajectories": int(len(mu)),
        "rel_l2": {f: float(per_field[i]) for i, f in enumerate(fields)},
        "rel_l2_by_lead_time": {f: [None if not np.isfinite(v) else round(float(v), 6) for v in per_lead[:, i]]
                                for i, f in enumerate(fields)},
        "lead_times": (data.model_time - data.model_time[0]).tolist(),
        "seconds": round(seconds, 3),
    }
    if plot is not None:
        _plot(plot, data, y[0], pred[0], fields, result)
    return result


def _plot(path: Path, data: TrainingData, truth: np.ndarray, pred: np.ndarray, fields, result) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'levda[plot]'") from None
    spec = data.spec
    shape = tuple(len(spec.grid[d]) for d in spec.grid_dims)
    frame = truth.shape[0] // 2
    fig, axes = plt.subplots(len(fields), 3, figsize=(10, 3 * len(fields)), squeeze=False)
    for i, f in enumerate(fields):
        t, p = truth[frame, :, i].reshape(shape), pred[frame, :, i].reshape(shape)
        lim = np.abs(t).max() or 1.0
        for j, (title, a) in enumerate((("truth", t), ("surrogate", p), ("error", p - t))):
            ax = axes[i, j]
            im = ax.imshow(a if a.ndim == 2 else a[None], origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim,
                           aspect="auto")
            ax.set_title(f"{f}: {title}")
            fig.colorbar(im, ax=ax)
    fig.suptitle(f"test trajectory 0, lead time {result['lead_times'][frame]:g}; "
                 + ", ".join(f"{f} {v:.1%}" for f, v in result["rel_l2"].items()))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)

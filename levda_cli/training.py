"""Training, evaluating and describing latent surrogates (``levda surrogate ...``).

Training data: a trajectory store from ``levda simulate`` (fields on a grid, parameters per
trajectory, a train/validation/test split). Each step rolls out whole latent trajectories for
a batch of training trajectories (from ``z = 0`` one output interval before the first frame)
and fits the decoder at random grid points of every frame (with ``offgrid``: at random places
between them, the targets from the model's own observation operator on the frame). The training state is saved every
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
        # the model's own clock at the first stored frame (its spin-up): a moving forcing's phase
        self.clock_start = float(ds.attrs.get("first_frame_model_clock", self._spinup_of(ds)))
        self.epoch = ds.attrs["epoch"]
        meta = self.path / ".zmetadata"
        digest = hashlib.sha256(meta.read_bytes() if meta.exists() else str(self.path).encode())
        self.identity = digest.hexdigest()

    def _spinup_of(self, ds) -> float:
        # stores written before levda 0.9 record the spin-up only in their config
        try:
            spinup = json.loads(ds.attrs["config"]).get("spinup")
        except (KeyError, TypeError, ValueError):
            spinup = None
        return float(self.spec.spinup if spinup is None else spinup)

    @property
    def n_point(self) -> int:
        return len(self.coords)

    def indices(self, which: str) -> np.ndarray:
        """The trajectories of a split (``train``, ``validation``, ``test``)."""
        idx = np.flatnonzero(self.split == which)
        if len(idx) == 0:
            raise StoreError(f"{self.path} has no '{which}' trajectories (split: "
                             f"{dict(zip(*np.unique(self.split, return_counts=True)))})")
        return idx

    def groups(self, idx: np.ndarray):
        """``idx`` in groups that each lie in one of the store's chunks along ``trajectory``: each
        group is one read, and memory holds one group at a time."""
        chunks = self.ds[self.spec.fields[0]].chunks
        size = int(chunks[0][0]) if chunks else len(self.split)
        for c in np.unique(idx // size):
            yield idx[idx // size == c]

    def read(self, idx: np.ndarray, select: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """Fields ``(len(idx), n_frame, n_point, n_field)`` float32 of trajectories ``idx``, read one
        chunk of trajectories at a time; ``select`` (values of a group -> the part kept) bounds the
        memory to what it keeps."""
        out = []
        for group in self.groups(np.asarray(idx)):
            arrays = [np.asarray(load_checked(self.ds[f].isel(trajectory=group), self.path, f"field '{f}'").values,
                                 np.float32) for f in self.spec.fields]
            n_traj, n_frame = arrays[0].shape[:2]
            values = np.stack([a.reshape(n_traj, n_frame, -1) for a in arrays], axis=-1)
            del arrays
            out.append(values if select is None else select(values))
        return np.concatenate(out)

    def fields(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """``(values (n_traj, n_frame, n_point, n_field), parameters (n_traj, n_param))`` of a split."""
        idx = self.indices(which)
        return self.read(idx), self.params[idx]


def offgrid_draw(data: TrainingData, idx: np.ndarray, n_places: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Fields at ``n_places`` random places per frame of trajectories ``idx``: ``(values (traj, frame, place,
    field) float32, places (traj, frame, place, coord) float32)``, each value the model's own observation
    operator on the stored frame (its restart variables included), as ``levda observe`` makes observations."""
    import jax
    import jax.numpy as jnp

    spec = data.spec
    low = np.asarray([spec.domain[c][0] for c in spec.coords])
    high = np.asarray([spec.domain[c][1] for c in spec.coords])
    n_field = len(spec.fields)
    dyn = spec.dynamics

    @jax.jit
    @jax.vmap  # over the frames of a trajectory
    def at_places(frame, places, mu):
        state = spec.from_frame(frame)
        return jax.vmap(lambda c: jax.vmap(lambda f: dyn.observe(state, mu, c, f))(jnp.arange(n_field)))(places)

    names = list(spec.fields) + list(spec.restart_vars)
    values, where = [], []
    for t in idx:
        traj = data.ds.isel(trajectory=int(t))
        arrays = {v: np.asarray(load_checked(traj[v], data.path, f"'{v}' of trajectory {t}").values) for v in names}
        mu = jnp.asarray(data.params[t])
        places = low + (high - low) * rng.random((len(data.model_time), n_places, len(spec.coords)))
        mus = jnp.broadcast_to(mu, (len(data.model_time), *mu.shape))
        values.append(np.asarray(at_places(arrays, places, mus), np.float32))
        where.append(places.astype(np.float32))
    return np.stack(values), np.stack(where)


def normalisation(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per field (last axis), accumulated in float64: a float32 sum over
    millions of values near 3000 (the sphere's depth) is off by hundreds, and the field's scale with it."""
    flat = values.reshape(-1, values.shape[-1])
    return (flat.mean(axis=0, dtype=np.float64).astype(np.float32),
            (flat.std(axis=0, dtype=np.float64) + 1e-12).astype(np.float32))


def _header(cfg: TrainConfig, data: TrainingData, model, origin: float, n_params: int) -> dict:
    spec = data.spec
    return {
        "model_kind": "latent-dynamics-network",
        "levda_version": __version__,
        "benchmark": spec.name,
        "hyperparameters": {**cfg.surrogate.model_dump(), "dt": model.dt, "time_scale": model.time_scale,
                            "forcing_periods": list(model.forcing_periods), "forcing_offset": model.forcing_offset},
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
    train_idx = data.indices("train")
    val_split = "validation" if (data.split == "validation").any() else "train"
    train_mu = data.params[train_idx]
    n_traj, n_frame, n_point, n_field = len(train_idx), len(data.model_time), data.n_point, len(spec.fields)
    # Points held in memory: every grid point where the grid is small; otherwise a fresh random
    # draw of `kept` points per frame and trajectory every refresh_epochs epochs (memory bounded by
    # it, not by the grid), reproducible from (seed, draw number) so a resumed run is the same.
    kept = cfg.points_in_memory if cfg.offgrid else min(cfg.points_in_memory, n_point)
    whole = kept >= n_point and not cfg.offgrid
    read_seconds = [0.0]

    def draw(number: int) -> tuple[np.ndarray, np.ndarray | None]:
        t = time.perf_counter()
        if cfg.offgrid:  # values (traj, frame, kept, field) at places (traj, frame, kept, coord)
            values, places = offgrid_draw(data, train_idx, kept, np.random.default_rng([cfg.seed, number, 1]))
            read_seconds[0] += time.perf_counter() - t
            return values, places
        if whole:
            values, grid = data.read(train_idx), None
        else:
            rng = np.random.default_rng([cfg.seed, number])
            picks = []

            def select(values):
                g, f = values.shape[:2]
                pick = np.argpartition(rng.random((g, f, n_point), np.float32), kept, axis=-1)[..., :kept]
                picks.append(pick.astype(np.int32))
                return np.take_along_axis(values, pick[..., None], axis=2)

            values = data.read(train_idx, select)
            grid = np.concatenate(picks)
        read_seconds[0] += time.perf_counter() - t
        return values, grid

    train_y, train_grid = draw(0)
    sc = cfg.surrogate
    dt_latent = data.interval / sc.steps_per_interval
    origin = float(data.model_time[0]) - data.interval  # z = 0 one interval before the first frame
    times = data.model_time - origin
    n_steps = int(round(times[-1] / dt_latent))
    mean, std = normalisation(train_y)
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
        forcing_periods=spec.forcing_periods if sc.forcing else (), forcing_offset=origin + data.clock_start,
    )
    model = jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, model)
    steps_per_epoch = max(1, n_traj // cfg.batch_trajectories)
    total = cfg.epochs * steps_per_epoch
    warmup = max(1, min(cfg.warmup_epochs * steps_per_epoch, total - 1))  # a run shorter than its warm-up
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, cfg.learning_rate, warmup, max(total, warmup + 1), end_value=cfg.final_learning_rate)
    optimiser = optax.adam(schedule)
    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimiser.init(params)

    def to_device(values, grid):
        return (jnp.asarray((values - mean) / std),
                None if grid is None else jnp.asarray(grid, jnp.float32 if cfg.offgrid else None))

    mu_dev = jnp.asarray(train_mu, jnp.float32)
    coords_dev = jnp.asarray(data.coords, jnp.float32)
    times_dev = jnp.asarray(times, jnp.float32)
    n_pts = min(cfg.points_per_frame, kept)

    n_sel = n_frame if cfg.frames_per_step == 0 else min(cfg.frames_per_step, n_frame)

    def predict(model, mu, pts, frames=None):
        z = model.latent_trajectory(mu, times_dev, n_steps)  # (frame, latent)
        if frames is not None:
            z = z[frames]
        return jax.vmap(lambda zf, pf: jax.vmap(lambda p: model.decode_normalised(zf, p))(pf))(z, pts)

    def loss_fn(params, y_dev, grid_dev, traj, frames, idx):
        # frames: (traj, frame) the frames fitted (None: all); idx: positions among the points held in
        # memory, (traj, frame, point); grid_dev maps them to grid points (None: every grid point is
        # held, the position is the grid point)
        model = eqx.combine(params, static)
        def rows(a):  # a's rows of the batch's trajectories and frames
            return a[traj] if frames is None else jax.vmap(lambda t, fr: a[t][fr])(traj, frames)

        y_sel = rows(y_dev)
        if cfg.offgrid:  # grid_dev holds the places themselves
            where = jnp.take_along_axis(rows(grid_dev), idx[..., None], axis=2)
            place = lambda w: w  # noqa: E731
        else:
            where = idx if grid_dev is None else jnp.take_along_axis(rows(grid_dev), idx, axis=2)
            place = lambda w: coords_dev[w]  # noqa: E731
        pred = jax.vmap(lambda mu, fr, g: predict(model, mu, place(g), fr),
                        in_axes=(0, None if frames is None else 0, 0))(mu_dev[traj], frames, where)
        target = jnp.take_along_axis(y_sel, idx[..., None], axis=2)
        return jnp.mean((pred - target) ** 2)

    @eqx.filter_jit
    def epoch_step(params, opt_state, key, y_dev, grid_dev):
        def body(carry, k):
            params, opt_state = carry
            k1, k2, k3 = jax.random.split(k, 3) if n_sel < n_frame else (*jax.random.split(k), None)
            traj = jax.random.choice(k1, n_traj, (cfg.batch_trajectories,), replace=n_traj < cfg.batch_trajectories)
            idx = jax.random.randint(k2, (cfg.batch_trajectories, n_sel, n_pts), 0, kept)
            # a random set of frames per trajectory (frames_per_step), or all of them
            frames = None if k3 is None else jax.vmap(
                lambda kk: jax.random.choice(kk, n_frame, (n_sel,), replace=False))(
                jax.random.split(k3, cfg.batch_trajectories))
            loss, grads = jax.value_and_grad(loss_fn)(params, y_dev, grid_dev, traj, frames, idx)
            updates, opt_state = optimiser.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), jax.random.split(key, steps_per_epoch))
        return params, opt_state, losses.mean()

    val_idx = np.random.default_rng(cfg.seed).choice(n_point, min(cfg.validation_points, n_point), replace=False)

    @eqx.filter_jit
    def validate(params, y, mu):
        model = eqx.combine(params, static)
        idx = jnp.broadcast_to(jnp.asarray(val_idx), (n_frame, len(val_idx)))
        pred = jax.vmap(lambda m: predict(model, m, coords_dev[idx]))(mu) * jnp.asarray(std) + jnp.asarray(mean)
        return jnp.sqrt(jnp.sum((pred - y) ** 2, axis=(0, 1, 2)) / jnp.sum(y**2, axis=(0, 1, 2)))

    @eqx.filter_jit
    def frame_rmse(params, y, mu):
        model = eqx.combine(params, static)
        idx = jnp.broadcast_to(jnp.asarray(val_idx), (n_frame, len(val_idx)))
        pred = jax.vmap(lambda m: predict(model, m, coords_dev[idx]))(mu) * jnp.asarray(std) + jnp.asarray(mean)
        return jnp.sqrt(jnp.mean((pred - y) ** 2, axis=(0, 2)))  # (frame, field)

    val_traj = data.indices(val_split)
    val_y_sub = jnp.asarray(data.read(val_traj, lambda v: v[:, :, val_idx]))
    val_mu_dev = jnp.asarray(data.params[val_traj], jnp.float32)
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
    number = 0 if whole else start_epoch // cfg.refresh_epochs
    if number:
        train_y, train_grid = draw(number)
    y_dev, grid_dev = to_device(train_y, train_grid)
    del train_y, train_grid
    for epoch in range(start_epoch, cfg.epochs):
        if not whole and epoch // cfg.refresh_epochs != number:
            number = epoch // cfg.refresh_epochs
            y_dev = grid_dev = None  # the old draw leaves memory before the new one is read
            y_dev, grid_dev = to_device(*draw(number))
        params, opt_state, loss = epoch_step(params, opt_state, jax.random.fold_in(key, 1000 + epoch), y_dev,
                                             grid_dev)
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
        "trajectories": int(len(val_traj)), "points_per_frame": int(len(val_idx)),
        "rmse": {f: float(np.sqrt(np.mean(by_frame[:, i] ** 2))) for i, f in enumerate(spec.fields)},
        "rmse_by_frame": {f: [float(v) for v in by_frame[:, i]] for i, f in enumerate(spec.fields)},
    }
    last = history[-1] if history else {}
    header["training"] = {
        "data": str(data_path), "data_sha256": data.identity, "trajectories": int(n_traj),
        "frames": int(n_frame), "points": int(n_point), "points_in_memory": int(kept), "epochs": cfg.epochs,
        "seconds": round(elapsed, 1), "read_seconds": round(read_seconds[0], 1),
        "final_train_mse": last.get("train_mse"), "validation_rel_l2": last.get("validation_rel_l2"),
        "config": resolved(cfg), "seed": cfg.seed,
    }
    header = save_checkpoint(out, model, header)
    state_path.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)
    return {"checkpoint": str(out), "epochs": cfg.epochs, "seconds": round(elapsed, 1), "parameters": n_params,
            "points_in_memory": int(kept), "read_seconds": round(read_seconds[0], 1),
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
    idx = data.indices(split)
    origin = header["time"]["origin"]
    times = jnp.asarray(data.model_time - origin, jnp.float32)
    n_steps = int(np.ceil(float(times[-1]) / model.dt - 1e-6))
    coords = jnp.asarray(data.coords, jnp.float32)

    @eqx.filter_jit
    def rollout(model, m):
        z = model.latent_trajectory(m, times, n_steps)
        return jax.vmap(lambda zf: jax.vmap(lambda p: model.decode(zf, p))(coords))(z)

    # Sums per (frame, field) over trajectories and points, one chunk of trajectories in memory at a time.
    err2 = norm = spread = 0.0
    seconds, first, trajectories = 0.0, None, iter(idx)

    def score(values):
        nonlocal err2, norm, spread, seconds, first
        for y in values:
            m = data.params[next(trajectories)]
            t0 = time.perf_counter()
            pred = np.asarray(rollout(model, jnp.asarray(m, jnp.float32)))
            seconds += time.perf_counter() - t0
            err2 = err2 + ((pred - y).astype(np.float64) ** 2).sum(axis=1)
            norm = norm + (y.astype(np.float64) ** 2).sum(axis=1)
            spread = spread + y.shape[1] * y.astype(np.float64).var(axis=1)  # about each frame's mean
            if first is None:
                first = (y, pred)
        return values[:, :0]

    data.read(idx, score)
    per_field = np.sqrt(err2.sum(axis=0) / norm.sum(axis=0))
    # A frame where the truth is zero (e.g. a fluid at rest) has no relative error: null.
    defined = norm > 1e-12 * norm.max(axis=0, keepdims=True)
    per_lead = np.where(defined, np.sqrt(err2 / np.where(defined, norm, 1.0)), np.nan)
    fields = header["fields"]
    result = {
        "checkpoint": str(ckpt), "data": str(data_path), "split": split, "trajectories": int(len(idx)),
        "rel_l2": {f: float(per_field[i]) for i, f in enumerate(fields)},
        # the error relative to each frame's departures from its own mean: the honest figure for a
        # field with a large mean (the sphere's h about its 3 km depth), equal to rel_l2 for one without
        "rel_l2_anomaly": {f: float(np.sqrt(err2[:, i].sum() / spread[:, i].sum())) for i, f in enumerate(fields)},
        "rel_l2_by_lead_time": {f: [None if not np.isfinite(v) else round(float(v), 6) for v in per_lead[:, i]]
                                for i, f in enumerate(fields)},
        "lead_times": (data.model_time - data.model_time[0]).tolist(),
        "seconds": round(seconds, 3),
    }
    if plot is not None:
        _plot(plot, data, first[0], first[1], fields, result)
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
        name = f
        if abs(t.mean()) > 3 * t.std():  # a large mean (the sphere's depth) hides the pattern: departures
            t, p, name = t - t.mean(), p - t.mean(), f"{f} - {t.mean():.4g}"
        lim = np.abs(t).max() or 1.0
        for j, (title, a) in enumerate((("truth", t), ("surrogate", p), ("error", p - t))):
            ax = axes[i, j]
            im = ax.imshow(a if a.ndim == 2 else a[None], origin="lower", cmap="RdBu_r", vmin=-lim, vmax=lim,
                           aspect="auto")
            ax.set_title(f"{name}: {title}")
            fig.colorbar(im, ax=ax)
    fig.suptitle(f"test trajectory 0, lead time {result['lead_times'][frame]:g}; "
                 + ", ".join(f"{f} {v:.1%}" for f, v in result["rel_l2"].items()))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)

"""The window loop: read observations, assign them to windows, solve each window, commit it.

No numerics of its own: the analysis is ``core.analyse_window`` (jit-compiled once per run, with
the store's products, in ``windowstep``), the statistics come from ``core.diagnostics``, the first
guess from ``firstguess``, the store's schema from ``io.layout``, JAX's setup from ``jaxsetup``.
This module decides what goes where and when.

Window ``k`` starts at ``start + k * shift``, ends ``length`` later, and assimilates the
observations in ``(end_{k-1}, end_k]`` (the first window: ``(start, end_0]``), so each
observation is assimilated exactly once even when windows overlap.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime as dt
import functools
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from levda_cli import __version__
from levda_cli.config import AssimilateConfig, parameter_setup, resolved, window_setup
from levda_cli.errors import (
    ConfigError, DivergenceError, Interrupted, LevdaError, ObservationError, ParallelError, StoreError,
)
from levda_cli.io import observations as obsio
from levda_cli.io import obsfiles
from levda_cli.io.observations import format_seconds as _iso
from levda_cli.firstguess import given_ensemble, initial_ensemble
from levda_cli.io.layout import analysis_layout
from levda_cli.io.store import AnalysisStore, dumps_attr
from levda_cli.jaxsetup import COMPILE_SECONDS, configure_jax, export_folder, source_digest, watch_compilation
from levda_cli.models import ModelSpec
from levda_cli.parallel import Parallel
from levda_cli.process import settle
from levda_cli.windowstep import window_functions, window_products

UNIX = np.datetime64("1970-01-01T00:00:00", "s")


@dataclasses.dataclass(frozen=True)
class Clock:
    """Whole seconds since 1970 <-> model time, and the window grid, in exact integer seconds."""

    epoch_s: int
    unit_s: float
    start_s: int
    length_s: int
    shift_s: int

    @classmethod
    def from_config(cls, cfg: AssimilateConfig, spec: ModelSpec, epoch_override: str | None = None) -> Clock:
        unit = cfg.time.unit_seconds or spec.unit_seconds
        epoch = int(cfg.time.epoch.timestamp())
        if epoch_override is not None:  # a surrogate's model time is tied to its training data's epoch
            epoch = int(dt.datetime.fromisoformat(epoch_override).timestamp())

        def seconds(model_time: float, what: str) -> int:
            s = model_time * unit
            if not abs(s) < 1e11:  # about 3,000 years: beyond it no calendar arithmetic is meaningful
                raise ConfigError(f"window {what} {model_time} x time.unit_seconds {unit} = {s:.3g} s is out of range "
                                  "(more than 3,000 years)")
            if abs(s - round(s)) > 1e-6:
                raise ConfigError(f"window {what} {model_time} x time.unit_seconds {unit} is not whole seconds")
            return int(round(s))

        return cls(epoch, unit, epoch + seconds(cfg.window.start, "start"),
                   seconds(cfg.window.length, "length"), seconds(cfg.window.shift_value, "shift"))

    def window_of(self, t_s: np.ndarray) -> np.ndarray:
        """The window that assimilates each time, or -1 for times at or before the first start."""
        late = t_s - self.start_s - self.length_s
        k = np.maximum(0, -((-late) // self.shift_s))  # ceil division in integers
        return np.where(t_s > self.start_s, k, -1)

    def window_start(self, k: int) -> int:
        return self.start_s + k * self.shift_s

    def model_time(self, t_s) -> float:
        return (np.asarray(t_s) - self.epoch_s) / self.unit_s


def _bucket(n: int, least: int = 16) -> int:
    """Pad sizes to powers of two so runs with similar sizes share one compilation (and cache entry)."""
    return max(least, 1 << max(0, math.ceil(math.log2(max(n, 1)))))



def _compat(cfg: AssimilateConfig, checkpoint_sha256: str | None = None) -> dict:
    """The settings a resumed run must share with the store it appends to: the checkpoint by its
    SHA-256 (a moved checkpoint resumes; a retrained one at the same path does not)."""
    c = resolved(cfg)
    model = dict(c["model"])
    if checkpoint_sha256 is not None:
        model["checkpoint"] = checkpoint_sha256
    return {"model": model, "time": c["time"], "window": c["window"], "ensemble_size": c["ensemble"]["size"],
            "estimated": sorted(k for k, p in c["parameters"].items() if p["estimate"])}


def run(
    cfg: AssimilateConfig,
    obs_paths: list[Path],
    out: Path,
    truth_path: Path | None = None,
    truth_trajectory: int = 0,
    command: str = "",
    progress: Callable[[int, int, dict], None] | None = None,
    warn: Callable[[str], None] = lambda message: None,
    stop: Callable[[], bool] = lambda: False,
    trusted_sha256: str | None = None,
    parallel: Parallel | None = None,
) -> dict:
    """Assimilate every window the observations cover (or resume after the store's last one).

    ``parallel`` (``parallel.start``): the devices to split each window over and, under
    ``jax.distributed``, this process's place in the job (only process 0 touches the store).

    Finished windows are committed together every ``output.commit_seconds``, or 10 x the last
    commit's duration if that is longer (and at the end,
    on a stop request and on any error), so a kill loses at most that much work and never
    leaves a partial window. ``stop`` is polled between windows.
    """
    parallel = parallel or Parallel()
    try:
        return _run(cfg, obs_paths, out, truth_path, truth_trajectory, command, progress, warn, stop, trusted_sha256,
                    parallel)
    except LevdaError:
        raise
    except Exception as err:
        if parallel.process_count == 1:
            raise
        # a collective that failed because a peer process is gone (XLA's runtime error), and the like
        raise ParallelError(f"process {parallel.process_index} of {parallel.process_count}: {type(err).__name__}: "
                            f"{err}. The job's other processes stop too; {out} keeps its committed windows") from err


def _run(cfg, obs_paths, out, truth_path, truth_trajectory, command, progress, warn, stop, trusted_sha256,
         parallel: Parallel) -> dict:
    header, checkpoint_sha = None, None
    if cfg.model.latent:
        from levda_cli.models import surrogate_spec

        configure_jax(cfg.output.precision)
        from levda_cli.io.checkpoint import file_sha256

        spec, header = surrogate_spec(cfg.model.checkpoint, cfg.ensemble.latent_noise, warn=warn,
                                      trusted_sha256=trusted_sha256)
        checkpoint_sha = file_sha256(cfg.model.checkpoint)
    else:
        spec = cfg.model.spec()
    clock = Clock.from_config(cfg, spec, header["time"]["epoch"] if header else None)
    obs = obsfiles.read_observations(obs_paths)
    obsio.screen(obs, spec.fields, spec.domain, cfg.observations.on_invalid,
                 f"the surrogate {cfg.model.checkpoint} ({spec.name.split(':')[-1]})" if header else f"model {spec.name}")
    t_s = (obs.time - UNIX).astype(np.int64)
    k_obs = clock.window_of(t_s)
    outside = (k_obs < 0) & (obs.qc == obsio.QC_OK)
    if outside.any():
        i = int(np.flatnonzero(outside)[0])
        if cfg.observations.on_invalid == "error":
            raise ObservationError(
                f"{obs.where(i)}: time {obsio.format_time(obs.time[i])} is outside every window (the first window "
                f"starts after {_iso(clock.start_s)}; {int(outside.sum())} such record(s)); check window.start "
                "and time.epoch, or set observations.on_invalid = \"reject\""
            )
        obs.qc[outside] = obsio.QC_OUTSIDE_WINDOWS

    truth, truth_params = None, {}
    if truth_path is not None:
        from levda_cli.io.trajectories import read_truth

        *truth, truth_params = read_truth(truth_path, spec.fields, spec.params, truth_trajectory,
                                          benchmark=spec.name.split(":")[-1],
                                          grid_shape=tuple(len(spec.grid[c]) for c in spec.grid_dims))

    configure_jax(cfg.output.precision)
    import jax
    import jax.numpy as jnp

    from levda_cli.core import WindowObs
    from levda_cli.core.sharding import for_observations
    setup = window_setup(cfg, spec, parallel.mesh)
    values, est, prior_mean, prior_std, _ = parameter_setup(cfg, spec.params, spec.prior)
    n_ens, n_state = cfg.ensemble.size, spec.dynamics.n_state
    n_ctrl = n_state + len(est)
    dtype = jnp.float64  # the ensemble's precision; the model's is cfg.output.precision
    # observation slots chunked as wide as this run's fullest window (a new store's layout)
    ok_k = k_obs[(obs.qc == obsio.QC_OK) & (k_obs >= 0)]
    widest = int(np.unique(ok_k, return_counts=True)[1].max()) if ok_k.size else 16
    specs, coords = analysis_layout(spec, n_ens, n_ctrl, est, cfg.output.members, "f8", _bucket(widest),
                                    relaxation=cfg.inflation.rtps == "adaptive")
    attrs = {
        "title": "levda analysis store",
        "levda_version": __version__,
        "mode": "latent" if header else "full-state",
        "model": spec.name,
        "config": dumps_attr(resolved(cfg)),
        "compat": dumps_attr(_compat(cfg, checkpoint_sha if header else None)),
        "command": command,
        "checkpoint_sha256": checkpoint_sha if header else "",
        "checkpoint_payload_sha256": header["payload_sha256"] if header else "",
        "checkpoint": str(cfg.model.checkpoint or ""),
        "control_names": dumps_attr([f"{spec.fields[0]}[{i}]" for i in range(n_state)] + est),
        "fields": dumps_attr(list(spec.fields)),
        "qc_flags": dumps_attr(obsio.QC_NAMES),
    }
    watch_compilation()
    key = jax.device_put(jax.random.PRNGKey(cfg.ensemble.seed), jax.local_devices()[0])  # committed: no copy per call
    products = functools.partial(window_products, spec.to_fields, spec.fields, n_state, cfg.output.members)
    cache_key = json.dumps([__version__, source_digest(), resolved(cfg), checkpoint_sha or ""], sort_keys=True,
                           default=str)
    step, forward, advance, chunk = window_functions(setup, lambda res, t0, t1, s0, s1: products(res.background, res.analysis,
                                                                                 res.filter, t0, t1, s0, s1),
                                     (export_folder(), cache_key))

    with _store_for(parallel, out, specs, coords, attrs, (n_ens, n_ctrl), cfg.solver.divergence_windows) as store:
        resumed = store.n_windows
        # The next window after the store's last (windows without observations are not stored).
        first_k = int(store.read_last("window_index")) + 1 if resumed else 0
        late = (k_obs < first_k) & (obs.qc == obsio.QC_OK)
        if late.any():
            obs.qc[late] = obsio.QC_ALREADY_ASSIMILATED
            warn(f"{int(late.sum())} observation(s) fall in windows already in {out}; they are skipped")
        beyond = (k_obs >= first_k + cfg.observations.max_windows) & (obs.qc == obsio.QC_OK)
        if beyond.any():
            i = int(np.flatnonzero(beyond)[0])
            message = (f"{obs.where(i)}: time {obsio.format_time(obs.time[i])} is in window {int(k_obs[i])}, more than "
                       f"observations.max_windows = {cfg.observations.max_windows} windows after this run's first "
                       f"({_iso(clock.window_start(first_k))}); {int(beyond.sum())} such record(s). A wrong year or "
                       "time unit? Raise observations.max_windows if the gap is real")
            if cfg.observations.on_invalid == "error":
                raise ObservationError(message + ", or set observations.on_invalid = \"reject\"")
            obs.qc[beyond] = obsio.QC_BEYOND_HORIZON
            warn(message)
        usable = obs.qc == obsio.QC_OK
        if not usable.any():
            return _summary(out, resumed, [], obs, store.n_windows)
        # Only windows with observations are analysed; the ensemble is forecast across the others
        # in one call, so a gap of any length costs one integration, not a window loop.
        windows = [int(k) for k in np.unique(k_obs[usable])]
        coord_arr = np.stack([obs.coords[c] for c in spec.coords], axis=1)
        field_idx = np.array([spec.fields.index(v) if v in spec.fields else -1 for v in obs.variable])
        representation: dict[str, float] = {}
        from levda_cli.models import surrogate_error_sd

        sd = surrogate_error_sd(header, cfg.model.surrogate_error)
        if sd is None and header is not None and cfg.model.surrogate_error > 0:
            warn("the checkpoint records no error of its own (no surrogate_error, no validation error): observations "
                 "are used with their declared errors only; set model.surrogate_error = 0 to silence this")
        error_used = _with_surrogate_error(obs, field_idx, t_s, clock, spec, sd, representation)
        no_model_error = np.zeros(len(spec.fields))

        def model_sd(t_s_window):
            """The surrogate's error per field at a window's start or end (the stored spreads include it)."""
            if sd is None:
                return no_model_error
            return np.asarray([float(sd(f, clock.model_time(t_s_window))) for f in spec.fields])
        # Rejected records per window, counted only up to the last analysed window (a rejected time in
        # year 9999 must not size an array by its window number).
        rej_k = k_obs[(obs.qc != obsio.QC_OK) & (k_obs >= 0) & (k_obs <= windows[-1])]
        rejected_in = dict(zip(*(a.tolist() for a in np.unique(rej_k, return_counts=True))))

        def from_origin(start_s: int) -> float | None:
            """Latent mode: model time from the surrogate's origin (z = 0) to ``start_s``; None otherwise."""
            return None if header is None else (start_s - clock.epoch_s) / clock.unit_s - header["time"]["origin"]

        if resumed == 0:
            spinup = from_origin(clock.start_s)
            if spinup is not None and spinup < -1e-9:
                raise ConfigError(f"window.start is before the surrogate's time origin "
                                  f"{header['time']['origin']}; the latent state is only defined after it")
            if cfg.ensemble.initial is not None:
                background = given_ensemble(cfg.ensemble.initial, spec, setup, clock, n_ens, n_ctrl,
                                             json.loads(attrs["control_names"]), cfg.ensemble.seed)
            else:
                background = initial_ensemble(spec, setup, cfg, jax.random.fold_in(key, 10**9), dtype, spinup)
        search_mode = cfg.solver.search if cfg.solver.search != "auto" else ("always" if header else "first")
        restart_on = cfg.solver.restart == "on" or (cfg.solver.restart == "auto" and header is not None)
        per_call = _windows_per_call(cfg, specs, restart_on, setup.mesh is not None or parallel.process_count > 1)
        if resumed:
            if cfg.ensemble.initial is not None:
                warn(f"ensemble.initial ({cfg.ensemble.initial}) is ignored: {out} resumes from its own last analysis")
            last_analysis = np.asarray(store.read_last("analysis"), np.float64)
            # several windows per call forecast the last analysis inside the call (as they do between windows)
            background = last_analysis if per_call > 1 else forward(last_analysis)
        retry_args: dict[int, tuple] = {}  # window k -> the step's arguments besides the background

        def climatology(k: int):
            """The first guess a cold start at window k would make (latent: free runs from the origin)."""
            return initial_ensemble(spec, setup, cfg, jax.random.fold_in(key, 10**9 + 1 + k), dtype,
                                    from_origin(clock.window_start(k)))

        def band_of(n_used: int) -> float:
            """How far 2 J_min / n_obs (and the innovation ratio) may lie from 1: chi-squared with n degrees of
            freedom (Talagrand) has standard deviation sqrt(2 / n) per observation when the spread and errors are
            right."""
            return cfg.solver.consistency_sigmas * math.sqrt(2 / max(n_used, 1))

        def inconsistent(res, n_used: int) -> bool:
            return abs(float(res.chi2_min) - 1) > band_of(n_used)

        ranks: dict[str, np.ndarray] = {}
        streak = [0]  # consecutive windows with an inconsistent innovation ratio (continued from the store)
        if resumed:
            tail = min(resumed, cfg.solver.divergence_windows)
            for ratio, n in zip(store.read_tail("innovation_ratio", tail), store.read_tail("n_obs", tail)):
                streak[0] = streak[0] + 1 if float(ratio) > 1 + band_of(int(n)) else 0
        rows, pending, last_commit = [], [], [time.monotonic(), 0.0]  # time of the last commit, its duration
        restarted: list[int] = []  # windows whose kept analysis came from the climatological restart

        writer = _BackgroundCommits(store)

        def commit(wait: bool = False):
            # the batch leaves `pending` before it is written, so a write that fails is not retried below
            batch = pending[:]
            pending.clear()
            writer.submit(batch)
            if wait:
                writer.wait()
        # Each window's observations, by one stable sort (in file order within a window).
        order = np.flatnonzero(usable)
        order = order[np.argsort(k_obs[order], kind="stable")]
        bounds = np.searchsorted(k_obs[order], np.asarray(windows + [windows[-1] + 1]))
        # each window's distinct observation times and every observation's place among them (np.unique per
        # window, done once for the run): pairs (window, time) sorted, numbered, and located per window
        by_time = np.lexsort((t_s[order], k_obs[order]))
        pair_k, pair_t = k_obs[order][by_time], t_s[order][by_time]
        new_pair = np.ones(len(order), bool)
        new_pair[1:] = (pair_k[1:] != pair_k[:-1]) | (pair_t[1:] != pair_t[:-1])
        time_id = np.empty(len(order), np.int64)
        time_id[by_time] = np.cumsum(new_pair) - 1
        pair_times, pair_windows = pair_t[new_pair], pair_k[new_pair]
        time_bounds = np.searchsorted(pair_windows, np.asarray(windows + [windows[-1] + 1]))
        np_dtype = np.float64
        n_truth = sum(int(np.prod([len(spec.grid[d]) for d in spec.grid_dims])) for _ in spec.fields)
        no_truth = np.full(n_truth, np.nan, np_dtype)
        timing = {"compile_seconds": 0.0, "analysis_seconds": 0.0, "windows_split": 0}

        def reach(k):
            """Window k is next: count the windows without observations skipped to get there."""
            position[1] += k - position[0]
            position[0] = k + 1

        obs_counts, time_counts = np.diff(bounds), np.diff(time_bounds)

        def padded_sizes(n_done):
            """Window n_done's observation and time slots. Padding depends on this window alone, so a run split
            anywhere computes the same numbers (each padded time costs a partial model step per direction: pad
            times from 1)."""
            n_pad, t_pad = _bucket(int(obs_counts[n_done - 1])), _bucket(int(time_counts[n_done - 1]), 1)
            if for_observations(setup.mesh, n_pad, setup.split_min_observations) is not None:
                timing["windows_split"] += 1  # the compiled step's own rule, on the same padded size
            return n_pad, t_pad

        def stacked_args(n_dones, shape):
            """The step's arguments besides the background (observations padded to ``shape``, key, window numbers,
            search flags, truth, surrogate error) of windows ``n_dones``, stacked along a leading axis and built
            for all of them at once (no padded copy per window and field)."""
            n_pad, t_pad = shape
            rows = np.asarray(n_dones) - 1
            ks_ = [windows[r] for r in rows]
            starts = np.asarray([clock.window_start(k) for k in ks_])
            slot = np.arange(n_pad)
            inside = slot < obs_counts[rows][:, None]
            at = np.where(inside, bounds[rows][:, None] + slot, 0)  # positions in ``order``
            idx = order[at] if len(order) else np.zeros_like(at)
            tslot = np.arange(t_pad)
            tinside = tslot < time_counts[rows][:, None]
            tat = np.where(tinside, time_bounds[rows][:, None] + tslot, 0)
            first_time = time_bounds[rows][:, None]
            wobs = WindowObs(
                times=(np.where(tinside, (pair_times[tat] - starts[:, None]) / clock.unit_s, 0.0) if len(pair_times)
                       else np.zeros(tinside.shape, np_dtype)).astype(np_dtype, copy=False),
                time_index=(np.where(inside, time_id[at] - first_time, 0) if len(order)
                            else np.zeros(inside.shape)).astype(np.int32),
                coords=np.where(inside[:, :, None], coord_arr[idx], 0.0).astype(np_dtype, copy=False),
                field=np.where(inside, field_idx[idx], 0).astype(np.int32),
                value=np.where(inside, obs.value[idx], 0.0).astype(np_dtype, copy=False),
                error=np.where(inside, error_used[idx], 1.0).astype(np_dtype, copy=False),
                mask=inside,
            )
            extras = []
            for r, start_s in zip(rows, starts.tolist()):
                end_s = start_s + clock.length_s
                truth_start = truth_end = no_truth
                if truth is not None:
                    index, truth_fields = truth
                    if start_s in index:
                        truth_start = truth_fields(index[start_s]).astype(np_dtype)
                    if end_s in index:
                        truth_end = truth_fields(index[end_s]).astype(np_dtype)
                # "first": a cold start's first window (not a resumed store's, nor a given ensemble's)
                search = search_mode == "always" or (search_mode == "first" and resumed == 0 and r == 0
                                                     and cfg.ensemble.initial is None)
                extras.append((np.bool_(search), truth_start, truth_end, model_sd(start_s), model_sd(end_s)))
            searches, *extra = (np.stack(column) for column in zip(*extras))
            return wobs, key, np.asarray(ks_, np.uint32), searches, *extra

        def window_args(n_done, k):
            """Window k's selection, start, end and the step's arguments besides the background (one row of
            ``stacked_args``)."""
            start_s = clock.window_start(k)
            wobs, key_, ks, searches, *extra = stacked_args([n_done], padded_sizes(n_done))
            args = (jax.tree.map(lambda a: a[0], wobs), key_, ks[0], searches[0], *(e[0] for e in extra))
            return order[bounds[n_done - 1]:bounds[n_done]], start_s, start_s + clock.length_s, args

        def dispatch(n_done, k, background):
            """Start window k on the device; -> what finish needs."""
            t_window, c_window = time.perf_counter(), COMPILE_SECONDS[0]
            if k > position[0]:
                background = advance(background, k - position[0])
            reach(k)
            sel, start_s, end_s, args = window_args(n_done, k)
            if restart_on:
                retry_args[k] = args
            _, fetch = step(background, *args)
            # tracing and compiling happen inside the call above, before it returns
            return [n_done, k, sel, start_s, end_s, fetch, t_window, COMPILE_SECONDS[0] - c_window]

        def finish(item, spread_max=None):
            """Window k's results to the host, checked, recorded and (when due) committed. ``spread_max``: the
            background's largest spread of a control component, when the caller has it."""
            n_done, k, sel, start_s, end_s, (res, prod), t_window, compiled, seconds = item
            compile_s = min(seconds, compiled)
            timing["compile_seconds"] += compile_s
            timing["analysis_seconds"] += seconds - compile_s
            if not (np.isfinite(res.cost_final) and np.isfinite(res.analysis).all() and np.isfinite(res.filter).all()):
                raise DivergenceError(
                    f"window {k} ({_iso(start_s)} to {_iso(end_s)}): the cost or the ensemble is not finite "
                    f"(J before {float(res.cost_initial):.4g}); {out} keeps the windows before it. "
                    "Try more inflation, a shorter window, or solver.method = \"levenberg-marquardt\""
                )
            n_used = len(sel)
            if spread_max is None:
                spread_max = np.std(res.background, axis=0, ddof=1).max()
            if not spread_max > cfg.solver.spread_floor:
                raise DivergenceError(
                    f"window {k} ({_iso(start_s)} to {_iso(end_s)}): the background ensemble is degenerate (largest "
                    f"spread of a control component {spread_max:.3g} <= solver.spread_floor = "
                    f"{cfg.solver.spread_floor:g}); its members are (nearly) identical, so no observation can move "
                    f"them. {out} keeps the windows before it. Give the first guess a spread (ensemble.perturbation, "
                    "ensemble.latent_noise, or an estimated parameter), or more inflation"
                )
            chi2 = 2 * float(res.cost_o) / max(n_used, 1)
            band = band_of(n_used)
            consistent = not inconsistent(res, n_used)
            # the innovation ratio's standard deviation is about sqrt(2 / n) too (a chi-squared variable)
            streak[0] = streak[0] + 1 if float(res.innovation_ratio) > 1 + band else 0
            diverging = streak[0] >= cfg.solver.divergence_windows
            for flag, required, what in (
                (not bool(res.converged), cfg.solver.require_convergence,
                 f"the minimiser stopped after {int(res.iterations)} iterations without meeting solver.tolerance "
                 "(solver.require_convergence)"),
                (not consistent, cfg.solver.require_consistency,
                 f"2 J_min / n_obs = {float(res.chi2_min):.3g} over {n_used} observations lies more than "
                 f"{cfg.solver.consistency_sigmas:g} standard deviations from 1 (solver.require_consistency)"),
                (diverging, cfg.solver.require_no_divergence,
                 f"the innovations have been larger than the ensemble spread and R allow for {streak[0]} windows "
                 f"(innovation ratio {float(res.innovation_ratio):.3g}): filter divergence "
                 "(solver.require_no_divergence)"),
            ):
                if flag and required:
                    raise DivergenceError(
                        f"window {k} ({_iso(start_s)} to {_iso(end_s)}): {what}. The window is not stored; {out} "
                        "keeps the windows before it")
            record = {
                "window_index": k, "window_start": start_s, "window_end": end_s, "model_time_start": clock.model_time(start_s),
                "background": res.background, "analysis": res.analysis, "filter": res.filter,
                "cost_initial": res.cost_initial, "cost_final": res.cost_final, "cost_b": res.cost_b,
                "cost_o": res.cost_o, "dfs": res.dfs, "chi2": chi2,
                "iterations": res.iterations, "converged": res.converged, "n_obs": n_used,
                "chi2_min": res.chi2_min, "consistent": consistent, "diverging": diverging, "inflation": res.inflation,
                "innovation_ratio": res.innovation_ratio,
                **({"relaxation": res.relaxation} if "relaxation" in specs else {}),
                "rank_observations": res.rank_obs if cfg.output.rank_histograms else np.full_like(res.rank_obs, -1),
                "n_rejected": rejected_in.get(k, 0), "seconds": seconds, "compile_seconds": compile_s,
                "omb_mean": res.omb_mean, "omb_rms": res.omb_rms, "oma_mean": res.oma_mean,
                "oma_rms": res.oma_rms, "n_obs_variable": res.n_obs_field,
                "obs_time": t_s[sel], "obs_value": obs.value[sel], "obs_error": obs.error[sel],
                "hofx_background": res.hofx_background[:n_used], "hofx_analysis": res.hofx_analysis[:n_used],
                "obs_variable": field_idx[sel], "qc_flag": obs.qc[sel],
                **prod,
            }
            for j, c in enumerate(spec.coords):
                record[f"obs_{c}"] = coord_arr[sel, j]
            if est:
                record["param_background"] = res.background[:, n_state:]
                record["param_analysis"] = res.analysis[:, n_state:]
            pending.append({name: np.asarray(v) for name, v in record.items()})
            for name in ("rank_observations", "rank_truth"):  # this run's rank histograms, summed over windows
                counts = np.asarray(record[name])
                if (counts >= 0).all():
                    ranks[name] = ranks.get(name, 0) + counts
            # Commit every output.commit_seconds, but never spend more than a tenth of the run in commits
            # (a commit of many windows takes a while): the wait is at least 10 x the last commit's time.
            every = cfg.output.commit_seconds and max(cfg.output.commit_seconds, 10 * last_commit[1])  # 0: each window
            if time.monotonic() - last_commit[0] >= every or k == windows[-1]:
                commit()  # on the writer's thread; the duration is the last finished commit's
                last_commit[:] = [time.monotonic(), writer.seconds]
            row = {
                "window": k, "start": _iso(start_s), "end": _iso(end_s),
                "cost_initial": float(res.cost_initial), "cost_final": float(res.cost_final),
                "iterations": int(res.iterations), "converged": bool(res.converged), "n_obs": n_used,
                "n_rejected": int(record["n_rejected"]), "chi2": chi2, "chi2_min": float(res.chi2_min),
                "consistent": bool(consistent),
                "innovation_ratio": float(res.innovation_ratio), "diverging": bool(diverging),
                "inflation": float(res.inflation), "relaxation": float(res.relaxation),
                "spread_skill": float(record["spread_skill"]),
                "rmse": float(record["rmse_analysis"]), "spread": float(record["spread_analysis"]),
                "rmse_filter": float(record["rmse_filter"]), "spread_filter": float(record["spread_filter"]),
                "seconds": round(seconds, 6), "compile_seconds": round(compile_s, 6),
                "restarted": k in restarted,
            }
            if est:
                row["parameters"] = {n: float(res.analysis[:, n_state + i].mean()) for i, n in enumerate(est)}
                row["parameters_spread"] = {n: float(res.analysis[:, n_state + i].std(ddof=1))
                                            for i, n in enumerate(est)}
            rows.append(row)
            if progress is not None:
                progress(n_done, len(windows), row)
            if parallel.any(stop()) and k != windows[-1]:
                commit(wait=True)
                raise Interrupted(f"stopped after window {k}; {out} holds {store.n_windows} complete window(s). "
                                  "Run the same command again to continue")

        position = [first_k, 0]  # the window whose start the background is at; windows skipped

        def groups():
            """Consecutive windows sharing their padded sizes (so one compiled call), at most per_call each:
            [(n_done, k, (sel, start, end, None))] and the sizes (``stacked_args`` builds the arguments)."""
            group, shape = [], None
            for n_done, k in enumerate(windows, start=1):
                this = padded_sizes(n_done)
                if group and (this != shape or len(group) == per_call):
                    yield group, shape
                    group = []
                shape = this
                start_s = clock.window_start(k)
                group.append((n_done, k, (order[bounds[n_done - 1]:bounds[n_done]], start_s, start_s + clock.length_s,
                                          None)))
            if group:
                yield group, shape

        def finish_group(done):
            group, results, elapsed, compiled = done
            spreads = np.std(np.stack([r[0].background for r in results]), axis=1, ddof=1).max(axis=1)
            for i, ((n_done, k, (sel, start_s, end_s, _)), result) in enumerate(zip(group, results)):
                compile_i = compiled if i == 0 else 0.0
                finish([n_done, k, sel, start_s, end_s, result, None, compile_i,
                        compile_i + max(elapsed - compiled, 0.0) / len(group)], spreads[i])

        def run_chunked(carry):
            """``per_call`` windows per compiled call; window k's background is the forecast of the previous
            analysis inside the call (``carry``: the first window's background on a cold start, else the
            store's last analysis). The host records one call's windows while the device runs the next."""
            carry_at = first_k if resumed == 0 else first_k - 1  # the window whose start the carry is at
            # committed to the device whatever made it (a given ensemble, a first guess, the store): one program
            carry = jax.device_put(carry, jax.local_devices()[0])

            def arguments(group, shape):
                nonlocal carry_at
                n_adv = np.zeros(per_call, np.int64)
                for i, (_, k, _) in enumerate(group):
                    n_adv[i] = k - carry_at
                    carry_at = k
                    reach(k)
                # padding rows (the last window repeated) are skipped on the device
                n_dones = [n_done for n_done, _, _ in group]
                wobs, key_, ks, searches, *extras = stacked_args(n_dones + n_dones[-1:] * (per_call - len(group)), shape)
                return n_adv, wobs, key_, ks, searches, np.arange(per_call) < len(group), *extras

            # Two calls in flight: the device runs call c with c + 1 queued while the host records call c's
            # predecessor's windows and prepares c + 2's arguments, so a pause of the host (a commit holding
            # the interpreter) does not leave the device idle.
            in_flight: collections.deque = collections.deque()  # (group, fetch, dispatched at, compiling)
            last_done = [time.perf_counter()]

            def finish_oldest():
                group, fetch, dispatched, compiled = in_flight.popleft()
                results = fetch()
                now = time.perf_counter()
                # the device's time for this call: from when it could start (dispatched, or the previous
                # call done) to its results on the host
                seconds = compiled + max(now - max(dispatched, last_done[0]), 0.0)
                last_done[0] = now
                finish_group((group, results, seconds, compiled))

            for group, shape in groups():
                args = arguments(group, shape)
                c0 = COMPILE_SECONDS[0]
                carry, fetch = chunk(carry, *args)
                in_flight.append((group, fetch, time.perf_counter(), COMPILE_SECONDS[0] - c0))
                if len(in_flight) > 2:
                    finish_oldest()
            while in_flight:
                finish_oldest()

        def run_single(background):
            """One window per call, one window's lag: window k's analysis runs on the device while the host
            records and commits window k-1 (a failure found in window k-1 discards window k's work)."""
            previous_item = None
            for n_done, k in enumerate(windows, start=1):
                item = dispatch(n_done, k, background)
                if previous_item is not None:
                    finish(previous_item)
                item[5] = item[5]()  # window k's results on the host
                if restart_on:
                    args = retry_args.pop(k)
                    if inconsistent(item[5][0], int(args[0].mask.sum())):
                        # settled on a wrong mode? the same window from climatology, with a search
                        again = step(climatology(k), *args[:3], np.bool_(True), *args[4:])[1]()
                        if float(again[0].chi2_min) < float(item[5][0].chi2_min):
                            item[5] = again
                            restarted.append(k)
                item.append(time.perf_counter() - item[6])
                # The next background by the same compiled forecast of the same host copy of the analysis a
                # resumed run applies to the stored one: a run split anywhere gives the same bits.
                background = forward(item[5][0].analysis)  # the host array itself, as on resume
                previous_item = item
            if previous_item is not None:
                finish(previous_item)

        settle()  # start-up over (levda_cli.process): collect garbage normally from here
        try:
            (run_chunked if per_call > 1 else run_single)(background)
        finally:
            try:
                commit()  # finished windows are kept on any exit: an error, a divergence
            finally:
                writer.close()  # waits for the last commit (and raises its error)

        summary = _summary(out, resumed, rows, obs, store.n_windows, position[1])
        summary["surrogate_error_added"] = representation  # RMS added error per field (latent mode)
        summary["parameter_coverage"] = _coverage(rows, est, truth_params)
        summary["windows_restarted"] = [r["window"] for r in rows if r["restarted"]]
        if summary["windows_restarted"]:
            warn(f"{len(summary['windows_restarted'])} of {len(rows)} window(s) fitted the observations better from "
                 "the climatological first guess than from the cycled ensemble, which had settled on a wrong mode "
                 f"(solver.restart): window(s) {', '.join(map(str, summary['windows_restarted'][:10]))}"
                 f"{' ...' if len(summary['windows_restarted']) > 10 else ''}")
        # rank histograms over this run's windows, per variable (flat when calibrated; U: under-dispersive)
        summary["rank_histograms"] = {name: {f: counts[i].astype(int).tolist() for i, f in enumerate(spec.fields)
                                             if counts[i].sum() > 0} for name, counts in ranks.items()}
        summary["devices"] = parallel.devices
        summary["processes"] = parallel.process_count
        summary["windows_split"] = timing["windows_split"]
        summary["compile_seconds"] = round(timing["compile_seconds"], 3)
        summary["analysis_seconds"] = round(timing["analysis_seconds"], 3)
        ratio = summary.get("spread_skill")
        if truth is not None and len(rows) >= 5 and ratio is not None and np.isfinite(ratio) and not 0.5 <= ratio <= 2:
            warn(f"against the truth, the analysis spread is {ratio:.2g} times the analysis error over this run's "
                 f"{len(rows)} windows (RMS; 1 when calibrated): the ensemble is "
                 f"{'over' if ratio > 2 else 'under'}-dispersive here, and its spreads are not honest error bars "
                 "for these windows; see 'spread_skill' in the store")
        for key, what, where in (
            ("windows_unconverged", "stopped at solver.max_iterations without meeting the tolerance", "converged"),
            ("windows_inconsistent", f"have 2 J_min / n_obs more than {cfg.solver.consistency_sigmas:g} standard "
             "deviations from 1 (the analysis does not fit the observations as the background spread and their "
             "errors allow)", "consistent"),
            ("windows_diverging", "end a run of windows whose observation-minus-background differences are larger "
             "than the ensemble spread and R allow (filter divergence: the ensemble may have lost the truth)",
             "diverging"),
        ):
            if summary[key]:
                warn(f"{len(summary[key])} of {len(rows)} window(s) {what}: window(s) "
                     f"{', '.join(map(str, summary[key][:10]))}{' ...' if len(summary[key]) > 10 else ''}; "
                     f"see '{where}' in the store")
        return summary


def _windows_per_call(cfg: AssimilateConfig, specs: dict, restart_on: bool, distributed: bool) -> int:
    """Windows analysed in one compiled call: ``solver.windows_per_call``, or (0) as many as keep a call's
    stored results near 16 MiB, at most 64; 1 where the host decides between windows (``solver.restart``)
    or several devices share a window. From the configuration alone, so a run split anywhere gives the
    same bits."""
    n = cfg.solver.windows_per_call
    if restart_on or distributed:
        if n > 1:
            raise ConfigError(f"solver.windows_per_call = {n} needs one window per call here: "
                              + ("solver.restart decides between windows on the host; set solver.restart = \"off\""
                                 if restart_on else "a window is split over several devices"))
        return 1
    if n:
        return n
    # the per-window bytes of the stored arrays whose size does not depend on the observations
    size = sum(int(np.prod(a.shape, dtype=np.int64)) * np.dtype(a.dtype).itemsize for a in specs.values()
               if "obs" not in a.dims)
    return int(min(64, 1 << max(0, int(math.log2(max((16 << 20) // max(size, 1), 1))))))


class _BackgroundCommits:
    """Commits on one background thread, one at a time and in order, so the host records the next windows
    (and the device computes them) while zarr encodes and writes. A commit's error is raised by the next
    ``submit``, ``wait`` or ``close``; each commit is still atomic (``AnalysisStore.append``)."""

    def __init__(self, store):
        self.store, self.future, self.pool, self.seconds = store, None, None, 0.0

    def _append(self, batch) -> None:
        t0 = time.monotonic()
        self.store.append(batch)
        self.seconds = time.monotonic() - t0

    def submit(self, batch: list) -> None:
        self.wait()
        if not batch:
            return
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(1, thread_name_prefix="levda-commit")
        self.future = self.pool.submit(self._append, batch)

    def wait(self) -> None:
        future, self.future = self.future, None
        if future is not None:
            future.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self.pool is not None:
                self.pool.shutdown()


def _check_compat(store, attrs: dict, out: Path) -> None:
    if store.n_windows and store.attrs.get("compat") != attrs["compat"]:
        raise StoreError(
            f"{out} was written with different model, checkpoint, time, window or ensemble settings "
            f"(stored: {store.attrs.get('compat')}); use a new --out, or the store's own config"
        )


class _FollowerStore:
    """What a process other than 0 of a distributed run knows of the store: the resume state process 0
    broadcast. It never opens the store; its appends only count windows."""

    def __init__(self, state: dict, attrs: dict):
        self.n_windows = int(state["n_windows"])
        self._state = state
        self.attrs = {"compat": attrs["compat"]}

    def read_last(self, name: str) -> np.ndarray:
        return {"window_index": self._state["last_window"], "analysis": self._state["analysis"]}[name]

    def read_tail(self, name: str, n: int) -> np.ndarray:
        return self._state[name][len(self._state[name]) - min(n, self.n_windows):]

    def append(self, windows: list) -> None:
        self.n_windows += len(windows)


@contextlib.contextmanager
def _store_for(parallel, out: Path, specs, coords, attrs: dict, shape: tuple[int, int], tail: int):
    """The store, opened, locked and checked by process 0; on the other processes of a distributed run, a
    ``_FollowerStore`` with the resume state process 0 broadcast (a refusal there ends every process, with
    process 0's exit code)."""
    if parallel.process_count == 1:
        with AnalysisStore.open_or_create(out, specs, coords, attrs) as store:
            _check_compat(store, attrs, out)
            yield store
        return
    state = {"status": np.int64(0), "n_windows": np.int64(0), "last_window": np.int64(-1),
             "analysis": np.zeros(shape), "innovation_ratio": np.zeros(tail), "n_obs": np.zeros(tail, np.int64)}
    error, stack = None, contextlib.ExitStack()
    store = None
    if parallel.writer:
        try:
            store = stack.enter_context(AnalysisStore.open_or_create(out, specs, coords, attrs))
            _check_compat(store, attrs, out)
            n = store.n_windows
            state["n_windows"] = np.int64(n)
            if n:
                state["last_window"] = np.int64(store.read_last("window_index"))
                state["analysis"] = np.asarray(store.read_last("analysis"), np.float64)
                for name in ("innovation_ratio", "n_obs"):
                    values = store.read_tail(name, tail)
                    state[name][tail - len(values):] = values
        except LevdaError as err:
            stack.close()
            error = err
            state["status"] = np.int64(err.exit_code)
    state = parallel.broadcast(state)
    with stack:
        if error is not None:
            raise error
        if int(state["status"]):
            raise ParallelError(f"process 0 could not open {out} (its exit code {int(state['status'])}; see its "
                                "message)", exit_code=int(state["status"]))
        yield store if parallel.writer else _FollowerStore(state, attrs)


def _with_surrogate_error(obs, field_idx, t_s, clock, spec, sd, representation: dict) -> np.ndarray:
    """Each observation's error with the surrogate's own error at its field and lead time added in
    quadrature (latent mode, ``model.surrogate_error`` > 0; ``sd`` from ``models.surrogate_error_sd``):
    the surrogate is a model with an error of its own, and an analysis that trusts it more than it
    deserves is over-confident. Fills ``representation`` with the RMS added error per field (for the
    summary)."""
    if sd is None:
        return obs.error
    model_t = np.asarray(clock.model_time(t_s), float)
    added = np.zeros(len(obs))
    for i, f in enumerate(spec.fields):
        sel = field_idx == i
        if sel.any():
            added[sel] = sd(f, model_t[sel])
            representation[f] = float(np.sqrt(np.mean(added[sel] ** 2)))
    return np.sqrt(obs.error**2 + added**2)


def _coverage(rows, est, truth_params) -> dict:
    """Per estimated parameter with a known truth (from --truth): its truth, the last window's estimate
    and spread, z = (estimate - truth) / spread, and the fraction of windows whose analysis had the
    truth within 2 spreads (about 95 % for a calibrated Gaussian posterior)."""
    out = {}
    for name in est:
        if name not in truth_params or not rows:
            continue
        truth = truth_params[name]
        z = [(r["parameters"][name] - truth) / r["parameters_spread"][name] for r in rows
             if r["parameters_spread"][name] > 0]
        last = rows[-1]
        out[name] = {"truth": truth, "estimate": last["parameters"][name], "spread": last["parameters_spread"][name],
                     "z": z[-1] if z else None,
                     "within_2_spreads": float(np.mean([abs(v) <= 2 for v in z])) if z else None}
    return out


def _mean(values) -> float | None:
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else None


def _rms_ratio(spreads, errors) -> float | None:
    pairs = [(s, e) for s, e in zip(spreads, errors) if math.isfinite(s) and math.isfinite(e)]
    if not pairs or not any(e for _, e in pairs):
        return None
    return math.sqrt(sum(s * s for s, _ in pairs) / sum(e * e for _, e in pairs))


def _summary(out, resumed, rows, obs, n_windows, skipped: int = 0) -> dict:
    reasons = {obsio.QC_NAMES[int(c)]: int(n) for c, n in zip(*np.unique(obs.qc, return_counts=True)) if c != 0}
    return {
        "store": str(out),
        "levda_version": __version__,
        "windows_run": len(rows),
        "resumed_after": resumed,
        "windows_in_store": n_windows,
        "windows_without_observations": skipped,
        "n_obs_read": len(obs),
        "n_obs_assimilated": int(sum(r["n_obs"] for r in rows)),
        "rejected": reasons,
        "windows_unconverged": [r["window"] for r in rows if not r["converged"]],
        "windows_inconsistent": [r["window"] for r in rows if not r["consistent"]],
        "windows_diverging": [r["window"] for r in rows if r["diverging"]],
        # calibration over this run's windows (spread/skill needs the truth)
        "mean_inflation": _mean([r["inflation"] for r in rows]),
        "mean_innovation_ratio": _mean([r["innovation_ratio"] for r in rows]),
        "mean_relaxation": _mean([r["relaxation"] for r in rows]),
        "mean_spread_skill": _mean([r["spread_skill"] for r in rows]),
        # RMS spread over RMS error across the windows (1 when calibrated: E|error|^2 = E spread^2)
        "spread_skill": _rms_ratio([r["spread"] for r in rows], [r["rmse"] for r in rows]),
        "windows": rows,
    }

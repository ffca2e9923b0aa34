"""Pydantic models of every config file, and their translation into core objects.

Config files are TOML; every table and key is checked (``extra="forbid"``), so a misspelt
key is an error rather than a silently ignored setting. Command-line flags and ``--set
table.key=value`` overrides are applied to the parsed TOML before validation.
"""

from __future__ import annotations

import math

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from levda_cli.registry import BENCHMARKS, listing
from levda_cli.errors import ConfigError

EPOCH_DEFAULT = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


class _Strict(BaseModel):
    # NaN and infinity are never a setting: refused for every float key
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelConfig(_Strict):
    """Which model: a benchmark's physics (full-state mode) by name, its resolution and step."""

    name: str = Field("lorenz96", description="a benchmark of levda_cli.registry: " + listing())
    checkpoint: Path | None = Field(None, description="a surrogate checkpoint: latent mode (name is then ignored)")
    size: int | None = Field(None, ge=4, le=100_000, description="Lorenz-96 sites, grid cells a side, or the sphere's "
                             "spectral truncation (21 for T21; default per model)")
    dt: float | None = Field(None, gt=0, description="time step, model time units (default per model)")
    surrogate_error: float = Field(1.0, ge=0, le=100, description="latent mode: the surrogate's recorded error "
                                   "(per field and lead time, from its checkpoint) times this is added to each "
                                   "observation's error variance as representation error; 0 turns it off")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in BENCHMARKS:
            raise ValueError(f"unknown model '{v}'; levda knows: {listing()}")
        return v

    def spec(self):
        from levda_cli.models import model_spec

        return model_spec(self.name, self.size, self.dt)

    @property
    def latent(self) -> bool:
        return self.checkpoint is not None


class TimeConfig(_Strict):
    """How UTC datetimes map to model time: ``t = (datetime - epoch) / unit_seconds``."""

    epoch: dt.datetime = EPOCH_DEFAULT
    unit_seconds: float | None = Field(
        None, gt=0, description="seconds per model time unit (default per model: L96 5 days, tsunami 1 s, "
        "Kolmogorov 1 h)")

    @field_validator("epoch")
    @classmethod
    def _utc(cls, v: dt.datetime) -> dt.datetime:
        if v.tzinfo is None:
            return v.replace(tzinfo=dt.timezone.utc)
        return v.astimezone(dt.timezone.utc)


class WindowConfig(_Strict):
    """Windows of ``length`` shifted by ``shift`` (model time units), the first starting at ``start``."""

    length: float = Field(0.05, gt=0)
    shift: float | None = Field(None, gt=0, description="defaults to the window length")
    start: float = 0.0

    @model_validator(mode="after")
    def _shift(self):
        if self.shift is not None and self.shift > self.length + 1e-12:
            raise ValueError(f"window shift {self.shift} is longer than the window length {self.length}")
        return self

    @property
    def shift_value(self) -> float:
        return self.length if self.shift is None else self.shift


class EnsembleConfig(_Strict):
    """The ensemble and its first-window initialisation (members drawn from a free run)."""

    size: int = Field(20, ge=2, le=10_000)
    seed: int = Field(0, ge=0, lt=2**32)
    spinup: float | None = Field(None, ge=0, description="free-run time that makes each initial member "
                                 "(default per model; latent mode: from the surrogate's origin to the first window)")
    latent_noise: float = Field(0.0, ge=0, description="latent mode: std of noise added to z = 0 at the origin")
    perturbation: float = Field(1.0, gt=0, description="std of the noise each spin-up starts from (Lorenz-96)")
    initial: Path | None = Field(None, description="a given first guess: a levda analysis store (its last "
                                 "analysis) or a Zarr/NetCDF file with ensemble(member, ctrl) and its valid time; "
                                 "forecast to the first window's start")
    climatology: bool = Field(True, description="each member's spin-up runs with the fixed (not estimated) "
                              "parameters drawn from the model's declared ranges (the surrogate's training ranges), "
                              "so the first guess has the climate's spread even when no parameter is estimated; "
                              "false: with their fixed values")


class ParameterConfig(_Strict):
    """A model parameter: fixed at ``value``, or estimated. The prior of an estimated parameter is
    ``N(prior_mean, prior_std)``; without either, uniform over the model's (the checkpoint's) declared
    range; a missing one of the two is taken from that range (mean: its middle, std: width / sqrt(12))."""

    value: float | None = None
    estimate: bool = False
    prior_mean: float | None = None
    prior_std: float | None = Field(None, gt=0)
    jitter: float = Field(0.0, ge=0, description="additive noise std per window (anti-collapse)")


class InflationConfig(_Strict):
    """Fixed multiplicative inflation, RTPS, and the adaptive finite-size (EnKF-N) background term."""

    multiplicative: float = Field(1.0, ge=1.0)
    rtps: float | Literal["adaptive"] = Field(
        0.0, description="relaxation to prior spread (Whitaker & Hamill 2012): a fixed alpha in [0, 1], or "
        "\"adaptive\": alpha estimated every window from the innovations (Kotsuki, Ota & Miyoshi 2017), 0 where "
        "the spread and R explain them, at most rtps_max")
    rtps_max: float = Field(1.0, gt=0.0, le=1.0, description="the ceiling of the adaptive relaxation")

    @field_validator("rtps")
    @classmethod
    def _rtps_range(cls, v):
        if v != "adaptive" and not 0.0 <= v <= 1.0:
            raise ValueError(f"rtps must lie in [0, 1] or be \"adaptive\", got {v}")
        return v
    finite_size: bool = Field(True, description="EnKF-N background term: inflation adapted every window")
    xn: float = Field(3.0, gt=0, le=1e6, description="finite-size hyperprior confidence (Bocquet, Raanes & Hannart "
                      "2015): 1 agnostic (chaotic models), larger for more linear, deterministic ones")
    mode_correction: bool = Field(True, description="finite-size hyperprior mode correction: no inflation and no "
                                  "update where observations carry no weight (false: Bocquet 2011's term, which "
                                  "deflates the ensemble in data gaps)")


class SolverConfig(_Strict):
    method: Literal["gauss-newton", "levenberg-marquardt"] = "gauss-newton"
    max_iterations: int = Field(20, ge=1, le=10_000)
    tolerance: float = Field(1e-3, gt=0)
    block_size: int = Field(0, ge=0, le=2**24, description="observations per linearisation block "
                            "(memory grows with it, not with the observation count); 0: sized for the "
                            "model and the backend")
    split_min_observations: int = Field(1024, ge=0, description="with several devices (--devices, --distributed), "
                                        "a window is split over them only when each device gets at least this many "
                                        "observations (smaller windows run whole on every device: no collectives); "
                                        "0: always split")
    rotate: bool = False
    require_convergence: bool = Field(False, description="stop with exit 7 at a window whose minimiser ends "
                                      "without meeting the tolerance (default: count, flag and warn)")
    require_consistency: bool = Field(False, description="stop with exit 7 at a window whose 2 J_min / n_obs "
                                      "lies outside consistency_sigmas standard deviations of 1")
    consistency_sigmas: float = Field(4.0, gt=0, description="how far 2 J_min / n_obs may lie from 1, in its standard "
                                      "deviations sqrt(2 / n_obs), before a window is flagged inconsistent")
    search: Literal["auto", "off", "first", "always"] = Field(
        "auto", description="start the minimisation from the lowest-cost of the background mean, its members and "
        "search_candidates draws (one forecast each): in every window (always), in a new store's first window "
        "(first), or never (off); for windows with several minima. auto: always in latent mode (a source seen "
        "late by few observations), first in full-state mode")
    search_candidates: int = Field(64, ge=0, le=100_000, description="random draws from the background tried "
                                   "as starts besides the mean and the members (one forecast each)")
    restart: Literal["auto", "off", "on"] = Field(
        "auto", description="a window flagged inconsistent is analysed again from the climatological first guess "
        "at its start (latent mode: the surrogate's free runs from its origin with parameters drawn from the prior; "
        "full state: a cold start's first guess) with a search, and the analysis with the lower 2 J_min / n_obs is "
        "kept: an ensemble that settled on a wrong mode of a multimodal window gets out of it. auto: on in latent "
        "mode, off in full state (whose climatology is not tied to the window's time)")
    windows_per_call: int = Field(0, ge=0, le=4096, description="windows analysed in one compiled call "
                                  "(lax.scan; the host records one call's windows while the device runs the next). "
                                  "0: auto: as many as keep a call's stored results near 16 MiB, at most 64; 1 with "
                                  "solver.restart or several devices")
    posterior_hessian: Literal["gauss-newton", "exact"] = Field("gauss-newton", description="the Hessian whose "
                                 "inverse square root makes the analysis anomalies: gauss-newton = zeta I + S^T S "
                                 "(the published iEnKS-N), exact = with the finite-size term's rank-one part")
    divergence_windows: int = Field(3, ge=1, description="this many consecutive windows with innovations far outside "
                                    "what the ensemble spread and R allow count as filter divergence")
    require_no_divergence: bool = Field(False, description="stop with exit 7 when filter divergence is detected "
                                        "(default: count and warn)")
    spread_floor: float = Field(1e-10, ge=0, description="a background ensemble whose spread (every control "
                                "component) is at most this is degenerate: exit 7")


class ObservationConfig(_Strict):
    """``on_invalid = "error"`` stops at the first bad record; ``"reject"`` counts it and goes on."""

    on_invalid: Literal["error", "reject"] = "error"
    max_windows: int = Field(100_000, ge=1, description="observations more than this many windows after a run's "
                             "first window are refused (a wrong year or unit), or rejected with on_invalid = "
                             "\"reject\"")


class OutputConfig(_Strict):
    members: bool = Field(True, description="store every analysis member's fields, not only mean and spread")
    rank_histograms: bool = Field(True, description="rank of each observation among the background members in "
                                  "observation space (costs one forecast of every member per window)")
    precision: Literal["float64", "float32"] = Field("float64", description=(
        "the model and decoder's precision (float32: faster on GPUs); the ensemble, the N x N algebra, "
        "the cost and the store stay float64"))
    commit_seconds: float = Field(2.0, ge=0, description="commit finished windows this often (0: every window); otherwise a run waits at "
                                 "least 10x its last commit's duration, so commits take at most a tenth of it")


class AssimilateConfig(_Strict):
    model: ModelConfig = ModelConfig()
    time: TimeConfig = TimeConfig()
    window: WindowConfig = WindowConfig()
    ensemble: EnsembleConfig = EnsembleConfig()
    parameters: dict[str, ParameterConfig] = {}
    inflation: InflationConfig = InflationConfig()
    solver: SolverConfig = SolverConfig()
    observations: ObservationConfig = ObservationConfig()
    output: OutputConfig = OutputConfig()

    @model_validator(mode="after")
    def _steps(self):
        if self.model.latent:
            return self  # checked against the surrogate's step when it is loaded
        dt_model = self.model.dt or BENCHMARKS[self.model.name].default_dt
        if dt_model is None:
            return self  # checked against the model's own step when the model is built
        for what, value in (("length", self.window.length), ("shift", self.window.shift_value)):
            steps = value / dt_model
            if abs(steps - round(steps)) > 1e-9 or round(steps) < 1:
                raise ValueError(
                    f"window {what} {value} is not a whole number of model steps (dt = {dt_model})"
                )
        return self


class SimParameterConfig(_Strict):
    """A parameter of simulated trajectories: fixed ``value``, or drawn uniformly from ``range``."""

    value: float | None = None
    range: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one(self):
        if self.value is not None and self.range is not None:
            raise ValueError("give either value or range, not both")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range {list(self.range)} is not [low, high]")
        return self


class SimulateConfig(_Strict):
    """``levda simulate``: trajectories with parameters from their prior ranges, split three ways."""

    model: ModelConfig = ModelConfig()
    time: TimeConfig = TimeConfig()
    parameters: dict[str, SimParameterConfig] = {}
    duration: float | None = Field(None, gt=0, description="stored model time after the spin-up")
    interval: float | None = Field(None, gt=0, description="output interval, model time units")
    spinup: float | None = Field(None, ge=0, description="model time run and discarded before storing")
    trajectories: int = Field(1, ge=1)
    batch: int = Field(16, ge=1, description="trajectories integrated (and written) together")
    shared_initial_state: bool = Field(
        True, description="every trajectory starts its stored part from one state (a random state spun up with "
        "the default parameters), so a trajectory is a function of its parameters, as a surrogate that starts "
        "from z = 0 assumes; false: a random state per trajectory, spun up with its own parameters")
    split: tuple[float, float, float] = Field((0.8, 0.1, 0.1), description="train, validation, test fractions")
    field_precision: Literal["float64", "float32"] = Field("float64", description="the stored fields' type (float32 "
                                                           "halves a training store; the exact restart states stay "
                                                           "float64)")
    seed: int = 0
    initial_state_seed: int | None = Field(
        None, description="seed of the random initial state (default: seed); with a shared initial state, a "
        "held-out set drawn with a new seed keeps the training set's initial state when this is the training seed")

    @field_validator("split")
    @classmethod
    def _split(cls, v):
        if min(v) < 0 or abs(sum(v) - 1.0) > 1e-9:
            raise ValueError(f"split fractions must be >= 0 and sum to 1, got {list(v)}")
        return v


class ObserveConfig(_Strict):
    """``levda observe``: a network, times and noise.

    ``network``: ``grid`` (every grid point; Lorenz-96 ``all``), ``every:K`` (every K-th grid
    point along each axis), ``random:K`` (K points re-drawn at each time), ``fixed:K`` (K random
    stations kept for the whole run), ``stations:FILE`` (a CSV of station coordinates with a
    header naming them), ``tracks:K`` (K moving platforms on straight lines at constant speed,
    reflected at walls, wrapped on periodic axes).
    ``times``: ``regular`` (every ``interval``) or ``random`` (as many times as ``regular``
    would give, drawn uniformly between the first and last stored times: not on the frames).
    """

    interval: float | None = Field(None, gt=0, description="time between observations, model time units")
    network: str = "grid"
    times: Literal["regular", "random"] = "regular"
    variables: list[str] | None = Field(None, description="fields to observe (default: all)")
    error: float = Field(1.0, gt=0, description="noise std: absolute, or relative with noise = 'relative'")
    noise: Literal["additive", "relative"] = "additive"
    error_floor: float = Field(1e-6, gt=0, description="smallest declared error with relative noise")
    track_speed: float | None = Field(None, gt=0, description="platform speed, domain widths per model time unit")
    trajectory: int = Field(0, ge=0)
    seed: int = 0
    format: Literal["auto", "csv", "netcdf", "ioda"] = "auto"

    @field_validator("network")
    @classmethod
    def _network(cls, v):
        kind, _, arg = v.partition(":")
        if kind in ("grid", "all") and not arg:
            return "grid"
        if kind in ("every", "random", "fixed", "tracks") and arg.isdigit() and int(arg) >= 1:
            return v
        if kind == "stations" and arg:
            return v
        raise ValueError(f"network '{v}' not understood; use grid, every:K, random:K, fixed:K, "
                         "stations:FILE or tracks:K")


def _apply_override(data: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form table.key=value (e.g. window.length=0.5)")
    key, raw = item.split("=", 1)
    if not key.strip() or any(not part.strip() for part in key.split(".")):
        raise ConfigError(f"override '{item}' has an empty key; write table.key=value (e.g. window.length=0.5)")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is taken as a string
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{item}': '{part}' is not a table")
    node[parts[-1]] = value


def load_config(model: type[BaseModel], path: Path | None, overrides: list[str] = ()) -> Any:
    """Read ``path`` (TOML; None means defaults), apply overrides, validate into ``model``."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {path} is a directory; give a TOML file (see configs/)") from None
        except OSError as err:
            raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
        if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise ConfigError(f"config file {path} is UTF-16 text; save it as UTF-8 (TOML files are UTF-8)")
        try:
            text = raw.decode("utf-8-sig")  # a byte-order mark from an editor is dropped
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            raise ConfigError(f"config file {path}, line {line}: byte 0x{raw[err.start]:02x} is not UTF-8 "
                              "(a binary or Latin-1 file?); TOML files are UTF-8 text") from None
        if "\x00" in text:
            raise ConfigError(f"config file {path} holds NUL bytes: it is binary, not TOML")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    for item in overrides:
        _apply_override(data, item)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        where = path if path is not None else "the command-line settings"
        def got(e) -> str:
            value = e.get("input")
            if isinstance(value, (int, float, str, bool)) and e["type"] not in ("missing", "extra_forbidden"):
                return f" (got {value!r})"
            return ""

        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}{got(e)}" for e in err.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None


def resolved(cfg: BaseModel) -> dict[str, Any]:
    """The config as plain JSON data (stored in outputs so a run can be repeated)."""
    return cfg.model_dump(mode="json")


def parameter_setup(cfg: AssimilateConfig, defaults: dict[str, float], ranges: dict | None = None):
    """Resolve parameters: (values of all, names estimated, prior mean/std and jitter of those).

    ``ranges`` (name -> (low, high)) are the model's declared ranges: the prior where the config
    gives none (see ``ParameterConfig``)."""
    unknown = [p for p in cfg.parameters if p not in defaults]
    if unknown:
        raise ConfigError(f"[parameters] names {unknown}; model '{cfg.model.name}' has {list(defaults)}")
    ranges = ranges or {}
    values, est, mean, std, jitter = [], [], [], [], []
    for name, default in defaults.items():
        p = cfg.parameters.get(name, ParameterConfig())
        value = default if p.value is None else p.value
        values.append(value)
        if p.estimate:
            low, high = ranges.get(name, (value, value))
            if (p.prior_mean is None or p.prior_std is None) and not high > low:
                raise ConfigError(f"parameters.{name}: the model declares no range for {name}, so its prior cannot "
                                  f"be taken from it; set parameters.{name}.prior_mean and parameters.{name}.prior_std")
            est.append(name)
            mean.append(0.5 * (low + high) if p.prior_mean is None else p.prior_mean)
            std.append((high - low) / math.sqrt(12.0) if p.prior_std is None else p.prior_std)
            jitter.append(p.jitter)
    return values, est, mean, std, jitter


def initial_draws(cfg: AssimilateConfig, defaults: dict[str, float], ranges: dict) -> list[tuple]:
    """How each parameter (in the model's order) is drawn for the first guess's members:
    ``("uniform", low, high)``, ``("normal", mean, std)`` or ``("fixed", value)``."""
    values, est, mean, std, _ = parameter_setup(cfg, defaults, ranges)
    draws = []
    for name, value in zip(defaults, values):
        p = cfg.parameters.get(name, ParameterConfig())
        low, high = ranges.get(name, (value, value))
        if name in est:
            i = est.index(name)
            uniform = p.prior_mean is None and p.prior_std is None
            draws.append(("uniform", low, high) if uniform else ("normal", mean[i], std[i]))
        elif cfg.ensemble.climatology and high > low:
            draws.append(("uniform", low, high))  # a spin-up parameter only: the control keeps the fixed value
        else:
            draws.append(("fixed", value))
    return draws


def default_block(dynamics, directions: int) -> int:
    """Observations per linearisation block: a power of two whose tangents take about 256 MiB
    (1 GiB on an accelerator), between 64 and 65,536."""
    import jax

    budget = (1 << 28) if jax.default_backend() == "cpu" else (1 << 30)
    per_obs = 16 * max(1, int(dynamics.observation_footprint)) * (1 + directions)
    block = 1 << max(0, int(budget // per_obs).bit_length() - 1)
    return int(min(max(block, 64), 65536))


def window_setup(cfg: AssimilateConfig, spec, mesh=None):
    """The core's ``WindowSetup`` for this config and model: every choice made an object, once
    (``mesh``: the devices to split the window over, ``core.sharding``)."""
    import jax.numpy as jnp

    from levda_cli.core import (
        RTPS, AdaptiveRTPS, FiniteSizePrior, GaussianPrior, GaussNewton, LevenbergMarquardt, Multiplicative, ParameterJitter,
        Problem, WindowSetup,
    )

    values, est, _, _, jitter = parameter_setup(cfg, spec.params, spec.prior)
    names = list(spec.params)
    problem = Problem(spec.dynamics, jnp.asarray(values), tuple(names.index(n) for n in est))
    if cfg.solver.method == "gauss-newton":
        solver = GaussNewton(max_iterations=cfg.solver.max_iterations, tolerance=cfg.solver.tolerance)
    else:
        solver = LevenbergMarquardt(max_iterations=cfg.solver.max_iterations, tolerance=cfg.solver.tolerance)
    inflation = []
    if cfg.inflation.multiplicative > 1.0:
        inflation.append(Multiplicative(cfg.inflation.multiplicative))
    if cfg.inflation.rtps == "adaptive":
        inflation.append(AdaptiveRTPS(cfg.inflation.rtps_max))
    elif cfg.inflation.rtps > 0.0:
        inflation.append(RTPS(cfg.inflation.rtps))
    if any(j > 0 for j in jitter):
        inflation.append(ParameterJitter(jnp.asarray(jitter)))
    dt_model = spec.dynamics.dt
    steps = {}
    for what, value in (("length", cfg.window.length), ("shift", cfg.window.shift_value)):
        n = value / dt_model
        if cfg.model.latent and abs(n - round(n)) > 1e-9:
            raise ConfigError(f"window {what} {value} is not a whole number of the surrogate's steps "
                              f"(dt = {dt_model}); the latent integration steps on that grid")
        if abs(n - round(n)) > 1e-9 or round(n) < 1:
            raise ConfigError(f"window {what} {value} is not a whole number of model steps (dt = {dt_model})")
        steps[what] = int(round(n))
    n_ctrl = spec.dynamics.n_state + len(est)
    block = cfg.solver.block_size or default_block(spec.dynamics, min(cfg.ensemble.size, n_ctrl))
    return WindowSetup(
        block=block,
        compute=cfg.output.precision,
        problem=problem,
        solver=solver,
        inflation=tuple(inflation),
        prior=(FiniteSizePrior(x_n=cfg.inflation.xn, mode_correction=cfg.inflation.mode_correction)
               if cfg.inflation.finite_size else GaussianPrior()),
        n_window=steps["length"],
        n_shift=steps["shift"],
        n_field=len(spec.fields),
        rotate=cfg.solver.rotate,
        exact_hessian=cfg.solver.posterior_hessian == "exact",
        obs_ranks=cfg.output.rank_histograms,
        search_candidates=cfg.solver.search_candidates,
        # latent mode: search only where the surrogate was trained (its checkpoint's parameter ranges)
        search_low=jnp.asarray([spec.prior[n][0] for n in est]) if cfg.model.latent and est else None,
        search_high=jnp.asarray([spec.prior[n][1] for n in est]) if cfg.model.latent and est else None,
        mesh=mesh,
        split_min_observations=cfg.solver.split_min_observations,
    )


class SurrogateConfig(_Strict):
    """Hyperparameters of the latent surrogate (stored in the checkpoint header)."""

    n_latent: int = Field(16, ge=1)
    dynamics_width: int = Field(64, ge=1)
    dynamics_depth: int = Field(2, ge=0)
    decoder_width: int = Field(128, ge=1)
    decoder_depth: int = Field(3, ge=0)
    n_fourier: int = Field(32, ge=0, description="Fourier features of the coordinates")
    fourier_scale: float = Field(2.0, gt=0, description="std of the random frequencies (cycles per domain)")
    steps_per_interval: int = Field(2, ge=1, description="latent RK4 steps per output interval of the data")
    forcing: bool = Field(True, description="a benchmark whose forcing moves with time (the sphere's sun: a day "
                          "and a year): the dynamics and decoder take its phases, the state a clock (false: an "
                          "autonomous surrogate)")


class TrainConfig(_Strict):
    """``levda surrogate train``: Adam with warm-up and cosine decay on random points and frames."""

    surrogate: SurrogateConfig = SurrogateConfig()
    epochs: int = Field(100, ge=1)
    batch_trajectories: int = Field(8, ge=1)
    points_per_frame: int = Field(256, ge=1, description="random grid points per frame and trajectory per step")
    learning_rate: float = Field(3e-3, gt=0)
    final_learning_rate: float = Field(3e-5, gt=0)
    warmup_epochs: int = Field(3, ge=0)
    validation_points: int = Field(2048, ge=1, description="points per frame for the validation error")
    points_in_memory: int = Field(4096, ge=1, description="grid points per frame and training trajectory held in "
                                  "memory, drawn afresh from the store every refresh_epochs epochs: memory bounded "
                                  "by this, not by the grid (a grid with at most this many points is held whole)")
    frames_per_step: int = Field(0, ge=0, description="frames fitted per trajectory and step, drawn at random "
                                 "(0: every frame); the roll-out still covers them all. For fine output "
                                 "intervals (the sphere's hourly frames)")
    refresh_epochs: int = Field(50, ge=1, description="epochs between fresh draws of the points held in memory")
    offgrid: bool = Field(False, description="fit the decoder at random places between the grid nodes (points_in_"
                          "memory per frame, drawn afresh every refresh_epochs epochs), with targets from the model's "
                          "own observation operator on each stored frame (exact for spectral models), instead of at "
                          "the nodes: a decoder trained at the nodes alone may alias between them")
    save_every: int = Field(5, ge=1, description="epochs between saves of the resumable training state")
    seed: int = 0

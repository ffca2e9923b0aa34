"""Pydantic models of every config file, and their translation into core objects.

Config files are TOML; every table and key is checked (``extra="forbid"``), so a misspelt
key is an error rather than a silently ignored setting. Command-line flags and ``--set
table.key=value`` overrides are applied to the parsed TOML before validation.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from levda_cli.errors import ConfigError

EPOCH_DEFAULT = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    """Which model: a benchmark's physics (full-state mode) by name."""

    name: Literal["lorenz96"] = "lorenz96"
    n_state: int = Field(40, ge=4, description="number of Lorenz-96 sites")
    dt: float = Field(0.05, gt=0, description="model time step, model time units")


class TimeConfig(_Strict):
    """How UTC datetimes map to model time: ``t = (datetime - epoch) / unit_seconds``."""

    epoch: dt.datetime = EPOCH_DEFAULT
    unit_seconds: float = Field(432000.0, gt=0, description="seconds per model time unit (L96: 5 days)")

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

    size: int = Field(20, ge=2)
    seed: int = 0
    spinup: float = Field(20.0, ge=0, description="free-run time that makes each initial member")
    perturbation: float = Field(1.0, gt=0, description="std of the noise each spin-up starts from")


class ParameterConfig(_Strict):
    """A model parameter: fixed at ``value``, or estimated from the prior ``N(prior_mean, prior_std)``."""

    value: float | None = None
    estimate: bool = False
    prior_mean: float | None = None
    prior_std: float = Field(1.0, gt=0)
    jitter: float = Field(0.0, ge=0, description="additive noise std per window (anti-collapse)")


class InflationConfig(_Strict):
    """Fixed multiplicative inflation, RTPS, and the adaptive finite-size (EnKF-N) background term."""

    multiplicative: float = Field(1.0, ge=1.0)
    rtps: float = Field(0.0, ge=0.0, le=1.0)
    finite_size: bool = Field(True, description="EnKF-N background term: inflation adapted every window")


class SolverConfig(_Strict):
    method: Literal["gauss-newton", "levenberg-marquardt"] = "gauss-newton"
    max_iterations: int = Field(20, ge=1)
    tolerance: float = Field(1e-3, gt=0)
    rotate: bool = False


class ObservationConfig(_Strict):
    """``on_invalid = "error"`` stops at the first bad record; ``"reject"`` counts it and goes on."""

    on_invalid: Literal["error", "reject"] = "error"


class OutputConfig(_Strict):
    members: bool = Field(True, description="store every analysis member's fields, not only mean and spread")
    precision: Literal["float64", "float32"] = "float64"
    commit_seconds: float = Field(2.0, ge=0, description="commit finished windows at least this often (0: each)")


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
        for what, value in (("length", self.window.length), ("shift", self.window.shift_value)):
            steps = value / self.model.dt
            if abs(steps - round(steps)) > 1e-9 or round(steps) < 1:
                raise ValueError(
                    f"window {what} {value} is not a whole number of model steps (dt = {self.model.dt})"
                )
        return self


class SimulateConfig(_Strict):
    model: ModelConfig = ModelConfig()
    time: TimeConfig = TimeConfig()
    forcing: float = 8.0
    duration: float = Field(20.0, gt=0, description="stored model time after the spin-up")
    interval: float = Field(0.05, gt=0, description="output interval, model time units")
    spinup: float = Field(20.0, ge=0)
    trajectories: int = Field(1, ge=1)
    seed: int = 0


class ObserveConfig(_Strict):
    interval: float = Field(0.05, gt=0, description="time between observations, model time units")
    sites: str = Field("all", description="'all', 'every:K', or 'random:K' (K fixed random sites)")
    error: float = Field(1.0, gt=0, description="noise and declared error standard deviation")
    trajectory: int = Field(0, ge=0)
    seed: int = 0
    format: Literal["auto", "csv", "netcdf"] = "auto"


def _apply_override(data: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override '{item}' is not of the form table.key=value (e.g. window.length=0.5)")
    key, raw = item.split("=", 1)
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
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    for item in overrides:
        _apply_override(data, item)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        where = path if path is not None else "the command-line settings"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"{where}: {problems}") from None


def resolved(cfg: BaseModel) -> dict[str, Any]:
    """The config as plain JSON data (stored in outputs so a run can be repeated)."""
    return cfg.model_dump(mode="json")


def parameter_setup(cfg: AssimilateConfig, defaults: dict[str, float]):
    """Resolve parameters: (values of all, names estimated, prior mean/std and jitter of those)."""
    unknown = [p for p in cfg.parameters if p not in defaults]
    if unknown:
        raise ConfigError(f"[parameters] names {unknown}; model '{cfg.model.name}' has {list(defaults)}")
    values, est, mean, std, jitter = [], [], [], [], []
    for name, default in defaults.items():
        p = cfg.parameters.get(name, ParameterConfig())
        value = default if p.value is None else p.value
        values.append(value)
        if p.estimate:
            est.append(name)
            mean.append(value if p.prior_mean is None else p.prior_mean)
            std.append(p.prior_std)
            jitter.append(p.jitter)
    return values, est, mean, std, jitter


def window_setup(cfg: AssimilateConfig, spec):
    """The core's ``WindowSetup`` for this config and model: every choice made an object, once."""
    import jax.numpy as jnp

    from levda_cli.core import (
        RTPS, FiniteSizePrior, GaussianPrior, GaussNewton, LevenbergMarquardt, Multiplicative, ParameterJitter,
        Problem, WindowSetup,
    )

    values, est, _, _, jitter = parameter_setup(cfg, spec.params)
    names = list(spec.params)
    problem = Problem(spec.dynamics, jnp.asarray(values), tuple(names.index(n) for n in est))
    if cfg.solver.method == "gauss-newton":
        solver = GaussNewton(max_iterations=cfg.solver.max_iterations, tolerance=cfg.solver.tolerance)
    else:
        solver = LevenbergMarquardt(max_iterations=cfg.solver.max_iterations, tolerance=cfg.solver.tolerance)
    inflation = []
    if cfg.inflation.multiplicative > 1.0:
        inflation.append(Multiplicative(cfg.inflation.multiplicative))
    if cfg.inflation.rtps > 0.0:
        inflation.append(RTPS(cfg.inflation.rtps))
    if any(j > 0 for j in jitter):
        inflation.append(ParameterJitter(jnp.asarray(jitter)))
    return WindowSetup(
        problem=problem,
        solver=solver,
        inflation=tuple(inflation),
        prior=FiniteSizePrior() if cfg.inflation.finite_size else GaussianPrior(),
        n_window=round(cfg.window.length / cfg.model.dt),
        n_shift=round(cfg.window.shift_value / cfg.model.dt),
        n_field=len(spec.fields),
        rotate=cfg.solver.rotate,
    )

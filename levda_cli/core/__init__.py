"""Pure-JAX numerical core of levda: dynamics interface, 4DEnVar solver, ensembles, inflation.

Nothing here imports I/O, CLI or configuration libraries (a test enforces it).
"""

from levda_cli.core.dynamics import AbstractDynamics, Problem, WindowObs, forecast, predict
from levda_cli.core.inflation import RTPS, AbstractInflation, AdaptiveRTPS, Multiplicative, ParameterJitter
from levda_cli.core.prior import AbstractPrior, FiniteSizePrior, GaussianPrior
from levda_cli.core.solver import AbstractSolver, GaussNewton, LevenbergMarquardt
from levda_cli.core.window import (
    WindowResult, WindowSetup, advance_windows, analyse_window, forecast_ensemble, propagate,
)

__all__ = [
    "AbstractDynamics",
    "AbstractInflation",
    "AbstractPrior",
    "FiniteSizePrior",
    "GaussianPrior",
    "AbstractSolver",
    "GaussNewton",
    "LevenbergMarquardt",
    "Multiplicative",
    "ParameterJitter",
    "Problem",
    "RTPS",
    "AdaptiveRTPS",
    "WindowObs",
    "WindowResult",
    "WindowSetup",
    "advance_windows",
    "analyse_window",
    "forecast",
    "forecast_ensemble",
    "predict",
    "propagate",
]

"""The full-state models levda knows by name, described for the layers above the core.

A spec says what a user meets: field, coordinate and parameter names, the domain of each
coordinate, and how a state becomes fields on the output grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from levda_cli.errors import ModelError


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    dynamics: object  # an AbstractDynamics
    fields: tuple[str, ...]
    coords: tuple[str, ...]
    domain: dict[str, tuple[float, float]]
    params: dict[str, float]  # name -> default value (model units)
    grid: dict[str, np.ndarray]  # output grid, one axis per coordinate
    to_fields: Callable  # state (n_state,) -> {field: array on grid}


def full_state_model(name: str, n_state: int = 40, dt: float = 0.05) -> ModelSpec:
    if name == "lorenz96":
        from levda_cli.physics.lorenz96 import COORDS, FIELDS, PARAMS, Lorenz96

        return ModelSpec(
            name=name,
            dynamics=Lorenz96(n_state=n_state, dt=dt),
            fields=FIELDS,
            coords=COORDS,
            domain={"site": (0.0, float(n_state))},
            params={PARAMS[0]: 8.0},
            grid={"site": np.arange(n_state)},
            to_fields=lambda x: {"x": x},
        )
    raise ModelError(f"unknown model '{name}'; full-state mode knows: lorenz96")

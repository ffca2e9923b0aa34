"""The benchmark models levda knows by name: one entry each, read by every command, config and help text.

Light on purpose (no NumPy, no JAX): ``levda --help`` and config validation read it. An entry names
the function that builds the model's ``models.ModelSpec`` (imported only when the model is used).

Adding a benchmark: its physics as one module under ``levda_cli/physics/`` (an ``AbstractDynamics``
with ``step``, ``observe`` and ``fields``), a spec builder (see ``models.lorenz96_spec``) and one
``register(...)`` line below. ``levda simulate``, ``observe``, ``assimilate`` (full-state mode),
``obs check``, the config's ``model.name`` and the help texts then know it.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Benchmark:
    name: str
    summary: str  # one line, for help texts and errors
    builder: str  # "module:function" -> ModelSpec, called as function(size, dt)
    default_dt: float | None = None  # a fixed default step (config checks window lengths against it early)
    extra: str | None = None  # the pip extra it needs, if any


BENCHMARKS: dict[str, Benchmark] = {}


def register(benchmark: Benchmark) -> None:
    if benchmark.name in BENCHMARKS:
        raise ValueError(f"benchmark '{benchmark.name}' is registered twice")
    BENCHMARKS[benchmark.name] = benchmark


def names() -> tuple[str, ...]:
    return tuple(BENCHMARKS)


def listing(sep: str = ", ") -> str:
    """'lorenz96, tsunami, ...' for help texts."""
    return sep.join(BENCHMARKS)


register(Benchmark("lorenz96", "Lorenz-96, 40 sites on a circle, forcing F", "levda_cli.models:lorenz96_spec",
                   default_dt=0.05))
register(Benchmark("tsunami", "linear shallow-water tsunami from a Gaussian bump at (x0, y0), 1000 km square",
                   "levda_cli.models:tsunami_spec"))
register(Benchmark("kolmogorov", "2-D Kolmogorov flow (vorticity), Reynolds number Re", "levda_cli.models:kolmogorov_spec"))
register(Benchmark("sphere", "forced shallow water on the sphere (dinosaur), forcing amplitude and width",
                   "levda_cli.models:sphere_spec", extra="sphere"))

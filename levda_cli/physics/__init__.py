"""Benchmark physics in pure JAX."""

from levda_cli.physics.lorenz96 import Lorenz96

__all__ = ["Lorenz96"]

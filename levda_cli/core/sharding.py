"""Splitting a window's work over a mesh of devices, with JAX's own machinery (``jax.shard_map``).

A levda mesh is one-dimensional (axis ``AXIS``) over the devices of the run: the local devices of
one process, or every process's devices under ``jax.distributed``. Two things are split:

- the observations (``over_observations``): each device takes one contiguous share of the window's
  (padded) observations, runs the blocked linearisation on it, and the Gauss-Newton sums are added
  across the devices (``psum``); per-observation outputs stay split and are gathered by XLA where
  the caller needs them whole;
- the ensemble's propagation (``over_members``): each device forecasts ``N / devices`` members,
  when the device count divides the ensemble size (else every device forecasts all of them).

Small work is not split (``for_observations``, ``for_members``): a window with fewer than
``solver.split_min_observations`` per device, or an ensemble of fewer than ``MIN_MEMBER_SPLIT``
numbers, runs whole on every device, which costs no collective (on GPUs the devices run it side by
side; on forced CPU host devices they share the cores, so it costs their count in CPU time).

Everything else (the ``N x N`` algebra of the minimiser and the analysis transform) is small and
computed on every device alike. With a mesh of one device, or none, the functions are the plain
single-device computation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "devices"


def make_mesh(devices) -> Mesh:
    """A one-dimensional mesh over ``devices`` (a list of ``jax.Device``), in the given order."""
    return Mesh(np.asarray(devices, dtype=object), (AXIS,))


def size(mesh: Mesh | None) -> int:
    return 1 if mesh is None else int(mesh.devices.size)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


MIN_MEMBER_SPLIT = 4096  # ensemble numbers (members x control) below which the forecast is not split


def for_observations(mesh: Mesh | None, n_obs: int, min_per_device: int) -> Mesh | None:
    """The mesh to split a window of ``n_obs`` (static) observations over, or None: a small window runs
    whole on every device (the same arithmetic as one device, no collectives)."""
    if mesh is None or n_obs < size(mesh) * max(min_per_device, 1):
        return None
    return mesh


def for_members(mesh: Mesh | None, shape: tuple[int, int], with_observations: bool = False) -> Mesh | None:
    """The mesh to split an ensemble of ``shape`` (members, control) over, or None when the device count
    does not divide the members or the ensemble is too small to be worth a split. In a window whose
    observations are split (``with_observations``) the members are split too whenever they divide:
    a whole forecast between split parts costs XLA more (measured 3 x on the Lorenz-96 sample)."""
    n_ens, n_ctrl = shape
    if mesh is None or n_ens % size(mesh) or (n_ens * n_ctrl < MIN_MEMBER_SPLIT and not with_observations):
        return None
    return mesh


def pad_observations(obs, n_devices: int):
    """``obs`` (a ``WindowObs``) with its per-observation arrays padded by masked rows to a multiple of
    ``n_devices``, so each device gets an equal share."""
    n = obs.value.shape[0]
    pad = -n % n_devices
    if pad == 0:
        return obs

    def grow(a, fill):
        return jnp.concatenate([a, jnp.full((pad, *a.shape[1:]), fill, a.dtype)])

    return type(obs)(times=obs.times, time_index=grow(obs.time_index, 0), coords=grow(obs.coords, 0),
                     field=grow(obs.field, 0), value=grow(obs.value, 0), error=grow(obs.error, 1),
                     mask=grow(obs.mask, False))


def _shard_map(mesh: Mesh, fn, model, args: tuple, in_specs: tuple, out_specs):
    """``fn(model, *args)`` under ``jax.shard_map``. The model's arrays go in as a replicated argument:
    an array closed over from outside keeps its global sharding and clashes with indexing inside.
    check_vma off: scan carries start replicated (zeros) and become per-device; psum makes them whole."""
    import equinox as eqx

    arrays, static = eqx.partition(model, eqx.is_array)
    return jax.shard_map(lambda a, *rest: fn(eqx.combine(a, static), *rest), mesh=mesh,
                         in_specs=(PartitionSpec(), *in_specs), out_specs=out_specs, check_vma=False)(arrays, *args)


def over_observations(mesh: Mesh, local, model, replicated_args: tuple, per_obs, per_obs_out: tuple[bool, ...]):
    """``local(model, *replicated_args, per_obs_share)`` on every device of ``mesh``, each with its share
    of ``per_obs`` (arrays with the observations on axis 0); outputs flagged in ``per_obs_out`` are
    per-observation (concatenated over the devices), the others must be the same on every device
    (``local`` reduces them with ``psum`` over ``AXIS``)."""
    spec = PartitionSpec(AXIS)
    out_specs = tuple(spec if per else PartitionSpec() for per in per_obs_out)
    in_specs = (*(PartitionSpec() for _ in replicated_args), spec)
    return _shard_map(mesh, local, model, (*replicated_args, per_obs), in_specs, out_specs)


def over_members(mesh: Mesh | None, forecast_one, ensemble, model, *, member_axis_out: int = 0):
    """``jax.vmap(lambda v: forecast_one(model, v))(ensemble)``, on a mesh (``for_members`` decides
    whether) with the members split over its devices; ``member_axis_out`` is where the member axis is
    in the output."""
    def run(m, ens):
        return jax.vmap(lambda v: forecast_one(m, v), out_axes=member_axis_out)(ens)

    if size(mesh) == 1:
        return run(model, ensemble)
    return _shard_map(mesh, run, model, (ensemble,), (PartitionSpec(AXIS),),
                      PartitionSpec(*([None] * member_axis_out), AXIS))


def to_global(x, sharding: NamedSharding):
    """A host (or single-device) array as a ``jax.Array`` laid out as ``sharding`` on its mesh, which
    may span processes (every process holds the same host values; each places its own shards)."""
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

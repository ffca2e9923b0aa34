"""The first guess of a cold start: an ensemble spun up from the model's own start (or, in latent
mode, from the surrogate's origin), or a given ensemble forecast to the first window."""

from __future__ import annotations


import numpy as np

from levda_cli.io.observations import format_seconds as _iso
from levda_cli.errors import ConfigError



def initial_ensemble(spec, setup, cfg, key, dtype, spinup=None):
    """The first guess: members from the model's own start (free runs ``ensemble.spinup`` long; in
    latent mode from the surrogate's origin to the first window), each with parameters drawn as
    ``config.initial_draws`` says: estimated ones from their prior, fixed ones (with
    ``ensemble.climatology``) from the model's declared range for the spin-up only, so the members
    carry the climate's variability even when no parameter is estimated."""
    import jax
    import jax.numpy as jnp

    from levda_cli.config import initial_draws
    from levda_cli.core import Problem, propagate

    problem = setup.problem
    n_ens = cfg.ensemble.size
    k1, k2 = jax.random.split(key)
    columns = []
    for i, draw in enumerate(initial_draws(cfg, spec.params, spec.prior)):
        ki = jax.random.fold_in(k2, i)
        if draw[0] == "uniform":
            columns.append(jax.random.uniform(ki, (n_ens,), dtype, draw[1], draw[2]))
        elif draw[0] == "normal":
            columns.append(draw[1] + draw[2] * jax.random.normal(ki, (n_ens,), dtype))
        else:
            columns.append(jnp.full((n_ens,), draw[1], dtype))
    mu_spin = jnp.stack(columns, axis=1)  # every parameter, as each member's spin-up runs it
    estimated = jnp.asarray(problem.estimated, int)
    # the control's parameters: the estimated ones' draws, the others at their fixed value
    mu = jnp.broadcast_to(problem.param_default.astype(dtype), mu_spin.shape)
    if problem.estimated:
        mu = mu.at[:, estimated].set(mu_spin[:, estimated])
    keys = jax.random.split(k1, n_ens)
    x = jax.vmap(lambda m, k: spec.initial_state(m, k, cfg.ensemble.perturbation))(mu_spin, keys).astype(dtype)
    if spinup is None:
        spinup = spec.spinup if cfg.ensemble.spinup is None else cfg.ensemble.spinup
    n_spin = round(spinup / spec.dynamics.dt)
    if n_spin:
        # the spin-up with every member's own parameters (the whole parameter vector estimated for it)
        spin_problem = Problem(problem.dynamics, problem.param_default, tuple(range(mu_spin.shape[1])))
        x = jax.jit(propagate, static_argnums=2)(spin_problem, jnp.concatenate([x, mu_spin], axis=1), n_spin)[-1]
        x = x[:, : x.shape[1] - mu_spin.shape[1]]
    return jnp.concatenate([x, mu[:, estimated]], axis=1) if problem.estimated else x


def given_ensemble(path, spec, setup, clock, n_ens, n_ctrl, control_names, seed=0):
    """A given first guess (``ensemble.initial``), forecast from its valid time to the first window's start."""
    import jax

    from levda_cli.core import propagate
    from levda_cli.io.ensemble import read_initial_ensemble

    ens, valid_s = read_initial_ensemble(path, n_ens, n_ctrl, control_names, seed)
    lead = (clock.start_s - valid_s) / clock.unit_s  # model time units
    steps = lead / spec.dynamics.dt
    if lead < 0 or abs(steps - round(steps)) > 1e-6:
        raise ConfigError(f"initial ensemble {path} is valid at {_iso(valid_s)}; the first window starts at "
                          f"{_iso(clock.start_s)}: it must be at or before it, a whole number of model steps "
                          f"(dt = {spec.dynamics.dt}) earlier")
    if round(steps) == 0:
        return ens
    return np.asarray(jax.jit(propagate, static_argnums=2)(setup.problem, ens, int(round(steps)))[-1])

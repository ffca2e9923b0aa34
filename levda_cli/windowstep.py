"""The compiled window step (analysis and the store's products in one call) and the forecast between
windows, exported once per configuration so a later process (a cron cycle) skips tracing them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np


class Functions(NamedTuple):
    step: Callable
    forward: Callable
    advance: Callable
    chunk: Callable


def window_functions(setup, products=None, cache: tuple[Path | None, str] = (None, "")):
    """The compiled window step ``(background, obs, key, k, search, *extra) -> (analysis on the device, fetch)``,
    ``fetch() -> (result, products)`` on the host, the forecast of an analysis to the next window's
    start ``(ensemble) -> ensemble``, and the forecast across ``n`` windows without observations
    ``(ensemble, n) -> ensemble``, and several windows in one call ``(carry, n_adv, stacked obs, key, ks,
    searches, active, *stacked extra) -> (last analysis, fetch)`` with ``fetch() -> [(result, products)]``.

    ``products(result, *extra)`` (the store's fields and scores) is compiled into the same call as the
    analysis, and everything comes back to the host as one array: one dispatch and one transfer per
    window. The forecast is a program of its own. Feed it the host copy of the analysis (what a
    resumed run reads from the store), not the step's device output: XLA may compute the analysis
    in two fusions rounded differently, and a run split anywhere must give the same bits.

    All are ``compiled.CachedFunction``s of the flat list of arrays (the setup's arrays first, its
    static parts closed over): exported once and kept in ``cache = (folder, key)``, so a later
    process (a cron cycle) does not trace them again; less Python per call than ``eqx.filter_jit``;
    the forecast's last-step selection is inside the compiled call (an eager slice costs more than
    the forecast itself). On a mesh (``setup.mesh``) they run under ``jax.jit`` with arguments placed
    on it and results replicated (``CachedFunction``)."""
    import dataclasses
    import types

    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from levda_cli.compiled import CachedFunction, signature
    from levda_cli.core import advance_windows, analyse_window, forecast_ensemble
    from levda_cli.core.sharding import replicated, to_global

    arrays, static = eqx.partition(setup, eqx.is_array)
    rep = None if setup.mesh is None else replicated(setup.mesh)
    # committed once (see CachedFunction.__call__)
    arrays = jax.device_put(arrays, jax.local_devices()[0]) if rep is None else jax.tree.map(lambda a: to_global(a, rep),
                                                                                        arrays)
    array_leaves = jax.tree.leaves(arrays)
    folder, key = cache
    trees: dict[tuple, object] = {}  # signature -> the argument tree (fixed for a run)
    layouts: dict[tuple, list] = {}  # signature -> [(name, offset, size, shape, dtype)], JSON-able

    def results(setup_, bg, wobs, key_, k, search, extra, sig):
        """-> (the analysis, everything the host needs packed into one vector); records the layout."""
        res = analyse_window(setup_, bg, wobs, jax.random.fold_in(key_, k), search)
        named = {f"res.{f.name}": getattr(res, f.name) for f in dataclasses.fields(res)}
        if products is not None:
            named.update({f"prod.{n}": v for n, v in products(res, *extra).items()})
        # Everything the host needs in one array (one transfer instead of one per output).
        layout, at = [], 0
        for name, value in named.items():
            size = int(np.prod(value.shape, dtype=np.int64))
            layout.append([name, at, size, list(value.shape), np.dtype(value.dtype).str])
            at += size
        layouts[sig] = layout
        packed = jnp.concatenate([jnp.ravel(v).astype(bg.dtype) for v in named.values()])
        return res.analysis, packed

    def step(*leaves):
        sig = signature(leaves)
        a, bg, wobs, key_, k, search, *extra = jax.tree.unflatten(trees[sig], leaves)
        return results(eqx.combine(a, static), bg, wobs, key_, k, search, extra, sig)

    def chunk(*leaves):
        """Several windows in one call (``lax.scan``): each forecasts the previous analysis ``n_adv``
        window shifts (0: the carry is already its background) and analyses its observations;
        inactive windows (padding) leave the carry as it is. Every window runs the same compiled
        body, so where a run's calls begin and end does not change a bit."""
        sig = signature(leaves)
        a, carry, n_adv, wobs, key_, ks, searches, active, *extra = jax.tree.unflatten(trees[sig], leaves)
        setup_ = eqx.combine(a, static)

        def analysed(bg, x):
            w, k, search, ex = x
            analysis, packed = results(setup_, bg, w, key_, k, search, ex, sig)
            # the carry read back from the packed copy the host stores (XLA may otherwise compute the analysis
            # in two fusions rounded apart, and a resumed run starts from the stored copy)
            packed = jax.lax.optimization_barrier(packed)
            at = next(at for name, at, *_ in layouts[sig] if name == "res.analysis")
            return packed[at:at + analysis.size].reshape(analysis.shape), packed

        x0 = jax.tree.map(lambda v: v[0], (wobs, ks, searches, extra))
        size = jax.eval_shape(analysed, carry, x0)[1].shape

        def body(ens, x):
            n, on, rest = x
            bg = advance_windows(setup_, ens, n)
            return jax.lax.cond(on, lambda: analysed(bg, rest), lambda: (ens, jnp.zeros(size, carry.dtype)))

        return jax.lax.scan(body, carry, (n_adv, active, (wobs, ks, searches, extra)))

    def unpack(packed, layout):
        return unpack_rows(np.asarray(packed)[None], layout)[0]

    def unpack_rows(rows, layout):
        """Packed results, one window per row -> [(result, products)] per window (views of one array per
        field for all the rows: the per-window cost is a dictionary, not a cast per field)."""
        columns = []
        for name, at, n, shape, dtype in layout:
            kind, _, field = name.partition(".")
            columns.append((kind == "res", field, rows[:, at:at + n].reshape((len(rows), *shape)).astype(dtype, copy=False)))
        out = []
        for i in range(len(rows)):
            res, prod = {}, {}
            for is_res, field, block in columns:
                (res if is_res else prod)[field] = block[i]
            out.append((types.SimpleNamespace(**res), prod))
        return out

    step_c = CachedFunction(step, "window_step", key, folder, layouts, sharding=rep)
    chunk_c = CachedFunction(chunk, "window_chunk", key, folder, layouts, sharding=rep)
    structure = jax.tree.structure(arrays)
    forward_c = CachedFunction(
        lambda *leaves: forecast_ensemble(eqx.combine(jax.tree.unflatten(structure, leaves[:-1]), static),
                                          leaves[-1], setup.n_shift)[-1],
        "forecast", key, folder, sharding=rep)
    advance_c = CachedFunction(
        lambda *leaves: advance_windows(eqx.combine(jax.tree.unflatten(structure, leaves[:-2]), static), *leaves[-2:]),
        "advance", key, folder, sharding=rep)

    def flat(args):
        """The call's flat arguments (the setup's arrays, flattened once above, first) and their signature,
        whose argument tree the traced function unflattens."""
        leaves = [*array_leaves, *jax.tree.leaves(args)]
        sig = signature(leaves)
        if sig not in trees:
            trees[sig] = jax.tree.structure((arrays, *args))
        return leaves, sig

    def run_step(*args):
        """-> (the analysis ensemble on the device, a function giving (result, products) on the host)"""
        leaves, sig = flat(args)
        analysis, packed = step_c(*leaves)
        layout = layouts[sig]
        return analysis, lambda: unpack(packed, layout)

    def run_chunk(carry, n_adv, wobs, key_, ks, searches, active, *extra):
        """Windows stacked along a leading axis -> (the last analysis on the device, a function giving
        [(result, products)] per window on the host, inactive ones left out)."""
        leaves, sig = flat((carry, n_adv, wobs, key_, ks, searches, active, *extra))
        last, packed = chunk_c(*leaves)
        layout = layouts[sig]
        on = np.flatnonzero(np.asarray(active))
        return last, lambda: unpack_rows(np.asarray(packed)[on], layout)

    return Functions(run_step, (lambda ens: forward_c(*array_leaves, ens)),
                     (lambda ens, n: advance_c(*array_leaves, ens, np.int64(n))), run_chunk)


def window_products(to_fields, fields, n_state, members, background, analysis, filtered, truth_start, truth_end,
                     model_sd_start=None, model_sd_end=None):
    """Means and spreads on the output grid, members, and scores against the truth (NaN without
    one) of a window's three ensembles, in one compiled call.

    In latent mode the spreads (fields and ``spread_*``) include the surrogate's own error at that
    time (``model_sd_*``, per field, added in quadrature): the members' spread is the uncertainty of
    the latent state and parameters, and the decoded field is uncertain by the surrogate's error too."""
    import jax
    import jax.numpy as jnp

    from levda_cli.core.diagnostics import crps, rmse, spread

    out, vectors = {}, {}
    zeros = jnp.zeros(len(fields), analysis.dtype)
    model_sd = {"analysis": zeros if model_sd_start is None else model_sd_start,
                "filter": zeros if model_sd_end is None else model_sd_end}
    model_var = {}
    for stage, ens in (("background", background), ("analysis", analysis), ("filter", filtered)):
        stack = jax.vmap(lambda m: to_fields(m[:n_state]))(ens)
        vectors[stage] = jnp.concatenate([stack[f].reshape(ens.shape[0], -1) for f in fields], axis=1)
        if stage != "background":
            model_var[stage] = jnp.concatenate([jnp.full(stack[f][0].size, model_sd[stage][i] ** 2)
                                                for i, f in enumerate(fields)])
        for i, f in enumerate(fields):
            out[f"{f}_{stage}_mean"] = stack[f].mean(axis=0)
            if stage != "background":
                out[f"{f}_{stage}_spread"] = jnp.sqrt(stack[f].var(axis=0, ddof=1) + model_sd[stage][i] ** 2)
            if stage == "analysis" and members:
                out[f"{f}_analysis_members"] = stack[f]
        if stage == "analysis":
            analysis_fields = stack
    out["spread_analysis"] = jnp.sqrt(spread(vectors["analysis"]) ** 2 + model_var["analysis"].mean())
    out["spread_filter"] = jnp.sqrt(spread(vectors["filter"]) ** 2 + model_var["filter"].mean())
    out["rmse_background"] = rmse(vectors["background"], truth_start)
    out["rmse_analysis"] = rmse(vectors["analysis"], truth_start)
    out["crps_analysis"] = crps(vectors["analysis"], truth_start)
    out["rmse_filter"] = rmse(vectors["filter"], truth_end)
    out["spread_skill"] = out["spread_analysis"] / out["rmse_analysis"]
    # the truth's rank among the analysis members, per field, counted over the grid points
    n_ens, at, hist = analysis.shape[0], 0, []
    for f in fields:
        ens_f = analysis_fields[f].reshape(n_ens, -1)
        truth = truth_start[at:at + ens_f.shape[1]]
        counts = jnp.zeros(n_ens + 1, jnp.int32).at[(ens_f < truth[None, :]).sum(axis=0)].add(1)
        hist.append(jnp.where(jnp.isnan(truth).any(), -1, counts))
        at += ens_f.shape[1]
    out["rank_truth"] = jnp.stack(hist)
    return out

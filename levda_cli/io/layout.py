"""The analysis store's schema: every array a window writes, with its dimensions, dtype and meaning.

``analysis_layout`` is what ``AnalysisStore.open_or_create`` builds a new store from; the store
format's version history is in ``io.store``.
"""

from __future__ import annotations

import numpy as np

from levda_cli.io.store import TIME_ATTRS, ArraySpec


def analysis_layout(spec, n_ens: int, n_ctrl: int, est: list[str], members: bool, dtype: str, obs_width: int = 16,
                    relaxation: bool = False):
    grid_dims = spec.grid_dims
    grid_shape = tuple(len(spec.grid[c]) for c in grid_dims)
    scalar = lambda t="f8", **a: ArraySpec((), (), t, a)  # noqa: E731
    specs = {
        "window_index": scalar("i8", long_name="window number k: start = window.start + k * window.shift"),
        "window_start": scalar("i8", long_name="window start (smoother analysis time)", **TIME_ATTRS),
        "window_end": scalar("i8", long_name="window end (filter analysis time)", **TIME_ATTRS),
        "model_time_start": scalar(long_name="window start in model time units"),
        "background": ArraySpec(("member", "ctrl"), (n_ens, n_ctrl), dtype,
                                {"long_name": "background ensemble of the control [state; parameters] at window start"}),
        "analysis": ArraySpec(("member", "ctrl"), (n_ens, n_ctrl), dtype,
                              {"long_name": "analysis (smoother) ensemble of the control at window start"}),
        "filter": ArraySpec(("member", "ctrl"), (n_ens, n_ctrl), dtype,
                            {"long_name": "analysis ensemble propagated to window end (filter)"}),
    }
    for name, text in [
        ("cost_initial", "J at w = 0"), ("cost_final", "J at the minimum"), ("cost_b", "background term at the minimum"),
        ("cost_o", "observation term at the minimum"), ("dfs", "degrees of freedom for signal"),
        ("chi2", "2 Jo / n_obs at the minimum"), ("spread_analysis", "analysis spread at window start (latent mode: "
                                                         "with the surrogate's recorded error in quadrature)"),
        ("spread_filter", "filter spread at window end (latent mode: with the surrogate's error)"),
        ("rmse_background", "background mean RMSE vs truth (over all fields on the output grid)"),
        ("rmse_analysis", "analysis mean RMSE vs truth at window start"),
        ("rmse_filter", "filter mean RMSE vs truth at window end"), ("crps_analysis", "analysis CRPS vs truth"),
    ]:
        specs[name] = scalar(long_name=text)
    specs["seconds"] = scalar(long_name="wall seconds of this window's analysis, compiling included", units="s")
    specs["compile_seconds"] = scalar(long_name="of which JAX tracing and compiling (the first window of a run)",
                                      units="s")
    specs["iterations"] = scalar("i4", long_name="minimiser iterations")
    specs["converged"] = scalar("i1", long_name="1 if an accepted step met solver.tolerance")
    specs["chi2_min"] = scalar(long_name="2 J_min / n_obs with the background term at its curvature, (zeta |w|^2 + "
                               "|d|^2) / n_obs: 1 on average when the background spread and R are right (Talagrand)")
    specs["consistent"] = scalar("i1", long_name="1 if chi2_min lies within solver.consistency_sigmas standard "
                                 "deviations sqrt(2 / n_obs) of 1, else 0")
    specs["diverging"] = scalar("i1", long_name="1 if this window ends a run of solver.divergence_windows windows "
                                "whose innovation ratio is inconsistent (filter divergence)")
    specs["inflation"] = scalar(long_name="adaptive inflation of the background anomalies, 1/sqrt(zeta) of the "
                                "finite-size term (1 with the Gaussian term)")
    specs["innovation_ratio"] = scalar(long_name="|R^-1/2 (y - h(mean_b))|^2 / (n_obs + tr S^T S): 1 when the "
                                       "background spread and R explain o - b")
    if relaxation:  # inflation.rtps = "adaptive"
        specs["relaxation"] = scalar(long_name="RTPS relaxation alpha estimated from this window's innovations (before "
                                     "inflation.rtps_max): 0 when the background spread and R explain o - b")
    specs["spread_skill"] = scalar(long_name="analysis spread / analysis RMSE vs truth (NaN without truth)")
    rank = ("variable", "rank")
    specs["rank_observations"] = ArraySpec(rank, (len(spec.fields), n_ens + 1), "i4", {
        "long_name": "counts of each observation's rank among the background members in observation space, each "
                     "perturbed with the observation's error (all -1 when output.rank_histograms is off)"})
    specs["rank_truth"] = ArraySpec(rank, (len(spec.fields), n_ens + 1), "i4", {
        "long_name": "counts of the truth's rank among the analysis members at the output grid points (all -1 "
                     "without truth)"})
    specs["n_obs"] = scalar("i4", long_name="observations assimilated")
    specs["n_rejected"] = scalar("i4", long_name="observations of this window rejected by QC")
    for name in ("omb_mean", "omb_rms", "oma_mean", "oma_rms"):
        specs[name] = ArraySpec(("variable",), (len(spec.fields),), "f8")
    specs["n_obs_variable"] = ArraySpec(("variable",), (len(spec.fields),), "i4")
    for f in spec.fields:
        for stage in ("background_mean", "analysis_mean", "analysis_spread", "filter_mean", "filter_spread"):
            specs[f"{f}_{stage}"] = ArraySpec(grid_dims, grid_shape, dtype)
        if members:
            specs[f"{f}_analysis_members"] = ArraySpec(("member", *grid_dims), (n_ens, *grid_shape), dtype)
    if est:
        for stage in ("background", "analysis"):
            specs[f"param_{stage}"] = ArraySpec(("member", "param"), (n_ens, len(est)), "f8",
                                                {"long_name": f"{stage} parameters, physical units"})
    obs = ("obs",)
    specs["obs_time"] = ArraySpec(obs, (obs_width,), "i8", dict(TIME_ATTRS))
    for name, t in [("obs_value", "f8"), ("obs_error", "f8"), ("hofx_background", "f8"),
                    ("hofx_analysis", "f8"), ("obs_variable", "i4"), ("qc_flag", "i1")]:
        specs[name] = ArraySpec(obs, (obs_width,), t)
    for c in spec.coords:
        specs[f"obs_{c}"] = ArraySpec(obs, (obs_width,), "f8")
    coords = {"member": np.arange(n_ens), "ctrl": np.arange(n_ctrl), "variable": np.asarray(spec.fields, "<U32"),
              "rank": np.arange(n_ens + 1)}
    coords.update({c: np.asarray(spec.grid[c]) for c in grid_dims})
    if est:
        coords["param"] = np.asarray(est, "<U32")
    return specs, coords

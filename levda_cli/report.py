"""``levda report``: figures and one page about an analysis store, with the numbers they plot.

Every figure is drawn from a table computed here first (``figure_data``); the tables are written
beside the figures as ``report.json`` (strict JSON: NaN as null), so what a figure shows can be
checked, diffed between runs, or plotted again by other tools. The store is only read: no lock is
taken, and a store still being appended to is read up to the windows its consolidated metadata
has committed (``n_windows``), never a half-written one.

The page is ``index.html`` (figures embedded by file name) and the same text as ``report.md``. The
folder is built aside and renamed into place, so an interrupted report leaves the previous one.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
from pathlib import Path

import numpy as np

from levda_cli.errors import ConfigError, StoreError
from levda_cli.io.atomic import replacing
from levda_cli.io.observations import format_time as _iso
from levda_cli.jsonout import dumps, finite

HIST_BINS = 40
SECTION_ROWS = 500  # windows drawn in a 1-D model's site-time section


def open_store(path: Path):
    """The committed windows of a levda analysis store, as an xarray dataset (raw integers: -1 stays -1)."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise StoreError(f"analysis store {path} does not exist (make one with 'levda assimilate')")
    if not path.is_dir():
        raise StoreError(f"{path} is a file, not a Zarr analysis store")
    try:
        ds = xr.open_zarr(path, consolidated=True, mask_and_scale=False)
    except Exception as err:  # zarr raises several types for a damaged or foreign store
        raise StoreError(f"cannot open {path} as a levda analysis store: {type(err).__name__}: {err}") from None
    if ds.attrs.get("title") != "levda analysis store" or "n_windows" not in ds.attrs:
        raise StoreError(f"{path} is not a levda analysis store (no 'levda analysis store' title / n_windows)")
    version = int(ds.attrs.get("levda_store_version", 1))
    if version < 3:
        raise StoreError(f"{path} is a version-{version} store; this levda reads versions 3 and 4")
    n = int(ds.attrs["n_windows"])
    if n == 0:
        raise StoreError(f"{path} holds no committed window yet")
    ds = ds.isel(window=slice(0, n))
    ds.encoding["source"] = str(path)
    return ds


def _read(ds, name):
    from levda_cli.io.trajectories import load_checked

    return np.asarray(load_checked(ds[name], ds.encoding.get("source"), f"'{name}'").values)


def _list(a) -> list:
    return np.asarray(a, float).tolist()


def _unix(times) -> np.ndarray:
    """Datetimes -> whole seconds since 1970 (the truth store's index)."""
    return (np.asarray(times).astype("datetime64[s]") - np.datetime64("1970-01-01T00:00:00", "s")).astype(np.int64)


def _choose(windows: list[int] | None, n: int) -> list[int]:
    """Positions of the map windows: given ones (negative counts from the end), else first, middle, last."""
    if not windows:
        return sorted({0, n // 2, n - 1})
    out = []
    for w in windows:
        if not -n <= w < n:
            raise ConfigError(f"--maps {w}: the store holds {n} window(s) (positions 0..{n - 1}, or -1 for the last)")
        out.append(w % n)
    return sorted(set(out))


def _histogram(values: np.ndarray, edges: np.ndarray) -> list[int]:
    counts, _ = np.histogram(values, edges)
    return counts.astype(int).tolist()


def _truth(ds, fields, grid_shape, truth_path, trajectory):
    """(index seconds -> frame, flat truth vector at a frame, parameter truths) from a truth store."""
    from levda_cli.io.trajectories import open_trajectories, truth_lookup

    truth_ds = open_trajectories(truth_path)
    model = ds.attrs.get("model", "")
    index, at = truth_lookup(truth_ds, fields, trajectory, benchmark=model.split(":")[-1], grid_shape=grid_shape)
    params = {}
    if "param" in ds.coords:
        for p in ds["param"].values.tolist():
            if p in truth_ds and truth_ds[p].ndim == 1 and truth_ds[p].shape[0] > trajectory:
                params[p] = float(truth_ds[p].values[trajectory])
    return index, at, params


def figure_data(ds, truth_path: Path | None = None, truth_trajectory: int = 0, maps: list[int] | None = None) -> dict:
    """The numbers every figure plots, by figure."""
    attrs = ds.attrs
    fields = json.loads(attrs["fields"])
    config = json.loads(attrs.get("config", "{}"))
    sigmas = float(config.get("solver", {}).get("consistency_sigmas", 4.0))
    n = ds.sizes["window"]
    grid_dims = [d for d in ds[f"{fields[0]}_analysis_mean"].dims if d != "window"]
    grid_shape = tuple(ds.sizes[d] for d in grid_dims)
    start = _read(ds, "window_start")
    seconds, end_seconds = _unix(start), _unix(_read(ds, "window_end"))
    out: dict = {
        "store": ds.encoding.get("source"), "model": attrs.get("model"), "mode": attrs.get("mode"),
        "levda_version": attrs.get("levda_version"), "command": attrs.get("command", ""), "n_windows": n,
        "fields": fields, "window_start": [_iso(t) for t in start], "window_index": _read(ds, "window_index").tolist(),
    }

    # -- scores: RMSE and spread per window ------------------------------------------------------------
    scores = {name: _list(_read(ds, name)) for name in ("rmse_background", "rmse_analysis", "rmse_filter",
                                                         "spread_analysis", "spread_filter")}
    scores["source"] = "store"
    truth_params: dict = {}
    if truth_path is not None:
        index, at, truth_params = _truth(ds, fields, grid_shape, truth_path, truth_trajectory)
        # RMSE of each stage's ensemble mean against the given truth, over every field on the grid
        for stage, when in (("background", seconds), ("analysis", seconds), ("filter", end_seconds)):
            means = np.concatenate([_read(ds, f"{f}_{stage}_mean").reshape(n, -1) for f in fields], axis=1)
            rmse = np.full(n, np.nan)
            for i, s in enumerate(when):
                if int(s) in index:
                    rmse[i] = float(np.sqrt(np.mean((means[i] - at(index[int(s)])) ** 2)))
            scores[f"rmse_{stage}"] = _list(rmse)
        scores["source"] = f"truth file {truth_path} (trajectory {truth_trajectory})"
    out["scores"] = scores

    # -- parameters: analysis mean with its spread band, background too, truth if known -------------------
    params = {}
    if "param_analysis" in ds:
        pa, pb = _read(ds, "param_analysis"), _read(ds, "param_background")
        for j, p in enumerate(ds["param"].values.tolist()):
            params[p] = {"analysis_mean": _list(pa[:, :, j].mean(axis=1)),
                         "analysis_spread": _list(pa[:, :, j].std(axis=1, ddof=1)),
                         "background_mean": _list(pb[:, :, j].mean(axis=1)),
                         "background_spread": _list(pb[:, :, j].std(axis=1, ddof=1)),
                         "truth": truth_params.get(p)}
    out["parameters"] = params

    # -- innovations: O-B and O-A per variable, over every assimilated observation ---------------------
    value, var, qc = _read(ds, "obs_value"), _read(ds, "obs_variable"), _read(ds, "qc_flag")
    hb, ha, err = _read(ds, "hofx_background"), _read(ds, "hofx_analysis"), _read(ds, "obs_error")
    used = (qc == 0) & np.isfinite(value) & np.isfinite(hb) & np.isfinite(ha) & (var >= 0)
    innovations = {}
    for i, f in enumerate(fields):
        sel = used & (var == i)
        if not sel.any():
            continue
        omb, oma = (value - hb)[sel], (value - ha)[sel]
        both = np.concatenate([omb, oma])
        low, high = np.percentile(both, [0.5, 99.5])
        if not high > low:
            low, high = low - 0.5, high + 0.5
        edges = np.linspace(low, high, HIST_BINS + 1)
        innovations[f] = {"n": int(sel.sum()), "edges": _list(edges), "omb_counts": _histogram(omb, edges),
                          "oma_counts": _histogram(oma, edges), "omb_mean": float(omb.mean()),
                          "omb_rms": float(np.sqrt(np.mean(omb**2))), "oma_mean": float(oma.mean()),
                          "oma_rms": float(np.sqrt(np.mean(oma**2))),
                          "error_rms": float(np.sqrt(np.mean(err[sel] ** 2)))}
    out["innovations"] = innovations

    # -- the minimiser and the consistency checks per window --------------------------------------------
    n_obs = _read(ds, "n_obs").astype(float)
    checks = {"chi2": _list(_read(ds, "chi2")), "n_obs": n_obs.astype(int).tolist(),
              "iterations": _read(ds, "iterations").astype(int).tolist(),
              "converged": (_read(ds, "converged") == 1).tolist(),
              "band_low": _list(1 - sigmas * np.sqrt(2 / np.maximum(n_obs, 1))),
              "band_high": _list(1 + sigmas * np.sqrt(2 / np.maximum(n_obs, 1))), "consistency_sigmas": sigmas}
    for name in ("chi2_min", "innovation_ratio", "inflation", "relaxation", "spread_skill"):
        checks[name] = _list(_read(ds, name)) if name in ds else None
    for name in ("consistent", "diverging"):
        checks[name] = (_read(ds, name) == 1).tolist() if name in ds else None
    out["checks"] = checks

    # -- rank histograms, summed over the windows that have them -----------------------------------------
    ranks = {}
    for name in ("rank_observations", "rank_truth"):
        if name not in ds:
            continue
        counts = _read(ds, name)  # (window, variable, rank); -1 where not computed
        have = (counts >= 0).all(axis=2)
        ranks[name] = {f: counts[have[:, i], i].sum(axis=0).astype(int).tolist() for i, f in enumerate(fields)
                       if have[:, i].any() and counts[have[:, i], i].sum() > 0}
    out["ranks"] = ranks

    # -- maps (2-D grids) or site-time sections (1-D) ------------------------------------------------------
    if len(grid_dims) == 2:
        chosen = _choose(maps, n)
    else:  # 1-D: a section (window, site) over at most SECTION_ROWS windows spread evenly
        chosen = np.unique(np.linspace(0, n - 1, min(n, SECTION_ROWS)).round().astype(int)).tolist()
    picked = ds.isel(window=chosen)
    size = int(np.prod(grid_shape))
    maps_out: dict = {"dims": grid_dims, "grid": {d: _list(ds[d].values) for d in grid_dims}, "windows": chosen,
                      "fields": {}}
    for i, f in enumerate(fields):
        mean = _read(picked, f"{f}_analysis_mean")
        entry = {"mean": mean.tolist(), "spread": _read(picked, f"{f}_analysis_spread").tolist()}
        if truth_path is not None:
            entry["error"] = [(m - (at(index[int(s)])[i * size:(i + 1) * size].reshape(grid_shape)
                                    if int(s) in index else np.nan)).tolist() for m, s in zip(mean, seconds[chosen])]
        maps_out["fields"][f] = entry
    out["maps"] = maps_out
    out["summary"] = _summary(out)
    return out


def _finite_mean(values) -> float | None:
    a = np.asarray([np.nan if v is None else v for v in values], float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else None


def _summary(data: dict) -> dict:
    s, c = data["scores"], data["checks"]
    n = data["n_windows"]
    out = {
        "windows": n, "first": data["window_start"][0], "last": data["window_start"][-1],
        "observations": int(sum(c["n_obs"])),
        "mean_rmse_analysis": _finite_mean(s["rmse_analysis"]), "mean_rmse_background": _finite_mean(s["rmse_background"]),
        "mean_spread_analysis": _finite_mean(s["spread_analysis"]),
        "unconverged": [i for i, ok in enumerate(c["converged"]) if not ok],
        "inconsistent": [i for i, ok in enumerate(c["consistent"] or []) if not ok],
        "diverging": [i for i, bad in enumerate(c["diverging"] or []) if bad],
        "mean_iterations": _finite_mean(c["iterations"]),
    }
    rm, sp = out["mean_rmse_analysis"], out["mean_spread_analysis"]
    out["spread_skill"] = sp / rm if rm and sp is not None else None
    out["parameters"] = {p: {"estimate": v["analysis_mean"][-1], "spread": v["analysis_spread"][-1],
                             "truth": v["truth"]} for p, v in data["parameters"].items()}
    return out


# -- figures ------------------------------------------------------------------------------------------------
def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("levda report draws with matplotlib, which is not installed: pip install 'levda[plot]'") \
            from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _times(data):
    return np.asarray([np.datetime64(t[:-1]) for t in data["window_start"]]).astype("datetime64[s]").astype(dt.datetime)


def _nan(values):
    return np.asarray([np.nan if v is None else v for v in values], float)


def draw(data: dict, folder: Path) -> list[tuple[str, str]]:
    """Draw every figure of ``data`` into ``folder``; -> [(file name, caption)]."""
    plt = _pyplot()
    t = _times(data)
    figures = []

    def save(fig, name, caption):
        fig.savefig(folder / name, dpi=100, bbox_inches="tight")
        plt.close(fig)
        figures.append((name, caption))

    marker = "o" if len(t) <= 50 else None
    s = data["scores"]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for name, style in (("rmse_background", ":"), ("rmse_analysis", "-"), ("rmse_filter", "--")):
        if np.isfinite(_nan(s[name])).any():
            ax.plot(t, _nan(s[name]), style, marker=marker, ms=3, label=name.replace("_", " "))
    for name, style in (("spread_analysis", "-"), ("spread_filter", "--")):
        ax.plot(t, _nan(s[name]), style, color="grey", marker=marker, ms=3, label=name.replace("_", " "))
    ax.set_ylabel("RMSE / spread")
    ax.set_title(f"Error and spread per window (RMSE from the {s['source'].split(' (')[0]})")
    ax.legend(fontsize=8, ncol=2)
    fig.autofmt_xdate()
    save(fig, "rmse_spread.png", "RMSE of the ensemble mean (needs a truth) and ensemble spread per window, over "
         "every field on the output grid")

    if data["parameters"]:
        params = data["parameters"]
        fig, axes = plt.subplots(len(params), 1, figsize=(9, 2.6 * len(params)), sharex=True, squeeze=False)
        for ax, (p, v) in zip(axes[:, 0], params.items()):
            m, sd = _nan(v["analysis_mean"]), _nan(v["analysis_spread"])
            ax.fill_between(t, m - 2 * sd, m + 2 * sd, alpha=0.25, label="analysis +- 2 spreads")
            ax.plot(t, m, marker=marker, ms=3, label="analysis mean")
            ax.plot(t, _nan(v["background_mean"]), ":", color="grey", label="background mean")
            if v["truth"] is not None:
                ax.axhline(v["truth"], color="k", lw=1, label="truth")
            ax.set_ylabel(p)
        axes[0, 0].legend(fontsize=8)
        axes[0, 0].set_title("Estimated parameters")
        fig.autofmt_xdate()
        save(fig, "parameters.png", "Estimated parameters: analysis mean with a band of two ensemble spreads, the "
             "background mean, and the truth when known")

    if data["innovations"]:
        inn = data["innovations"]
        fig, axes = plt.subplots(1, len(inn), figsize=(4 * len(inn), 3.2), squeeze=False)
        for ax, (f, v) in zip(axes[0], inn.items()):
            edges = np.asarray(v["edges"])
            ax.stairs(v["omb_counts"], edges, label=f"O-B (rms {v['omb_rms']:.3g})")
            ax.stairs(v["oma_counts"], edges, label=f"O-A (rms {v['oma_rms']:.3g})")
            ax.set_title(f"{f}: {v['n']} obs, error rms {v['error_rms']:.3g}", fontsize=9)
            ax.legend(fontsize=7)
        save(fig, "innovations.png", "Histograms of observation minus background (O-B) and minus analysis (O-A) per "
             "variable, over every assimilated observation (central 99 %)")

    c = data["checks"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    ax1.fill_between(t, _nan(c["band_low"]), _nan(c["band_high"]), color="green", alpha=0.15,
                     label=f"consistent (1 +- {c['consistency_sigmas']:g} sd)")
    ax1.plot(t, _nan(c["chi2"]), marker=marker, ms=3, label="chi2 = 2 Jo / n")
    if c["chi2_min"] is not None:
        ax1.plot(t, _nan(c["chi2_min"]), marker=marker, ms=3, label="chi2_min = 2 J_min / n")
    if c["innovation_ratio"] is not None:
        ax1.plot(t, _nan(c["innovation_ratio"]), ":", label="innovation ratio")
    ax1.set_yscale("log")
    ax1.legend(fontsize=8)
    ax1.set_title("Consistency and the minimiser per window")
    ax2.plot(t, c["iterations"], drawstyle="steps-mid", label="iterations")
    bad = [i for i, ok in enumerate(c["converged"]) if not ok]
    if bad:
        ax2.plot(t[bad], np.asarray(c["iterations"])[bad], "rx", label="not converged")
    ax2.set_ylabel("iterations")
    ax2.legend(fontsize=8)
    fig.autofmt_xdate()
    save(fig, "checks.png", "chi2 of the analysis (2 J_o / n and 2 J_min / n, 1 when the spread and the errors are "
         "right), the innovation ratio, and the minimiser's iterations per window")

    for name, what in (("rank_observations", "observations among the background members (each perturbed with R)"),
                       ("rank_truth", "the truth among the analysis members, at the grid points")):
        hist = data["ranks"].get(name)
        if not hist:
            continue
        fig, axes = plt.subplots(1, len(hist), figsize=(3.6 * len(hist), 2.8), squeeze=False)
        for ax, (f, counts) in zip(axes[0], hist.items()):
            counts = np.asarray(counts, float)
            ax.bar(np.arange(len(counts)), counts / counts.sum() * len(counts), width=1.0)
            ax.axhline(1.0, color="k", lw=1)
            ax.set_title(f"{f} ({int(counts.sum())})", fontsize=9)
            ax.set_xlabel("rank")
        axes[0, 0].set_ylabel("relative frequency (1 = flat)")
        save(fig, f"{name}.png", f"Rank histogram of {what}, over all windows: flat when calibrated, U-shaped when "
             "the ensemble is under-dispersive, dome-shaped when over-dispersive")

    m = data["maps"]
    stages = ["mean", "spread"] + (["error"] if any("error" in v for v in m["fields"].values()) else [])
    fields = list(m["fields"])
    if len(m["dims"]) == 2:
        ydim, xdim = m["dims"]
        x, y = np.asarray(m["grid"][xdim]), np.asarray(m["grid"][ydim])
        for r, w in enumerate(m["windows"]):
            fig, axes = plt.subplots(len(fields), len(stages), figsize=(3.6 * len(stages), 3 * len(fields)),
                                     squeeze=False)
            for i, f in enumerate(fields):
                for j, stage in enumerate(stages):
                    a = np.asarray(m["fields"][f][stage][r], float)
                    cmap = "RdBu_r" if stage == "error" else ("viridis" if stage == "spread" else "coolwarm")
                    lim = np.nanmax(np.abs(a)) if stage != "spread" else None
                    im = axes[i, j].pcolormesh(x, y, a, cmap=cmap, shading="auto",
                                               vmin=-lim if lim else None, vmax=lim)
                    fig.colorbar(im, ax=axes[i, j], shrink=0.8)
                    axes[i, j].set_title(f"{f} analysis {stage}", fontsize=9)
                    axes[i, j].set_aspect("equal" if xdim == "x" else "auto")
            fig.suptitle(f"window {data['window_index'][w]} ({data['window_start'][w]})")
            save(fig, f"map_{w}.png", f"Analysis mean, spread{' and error' if 'error' in stages else ''} per field "
                 f"at the start of window {data['window_index'][w]} ({data['window_start'][w]})")
    else:
        (site,) = m["dims"]
        sites = np.asarray(m["grid"][site])
        for f in fields:
            fig, axes = plt.subplots(1, len(stages), figsize=(4 * len(stages), 4), squeeze=False, sharey=True)
            for j, stage in enumerate(stages):
                a = np.asarray(m["fields"][f][stage], float)
                lim = np.nanmax(np.abs(a)) if stage == "error" else None
                im = axes[0, j].pcolormesh(sites, t[m["windows"]], a, shading="auto", cmap="RdBu_r" if stage == "error" else "viridis",
                                           vmin=-lim if lim else None, vmax=lim)
                fig.colorbar(im, ax=axes[0, j])
                axes[0, j].set_title(f"{f} analysis {stage}", fontsize=9)
                axes[0, j].set_xlabel(site)
            save(fig, f"section_{f}.png", f"{f}: analysis mean, spread{' and error' if 'error' in stages else ''} "
                 f"at every site (x) and window start (y)")
    return figures


# -- the page -----------------------------------------------------------------------------------------------
def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return (", ".join(map(str, v[:20])) + (" ..." if len(v) > 20 else "")) if v else "none"
    return str(v)


def _rows(data: dict) -> list[tuple[str, str]]:
    s = data["summary"]
    rows = [("store", str(data["store"])), ("model", f"{data['model']} ({data['mode']})"),
            ("windows", f"{s['windows']}: {s['first']} to {s['last']}"), ("observations assimilated", str(s["observations"])),
            ("mean analysis RMSE", _fmt(s["mean_rmse_analysis"])), ("mean background RMSE", _fmt(s["mean_rmse_background"])),
            ("mean analysis spread", _fmt(s["mean_spread_analysis"])), ("spread / skill", _fmt(s["spread_skill"])),
            ("mean iterations", _fmt(s["mean_iterations"])),
            ("windows not converged", _fmt(s["unconverged"])), ("windows inconsistent (chi2_min)", _fmt(s["inconsistent"])),
            ("windows diverging", _fmt(s["diverging"]))]
    for p, v in s["parameters"].items():
        rows.append((f"parameter {p} (last window)", f"{_fmt(v['estimate'])} +- {_fmt(v['spread'])}"
                     + (f" (truth {_fmt(v['truth'])})" if v["truth"] is not None else "")))
    rows.append(("levda", f"{data['levda_version']}: {data['command']}"))
    return rows


def page_html(data: dict, figures) -> str:
    e = html.escape
    table = "\n".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _rows(data))
    figs = "\n".join(f'<figure><img src="{e(n)}" alt="{e(n)}"><figcaption>{e(c)}</figcaption></figure>'
                     for n, c in figures)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>levda report: {e(str(data['store']))}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}th{{text-align:left;padding-right:1em}}
figure{{margin:1.5em 0}}img{{max-width:100%}}figcaption{{color:#444;font-size:90%}}</style></head>
<body><h1>levda report</h1>
<table>{table}</table>
<p>The numbers in every figure: <a href="report.json">report.json</a>.</p>
{figs}
</body></html>
"""


def page_markdown(data: dict, figures) -> str:
    lines = ["# levda report", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in _rows(data)]
    lines += ["", "The numbers in every figure: `report.json`.", ""]
    for name, caption in figures:
        lines += [f"![{name}]({name})", "", caption, ""]
    return "\n".join(lines)


def write_report(store: Path, out: Path, truth: Path | None = None, truth_trajectory: int = 0,
                 maps: list[int] | None = None) -> dict:
    """Read ``store``, draw, and write the report folder ``out`` (replacing a previous report there)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StoreError(f"{out} is a file; --out names a folder for the report")
    if not out.parent.is_dir():
        raise StoreError(f"cannot create {out}: the folder {out.parent} does not exist")
    ds = open_store(store)
    data = figure_data(ds, truth, truth_trajectory, maps)
    _pyplot()  # refuse before any work is written when matplotlib is missing
    with replacing(out) as tmp:
        tmp.mkdir()
        figures = draw(data, tmp)
        data["figures"] = [{"file": n, "caption": c} for n, c in figures]
        (tmp / "report.json").write_text(dumps(data))
        (tmp / "index.html").write_text(page_html(data, figures))
        (tmp / "report.md").write_text(page_markdown(data, figures))
    return {"report": str(out), "files": ["index.html", "report.md", "report.json", *(n for n, _ in figures)],
            "summary": finite(data["summary"])}

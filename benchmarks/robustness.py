"""Bad and unusual inputs through the real CLI (subprocesses), and SIGKILL at random points of a run.

    python benchmarks/robustness.py [--jobs 2] [--kills 15] [--only CLASS] [--out benchmarks/results/robustness.md]

Part 1 runs every case of ``tests/hostile.py`` (about 300: CSV bytes and encodings, times,
values, flat NetCDF, IODA, configs, checkpoints, stores) as ``python -m levda_cli ...`` with a
timeout, and counts by class: passed, tracebacks, hangs, silent acceptances, wrong exit codes,
valid inputs refused, messages that do not name the item.

Part 2 starts a long Lorenz-96 assimilation, kills it with SIGKILL at random moments, checks
that the store opens with xarray after every kill, resumes it each time, and compares the
final store with one uninterrupted run (bitwise on the analysis ensembles).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import hostile  # noqa: E402

LEVDA = [sys.executable, "-m", "levda_cli"]


def env(cache: Path) -> dict:
    e = dict(os.environ)
    e["LEVDA_CACHE_DIR"] = str(cache)
    e.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    e["PYTHONWARNINGS"] = "ignore"
    return e


def run_case(case, root: Path, environ: dict, timeout: float):
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([*LEVDA, *case.args], cwd=root, env=environ, capture_output=True, text=True,
                              timeout=timeout, errors="replace")
        code, output, timed_out = proc.returncode, proc.stdout + proc.stderr, False
    except subprocess.TimeoutExpired as err:
        code, output, timed_out = -9, str(err.stderr or ""), True
    return case, code, output, timed_out, time.perf_counter() - t0


def part_inputs(root: Path, environ: dict, jobs: int, timeout: float, only: str | None):
    cases = hostile.build(root, lambda args, cwd: subprocess.run([*LEVDA, *args], cwd=cwd, env=environ).returncode)
    if hostile.permissions_apply():
        hostile.prepare_permissions(root)
    else:
        cases = [c for c in cases if "read-only" not in c.name]
    if only:
        cases = [c for c in cases if c.cls == only]
    results = []
    try:
        with cf.ThreadPoolExecutor(jobs) as pool:
            for case, code, output, timed_out, secs in pool.map(lambda c: run_case(c, root, environ, timeout), cases):
                verdict = hostile.judge(case, code, output, timed_out)
                results.append((case, code, verdict, secs, output))
                mark = "ok " if verdict == "pass" else "BAD"
                print(f"{mark} [{case.cls}] {case.name}: exit {code} ({verdict}, {secs:.1f} s)", flush=True)
    finally:
        hostile.undo_permissions(root)
    return results


def part_kills(root: Path, environ: dict, kills: int, seed: int = 0):
    """SIGKILL a long run at random moments; every store must open; the resumed store must equal a whole run."""
    import xarray as xr

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    args = ["assimilate", str(REPO / "sample_data" / "lorenz96_obs.csv"), "--model", "lorenz96", "-c",
            str(REPO / "configs" / "lorenz96.toml"), "-q", "--set", "output.commit_seconds=0"]
    t0 = time.perf_counter()
    subprocess.run([*LEVDA, *args, "--out", "whole.zarr"], cwd=root, env=environ, check=True)
    whole_s = time.perf_counter() - t0
    whole = xr.open_zarr(root / "whole.zarr")
    log = []
    for i in range(kills):
        # short runs (start-up is about 3 s): the kills fall all along the run, not after its end
        delay = float(rng.uniform(1.0, max(2.0, whole_s / 5)))
        proc = subprocess.Popen([*LEVDA, *args, "--out", "killed.zarr"], cwd=root, env=environ,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=delay)
            finished = True
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            finished = False
        opens, n, prefix = True, 0, True
        if (root / "killed.zarr").exists():
            try:
                part = xr.open_zarr(root / "killed.zarr")
                n = int(part.sizes["window"])
                prefix = all(np.array_equal(part[v].values, whole[v].values[:n], equal_nan=True)
                             for v in ("analysis", "filter", "x_analysis_mean"))
            except Exception as err:  # noqa: BLE001 - recorded, not raised
                opens = False
                print(f"kill {i}: store does not open: {err}")
        log.append({"kill": i, "after_s": round(delay, 2), "finished": finished, "opens": opens, "windows": n,
                    "prefix_equal": prefix})
        print(f"kill {i} after {delay:.1f} s: windows {n}, opens {opens}, equal prefix {prefix}, finished {finished}",
              flush=True)
    final = subprocess.run([*LEVDA, *args, "--out", "killed.zarr"], cwd=root, env=environ)
    resumed = xr.open_zarr(root / "killed.zarr")
    same = {name: bool(np.array_equal(resumed[name].values, whole[name].values, equal_nan=True))
            for name in ("analysis", "filter", "background", "cost_final", "x_analysis_mean")}
    return {"whole_s": whole_s, "kills": log, "final_exit": final.returncode, "windows": int(resumed.sizes["window"]),
            "whole_windows": int(whole.sizes["window"]), "equal": same}


def write_report(path: Path, results, kills, seconds: float, baseline: Path | None = None) -> None:
    by_class = collections.OrderedDict()
    for case, _code, verdict, _secs, _ in results:
        by_class.setdefault(case.cls, collections.Counter())[verdict] += 1
    verdicts = ["pass", "traceback", "hang", "silent acceptance", "wrong code", "refused valid",
                "message does not name the item"]
    lines = [
        "# Robustness: bad inputs and kills through the CLI",
        "",
        f"`python benchmarks/robustness.py` on {platform.node() or 'this machine'} ({os.cpu_count()} CPUs, "
        f"{platform.machine()}, Python {platform.python_version()}), {time.strftime('%Y-%m-%d')}; "
        f"{seconds:.0f} s in all. Each case is a real `python -m levda_cli` subprocess "
        "(cases in `tests/hostile.py`; the same cases run in-process in `tests/test_hostile.py`).",
        "",
        f"## Bad and unusual inputs: {len(results)} cases",
        "",
        "| class | cases | " + " | ".join(verdicts) + " |",
        "|" + "---|" * (len(verdicts) + 2),
    ]
    for cls, counts in by_class.items():
        lines.append(f"| {cls} | {sum(counts.values())} | " + " | ".join(str(counts.get(v, 0)) for v in verdicts)
                     + " |")
    total = collections.Counter()
    for counts in by_class.values():
        total.update(counts)
    lines.append(f"| **all** | {sum(total.values())} | " + " | ".join(str(total.get(v, 0)) for v in verdicts) + " |")
    codes = collections.Counter(code for _, code, _, _, _ in results)
    lines += ["", "Exit codes seen: " + ", ".join(f"{c}: {n}" for c, n in sorted(codes.items())) + ".", ""]
    if baseline is not None and baseline.exists():
        table = [ln for ln in baseline.read_text().splitlines() if ln.startswith("|")]
        lines += [f"The same cases through an earlier levda (report `{baseline.name}`, run with `--baseline`; "
                  "exit -9 is a case killed at the timeout, a hang):", "", *table, ""]
        seen = [ln for ln in baseline.read_text().splitlines() if ln.startswith("Exit codes seen")]
        lines += [*seen, ""]
    bad = [(c, code, v, out) for c, code, v, _, out in results if v != "pass"]
    if bad:
        lines += ["### Cases that did not pass", ""]
        for c, code, v, out in bad:
            text = [ln for ln in out.strip().splitlines() if ln.strip() and "internal error" not in ln
                    and "traceback above" not in ln]
            last = (text[-1:] or [""])[0].replace("`", "'")
            lines.append(f"- [{c.cls}] {c.name}: exit {code}, {v}: `{last[:160]}`")
        lines.append("")
    if kills:
        lines += [
            f"## SIGKILL at {len(kills['kills'])} random moments of a {kills['whole_windows']}-window Lorenz-96 run",
            "",
            f"The uninterrupted run took {kills['whole_s']:.1f} s (commit after every window). The same command was "
            "started, killed with SIGKILL after a random delay, and started again, over and over; after every "
            "kill the store was opened with `xarray.open_zarr`.",
            "",
            "| kill | after (s) | windows in store | store opens | committed windows equal the uninterrupted run's |",
            "|---|---|---|---|---|",
        ]
        for k in kills["kills"]:
            lines.append(f"| {k['kill']} | {k['after_s']} | {k['windows']}{' (finished)' if k['finished'] else ''} | "
                         f"{'yes' if k['opens'] else 'NO'} | {'yes' if k['prefix_equal'] else 'NO'} |")
        lines += ["", f"Final resume: exit {kills['final_exit']}, {kills['windows']} windows "
                  f"(uninterrupted: {kills['whole_windows']}). Bitwise equal to the uninterrupted run: "
                  + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in kills["equal"].items()) + ".", ""]
    path.write_text("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--kills", type=int, default=15)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--only", default=None, help="run one class of cases")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "robustness.md")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a report of the same cases by another levda version (run with PYTHONPATH pointing at it), "
                         "whose table is copied into this one for comparison")
    a = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="levda-robust-") as tmp:
        root = Path(tmp)
        environ = env(root / "cache")
        results = part_inputs(root / "inputs", environ, a.jobs, a.timeout, a.only)
        kills = part_kills(root / "kills", environ, a.kills) if a.kills else None
    write_report(a.out, results, kills, time.perf_counter() - t0, a.baseline)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

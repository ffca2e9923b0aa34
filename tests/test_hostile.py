"""Every case of the hostile-input collection (tests/hostile.py) through the CLI, in-process.

A case passes when a valid-but-unusual input exits 0, and an invalid one exits with its code
(2 usage/config, 3 observations, 4 checkpoint, 5 store) and a message naming the file or item:
never a traceback (exit 1), a hang, or a silent exit 0. ``benchmarks/robustness.py`` runs the
same cases as real subprocesses and counts them.
"""

import os
import signal

import pytest
from typer.testing import CliRunner

import hostile
from levda_cli.cli.main import app

CLASSES = ["bytes and encodings", "times", "values and records", "NetCDF (flat)", "IODA", "configs", "checkpoints",
           "stores and output", "other commands"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, cli_env):
    root = tmp_path_factory.mktemp("hostile")
    runner = CliRunner()
    old = os.getcwd()

    def run(args, cwd):
        os.chdir(cwd)
        try:
            return runner.invoke(app, args, env={"LEVDA_CACHE_DIR": cli_env["LEVDA_CACHE_DIR"]}).exit_code
        finally:
            os.chdir(old)

    cases = hostile.build(root, run)
    if hostile.permissions_apply():
        hostile.prepare_permissions(root)
    else:  # root ignores permissions: those cases are tested with a simulated OSError in test_faults.py
        cases = [c for c in cases if "read-only" not in c.name]
    yield root, cases
    hostile.undo_permissions(root)


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang("no answer after 120 s")


@pytest.mark.parametrize("cls", CLASSES)
def test_every_bad_input_is_refused_cleanly(corpus, cls, monkeypatch, cli_env):
    root, cases = corpus
    mine = [c for c in cases if c.cls == cls]
    assert mine, f"no cases of class {cls}"
    monkeypatch.chdir(root)
    runner = CliRunner()
    failures = []
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for case in mine:
            signal.alarm(120)
            try:
                result = runner.invoke(app, case.args, env={"LEVDA_CACHE_DIR": cli_env["LEVDA_CACHE_DIR"]})
                output, code, hung = result.output, result.exit_code, isinstance(result.exception, _Hang)
            finally:
                signal.alarm(0)
            verdict = hostile.judge(case, code, output, hung)
            if verdict != "pass":
                failures.append(f"{case.name}: exit {code}, {verdict}\n    {output.strip()[-400:]}")
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not failures, f"{len(failures)} of {len(mine)} cases failed:\n" + "\n".join(failures)

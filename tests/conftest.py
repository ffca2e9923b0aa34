import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory):
    """Environment for CLI subprocesses: a shared compilation cache, few threads."""
    env = dict(os.environ)
    env["LEVDA_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax-cache"))
    env.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    env["PYTHONWARNINGS"] = "error::DeprecationWarning:levda_cli"
    return env


@pytest.fixture(scope="session")
def strict_summary():
    """``strict_summary(text, command) -> dict``: parse a --json summary strictly (no NaN/Infinity) and
    validate it against the schema levda ships (levda_cli/schemas/<command>-summary.schema.json)."""
    import importlib.resources
    import json

    import jsonschema

    from clirun import strict_json

    def check(text: str, command: str) -> dict:
        data = strict_json(text)
        schema = json.loads((importlib.resources.files("levda_cli") / "schemas"
                             / f"{command}-summary.schema.json").read_text())
        jsonschema.validate(data, schema, format_checker=jsonschema.FormatChecker())
        return data

    return check

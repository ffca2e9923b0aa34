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

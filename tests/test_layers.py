"""The numerical core and the physics import no I/O, CLI or config library; --help imports no JAX."""

import subprocess
import sys


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_core_and_physics_are_pure():
    loaded = _loaded_after("import levda_cli.core, levda_cli.physics, levda_cli.physics.sphere, "
                           "levda_cli.physics.kolmogorov, levda_cli.physics.tsunami, levda_cli.core.surrogate")
    forbidden = {"xarray", "zarr", "netCDF4", "typer", "rich", "pydantic", "click"}  # (JAX itself loads filelock)
    assert not (loaded & forbidden)
    # nor anything of levda's own layers above them (errors, io, config, CLI, the window loop)
    own = {m for m in loaded if m.startswith("levda_cli.")}
    assert all(m.startswith(("levda_cli.core", "levda_cli.physics")) for m in own), sorted(own)


def test_cli_entry_does_not_import_jax():
    loaded = _loaded_after("import levda_cli.cli.main")
    assert "jax" not in loaded


def test_observation_io_has_no_import_circle():
    """The record set and CSV/NetCDF readers know nothing of IODA; obsfiles picks between them."""
    assert "levda_cli.io.ioda" not in _loaded_after("import levda_cli.io.observations")
    assert "levda_cli.io.obsfiles" not in _loaded_after("import levda_cli.io.ioda")


def test_one_registry_of_models(tmp_path):
    """Every command, the config and the help texts read the registry: a new entry is known everywhere."""
    from levda_cli.config import AssimilateConfig, ConfigError, load_config
    from levda_cli.models import model_spec
    from levda_cli.registry import BENCHMARKS, Benchmark, register

    helps = {cmd: subprocess.run([sys.executable, "-m", "levda_cli", *cmd.split(), "--help"], capture_output=True, text=True,
                                 env={"COLUMNS": "300", "PATH": ""}).stdout
             for cmd in ("simulate", "assimilate", "obs check")}
    for name in BENCHMARKS:
        assert all(name in text for text in helps.values()), name
    try:
        register(Benchmark("lorenz96_small", "Lorenz-96 under another name", "levda_cli.models:lorenz96_spec",
                           default_dt=0.05))
        cfg = load_config(AssimilateConfig, None, ['model.name="lorenz96_small"', "model.size=8"])
        assert cfg.model.spec().dynamics.n_state == 8
    finally:
        BENCHMARKS.pop("lorenz96_small", None)
    try:
        load_config(AssimilateConfig, None, ['model.name="lorenz63"'])
    except ConfigError as err:
        assert "unknown model 'lorenz63'" in str(err) and "sphere" in str(err)
    else:
        raise AssertionError("an unknown model was accepted")
    assert model_spec("lorenz96").name == "lorenz96"


def test_window_loop_store_schema_and_first_guess_live_apart():
    assert "jax" not in _loaded_after("import levda_cli.io.layout")
    loaded = _loaded_after("import levda_cli.firstguess, levda_cli.windowstep, levda_cli.jaxsetup")
    assert not {"levda_cli.cycling", "levda_cli.io.store", "zarr", "xarray"} & loaded

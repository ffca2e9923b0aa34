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

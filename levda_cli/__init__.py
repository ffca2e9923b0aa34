"""levda: latent ensemble-variational data assimilation from the command line."""

__version__ = "0.14.0"  # the package's version (pyproject.toml reads it from here)

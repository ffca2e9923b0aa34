"""levda: latent ensemble-variational data assimilation from the command line."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("levda")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

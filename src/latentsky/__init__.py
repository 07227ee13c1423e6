"""latentsky: survey data to released catalogs with deep generative models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("latentsky")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

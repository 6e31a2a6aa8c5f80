"""synthscan: synthetic whole-body bone scintigraphy for nuclear-medicine AI research."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("synthscan")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

"""greenops-lint: find the code in ML projects that wastes GPU time, energy and CO2e."""

__version__ = "0.1.0"

from greenops_lint.hookspecs import hookimpl  # noqa: E402  (the marker rule packs use)

__all__ = ["__version__", "hookimpl"]

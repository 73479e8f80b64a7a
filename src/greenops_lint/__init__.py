"""greenops-lint: find the code in ML projects that wastes GPU time, energy and CO2e."""

__version__ = "0.1.0"

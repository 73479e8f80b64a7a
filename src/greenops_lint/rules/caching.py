"""Rules of the caching family (in progress)."""

RULES: list = []

"""Rules of the efficiency family (in progress)."""

RULES: list = []

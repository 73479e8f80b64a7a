"""Rules of the unused family (in progress)."""

RULES: list = []

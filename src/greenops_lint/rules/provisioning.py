"""Rules of the provisioning family (in progress)."""

RULES: list = []

"""A JSON array of findings, in the shape documented in DESIGN.md."""

from __future__ import annotations

import json


def format_findings(findings, rules) -> str:
    return json.dumps([f.to_json() for f in findings], indent=2) + "\n"

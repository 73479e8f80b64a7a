"""SARIF 2.1.0, as GitHub code scanning accepts it."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePath

from greenops_lint import __version__

_LEVELS = {"error": "error", "warning": "warning", "info": "note"}
SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
HELP_URI = "https://github.com/greenops-lint/greenops-lint/blob/main/rules/{code}.md"


def _rule_descriptor(rule) -> dict:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary()},
        "fullDescription": {"text": rule.section("What it does") or rule.summary()},
        "help": {"text": rule.section("Fix") or rule.summary(), "markdown": rule.section("Fix") or rule.summary()},
        "helpUri": HELP_URI.format(code=rule.code),
        "defaultConfiguration": {"level": _LEVELS.get(rule.severity, "warning"), "enabled": rule.default_enabled},
        "properties": {"family": rule.family, "tags": ["greenops", rule.family]},
    }


def artifact_uri(path: str) -> str:
    """Relative to the working directory (the repository root in CI) when possible."""
    if os.path.isabs(path):
        relative = os.path.relpath(path)
        if relative.startswith(".."):
            return Path(path).as_uri()
        path = relative
    return PurePath(path).as_posix()


def format_findings(findings, rules) -> str:
    codes = sorted({f.code for f in findings})
    index = {code: i for i, code in enumerate(codes)}
    descriptors = [_rule_descriptor(rules[c]) if c in rules else {"id": c} for c in codes]
    results = []
    for f in findings:
        result = {
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": _LEVELS.get(f.severity, "warning"),
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": artifact_uri(f.path)},
                        "region": {
                            "startLine": f.line,
                            "startColumn": f.column,
                            "endLine": f.end_line,
                            "endColumn": f.end_column,
                        },
                    }
                }
            ],
        }
        properties = {}
        if f.estimate is not None:
            properties["estimate"] = f.estimate.to_json()
        if f.cell is not None:
            # The region's lines count from the top of the notebook cell.
            properties["cell"] = f.cell
            result["message"]["text"] = f"(cell {f.cell}, line {f.line}) {f.message}"
        if properties:
            result["properties"] = properties
        results.append(result)
    document = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "greenops-lint",
                        "version": __version__,
                        "informationUri": "https://github.com/greenops-lint/greenops-lint",
                        "rules": descriptors,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"

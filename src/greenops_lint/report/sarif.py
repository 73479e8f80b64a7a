"""SARIF 2.1.0, as GitHub code scanning accepts it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePath
from typing import Optional
from urllib.parse import quote

from greenops_lint import __version__
from greenops_lint.report.sources import lines_of
from greenops_lint.source import SourceError, read_bytes

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


SRCROOT = "%SRCROOT%"
FINGERPRINT_KEY = "greenopsLint/v1"


def artifact_location(path: str) -> dict:
    """A percent-encoded URI relative to `%SRCROOT%` (the working directory: the
    repository root in CI), or an absolute `file:` URI for a path outside it."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    if relative.startswith(".."):
        return {"uri": Path(absolute).as_uri()}
    return {"uri": quote(PurePath(relative).as_posix(), safe="/"), "uriBaseId": SRCROOT}


def artifact_uri(path: str) -> str:
    return artifact_location(path)["uri"]


def _fingerprint(finding, seen: dict) -> str:
    """Stable across commits that move the code: the rule, the file, the text of
    the flagged line (whitespace-normalised) and which occurrence of that it is."""
    lines = lines_of(finding.path, finding.cell)
    text = " ".join(lines[finding.line - 1].split()) if 1 <= finding.line <= len(lines) else ""
    base = (finding.code, artifact_uri(finding.path), finding.cell or 0, text)
    seen[base] = seen.get(base, 0) + 1
    digest = hashlib.sha256(repr((*base, seen[base])).encode("utf-8")).hexdigest()
    return f"{digest[:32]}:{seen[base]}"


def _notebook_region(finding) -> Optional[dict]:
    """The region in the .ipynb file's own text where the cell's source line is
    (code scanning shows the raw file), or None when it cannot be located."""
    try:
        raw = read_bytes(finding.path).decode("utf-8-sig")
        cells = json.loads(raw)["cells"]
    except (SourceError, ValueError, KeyError, TypeError):
        return None
    cursor = 0
    for number, cell in enumerate(cells, start=1):
        source = cell.get("source", "") if isinstance(cell, dict) else ""
        pieces = [p for p in (source if isinstance(source, list) else [source]) if isinstance(p, str)]
        lines_before = 0
        for piece in pieces:
            found = _find_json_string(raw, piece, cursor)
            if found is None:
                return None
            position, encoded = found
            cursor = position + len(encoded)
            inside = piece.splitlines() or [""]
            index = finding.line - 1 - lines_before
            lines_before += piece.count("\n")
            if number != finding.cell or not 0 <= index < len(inside):
                continue
            line = inside[index]
            prefix = "".join(piece.splitlines(keepends=True)[:index])
            quote_column = position - (raw.rfind("\n", 0, position) + 1)  # 0-based
            end = finding.end_column if finding.end_line == finding.line else len(line) + 1
            start_column = quote_column + len(_encode(prefix + line[: finding.column - 1], encoded))
            end_column = quote_column + len(_encode(prefix + line[: max(end, finding.column + 1) - 1], encoded))
            start_line = raw.count("\n", 0, position) + 1
            return {
                "startLine": start_line,
                "startColumn": start_column,
                "endLine": start_line,
                "endColumn": end_column,
            }
    return None


def _encode(text: str, like: str) -> str:
    return json.dumps(text, ensure_ascii=not _non_ascii(like))


def _non_ascii(encoded: str) -> bool:
    return any(ord(c) > 127 for c in encoded)


def _find_json_string(raw: str, piece: str, start: int) -> Optional[tuple[int, str]]:
    for ascii_only in (False, True):
        encoded = json.dumps(piece, ensure_ascii=ascii_only)
        position = raw.find(encoded, start)
        if position >= 0:
            return position, encoded
    return None


def format_findings(findings, rules) -> str:
    codes = sorted({f.code for f in findings})
    index = {code: i for i, code in enumerate(codes)}
    descriptors = [_rule_descriptor(rules[c]) if c in rules else {"id": c} for c in codes]
    results = []
    seen: dict = {}
    for f in findings:
        result = {
            "ruleId": f.code,
            "ruleIndex": index[f.code],
            "level": _LEVELS.get(f.severity, "warning"),
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": artifact_location(f.path),
                        "region": {
                            "startLine": f.line,
                            "startColumn": f.column,
                            "endLine": f.end_line,
                            "endColumn": f.end_column,
                        },
                    }
                }
            ],
            "partialFingerprints": {FINGERPRINT_KEY: _fingerprint(f, seen)},
        }
        properties = {}
        if f.estimate is not None:
            properties["estimate"] = f.estimate.to_json()
        if f.cell is not None:
            # Code scanning shows the raw .ipynb: the region points at the JSON
            # string holding the cell's line (the whole file when not found).
            properties["cell"] = f.cell
            properties["cellRegion"] = {
                "startLine": f.line,
                "startColumn": f.column,
                "endLine": f.end_line,
                "endColumn": f.end_column,
            }
            region = _notebook_region(f)
            physical = result["locations"][0]["physicalLocation"]
            if region is not None:
                physical["region"] = region
            else:
                del physical["region"]
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
                "originalUriBaseIds": {SRCROOT: {"uri": Path.cwd().as_uri() + "/"}},
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"

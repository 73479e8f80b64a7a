"""benchmarks/triage.csv, the verdicts on sampled real-code findings, is well-formed.

Rows come from `python benchmarks/real_corpus.py` (its seeded sample), judged by reading the code.
Not yet required: that every rule has rows (some rules have no finding on the corpus).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from greenops_lint.plugins import load_rules

TRIAGE = Path(__file__).resolve().parent.parent / "benchmarks" / "triage.csv"
HEADER = ["round", "package", "version", "path", "line", "code", "verdict", "reason"]
ROUNDS = {"before", "after"}
VERDICTS = {"TRUE", "FALSE", "DEBATABLE"}
# `after,,,,,GO104,NONE,"no finding on the 28-wheel corpus"`: a rule the corpus never triggers.
NONE_VERDICT = "NONE"


def _rows() -> list[dict[str, str]]:
    with TRIAGE.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        assert header == HEADER, f"header is {header}, expected {HEADER}"
        rows = []
        for number, values in enumerate(reader, start=2):
            assert len(values) == len(HEADER), f"line {number}: {len(values)} columns, expected {len(HEADER)}"
            rows.append(dict(zip(HEADER, values), _line=str(number)))
        return rows


def test_triage_has_rows():
    assert _rows(), "benchmarks/triage.csv has no verdicts"


@pytest.mark.parametrize("row", _rows(), ids=lambda r: f"line{r['_line']}-{r['code']}")
def test_triage_row_is_well_formed(row):
    where = f"triage.csv line {row['_line']}"
    assert row["round"] in ROUNDS, f"{where}: round {row['round']!r} not in {sorted(ROUNDS)}"
    if row["verdict"] == NONE_VERDICT:
        assert row["code"] in load_rules().rules, f"{where}: {row['code']} is not a registered rule"
        assert not (row["package"] or row["version"] or row["path"] or row["line"]), f"{where}: a NONE row names no finding"
        assert row["reason"].strip(), f"{where}: the reason is required"
        return
    assert row["verdict"] in VERDICTS, f"{where}: verdict {row['verdict']!r} not in {sorted(VERDICTS)}"
    assert row["code"] in load_rules().rules, f"{where}: {row['code']} is not a registered rule"
    assert row["package"].strip() and row["version"].strip(), f"{where}: package and version are required"
    assert row["path"].strip(), f"{where}: empty path"
    assert not row["path"].startswith("/"), f"{where}: path must be relative to the wheel's root"
    assert re.fullmatch(r"[1-9][0-9]*", row["line"]), f"{where}: line {row['line']!r} is not a positive integer"
    reason = row["reason"].strip()
    assert reason and "\n" not in reason, f"{where}: the reason is one non-empty line"


def test_triage_rows_are_unique():
    keys = [(r["round"], r["package"], r["version"], r["path"], r["line"], r["code"]) for r in _rows()]
    duplicates = {k for k in keys if keys.count(k) > 1}
    assert not duplicates, f"duplicate triage rows: {sorted(duplicates)[:5]}"

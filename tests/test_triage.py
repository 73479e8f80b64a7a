"""benchmarks/triage.csv, the verdicts on sampled real-code findings, is well-formed.

Rows come from `python benchmarks/real_corpus.py` (its seeded sample), judged by reading the code.
Round `before` is the state this triage started from; round `after` is the current rules. Every
rule has `after` rows (a rule with no finding on the corpus has one `NONE` row), and every rule
that is on by default at warning severity is TRUE on at least 90% of its `after` sample of shown
findings (rows whose reason starts with "info" judge a finding `check` hides by default).

Round `scripts` judges the second corpus (`real_corpus.py --corpus scripts`: training scripts,
recipes and examples shipped in wheels) in one round: a FALSE finding that a rule fix removed
keeps its row, with a reason that starts with "fixed:" (or "info; fixed:"), and does not count
against the rule. There the 90% target applies to rules with at least 5 judged shown findings
of the current rules (fewer say little).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from greenops_lint.plugins import load_rules

TRIAGE = Path(__file__).resolve().parent.parent / "benchmarks" / "triage.csv"
HEADER = ["round", "package", "version", "path", "line", "code", "verdict", "reason"]
ROUNDS = {"before", "after", "scripts"}
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
        assert not (row["package"] or row["version"] or row["path"] or row["line"]), (
            f"{where}: a NONE row names no finding"
        )
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


PRECISION_TARGET = 0.9


def _is_info_row(row: dict[str, str]) -> bool:
    return row["reason"].strip().lower().startswith(("info", "now info", "(info"))


def _is_fixed_row(row: dict[str, str]) -> bool:
    """A FALSE finding that a later rule fix removed (the current rules no longer report it)."""
    return row["reason"].strip().lower().startswith(("fixed:", "info; fixed:"))


def _rows_by_rule(round_name: str) -> dict[str, list[dict[str, str]]]:
    by_rule: dict[str, list[dict[str, str]]] = {}
    for row in _rows():
        if row["round"] == round_name:
            by_rule.setdefault(row["code"], []).append(row)
    return by_rule


def _after_rows_by_rule() -> dict[str, list[dict[str, str]]]:
    return _rows_by_rule("after")


def test_every_rule_is_triaged_on_the_current_rules():
    rules = {code for code, rule in load_rules().rules.items() if rule.family != "core"}
    missing = sorted(rules - set(_after_rows_by_rule()))
    assert not missing, f"rules without `after` rows in triage.csv: {missing}"


# The least judged shown findings of a rule for the target to apply, per round.
MIN_JUDGED = {"after": 1, "scripts": 5}


def _below_target(round_name: str) -> list[str]:
    registry = load_rules().rules
    below = []
    for code, rows in sorted(_rows_by_rule(round_name).items()):
        rule = registry[code]
        judged = [r for r in rows if r["verdict"] != NONE_VERDICT and not _is_info_row(r) and not _is_fixed_row(r)]
        if len(judged) < MIN_JUDGED[round_name] or not rule.default_enabled or rule.severity == "info":
            continue
        precision = sum(r["verdict"] == "TRUE" for r in judged) / len(judged)
        if precision < PRECISION_TARGET:
            below.append(f"{code}: {precision:.2f} on {len(judged)}")
    return below


@pytest.mark.parametrize("round_name", sorted(MIN_JUDGED))
def test_default_on_rules_reach_the_precision_target(round_name):
    below = _below_target(round_name)
    assert not below, f"default-on rules below {PRECISION_TARGET} TRUE on their {round_name} sample: {below}"


def test_fixed_rows_are_false_verdicts():
    """Only a FALSE finding can be "fixed" away (a TRUE one removed would be lost recall)."""
    wrong = [f"line {r['_line']}" for r in _rows() if _is_fixed_row(r) and r["verdict"] != "FALSE"]
    assert not wrong, f"rows marked fixed whose verdict is not FALSE: {wrong}"

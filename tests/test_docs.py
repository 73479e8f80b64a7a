"""Rule pages under rules/ are generated from the rules and must not go stale."""

from conftest import ROOT
from greenops_lint.docs import render_page
from greenops_lint.plugins import load_rules


def test_every_rule_has_a_current_page():
    stale = []
    for code, rule in load_rules().rules.items():
        page = ROOT / "rules" / f"{code}.md"
        if not page.is_file() or page.read_text(encoding="utf-8") != render_page(rule):
            stale.append(code)
    assert not stale, f"run `greenops-lint rules --write-docs rules/`; stale or missing: {stale}"


def test_no_page_without_a_rule():
    codes = set(load_rules().rules)
    orphans = [p.name for p in (ROOT / "rules").glob("*.md") if p.stem not in codes and p.name != "README.md"]
    assert not orphans


def test_check_docs_command_detects_a_stale_page(cli, tmp_path):
    assert cli("rules", "--write-docs", tmp_path).exit_code == 0
    assert cli("rules", "--check-docs", tmp_path).exit_code == 0
    (tmp_path / "GO401.md").write_text("stale\n")
    assert cli("rules", "--check-docs", tmp_path).exit_code == 1

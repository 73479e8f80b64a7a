"""The README's promises: its configuration example is valid, its rule table is complete."""

from __future__ import annotations

import re

from conftest import ROOT
from greenops_lint.config import parse_table
from greenops_lint.plugins import load_rules
from greenops_lint.tomlcompat import tomllib

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_configuration_example_is_valid():
    block = re.search(r"```toml\n(\[tool\.greenops-lint\].*?)```", README, re.S).group(1)
    table = tomllib.loads(block)["tool"]["greenops-lint"]
    registry = load_rules()
    option_types = {c: {n: o.type for n, o in r.options.items()} for c, r in registry.rules.items()}
    parse_table(table, ROOT / "README.md", set(registry.rules), option_types)  # raises on any error


def test_rule_table_lists_every_rule():
    missing = [code for code in load_rules().rules if f"[{code}](rules/{code}.md)" not in README]
    assert not missing


def test_the_two_setup_commands_exist_in_the_makefile():
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in README and "make test" in README
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_30_second_example_prints_what_the_readme_shows(tmp_path):
    import subprocess
    import sys

    code = re.search(r"`train.py`:\n\n```python\n(.*?)```", README, re.S).group(1)
    shown = re.search(r"\$ greenops-lint check train.py --hardware a100-80gb\n(.*?)\nFound", README, re.S).group(1)
    (tmp_path / "train.py").write_text(code)
    result = subprocess.run(
        [sys.executable, "-m", "greenops_lint", "check", "train.py", "--hardware", "a100-80gb", "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == shown.strip()


def test_the_probe_section_lists_every_probed_rule():
    from greenops_lint.probe.plans import PROBED_CODES

    listed = re.search(r"rule has a probe \(([^)]*)\)", README).group(1)
    codes = set()
    for part in listed.split(", "):
        first, _, last = part.partition("-")
        start, end = int(first[2:]), int((last or first)[2:])
        codes |= {f"GO{n}" for n in range(start, end + 1)}
    assert codes == set(PROBED_CODES)

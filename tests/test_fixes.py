"""Autofix: snapshots, idempotency, encodings, notebooks, and no way to corrupt a file."""

from __future__ import annotations

import json
import os
import shutil
import stat

import libcst as cst
import pytest

from conftest import FIXTURES, fixture_files
from greenops_lint import fileio
from greenops_lint.config import load_config
from greenops_lint.fixes import fix_paths
from greenops_lint.plugins import load_rules
from greenops_lint.selection import enabled_rules

SNAPSHOTS = sorted(FIXTURES.rglob("*.fixed.py"))


def fixture_setup():
    registry = load_rules()
    option_types = {c: {n: o.type for n, o in r.options.items()} for c, r in registry.rules.items()}
    config = load_config(None, FIXTURES, set(registry.rules), option_types)
    return config, enabled_rules(registry.rules, config)


@pytest.mark.parametrize("expected", SNAPSHOTS, ids=lambda p: p.name)
def test_fix_snapshot(expected, tmp_path):
    source = expected.with_name(expected.name.replace(".fixed.py", ".py"))
    work = tmp_path / source.name
    shutil.copy(source, work)
    config, rules = fixture_setup()
    (outcome,) = fix_paths([str(work)], config, rules, unsafe=True)
    assert outcome.error is None
    assert work.read_text() == expected.read_text()


def test_every_fixable_rule_has_a_snapshot():
    config, rules = fixture_setup()
    snapshot_codes = set()
    for expected in SNAPSHOTS:
        text = expected.with_name(expected.name.replace(".fixed.py", ".py")).read_text()
        snapshot_codes |= {code for code in rules if f"expect: {code}" in text}
    missing = [code for code, rule in rules.items() if rule.fixable and code not in snapshot_codes]
    assert not missing, f"fixable rules without a name.fixed.py snapshot: {missing}"


def test_fix_all_fixtures_parses_is_idempotent_and_leaves_the_rest_alone(tmp_path):
    shutil.copytree(
        FIXTURES, tmp_path / "fixtures", ignore=shutil.ignore_patterns("*.fixed.py", ".greenops_lint_cache")
    )
    files = [tmp_path / "fixtures" / p.relative_to(FIXTURES) for p in fixture_files()]
    before = {p: p.read_bytes() for p in files}
    config, rules = fixture_setup()
    first = fix_paths([str(p) for p in files], config, rules, unsafe=True)
    assert all(o.error is None for o in first)
    for outcome, path in zip(first, files):
        if path.suffix == ".py":
            cst.parse_module(path.read_text())
        if not outcome.changed:
            assert path.read_bytes() == before[path]
    assert any(o.changed for o in first)
    second = fix_paths([str(p) for p in files], config, rules, unsafe=True)
    assert not any(o.changed for o in second), [o.path for o in second if o.changed]


def test_safe_only_fix_leaves_unsafe_fixes(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("import torch\nmodel = net.double()\n")
    result = cli("check", "train.py", "--fix")
    assert (tmp_path / "train.py").read_text() == "import torch\nmodel = net.double()\n"
    assert result.exit_code == 1 and "GO402" in result.stdout and "[*]" not in result.stdout
    shown = cli("check", "train.py", "--unsafe-fixes").stdout
    assert "GO402 [*] " in shown


def test_diff_prints_and_writes_nothing(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    original = "import torch\nmodel = net.double()\n"
    (tmp_path / "train.py").write_text(original)
    result = cli("check", "train.py", "--diff", "--unsafe-fixes")
    assert result.exit_code == 1
    assert "-model = net.double()\n+model = net.float()\n" in result.stdout
    assert (tmp_path / "train.py").read_text() == original
    (tmp_path / "clean.py").write_text("x = 1\n")
    assert cli("check", "clean.py", "--diff", "--unsafe-fixes").exit_code == 0


def test_fix_keeps_encoding_bom_newlines_and_permissions(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    latin = b"# -*- coding: latin-1 -*-\r\nimport torch\r\nname = '\xe9t\xe9'\r\nmodel = net.double()\r\n"
    (tmp_path / "latin.py").write_bytes(latin)
    (tmp_path / "bom.py").write_bytes(b"\xef\xbb\xbfimport torch\nm = net.double()\n")
    os.chmod(tmp_path / "latin.py", 0o751)
    result = cli("check", ".", "--fix", "--unsafe-fixes")
    assert result.exit_code == 0, result.stdout
    assert (tmp_path / "latin.py").read_bytes() == latin.replace(b"net.double()", b"net.float()")
    assert (tmp_path / "bom.py").read_bytes() == b"\xef\xbb\xbfimport torch\nm = net.float()\n"
    assert stat.S_IMODE(os.stat(tmp_path / "latin.py").st_mode) == 0o751


def test_notebook_is_fixed_cell_by_cell_and_keeps_magics(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# notes"]},
            {
                "cell_type": "code",
                "metadata": {},
                "outputs": [],
                "execution_count": 1,
                "source": [
                    "%matplotlib inline\n",
                    "import torch\n",
                    "torch.set_default_dtype(torch.float64)\n",
                    "!nvidia-smi",
                ],
            },
        ],
        "metadata": {"kernelspec": {"name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb, indent=1))
    assert cli("check", "nb.ipynb", "--fix", "--unsafe-fixes").exit_code == 0
    fixed = json.loads((tmp_path / "nb.ipynb").read_text())
    assert fixed["cells"][1]["source"] == [
        "%matplotlib inline\n",
        "import torch\n",
        "torch.set_default_dtype(torch.float32)\n",
        "!nvidia-smi",
    ]
    assert fixed["cells"][0] == nb["cells"][0] and fixed["metadata"] == nb["metadata"]


def test_a_failing_replace_leaves_the_original_intact(tmp_path, monkeypatch):
    path = tmp_path / "train.py"
    original = "import torch\nmodel = net.double()\n"
    path.write_text(original)

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", broken_replace)
    config, rules = fixture_setup()
    (outcome,) = fix_paths([str(path)], config, rules, unsafe=True)
    assert outcome.error and "No space left on device" in outcome.error
    assert path.read_text() == original
    assert [p.name for p in tmp_path.iterdir()] == ["train.py"]  # no temporary file left behind


def test_read_only_file_is_reported_and_the_run_goes_on(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.py").write_text("import torch\nmodel = net.double()\n")
    (tmp_path / "b.py").write_text("import torch\nmodel = net.double()\n")
    monkeypatch.setattr(fileio, "atomic_write", _fail_for("a.py", fileio.atomic_write))
    result = cli("check", ".", "--fix", "--unsafe-fixes")
    assert result.exit_code == 2
    assert "a.py:1:1: GO003 internal error in --fix: cannot write a.py" in result.stdout
    assert (tmp_path / "b.py").read_text().endswith("net.float()\n")


def _fail_for(name, real):
    def write(path, data, durable=True, **kwargs):
        if str(path).endswith(name):
            raise PermissionError(13, "Permission denied")
        return real(path, data, durable, **kwargs)

    return write


def test_a_fix_that_breaks_the_code_is_not_written(tmp_path, monkeypatch):
    import greenops_lint.fixes as fixes_module

    path = tmp_path / "train.py"
    original = "import torch\nmodel = net.double()\n"
    path.write_text(original)
    monkeypatch.setattr(fixes_module, "apply_fixes", lambda module, fixes: "def broken(:\n")
    config, rules = fixture_setup()
    (outcome,) = fix_paths([str(path)], config, rules, unsafe=True)
    assert "does not parse" in outcome.error
    assert path.read_text() == original
    assert any(f.code == "GO003" for f in outcome.result.findings)


def test_go301_cap_option_sets_the_fixed_cap(tmp_path):
    from greenops_lint.config import Config

    path = tmp_path / "train.py"
    path.write_text(
        "import os\nfrom torch.utils.data import DataLoader\nloader = DataLoader(ds, num_workers=os.cpu_count())\n"
    )
    registry = load_rules()
    config = Config(root=tmp_path, rule_options=(("GO301", (("cap", 4),)),))
    (outcome,) = fix_paths([str(path)], config, enabled_rules(registry.rules, config), unsafe=True)
    assert outcome.error is None
    assert path.read_text().endswith("num_workers=min(os.cpu_count() or 1, 4))\n")


def test_fix_and_diff_say_how_many_unsafe_fixes_were_left_out(tmp_path, monkeypatch, cli):
    """As ruff: a file with only unsafe fixes does not read as "nothing to fix"."""
    monkeypatch.chdir(tmp_path)
    source = "import torch\ntorch.set_default_dtype(torch.float64)\n"
    (tmp_path / "train.py").write_text(source)
    diff = cli("check", "train.py", "--diff")
    assert "Would fix 0 findings in 0 files (1 unsafe fix can be applied with --unsafe-fixes)." in diff.stderr
    fixed = cli("check", "train.py", "--fix")
    assert "No safe fixes (1 unsafe fix can be applied with --unsafe-fixes)." in fixed.stderr
    assert (tmp_path / "train.py").read_text() == source
    assert "unsafe fix" not in cli("check", "train.py", "--diff", "--unsafe-fixes").stderr

"""Integrations, each tested with the real tool: flake8, pytest, pre-commit,
pluggy rule packs, CI formats, and adoption (--add-noqa, --show-suppressed)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from conftest import FIXTURES, ROOT

BAD = "import torch\ntorch.set_default_dtype(torch.float64)\nmodel = net.double()\n"
GOOD = "import torch\ntorch.set_default_dtype(torch.float32)\n"
PLUGIN_DIR = ROOT / "tests" / "plugin_example"


def run(cmd, cwd, env=None, timeout=300):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def bin_(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


# -- flake8 -------------------------------------------------------------------------------


def test_flake8_reports_the_same_findings_as_check(tmp_path):
    for fixture in ("caching/GO101_tabular_training.py", "precision/GO402_cast_model.py"):
        shutil.copy(FIXTURES / fixture, tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.greenops-lint]\n")
    flake8 = run([bin_("flake8"), "--select", "GO", "."], tmp_path)
    check = run([sys.executable, "-m", "greenops_lint", "check", ".", "-q", "--no-cache"], tmp_path)
    normalise = lambda out: sorted(line.removeprefix("./") for line in out.splitlines())
    assert normalise(flake8.stdout) == normalise(check.stdout)
    assert len(check.stdout.splitlines()) > 5


def test_flake8_honours_the_project_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.greenops-lint]\nignore = ['GO401']\n")
    (tmp_path / "train.py").write_text(BAD)
    out = run([bin_("flake8"), "--select", "GO", "train.py"], tmp_path).stdout
    assert "GO402" in out and "GO401" not in out


# -- pytest plugin --------------------------------------------------------------------------


def test_pytest_greenops_fails_a_file_with_findings(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.greenops-lint]\n")
    (tmp_path / "train.py").write_text(BAD)
    (tmp_path / "clean.py").write_text(GOOD)
    # Directories, not files: pytest imports a .py file named on its command line.
    result = run([sys.executable, "-m", "pytest", "--greenops", "-p", "no:cacheprovider", "-q", "."], tmp_path)
    assert result.returncode == 1, result.stdout
    assert "1 failed, 1 passed" in result.stdout
    assert "train.py:2:1: GO401" in result.stdout and "train.py:3:9: GO402" in result.stdout


def test_pytest_without_the_flag_collects_no_lint_items(tmp_path):
    (tmp_path / "train.py").write_text(BAD)
    result = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "."], tmp_path)
    assert "no tests ran" in result.stdout


# -- pre-commit -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory):
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.mark.parametrize("content,expected", [(BAD, 1), (GOOD, 0)])
def test_pre_commit_hook_fails_on_waste_and_passes_clean_code(tmp_path, pre_commit_home, content, expected):
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(pre_commit_home),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    run(["git", "init", "-q"], tmp_path, env)
    (tmp_path / "train.py").write_text(content)
    run(["git", "add", "train.py"], tmp_path, env)
    result = run(
        [bin_("pre-commit"), "try-repo", str(ROOT), "greenops-lint", "--all-files"], tmp_path, env, timeout=600
    )
    assert result.returncode == expected, result.stdout + result.stderr
    if expected:
        assert "train.py:2:1: GO401" in result.stdout


def test_pre_commit_hooks_file_declares_the_hook():
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert "id: greenops-lint" in text and "entry: greenops-lint check" in text and "jupyter" in text


# -- pluggy rule packs --------------------------------------------------------------------------


def plugin_env(tmp_path: Path, *packs: tuple[str, str]) -> dict:
    """A site directory with dist-info entry points for the given (name, module) packs."""
    for name, module in packs:
        info = tmp_path / f"{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[greenops_lint]\n{name} = {module}\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PLUGIN_DIR)])}


def lint_cli(args, cwd, env):
    return run([sys.executable, "-m", "greenops_lint", *args], cwd, env)


def test_plugin_rule_is_listed_reports_and_obeys_select_ignore_noqa(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    env = plugin_env(site, ("example", "greenops_example_pack"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text("print('epoch')\nprint('done')  # noqa: XYZ001\n" + BAD)
    rules = json.loads(lint_cli(["rules", "--format", "json"], work, env).stdout)
    assert "XYZ001" in [r["code"] for r in rules]
    out = lint_cli(["check", "train.py", "--no-cache"], work, env).stdout
    assert "train.py:1:1: XYZ001 print() in training code; use logging" in out
    assert "train.py:2:1: XYZ001" not in out
    only = lint_cli(["check", "train.py", "--select", "XYZ", "--no-cache"], work, env).stdout
    assert only.splitlines() == ["train.py:1:1: XYZ001 print() in training code; use logging"]
    assert "XYZ001" not in lint_cli(["check", "train.py", "--ignore", "XYZ001", "--no-cache"], work, env).stdout
    page = lint_cli(["explain", "XYZ001"], work, env)
    assert page.returncode == 0 and "# XYZ001 `print-call`" in page.stdout
    disabled = lint_cli(["check", "train.py", "--disable-plugin", "example", "--no-cache"], work, env)
    assert "XYZ001" not in disabled.stdout and "GO401" in disabled.stdout
    (work / "pyproject.toml").write_text("[tool.greenops-lint]\nplugins = { disable = ['example'] }\n")
    assert "XYZ001" not in lint_cli(["check", "train.py", "--no-cache"], work, env).stdout


def test_a_plugin_that_fails_to_register_is_named_and_the_rest_still_runs(tmp_path):
    env = plugin_env(tmp_path, ("broken", "greenops_broken_pack"), ("missing", "no_such_module_here"))
    (tmp_path / "train.py").write_text(BAD)
    result = lint_cli(["check", "train.py", "--no-cache"], tmp_path, env)
    assert result.returncode == 1
    assert "GO401" in result.stdout
    assert "plugin 'broken' failed while registering rules: RuntimeError: cannot register" in result.stderr
    assert "plugin 'missing' (no_such_module_here) failed to load: ModuleNotFoundError" in result.stderr
    assert "Traceback" not in result.stderr


# -- CI formats ---------------------------------------------------------------------------------


def test_markdown_format_renders_a_table(cli):
    out = cli("check", FIXTURES / "precision", "--format", "markdown", "--exit-zero", "-q").stdout
    lines = out.splitlines()
    assert lines[0].startswith("## greenops-lint: ") and " findings in " in lines[0]
    assert lines[2] == "| location | rule | finding | estimate |"
    rows = [l for l in lines if l.startswith("| `")]
    assert rows and all(l.count(" | ") >= 3 for l in rows)
    assert "### Estimated waste by rule" in out


def test_junit_format_is_valid_xml_with_one_failure_per_finding(cli):
    out = cli("check", FIXTURES / "precision", "--format", "junit", "--exit-zero", "-q").stdout
    root = ET.fromstring(out.split("\n", 1)[1])
    cases = root.findall(".//testcase")
    assert cases and len(cases) == int(root.get("failures"))
    assert all(case.find("failure") is not None for case in cases)


def test_unknown_format_is_a_usage_error(cli, tmp_path):
    (tmp_path / "x.py").write_text("x = 1\n")
    result = cli("check", tmp_path / "x.py", "--format", "yaml")
    assert result.exit_code == 2 and "unknown format 'yaml'" in result.stderr


# -- adoption --------------------------------------------------------------------------------------


def test_add_noqa_then_check_is_clean_and_show_suppressed_lists_the_debt(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    source = textwrap.dedent(
        '''\
        import torch
        torch.set_default_dtype(torch.float64)
        model = net.double()  # noqa: E501
        other = net.double(); doc = """
        text"""
        '''
    )
    (tmp_path / "train.py").write_bytes(source.replace("\n", "\r\n").encode())
    before = cli("check", "train.py").stdout.count("\n")
    assert before == 3
    result = cli("check", "train.py", "--add-noqa")
    assert result.exit_code == 0 and "Added noqa comments to 2 lines in 1 file" in result.stderr
    text = (tmp_path / "train.py").read_bytes().decode()
    assert "torch.set_default_dtype(torch.float64)  # noqa: GO401\r\n" in text
    assert "model = net.double()  # noqa: E501,GO402\r\n" in text
    assert 'other = net.double(); doc = """\r\n' in text  # the line ends inside a string: left alone
    compile(text, "train.py", "exec")
    after = cli("check", "train.py")
    assert after.stdout.count("\n") == 1  # only the finding whose line ends a string
    shown = cli("check", "train.py", "--show-suppressed").stdout
    assert shown.count("[suppressed by noqa]") == 2
    assert "2 suppressed by noqa" in cli("check", "train.py").stderr


def test_add_noqa_in_a_notebook_cell(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "outputs": [],
                "execution_count": None,
                "source": ["import torch\n", "torch.set_default_dtype(torch.float64)"],
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "nb.ipynb").write_text(json.dumps(nb, indent=1))
    assert cli("check", "nb.ipynb", "--add-noqa").exit_code == 0
    cell = json.loads((tmp_path / "nb.ipynb").read_text())["cells"][0]["source"]
    assert cell[1] == "torch.set_default_dtype(torch.float64)  # noqa: GO401"
    assert cli("check", "nb.ipynb").exit_code == 0


def test_add_noqa_leaves_findings_that_check_does_not_show(tmp_path, monkeypatch, cli):
    """An info finding (hidden below the default min-severity) gets no comment,
    unless --show-info shows it."""
    monkeypatch.chdir(tmp_path)
    source = "import torch.nn as nn\nblock = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64))\n"
    (tmp_path / "train.py").write_text(source)
    assert "GO204" in cli("check", "train.py", "--show-info").stdout  # GO204 reports at info
    cli("check", "train.py", "--add-noqa")
    assert (tmp_path / "train.py").read_text() == source
    cli("check", "train.py", "--add-noqa", "--show-info")
    assert "# noqa: GO204" in (tmp_path / "train.py").read_text()

"""What ruff users expect of `check`: stdin, --force-exclude, --output-format
(concise, full), colour, the --statistics table, --exit-non-zero-on-fix,
--show-fixes, --show-settings, `explain` by name, a passing JUnit case."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from xml.etree import ElementTree as ET

import pytest

from conftest import ROOT

BAD = "import torch\ntorch.set_default_dtype(torch.float64)\n"
GOOD = "import torch\ntorch.set_default_dtype(torch.float32)\n"
LOOP = 'import numpy as np\nfor epoch in range(10):\n    for batch in range(100):\n        weights = np.load("w.npy")\n'


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [tool.greenops-lint]
            extend-exclude = ["generated"]
            [tool.greenops-lint.per-file-ignores]
            "legacy/*" = ["GO401"]
            """
        ),
        encoding="utf-8",
    )
    return tmp_path


# -- stdin ----------------------------------------------------------------------------------
def test_stdin_uses_the_stdin_filename_for_output_and_config(project, cli):
    (project / "pkg").mkdir()
    result = cli("check", "-", "--stdin-filename", "pkg/f.py", input=BAD)
    assert result.exit_code == 1
    assert result.stdout.startswith("pkg/f.py:2:1: GO401 ")
    assert cli("check", "-", "--stdin-filename", "legacy/old.py", input=BAD).exit_code == 0  # per-file-ignores
    assert cli("check", "-", input=BAD).stdout.startswith("-:2:1: GO401")


def test_stdin_in_a_pipe_from_another_directory(project):
    (project / "pkg").mkdir()
    (project / "pkg" / "pyproject.toml").write_text('[tool.greenops-lint]\nignore = ["GO401"]\n', encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "greenops_lint", "check", "-", "--stdin-filename", "pkg/f.py"],
        input=BAD,
        capture_output=True,
        text=True,
        cwd=project,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0 and run.stdout == ""  # the config next to pkg/f.py applies


def test_stdin_fix_prints_the_fixed_source(project, cli):
    result = cli("check", "-", "--stdin-filename", "train.py", "--fix", "--unsafe-fixes", input=BAD)
    assert result.stdout == GOOD
    assert result.exit_code == 0
    result = cli(
        "check", "-", "--stdin-filename", "train.py", "--fix", "--unsafe-fixes", "--exit-non-zero-on-fix", input=BAD
    )
    assert result.stdout == GOOD and result.exit_code == 1
    result = cli("check", "-", "--stdin-filename", "train.py", "--fix", input=BAD)  # unsafe fix not applied
    assert result.stdout == BAD and result.exit_code == 1 and "GO401" in result.stderr
    diff = cli("check", "-", "--stdin-filename", "train.py", "--diff", "--unsafe-fixes", input=BAD)
    assert "+torch.set_default_dtype(torch.float32)" in diff.stdout and diff.exit_code == 1


def test_stdin_cannot_mix_with_paths(project, cli):
    (project / "a.py").write_text(GOOD)
    assert cli("check", "-", "a.py", input=BAD).exit_code == 2


# -- force-exclude ----------------------------------------------------------------------------
def test_force_exclude_skips_excluded_files_named_on_the_command_line(project, cli):
    (project / "generated").mkdir()
    (project / "generated" / "model.py").write_text(BAD)
    (project / "train.py").write_text(BAD)
    assert "generated/model.py" in cli("check", "generated/model.py", "train.py").stdout
    result = cli("check", "--force-exclude", "generated/model.py", "train.py")
    assert "generated/model.py" not in result.stdout and "train.py:2:1" in result.stdout
    assert cli("check", "--force-exclude", "generated/model.py").exit_code == 0
    # stdin: an excluded --stdin-filename is passed through untouched.
    result = cli(
        "check", "-", "--force-exclude", "--stdin-filename", "generated/x.py", "--fix", "--unsafe-fixes", input=BAD
    )
    assert result.stdout == BAD and result.exit_code == 0


def test_pre_commit_hooks_force_exclude():
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert text.count("entry: greenops-lint check --force-exclude") == 2


def test_pytest_plugin_skips_excluded_files_and_uses_the_cache(project):
    (project / "generated").mkdir()
    (project / "generated" / "model.py").write_text(BAD)
    (project / "train.py").write_text(GOOD)
    command = [sys.executable, "-m", "pytest", "--greenops", "-p", "no:cacheprovider", "-q", "."]
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=project, env=env)
    assert result.returncode == 0, result.stdout
    assert "1 passed" in result.stdout
    entries = [p for p in (project / ".greenops_lint_cache").rglob("*") if p.is_file() and p.name != ".gitignore"]
    assert len(entries) == 1


# -- output formats ---------------------------------------------------------------------------
def test_output_format_and_its_alias(project, cli):
    (project / "train.py").write_text(BAD)
    as_json = json.loads(cli("check", "train.py", "--output-format", "json", "-q").stdout)
    assert as_json == json.loads(cli("check", "train.py", "--format", "json", "-q").stdout)


def test_concise_is_short_and_full_quotes_the_source(project, cli):
    (project / "train.py").write_text(BAD)
    concise = cli("check", "train.py", "--output-format", "concise", "-q").stdout
    assert concise.startswith("train.py:2:1: GO401 ") and "est." not in concise and len(concise) < 200
    full = cli("check", "train.py", "--output-format", "full", "-q").stdout.splitlines()
    assert full[0].startswith("train.py:2:1: GO401 ")
    assert "2 | torch.set_default_dtype(torch.float64)" in full
    caret = next(line for line in full if "^" in line)
    assert caret == "  | " + "^" * len("torch.set_default_dtype(torch.float64)") + " GO401"
    assert any(line.startswith("  = est. 1-128x time") for line in full)


def test_full_format_on_stdin_quotes_the_piped_source(project, cli):
    full = cli("check", "-", "--stdin-filename", "x.py", "--output-format", "full", input=BAD).stdout
    assert "2 | torch.set_default_dtype(torch.float64)" in full


def test_colour_on_request_and_never_in_pipes_or_with_no_color(project, cli, monkeypatch):
    (project / "train.py").write_text(BAD)
    assert "\x1b[" not in cli("check", "train.py").stdout  # not a terminal
    assert "\x1b[31m\x1b[1mGO401" in cli("check", "train.py", "--color", "always").stdout
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in cli("check", "train.py").stdout
    assert "\x1b[" not in cli("check", "train.py", "--output-format", "json", "--color", "always").stdout


def test_statistics_is_a_table_then_the_estimates(project, cli):
    (project / "train.py").write_text(
        BAD + LOOP.replace("import numpy as np\n", "import numpy as np\nm = model.double()\n")
    )
    out = cli("check", "train.py", "--statistics").stdout
    table = out.split("\n\n", 1)[0].splitlines()
    assert [row.split("\t")[1].strip() for row in table] == ["GO101", "GO401", "GO402"]
    assert table[0].split("\t")[0].strip() == "1" and table[0].endswith("data-load-in-loop")
    assert "GO101" in out.split("\n\n", 1)[1]  # the estimates block follows
    assert "train.py:2:1" not in out
    rows = json.loads(cli("check", "train.py", "--statistics", "--output-format", "json", "-q").stdout)
    assert {r["code"] for r in rows} == {"GO101", "GO401", "GO402"} and set(rows[0]) == {
        "code",
        "name",
        "count",
        "fixable",
        "estimate",
    }
    assert next(r for r in rows if r["code"] == "GO101")["estimate"].endswith("extra loads")
    # With a workload, stdout stays one JSON document and the arithmetic goes to stderr.
    both = cli(
        "check", "train.py", "--statistics", "--output-format", "json", "--gpu-hours", "100", "--hardware", "t4", "-q"
    )
    assert [r["code"] for r in json.loads(both.stdout)] == [r["code"] for r in rows]
    assert "GPU time saved" in both.stderr or "nothing converts to GPU-hours" in both.stderr


def test_exit_non_zero_on_fix_and_show_fixes(project, cli):
    (project / "train.py").write_text(BAD)
    result = cli("check", "train.py", "--fix", "--unsafe-fixes", "--show-fixes")
    assert result.exit_code == 0 and (project / "train.py").read_text() == GOOD
    assert "- train.py:" in result.stderr and "1 \u00d7 GO401 (global-float64-default)" in result.stderr
    (project / "train.py").write_text(BAD)
    assert cli("check", "train.py", "--fix", "--unsafe-fixes", "--exit-non-zero-on-fix").exit_code == 1
    assert cli("check", "train.py", "--fix", "--unsafe-fixes", "--exit-non-zero-on-fix").exit_code == 0  # nothing left


def test_show_settings(project, cli):
    (project / "train.py").write_text(BAD)
    result = cli("check", "train.py", "--show-settings", "--select", "GO4")
    assert result.exit_code == 0
    assert f"Settings file: {project / 'pyproject.toml'}" in result.stdout
    assert "select = ('GO4',)" in result.stdout and "extend-exclude = ('generated',)" in result.stdout
    assert "enabled rules" in result.stdout and "GO401" in result.stdout and "GO101" not in result.stdout


def test_explain_by_name(cli):
    by_name = cli("explain", "global-float64-default")
    assert by_name.exit_code == 0 and by_name.stdout == cli("explain", "GO401").stdout
    assert cli("explain", "data-load-in-loop").stdout.startswith("# GO101")
    assert cli("explain", "no-such-rule").exit_code == 2


def test_junit_clean_run_is_one_passing_case(project, cli):
    (project / "train.py").write_text(GOOD)
    root = ET.fromstring(cli("check", "train.py", "--output-format", "junit").stdout)
    cases = root.findall(".//testcase")
    assert (
        len(cases) == 1 and not cases[0].findall("failure") and root.get("tests") == "1" and root.get("failures") == "0"
    )


# -- noqa -----------------------------------------------------------------------------------------
def test_noqa_after_a_multi_line_string_covers_its_lines(project, cli):
    source = "import torch\ntorch.set_default_dtype(torch.float64); note = '''\na long note\n'''  # noqa: GO401\n"
    (project / "train.py").write_text(source)
    result = cli("check", "train.py")
    assert result.exit_code == 0, result.stdout
    (project / "train.py").write_text(source.replace("  # noqa: GO401", "  # noqa: GO101"))
    assert "GO401" in cli("check", "train.py").stdout
    fstring = "import torch\nx = 1\ntorch.set_default_dtype(torch.float64); note = f'''\n{x}\n'''  # noqa\n"
    (project / "train.py").write_text(fstring)
    assert cli("check", "train.py").exit_code == 0


# -- SARIF for code scanning -----------------------------------------------------------------------
def test_sarif_fingerprints_uris_and_column_kind(project, cli):
    (project / "my dir").mkdir()
    (project / "my dir" / "train #1.py").write_text(BAD + "\n" + BAD.split("\n")[1] + "\n")
    document = json.loads(cli("check", ".", "--output-format", "sarif", "--exit-zero").stdout)
    run = document["runs"][0]
    assert run["columnKind"] == "unicodeCodePoints"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.as_uri() + "/"
    results = run["results"]
    assert len(results) == 2
    for result in results:
        location = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert location == {"uri": "my%20dir/train%20%231.py", "uriBaseId": "%SRCROOT%"}
        assert set(result["partialFingerprints"]) == {"greenopsLint/v1"}
    first, second = (r["partialFingerprints"]["greenopsLint/v1"] for r in results)
    assert first != second  # the same line text twice: told apart by occurrence
    # Moving the code down keeps the fingerprints.
    (project / "my dir" / "train #1.py").write_text("\n\n" + BAD + "\n" + BAD.split("\n")[1] + "\n")
    moved = json.loads(cli("check", ".", "--output-format", "sarif", "--exit-zero").stdout)["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in moved] == [r["partialFingerprints"] for r in results]


def test_sarif_notebook_region_points_into_the_ipynb_text(project, cli):
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n"]},
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": None,
                "outputs": [],
                "source": ["import torch\n", "torch.set_default_dtype(torch.float64)\n"],
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (project / "nb.ipynb").write_text(json.dumps(notebook, indent=1))
    (result,) = json.loads(cli("check", "nb.ipynb", "--output-format", "sarif").stdout)["runs"][0]["results"]
    region = result["locations"][0]["physicalLocation"]["region"]
    raw_line = (project / "nb.ipynb").read_text().splitlines()[region["startLine"] - 1]
    assert raw_line[region["startColumn"] - 1 : region["endColumn"] - 1] == "torch.set_default_dtype(torch.float64)"
    assert result["properties"]["cell"] == 2 and result["properties"]["cellRegion"]["startLine"] == 2


# -- packaging ------------------------------------------------------------------------------------
def test_license_urls_and_hidden_internal_hardware(cli):
    from greenops_lint.tomlcompat import tomllib

    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Repository"].startswith("https://github.com/")
    assert "pygls" in " ".join(project["optional-dependencies"]["lsp"] + project["optional-dependencies"]["test"])
    out = cli("hardware").stdout
    assert "cloud-vcpu-2" not in out and "CI class" not in out and "a100-80gb" in out

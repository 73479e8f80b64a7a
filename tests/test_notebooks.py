"""Jupyter notebooks: code cells only, magics skipped, findings named by cell."""

from __future__ import annotations

import json

from conftest import FIXTURES
from greenops_lint.source import decode_notebook

NOTEBOOK = FIXTURES / "notebooks" / "train_churn.ipynb"


def notebook(*cells) -> bytes:
    return json.dumps(
        {
            "cells": [{"cell_type": kind, "metadata": {}, "source": src} for kind, src in cells],
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    ).encode()


def test_text_output_names_the_cell(cli):
    lines = cli("check", NOTEBOOK, "-q").stdout.splitlines()
    assert lines[0].startswith(f"{NOTEBOOK}:cell 4:1:1: GO401 ")
    assert lines[1].startswith(f"{NOTEBOOK}:cell 6:3:10: GO101 ")
    assert len(lines) == 2  # the noqa inside cell 6 holds


def test_json_has_a_cell_field(cli):
    findings = json.loads(cli("check", NOTEBOOK, "--format", "json", "-q").stdout)
    assert [(f["cell"], f["line"], f["code"]) for f in findings] == [(4, 1, "GO401"), (6, 3, "GO101")]


def test_magics_and_shell_escapes_become_pass_and_keep_line_numbers():
    source = decode_notebook(
        "nb.ipynb",
        notebook(
            ("code", ["%matplotlib inline\n", "import os\n", "for f in files:\n", "    !echo $f\n", "    x = a % b"]),
            ("markdown", ["# title"]),
            ("code", ["%%bash\n", "ls -la\n", "echo hi"]),
            ("code", ["%%time\n", "y = 1\n", "out = !ls\n", "os?"]),
        ),
    )
    assert source.text.splitlines() == [
        "pass",
        "import os",
        "for f in files:",
        "    pass",
        "    x = a % b",
        "",
        "",
        "",
        "",
        "y = 1",
        "pass",
        "pass",
    ]
    assert source.cells[5] == (3, 1) and source.cells[-1] == (4, 4)
    compile(source.text, "nb", "exec")


def test_syntax_error_in_a_cell_is_reported_in_that_cell():
    from conftest import ROOT
    from greenops_lint.config import Config
    from greenops_lint.engine import Linter
    from greenops_lint.plugins import load_rules

    raw = notebook(("code", ["import torch\n"]), ("code", ["def f(:\n", "    pass"]))
    # GO206 left out: its `import torch` token sends the notebook to LibCST's parser, whose
    # error for this cell points at the next line.
    rules = {code: rule for code, rule in load_rules().rules.items() if code != "GO206"}
    (finding,) = Linter(Config(root=ROOT), rules).lint_bytes("nb.ipynb", raw).findings
    assert (finding.code, finding.cell, finding.line) == ("GO001", 2, 1)


def test_invalid_notebook_json_is_go002(tmp_path, cli):
    path = tmp_path / "broken.ipynb"
    path.write_text("{not json")
    result = cli("check", path)
    assert "GO002 cannot read notebook" in result.stdout and result.exit_code == 1


def test_directory_walk_includes_notebooks(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nb.ipynb").write_bytes(
        notebook(("code", ["import torch\n", "torch.set_default_dtype(torch.float64)"]))
    )
    assert cli("check", ".").stdout.startswith("nb.ipynb:cell 1:2:1: GO401")

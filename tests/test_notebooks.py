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


INDENTED_CELL = [
    "    %matplotlib inline\n",
    "    for epoch in range(3):\n",
    "        model = net.double()\n",
    "        torch.set_default_dtype(torch.float64)\n",
]


def _indented_notebook(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(json.loads(notebook(("code", ["import torch\n"]), ("code", INDENTED_CELL))), indent=1))
    return path


def test_columns_in_an_indented_cell_point_at_the_cell_text(tmp_path, cli, monkeypatch):
    # The cell is dedented before parsing (as IPython runs it); the columns
    # reported must be those of the cell as the notebook shows it.
    monkeypatch.chdir(tmp_path)
    path = _indented_notebook(tmp_path)
    text = cli("check", "nb.ipynb", "--select", "GO401,GO402", "-q").stdout.splitlines()
    assert [line.split(" ")[:3] for line in text] == [
        ["nb.ipynb:cell", "2:3:17:", "GO402"],
        ["nb.ipynb:cell", "2:4:9:", "GO401"],
    ]
    findings = json.loads(cli("check", "nb.ipynb", "--select", "GO401,GO402", "--format", "json", "-q").stdout)
    spans = [INDENTED_CELL[f["line"] - 1][f["column"] - 1 : f["end_column"] - 1] for f in findings]
    assert spans == ["net.double()", "torch.set_default_dtype(torch.float64)"]
    assert [(f["cell"], f["line"], f["end_line"]) for f in findings] == [(2, 3, 3), (2, 4, 4)]
    # `full` quotes the cell's own line: the caret sits under the span.
    full = cli("check", "nb.ipynb", "--select", "GO402", "--format", "full", "-q").stdout.splitlines()
    quoted = next(i for i, line in enumerate(full) if "model = net.double()" in line)
    caret = full[quoted + 1]
    assert full[quoted][caret.index("^") : caret.rindex("^") + 1] == "net.double()"
    # SARIF points into the .ipynb's own text.
    sarif = json.loads(cli("check", "nb.ipynb", "--select", "GO402", "--format", "sarif", "-q").stdout)
    region = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    raw_line = path.read_text().splitlines()[region["startLine"] - 1]
    assert raw_line[region["startColumn"] - 1 : region["endColumn"] - 1] == "net.double()"


def test_fix_in_an_indented_cell_lands_where_the_finding_points(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _indented_notebook(tmp_path)
    select = ("--select", "GO401,GO402")
    findings = json.loads(cli("check", "nb.ipynb", *select, "--format", "json", "-q").stdout)
    assert cli("check", "nb.ipynb", *select, "--fix", "--unsafe-fixes", "-q").exit_code == 0
    source = json.loads(path.read_text())["cells"][1]["source"]
    assert source[:2] == INDENTED_CELL[:2] and len(source) == len(INDENTED_CELL)
    fixed = {3: "net.float()", 4: "torch.set_default_dtype(torch.float32)"}
    for finding in findings:
        # The fix replaces the span the finding reports, and only it.
        original = INDENTED_CELL[finding["line"] - 1]
        start, end = finding["column"] - 1, finding["end_column"] - 1
        assert source[finding["line"] - 1] == original[:start] + fixed[finding["line"]] + original[end:]

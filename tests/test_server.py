"""`greenops-lint server`, driven over stdio as an editor drives it, and the
editor-side helpers it is built on."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from greenops_lint.editor import Projects, encode_text, fix_all, line_edit, lint_text, noqa_for, with_fixes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

BAD = "import torch\ntorch.set_default_dtype(torch.float64)\n"
CLEAN = "import torch\ntorch.set_default_dtype(torch.float32)\n"
LOOP = 'import numpy as np\nfor epoch in range(10):\n    for batch in range(100):\n        weights = np.load("w.npy")\n'


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.greenops-lint]\nextend-exclude = ["generated"]\n[tool.greenops-lint.per-file-ignores]\n"legacy/*" = ["GO4"]\n',
        encoding="utf-8",
    )
    return tmp_path


@pytest.fixture
def client(project):
    pytest.importorskip("pygls")
    from lsp_client import LspClient

    client = LspClient(project, {"debounce": 0.05})
    yield client
    client.kill()


def _apply(text: str, edit: dict) -> str:
    """Apply a WorkspaceEdit's single TextEdit (line-based ranges) to `text`."""
    (change,) = edit["documentChanges"]
    (text_edit,) = change["edits"]
    lines = text.splitlines(keepends=True)
    start, end = text_edit["range"]["start"], text_edit["range"]["end"]
    before = (
        "".join(lines[: start["line"]]) + lines[start["line"]][: start["character"]]
        if start["line"] < len(lines)
        else text
    )
    after_line = lines[end["line"]] if end["line"] < len(lines) else ""
    after = after_line[end["character"] :] + "".join(lines[end["line"] + 1 :])
    return before + text_edit["newText"] + after


def test_editor_session_open_code_action_change_clear_shutdown(project, client):
    path = project / "train.py"
    path.write_text(CLEAN, encoding="utf-8")  # the disk says clean; the editor's text does not
    uri = path.as_uri()
    client.open(uri, BAD, 1)
    diagnostics = client.diagnostics(uri, 1)
    assert [d["code"] for d in diagnostics] == ["GO401"]
    (diagnostic,) = diagnostics
    assert diagnostic["source"] == "greenops-lint"
    assert diagnostic["range"]["start"] == {"line": 1, "character": 0}
    assert diagnostic["codeDescription"]["href"].endswith("/GO401.md")

    actions = client.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": uri},
            "range": diagnostic["range"],
            "context": {"diagnostics": diagnostics},
        },
    )
    titles = [a["title"] for a in actions]
    fix = next(a for a in actions if "float32" in a["title"])
    assert "unsafe" in fix["title"] and not fix.get("isPreferred")  # GO401's fix changes numerics
    assert _apply(BAD, fix["edit"]) == CLEAN
    noqa = next(a for a in actions if "noqa" in a["title"])
    assert _apply(BAD, noqa["edit"]) == BAD.replace("float64)\n", "float64)  # noqa: GO401\n")
    assert len(titles) == 2

    hover = client.request(
        "textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": 1, "character": 5}}
    )
    assert "GO401" in hover["contents"]["value"] and "rules/GO401.md" in hover["contents"]["value"]
    assert (
        client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 1}})
        is None
    )

    from bench_lsp import make_source

    big = make_source(1000)
    started = time.monotonic()
    client.change(uri, big, 2)
    fresh = client.diagnostics(uri, 2)
    elapsed = time.monotonic() - started
    assert fresh and {d["code"] for d in fresh} >= {"GO101"}
    assert elapsed < 10, elapsed  # benchmarks/bench_lsp.py measures the real figure (target < 1 s)

    client.change(uri, CLEAN, 3)
    assert client.diagnostics(uri, 3) == []
    assert client.shutdown() == 0


def test_rapid_changes_publish_only_the_latest_version(project, client):
    uri = (project / "train.py").as_uri()
    client.open(uri, CLEAN, 1)
    assert client.diagnostics(uri, 1) == []
    for version in range(2, 7):
        client.change(uri, BAD if version % 2 else CLEAN + "\n" * version, version)
    # Versions 2-5 come within the debounce of each other: only 6 is linted.
    last = client.diagnostics(uri, 6)
    assert last == []
    assert client.shutdown() == 0


def test_project_configuration_and_excludes_apply(project, client):
    legacy = (project / "legacy" / "old.py").as_uri()
    generated = (project / "generated" / "model.py").as_uri()
    loop = (project / "loop.py").as_uri()
    client.open(legacy, BAD, 1)
    client.open(generated, BAD, 1)
    client.open(loop, LOOP, 1)
    assert client.diagnostics(legacy, 1) == []  # per-file-ignores: GO4 under legacy/
    assert client.diagnostics(generated, 1) == []  # extend-exclude
    diagnostics = client.diagnostics(loop, 1)
    assert [d["code"] for d in diagnostics] == ["GO101"]
    actions = client.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": loop},
            "range": diagnostics[0]["range"],
            "context": {"diagnostics": diagnostics},
        },
    )
    assert any("noqa" in a["title"] for a in actions)
    client.close_document(loop)
    assert client.diagnostics(loop) == []
    assert client.shutdown() == 0


def test_configuration_error_is_one_diagnostic(tmp_path):
    pytest.importorskip("pygls")
    from lsp_client import LspClient

    (tmp_path / "pyproject.toml").write_text('[tool.greenops-lint]\nselct = ["GO4"]\n', encoding="utf-8")
    client = LspClient(tmp_path)
    try:
        uri = (tmp_path / "train.py").as_uri()
        client.open(uri, BAD, 1)
        (diagnostic,) = client.diagnostics(uri, 1)
        assert "configuration error" in diagnostic["message"] and "select" in diagnostic["message"]
        assert client.shutdown() == 0
    finally:
        client.kill()


# -- the helpers, without a server ----------------------------------------------------
def test_lint_text_uses_the_cache_and_relints_for_fixes(project):
    projects = Projects()
    proj = projects.for_path(str(project / "train.py"))
    first = lint_text(proj, str(project / "train.py"), BAD)
    again = lint_text(proj, str(project / "train.py"), BAD)
    assert not first.cached and again.cached and again.fixes is None
    assert [f.code for f in again.findings] == [f.code for f in first.findings] == ["GO401"]
    assert with_fixes(proj, again).fixes


def test_project_reloads_when_its_config_changes(project):
    projects = Projects(use_cache=False)
    path = str(project / "train.py")
    assert [f.code for f in lint_text(projects.for_path(path), path, BAD).findings] == ["GO401"]
    time.sleep(0.01)
    (project / "pyproject.toml").write_text('[tool.greenops-lint]\nignore = ["GO401"]\n', encoding="utf-8")
    assert lint_text(projects.for_path(path), path, BAD).findings == []


def test_fix_all_applies_safe_fixes_only(project):
    projects = Projects(use_cache=False)
    path = str(project / "train.py")
    assert fix_all(projects.for_path(path), path, BAD) is None  # GO401's fix is unsafe
    assert fix_all(projects.for_path(path), path, BAD, unsafe=True) == CLEAN


def test_noqa_goes_on_the_statement_line_when_the_line_ends_in_a_string(project):
    text = "import torch\ntorch.set_default_dtype(\n    torch.float64\n)\n"
    projects = Projects(use_cache=False)
    path = str(project / "train.py")
    (finding,) = lint_text(projects.for_path(path), path, text).findings
    new = noqa_for(text, finding)
    assert "# noqa: GO401" in new and lint_text(projects.for_path(path), path, new).findings == []


def test_line_edit_and_encoding():
    assert line_edit("a\nb\nc\n", "a\nB\nc\n") == (1, 2, "B\n")
    assert line_edit("a\n", "a\nb\n") == (1, 1, "b\n")
    assert encode_text("# -*- coding: latin-1 -*-\nx = 'é'\n") == (
        "# -*- coding: latin-1 -*-\nx = 'é'\n".encode("latin-1"),
        "iso-8859-1",
    )
    assert encode_text("x = 'é'\n")[1] == "utf-8"


# -- notebooks (LSP 3.17 notebook documents) -------------------------------------------------
def _cell(notebook: Path, fragment: str) -> str:
    """A cell URI as VS Code makes them (not a file; `#` and an escaped fragment)."""
    return f"vscode-notebook-cell:{notebook.as_posix()}#{fragment}%3D%3D"


def test_notebook_finding_lands_on_its_cell_and_a_cell_change_clears_it(project, client):
    sync = client.capabilities["notebookDocumentSync"]["notebookSelector"]
    assert sync == [{"notebook": "jupyter-notebook", "cells": [{"language": "python"}]}]
    notebook = project / "explore.ipynb"
    uri = notebook.as_uri()
    first, second = _cell(notebook, "W0sZmlsZQ"), _cell(notebook, "W1sZmlsZQ")
    # The import is in cell 1, the call in cell 2, on the cell's second line:
    # linted alone, cell 2 has no finding; at a line of the joined cells, line 3.
    client.open_notebook(uri, [(first, "code", "import torch"), (second, "code", "x = 1\n" + BAD.split("\n")[1])])
    assert client.diagnostics(first, 1) == []
    (diagnostic,) = client.diagnostics(second, 1)
    assert diagnostic["code"] == "GO401"
    assert diagnostic["range"] == {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 38}}

    cell_text = "x = 1\ntorch.set_default_dtype(torch.float64)"
    actions = client.request(
        "textDocument/codeAction",
        {"textDocument": {"uri": second}, "range": diagnostic["range"], "context": {"diagnostics": [diagnostic]}},
    )
    fix = next(a for a in actions if "float32" in a["title"])
    assert [c["textDocument"] for c in fix["edit"]["documentChanges"]] == [{"uri": second, "version": 1}]
    assert _apply(cell_text, fix["edit"]) == "x = 1\ntorch.set_default_dtype(torch.float32)"
    noqa = next(a for a in actions if "noqa" in a["title"])
    assert _apply(cell_text, noqa["edit"]) == cell_text + "  # noqa: GO401"
    hover = client.request(
        "textDocument/hover", {"textDocument": {"uri": second}, "position": {"line": 1, "character": 3}}
    )
    assert "GO401" in hover["contents"]["value"]
    assert (
        client.request("textDocument/hover", {"textDocument": {"uri": first}, "position": {"line": 0, "character": 3}})
        is None
    )

    client.change_notebook_cell(uri, 2, second, 2, _apply(cell_text, fix["edit"]))
    assert client.diagnostics(second, 2) == []
    client.close_notebook(uri, [first, second])
    assert client.diagnostics(second) == []
    assert client.shutdown() == 0


def test_notebook_cells_markdown_magics_and_structure_changes(project, client):
    notebook = project / "nb.ipynb"
    uri = notebook.as_uri()
    imports, notes, loop = _cell(notebook, "A"), _cell(notebook, "B"), _cell(notebook, "C")
    client.open_notebook(
        uri,
        [
            (imports, "code", "!pip install numpy\n%matplotlib inline\nimport numpy as np\n"),
            (notes, "markdown", "# The loop\nloads `w.npy` each batch"),
            (loop, "code", LOOP.split("\n", 1)[1]),
        ],
    )
    assert client.diagnostics(imports, 1) == []  # the magics are not syntax errors
    (diagnostic,) = client.diagnostics(loop, 1)
    assert diagnostic["code"] == "GO101" and diagnostic["range"]["start"] == {"line": 2, "character": 18}

    # A cell inserted above moves nothing within the loop's cell.
    inserted = _cell(notebook, "D")
    client.change_notebook_structure(uri, 2, 0, 0, [(inserted, "seed = 0")], [])
    assert client.diagnostics(inserted, 1) == []
    assert [d["range"]["start"] for d in client.diagnostics(loop, 1)] == [{"line": 2, "character": 18}]

    assert client.diagnostics(imports, 1) == []

    # Cells [seed, imports, notes, loop]: removing the loop's cell clears its diagnostics.
    client.change_notebook_structure(uri, 3, 3, 1, [], [loop])
    assert client.diagnostics(loop) == []
    assert client.diagnostics(imports, 1) == []
    assert client.shutdown() == 0


def test_notebook_fix_all_edits_the_cells_it_changes(project, client):
    notebook = project / "train.ipynb"
    uri = notebook.as_uri()
    setup, step = _cell(notebook, "S"), _cell(notebook, "T")
    step_text = "for epoch in range(3):\n    opt.zero_grad(set_to_none=False)\n    opt.step()\n"
    client.open_notebook(
        uri,
        [
            (setup, "code", "import torch\nmodel = torch.nn.Linear(2, 2)\nopt = torch.optim.SGD(model.parameters())"),
            (step, "code", step_text),
        ],
    )
    client.diagnostics(step, 1)
    actions = client.request(
        "textDocument/codeAction",
        {
            "textDocument": {"uri": step},
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
            "context": {"diagnostics": [], "only": ["source.fixAll"]},
        },
    )
    (fix_all,) = actions
    assert fix_all["kind"] == "source.fixAll.greenops-lint"
    assert [c["textDocument"]["uri"] for c in fix_all["edit"]["documentChanges"]] == [step]
    assert _apply(step_text, fix_all["edit"]) == step_text.replace("zero_grad(set_to_none=False)", "zero_grad()")
    assert client.shutdown() == 0


def test_notebook_helpers_lint_cells_as_check_lints_the_file(project):
    from greenops_lint.editor import notebook_fix_for, notebook_json
    from greenops_lint.engine import Linter

    projects = Projects(use_cache=False)
    path = str(project / "nb.ipynb")
    proj = projects.for_path(path)
    cells = ["import torch", None, "x = 1\ntorch.set_default_dtype(\n    torch.float64\n)\n"]
    text = notebook_json(cells)
    (project / "nb.ipynb").write_text(text, encoding="utf-8")
    on_disk = Linter(proj.config, proj.rules).lint_path(path).findings
    analysis = with_fixes(proj, lint_text(proj, path, text))
    (finding,) = analysis.findings
    assert (
        [(f.code, f.cell, f.line, f.column) for f in on_disk]
        == [("GO401", 3, 2, 1)]
        == [(finding.code, finding.cell, finding.line, finding.column)]
    )
    fixed = notebook_fix_for(analysis, finding)
    assert fixed.sources == {3: cells[2].replace("float64", "float32")} and not fixed.safe


def test_notebook_noqa_goes_on_the_cell_line_of_the_statement(project):
    from greenops_lint.editor import notebook_json, notebook_noqa_for

    projects = Projects(use_cache=False)
    path = str(project / "nb.ipynb")
    proj = projects.for_path(path)
    # The finding's own line ends inside a string: the comment goes on the
    # statement's first line, which is line 3 of the cell (line 4 of the joined cells).
    loop = 'for epoch in range(10):\n    for batch in range(100):\n        weights = [\n            np.load("""w\n.npy"""),\n        ]\n'
    cells = ["import numpy as np", None, loop]
    analysis = lint_text(proj, path, notebook_json(cells))
    (finding,) = analysis.findings
    assert (finding.code, finding.cell, finding.line) == ("GO101", 3, 4)
    suppressed = notebook_noqa_for(analysis, loop, finding)
    assert suppressed == loop.replace("weights = [\n", "weights = [  # noqa: GO101\n")
    assert lint_text(proj, path, notebook_json([cells[0], None, suppressed])).findings == []

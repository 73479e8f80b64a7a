"""No crash on any input, clear messages for hostile files, no code executed."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from greenops_lint.config import Config
from greenops_lint.engine import Linter
from greenops_lint.plugins import load_rules
from mutations import MUTATIONS, mutate, seed_sources

SOURCES = seed_sources()
LINTER = Linter(Config(root=ROOT), load_rules().rules)
REGRESSIONS = ROOT / "tests" / "data" / "fuzz_regressions"


def assert_well_behaved(path: str, data: bytes) -> None:
    findings = LINTER.lint_bytes(path, data).findings
    assert not [f for f in findings if f.code == "GO003"], [f.message for f in findings]
    for finding in findings:
        assert finding.line >= 1 and finding.column >= 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=st.sampled_from(SOURCES), seed=st.integers(0, 2**32 - 1))
def test_mutated_fixtures_never_crash_the_linter(source, seed):
    assert_well_behaved("case.py", mutate(source, random.Random(seed)))


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abcxyz_ ()[]{}:=+-*/.,'\"#\n\t\\0123456789@%!~<>")), max_size=400))
def test_arbitrary_text_never_crashes_the_linter(text):
    assert_well_behaved("case.py", ("import torch\n" + text).encode())


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_linter(data):
    assert_well_behaved("case.py", data)
    assert_well_behaved("case.ipynb", data)


def test_each_mutation_is_exercised():
    rng = random.Random(0)
    for mutation in MUTATIONS:
        for source in SOURCES[:5]:
            assert_well_behaved("case.py", mutation(source, rng))


@pytest.mark.parametrize("case", sorted(REGRESSIONS.glob("*.py")) if REGRESSIONS.exists() else [], ids=lambda p: p.name)
def test_fuzz_regressions(case):
    assert_well_behaved("case.py", case.read_bytes())


# -- hostile files -------------------------------------------------------------------------


def check(paths, cwd):
    return subprocess.run(
        [sys.executable, "-m", "greenops_lint", "check", *paths, "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_hostile_files_each_get_a_clear_message_and_the_run_goes_on(tmp_path):
    (tmp_path / "good.py").write_text("import torch\ntorch.set_default_dtype(torch.float64)\n")
    (tmp_path / "huge.py").write_bytes(b"x = 1\n" * (2 * 1024 * 1024 // 6 + 10))
    (tmp_path / "parens.py").write_text("import torch\nx = " + "(" * 1000 + "1" + ")" * 1000 + "\n")
    (tmp_path / "blocks.py").write_text(
        "import torch\n" + "".join("    " * i + "if x:\n" for i in range(1000)) + "    " * 1000 + "pass\n"
    )
    (tmp_path / "chain.py").write_text("import torch\ntorch.float64\nx = " + "+".join(["a"] * 5000) + "\n")
    (tmp_path / "longline.py").write_text("import torch\nx = [" + ",".join(["1.0"] * 25_000) + "]  # float64\n")
    (tmp_path / "binary.py").write_bytes(bytes(range(256)) * 4)
    os.symlink("loop.py", tmp_path / "loop.py")
    os.mkfifo(tmp_path / "fifo.py")
    names = [
        "good.py",
        "huge.py",
        "parens.py",
        "blocks.py",
        "chain.py",
        "longline.py",
        "binary.py",
        "loop.py",
        "fifo.py",
    ]
    result = check(names, tmp_path)
    out = result.stdout
    assert result.returncode == 1, result.stderr
    assert "good.py:2:1: GO401" in out
    assert "huge.py:1:1: GO002 cannot read file: 2 MiB is over the 2 MiB limit" in out
    assert "parens.py:2:" in out and "GO001 syntax error: too many nested parentheses" in out
    assert "blocks.py:" in out and "GO001 syntax error: too many levels of indentation" in out
    assert "chain.py:1:1: GO002 cannot analyse file: an expression chains more than 1000 operands" in out
    assert "longline.py" not in out  # long but valid: linted, nothing to report
    assert "binary.py:2:118: GO002 cannot decode file as utf-8: invalid byte 0x80" in out  # where the first bad byte is
    assert "loop.py:1:1: GO002 cannot read file: Too many levels of symbolic links" in out
    assert "fifo.py:1:1: GO002 cannot read file: not a regular file" in out
    assert "Traceback" not in result.stderr and "GO003" not in out


def test_symlink_loops_and_unreadable_directories_in_a_walk(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "train.py").write_text("import torch\ntorch.set_default_dtype(torch.float64)\n")
    os.symlink(tmp_path / "pkg", tmp_path / "pkg" / "again")  # a directory link loop
    (tmp_path / "secret").mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("secret"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = cli("check", ".")
    assert "pkg/train.py:2:1: GO401" in result.stdout
    assert "secret:1:1: GO002 cannot read directory: Permission denied" in result.stdout
    assert result.stdout.count("GO401") == 1  # the link was not followed


@pytest.mark.parametrize(
    "content,needle",
    [
        ("[tool.greenops-lint\n", "invalid TOML"),
        ("[tool.greenops-lint]\nselect = 3\n", "'select' must be a list of strings"),
        ("[tool.greenops-lint]\nbogus = 1\n", "unknown key 'bogus'"),
        ("[tool.greenops-lint]\nignore = ['NOPE1']\n", "unknown rule code or prefix 'NOPE1'"),
    ],
)
def test_config_errors_are_one_line_without_traceback(tmp_path, content, needle):
    (tmp_path / "pyproject.toml").write_text(content)
    (tmp_path / "a.py").write_text("x = 1\n")
    result = check(["a.py"], tmp_path)
    assert result.returncode == 2 and needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_pyproject_that_is_a_directory(tmp_path):
    (tmp_path / "pyproject.toml").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "greenops_lint", "check", "a.py", "--config", "pyproject.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "is a directory" in result.stderr and "Traceback" not in result.stderr


def test_debug_shows_tracebacks_of_internal_errors(tmp_path):
    from test_engine import Crashes

    linter = Linter(Config(root=ROOT), {**load_rules().rules, "GO992": Crashes}, debug=True)
    (finding,) = [f for f in linter.lint_bytes("x.py", b"import torch\ntorch.zeros(1)\n").findings if f.code == "GO003"]
    assert "Traceback" in finding.message and "ValueError: boom" in finding.message


# -- the linter never runs the code it lints --------------------------------------------------

SIDE_EFFECTS = textwrap.dedent(
    """\
    import os, subprocess, urllib.request
    import torch
    open("{marker}", "w").write("executed")
    subprocess.run(["touch", "{marker}.spawned"])
    urllib.request.urlopen("http://127.0.0.1:9/")
    torch.set_default_dtype(torch.float64)
    """
)


def test_linting_never_executes_the_file(tmp_path):
    marker = tmp_path / "MARKER"
    (tmp_path / "train_side_effects.py").write_text(SIDE_EFFECTS.format(marker=marker))
    (tmp_path / "pyproject.toml").write_text("[tool.greenops-lint]\n")
    env = {**os.environ, "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    runs = [
        [sys.executable, "-m", "greenops_lint", "check", "train_side_effects.py", "--no-cache"],
        [str(Path(sys.executable).with_name("flake8")), "--select", "GO", "train_side_effects.py"],
        [sys.executable, "-m", "pytest", "--greenops", "-p", "no:cacheprovider", "-q", "."],
        [sys.executable, "-m", "greenops_lint", "check", "train_side_effects.py", "--fix", "--unsafe-fixes"],
    ]
    for command in runs:
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
        assert "GO401" in result.stdout or "Fixed 1 finding" in result.stderr, (command, result.stdout, result.stderr)
        assert not marker.exists() and not Path(f"{marker}.spawned").exists(), command

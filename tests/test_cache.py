"""The result cache: same results warm as cold, invalidation, corrupt entries, sharing."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

BAD = "import torch\ntorch.set_default_dtype(torch.float64)\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.greenops-lint]\n")
    for index in range(20):
        (tmp_path / f"m{index:02}.py").write_text(BAD if index % 2 else "x = 1\n")
    return tmp_path


def entries(root):
    return sorted(p for p in (root / ".greenops_lint_cache").rglob("*") if p.is_file() and p.name != ".gitignore")


def test_warm_run_gives_the_same_output_from_the_cache(project, cli):
    cold = cli("check", ".", "--format", "json").stdout
    assert len(entries(project)) == 20
    stamps = [p.stat().st_mtime_ns for p in entries(project)]
    warm = cli("check", ".", "--format", "json").stdout
    assert warm == cold
    assert [p.stat().st_mtime_ns for p in entries(project)] == stamps  # nothing rewritten


def test_a_changed_file_is_linted_again(project, cli):
    cli("check", ".")
    (project / "m00.py").write_text(BAD)
    out = cli("check", ".").stdout
    assert out.startswith("m00.py:2:1: GO401")
    assert out.count("GO401") == 11


def test_changed_config_invalidates(project, cli):
    assert cli("check", ".").stdout.count("GO401") == 10
    (project / "pyproject.toml").write_text("[tool.greenops-lint]\nignore = ['GO401']\n")
    assert cli("check", ".").stdout == ""


def test_corrupt_and_foreign_entries_are_ignored_and_rewritten(project, cli):
    cold = cli("check", ".").stdout
    files = entries(project)
    files[0].write_bytes(b"\x00garbage")
    files[1].write_text(json.dumps({"key": "someone-else", "findings": [], "suppressed": []}))
    assert cli("check", ".").stdout == cold
    json.loads(files[0].read_text())  # rewritten as valid JSON


def test_no_cache_and_cache_dir(project, cli, tmp_path_factory):
    other = tmp_path_factory.mktemp("cache")
    cli("check", ".", "--no-cache")
    assert not (project / ".greenops_lint_cache").exists()
    cli("check", ".", "--cache-dir", other)
    assert len([p for p in other.rglob("*") if p.is_file() and p.name != ".gitignore"]) == 20


def test_read_only_cache_directory_does_not_break_the_run(project, cli):
    cache = project / ".greenops_lint_cache"
    cache.mkdir()
    cache.chmod(0o500)
    try:
        result = cli("check", ".")
        assert result.stdout.count("GO401") == 10
    finally:
        cache.chmod(0o700)


def test_two_runs_sharing_a_cache_agree_and_leave_it_valid(project):
    command = [sys.executable, "-m", "greenops_lint", "check", ".", "--format", "json", "--jobs", "2"]
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: subprocess.run(command, capture_output=True, text=True, timeout=120), range(2)))
    assert runs[0].stdout == runs[1].stdout
    third = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert third.stdout == runs[0].stdout
    for entry in entries(project):
        json.loads(entry.read_text())

"""Regression tests for issue 21 ("nothing lost, nothing run, nothing hangs"):
every hostile input is made here, in the test."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import ROOT
from greenops_lint import fileio
from greenops_lint.config import Config
from greenops_lint.plugins import load_rules

DOUBLE = "import torch\nmodel = net.double()\n"


def _rules():
    return load_rules().rules


def _fix(paths, write=True):
    from greenops_lint.fixes import fix_paths

    return fix_paths([str(p) for p in paths], Config(root=ROOT), _rules(), unsafe=True, write=write)


# -- writes that cannot lose data ------------------------------------------------

def test_fix_does_not_overwrite_an_edit_made_while_it_runs(tmp_path, monkeypatch):
    import greenops_lint.fixes as fixes_module

    path = tmp_path / "train.py"
    path.write_text(DOUBLE)
    real = fixes_module.fix_source

    def edit_meanwhile(linter, name, raw, unsafe):
        outcome = real(linter, name, raw, unsafe)
        path.write_text(DOUBLE + "# the user's edit\n")
        return outcome

    monkeypatch.setattr(fixes_module, "fix_source", edit_meanwhile)
    (outcome,) = _fix([path])
    assert path.read_text() == DOUBLE + "# the user's edit\n"
    assert "changed while it was being fixed" in outcome.error
    assert not [p for p in tmp_path.iterdir() if p.name != "train.py"]


def test_fix_does_not_recreate_a_file_deleted_while_it_runs(tmp_path, monkeypatch):
    import greenops_lint.fixes as fixes_module

    path = tmp_path / "train.py"
    path.write_text(DOUBLE)
    real = fixes_module.fix_source

    def delete_meanwhile(linter, name, raw, unsafe):
        outcome = real(linter, name, raw, unsafe)
        path.unlink()
        return outcome

    monkeypatch.setattr(fixes_module, "fix_source", delete_meanwhile)
    (outcome,) = _fix([path])
    assert not path.exists() and list(tmp_path.iterdir()) == []
    assert "deleted" in outcome.error


def test_fix_through_a_symlink_writes_the_target_and_keeps_the_link(tmp_path):
    target = tmp_path / "real.py"
    target.write_text(DOUBLE)
    link = tmp_path / "link.py"
    link.symlink_to("real.py")
    (outcome,) = _fix([link])
    assert outcome.error is None
    assert link.is_symlink() and os.readlink(link) == "real.py"
    assert target.read_text() == DOUBLE.replace("double()", "float()")


def test_fix_skips_a_read_only_file(tmp_path):
    path = tmp_path / "train.py"
    path.write_text(DOUBLE)
    os.chmod(path, 0o444)
    (outcome,) = _fix([path])
    assert path.read_text() == DOUBLE
    assert "read-only" in outcome.error
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o444


def test_fix_keeps_the_owner_of_a_file_it_may_write(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to give the file another owner")
    path = tmp_path / "train.py"
    path.write_text(DOUBLE)
    os.chown(path, 4242, 4243)
    os.chmod(path, 0o666)
    (outcome,) = _fix([path])
    assert outcome.error is None and "float()" in path.read_text()
    info = os.stat(path)
    assert (info.st_uid, info.st_gid) == (4242, 4243)


def test_fix_keeps_the_final_newline_of_a_cr_only_file(tmp_path):
    path = tmp_path / "cr.py"
    path.write_bytes(DOUBLE.replace("\n", "\r").encode())
    (outcome,) = _fix([path])
    assert outcome.error is None
    assert path.read_bytes() == b"import torch\rmodel = net.float()\r"


def test_fix_leaves_a_unicode_escape_file_alone(tmp_path):
    path = tmp_path / "ue.py"
    original = b"# coding: unicode_escape\n" + DOUBLE.encode()
    path.write_bytes(original)
    (outcome,) = _fix([path])
    assert path.read_bytes() == original
    assert "codec" in outcome.error


def test_punycode_cookie_is_a_go002_finding(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.py").write_bytes(b"# coding: punycode\n" + DOUBLE.encode())
    result = cli("check", "p.py", "--no-cache")
    assert result.exit_code == 1
    assert "GO002" in result.stdout and "punycode" in result.stdout

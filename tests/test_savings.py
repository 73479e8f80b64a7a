"""The savings model: hardware and grid tables, estimate functions, --statistics arithmetic."""

from __future__ import annotations

import re
import textwrap

import pytest

from conftest import lint_source
from greenops_lint.savings import float64_time_factor, get_hardware, grid_table, hardware_table

REQUIRED_HARDWARE = {
    "t4", "v100", "a10", "a10g", "l4", "a100-40gb", "a100-80gb", "h100-sxm", "h200", "rtx-3090", "rtx-4090",
    "x86-server-cpu", "cloud-vcpu-2", "generic-gpu",
}


def test_hardware_table_has_every_required_profile_with_a_source():
    table = hardware_table()
    assert REQUIRED_HARDWARE <= set(table)
    for key, profile in table.items():
        assert profile.source, key
        if key != "generic-gpu":
            assert profile.fp32 > 0 and profile.fp64 > 0 and profile.tdp_w > 0 and profile.memory_gb > 0, key
    assert table["generic-gpu"].assumption


def test_grid_table_has_world_and_twenty_regions_with_sources():
    grid = grid_table()
    assert grid["WORLD"].intensity == 475
    assert len(grid) >= 21
    assert all(region.source and region.year >= 2019 for region in grid.values())


@pytest.mark.parametrize(
    "hardware,high",
    [
        ("a100-80gb", 2.0),  # 19.5 / 9.7 = 2.01 TFLOPS
        ("t4", 32.0),  # 8.1 / 0.25 = 32.4
        ("rtx-4090", 64.0),  # 82.6 / 1.29 = 64.03
        ("h100-sxm", 2.0),  # 67 / 34 = 1.97 -> at least the 2x bytes ratio
        ("generic-gpu", 64.0),  # the largest ratio in the table
    ],
)
def test_float64_time_factor_against_hand_computed_ratios(hardware, high):
    estimate = float64_time_factor(get_hardware(hardware))
    assert (estimate.metric, estimate.low, estimate.high, estimate.hardware) == ("time_factor", 2.0, high, hardware)
    assert estimate.basis


def test_every_default_rule_fixture_finding_has_an_estimate(cli):
    import json

    from conftest import FIXTURES

    from greenops_lint.plugins import load_rules

    rules = load_rules().rules
    findings = json.loads(cli("check", FIXTURES, "--format", "json", "-q").stdout)
    missing = {f["code"] for f in findings if f["estimate"] is None and rules[f["code"]].default_enabled}
    assert not missing, f"default-on rules without an estimate: {missing}"


def test_statistics_show_the_co2_arithmetic(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("import torch\ntorch.set_default_dtype(torch.float64)\n")
    out = cli("check", "train.py", "--statistics", "--gpu-hours", "100", "--hardware", "a100-80gb", "--region", "FR", "--pue", "1.2").stdout
    assert "GO401 global-float64-default" in out
    # 100 GPU-h x (1 - 1/2) = 50 GPU-h; 50 x 400 W x 0.7 x 1.2 = 16.8 kWh; 16.8 x 56 g = 0.9 kg
    assert "100 GPU-h x (1 - 1/2) = 50.0 GPU-h" in out
    assert "50.0 GPU-h x 400 W x 0.7 utilisation x PUE 1.2 = 16.8 kWh" in out
    assert "16.8 kWh x 56 gCO2e/kWh (France, 2023) = 0.9 kg CO2e" in out


@pytest.mark.parametrize(
    "args,needle",
    [
        (("--hardware", "a100"), "unknown hardware 'a100'; valid: generic-gpu, t4"),
        (("--region", "XX"), "unknown region 'XX'"),
        (("--pue", "0.5"), "--pue must be >= 1.0"),
        (("--gpu-hours", "-1"), "--gpu-hours must be positive"),
    ],
)
def test_bad_savings_options_exit_2(tmp_path, monkeypatch, cli, args, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("x = 1\n")
    result = cli("check", "train.py", *args)
    assert result.exit_code == 2 and needle in result.stderr


def test_config_keys_for_the_savings_model(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [tool.greenops-lint]
            hardware = "t4"
            region = "se"
            pue = 1.1
            gpu-hours = 10
            """
        )
    )
    (tmp_path / "train.py").write_text("import torch\ntorch.set_default_dtype(torch.float64)\n")
    # --statistics prints ruff's table instead of the findings: the finding line is read from a plain run.
    out = cli("check", "train.py", "--statistics").stdout + cli("check", "train.py").stdout
    assert "on NVIDIA T4" in out and "(Sweden, 2023)" in out and "PUE 1.1" in out
    assert re.search(r"10 GPU-h x \(1 - 1/32\) = 9\.7 GPU-h", out)
    (tmp_path / "pyproject.toml").write_text("[tool.greenops-lint]\npue = 0.9\n")
    assert cli("check", "train.py").exit_code == 2


def test_text_line_carries_the_estimate_headline(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("import torch\ntorch.set_default_dtype(torch.float64)\n")
    line = cli("check", "train.py", "--hardware", "t4").stdout.strip()
    assert line.endswith("(est. 2-32x time on t4)")
    assert "\n" not in line


def test_hardware_command_lists_profiles_and_regions(cli):
    out = cli("hardware").stdout
    assert "a100-80gb" in out and "WORLD" in out
    t4 = next(line for line in out.splitlines() if line.split()[:1] == ["t4"])
    assert "BF16 n/a TFLOPS" in t4  # the T4 has no BF16 units: not "0 TFLOPS"

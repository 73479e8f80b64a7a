"""The savings model: hardware and grid tables, estimate functions, --statistics arithmetic."""

from __future__ import annotations

import re
import textwrap

import pytest

from greenops_lint.savings import Workload, float64_time_factor, get_hardware, grid_table, hardware_table

REQUIRED_HARDWARE = {
    "t4",
    "v100",
    "a10",
    "a10g",
    "l4",
    "a100-40gb",
    "a100-80gb",
    "h100-sxm",
    "h200",
    "rtx-3090",
    "rtx-4090",
    "x86-server-cpu",
    "cloud-vcpu-2",
    "generic-gpu",
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
        ("t4", 32.0),  # 8.1 / 0.25 = 32.4: no TF32, FP32 vs FP64 for everything
        ("rtx-4090", 64.0),  # 82.6 / 1.29 = 64.03 (TF32 82.6 on GeForce: the same)
        ("v100", 2.0),  # 15.7 / 7.8: no tensor cores for either
    ],
)
def test_consumer_and_pre_ampere_ratios_are_kept(hardware, high):
    estimate = float64_time_factor(get_hardware(hardware))
    assert (estimate.metric, estimate.low, estimate.high, estimate.hardware) == ("time_factor", 1.0, high, hardware)
    assert estimate.basis and estimate.source == "datasheet"


TINY = Workload("mlp", linears=((4, 4), (4, 4), (4, 2)), batch=64)
WIDE = Workload("mlp", linears=((8192, 8192), (8192, 8192), (8192, 10)), batch=64)
# ResNet-like: 7x7 stem and 3x3 stages on 56x56 maps, batch 128.
RESNET = Workload(
    "conv", convs=((3, 64, 7), (64, 64, 3), (64, 128, 3), (128, 256, 3), (256, 512, 3)), image=(56, 56), batch=128
)


def test_float64_on_a100_depends_on_the_work():
    a100 = get_hardware("a100-80gb")
    tiny, wide, resnet = (float64_time_factor(a100, w) for w in (TINY, WIDE, RESNET))
    # Overhead-bound: every kernel costs its launch in either dtype.
    assert (tiny.low, tiny.high) == (1.0, 1.0)
    # GEMMs on FP64 tensor cores run at the FP32 rate; the optimizer's bytes double.
    assert 1.0 <= wide.low <= 1.5 and wide.high == 2.0
    # Convolutions compare with cuDNN's TF32 default: 156 vs 19.5 / 9.7 TFLOPS.
    assert resnet.low >= 4 and resnet.high <= 16
    for estimate, words in ((tiny, "MLP 4-4-4-2, batch 64"), (resnet, "CNN 3-64-64-128-256-512")):
        assert words in estimate.basis and "roofline" in estimate.basis
        assert estimate.hardware == "a100-80gb" and estimate.source == "datasheet"
    assert any("allow_tf32" in a for a in resnet.assumptions)


def test_unsized_float64_names_each_case():
    estimate = float64_time_factor(get_hardware("a100-80gb"))
    assert (estimate.low, estimate.high) == (1.0, 16.0)  # TF32 156 / FP64 vector 9.7
    for words in ("overhead-bound small models ~1x", "memory-bound ops 2x", "matmuls 1-2x", "convolutions 8-16x"):
        assert words in estimate.basis
    assert any("not literal" in a for a in estimate.assumptions)
    assert (float64_time_factor(get_hardware("a100-80gb"), Workload("mlp")).high) == 2.0
    # TF32 matmuls (TensorFlow's and JAX's default on Ampere) make GEMMs 8x.
    tf = float64_time_factor(get_hardware("a100-80gb"), Workload("mlp", framework="tensorflow"))
    assert tf.high == 16.0 and "TF32 156" in tf.basis


def test_generic_gpu_spans_the_profiles():
    estimate = float64_time_factor(get_hardware("generic-gpu"))
    assert estimate.low == 1.0 and estimate.high == 128.0  # A10: TF32 62.5 vs FP64 0.49 for convolutions
    mlp = float64_time_factor(get_hardware("generic-gpu"), Workload("mlp"))
    assert mlp.high == 64.0  # 1:64 consumer parts


def test_cpu_profile_matches_the_calibration():
    cpu = get_hardware("cloud-vcpu-2")
    mlp = float64_time_factor(cpu, Workload("mlp", linears=((1024, 1024), (1024, 1024), (1024, 100)), batch=64))
    cnn = float64_time_factor(cpu, Workload("conv", convs=((3, 16, 3), (16, 32, 3), (32, 64, 3)), batch=16))
    # probe-research.md 3.a: MLP step 1.79-1.84x, CNN step 3.30-3.44x.
    assert mlp.low <= 1.84 * 1.25 and mlp.high >= 1.79 / 1.25
    assert cnn.low <= 3.3 <= cnn.high


def test_cpu_measured_estimate_says_so_in_its_headline():
    from greenops_lint.finding import SavingsEstimate

    estimate = SavingsEstimate("time_factor", 1.0, 2.4, "x", "measured", "a100-80gb", source="measured on CPU")
    assert estimate.headline() == "est. 1-2.4x time, measured on CPU"
    assert estimate.to_json()["source"] == "measured on CPU"


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
    out = cli(
        "check",
        "train.py",
        "--statistics",
        "--gpu-hours",
        "100",
        "--hardware",
        "a100-80gb",
        "--region",
        "FR",
        "--pue",
        "1.2",
    ).stdout
    assert "GO401 global-float64-default" in out
    # No literal sizes: 1x (overhead-bound, or GEMMs on FP64 tensor cores) to 16x (convolutions vs TF32).
    # 100 GPU-h x (1 - 1/16) = 93.75 GPU-h; x 400 W x 0.7 x 1.2 = 31.5 kWh; x 56 g = 1.8 kg
    # No training call anywhere: the file with the finding stands for the workload, and the output says so.
    assert "training scripts: none found (no module-level code of the 1 analysed file reaches a training call" in out
    assert "instead each file with a whole-step finding is taken as one: train.py" in out
    assert "100 GPU-h x (1 - 1/1) = 0.0 GPU-h" in out
    assert "100 GPU-h x (1 - 1/16) = 93.8 GPU-h" in out
    assert "93.8 GPU-h x 400 W x 0.7 utilisation x PUE 1.2 = 31.5 kWh" in out
    assert "31.5 kWh x 56 gCO2e/kWh (France, 2023) = 1.8 kg CO2e" in out


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
    assert line.endswith("(est. 1-32x time on t4)")
    assert "\n" not in line


def test_hardware_command_lists_profiles_and_regions(cli):
    out = cli("hardware").stdout
    assert "a100-80gb" in out and "WORLD" in out
    t4 = next(line for line in out.splitlines() if line.split()[:1] == ["t4"])
    assert "BF16 n/a TFLOPS" in t4  # the T4 has no BF16 units: not "0 TFLOPS"


def test_cpu_measured_factors_stay_out_of_gpu_hours():
    from greenops_lint.analysis.training import ScriptFacts
    from greenops_lint.config import Config
    from greenops_lint.finding import Finding, SavingsEstimate
    from greenops_lint.statistics import workload_lines

    def finding(code, family, estimate):
        return Finding("train.py", 1, 1, 1, 2, code, code.lower(), family, "m", estimate=estimate)

    ddp = SavingsEstimate(
        "time_factor", 1.0, 2.4, "x", "measured on 2 CPU gloo ranks", "a100-80gb", source="measured on CPU"
    )
    f64 = SavingsEstimate("time_factor", 1.0, 2.0, "x", "roofline", "a100-80gb", source="derived")
    loads = SavingsEstimate("repeated_work", 9.0, 9.0, "extra loads", "loop", "a100-80gb")
    config = Config().with_overrides(hardware="a100-80gb", gpu_hours=100.0)
    scripts = {"train.py": ScriptFacts((".backward()",))}
    out = "\n".join(
        workload_lines(
            [finding("GO202", "unused", ddp), finding("GO402", "precision", f64), finding("GO101", "caching", loads)],
            config,
            scripts,
        )
    )
    (line,) = [line for line in out.splitlines() if line.startswith("  train.py: ")]
    assert line.endswith("slowdown 1-2x from precision 1-2x") and "100 GPU-h x (1 - 1/2) = 50.0 GPU-h [high]" in line
    assert "not converted: 1 finding whose time factor was measured on CPU (GO202)" in out
    assert "not converted: 1 repeated-work finding (GO101)" in out
    only_cpu = "\n".join(workload_lines([finding("GO202", "unused", ddp)], config))
    assert "nothing converts to GPU-hours" in only_cpu and "(GO202)" in only_cpu
    # On a CPU profile the CPU measurement is the right source.
    cpu = "\n".join(workload_lines([finding("GO202", "unused", ddp)], config.with_overrides(hardware="cloud-vcpu-2")))
    assert "1-2.4x" in cpu


def test_generic_gpu_statistics_do_not_mix_cards(tmp_path, monkeypatch, cli):
    """The generic profile's time factor comes from one card and its power from
    another: no GPU-hours, energy or CO2e are computed from it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("import torch\ntorch.set_default_dtype(torch.float64)\n")
    out = cli("check", "train.py", "--statistics", "--gpu-hours", "100").stdout
    assert "need one GPU" in out and "pass --hardware" in out
    assert "GPU time saved" not in out and "kg CO2e" not in out

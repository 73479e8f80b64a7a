"""Plans: sizes read from the code where literal, defaults labelled as such."""

from __future__ import annotations

import ast
import os
import textwrap

import pytest

from conftest import FIXTURES, lint_source
from greenops_lint.finding import Finding, SavingsEstimate
from greenops_lint.probe import plans
from greenops_lint.probe.plans import Host, SourceIndex, evaluate_count, make_plan

CPU = Host(cuda=False, profile="cloud-vcpu-2", usable_cpus=2, cpu_count=2, bf16=True, workdir="/tmp")
GPU = Host(cuda=True, device_name="NVIDIA H100 80GB HBM3", profile="h100-sxm", usable_cpus=16, cpu_count=16, bf16=True)


def planned(source: str, code: str, host: Host = CPU, path: str = "train.py", hardware: str = "cloud-vcpu-2"):
    source = textwrap.dedent(source)
    findings = lint_source(source, hardware=hardware, path=path)
    finding = next(f for f in findings if f.code == code)
    return make_plan(finding, host, findings, SourceIndex(path, source))


def test_float64_mlp_sized_from_literal_layers_and_batch():
    plan = make_plan(*_fixture_finding("GO402_float64_mlp.py", "GO402"), CPU, [])
    assert plan.bench == "dtype" and plan.sized == "literal"
    assert plan.params["dims"] == [1024, 1024, 1024, 100]
    assert plan.params["batch"] == 64
    assert plan.variants == ("float64", "float32", "bfloat16")
    assert plan.claim.metric == "time_factor" and plan.claim.low == 2.0  # rechecked for the CPU profile
    assert "MLP 1024-1024-1024-100, batch 64" in plan.sizes


def _fixture_finding(name, code):
    from greenops_lint.config import load_config
    from greenops_lint.engine import Linter
    from greenops_lint.plugins import load_rules
    from greenops_lint.selection import enabled_rules

    registry = load_rules()
    config = load_config(None, FIXTURES, set(registry.rules), {}).with_overrides(hardware="cloud-vcpu-2")
    path = str(FIXTURES / "probe" / name)
    finding = next(
        f for f in Linter(config, enabled_rules(registry.rules, config)).lint_path(path).findings if f.code == code
    )
    return (finding,)


def test_cnn_sized_from_conv_layers_and_a_literal_image_shape():
    plan = planned(
        """
        import torch
        from torch import nn
        net = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 5), nn.Flatten(), nn.Linear(32, 7))
        x = torch.randn(8, 3, 48, 48)
        net = net.double()
        """,
        "GO402",
    )
    assert plan.params["model"] == "cnn"
    assert plan.params["convs"] == [[3, 16, 3], [16, 32, 5]]
    assert plan.params["image"] == [3, 48, 48] and plan.params["batch"] == 8
    assert plan.params["classes"] == 7


def test_default_sizes_are_labelled():
    plan = planned("import torch\ntorch.set_default_dtype(torch.float64)\n", "GO401", host=Host(bf16=False))
    assert plan.sized == "default"
    assert plan.params["dims"] == plans.DEFAULT_MLP
    assert "default" in plan.sizes
    assert plan.variants == ("float64", "float32")
    assert any("bf16 not measured" in note for note in plan.notes)


def test_huge_literal_shapes_get_a_smaller_batch():
    plan = planned(
        """
        from torch import nn
        model = nn.Sequential(nn.Linear(8192, 8192), nn.Linear(8192, 8192)).double()
        loader = DataLoader(ds, batch_size=512)
        """,
        "GO402",
    )
    assert plan.params["batch"] < 512
    assert any("batch reduced" in n for n in plan.notes)


def test_numpy_float64_with_a_literal_shape_is_an_exact_byte_count():
    plan = planned("import numpy as np, torch\nx = torch.from_numpy(np.random.rand(1000, 3))\n", "GO403")
    assert plan.bench == "array" and plan.measure == "bytes"
    assert plan.params["numel"] == 3000
    assert plan.claim.deterministic and plan.claim.low == 12000


def test_repeated_load_plan_from_the_fixture(tmp_path):
    (finding,) = _fixture_finding("GO101_npy_epochs.py", "GO101")
    plan = make_plan(finding, Host(workdir=str(tmp_path)), [])
    assert plan.bench == "repeated_load" and plan.params["loader"] == "numpy.load"
    assert plan.params["iterations"] == 5  # range(5): 4 extra loads
    assert plan.params["path"].endswith(".npy") and plan.params["path"].startswith(str(tmp_path))
    assert plan.prepare[0] == "make_file" and plan.prepare[1]["kind"] == "npy"
    assert plan.sized == "mixed" and "default size" in plan.sizes
    assert plan.claim.metric == "repeated_work" and plan.claim.low == 4


@pytest.mark.parametrize(
    "call, loader, kind",
    [
        ('pd.read_csv("train.csv")', "pandas.read_csv", "csv"),
        ('torch.load("weights.pt")', "torch.load", "pt"),
        ('json.load(open("labels.json"))', "json.load", "json"),
        ('np.loadtxt("x.csv", delimiter=",")', "numpy.loadtxt", "csv"),
    ],
)
def test_the_loader_picks_the_file_type(call, loader, kind, tmp_path):
    source = f"""
    import json
    import numpy as np
    import pandas as pd
    import torch
    for epoch in range(3):
        data = {call}
        for batch in loader:
            loss = model(batch).mean()
            loss.backward()
    """
    plan = planned(source, "GO101", host=Host(workdir=str(tmp_path)))
    assert plan.params["loader"] == loader
    assert plan.prepare[1]["kind"] == kind
    assert plan.params["iterations"] == 3


def test_an_existing_file_sizes_the_synthetic_one(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "features.npy").write_bytes(b"\0" * 300_000)
    source = textwrap.dedent(
        """
        import numpy as np
        for epoch in range(3):
            feats = np.load("data/features.npy")
            for batch in loader:
                loss = model(batch).mean()
                loss.backward()
        """
    )
    path = tmp_path / "train.py"
    path.write_text(source)
    findings = lint_source(source, hardware="cloud-vcpu-2", path=str(path))
    plan = make_plan(findings[0], Host(workdir=str(tmp_path)), findings, SourceIndex(str(path), source))
    assert plan.prepare[1]["bytes"] == 300_000
    assert plan.sized == "file"


def test_a_loader_without_template_is_not_applicable():
    plan = planned(
        """
        import datasets
        for epoch in range(3):
            ds = datasets.load_dataset("imdb")
            for batch in loader:
                loss = model(batch).mean()
                loss.backward()
        """,
        "GO101",
    )
    assert plan.problem and "no template" in plan.problem


UNUSED = """
import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)
        self.aux = nn.Linear(300, 200, bias=False)

    def forward(self, x):
        return self.fc(x)

model = DDP(Net(), find_unused_parameters=True)
"""


def test_unused_layer_spec_and_ddp_reuse_it():
    unused = planned(UNUSED, "GO201")
    assert unused.params["layer"] == {"cls": "Linear", "args": [300, 200], "kwargs": {"bias": False}}
    assert unused.sized == "literal" and unused.claim.low == 300 * 200 * 4
    ddp = planned(UNUSED, "GO202")
    assert ddp.params["layer"] == unused.params["layer"]
    assert ddp.clock == "wall" and ddp.claim.low == 1.0
    # The verdict is on the flag alone (before/after); the layer runs only as
    # written, and the pair's ratio is an extra credited to both findings.
    assert ddp.variants == ("before", "after", "as_written")
    assert "layer removed" in ddp.labels["before"] and "layer removed" in ddp.labels["after"]
    (pair,) = ddp.extras
    assert (pair.numerator, pair.denominator, pair.credited_to) == ("as_written", "after", ("GO201", "GO202"))
    assert ddp.sized == "mixed" and "nn.Linear(300, 200, bias=False)" in ddp.sizes


def test_ddp_without_an_unused_layer_measures_the_flag_alone():
    ddp = planned(UNUSED.replace("        self.aux = nn.Linear(300, 200, bias=False)\n", ""), "GO202")
    assert ddp.variants == ("before", "after") and ddp.extras == []
    assert ddp.params["layer"] is None and ddp.sized == "default"
    assert "no unused layer" in ddp.sizes


def test_unused_layer_without_literal_sizes_uses_a_default_and_checks_nothing():
    plan = planned(
        UNUSED.replace("nn.Linear(300, 200, bias=False)", "nn.Linear(width, 200)").replace(
            "self.fc = nn.Linear(64, 10)", "width = 3\n        self.fc = nn.Linear(64, 10)"
        ),
        "GO201",
    )
    assert plan.sized == "default" and plan.claim is None


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("os.cpu_count()", 6),
        ("os.cpu_count() * 4", 24),
        ("2 * mp.cpu_count() + 1", 13),
        ("min(4, os.cpu_count())", 4),
        ("max(1, os.cpu_count() - 2)", 4),
        ("os.cpu_count() or 1", 6),
        ("WORKERS", 12),
        ("str(os.cpu_count())", 6),
        ("args.workers", None),
    ],
)
def test_worker_counts_are_evaluated_for_this_host(expression, expected):
    index = SourceIndex(
        "x.py", f"import os\nimport multiprocessing as mp\nWORKERS = os.cpu_count() * 2\nvalue = {expression}\n"
    )
    node = index.constants["value"]
    assert evaluate_count(index, node, host_cpus=6) == expected


def test_workers_plan_and_not_applicable_when_the_count_is_not_above_the_cap():
    source = """
    import os
    from torch.utils.data import DataLoader
    loader = DataLoader(train_ds, batch_size=64, num_workers=os.cpu_count() * 4)
    """
    plan = planned(source, "GO301", host=Host(usable_cpus=2, cpu_count=2))
    assert plan.bench == "workers" and plan.params["counts"] == {"before": 8, "after": 2}
    assert plan.problem is None and plan.clock == "wall"
    plain = planned(source.replace(" * 4", ""), "GO301", host=Host(usable_cpus=2, cpu_count=2))
    assert plain.problem and "not applicable on this hardware" in plain.problem
    threads = planned(
        "import torch, multiprocessing as mp\ntorch.set_num_threads(mp.cpu_count() * 2)\n",
        "GO301",
        host=Host(usable_cpus=2, cpu_count=2),
    )
    assert threads.bench == "threads" and threads.params["counts"] == {"before": 4, "after": 2}


def _finding(code, line, column=1, estimate=None, path="train.py"):
    return Finding(path, line, column, line, column + 5, code, "name", "efficiency", "msg", estimate=estimate)


def test_device_creation_is_a_gpu_probe():
    source = "import torch\ndevice = torch.device('cuda')\nfor step in range(10):\n    x = torch.zeros(256, 512).to(device)\n"
    cpu = planned(source, "GO502")
    assert cpu.problem and "not applicable on this hardware" in cpu.problem
    gpu = planned(source, "GO502", host=GPU)
    assert gpu.problem is None and gpu.params == {"shape": [256, 512], "factory": "zeros"} and gpu.sized == "literal"
    assert gpu.claim.metric == "ratio" and gpu.claim.low > 1  # a measurable saving


def test_claims_follow_the_estimate_metric():
    estimate = SavingsEstimate("memory_bytes", 10.0, 10.0, "bytes", "basis", "cloud-vcpu-2")
    assert plans.claim_from_estimate(estimate).deterministic
    assert plans.claim_from_estimate(None) is None
    energy = SavingsEstimate("energy", 1.0, 2.0, "kWh", "basis", "t4")
    assert plans.claim_from_estimate(energy) is None


def test_source_index_resolves_aliases():
    index = SourceIndex("x.py", "import torch.nn as N\nfrom numpy import load as L\nN.Linear(3, 4)\nL('a.npy')\n")
    names = [index.call_name(c) for c in index.calls]
    assert names == ["torch.nn.Linear", "numpy.load"]
    assert isinstance(index.call_at(3, 1), ast.Call)
    assert SourceIndex("bad.py", "def (:\n").tree is None
    assert os.path.basename(index.path) == "x.py"

"""GO4xx: float64 defaults, casts and NumPy conversions; aliases, helpers, look-alikes, estimates and fixes."""

from __future__ import annotations

import textwrap

import pytest

from conftest import lint_source
from greenops_lint.config import Config
from greenops_lint.fixes import fix_paths
from greenops_lint.plugins import load_rules


def go4(source: str, **kwargs) -> list[tuple[str, int]]:
    return [(f.code, f.line) for f in lint_source(textwrap.dedent(source), **kwargs) if f.code.startswith("GO4")]


def fixed(source: str, tmp_path) -> str:
    """The source after `--fix --unsafe-fixes` of the precision rules."""
    rules = {code: rule for code, rule in load_rules().rules.items() if code.startswith("GO4")}
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(source))
    fix_paths([str(path)], Config(root=tmp_path, select=tuple(rules)), rules, unsafe=True)
    return path.read_text()


ALIASED_TORCH = """
import torch as T
T.set_default_dtype(T.float64)
model = T.nn.Linear(4, 4).double()
"""


def test_torch_imported_under_another_name_is_resolved():
    assert go4(ALIASED_TORCH) == [("GO401", 3), ("GO402", 4)]


def test_fix_keeps_the_torch_alias(tmp_path):
    assert fixed(ALIASED_TORCH, tmp_path) == textwrap.dedent(
        """
        import torch as T
        T.set_default_dtype(T.float32)
        model = T.nn.Linear(4, 4).float()
        """
    )


def test_numpy_imported_under_another_name_is_resolved():
    source = """
    import numpy as N
    import torch
    x = torch.from_numpy(N.random.rand(10, 3))
    y = torch.tensor(N.zeros((4, 5)))
    labels = torch.from_numpy(N.arange(10))
    """
    findings = [f for f in lint_source(textwrap.dedent(source)) if f.code == "GO403"]
    assert [f.line for f in findings] == [4, 5]
    assert "(N.random.rand(10, 3))" in findings[0].message


def test_model_built_by_a_helper_one_call_deep_is_a_model():
    source = """
    import torch.nn as nn

    def build():
        return nn.Sequential(nn.Linear(8, 8))

    model = build().double()
    """
    (finding,) = [f for f in lint_source(textwrap.dedent(source)) if f.code == "GO402"]
    assert finding.line == 7 and "casts the model to float64" in finding.message


@pytest.mark.parametrize(
    "source",
    [
        # A function of the module that happens to be named like torch's.
        """
        import torch

        def set_default_dtype(dtype):
            pass

        set_default_dtype(torch.float64)
        """,
        # A helper returning a scalar: `.double()` of a total is not a model.
        """
        import torch

        def total(values):
            return sum(values)

        t = total(xs).double()
        """,
        # Scalar metrics, a dtype from configuration, integer data, loops over range().
        """
        import numpy as np, torch
        accuracy = correct.double() / count
        torch.set_default_dtype(dtype)
        labels = torch.from_numpy(np.random.randint(0, 10, (5,)))
        for i in range(3):
            i.double()
        """,
        # Numerical gradient checks need float64.
        """
        import torch
        from torch.autograd import gradcheck
        torch.set_default_dtype(torch.float64)
        """,
    ],
)
def test_look_alikes_are_not_flagged(source):
    assert go4(source) == []


def test_literal_shape_gives_extra_bytes():
    from greenops_lint.rules.precision.go403_numpy_float64_into_framework import FLOAT32_BYTES, FLOAT64_BYTES

    (finding,) = lint_source("import numpy as np, torch\nx = torch.from_numpy(np.random.rand(1000, 16))\n")
    assert finding.estimate.metric == "memory_bytes"
    assert finding.estimate.low == 1000 * 16 * 4 == 1000 * 16 * (FLOAT64_BYTES - FLOAT32_BYTES)


def test_pages_quote_the_estimate_constants():
    from greenops_lint.rules.precision import go401_global_float64_default as go401
    from greenops_lint.rules.precision import go403_numpy_float64_into_framework as go403
    from greenops_lint.savings import FLOAT64_BYTES_RATIO

    assert f"memory-bound {FLOAT64_BYTES_RATIO:g}x" in go401.GlobalFloat64Default.section("Estimate")
    extra = go403.FLOAT64_BYTES - go403.FLOAT32_BYTES
    assert f"({extra} bytes an element)" in go403.NumpyFloat64IntoFramework.section("Estimate")
    assert f"({FLOAT64_BYTES_RATIO:g}x the bytes" in go403.NumpyFloat64IntoFramework.section("Estimate")
    assert f"{go403.MATERIAL_EXTRA_BYTES >> 20} MiB or more" in go403.NumpyFloat64IntoFramework.section(
        "When it is material"
    )


def test_float64_fixes_are_left_out_when_float64_data_would_remain(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = "import torch\nx = torch.randn(64, 512, dtype=torch.float64)\nmodel = net.double()\nout = model(x)\n"
    (tmp_path / "train.py").write_text(source)
    result = cli("check", "train.py", "--fix", "--unsafe-fixes")
    assert (tmp_path / "train.py").read_text() == source  # .double() -> .float() would break model(x)
    assert "float64 fixes left out" in result.stderr
    assert "GO402" in result.stdout


# -- the float64 estimate follows the file's workload (issue 18) ------------------------------

TINY_POLICY = """
import torch
from torch import nn
policy = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)).double()
"""
WIDE_MLP = """
import torch
from torch import nn
{tf32}torch.set_default_dtype(torch.float64)
model = nn.Sequential(nn.Linear(8192, 8192), nn.ReLU(), nn.Linear(8192, 8192), nn.ReLU(), nn.Linear(8192, 10))
loader = torch.utils.data.DataLoader(dataset, batch_size=64)
"""
RESNET_LIKE = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 64, 7)
        self.layer1 = nn.Conv2d(64, 64, 3)
        self.layer2 = nn.Conv2d(64, 128, 3)
        self.layer3 = nn.Conv2d(128, 256, 3)
        self.layer4 = nn.Conv2d(256, 512, 3)
        self.fc = nn.Linear(512, 10)

net = Net().double()
x = torch.randn(128, 3, 56, 56)
"""


def only(source: str, code: str, hardware: str = "a100-80gb"):
    (finding,) = [f for f in lint_source(textwrap.dedent(source), hardware=hardware) if f.code == code]
    return finding


def test_a_tiny_model_in_float64_costs_about_1x_on_a100():
    finding = only(TINY_POLICY, "GO402")
    assert (finding.estimate.low, finding.estimate.high) == (1.0, 1.0)
    assert "MLP 4-4-2" in finding.estimate.basis and "roofline" in finding.estimate.basis
    assert "about the same step time as float32 on NVIDIA A100" in finding.message
    assert "slower" not in finding.message


def test_an_8192_wide_mlp_costs_1_to_2x_on_a100():
    finding = only(WIDE_MLP.format(tf32=""), "GO401")
    low, high = finding.estimate.low, finding.estimate.high
    assert 1.0 <= low <= 1.5 and high == 2.0
    assert "MLP 8192-8192-8192-10, batch 64" in finding.estimate.basis
    # The message quotes the same computation.
    assert f"{low:g}-{high:g}x slower on NVIDIA A100" in finding.message


def test_tf32_switched_on_in_the_file_raises_the_float64_matmul_cost():
    plain = only(WIDE_MLP.format(tf32=""), "GO401").estimate
    tf32 = only(WIDE_MLP.format(tf32="torch.backends.cuda.matmul.allow_tf32 = True\n"), "GO401").estimate
    precision = only(WIDE_MLP.format(tf32='torch.set_float32_matmul_precision("high")\n'), "GO401").estimate
    assert tf32.high > plain.high and precision == tf32
    assert "TF32 156" in tf32.basis and any("switched on in the code" in a for a in tf32.assumptions)


def test_a_resnet_like_conv_net_costs_4x_or_more_on_a100():
    finding = only(RESNET_LIKE, "GO402")
    assert finding.estimate.low >= 4 and finding.estimate.high <= 16
    assert "CNN 3-64-64-128-256-512 channels on 56x56 inputs, batch 128" in finding.estimate.basis
    assert f"{finding.estimate.low:g}-{finding.estimate.high:g}x slower" in finding.message


def test_unsized_model_keeps_the_wide_range_with_its_cases_named():
    finding = only("import torch\nmodel = model.double()\n", "GO402")
    assert (finding.estimate.low, finding.estimate.high) == (1.0, 16.0)
    for words in ("overhead-bound small models ~1x", "memory-bound ops 2x", "matmuls 1-2x", "convolutions 8-16x"):
        assert words in finding.estimate.basis
    assert "1-16x slower on NVIDIA A100" in finding.message


def test_keras_float64_default_is_judged_with_tensorflow_tf32():
    source = """
    from tensorflow import keras
    keras.backend.set_floatx("float64")
    inputs = keras.Input(shape=(4096,))
    h = keras.layers.Dense(4096)(inputs)
    outputs = keras.layers.Dense(10)(h)
    """
    estimate = only(source, "GO401").estimate
    assert "MLP 4096-4096-10" in estimate.basis and "TF32 156" in estimate.basis
    assert estimate.high > 2.0


# -- GO403: what the tensor feeds decides materiality; look-alikes from real code ------------


def test_float64_data_feeding_a_float64_model_carries_the_models_time_factor():
    source = """
    import numpy as np
    import torch
    from torch import nn
    model = nn.Sequential(nn.Linear(8192, 8192), nn.ReLU(), nn.Linear(8192, 10)).double()
    features = np.loadtxt("train.csv", delimiter=",")
    x = torch.from_numpy(features)
    out = model(x)
    """
    finding = only(source, "GO403")
    assert finding.severity == "warning" and "feeds model(...)" in finding.message
    assert finding.estimate.metric == "time_factor" and finding.estimate.unit == "x"
    assert "MLP 8192-8192-10" in finding.estimate.basis


def test_float64_data_feeding_a_float32_model_costs_its_bytes_not_a_model_factor():
    source = """
    import numpy as np
    import torch
    features = np.loadtxt("train.csv", delimiter=",")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(features)), batch_size=32)
    """
    finding = only(source, "GO403")
    assert finding.severity == "warning" and "feeds a TensorDataset" in finding.message
    assert (finding.estimate.metric, finding.estimate.unit, finding.estimate.high) == (
        "time_factor",
        "x data-transfer time",
        2.0,
    )
    assert "slower" not in finding.message


@pytest.mark.parametrize(
    "source",
    [
        # A scheduler's timesteps, not seen feeding a model: info.
        """
        import numpy as np
        import torch
        class Scheduler:
            def set_timesteps(self, n, device):
                timesteps = np.linspace(999, 0, n + 1)
                self.timesteps = torch.from_numpy(timesteps[:-1]).to(device=device)
        """,
        # A literal-size array under the 1 MiB materiality threshold, even feeding a model.
        """
        import numpy as np
        import torch
        out = model(torch.from_numpy(np.random.rand(64, 16)))
        """,
    ],
)
def test_immaterial_float64_conversions_are_info(source):
    assert only(source, "GO403").severity == "info"


def test_a_large_literal_float64_array_is_material_without_a_seen_use():
    finding = only("import numpy as np, torch\nx = torch.from_numpy(np.random.rand(1024, 1024))\n", "GO403")
    assert finding.severity == "warning" and finding.estimate.low == 4 * 1024 * 1024


def test_no_go403_in_test_files():
    source = "import numpy as np, torch\nx = torch.as_tensor(np.random.random((20, 5)))\n"
    assert [f for f in lint_source(source, path="tests/test_net.py") if f.code == "GO403"] == []


def test_go4_lookalikes_from_real_code_stay_silent_even_at_info():
    from conftest import FIXTURES

    path = FIXTURES / "precision" / "GO403_lookalikes_ok.py"
    assert [f for f in lint_source(path.read_text()) if f.code.startswith("GO4")] == []


def test_go404_on_a_recurrent_model_is_info():
    """cuDNN's LSTM kernels follow torch.backends.cudnn.allow_tf32 (True by default),
    not the matmul flag: only the classifier head would gain."""
    source = """
    import torch
    from torch import nn

    class CharLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(256, 512)
            self.lstm = nn.LSTM(512, 1024, num_layers=2)
            self.head = nn.Linear(1024, 256)

    model = CharLSTM().cuda()
    optimizer = torch.optim.Adam(model.parameters())
    for epoch in range(10):
        for x, y in loader:
            loss = nn.functional.cross_entropy(model(x.cuda()), y.cuda())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    """
    findings = [f for f in lint_source(source, hardware="a100-80gb") if f.code == "GO404"]
    assert findings and all(f.severity == "info" for f in findings)
    assert "recurrent" in findings[0].message

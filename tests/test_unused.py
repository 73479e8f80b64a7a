"""GO2xx: the shared attribute analysis, parameter counts, estimates and scoping."""

from __future__ import annotations

import libcst as cst
import pytest

from conftest import lint_source
from greenops_lint.analysis.attributes import torch_param_count


def go(findings, code):
    return [f for f in findings if f.code == code]


@pytest.mark.parametrize(
    "call,cls,expected",
    [
        ("nn.Linear(4096, 4096)", "Linear", 4096 * 4096 + 4096),
        ("nn.Linear(10, 5, bias=False)", "Linear", 50),
        ("nn.Conv2d(3, 64, 7, 2, 3, bias=False)", "Conv2d", 3 * 64 * 49),
        ("nn.Conv2d(32, 32, (3, 1), groups=32)", "Conv2d", 32 * 3 + 32),
        ("nn.Embedding(1000, 4 * 16)", "Embedding", 64000),
        ("nn.LayerNorm(512)", "LayerNorm", 1024),
        ("nn.BatchNorm2d(64)", "BatchNorm2d", 128),
        ("nn.GRU(10, 20)", "GRU", 3 * 20 * (10 + 20) + 2 * 3 * 20),
        ("nn.MultiheadAttention(256, 8)", "MultiheadAttention", 4 * 256 * 256 + 4 * 256),
        ("nn.Linear(dim, 10)", "Linear", None),
        ("nn.Linear(*sizes)", "Linear", None),
    ],
)
def test_parameter_counts_from_literal_sizes(call, cls, expected):
    assert torch_param_count(cst.parse_expression(call), cls) == expected


def test_unused_layer_estimate_is_its_float32_bytes():
    source = """
    import torch.nn as nn
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.used = nn.Linear(8, 8)
            self.big = nn.Linear(4096, 4096)
        def forward(self, x):
            return self.used(x)
    """
    (finding,) = go(lint_source(source), "GO201")
    assert finding.estimate.metric == "memory_bytes"
    assert finding.estimate.low == (4096 * 4096 + 4096) * 4
    assert "16,781,312 parameters" in finding.message and "64.0 MiB" in finding.message


UNSIZED_UNUSED = """
from torch import nn
class Net(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.a = nn.Linear(d, d)
        self.b = nn.Linear(d, d)
    def forward(self, x):
        return self.a(x)
"""


def test_unused_layer_without_literal_sizes_costs_no_time_without_ddp():
    # Single process, the unused layer measured 1.016x [0.98, 1.05]: the 2.4x exists only under DDP.
    (finding,) = go(lint_source(UNSIZED_UNUSED), "GO201")
    assert (finding.estimate.metric, finding.estimate.low, finding.estimate.high) == ("time_factor", 1.0, 1.0)
    assert "1.016x [0.98, 1.05]" in finding.estimate.basis and "2.4" not in finding.estimate.basis
    assert finding.estimate.source == "measured on CPU"
    # Material for its memory, which the estimate cannot size (the page's `When it is material`).
    assert finding.severity == "warning"


@pytest.mark.parametrize(
    "ddp",
    [
        "from torch.nn.parallel import DistributedDataParallel as DDP\nmodel = DDP(Net(8))\n",
        "import lightning as L\ntrainer = L.Trainer(strategy='ddp_find_unused_parameters_true')\n",
        "from lightning.pytorch.strategies import DDPStrategy\nstrategy = DDPStrategy()\n",
    ],
)
def test_unused_layer_without_literal_sizes_gets_the_ddp_time_range_under_ddp(ddp):
    (finding,) = go(lint_source(UNSIZED_UNUSED + ddp), "GO201")
    assert (finding.estimate.metric, finding.estimate.low, finding.estimate.high) == ("time_factor", 1.0, 2.4)


@pytest.mark.parametrize(
    "source",
    [
        # Keras builds a layer's weights on its first call: an unused one costs nothing.
        """
        from tensorflow import keras
        class Block(keras.layers.Layer):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(8)
                self.extra = keras.layers.Dense(8)
            def call(self, x):
                return self.dense(x)
        """,
        # A base class from another module may read the attribute.
        """
        import torch.nn as nn
        from .base import BaseModel
        class Net(BaseModel):
            def __init__(self):
                super().__init__()
                self.extra = nn.Linear(8, 8)
            def forward(self, x):
                return x
        """,
        # An abstract forward: subclasses elsewhere use the layers.
        """
        import torch.nn as nn
        class Interface(nn.Module):
            def __init__(self):
                super().__init__()
                self.pos = nn.Linear(8, 8)
            def forward(self, x):
                raise NotImplementedError
        """,
        # A class docstring that documents the attribute makes it public API.
        """
        import torch.nn as nn
        class Decoder(nn.Module):
            '''Attributes:
                conv_s0 (nn.Conv2d): used by the caller on high-resolution features.
            '''
            def __init__(self):
                super().__init__()
                self.conv_s0 = nn.Conv2d(8, 8, 1)
                self.head = nn.Linear(8, 8)
            def forward(self, x):
                return self.head(x)
        """,
        # vars(self), self.__dict__ and named_children(): dynamic use.
        """
        import torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(8, 8)
                self.b = nn.Linear(8, 8)
            def forward(self, x):
                for name, child in self.named_children():
                    x = child(x)
                return x
        """,
    ],
)
def test_unused_submodule_gives_up_where_the_use_is_elsewhere(source):
    assert not go(lint_source(source), "GO201")


def test_relative_pretrained_model_base_is_resolved_inside_the_library():
    source = """
    from torch import nn
    from ...modeling_utils import PreTrainedModel
    class BertPreTrainedModel(PreTrainedModel):
        pass
    class BertForX(BertPreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.head = nn.Linear(8, 8)
            self.unused = nn.Linear(8, 8)
        def forward(self, x):
            return self.head(x)
    """
    assert [f.line for f in go(lint_source(source), "GO201")] == [10]


def test_noqa_suppresses_an_unused_submodule():
    source = """
    import torch.nn as nn
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.kept_for_checkpoints = nn.Linear(8, 8)  # noqa: GO201
        def forward(self, x):
            return x
    """
    assert not go(lint_source(source), "GO201")


def test_ddp_flag_under_an_if_else_choosing_wrappers_is_not_reported():
    source = """
    from torch.nn.parallel import DistributedDataParallel as DDP
    if cfg.moe:
        model = DDP(model, find_unused_parameters=True)
    else:
        model = DDP(model)
    """
    assert not go(lint_source(source), "GO202")


def test_ddp_estimate_is_the_measured_range():
    (finding,) = go(
        lint_source("import torch\nm = torch.nn.parallel.DistributedDataParallel(m, find_unused_parameters=True)\n"),
        "GO202",
    )
    # The flag's own cost (on vs off, nothing unused), not the unused layer's (GO201's claim).
    assert (finding.estimate.metric, finding.estimate.low, finding.estimate.high) == ("time_factor", 1.0, 1.4)
    assert "counted by GO201" in finding.estimate.basis


def test_loaded_never_used_in_a_script_module_scope():
    source = "from transformers import AutoModel\nmodel = AutoModel.from_pretrained('gpt2')\n"
    # A module without definitions is a script: nobody imports its names.
    assert [f.line for f in go(lint_source(source), "GO203")] == [2]


def test_loaded_never_used_ignores_a_library_module_and_warm_up_loads():
    library = """
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained("gpt2")
    def encode(text):
        return text
    """
    assert not go(lint_source(library), "GO203")
    warm = """
    import torch
    def prefetch(paths):
        for p in paths:
            cached = torch.load(p)
    """
    assert not go(lint_source(warm), "GO203")


def test_discarded_in_place_calls_are_not_uses():
    source = """
    import torch
    def main(device):
        teacher = torch.load("teacher.pt")
        teacher.to(device)
        teacher.eval()
    """
    (finding,) = go(lint_source(source), "GO203")
    assert finding.estimate.metric == "repeated_work" and finding.estimate.unit == "wasted loads"


def test_scheduler_that_is_never_stepped_says_so():
    source = """
    import torch
    def train(model):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.StepLR(opt, 10)
        opt.step()
    """
    (finding,) = go(lint_source(source), "GO203")
    assert "never stepped" in finding.message and "sched.step()" in finding.message


def test_conv_bias_estimate_uses_literal_channels():
    (finding,) = go(
        lint_source("import torch.nn as nn\nb = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64))\n"), "GO204"
    )
    assert finding.estimate.low == finding.estimate.high == 64 * 4


def test_debug_switches_in_test_files_are_not_reported():
    source = "import torch\ntorch.autograd.set_detect_anomaly(True)\n"
    assert go(lint_source(source), "GO205")
    assert not go(lint_source(source, path="tests/test_model.py"), "GO205")


def test_debug_switch_estimates_are_measured_ranges():
    (finding,) = go(lint_source("import torch\ntorch.autograd.set_detect_anomaly(True)\n"), "GO205")
    assert (finding.estimate.metric, finding.estimate.low, finding.estimate.high) == ("time_factor", 1.25, 2.3)


def test_pages_quote_the_estimate_constants():
    """The docstrings cannot be f-strings: the figures they quote must be the constants the estimates use."""
    from greenops_lint.rules.unused import _shared
    from greenops_lint.rules.unused import go201_unused_submodule as go201
    from greenops_lint.rules.unused import go202_ddp_find_unused_parameters as go202
    from greenops_lint.rules.unused import go204_conv_bias_before_batchnorm as go204
    from greenops_lint.rules.unused import go205_debug_mode_left_on as go205

    ddp = f"{_shared.DDP_STEP_TIME_FACTOR:g}x"
    for rule in (go201.UnusedSubmodule, go202.DdpFindUnusedParameters):
        assert ddp in rule.section("Estimate") and ddp in rule.section("Why is this bad"), rule.code
    assert f"({_shared.FLOAT32_BYTES} bytes a parameter)" in go201.UnusedSubmodule.section("Estimate")
    go204_estimate = go204.ConvBiasBeforeBatchNorm.section("Estimate")
    assert f"x {_shared.FLOAT32_BYTES} bytes" in go204_estimate
    assert f"{go204.CHANNELS_LOW}-{go204.CHANNELS_HIGH} channels" in go204_estimate
    go205_estimate = " ".join(go205.DebugModeLeftOn.section("Estimate").split())
    for figure in (
        go205.ANOMALY_CNN,
        go205.ANOMALY_MLP,
        go205.PROFILER_CNN,
        go205.PROFILER_MLP,
        go205.TF_EAGER_MAX,
        go205.JAX_NO_JIT_MAX,
        go205.LAUNCH_BLOCKING_MAX,
    ):
        assert f"{figure:g}x" in go205_estimate, figure


def test_messages_and_bases_are_built_from_the_constants(monkeypatch):
    """Change a constant and the figure changes everywhere it is reported."""
    from greenops_lint.rules.unused import go202_ddp_find_unused_parameters as go202

    monkeypatch.setattr(go202, "DDP_FLAG_TIME_FACTOR", 3.7)
    source = "import torch\nm = torch.nn.parallel.DistributedDataParallel(m, find_unused_parameters=True)\n"
    (finding,) = go(lint_source(source), "GO202")
    assert "3.7x" in finding.message and "3.7x" in finding.estimate.basis and finding.estimate.high == 3.7
    assert "1.4" not in finding.message + finding.estimate.basis


# -- issue 17 / 18: real-code false positives, CPU-measured estimates, GO206 --------------
def test_parameter_free_and_buffer_attributes_are_not_reported():
    source = """
    import torch
    from torch import nn
    class Net(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.fc = nn.Linear(d, d)
            self.norm = nn.LayerNorm(d, elementwise_affine=False)
            self.bn = nn.BatchNorm1d(d, affine=False)
            self.drop = nn.Dropout(0.1)
            self.original = nn.Buffer(torch.ones(d))
        def forward(self, x):
            return self.fc(x)
    """
    assert go(lint_source(source), "GO201") == []


def test_unused_layer_time_factor_is_labelled_measured_on_cpu():
    source = """
    from torch import nn
    class Net(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.a = nn.Linear(d, d)
            self.b = nn.Linear(d, d)
        def forward(self, x):
            return self.a(x)
    """
    (finding,) = go(lint_source(source, hardware="a100-80gb"), "GO201")
    assert finding.estimate.source == "measured on CPU" and finding.estimate.measured_on_cpu
    assert "measured on CPU" in finding.estimate.headline()


def test_small_unused_layer_is_info_and_a_pretrained_port_is_info_with_the_caveat():
    small = """
    from torch import nn
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(768, 768)
            self.ln = nn.LayerNorm(768)
        def forward(self, x):
            return self.fc(x)
    """
    (finding,) = go(lint_source(small), "GO201")
    assert finding.severity == "info"
    port = """
    from torch import nn
    from transformers import PreTrainedModel
    class Base(PreTrainedModel):
        pass
    class Head(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.fc = nn.Linear(config.h, config.h)
            self.project_q = nn.Linear(config.h, config.h)
        def forward(self, x):
            return self.fc(x)
    """
    (finding,) = go(lint_source(port), "GO201")
    assert finding.severity == "info" and "released checkpoints" in finding.message


def test_ddp_and_debug_estimates_say_they_were_measured_on_cpu():
    ddp = lint_source(
        "from torch.nn.parallel import DistributedDataParallel as DDP\nm = DDP(net, find_unused_parameters=True)\n",
        hardware="a100-80gb",
    )
    (finding,) = go(ddp, "GO202")
    assert finding.estimate.source == "measured on CPU" and "measured on CPU" in finding.message
    anomaly = go(lint_source("import torch\ntorch.autograd.set_detect_anomaly(True)\n"), "GO205")
    assert anomaly[0].estimate.source == "measured on CPU"
    blocking = go(lint_source('import os\nos.environ["CUDA_LAUNCH_BLOCKING"] = "1"\n'), "GO205")
    assert blocking[0].estimate.source == "derived"


def test_go206_reports_a_script_import_and_leaves_libraries_at_info():
    script = "import numpy as np\nimport torch\n\nif __name__ == '__main__':\n    print(np.ones(2))\n"
    (finding,) = go(lint_source(script), "GO206")
    assert finding.severity == "warning" and finding.estimate.source == "measured on CPU"
    assert finding.estimate.metric == "startup_time" and finding.estimate.unit == "s CPU time per process start"
    assert "1.8-2 s of CPU time" in finding.message
    library = "import torch\n\ndef f(x):\n    return x\n"
    (finding,) = go(lint_source(library), "GO206")
    assert finding.severity == "info"
    assert go(lint_source(script, path="pkg/__init__.py"), "GO206") == []
    # A used import of the same framework stays: removing the unused one saves nothing.
    assert go(lint_source("import torch\nimport torchvision\nprint(torchvision.__version__)\n"), "GO206") == []


def test_go206_tensorflow_and_jax_figures_are_wall_times_from_current_reports():
    # tensorflow#37729 was closed as resolved (TF 2.7: 2.7-2.8 s on Colab, 1.1 s on an M1 Max); the 10 s of
    # #110143 is one Windows machine: named in the basis, outside the range.
    script = "import numpy as np\nimport {imp}\n\nif __name__ == '__main__':\n    print(np.ones(2))\n"
    (finding,) = go(lint_source(script.format(imp="tensorflow as tf")), "GO206")
    assert (finding.estimate.low, finding.estimate.high) == (1.1, 2.8)
    assert finding.estimate.unit == "s wall time per process start" and "1.1-2.8 s of wall time" in finding.message
    assert "#110143" in finding.estimate.basis and "outlier" in finding.estimate.basis
    assert finding.severity == "warning"  # at least 1 s a start
    (finding,) = go(lint_source(script.format(imp="jax")), "GO206")
    assert finding.estimate.unit == "s wall time per process start" and "0.3-0.5 s of wall time" in finding.message
    assert "0.94 s CPU time" in finding.estimate.basis and finding.severity == "info"


def test_a_copy_rebound_to_its_own_name_does_not_recurse():
    source = """
    import copy

    def f(model):
        model = copy.deepcopy(model)
        model = copy.deepcopy(model)
        return model
    """
    assert [f.code for f in lint_source(source) if f.code.startswith("GO00")] == []


def test_go202_on_a_routed_model_is_info():
    """A mixture of experts leaves idle experts without gradients: the flag is required there."""
    source = """
    import torch
    from torch import nn

    class MoE(nn.Module):
        def __init__(self, dim, num_experts=8):
            super().__init__()
            self.router = nn.Linear(dim, num_experts)
            self.experts = nn.ModuleList(nn.Linear(dim, dim) for _ in range(num_experts))

    model = torch.nn.parallel.DistributedDataParallel(MoE(512), find_unused_parameters=True)
    """
    (finding,) = go(lint_source(source), "GO202")
    assert finding.severity == "info" and "routes inputs (MoE)" in finding.message
    plain = "import torch\nm = torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=True)\n"
    assert go(lint_source(plain), "GO202")[0].severity == "warning"

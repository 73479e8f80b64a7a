"""GO201: a layer is created in a model's `__init__` but never used."""

from __future__ import annotations

import libcst as cst

from greenops_lint.analysis.attributes import module_attributes
from greenops_lint.analysis.layer_params import int_value
from greenops_lint.finding import SavingsEstimate, human_bytes
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.unused._shared import (
    DDP_MEASURED_ON,
    DDP_STEP_TIME_FACTOR,
    FLOAT32_BYTES,
    SINGLE_PROCESS_CI,
    SINGLE_PROCESS_TIME_FACTOR,
    pretrained_port_signal,
    uses_ddp,
)
from greenops_lint.savings import SOURCE_CODE, SOURCE_CPU, extra_bytes_estimate

# The page's `## Estimate`: with literal sizes, the parameter count x FLOAT32_BYTES;
# otherwise a time factor of NO_COMPUTE_FACTOR (the layer does no work: measured at
# SINGLE_PROCESS_TIME_FACTOR in one process), up to DDP_STEP_TIME_FACTOR (the measured cost
# of the flag DDP then needs) only in a module that uses DDP.
NO_COMPUTE_FACTOR = 1.0
# `## When it is material`: an unused layer whose literal parameters take less
# than this (a LayerNorm(768), a BatchNorm2d(1), a 2-channel conv) is reported
# at info severity.
MATERIAL_BYTES = 1024 * 1024
# A Linear or Embedding with a literal side this small (`nn.Embedding(n, 4)` of box
# coordinates) holds at most SMALL_SIDE x the other side: kilobytes for any plausible size.
SMALL_SIDE = 16
# Norm layers hold 2 x channels parameters: kilobytes, whatever the channel count.
_NORM_LAYERS = ("BatchNorm", "LayerNorm", "GroupNorm", "RMSNorm", "SyncBatchNorm")


class UnusedSubmodule(Rule):
    """A layer is created in a model's `__init__` but never used.

    ## What it does
    For each model class of the module (a subclass of `torch.nn.Module`,
    `lightning.LightningModule`, `transformers.PreTrainedModel`,
    `keras.layers.Layer` / `keras.Model` or `flax.linen.Module`, directly or
    through other classes of the same module), flags a `self.<attr> = <layer>`
    made in `__init__` (Keras `build`, Flax `setup`) that nothing ever reads:
    no method of the class, of its same-module base classes or subclasses,
    no `model.<attr>` elsewhere in the module, no string naming it. A layer is
    a `torch.nn` / `keras.layers` / `flax.linen` class with parameters, a
    model class of the module, a `torchvision.models` builder,
    `timm.create_model(...)` or `X.from_pretrained(...)` of a model.

    A misspelt read (`self.clasifier(x)` for `self.classifier`) leaves the
    real attribute unused and is reported.

    Not flagged: layers without parameters (activations, dropout, pooling,
    `Identity`, losses, `LayerNorm(elementwise_affine=False)`,
    `BatchNorm(affine=False)`), buffers (`nn.Buffer(...)`: no parameters, no
    gradient, no DDP effect), an assignment after a `raise` or `return`
    (it never runs), a container built from a list that `self` keeps
    (`self.stack = nn.ModuleList(self.layers)`: it registers layers used
    through the list), attributes whose names a computed `getattr`
    builds (`getattr(self, f"adapter{i}")` reads every `adapter*`); a layer read anywhere (including conditionally, in a
    helper method, in an inherited `forward`, through a `ModuleList`/`ModuleDict`
    or `Sequential`, or as `getattr(self, "name")`); classes that use their
    attributes dynamically (`getattr(self, name)`, `setattr`, `self.__dict__`,
    `vars(self)`, `self._modules`, `self.modules()`, `self.children()`,
    `named_modules()`, `get_submodule`); classes with a base class from another
    module (a subclass there may use the layer); classes without a `forward`
    (`call`, `__call__`), whose layers are read from outside.

    Reported at info severity (shown with `--show-info`): layers below the
    materiality threshold (see `## When it is material`); layers of a module
    that ports a pretrained model (a class deriving from a `*PreTrainedModel`
    or `ModelMixin` base, `_keys_to_ignore_on_load*`, `_tied_weights_keys`,
    `base_model_prefix`, timm's `pretrained_cfg`, `load_state_dict_from_url`,
    or code that says it is adapted from a published repository: "Adapted
    from `https://github.com/...`", a Meta/Facebook/DeepMind/OpenAI copyright line),
    where a layer nothing uses is often kept so that released checkpoints load
    without unexpected keys (`project_q` of wav2vec2-style pretraining heads);
    and classes whose methods carry a decorator imported from another module
    (transformers' `@dynamic_rope_update` reads `self.original_inv_freq`), which
    may read the attribute where this module cannot see.

    ## Why is this bad
    An unused PyTorch layer still holds its parameters in host and GPU memory and is
    written to and read from every checkpoint. Because nothing gives it
    gradients it gets no optimizer state (Adam's two moment buffers are created
    lazily), but under `DistributedDataParallel` its parameters never receive
    a gradient: DDP fails with "Expected to have finished reduction in the prior
    iteration" unless `find_unused_parameters=True` is set, and that flag walks
    the autograd graph on every step (GO202). Measured on two CPU ranks, a
    64 MiB unused layer with the flag cost 2.4x step time against neither.

    Keras and Flax create a layer's weights on its first call, so an unused
    layer there holds no memory and costs nothing: those classes are analysed
    (a read in `call()` or `__call__()` counts) but their unused layers are not
    reported.

    ## Fix
    Delete the attribute (and the constructor arguments that only size it), or
    create it only under the same flag that gates its use. The state-dict keys
    change: load old checkpoints with `strict=False`. Autofix: none.

    ## When it is material
    When the unused layer's literal parameters take 1 MiB or more in float32
    (262,144 parameters), or its size is not literal and it is not a norm
    layer (BatchNorm, LayerNorm, GroupNorm, RMSNorm hold 2 x channels
    parameters: kilobytes) nor a `Linear`/`Embedding` with a literal side of
    16 or less (`nn.Embedding(n, 4)`: 4 x n parameters). Smaller layers are
    reported at info severity. A layer whose size is not literal stays a
    warning without DDP, although its time factor is then 1x: the claim is
    its memory (a `from_pretrained` teacher, a layer sized by a config),
    which the estimate cannot size, not its time.

    ## Estimate
    When the constructor has literal sizes (`nn.Linear(4096, 4096)`,
    `nn.Conv2d(256, 256, 3)`, `nn.Embedding`, norms, RNNs,
    `nn.MultiheadAttention`), the parameter count and its float32 bytes
    (4 bytes a parameter) held in memory and in every checkpoint. Otherwise a
    time factor: 1x in a module without DDP (no compute; a 64 MiB unused
    layer measured 1.016x [0.98, 1.05] step time in one process on CPU),
    and 1x to 2.4x in a module that uses `DistributedDataParallel` or a DDP
    strategy (`strategy="ddp"`, `DDPStrategy`: the layer with the
    `find_unused_parameters=True` it forces against neither, measured on CPU
    with two gloo ranks). Both are labelled "measured on CPU", so they are
    never converted to a GPU's hours. Parameter-free layers are not
    reported, so they get no time factor.
    """

    code = "GO201"
    name = "unused-submodule"
    family = "unused"
    estimate_sources = {
        SOURCE_CODE: "any device: parameter count from literal layer sizes x 4 bytes",
        SOURCE_CPU: "a 64 MiB unused layer on CPU: 1x in one process (no DDP in the module), up to 2.4x with 2 gloo processes (a module that uses DDP); not a GPU figure, never converted to GPU-hours",
    }
    analyses = ("module_attributes",)
    tokens = ("Module", "Layer", "Model", "linen")
    INVALID = [
        Invalid(
            """
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = nn.Linear(128, 128)
                    self.aux_head = nn.Linear(4096, 4096)

                def forward(self, x):
                    return self.body(x)
            """,
            line=7,
            message="self.aux_head = nn.Linear(4096, 4096) is created in Net.__init__() but never used (16,781,312",
        ),
        """
        from torch import nn

        class Classifier(nn.Module):
            def __init__(self, backbone):
                super().__init__()
                self.backbone = backbone
                self.classifier = nn.Linear(768, 10)

            def forward(self, x):
                return self.clasifier(self.backbone(x))
        """,
        Invalid(
            """
            import torch
            from transformers import AutoModel

            class Scorer(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.encoder = AutoModel.from_pretrained("bert-base-uncased")
                    self.teacher = AutoModel.from_pretrained("bert-large-uncased")
                    self.score = torch.nn.Linear(768, 1)

                def forward(self, **batch):
                    return self.score(self.encoder(**batch).pooler_output)
            """,
            line=8,
            message='self.teacher = AutoModel.from_pretrained("bert-large-uncased") is created in Scorer.__init__()',
        ),
    ]
    VALID = [
        """
        import torch
        from torch import nn

        class RotaryEmbedding(nn.Module):
            def __init__(self, inv_freq):
                super().__init__()
                self.inv_freq = nn.Buffer(inv_freq, persistent=False)
                self.original_inv_freq = nn.Buffer(inv_freq.clone(), persistent=False)  # a buffer: no parameters

            def forward(self, x):
                return x * self.inv_freq
        """,
        """
        from torch import nn

        class Adapters(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.adapter0 = nn.Linear(64, 64)
                self.adapter1 = nn.Linear(64, 64)

            def forward(self, x, i):
                return getattr(self, f"adapter{i}")(x)
        """,
        """
        from torch import nn

        class Head(nn.Module):
            def __init__(self, kind):
                super().__init__()
                self.body = nn.Linear(64, 64)
                if kind != "linear":
                    raise ValueError(kind)
                    self.extra = nn.Linear(64, 64)  # unreachable

            def forward(self, x):
                return self.body(x)
        """,
        """
        from torch import nn

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = [nn.Linear(64, 64), nn.Linear(64, 64)]
                self.stack = nn.ModuleList(self.layers)  # registers the layers used through the list
                self.norm = nn.LayerNorm(64, elementwise_affine=False)  # no parameters

            def forward(self, x):
                for layer in self.layers:
                    x = layer(x)
                return x
        """,
        """
        import flax.linen as nn

        class MLP(nn.Module):
            def setup(self):
                self.dense = nn.Dense(64)
                self.unused = nn.Dense(64)  # Flax creates no weights for it: costs nothing

            def __call__(self, x):
                return self.dense(x)
        """,
        """
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self, aux=False):
                super().__init__()
                self.body = nn.Linear(128, 128)
                self.aux_head = nn.Linear(128, 10) if aux else None

            def forward(self, x):
                x = self.body(x)
                if self.aux_head is not None:
                    return x, self.aux_head(x)
                return x
        """,
        """
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.block1 = nn.Linear(8, 8)
                self.block2 = nn.Linear(8, 8)

            def forward(self, x):
                for name in ("block1", "block2"):
                    x = getattr(self, name)(x)
                return x
        """,
        """
        import torch.nn as nn

        class Base(nn.Module):
            def forward(self, x):
                return self.head(x)

        class Net(Base):
            def __init__(self):
                super().__init__()
                self.head = nn.Linear(8, 2)
        """,
        """
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.act = nn.ReLU()
                self.fc = nn.Linear(8, 2)

            def forward(self, x):
                return self.fc(x).relu()
        """,
    ]

    def leave_Module(self, node: cst.Module) -> None:
        analysis = module_attributes(self.ctx)
        for class_name, info in analysis.classes.items():
            if info.kind is None:
                continue
            for attr, assignment, layer in analysis.unused_submodules(class_name):
                self._report(class_name, info.kind, attr, assignment, layer, analysis)

    def _report(self, class_name, kind, attr, assignment, layer, analysis) -> None:
        if kind != "torch":
            # Keras and Flax create a layer's weights on its first call: an
            # unused layer there holds no memory and costs nothing.
            return
        where = f"self.{attr} = {layer.label} is created in {class_name}.{assignment.method}() but never used"
        severity, caveat = self._severity(class_name, layer, analysis)
        if layer.params:
            size = layer.params * FLOAT32_BYTES
            cost = f" ({layer.params:,} parameters, {human_bytes(size)} in float32)"
            estimate = extra_bytes_estimate(
                size,
                f"{layer.params:,} parameters x {FLOAT32_BYTES} bytes (float32), held in memory and written to every "
                "checkpoint; no optimizer state, since nothing gives them gradients",
                self.ctx.hardware,
            )
        elif uses_ddp(self.ctx):
            cost = ""
            estimate = SavingsEstimate(
                metric="time_factor",
                low=NO_COMPUTE_FACTOR,
                high=DDP_STEP_TIME_FACTOR,
                unit="x",
                basis=(
                    f"no compute in forward ({NO_COMPUTE_FACTOR:g}x); under DDP, which this module uses, the unused "
                    f"parameters force find_unused_parameters=True, measured at {DDP_STEP_TIME_FACTOR:g}x step time "
                    f"on {DDP_MEASURED_ON}; the parameter memory is not literal in the code"
                ),
                hardware=self.ctx.hardware.key,
                assumptions=("the high end applies only to DDP training",),
                source=SOURCE_CPU,
            )
        else:
            cost = ""
            low, high = SINGLE_PROCESS_CI
            estimate = SavingsEstimate(
                metric="time_factor",
                low=NO_COMPUTE_FACTOR,
                high=NO_COMPUTE_FACTOR,
                unit="x",
                basis=(
                    f"no compute in forward: in one process an unused 64 MiB layer measured "
                    f"{SINGLE_PROCESS_TIME_FACTOR:g}x [{low:g}, {high:g}] step time on CPU, no measurable cost; "
                    "the module uses no DDP; what the layer costs is memory and checkpoint space, whose size is not "
                    "literal in the code"
                ),
                hardware=self.ctx.hardware.key,
                assumptions=("no DistributedDataParallel in the process that trains it (none in this module)",),
                source=SOURCE_CPU,
            )
        self.report(
            assignment.target,
            f"{where}{cost}: its parameters take memory and checkpoint space, and under DDP it forces "
            f"find_unused_parameters=True or a crash; delete it, or create it only when it is used{caveat}",
            estimate,
            severity=severity,
        )

    def _severity(self, class_name, layer, analysis) -> tuple[str, str]:
        """('info', why) for a finding below the materiality threshold or of
        lower confidence; (the rule's severity, '') otherwise."""
        port = pretrained_port_signal(self.ctx)
        if port:
            return "info", (
                f" (this module ports a pretrained model: {port}; if released checkpoints carry this layer, "
                "deleting it makes them load with unexpected keys)"
            )
        decorators = analysis.foreign_decorators(class_name)
        if decorators:
            return "info", f" (unless @{decorators[0]}, from another module, reads it)"
        if layer.params is not None and layer.params * FLOAT32_BYTES < MATERIAL_BYTES:
            return "info", ""
        if layer.params is None and any(norm in layer.label.split("(", 1)[0] for norm in _NORM_LAYERS):
            return "info", ""
        if layer.params is None and layer.label.split("(", 1)[0].rsplit(".", 1)[-1] in ("Linear", "Embedding"):
            sides = [int_value(arg.value) for arg in layer.call.args[:2] if arg.keyword is None]
            if any(side is not None and side <= SMALL_SIDE for side in sides):
                return "info", ""
        return self.severity, ""

"""GO201: a layer is created in a model's `__init__` but never used."""

from __future__ import annotations

import libcst as cst

from greenops_lint.analysis.attributes import module_attributes
from greenops_lint.finding import SavingsEstimate, human_bytes
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.unused._shared import DDP_MEASURED_ON, DDP_STEP_TIME_FACTOR, FLOAT32_BYTES
from greenops_lint.savings import extra_bytes_estimate

# The page's `## Estimate`: with literal sizes, the parameter count x FLOAT32_BYTES;
# otherwise a time factor from NO_COMPUTE_FACTOR (the layer does no work) to
# DDP_STEP_TIME_FACTOR (the measured cost of the flag DDP then needs).
NO_COMPUTE_FACTOR = 1.0


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
    `Identity`, losses); a layer read anywhere (including conditionally, in a
    helper method, in an inherited `forward`, through a `ModuleList`/`ModuleDict`
    or `Sequential`, or as `getattr(self, "name")`); classes that use their
    attributes dynamically (`getattr(self, name)`, `setattr`, `self.__dict__`,
    `vars(self)`, `self._modules`, `self.modules()`, `self.children()`,
    `named_modules()`, `get_submodule`); classes with a base class from another
    module (a subclass there may use the layer); classes without a `forward`
    (`call`, `__call__`), whose layers are read from outside.

    ## Why is this bad
    An unused PyTorch layer still holds its parameters in host and GPU memory and is
    written to and read from every checkpoint. Because nothing gives it
    gradients it gets no optimizer state (Adam's two moment buffers are created
    lazily), but under `DistributedDataParallel` its parameters never receive
    a gradient: DDP fails with "Expected to have finished reduction in the prior
    iteration" unless `find_unused_parameters=True` is set, and that flag walks
    the autograd graph on every step (GO202; 2.4x step time measured on two CPU
    ranks with a 64 MiB unused layer).

    Keras and Flax create a layer's weights on its first call, so an unused
    layer there holds no memory and costs nothing: those classes are analysed
    (a read in `call()` or `__call__()` counts) but their unused layers are not
    reported.

    ## Fix
    Delete the attribute (and the constructor arguments that only size it), or
    create it only under the same flag that gates its use. The state-dict keys
    change: load old checkpoints with `strict=False`. Autofix: none.

    ## Estimate
    When the constructor has literal sizes (`nn.Linear(4096, 4096)`,
    `nn.Conv2d(256, 256, 3)`, `nn.Embedding`, norms, RNNs,
    `nn.MultiheadAttention`), the parameter count and its float32 bytes
    (4 bytes a parameter) held in memory and in every checkpoint. Otherwise a
    time factor of 1x (no compute) to 2.4x (under DDP, the measured cost of
    the `find_unused_parameters=True` it forces).
    """

    code = "GO201"
    name = "unused-submodule"
    family = "unused"
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
                self._report(class_name, info.kind, attr, assignment, layer)

    def _report(self, class_name, kind, attr, assignment, layer) -> None:
        if kind != "torch":
            # Keras and Flax create a layer's weights on its first call: an
            # unused layer there holds no memory and costs nothing.
            return
        where = f"self.{attr} = {layer.label} is created in {class_name}.{assignment.method}() but never used"
        if layer.params:
            size = layer.params * FLOAT32_BYTES
            cost = f" ({layer.params:,} parameters, {human_bytes(size)} in float32)"
            estimate = extra_bytes_estimate(
                size,
                f"{layer.params:,} parameters x {FLOAT32_BYTES} bytes (float32), held in memory and written to every "
                "checkpoint; no optimizer state, since nothing gives them gradients",
                self.ctx.hardware,
            )
        else:
            cost = ""
            estimate = SavingsEstimate(
                metric="time_factor",
                low=NO_COMPUTE_FACTOR,
                high=DDP_STEP_TIME_FACTOR,
                unit="x",
                basis=(
                    f"no compute in forward ({NO_COMPUTE_FACTOR:g}x); under DDP the unused parameters force "
                    f"find_unused_parameters=True, measured at {DDP_STEP_TIME_FACTOR:g}x step time on "
                    f"{DDP_MEASURED_ON}; the parameter memory is not literal in the code"
                ),
                hardware=self.ctx.hardware.key,
                assumptions=("the high end applies only to DDP training",),
            )
        self.report(
            assignment.target,
            f"{where}{cost}: its parameters take memory and checkpoint space, and under DDP it forces "
            "find_unused_parameters=True or a crash; delete it, or create it only when it is used",
            estimate,
        )

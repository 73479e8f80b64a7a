"""GO2xx: model parts and loaded objects that do nothing, and debug switches left on.

Everything these rules flag costs memory, load time or step time and
contributes nothing to the result: a layer that `forward` never calls, a
checkpoint loaded into a name nobody reads, a DDP flag that makes every step
walk the autograd graph, a conv bias that the next BatchNorm subtracts again,
anomaly detection left on in a training run.
"""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.attributes import module_attributes
from greenops_lint.analysis.calls import TRUTHY_LITERALS, environ_assignment, get_arg, has_star_kwargs, literal_value
from greenops_lint.analysis.names import dotted_name
from greenops_lint.analysis.unused_names import (
    is_module_script,
    module_exports,
    scope_reads,
)
from greenops_lint.analysis.rewrite import with_keyword
from greenops_lint.analysis.tree import display_name, is_self_attr, is_test_file
from greenops_lint.finding import Fix, SavingsEstimate, _human_bytes
from greenops_lint.rule import Rule
from greenops_lint.savings import extra_bytes_estimate








# -- GO201 ------------------------------------------------------------------------
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
            size = layer.params * 4
            cost = f" ({layer.params:,} parameters, {_human_bytes(size)} in float32)"
            estimate = extra_bytes_estimate(
                size,
                f"{layer.params:,} parameters x 4 bytes (float32), held in memory and written to every checkpoint; "
                "no optimizer state, since nothing gives them gradients",
                self.ctx.hardware,
            )
        else:
            cost = ""
            estimate = SavingsEstimate(
                metric="time_factor",
                low=1.0,
                high=_DDP_MEASURED,
                unit="x",
                basis=(
                    "no compute in forward (1x); under DDP the unused parameters force find_unused_parameters=True, "
                    "measured at 2.4x step time on 2 CPU (gloo) ranks with a 64 MiB unused layer; "
                    "the parameter memory is not literal in the code"
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


# -- GO202 ------------------------------------------------------------------------
_DDP_MEASURED = 2.4


def _ddp_estimate(rule: Rule) -> SavingsEstimate:
    return SavingsEstimate(
        metric="time_factor",
        low=1.0,
        high=_DDP_MEASURED,
        unit="x",
        basis=(
            "measured: 2.4x step time with find_unused_parameters=True on 2 CPU (gloo) ranks with a "
            "64 MiB unused layer; with no unused parameters the cost is one extra autograd-graph "
            "traversal per step, which PyTorch's reducer warns 'can adversely affect performance'"
        ),
        hardware=rule.ctx.hardware.key,
        assumptions=("the model has no parameters that are really unused in some steps",),
    )


class DdpFindUnusedParameters(Rule):
    """Turns on DDP's search for unused parameters on every step.

    ## What it does
    Flags `find_unused_parameters=True` given as a literal to
    `torch.nn.parallel.DistributedDataParallel` (and any wrapper or config call
    that takes the same keyword, such as accelerate's
    `DistributedDataParallelKwargs` or Lightning's `DDPStrategy`), Lightning's
    `strategy="ddp_find_unused_parameters_true"`, and Hugging Face
    `TrainingArguments(ddp_find_unused_parameters=True)`.

    Not flagged: a value read from configuration
    (`find_unused_parameters=args.find_unused`), a call under an `if` whose
    test is about unused parameters or that has an `else` branch building the
    same wrapper without the flag, and calls that also pass `static_graph=True`
    (the search then runs once, not every step).

    ## Why is this bad
    With the flag, DDP walks the autograd graph from the outputs after every
    forward pass to find parameters that will get no gradient, and marks them
    ready; PyTorch warns that this "can adversely affect performance". It also
    changes the gradient-bucket order and reduces the overlap of all-reduce
    with backward. Measured here: 2.4x step time on two CPU ranks with a
    64 MiB unused layer. Usually the flag was added to silence the error an
    unused layer causes (GO201): remove the layer instead.

    ## Fix
    Remove the unused parameters and drop the flag. If some parameters really
    are unused on some steps (multi-task heads, MoE routing) and the set is the
    same every step, use `static_graph=True`; otherwise keep the flag but gate
    it on configuration. Autofix: unsafe (training fails with "Expected to have
    finished reduction" when parameters really are unused).

    ## Estimate
    1x to 2.4x step time: from one extra graph traversal per step (no unused
    parameters) up to the measured 2.4x with a 64 MiB unused layer.
    """

    code = "GO202"
    name = "ddp-find-unused-parameters"
    family = "unused"
    tokens = ("find_unused_parameters",)
    INVALID = [
        """
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(model, device_ids=[rank], find_unused_parameters=True)
        """,
        """
        from accelerate import Accelerator, DistributedDataParallelKwargs
        accelerator = Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
        """,
        """
        import lightning as L
        trainer = L.Trainer(accelerator="gpu", devices=4, strategy="ddp_find_unused_parameters_true")
        """,
        """
        from transformers import TrainingArguments
        args = TrainingArguments("out", ddp_find_unused_parameters=True)
        """,
    ]
    VALID = [
        """
        import torch
        model = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=args.find_unused)
        """,
        """
        import torch
        model = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
        """,
        """
        import torch
        model = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True, static_graph=True)
        """,
        """
        import lightning as L
        trainer = L.Trainer(strategy="ddp")
        """,
    ]

    _KEYWORDS = ("find_unused_parameters", "ddp_find_unused_parameters")
    _STRATEGIES = ("ddp_find_unused_parameters_true", "ddp_spawn_find_unused_parameters_true")

    def visit_Call(self, node: cst.Call) -> None:
        for arg in node.args:
            if arg.keyword is None:
                continue
            keyword = arg.keyword.value
            value = literal_value(arg.value)
            if keyword in self._KEYWORDS and value is True:
                static = get_arg(node, "static_graph")
                if static is not None and literal_value(static.value) is True:
                    return
                if not self._conditional(node):
                    self._report(arg, f"{keyword}=True")
            elif keyword == "strategy" and value in self._STRATEGIES and not self._conditional(node):
                self._report(arg, f'strategy="{value}"')

    def visit_DictElement(self, node: cst.DictElement) -> None:
        key, value = literal_value(node.key), literal_value(node.value)
        if (key in self._KEYWORDS and value is True) or (key == "strategy" and value in self._STRATEGIES):
            if not self._conditional(node):
                self._report(node, f"{key}={node.value.value if hasattr(node.value, 'value') else value}")

    def _conditional(self, node: cst.CSTNode) -> bool:
        """Under an `if` about unused parameters, or an if/else choosing between wrappers."""
        call_text = None
        if isinstance(node, cst.Call):
            call_text = dotted_name(node.func)
        for ancestor in reversed(self.ctx.stack[:-1]):
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)):
                return False
            if isinstance(ancestor, cst.If):
                if "unused" in self.ctx.module.code_for_node(ancestor.test).lower():
                    return True
                if call_text and ancestor.orelse is not None:
                    branches = self.ctx.module.code_for_node(ancestor.body) + self.ctx.module.code_for_node(ancestor.orelse)
                    if branches.count(call_text + "(") >= 2:
                        return True
        return False

    def _report(self, node: cst.CSTNode, what: str) -> None:
        self.report(
            node,
            f"{what} makes DDP search the autograd graph for unused parameters on every step "
            "(measured up to 2.4x step time); remove the unused parameters (GO201) and drop the flag, "
            "or use static_graph=True if the unused set never changes",
            _ddp_estimate(self),
        )


# -- GO203 ------------------------------------------------------------------------
_LOADERS = frozenset(
    {
        "torch.load", "torch.hub.load", "torch.jit.load", "timm.create_model", "transformers.pipeline",
        "keras.models.load_model", "keras.saving.load_model", "tensorflow.saved_model.load",
        "sentence_transformers.SentenceTransformer", "whisper.load_model", "spacy.load", "joblib.load",
        "onnxruntime.InferenceSession", "open_clip.create_model", "diffusers.DiffusionPipeline",
    }
)
_SCHEDULE_FACTORIES = re.compile(r"^transformers\.(optimization\.)?get_\w*schedule\w*$")
# A load into `warm`, `cache`, `prefetched`... is done for its side effect (download, page cache).
_WARM_UP = re.compile(r"warm|cache|prefetch|preload|download", re.IGNORECASE)
_WEAK_METHODS = frozenset(
    {
        "to", "cuda", "cpu", "eval", "train", "half", "float", "bfloat16", "double", "requires_grad_",
        "load_state_dict", "zero_grad", "share_memory", "tie_weights",
    }
)


class LoadedNeverUsed(Rule):
    """A model, tokenizer, pipeline or optimizer is loaded or built and never used.

    ## What it does
    Flags an assignment of a loaded or constructed model object to a local or
    module-level name that is never read afterwards: `X.from_pretrained(...)`
    (models, tokenizers, processors, pipelines), `torch.load`, `torch.hub.load`,
    `torch.jit.load`, `timm.create_model`, `transformers.pipeline`, Keras
    `load_model`, `SentenceTransformer`, `joblib.load`, `torchvision.models`
    builders, model classes of the module (`Net()`), and optimizers and
    learning-rate schedulers (`torch.optim.*`, `torch.optim.lr_scheduler.*`,
    `transformers.get_*_schedule*`). A name whose only uses are discarded
    in-place calls (`model.to(device)`, `model.eval()`,
    `model.load_state_dict(sd)`) is unused too.

    Not flagged: a name read anywhere in its scope (inside an f-string, a
    closure, a nested function), names starting with `_` or naming a
    deliberate warm-up (`warm`, `cache`, `prefetch`, `preload`, `download`:
    loaded for the download or the page cache), names listed in
    `__all__`, scopes that call `locals()`, `globals()`, `vars()`, `eval` or
    `exec`, names declared `global`/`nonlocal`, class attributes, and
    module-level names of a library module (one with functions or classes but
    no `if __name__ == "__main__":` block and no top-level loop), which other
    modules may import.

    ## Why is this bad
    Loading a checkpoint reads and deserialises every weight (seconds to minutes
    for large models, plus a download on first use) and then holds it in host
    or GPU memory for the rest of the process. An optimizer or scheduler that is
    never stepped costs little, but usually means the training loop does not do
    what was intended (the schedule is never applied).

    ## Fix
    Delete the load, or use the object; for a scheduler that should apply,
    call `scheduler.step()`. Autofix: none.

    ## Estimate
    One wasted load (or construction) a time the statement runs, as repeated
    work; the seconds and bytes depend on the checkpoint, which the code does
    not show (the probe measures them).
    """

    code = "GO203"
    name = "loaded-never-used"
    family = "unused"
    tokens = ("from_pretrained", "load", "create_model", "optim", "pipeline", "SentenceTransformer", "schedule", "models")
    INVALID = [
        """
        from transformers import AutoModel, AutoTokenizer

        def embed(texts):
            tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
            model = AutoModel.from_pretrained("bert-base-uncased")
            encoder = AutoModel.from_pretrained("roberta-base")
            return model(**tokenizer(texts, return_tensors="pt"))
        """,
        """
        import torch

        def evaluate(path, loader, model):
            state = torch.load(path)
            teacher = torch.load("teacher.pt")
            teacher.eval()
            model.load_state_dict(state)
            return [model(x) for x, _ in loader]
        """,
        """
        import torch

        def train(model, loader):
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100)
            for x, y in loader:
                loss = model(x, y)
                loss.backward()
                optimizer.step()
        """,
    ]
    VALID = [
        """
        from transformers import AutoTokenizer

        def describe(name):
            tokenizer = AutoTokenizer.from_pretrained(name)
            return f"{name}: vocabulary of {tokenizer.vocab_size}"
        """,
        """
        import torch

        def load(path):
            _unused = torch.load(path)
            model = torch.load(path)
            return lambda x: model(x)
        """,
        """
        from transformers import AutoModel

        __all__ = ["encoder"]
        encoder = AutoModel.from_pretrained("bert-base-uncased")
        """,
        """
        from transformers import AutoModel

        def helper():
            pass

        encoder = AutoModel.from_pretrained("bert-base-uncased")
        """,
    ]

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) != 1:
            return
        self._check(node.targets[0].target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._check(node.target, node.value)

    def _check(self, target: cst.BaseExpression, value: cst.BaseExpression) -> None:
        if not isinstance(target, cst.Name) or target.value.startswith("_"):
            return
        what = self._loaded(value)
        if what is None or what[0] is None:
            return
        if what[0] in ("model", "tokenizer") and _WARM_UP.search(target.value):
            return
        scope = self.ctx.enclosing(cst.FunctionDef, cst.ClassDef, cst.Lambda)
        if isinstance(scope, (cst.ClassDef, cst.Lambda)):
            return
        name = target.value
        if scope is None:
            if not is_module_script(self.ctx) or name in module_exports(self.ctx):
                return
            scope_node = self.ctx.module
        else:
            scope_node = scope
        reads = scope_reads(self.ctx, scope_node)
        if reads is None or name in reads.used or name in reads.declared:
            return
        kind, call = what
        label = self.ctx.snippet(call, 50)
        messages = {
            "model": "is loaded but never used: loading reads and deserialises every weight and keeps them in memory "
            "for nothing; delete the load, or use it",
            "built": "is built but never used: its parameters are allocated and initialised for nothing; "
            "delete it, or use it",
            "tokenizer": "is loaded but never used: loading reads its files (from disk or the hub) and keeps it in "
            "memory for nothing; delete the load, or use it",
            "optimizer": "is created but never used: nothing steps it; delete it, or use it",
            "scheduler": f"is created but never stepped, so its learning-rate schedule is never applied; call "
            f"{name}.step() in the training loop, or delete it",
        }
        unit = {"model": "wasted loads", "tokenizer": "wasted loads", "built": "wasted model builds"}.get(kind, "unused constructions")
        basis = {
            "optimizer": "constructing an optimizer or scheduler is cheap; the finding is that nothing uses it",
            "scheduler": "constructing an optimizer or scheduler is cheap; the finding is that nothing uses it",
            "built": "one model construction (parameter allocation and initialisation) whose result is never used",
        }.get(kind, "one whole load (read, deserialise, keep in memory) whose result is never used; the probe measures its time")
        estimate = SavingsEstimate(
            metric="repeated_work", low=1.0, high=1.0, unit=unit, basis=basis,
            hardware=self.ctx.hardware.key, assumptions=("the statement runs once",),
        )
        self.report(target, f"{name} = {label} {messages[kind]}", estimate)

    def _loaded(self, value: cst.BaseExpression) -> Optional[tuple[Optional[str], cst.Call]]:
        """(kind, the call) when `value` loads or builds a model, tokenizer, optimizer or scheduler."""
        while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value in _WEAK_METHODS and isinstance(value.func.value, cst.Call):
            if self.ctx.qualified_name(value.func) is not None:
                break
            value = value.func.value
        if not isinstance(value, cst.Call):
            return None
        qualified = self.ctx.call_name(value)
        func = value.func
        if qualified is None:
            if isinstance(func, cst.Attribute) and func.attr.value == "from_pretrained":
                return self._pretrained_kind(dotted_name(func.value) or ""), value
            if isinstance(func, cst.Name):
                analysis = module_attributes(self.ctx)
                info = analysis.classes.get(func.value)
                if info is not None and info.kind is not None and self.ctx.names.lookup(func.value) is info.node:
                    return "built", value
            return None
        if qualified in _LOADERS:
            return "model", value
        if qualified.endswith(".from_pretrained"):
            return self._pretrained_kind(qualified.rsplit(".", 2)[-2]), value
        if qualified.startswith("torchvision.models."):
            last = qualified.rsplit(".", 1)[-1]
            if last[:1].islower() and last not in ("get_weight", "get_model_weights", "list_models"):
                weights = get_arg(value, "weights") or get_arg(value, "pretrained")
                loads = weights is not None and literal_value(weights.value) not in (None, False)
                return ("model" if loads else "built"), value
            return None
        if qualified.startswith("torch.optim.lr_scheduler."):
            last = qualified.rsplit(".", 1)[-1]
            return ("scheduler", value) if last[:1].isupper() else None
        if qualified.startswith("torch.optim."):
            last = qualified.rsplit(".", 1)[-1]
            return ("optimizer", value) if last[:1].isupper() and "." not in qualified[len("torch.optim."):] else None
        if _SCHEDULE_FACTORIES.match(qualified):
            return "scheduler", value
        return None

    @staticmethod
    def _pretrained_kind(owner: str) -> Optional[str]:
        if "Config" in owner:
            return None
        if re.search(r"Tokenizer|Processor|Extractor", owner):
            return "tokenizer"
        return "model"


# -- GO204 ------------------------------------------------------------------------
_TORCH_CONV = re.compile(r"^torch\.nn\.(Lazy)?Conv(Transpose)?(?P<dims>[123])d$")
_TORCH_BN = re.compile(r"^torch\.nn\.(BatchNorm(?P<dims>[123])d|SyncBatchNorm)$")
_KERAS_CONV = re.compile(r"^keras\.layers\.(Conv|Convolution|SeparableConv|DepthwiseConv)(?P<dims>[123])D(Transpose)?$")
_KERAS_BN = frozenset({"keras.layers.BatchNormalization"})


class ConvBiasBeforeBatchNorm(Rule):
    """A convolution with a bias feeds straight into BatchNorm, which cancels the bias.

    ## What it does
    Flags `nn.Conv{1,2,3}d` / `nn.ConvTranspose{1,2,3}d` with `bias=True` (the
    default) immediately followed by `nn.BatchNorm{1,2,3}d` (same dimension) or
    `nn.SyncBatchNorm`: adjacent arguments of `nn.Sequential` (also through an
    `OrderedDict`), adjacent items of a layer list (`layers += [conv, bn, relu]`),
    consecutive `layers.append(conv)` / `layers.append(bn)` calls, and
    `self.bn(self.conv(x))` in a model method when `self.conv` is used nowhere
    else. The same for Keras `Conv{1,2,3}D` with `use_bias=True` (the default)
    and no activation, followed by `BatchNormalization()` in a `Sequential`
    list, consecutive `model.add(...)` calls, or consecutive functional calls
    (`x = Conv2D(64, 3)(x)` then `x = BatchNormalization()(x)`).

    Not flagged: `bias=False` / `use_bias=False`, a bias given as a variable,
    an activation between the two, Keras convolutions with an `activation=`
    or a `data_format=`, BatchNorm over a different dimension, GroupNorm and
    LayerNorm, and a conv whose output is also used elsewhere.

    ## Why is this bad
    BatchNorm subtracts the per-channel mean of its input, so a per-channel
    constant added just before it (the conv bias) is removed again, in training
    and in eval mode alike. The bias is `out_channels` wasted parameters and a
    broadcast add in forward and backward on every step. PyTorch's tuning guide
    and profiler (`Conv2dBiasFollowedByBatchNorm2dPattern`) flag this pattern.
    The saving is small: creedengo GCI101 measured nearly identical epoch time.

    ## Fix
    Pass `bias=False` (`use_bias=False` in Keras) to the convolution.
    Autofix: unsafe (the state dict loses `conv.bias`; load old checkpoints
    with `strict=False`).

    ## Estimate
    `out_channels` x 4 bytes of parameters (when the channel count is not
    literal, 16-2048 channels: 64 B to 8 KiB); the time saved (one broadcast
    add per conv) is within noise.
    """

    code = "GO204"
    name = "conv-bias-before-batchnorm"
    family = "unused"
    fixable = True
    fix_safety = "unsafe"
    severity = "info"
    tokens = ("BatchNorm", "SyncBatchNorm")
    INVALID = [
        """
        import torch.nn as nn
        block = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU())
        """,
        """
        from torch import nn
        layers = []
        layers += [nn.Conv2d(3, 64, kernel_size=3), nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        features = nn.Sequential(*layers)
        """,
        """
        from tensorflow import keras
        from tensorflow.keras import layers
        model = keras.Sequential([layers.Conv2D(32, 3), layers.BatchNormalization(), layers.ReLU()])
        """,
    ]
    VALID = [
        """
        import torch.nn as nn
        block = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), nn.ReLU())
        """,
        """
        import torch.nn as nn
        block = nn.Sequential(nn.Conv2d(64, 128, 3), nn.ReLU(), nn.BatchNorm2d(128))
        """,
        """
        import torch.nn as nn
        block = nn.Sequential(nn.Conv1d(64, 128, 3), nn.BatchNorm2d(128))
        """,
        """
        from tensorflow.keras import layers, Sequential
        model = Sequential([layers.Conv2D(32, 3, activation="relu"), layers.BatchNormalization()])
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self._reported: set[int] = set()
        self._positions: dict[int, dict[int, int]] = {}

    # -- what an expression is ------------------------------------------------
    def _resolve(self, node: cst.BaseExpression) -> Optional[cst.Call]:
        if isinstance(node, cst.Name):
            value = self.ctx.value_of(node)
            return value if isinstance(value, cst.Call) else None
        return node if isinstance(node, cst.Call) else None

    def _conv(self, node: cst.BaseExpression) -> Optional[tuple[str, str, cst.Call]]:
        """(framework, dims, call) for a convolution whose bias is on."""
        call = self._resolve(node)
        if call is None or has_star_kwargs(call) or any(a.star for a in call.args):
            return None
        qualified = self.ctx.call_name(call) or ""
        match = _TORCH_CONV.match(qualified)
        if match:
            bias = get_arg(call, "bias", 7)
            if bias is not None and literal_value(bias.value) is not True:
                return None
            return "torch", match.group("dims"), call
        match = _KERAS_CONV.match(qualified)
        if match:
            if sum(1 for a in call.args if a.keyword is None) > 4 or get_arg(call, "data_format") is not None:
                return None
            use_bias = get_arg(call, "use_bias")
            if use_bias is not None and literal_value(use_bias.value) is not True:
                return None
            activation = get_arg(call, "activation")
            if activation is not None and literal_value(activation.value) not in (None, "linear"):
                return None
            return "keras", match.group("dims"), call
        return None

    def _bn(self, node: cst.BaseExpression) -> Optional[tuple[str, Optional[str]]]:
        call = self._resolve(node)
        if call is None:
            return None
        qualified = self.ctx.call_name(call) or ""
        match = _TORCH_BN.match(qualified)
        if match:
            return "torch", match.group("dims")
        if qualified in _KERAS_BN:
            axis = get_arg(call, "axis", 0)
            if axis is not None and literal_value(axis.value) != -1:
                return None
            return "keras", None
        return None

    def _pair(self, first: cst.BaseExpression, second: cst.BaseExpression, report_at: cst.CSTNode) -> None:
        conv = self._conv(first)
        if conv is None:
            return
        bn = self._bn(second)
        if bn is None or bn[0] != conv[0] or (bn[1] is not None and bn[1] != conv[1]):
            return
        self._report(report_at, conv[2])

    def _report(self, node: cst.CSTNode, conv: cst.Call) -> None:
        # Reported where the conv is built: the fix and a noqa belong there,
        # also when the pair was found in `forward`.
        node = conv
        if id(node) in self._reported:
            return
        self._reported.add(id(node))
        torch_style = self.ctx.call_name(conv).startswith("torch.")
        channels = get_arg(conv, "out_channels", 1) if torch_style else get_arg(conv, "filters", 0)
        count = literal_value(channels.value) if channels is not None else None
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            estimate = extra_bytes_estimate(
                count * 4, f"{count} bias parameters x 4 bytes (float32); the broadcast add it saves is within noise", self.ctx.hardware
            )
        else:
            estimate = SavingsEstimate(
                metric="memory_bytes", low=16 * 4.0, high=2048 * 4.0, unit="bytes",
                basis="out_channels bias parameters x 4 bytes (float32); the broadcast add it saves is within noise",
                hardware=self.ctx.hardware.key,
                assumptions=("the channel count is not literal: 16-2048 channels, the range of common CNN layers",),
            )
        keyword = "bias" if torch_style else "use_bias"
        self.report(
            node,
            f"{self.ctx.snippet(conv, 48)} adds a bias that the BatchNorm right after it subtracts again "
            f"(wasted parameters and a broadcast add every step); pass {keyword}=False",
            estimate,
            fix=Fix(conv, lambda updated: with_keyword(updated, keyword, cst.Name("False")), safe=False,
                    title=f"{keyword}=False"),
        )

    # -- patterns ------------------------------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        qualified = self.ctx.call_name(node)
        if qualified == "torch.nn.Sequential":
            items = self._sequential_items(node)
            for first, second in zip(items, items[1:]):
                self._pair(first, second, first)
            return
        func = node.func
        if (
            isinstance(func, cst.Attribute)
            and is_self_attr(func)
            and len(node.args) >= 1
            and isinstance(node.args[0].value, cst.Call)
            and is_self_attr(node.args[0].value.func)
        ):
            self._forward_pair(node.args[0].value.func.attr.value, func.attr.value, node)

    def _sequential_items(self, node: cst.Call) -> list[cst.BaseExpression]:
        if len(node.args) == 1 and node.args[0].keyword is None and not node.args[0].star:
            only = node.args[0].value
            if isinstance(only, cst.Call) and (self.ctx.call_name(only) or "").endswith("OrderedDict") and only.args:
                pairs = only.args[0].value
                if isinstance(pairs, (cst.List, cst.Tuple)):
                    items = []
                    for element in pairs.elements:
                        if isinstance(element.value, cst.Tuple) and len(element.value.elements) == 2:
                            items.append(element.value.elements[1].value)
                        else:
                            return []
                    return items
        return [a.value for a in node.args if a.keyword is None and not a.star]

    def visit_List(self, node: cst.List) -> None:
        if "Sequential" not in self.ctx.text:
            return
        parent_call = self.ctx.parent(2)
        if isinstance(parent_call, cst.Call) and (self.ctx.call_name(parent_call) or "").endswith(("ModuleList", "ModuleDict")):
            return
        items = [e.value for e in node.elements if not isinstance(e, cst.StarredElement)]
        if len(items) != len(node.elements):
            return
        for first, second in zip(items, items[1:]):
            self._pair(first, second, first)

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        # Checked when the second statement of a pair is reached, so that the
        # names the first one uses (`conv2d = nn.Conv2d(...)`) are bound.
        if len(node.body) != 1:
            return
        block = self.ctx.parent(1)
        body = getattr(block, "body", None)
        if not isinstance(body, (tuple, list)):
            return
        positions = self._positions.get(id(block))
        if positions is None:
            positions = {id(stmt): index for index, stmt in enumerate(body)}
            self._positions[id(block)] = positions
        index = positions.get(id(node), 0)
        if index == 0:
            return
        previous = body[index - 1]
        if isinstance(previous, cst.SimpleStatementLine) and len(previous.body) == 1:
            self._statement_pair(previous.body[0], node.body[0])

    def _statement_pair(self, first: cst.BaseSmallStatement, second: cst.BaseSmallStatement) -> None:
        # layers.append(conv); layers.append(bn)  /  model.add(conv); model.add(bn)
        if isinstance(first, cst.Expr) and isinstance(second, cst.Expr):
            a, b = first.value, second.value
            if (
                isinstance(a, cst.Call) and isinstance(b, cst.Call)
                and isinstance(a.func, cst.Attribute) and isinstance(b.func, cst.Attribute)
                and a.func.attr.value == b.func.attr.value
                and a.func.attr.value in ("append", "add")
                and len(a.args) == 1 and len(b.args) == 1
                and self.ctx.module.code_for_node(a.func.value) == self.ctx.module.code_for_node(b.func.value)
            ):
                if a.func.attr.value == "append" and "Sequential" not in self.ctx.text:
                    return
                self._pair(a.args[0].value, b.args[0].value, a.args[0].value)
            return
        # x = Conv2D(64, 3)(x); x = BatchNormalization()(x)   /   x = self.conv(x); x = self.bn(x)
        if not (isinstance(first, cst.Assign) and isinstance(second, cst.Assign)):
            return
        if len(first.targets) != 1 or len(second.targets) != 1:
            return
        target, again = first.targets[0].target, second.targets[0].target
        a, b = first.value, second.value
        if not (isinstance(target, cst.Name) and isinstance(again, cst.Name) and target.value == again.value):
            return
        if not (isinstance(a, cst.Call) and isinstance(b, cst.Call) and len(b.args) == 1):
            return
        if not (isinstance(b.args[0].value, cst.Name) and b.args[0].value.value == target.value):
            return
        if isinstance(a.func, cst.Call) and isinstance(b.func, cst.Call):
            conv = self._conv(a.func)
            if conv is not None and conv[0] == "keras":
                self._pair(a.func, b.func, a)
        elif is_self_attr(a.func) and is_self_attr(b.func):
            self._forward_pair(a.func.attr.value, b.func.attr.value, a)

    def _forward_pair(self, conv_attr: str, bn_attr: str, report_at: cst.CSTNode) -> None:
        """`self.bn(self.conv(x))` in a model class whose `conv` is used only here."""
        cls = self.ctx.enclosing_class()
        if cls is None:
            return
        analysis = module_attributes(self.ctx)
        info = analysis.classes.get(cls.name.value)
        if info is None or info.node is not cls or info.kind != "torch" or not analysis.is_analysable(info.name):
            return
        convs = _group_assignments(analysis, info.name, conv_attr)
        bns = _group_assignments(analysis, info.name, bn_attr)
        if not convs or not bns:
            return
        stored = analysis.group_stores(info.name)
        if conv_attr not in stored or bn_attr not in stored:
            return
        if len(convs) != _group_store_count(analysis, info.name, conv_attr) or len(bns) != _group_store_count(analysis, info.name, bn_attr):
            return  # assigned outside __init__ too
        conv_infos = [self._conv(value) for value in convs]
        bn_infos = [self._bn(value) for value in bns]
        if any(c is None or c[0] != "torch" for c in conv_infos) or any(b is None or b[0] != "torch" for b in bn_infos):
            return
        dims = {c[1] for c in conv_infos}
        if len(dims) != 1 or any(b[1] is not None and b[1] not in dims for b in bn_infos):
            return
        if analysis.group_reads(info.name)[conv_attr] != 1:
            return
        reads, words = analysis.external_reads()
        if reads[conv_attr] or conv_attr in words:
            return
        self._report(report_at, conv_infos[0][2])




def _group_assignments(analysis, class_name: str, attr: str) -> list[cst.BaseExpression]:
    values = []
    for member in analysis._groups[class_name]:
        for assignment in analysis.classes[member].assigned.get(attr, ()):
            if assignment.multiple_targets:
                return []
            values.append(assignment.value)
    return values


def _group_store_count(analysis, class_name: str, attr: str) -> int:
    return sum(analysis.classes[m].store_counts[attr] for m in analysis._groups[class_name])


# -- GO205 ------------------------------------------------------------------------
_GUARD = re.compile(r"debug|anomal|profil|nvtx|trace|verbose|eager|sanity|detect", re.IGNORECASE)
_GUARD_FUNCTION = re.compile(r"debug|profil|^test|bench|trace", re.IGNORECASE)


class DebugModeLeftOn(Rule):
    """A debugging switch that slows every step is left on unconditionally.

    ## What it does
    Flags, outside tests and outside an `if` that tests a debug-style flag
    (`if args.debug:`, `if cfg.detect_anomaly:`, `if os.getenv("DEBUG")`):
    `torch.autograd.set_detect_anomaly(True)`, `with torch.autograd.detect_anomaly():`,
    `torch.autograd.profiler.profile()` / `emit_nvtx()` and
    `torch.profiler.profile()` without a `schedule=` wrapping a training loop,
    `CUDA_LAUNCH_BLOCKING=1` set in code (`os.environ[...] = "1"`,
    `os.environ.setdefault`, `os.putenv`), `tf.config.run_functions_eagerly(True)`,
    Keras `compile(..., run_eagerly=True)`, and
    `jax.config.update("jax_disable_jit", True)`.

    Not flagged: a value from configuration (`set_detect_anomaly(args.debug)`),
    `enabled=False`, calls inside functions named like `debug_*`, `profile_*`,
    `benchmark_*`, and test files.

    ## Why is this bad
    Anomaly detection records a stack trace for every autograd node in forward
    and checks every backward output for NaN, which PyTorch documents as
    "should be enabled only for debugging as the different tests will slow
    down your program execution". The autograd profiler times every operator.
    `CUDA_LAUNCH_BLOCKING=1` makes every kernel launch synchronous, removing all
    CPU/GPU overlap. Eager mode in TensorFlow/Keras and `jax_disable_jit` run
    op by op in Python instead of a compiled graph.

    ## Fix
    Remove the call, or put it under a debug flag that is off by default.
    Autofix: unsafe (error behaviour changes).

    ## Estimate
    Time factor of the training step, measured here on CPU with small models
    (so an upper range for large, kernel-bound models): anomaly detection
    1.25x (CNN) to 2.3x (MLP); the autograd profiler 1.2x to 1.5x; TF eager
    execution up to 6.8x; `jax.disable_jit()` up to 18x. `CUDA_LAUNCH_BLOCKING=1`:
    up to 2x, derived from losing the overlap of kernel launches with GPU work.
    """

    code = "GO205"
    name = "debug-mode-left-on"
    family = "unused"
    tokens = ("anomaly", "profiler", "emit_nvtx", "CUDA_LAUNCH_BLOCKING", "eagerly", "jax_disable_jit", "disable_jit")
    INVALID = [
        """
        import torch
        torch.autograd.set_detect_anomaly(True)
        """,
        """
        import os
        os.environ["CUDA_LAUNCH_BLOCKING"] = "1"
        """,
        """
        import tensorflow as tf
        tf.config.run_functions_eagerly(True)
        """,
        """
        import torch

        def train(model, loader, opt):
            with torch.autograd.detect_anomaly():
                for x, y in loader:
                    model(x, y).backward()
                    opt.step()
        """,
    ]
    VALID = [
        """
        import torch
        if args.debug:
            torch.autograd.set_detect_anomaly(True)
        """,
        """
        import torch
        torch.autograd.set_detect_anomaly(args.detect_anomaly)
        """,
        """
        import torch
        torch.autograd.set_detect_anomaly(False)
        """,
        """
        import os
        os.environ["CUDA_LAUNCH_BLOCKING"] = "0"
        """,
    ]

    _ANOMALY_SET = frozenset({"torch.autograd.set_detect_anomaly", "torch.autograd.anomaly_mode.set_detect_anomaly"})
    _ANOMALY_WITH = frozenset({"torch.autograd.detect_anomaly", "torch.autograd.anomaly_mode.detect_anomaly"})
    _PROFILERS = frozenset(
        {
            "torch.autograd.profiler.profile", "torch.autograd.profiler.emit_nvtx", "torch.autograd.profile",
            "torch.autograd.emit_nvtx", "torch.profiler.profile", "torch.autograd.profiler_legacy.profile",
        }
    )
    _EAGER = frozenset({"tensorflow.config.run_functions_eagerly", "tensorflow.config.experimental_run_functions_eagerly"})
    _JAX_UPDATE = frozenset({"jax.config.update", "jax.config.config.update"})

    def visit_Call(self, node: cst.Call) -> None:
        name = self.ctx.call_name(node)
        first = get_arg(node, None, 0)
        what = None
        if name in self._ANOMALY_SET:
            arg = get_arg(node, "mode", 0)
            if arg is not None and literal_value(arg.value) is True:
                what = "torch.autograd.set_detect_anomaly(True) checks every autograd node and records forward stack traces"
        elif name in self._ANOMALY_WITH:
            what = "torch.autograd.detect_anomaly() checks every autograd node and records forward stack traces"
        elif name in self._PROFILERS:
            what = self._profiler(node, name)
        elif name in self._EAGER:
            if first is not None and literal_value(first.value) is True:
                what = f"{display_name(name)}(True) runs every tf.function op by op in Python"
        elif name in self._JAX_UPDATE:
            value = get_arg(node, None, 1)
            if first is not None and literal_value(first.value) == "jax_disable_jit" and value is not None and literal_value(value.value) in TRUTHY_LITERALS:
                what = 'jax.config.update("jax_disable_jit", True) runs every jitted function op by op'
        elif name == "jax.disable_jit":
            what = "jax.disable_jit() runs every jitted function op by op"
        elif name in ("os.environ.setdefault", "os.putenv"):
            value = get_arg(node, None, 1)
            if first is not None and literal_value(first.value) == "CUDA_LAUNCH_BLOCKING" and value is not None and literal_value(value.value) in TRUTHY_LITERALS:
                what = "CUDA_LAUNCH_BLOCKING=1 makes every CUDA kernel launch synchronous (no CPU/GPU overlap)"
        elif isinstance(node.func, cst.Attribute) and node.func.attr.value == "compile":
            eager = get_arg(node, "run_eagerly")
            if eager is not None and literal_value(eager.value) is True and "keras" in self.ctx.text:
                what = "compile(run_eagerly=True) runs every Keras training step op by op in Python"
        if what is not None and not self._guarded():
            self._report(node, what)

    def visit_Assign(self, node: cst.Assign) -> None:
        assignment = environ_assignment(self.ctx, node)
        if assignment is not None and assignment[0] == "CUDA_LAUNCH_BLOCKING" and literal_value(assignment[1]) in TRUTHY_LITERALS:
            if not self._guarded():
                self._report(node, "CUDA_LAUNCH_BLOCKING=1 makes every CUDA kernel launch synchronous (no CPU/GPU overlap)")

    def _profiler(self, node: cst.Call, name: str) -> Optional[str]:
        enabled = get_arg(node, "enabled", 0 if "emit_nvtx" in name else None)
        if enabled is not None and literal_value(enabled.value) is not True:
            return None
        if name == "torch.profiler.profile" and get_arg(node, "schedule") is not None:
            return None
        # Only a profiler wrapped around training: a `with` whose body loops and calls backward.
        item, with_node = self.ctx.parent(1), self.ctx.parent(2)
        if not (isinstance(item, cst.WithItem) and isinstance(with_node, cst.With)):
            return None
        body = self.ctx.module.code_for_node(with_node.body)
        if ".backward(" not in body or not any(f"{k} " in body for k in ("for", "while")):
            return None
        return f"{display_name(name)}() around the training loop times every operator of every step"

    def _guarded(self) -> bool:
        if is_test_file(self.ctx.path):
            return True
        for ancestor in reversed(self.ctx.stack[:-1]):
            if isinstance(ancestor, cst.If) and _GUARD.search(self.ctx.module.code_for_node(ancestor.test)):
                return True
            if isinstance(ancestor, cst.IfExp):
                return True
            if isinstance(ancestor, cst.FunctionDef) and _GUARD_FUNCTION.search(ancestor.name.value):
                return True
        return False

    def _report(self, node: cst.CSTNode, what: str) -> None:
        key = next((k for k in _DEBUG_COSTS if k in what), "profiler")
        low, high, basis = _DEBUG_COSTS[key]
        estimate = SavingsEstimate(
            metric="time_factor", low=low, high=high, unit="x", basis=basis,
            hardware=self.ctx.hardware.key,
            assumptions=("the switch is on for the whole training run",),
        )
        self.report(
            node,
            f"{what} (up to {high:g}x step time); it is a debugging aid: remove it or put it under a debug flag",
            estimate,
        )


# Measured here on CPU (1 thread, process time, 15 interleaved repetitions; medians):
# a CNN (2 conv + BN, batch 16 of 32x32) and an MLP (8 x 256 linear, batch 64).
_DEBUG_COSTS = {
    "anomaly": (
        1.25, 2.3,
        "measured: anomaly mode cost 1.25x CPU time per training step for a small CNN and 2.3x for an 8-layer "
        "MLP (torch 2.5, CPU, 15 interleaved runs); on GPUs its NaN checks also synchronise with the host",
    ),
    "profiler": (
        1.2, 1.5,
        "measured: torch.autograd.profiler.profile() around training steps cost 1.2x (CNN) to 1.5x (MLP) CPU "
        "time per step (torch 2.5, CPU, 15 interleaved runs)",
    ),
    "CUDA_LAUNCH_BLOCKING": (
        1.0, 2.0,
        "derived: without launch/compute overlap a step takes CPU launch time + GPU time instead of the larger "
        "of the two, up to 2x when they are equal, plus a host synchronisation per kernel",
    ),
    "tf.function": (
        1.0, 6.8,
        "measured: a Keras MLP training step ran 6.8x slower (CPU time) with run_functions_eagerly(True) than "
        "as a tf.function (TF 2.18, CPU, 1 thread); large kernel-bound models lose less",
    ),
    "Keras": (
        1.0, 6.8,
        "measured: a Keras MLP training step ran 6.8x slower (CPU time) eagerly than as a tf.function "
        "(TF 2.18, CPU, 1 thread); large kernel-bound models lose less",
    ),
    "jitted": (
        1.0, 18.0,
        "measured: an MLP training step ran 18x slower (CPU time) under jax.disable_jit() than jitted "
        "(JAX 0.4.35, CPU); large kernel-bound models lose less",
    ),
}


RULES = [UnusedSubmodule, DdpFindUnusedParameters, LoadedNeverUsed, ConvBiasBeforeBatchNorm, DebugModeLeftOn]

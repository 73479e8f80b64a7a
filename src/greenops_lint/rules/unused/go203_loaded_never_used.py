"""GO203: a model, tokenizer, pipeline or optimizer is loaded or built and never used."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.attributes import module_attributes
from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.names import dotted_name
from greenops_lint.analysis.tree import is_test_file, last_part
from greenops_lint.analysis.unused_names import DISCARDED_METHODS, is_module_script, module_exports, scope_reads
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.savings import SOURCE_COUNTED

# The page's `## Estimate`: one wasted load (or construction) each time the statement runs.
WASTED_PER_RUN = 1.0
_UNITS = {
    "model": "wasted loads",
    "tokenizer": "wasted loads",
    "built": "wasted model builds",
    "copy": "wasted model copies",
}
_CHEAP = "constructing an optimizer or scheduler is cheap; the finding is that nothing uses it"
_BASES = {
    "optimizer": _CHEAP,
    "scheduler": _CHEAP,
    "built": "one model construction (parameter allocation and initialisation) whose result is never used",
    "tokenizer": "one tokenizer or processor load (vocabulary and configuration files, typically a few MB and "
    "under a second) whose result is never used",
    "copy": "one full copy of the model's parameters and buffers (as large as the model), allocated and kept for "
    "the rest of the process, never used",
}
# Copies of a model: `copy.deepcopy(model)` and the EMA / weight-averaging wrappers,
# each holding a second set of the model's weights.
_COPIERS = frozenset(
    {
        "torch.optim.swa_utils.AveragedModel",
        "timm.utils.ModelEma",
        "timm.utils.ModelEmaV2",
        "timm.utils.ModelEmaV3",
        "timm.utils.model_ema.ModelEmaV2",
        "timm.utils.model_ema.ModelEmaV3",
        "torch_ema.ExponentialMovingAverage",
        "ema_pytorch.EMA",
    }
)
# What a copied name must look like to be a model when its value is not known here.
_MODEL_NAME = re.compile(
    r"model|net|teacher|student|encoder|decoder|backbone|policy|critic|actor|generator|discriminator", re.IGNORECASE
)
_NOT_A_MODEL_NAME = re.compile(
    r"conf|cfg|arg|kwarg|param|state|dict|opt|setting|spec|name|path|dir|list|info", re.IGNORECASE
)
_LOAD_BASIS = (
    "one whole load (read, deserialise, keep in memory) whose result is never used; the probe measures its time"
)

_LOADERS = frozenset(
    {
        "torch.load",
        "torch.hub.load",
        "torch.jit.load",
        "timm.create_model",
        "transformers.pipeline",
        "keras.models.load_model",
        "keras.saving.load_model",
        "tensorflow.saved_model.load",
        "sentence_transformers.SentenceTransformer",
        "whisper.load_model",
        "spacy.load",
        "joblib.load",
        "onnxruntime.InferenceSession",
        "open_clip.create_model",
        "diffusers.DiffusionPipeline",
    }
)
_SCHEDULE_FACTORIES = re.compile(r"^transformers\.(optimization\.)?get_\w*schedule\w*$")
# A load into `warm`, `cache`, `prefetched`... is done for its side effect (download, page cache).
_WARM_UP = re.compile(r"warm|cache|prefetch|preload|download", re.IGNORECASE)


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

    Copies of a model are flagged too: `copy.deepcopy(model)` (of a name
    bound to a model here, or named like one: `model`, `net`, `teacher`,
    `encoder`...) and EMA / weight-averaging wrappers
    (`torch.optim.swa_utils.AveragedModel`, timm's `ModelEmaV2`/`V3`,
    `torch_ema.ExponentialMovingAverage`) assigned and never used: each holds
    a second copy of the weights.

    Not flagged: test files (a load there checks an API); a name read anywhere in its scope (inside an f-string, a
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

    ## When it is material
    Model loads, builds and copies are material: each holds a model's weights.
    A tokenizer or processor load (a few MB, under a second) is reported at
    info severity.

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
    estimate_sources = {
        SOURCE_COUNTED: "any hardware: one wasted load per execution; `greenops-lint probe` times it",
    }
    analyses = ("module_attributes", "scope_reads")
    tokens = (
        "from_pretrained",
        "load",
        "create_model",
        "optim",
        "pipeline",
        "SentenceTransformer",
        "schedule",
        "models",
        "deepcopy",
        "Ema",
        "EMA",
        "AveragedModel",
        "ExponentialMovingAverage",
    )
    INVALID = [
        Invalid(
            """
            from transformers import AutoModel, AutoTokenizer

            def embed(texts):
                tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModel.from_pretrained("bert-base-uncased")
                encoder = AutoModel.from_pretrained("roberta-base")
                return model(**tokenizer(texts, return_tensors="pt"))
            """,
            line=6,
            message='encoder = AutoModel.from_pretrained("roberta-base") is loaded but never used',
        ),
        """
        import torch

        def evaluate(path, loader, model):
            state = torch.load(path)
            teacher = torch.load("teacher.pt")
            teacher.eval()
            model.load_state_dict(state)
            return [model(x) for x, _ in loader]
        """,
        Invalid(
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
            line=5,
            message="is created but never stepped, so its learning-rate schedule is never applied",
        ),
        Invalid(
            """
            import copy

            def train(model, loader, opt):
                ema_model = copy.deepcopy(model)
                for x, y in loader:
                    model(x, y).backward()
                    opt.step()
            """,
            line=4,
            message="ema_model = copy.deepcopy(model) is a copy of the model that is never used",
        ),
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
        if is_test_file(self.ctx.path):
            return
        kind, call = what
        label = self.ctx.snippet(call, 50)
        messages = {
            "model": "is loaded but never used: loading reads and deserialises every weight and keeps them in memory "
            "for nothing; delete the load, or use it",
            "built": "is built but never used: its parameters are allocated and initialised for nothing; "
            "delete it, or use it",
            "tokenizer": "is loaded but never used: loading reads its vocabulary and configuration files (from disk "
            "or the hub) for nothing; delete the load, or use it",
            "copy": "is a copy of the model that is never used: it holds a second set of the model's weights for "
            "nothing; delete it, or use it (an EMA copy must be updated and evaluated to be of use)",
            "optimizer": "is created but never used: nothing steps it; delete it, or use it",
            "scheduler": f"is created but never stepped, so its learning-rate schedule is never applied; call "
            f"{name}.step() in the training loop, or delete it",
        }
        estimate = SavingsEstimate(
            metric="repeated_work",
            low=WASTED_PER_RUN,
            high=WASTED_PER_RUN,
            unit=_UNITS.get(kind, "unused constructions"),
            basis=_BASES.get(kind, _LOAD_BASIS),
            hardware=self.ctx.hardware.key,
            source=SOURCE_COUNTED,
            assumptions=("the statement runs once",),
        )
        self.report(
            target,
            f"{name} = {label} {messages[kind]}",
            estimate,
            severity="info" if kind == "tokenizer" else self.severity,
        )

    def _loaded(self, value: cst.BaseExpression, copies: bool = True) -> Optional[tuple[Optional[str], cst.Call]]:
        """(kind, the call) when `value` loads or builds a model, tokenizer, optimizer or scheduler."""
        while (
            isinstance(value, cst.Call)
            and isinstance(value.func, cst.Attribute)
            and value.func.attr.value in DISCARDED_METHODS
            and isinstance(value.func.value, cst.Call)
        ):
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
        if qualified in _COPIERS:
            return "copy", value
        if copies and qualified == "copy.deepcopy" and value.args and self._is_model(value.args[0].value):
            return "copy", value
        if qualified.endswith(".from_pretrained"):
            return self._pretrained_kind(qualified.rsplit(".", 2)[-2]), value
        if qualified.startswith("torchvision.models."):
            last = last_part(qualified)
            if last[:1].islower() and last not in ("get_weight", "get_model_weights", "list_models"):
                weights = get_arg(value, "weights") or get_arg(value, "pretrained")
                loads = weights is not None and literal_value(weights.value) not in (None, False)
                return ("model" if loads else "built"), value
            return None
        if qualified.startswith("torch.optim.lr_scheduler."):
            last = last_part(qualified)
            return ("scheduler", value) if last[:1].isupper() else None
        if qualified.startswith("torch.optim."):
            last = last_part(qualified)
            return ("optimizer", value) if last[:1].isupper() and "." not in qualified[len("torch.optim.") :] else None
        if _SCHEDULE_FACTORIES.match(qualified):
            return "scheduler", value
        return None

    def _is_model(self, node: cst.BaseExpression) -> bool:
        """A name (or `self.<attr>`) bound to a loaded or built model here, or named like a model."""
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
            attr = node.attr.value
            return bool(_MODEL_NAME.search(attr)) and not _NOT_A_MODEL_NAME.search(attr)
        if not isinstance(node, cst.Name):
            return False
        bound = self.ctx.value_of(node)
        if isinstance(bound, cst.BaseExpression):
            found = self._loaded(bound, copies=False)  # `model = copy.deepcopy(model)`: no recursion
            if found is not None and found[0] in ("model", "built", "copy"):
                return True
        return bool(_MODEL_NAME.search(node.value)) and not _NOT_A_MODEL_NAME.search(node.value)

    @staticmethod
    def _pretrained_kind(owner: str) -> Optional[str]:
        if "Config" in owner:
            return None
        if re.search(r"Tokenizer|Processor|Extractor", owner):
            return "tokenizer"
        return "model"

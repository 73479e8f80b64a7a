"""Which classes of a module are models, and which expressions hold a model.

A class is a model when one of its bases resolves to a known framework model
base, or to another model class of the same module (transitively).
"""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.names import Imported, NameResolver, canonical, dotted_name

MODEL_BASES = frozenset(
    {
        "torch.nn.Module",
        "torch.nn.modules.module.Module",
        "lightning.LightningModule",
        "lightning.pytorch.LightningModule",
        "lightning.pytorch.core.LightningModule",
        "transformers.PreTrainedModel",
        "transformers.modeling_utils.PreTrainedModel",
        "keras.Model",
        "keras.models.Model",
        "keras.layers.Layer",
        "flax.linen.Module",
    }
)

# Calls that return a model object.
MODEL_FACTORIES = frozenset(
    {
        "timm.create_model",
        "torch.hub.load",
        "keras.models.load_model",
        "keras.saving.load_model",
        "sentence_transformers.SentenceTransformer",
    }
)
_MODEL_PREFIXES = ("torch.nn.", "torchvision.models.", "keras.layers.", "keras.applications.")
_CONTAINER_OR_FUNCTIONAL = ("torch.nn.functional.", "torch.nn.init.", "torch.nn.utils.", "torch.nn.parameter.")

# Names that, in ML code, hold a model when nothing else is known about them.
MODEL_NAME = re.compile(
    r"(^|_)(model|net|network|encoder|decoder|backbone|classifier|generator|discriminator|"
    r"policy|critic|actor|transformer|unet|resnet|vae|gan|mlp|cnn|rnn|lstm)s?$",
    re.IGNORECASE,
)


DATASET_BASES = frozenset(
    {
        "torch.utils.data.Dataset",
        "torch.utils.data.IterableDataset",
        "torch.utils.data.dataset.Dataset",
        "torchvision.datasets.VisionDataset",
        "torchvision.datasets.ImageFolder",
        "torchvision.datasets.DatasetFolder",
    }
)


class ModelClasses:
    """Classes defined at the top level of one module whose bases resolve,
    directly or through other classes of the module, to one of `bases`
    (framework model classes by default)."""

    def __init__(self, module: cst.Module, names: NameResolver, bases: frozenset = MODEL_BASES) -> None:
        self.bases = bases
        module_scope = names.scopes[0]
        classes = {stmt.name.value: stmt for stmt in module.body if isinstance(stmt, cst.ClassDef)}
        self.models: set[str] = set()
        changed = True
        while changed:  # a fixed point over "subclass of a model class"
            changed = False
            for name, node in classes.items():
                if name in self.models:
                    continue
                for base in node.bases:
                    if self._is_model_base(base.value, module_scope.names):
                        self.models.add(name)
                        changed = True
                        break
        self.classes = classes

    def _is_model_base(self, expr: cst.BaseExpression, module_names: dict) -> bool:
        dotted = dotted_name(expr)
        if dotted is None:
            return False
        head, _, rest = dotted.partition(".")
        binding = module_names.get(head)
        if isinstance(binding, Imported):
            qualified = canonical(binding.qualified + ("." + rest if rest else ""))
            return qualified in self.bases
        return not rest and head in self.models

    def is_model_class(self, name: str) -> bool:
        return name in self.models


def is_model_constructor(qualified: Optional[str], callee: cst.BaseExpression, model_classes: ModelClasses) -> bool:
    """Does calling `callee` (resolved to `qualified`) create a model?"""
    if qualified is not None:
        if qualified in MODEL_FACTORIES or qualified.endswith(".from_pretrained"):
            return True
        if qualified.startswith(_CONTAINER_OR_FUNCTIONAL):
            return False
        if qualified.startswith(_MODEL_PREFIXES):
            last = qualified.rsplit(".", 1)[-1]
            # Classes (Linear, Conv2d) and torchvision builders (resnet50).
            return last[:1].isupper() or qualified.startswith("torchvision.models.")
        return False
    if isinstance(callee, cst.Name):
        return model_classes.is_model_class(callee.value)
    if isinstance(callee, cst.Attribute) and callee.attr.value == "from_pretrained":
        return True
    return False

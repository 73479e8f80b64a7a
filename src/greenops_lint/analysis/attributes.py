"""Which submodules of a model class are created, and which are ever read.

For every top-level class of a module whose bases resolve to a framework model
base (`torch.nn.Module`, `lightning.LightningModule`, `transformers.PreTrainedModel`,
`keras.layers.Layer` / `keras.Model`, `flax.linen.Module`), directly or through
other classes of the same module, this analysis records:

- the `self.<attr> = <value>` assignments made in `__init__` / `setup` / `build`;
- how often `self.<attr>` is read anywhere in the class (any method, nested
  functions included, and `getattr(self, "attr")` with a literal name);
- whether the class uses its attributes dynamically (`getattr(self, name)`,
  `setattr`, `self.__dict__`, `vars(self)`, `self._modules`, `self.modules()`,
  `self.children()`, `named_modules()`, `get_submodule`, `eval`/`exec`...),
  in which case nothing about it is claimed.

Classes are grouped by same-module inheritance (a class, its bases and its
subclasses, transitively): a read anywhere in the group counts, because an
inherited `forward` reads what a subclass's `__init__` assigns. A group with a
base that cannot be resolved (a mixin, a class from another module) is given
up. Reads of `.attr` on any other receiver (`model.head`, `self.block.proj`)
and the word `attr` in any string literal (state-dict keys, `_tied_weights_keys`,
`"head" in name`) count as reads module-wide; those are computed only when a
class has a candidate, since they need a walk of the whole module.

The analysis is computed once per module, on first use, and cached on the
file context (`module_attributes(ctx)`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from greenops_lint.analysis.calls import NOT_LITERAL, literal_value, name_prefix
from greenops_lint.analysis.classes import MODEL_BASES, MODEL_FACTORIES
from greenops_lint.analysis.layer_params import torch_param_count
from greenops_lint.analysis.names import Imported, canonical, dotted_name
from greenops_lint.walker import children as _children
from greenops_lint.walker import is_leaf

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext

# Model base classes as the libraries that define them import them, relatively.
_RELATIVE_MODEL_BASES = frozenset({"PreTrainedModel", "ModelMixin"})

INIT_METHODS = frozenset({"__init__", "setup", "build"})

# The methods that run a model: a class (or a same-module ancestor) must define
# one, otherwise it is a container or an abstract base whose attributes are
# read from outside (`model.heads.cls`), and nothing is claimed about it.
ENTRY_METHODS = {
    "torch": frozenset({"forward", "training_step", "validation_step", "test_step", "predict_step", "__call__"}),
    "keras": frozenset({"call", "__call__"}),
    "flax": frozenset({"__call__"}),
}

# `self.<attr>` reads that list or reach submodules by name.
DYNAMIC_ATTRS = frozenset(
    {
        "__dict__",
        "_modules",
        "modules",
        "children",
        "named_modules",
        "named_children",
        "get_submodule",
        "__getattr__",
        "__getattribute__",
        "_flatten_layers",
        "_flatten_modules",
        "submodules",
        "_layers",
        "__setattr__",
    }
)
_DYNAMIC_BUILTINS = frozenset({"setattr", "delattr", "vars", "eval", "exec", "locals", "globals"})
# Keras models list their layers by tracking assignments.
_KERAS_DYNAMIC_ATTRS = frozenset({"layers"})

# Layers without parameters or buffers: an unused one costs nothing.
_PARAM_FREE_TORCH = frozenset(
    {
        "ReLU",
        "ReLU6",
        "LeakyReLU",
        "GELU",
        "SiLU",
        "Sigmoid",
        "Tanh",
        "Softmax",
        "Softmax2d",
        "LogSoftmax",
        "Softmin",
        "Softplus",
        "Softsign",
        "ELU",
        "SELU",
        "CELU",
        "Mish",
        "Hardswish",
        "Hardsigmoid",
        "Hardtanh",
        "Hardshrink",
        "Softshrink",
        "Tanhshrink",
        "Threshold",
        "GLU",
        "LogSigmoid",
        "RReLU",
        "Identity",
        "Flatten",
        "Unflatten",
        "Upsample",
        "UpsamplingNearest2d",
        "UpsamplingBilinear2d",
        "PixelShuffle",
        "PixelUnshuffle",
        "ChannelShuffle",
        "Fold",
        "Unfold",
        "CosineSimilarity",
        "PairwiseDistance",
        "LocalResponseNorm",
        "CrossMapLRN2d",
        "InstanceNorm1d",
        "InstanceNorm2d",
        "InstanceNorm3d",
        "Parameter",
        "ParameterList",
        "ParameterDict",
        "Module",
        # A buffer has no parameters and no gradient: no DDP effect, no optimizer state.
        "Buffer",
    }
)
# Containers: one built from a list that `self` keeps elsewhere
# (`self.fc_stack = nn.ModuleList(self.layers)`) registers layers used through it.
_CONTAINERS = frozenset({"ModuleList", "ModuleDict", "Sequential", "ParameterList", "ParameterDict"})
# Decorators that do not read the instance's attributes: a method decorated
# with anything else imported from another module may have its attributes
# read there (transformers' `@dynamic_rope_update` reads `self.original_inv_freq`).
_INERT_DECORATOR_ROOTS = ("torch.", "functools.", "typing.", "typing_extensions.", "abc.", "contextlib.", "builtins.")
_PARAM_FREE_SUFFIXES = (
    "Loss",
    "Pool1d",
    "Pool2d",
    "Pool3d",
    "Dropout",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "Pad1d",
    "Pad2d",
    "Pad3d",
)
_PARAM_FREE_KERAS = frozenset(
    {
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianNoise",
        "GaussianDropout",
        "AlphaDropout",
        "Activation",
        "ReLU",
        "LeakyReLU",
        "ELU",
        "Softmax",
        "Flatten",
        "Reshape",
        "Permute",
        "RepeatVector",
        "Lambda",
        "Concatenate",
        "Add",
        "Multiply",
        "Average",
        "Maximum",
        "Minimum",
        "Subtract",
        "Dot",
        "Input",
        "InputLayer",
        "Rescaling",
        "Resizing",
        "CenterCrop",
        "Identity",
        "Normalization",
    }
)
_PARAM_FREE_KERAS_PARTS = ("Pooling", "MaxPool", "AvgPool", "UpSampling", "ZeroPadding", "Cropping", "Random")
_PARAM_FREE_FLAX = frozenset({"Dropout"})

# Method chains that return the same module.
_SAME_MODULE_METHODS = frozenset(
    {"to", "cuda", "cpu", "float", "half", "bfloat16", "double", "train", "eval", "requires_grad_", "to_empty"}
)

# `X.from_pretrained` of these is not a submodule.
_NOT_A_MODEL = re.compile(r"Tokenizer|Processor|Config|Extractor|Scheduler|Pipeline|GenerationConfig")

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# `    conv_s0 (nn.Conv2d): ...` (Google style) or `conv_s0 : nn.Conv2d` (NumPy style)
_DOCUMENTED_ATTRIBUTE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*[(:]", re.MULTILINE)
_QUOTED_ATTRIBUTE = re.compile(r"`(?:self\.)?([A-Za-z_][A-Za-z0-9_]*)`")


@dataclass
class Assignment:
    """`self.<attr> = value` in an init method."""

    target: cst.Attribute
    value: cst.BaseExpression
    method: str
    multiple_targets: bool


@dataclass
class ClassInfo:
    node: cst.ClassDef
    name: str
    kind: Optional[str] = None  # "torch", "keras", "flax"; None: not a model class
    local_bases: list[str] = field(default_factory=list)
    unresolved_base: bool = False
    methods: set[str] = field(default_factory=set)
    assigned: dict[str, list[Assignment]] = field(default_factory=dict)
    stored: set[str] = field(default_factory=set)  # assigned anywhere in the class
    store_counts: Counter = field(default_factory=Counter)
    self_reads: Counter = field(default_factory=Counter)
    # `getattr(self, f"adapter{i}")`: every attribute with one of these prefixes is read.
    read_prefixes: set[str] = field(default_factory=set)
    # Attributes assigned only after a `raise` or `return` (unreachable).
    unreachable: set[str] = field(default_factory=set)
    # A method carries a decorator imported from another module, which may read attributes.
    foreign_decorators: list[str] = field(default_factory=list)
    dynamic: bool = False


@dataclass
class Layer:
    """A submodule constructor: what it is and what it costs when known."""

    call: cst.Call
    label: str  # "nn.Linear(4096, 4096)"
    params: Optional[int]


class ModuleAttributes:
    """Submodule assignments and reads of the model classes of one module."""

    def __init__(self, ctx: "FileContext") -> None:
        self.ctx = ctx
        self._relative: Optional[set[str]] = None
        module = ctx.module
        self.classes: dict[str, ClassInfo] = {
            stmt.name.value: ClassInfo(stmt, stmt.name.value) for stmt in module.body if isinstance(stmt, cst.ClassDef)
        }
        self._resolve_bases()
        self._groups = self._group_classes()
        for info in self.classes.values():
            if info.kind is not None:
                _ClassScan(info, ctx.names.scopes[0].names).run()
        self._external: Optional[tuple[Counter, set[str]]] = None

    # -- bases -----------------------------------------------------------------
    def _root_kind(self, expr: cst.BaseExpression) -> Optional[str]:
        """'torch'/'keras'/'flax' when `expr` names a framework model base."""
        dotted = dotted_name(expr)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        binding = self.ctx.names.scopes[0].names.get(head)
        if not isinstance(binding, Imported):
            # Inside the libraries themselves: `from ...modeling_utils import PreTrainedModel`.
            return "torch" if not rest and head in self._relative_model_bases() else None
        qualified = canonical(binding.qualified + ("." + rest if rest else ""))
        if qualified not in MODEL_BASES:
            return None
        if qualified.startswith("keras."):
            return "keras"
        if qualified.startswith("flax."):
            return "flax"
        return "torch"

    def _relative_model_bases(self) -> set[str]:
        if self._relative is None:
            self._relative = {
                alias.name.value
                for stmt in self.ctx.module.body
                if isinstance(stmt, cst.SimpleStatementLine)
                for small in stmt.body
                if isinstance(small, cst.ImportFrom) and small.relative and not isinstance(small.names, cst.ImportStar)
                for alias in small.names
                if isinstance(alias.name, cst.Name)
                and alias.asname is None
                and alias.name.value in _RELATIVE_MODEL_BASES
            }
        return self._relative

    def _resolve_bases(self) -> None:
        pending = {}
        for info in self.classes.values():
            roots = []
            for base in info.node.bases:
                if base.keyword is not None:
                    continue
                value = base.value
                if isinstance(value, cst.Name) and value.value in self.classes and value.value != info.name:
                    info.local_bases.append(value.value)
                    continue
                kind = self._root_kind(value)
                if kind is None:
                    info.unresolved_base = True
                else:
                    roots.append(kind)
            if info.node.keywords:
                info.unresolved_base = True  # metaclass=...: anything goes
            pending[info.name] = roots
        changed = True
        while changed:  # a fixed point over "subclass of a model class"
            changed = False
            for info in self.classes.values():
                if info.kind is not None:
                    continue
                kinds = list(pending[info.name]) + [
                    self.classes[b].kind for b in info.local_bases if self.classes[b].kind
                ]
                if kinds:
                    info.kind = kinds[0]
                    changed = True

    def _group_classes(self) -> dict[str, frozenset[str]]:
        parent = {name: name for name in self.classes}

        def find(name: str) -> str:
            while parent[name] != name:
                parent[name] = parent[parent[name]]
                name = parent[name]
            return name

        for info in self.classes.values():
            for base in info.local_bases:
                parent[find(info.name)] = find(base)
        groups: dict[str, set[str]] = {}
        for name in self.classes:
            groups.setdefault(find(name), set()).add(name)
        return {name: frozenset(groups[find(name)]) for name in self.classes}

    def ancestors(self, name: str) -> Iterator[ClassInfo]:
        seen = set()
        todo = [name]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            info = self.classes[current]
            yield info
            todo.extend(info.local_bases)

    # -- queries -----------------------------------------------------------------
    def is_analysable(self, name: str) -> bool:
        """Can reads of this class's attributes be known from this module?"""
        info = self.classes.get(name)
        if info is None or info.kind is None:
            return False
        group = [self.classes[n] for n in self._groups[name]]
        if any(g.unresolved_base or g.dynamic or g.kind is None for g in group):
            return False
        entries = ENTRY_METHODS[info.kind]
        return any(a.methods & entries for a in self.ancestors(name))

    def group_reads(self, name: str) -> Counter:
        total: Counter = Counter()
        for member in self._groups[name]:
            total.update(self.classes[member].self_reads)
        return total

    def group_stores(self, name: str) -> set[str]:
        stored: set[str] = set()
        for member in self._groups[name]:
            stored |= self.classes[member].stored
        return stored

    def group_assignments(self, name: str, attr: str) -> list[cst.BaseExpression]:
        """The values assigned to `self.<attr>` in the group's constructors ([] if
        one of them assigns several targets at once)."""
        values = []
        for member in self._groups[name]:
            for assignment in self.classes[member].assigned.get(attr, ()):
                if assignment.multiple_targets:
                    return []
                values.append(assignment.value)
        return values

    def group_store_count(self, name: str, attr: str) -> int:
        """How many times the group's methods store `self.<attr>`."""
        return sum(self.classes[member].store_counts[attr] for member in self._groups[name])

    def external_reads(self) -> tuple[Counter, set[str]]:
        """`.attr` reads on receivers other than a model class's own `self`,
        and the words of all string literals, module-wide (computed once)."""
        if self._external is None:
            scan = _ExternalScan(self.classes)
            scan.run(self.ctx.module)
            self._external = (scan.reads, scan.words)
            self._external_prefixes = scan.prefixes
        return self._external

    def is_read_anywhere(self, class_name: str, attr: str) -> bool:
        if self.group_reads(class_name)[attr]:
            return True
        prefixes = set(self.external_prefixes())
        for member in self._groups[class_name]:
            prefixes |= self.classes[member].read_prefixes
        if any(attr.startswith(prefix) for prefix in prefixes):
            return True
        reads, words = self.external_reads()
        return bool(reads[attr]) or attr in words

    def external_prefixes(self) -> set[str]:
        """Prefixes of `getattr(x, f"adapter{i}")` names on any receiver, module-wide."""
        self.external_reads()
        return self._external_prefixes

    def foreign_decorators(self, class_name: str) -> list[str]:
        """Decorators imported from another module on methods of the class's group."""
        found: list[str] = []
        for member in self._groups[class_name]:
            found.extend(self.classes[member].foreign_decorators)
        return found

    def unused_submodules(self, class_name: str) -> Iterator[tuple[str, Assignment, Layer]]:
        """Submodules assigned in an init method of `class_name` that nothing reads."""
        if not self.is_analysable(class_name):
            return
        info = self.classes[class_name]
        reads = self.group_reads(class_name)
        for attr, assignments in info.assigned.items():
            if reads[attr] or attr.startswith("__"):
                continue
            if any(a.multiple_targets for a in assignments):
                continue
            if attr in info.unreachable:
                continue
            for assignment in assignments:
                layer = self.layer_of(assignment.value)
                if layer is not None:
                    if not self.is_read_anywhere(class_name, attr):
                        yield attr, assignment, layer
                    break

    # -- what a value is -----------------------------------------------------
    def layer_of(self, value: cst.BaseExpression) -> Optional[Layer]:
        """A parameterised submodule constructor call, or None."""
        if isinstance(value, cst.IfExp):
            return self.layer_of(value.body) or self.layer_of(value.orelse)
        if not isinstance(value, cst.Call):
            return None
        func = value.func
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value in _SAME_MODULE_METHODS
            and isinstance(func.value, cst.Call)
        ):
            if self.ctx.qualified_name(func) is None:
                return self.layer_of(func.value)
        qualified = self.ctx.call_name(value)
        label = _short_call(self.ctx.module, value)
        if qualified is None:
            if isinstance(func, cst.Name):
                info = self.classes.get(func.value)
                if (
                    info is not None
                    and info.kind is not None
                    and self.ctx.names.scopes[0].names.get(func.value) is info.node
                ):
                    return Layer(value, label, None)
            return None
        kind_prefixes = (("torch.nn.", "torch"), ("keras.layers.", "keras"), ("flax.linen.", "flax"))
        for prefix, kind in kind_prefixes:
            if qualified.startswith(prefix):
                rest = qualified[len(prefix) :]
                if "." in rest or not rest[:1].isupper():
                    return None
                if kind == "torch" and (rest in _PARAM_FREE_TORCH or rest.endswith(_PARAM_FREE_SUFFIXES)):
                    return None
                if kind == "torch" and rest in _CONTAINERS and any(_mentions_self(a.value) for a in value.args):
                    return None
                if kind == "keras" and (rest in _PARAM_FREE_KERAS or any(p in rest for p in _PARAM_FREE_KERAS_PARTS)):
                    return None
                if kind == "flax" and rest in _PARAM_FREE_FLAX:
                    return None
                params = torch_param_count(value, rest) if kind == "torch" else None
                if params == 0:
                    return None  # LayerNorm(elementwise_affine=False), BatchNorm(affine=False)...: nothing to waste
                return Layer(value, label, params)
        if qualified in ("keras.Sequential", "keras.models.Sequential", "keras.Model", "keras.models.Model"):
            return Layer(value, label, None)
        if qualified in MODEL_FACTORIES or qualified.startswith("torchvision.models."):
            last = qualified.rsplit(".", 1)[-1]
            if last.endswith("_Weights") or last in ("get_weight", "get_model_weights", "list_models"):
                return None  # weights enums and registry helpers, not builders
            return Layer(value, label, None)
        if qualified.endswith(".from_pretrained"):
            owner = qualified.rsplit(".", 2)[-2]
            if _NOT_A_MODEL.search(owner):
                return None
            return Layer(value, label, None)
        return None


def module_attributes(ctx: "FileContext") -> ModuleAttributes:
    """The analysis for `ctx`'s module, computed on first use."""
    return ctx.analysis("module_attributes")


# -- scans ------------------------------------------------------------------------
def _is_self(node: cst.BaseExpression) -> bool:
    return type(node) is cst.Name and node.value == "self"


def _mentions_self(node: cst.BaseExpression) -> bool:
    """`self.x`, `[*self.x]`, `self.x + [...]`: an expression built from an attribute of self."""
    if isinstance(node, cst.Attribute):
        return _is_self(node.value) or _mentions_self(node.value)
    if isinstance(node, (cst.List, cst.Tuple)):
        return any(_mentions_self(e.value) for e in node.elements)
    if isinstance(node, cst.BinaryOperation):
        return _mentions_self(node.left) or _mentions_self(node.right)
    return False


def _string_words(node: cst.CSTNode, words: set[str]) -> None:
    if isinstance(node, cst.SimpleString):
        words.update(_WORD.findall(node.value[1:]))
    elif isinstance(node, cst.FormattedStringText):
        words.update(_WORD.findall(node.value))


def _is_docstring(node: cst.CSTNode) -> bool:
    return (
        isinstance(node, cst.SimpleStatementLine)
        and len(node.body) == 1
        and isinstance(node.body[0], cst.Expr)
        and isinstance(node.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _is_abstract(function: cst.FunctionDef) -> bool:
    """`@abstractmethod`, or a body of only a docstring, `pass`, `...` or `raise NotImplementedError`."""
    for decorator in function.decorators:
        name = dotted_name(decorator.decorator) or ""
        if name.endswith("abstractmethod"):
            return True
    body = function.body
    statements = body.body if isinstance(body, cst.IndentedBlock) else [body]
    for stmt in statements:
        if _is_docstring(stmt):
            continue
        smalls = stmt.body if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)) else None
        if smalls is None:
            return False
        for small in smalls:
            if isinstance(small, cst.Pass) or (isinstance(small, cst.Expr) and isinstance(small.value, cst.Ellipsis)):
                continue
            if (
                isinstance(small, cst.Raise)
                and small.exc is not None
                and "NotImplementedError"
                in (dotted_name(small.exc.func if isinstance(small.exc, cst.Call) else small.exc) or "")
            ):
                continue
            return False
    return True


class _ClassScan:
    """Assignments, reads and dynamic use of `self.<attr>` in one class body."""

    def __init__(self, info: ClassInfo, names: Optional[dict] = None) -> None:
        self.info = info
        self.names = names or {}
        self.unreachable = False
        self.reachable_stores: set[str] = set()

    def _decorators(self, function: cst.FunctionDef) -> None:
        for decorator in function.decorators:
            expr = decorator.decorator
            if isinstance(expr, cst.Call):
                expr = expr.func
            dotted = dotted_name(expr)
            if dotted is None:
                continue
            head, _, rest = dotted.partition(".")
            binding = self.names.get(head)
            if not isinstance(binding, Imported):
                continue  # builtins (`property`, `staticmethod`), `x.setter`, same-module functions (scanned)
            qualified = canonical(binding.qualified + ("." + rest if rest else ""))
            if not (qualified + ".").startswith(_INERT_DECORATOR_ROOTS):
                self.info.foreign_decorators.append(qualified)

    def run(self) -> None:
        body = self.info.node.body
        for stmt in body.body if isinstance(body, cst.IndentedBlock) else ():
            if isinstance(stmt, cst.FunctionDef):
                self._decorators(stmt)
                if not _is_abstract(stmt):
                    self.info.methods.add(stmt.name.value)
                if stmt.name.value in ("__getattr__", "__getattribute__", "__setattr__"):
                    self.info.dynamic = True
                self._walk(stmt, stmt.name.value)
            elif not _is_docstring(stmt):
                self._walk(stmt, None)

    def _store(
        self, target: cst.BaseExpression, value: Optional[cst.BaseExpression], method: Optional[str], multiple: bool
    ) -> None:
        if isinstance(target, cst.Attribute) and _is_self(target.value):
            attr = target.attr.value
            self.info.stored.add(attr)
            self.info.store_counts[attr] += 1
            if method in INIT_METHODS and value is not None:
                self.info.assigned.setdefault(attr, []).append(Assignment(target, value, method, multiple))
                if self.unreachable:
                    if attr not in self.reachable_stores:
                        self.info.unreachable.add(attr)
                else:
                    self.reachable_stores.add(attr)
                    self.info.unreachable.discard(attr)
            return
        if isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._store(element.value, None, method, True)
            return
        if isinstance(target, cst.StarredElement):
            self._store(target.value, None, method, True)
            return
        self._walk(target, method)

    def _walk(self, node: cst.CSTNode, method: Optional[str]) -> None:
        info = self.info
        node_type = type(node)
        if node_type is cst.Assign:
            multiple = len(node.targets) > 1
            for target in node.targets:
                self._store(target.target, node.value, method, multiple)
            self._walk(node.value, method)
            return
        if node_type is cst.AnnAssign:
            self._store(node.target, node.value, method, False)
            if node.value is not None:
                self._walk(node.value, method)
            return
        if node_type is cst.Attribute:
            if _is_self(node.value):
                attr = node.attr.value
                info.self_reads[attr] += 1
                if attr in DYNAMIC_ATTRS or (info.kind == "keras" and attr in _KERAS_DYNAMIC_ATTRS):
                    info.dynamic = True
                return
            self._walk(node.value, method)
            return
        if node_type is cst.IndentedBlock:
            # Statements after a `raise` or `return` in the same block never run.
            outer = self.unreachable
            for stmt in node.body:
                self._walk(stmt, method)
                if isinstance(stmt, cst.SimpleStatementLine) and any(
                    isinstance(s, (cst.Raise, cst.Return)) for s in stmt.body
                ):
                    self.unreachable = True
            self.unreachable = outer
            return
        if node_type is cst.Call:
            self._check_call(node)
        elif node_type is cst.Name:
            return
        for child in _children(node):
            if not is_leaf(type(child)):  # names, numbers, strings: nothing to see
                self._walk(child, method)

    def _check_call(self, call: cst.Call) -> None:
        func = call.func
        if not isinstance(func, cst.Name):
            return
        name = func.value
        if name in ("eval", "exec", "locals", "globals"):
            self.info.dynamic = True
            return
        if name not in ("getattr", "hasattr", "setattr", "delattr", "vars") or not call.args:
            return
        if not _is_self(call.args[0].value):
            # `**vars(self)` / `getattr(self.blocks, name)`: only `self` itself matters.
            return
        if name in _DYNAMIC_BUILTINS:
            self.info.dynamic = True
            return
        attr = literal_value(call.args[1].value) if len(call.args) > 1 else NOT_LITERAL
        if isinstance(attr, str):
            self.info.self_reads[attr] += 1
            return
        prefix = name_prefix(call.args[1].value) if len(call.args) > 1 else None
        if prefix:
            self.info.read_prefixes.add(prefix)
        else:
            self.info.dynamic = True


class _ExternalScan:
    """`.attr` reads on other receivers, and string words, over the whole module."""

    def __init__(self, classes: dict[str, ClassInfo]) -> None:
        self.model_class_nodes = {id(info.node) for info in classes.values() if info.kind is not None}
        self.reads: Counter = Counter()
        self.words: set[str] = set()
        self.prefixes: set[str] = set()

    def run(self, module: cst.Module) -> None:
        for stmt in module.body:
            if _is_docstring(stmt):
                continue
            self._walk(stmt, in_model_class=False)

    def _walk(self, node: cst.CSTNode, in_model_class: bool) -> None:
        node_type = type(node)
        if node_type is cst.ClassDef:
            if id(node) in self.model_class_nodes:
                in_model_class = True
            # A class docstring that documents an attribute (an "Attributes:"
            # entry, or `self.name` in backquotes) makes it public API.
            docstring = safe_docstring(node)
            if docstring:
                self.words.update(_DOCUMENTED_ATTRIBUTE.findall(docstring))
                self.words.update(_QUOTED_ATTRIBUTE.findall(docstring))
        elif node_type is cst.Attribute:
            if not (in_model_class and _is_self(node.value)):
                self.reads[node.attr.value] += 1
            self._walk(node.value, in_model_class)
            return
        elif node_type is cst.SimpleString or node_type is cst.FormattedStringText:
            _string_words(node, self.words)
            return
        elif (
            node_type is cst.Call
            and isinstance(node.func, cst.Name)
            and node.func.value in ("getattr", "hasattr")
            and len(node.args) > 1
        ):
            attr = literal_value(node.args[1].value)
            if isinstance(attr, str):
                self.reads[attr] += 1
            else:
                prefix = name_prefix(node.args[1].value)
                if prefix:
                    self.prefixes.add(prefix)
        elif node_type is cst.IndentedBlock:
            for stmt in node.body:
                if not _is_docstring(stmt):
                    self._walk(stmt, in_model_class)
            return
        for child in _children(node):
            self._walk(child, in_model_class)


def _short_call(module: cst.Module, call: cst.Call, limit: int = 48) -> str:
    text = " ".join(module.code_for_node(call).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def safe_docstring(node) -> str:
    """`get_docstring()`, or '' when the literal cannot be evaluated (a NUL
    byte, an odd escape: LibCST evaluates it with `ast.literal_eval`)."""
    try:
        return node.get_docstring(clean=False) or ""
    except (SyntaxError, ValueError, MemoryError):
        return ""

"""Resolve names to the qualified names of what was imported, cheaply.

LibCST's `QualifiedNameProvider` costs several times the parse itself (it needs
scope analysis for every node of the tree). The rules only need to know what an
imported name or attribute chain refers to, so this module keeps a scope stack
that the engine updates as it walks the tree once: imports and assignments are
recorded when the walk reaches them, and a lookup returns the latest binding of
a name in the innermost scope that has one. A local assignment or parameter that
shadows an import makes the name resolve to that value instead.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Optional, Union

import libcst as cst

BUILTIN_NAMES = frozenset(dir(builtins))

# Public spellings of the same API; the left side is rewritten to the right so
# that rules list one name. Order matters: longest prefixes first.
_CANONICAL_PREFIXES = (
    ("tensorflow.python.keras.", "keras."),
    ("tensorflow.keras.", "keras."),
    ("tf_keras.", "keras."),
    ("torch.utils.data.dataloader.DataLoader", "torch.utils.data.DataLoader"),
    ("pytorch_lightning.", "lightning.pytorch."),
    ("lightning.pytorch.", "lightning.pytorch."),
)


def canonical(qualified: str) -> str:
    for prefix, replacement in _CANONICAL_PREFIXES:
        if qualified.startswith(prefix):
            return replacement + qualified[len(prefix) :]
    return qualified


@dataclass(frozen=True)
class Imported:
    """A name bound by an import statement."""

    qualified: str


@dataclass(frozen=True)
class LoopItem:
    """A name bound as the target of a `for` loop or comprehension over `iterable`."""

    iterable: cst.BaseExpression


@dataclass(frozen=True)
class Opaque:
    """A name bound to something this analysis does not follow (a parameter,
    a tuple unpacking, `with ... as x`, an augmented assignment)."""


OPAQUE = Opaque()

Binding = Union[Imported, LoopItem, Opaque, cst.BaseExpression, cst.FunctionDef, cst.ClassDef]


@dataclass
class Scope:
    node: Optional[cst.CSTNode]  # None for the module
    kind: str  # "module", "class", "function"
    names: dict[str, Binding] = field(default_factory=dict)
    # `self.<attr> = value` seen in this class's methods (class scopes only).
    attributes: dict[str, Binding] = field(default_factory=dict)


class NameResolver:
    """The scope stack of one module, updated by the engine's walk."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = [Scope(None, "module")]

    # -- scope maintenance (called by the engine) --------------------------
    def push(self, node: cst.CSTNode, kind: str) -> None:
        self.scopes.append(Scope(node, kind))

    def pop(self) -> None:
        self.scopes.pop()

    @property
    def current(self) -> Scope:
        return self.scopes[-1]

    def enclosing_class_scope(self) -> Optional[Scope]:
        for scope in reversed(self.scopes):
            if scope.kind == "class":
                return scope
        return None

    def bind(self, name: str, value: Binding) -> None:
        self.current.names[name] = value

    def bind_target(self, target: cst.BaseExpression, value: Binding) -> None:
        """Bind an assignment target; unpacked targets become opaque."""
        if isinstance(target, cst.Name):
            self.bind(target.value, value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                inner = element.value
                if isinstance(element, cst.StarredElement):
                    inner = element.value
                self.bind_target(inner, value if isinstance(value, LoopItem) else OPAQUE)
        elif isinstance(target, cst.Attribute) and _is_self(target.value):
            class_scope = self.enclosing_class_scope()
            if class_scope is not None:
                class_scope.attributes[target.attr.value] = value

    def bind_import(self, node: Union[cst.Import, cst.ImportFrom]) -> None:
        if isinstance(node, cst.Import):
            for alias in node.names:
                dotted = dotted_name(alias.name)
                if dotted is None:
                    continue
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    self.bind(alias.asname.name.value, Imported(dotted))
                else:
                    top = dotted.split(".")[0]
                    self.bind(top, Imported(top))
            return
        if node.relative or node.module is None:
            module = None  # relative imports refer to the project itself
        else:
            module = dotted_name(node.module)
        if isinstance(node.names, cst.ImportStar):
            return
        for alias in node.names:
            if not isinstance(alias.name, cst.Name):
                continue
            local = alias.name.value
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self.bind(local, Imported(f"{module}.{alias.name.value}") if module else OPAQUE)

    # -- lookups (called by rules) -----------------------------------------
    def lookup(self, name: str) -> Optional[Binding]:
        innermost = len(self.scopes) - 1
        for index in range(innermost, -1, -1):
            scope = self.scopes[index]
            # A class body's names are not visible inside its methods.
            if scope.kind == "class" and index != innermost:
                continue
            if name in scope.names:
                return scope.names[name]
        return None

    def self_attribute(self, attr: str) -> Optional[Binding]:
        class_scope = self.enclosing_class_scope()
        return class_scope.attributes.get(attr) if class_scope else None

    def qualified_name(self, node: cst.BaseExpression) -> Optional[str]:
        """`T.nn.Linear` -> `torch.nn.Linear` when `import torch as T`; None when
        the expression is not rooted in an import or a builtin."""
        node_type = type(node)  # (exact types: this runs for every call and attribute)
        if node_type is cst.Name:
            binding = self.lookup(node.value)
            if type(binding) is Imported:
                return canonical(binding.qualified)
            if binding is None and node.value in BUILTIN_NAMES:
                return f"builtins.{node.value}"
            return None
        if node_type is cst.Attribute:
            base = self.qualified_name(node.value)
            if base is None or base.startswith("builtins."):
                return None
            return canonical(f"{base}.{node.attr.value}")
        return None

    def value_of(self, node: cst.BaseExpression) -> Optional[Binding]:
        """What a plain name or `self.attr` was last bound to, if known."""
        if type(node) is cst.Name:
            return self.lookup(node.value)
        if type(node) is cst.Attribute and _is_self(node.value):
            return self.self_attribute(node.attr.value)
        return None


def dotted_name(node: cst.BaseExpression) -> Optional[str]:
    if type(node) is cst.Name:
        return node.value
    if type(node) is cst.Attribute:
        base = dotted_name(node.value)
        return f"{base}.{node.attr.value}" if base else None
    return None


def _is_self(node: cst.BaseExpression) -> bool:
    return type(node) is cst.Name and node.value in ("self", "cls")

"""Which plain names a scope reads: for "assigned but never used" checks.

The walk is streaming, so a rule cannot know at an assignment whether a later
statement reads the name. The tree is complete, though: this module scans a
function (or the module) once, on the first candidate found in it, and caches
the set of names read anywhere in it, nested functions, lambdas, closures and
f-strings included. Reads that only move or mutate an object in place and
discard the result (`model.to(device)`, `model.eval()`) are not counted as uses.
A scope that calls `locals()`, `globals()`, `vars()`, `eval` or `exec` is given up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import libcst as cst

from greenops_lint.analysis.calls import literal_value
from greenops_lint.walker import child_fields

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext

# `name.<method>(...)` as a statement of its own: an in-place call whose result
# is discarded does not make the object useful.
DISCARDED_METHODS = frozenset(
    {
        "to",
        "cuda",
        "cpu",
        "eval",
        "train",
        "half",
        "float",
        "bfloat16",
        "double",
        "requires_grad_",
        "load_state_dict",
        "zero_grad",
        "share_memory",
        "tie_weights",
    }
)
_DYNAMIC = frozenset({"locals", "globals", "vars", "eval", "exec"})


@dataclass
class ScopeReads:
    used: set[str] = field(default_factory=set)
    declared: set[str] = field(default_factory=set)  # global / nonlocal
    dynamic: bool = False


class ScopeReadsIndex:
    """`ScopeReads` per scope of one module, computed on first use."""

    def __init__(self) -> None:
        self._by_scope: dict[int, ScopeReads] = {}

    def of(self, scope: cst.CSTNode) -> ScopeReads:
        found = self._by_scope.get(id(scope))
        if found is None:
            found = self._by_scope[id(scope)] = ScopeReads()
            _Reads(found).walk(scope)
        return found


def scope_reads(ctx: "FileContext", scope: cst.CSTNode) -> Optional[ScopeReads]:
    """Names read in `scope` (a FunctionDef or the Module), or None when the
    scope reads names dynamically."""
    result = ctx.analysis("scope_reads").of(scope)
    return None if result.dynamic else result


def module_exports(ctx: "FileContext") -> set[str]:
    """Names listed in a module-level `__all__`."""
    names: set[str] = set()
    for stmt in ctx.module.body:
        if not isinstance(stmt, cst.SimpleStatementLine):
            continue
        for small in stmt.body:
            if isinstance(small, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
                targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                if any(isinstance(t, cst.Name) and t.value == "__all__" for t in targets) and small.value is not None:
                    value = small.value
                    if isinstance(value, (cst.List, cst.Tuple, cst.Set)):
                        for element in value.elements:
                            item = literal_value(element.value)
                            if isinstance(item, str):
                                names.add(item)
    return names


def is_module_script(ctx: "FileContext") -> bool:
    """Module-level names of a script or notebook are nobody else's; a library
    module (functions or classes, no `__main__` block, no top-level loop) may
    export them."""
    if ctx.path.endswith(".ipynb"):
        return True
    has_definitions = False
    for stmt in ctx.module.body:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            has_definitions = True
        elif (
            isinstance(stmt, cst.If)
            and "__name__" in ctx.module.code_for_node(stmt.test)
            and "__main__" in ctx.module.code_for_node(stmt.test)
        ):
            return True
        elif isinstance(stmt, (cst.For, cst.While)):
            return True  # a top-level loop: a script (an exported notebook), not a library
    return not has_definitions


class _Reads:
    def __init__(self, out: ScopeReads) -> None:
        self.out = out

    def walk(self, node: cst.CSTNode) -> None:
        out = self.out
        node_type = type(node)
        if node_type is cst.Name:
            out.used.add(node.value)
            return
        if node_type is cst.Attribute:
            self.walk(node.value)
            return
        if node_type is cst.Arg:
            self.walk(node.value)
            return
        if node_type is cst.Param:
            if node.default is not None:
                self.walk(node.default)
            if node.annotation is not None:
                self.walk(node.annotation)
            return
        if node_type is cst.FunctionDef:
            for decorator in node.decorators:
                self.walk(decorator)
            self.walk(node.params)
            if node.returns is not None:
                self.walk(node.returns)
            self.walk(node.body)
            return
        if node_type is cst.ClassDef:
            for part in (*node.decorators, *node.bases, *node.keywords):
                self.walk(part)
            self.walk(node.body)
            return
        if node_type is cst.Assign:
            for target in node.targets:
                self.store(target.target)
            self.walk(node.value)
            return
        if node_type is cst.AnnAssign:
            self.store(node.target)
            self.walk(node.annotation)
            if node.value is not None:
                self.walk(node.value)
            return
        if node_type is cst.For or node_type is cst.CompFor:
            self.store(node.target)
            for name in child_fields(node_type):
                if name != "target":
                    self._walk_field(getattr(node, name))
            return
        if node_type is cst.WithItem:
            self.walk(node.item)
            if node.asname is not None:
                self.store(node.asname.name)
            return
        if node_type is cst.NamedExpr:
            self.store(node.target)
            self.walk(node.value)
            return
        if node_type is cst.ExceptHandler:
            if node.type is not None:
                self.walk(node.type)
            self.walk(node.body)
            return
        if node_type in (cst.Import, cst.ImportFrom):
            return
        if node_type is cst.Global or node_type is cst.Nonlocal:
            out.declared.update(n.name.value for n in node.names)
            return
        if node_type is cst.Del:
            self._del(node.target)
            return
        if node_type is cst.Expr:
            value = node.value
            if (
                isinstance(value, cst.Call)
                and isinstance(value.func, cst.Attribute)
                and isinstance(value.func.value, cst.Name)
                and value.func.attr.value in DISCARDED_METHODS
            ):
                for arg in value.args:
                    self.walk(arg)
                return
        if node_type is cst.Call and isinstance(node.func, cst.Name) and node.func.value in _DYNAMIC:
            out.dynamic = True
        for name in child_fields(node_type):
            self._walk_field(getattr(node, name))

    def _walk_field(self, value) -> None:
        if isinstance(value, cst.CSTNode):
            self.walk(value)
        elif type(value) is tuple or type(value) is list:
            for item in value:
                if isinstance(item, cst.CSTNode):
                    self.walk(item)

    def store(self, target: cst.BaseExpression) -> None:
        if isinstance(target, cst.Name):
            return
        if isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self.store(element.value)
            return
        if isinstance(target, cst.StarredElement):
            self.store(target.value)
            return
        self.walk(target)  # attribute / subscript targets read their base

    def _del(self, target: cst.BaseExpression) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._del(element.value)
        elif not isinstance(target, cst.Name):
            self.walk(target)

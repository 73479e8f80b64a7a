"""The one traversal of a file.

LibCST's own visitor machinery rebuilds children for every node and resolves
metadata up front; walking the dataclass fields directly and dispatching only
the node types that some handler wants is several times cheaper. Whitespace
and punctuation fields are never entered.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Callable, Iterable

import libcst as cst

from greenops_lint.analysis.names import OPAQUE, LoopItem
from greenops_lint.context import FileContext

Handler = Callable[[cst.CSTNode], None]

_SKIPPED_FIELDS = frozenset(
    {
        "lpar",
        "rpar",
        "comma",
        "semicolon",
        "lbracket",
        "rbracket",
        "lbrace",
        "rbrace",
        "equal",
        "colon",
        "star",
        "dot",
        "arrow",
        "asynchronous",
        "leading_lines",
        "lines_after_decorators",
        "trailing_whitespace",
        "header",
        "footer",
        "newline",
        "operator",
        "keyword",
        "whitespace",
        "indent",
        "default_indent",
        "default_newline",
        "encoding",
        "has_trailing_newline",
        "whitespace_before_colon",
        "first_line",
        "empty_lines",
        "prefix",
        "quote",
        "relative",
    }
)

_fields_cache: dict[type, tuple[str, ...]] = {}


def child_fields(node_type: type) -> tuple[str, ...]:
    fields = _fields_cache.get(node_type)
    if fields is None:
        fields = tuple(
            f.name
            for f in dataclasses.fields(node_type)
            if f.name not in _SKIPPED_FIELDS and not f.name.startswith("whitespace")
        )
        _fields_cache[node_type] = fields
    return fields


def is_leaf(node_type: type) -> bool:
    """A node type none of whose meaningful fields can hold another node."""
    known = _leaf_cache.get(node_type)
    if known is None:
        fields = {f.name: f.type for f in dataclasses.fields(node_type)}
        known = _leaf_cache[node_type] = all(fields[name] in (str, "str") for name in child_fields(node_type))
    return known


_leaf_cache: dict[type, bool] = {}


# isinstance() against the CSTNode ABC is slow; remember the answer per type.
_is_node_type: dict[type, bool] = {}


def _is_node(value: object) -> bool:
    value_type = type(value)
    known = _is_node_type.get(value_type)
    if known is None:
        known = _is_node_type[value_type] = isinstance(value, cst.CSTNode)
    return known


def children(node: cst.CSTNode) -> list:
    """The child nodes that carry meaning (no whitespace or punctuation), in source order."""
    found = []
    for name in child_fields(type(node)):
        value = getattr(node, name)
        value_type = type(value)
        if value_type is tuple or value_type is list:
            found.extend(item for item in value if _is_node(item))
        elif _is_node(value):
            found.append(value)
    return found


class Dispatch:
    """Handlers by LibCST node class, for the visit and the leave events."""

    def __init__(self) -> None:
        self.visit: dict[type, list[Handler]] = defaultdict(list)
        self.leave: dict[type, list[Handler]] = defaultdict(list)

    def add(self, event: str, node_type: type, handler: Handler) -> None:
        (self.visit if event == "visit" else self.leave)[node_type].append(handler)

    def remove_owner(self, owner: object) -> None:
        for table in (self.visit, self.leave):
            for handlers in table.values():
                handlers[:] = [h for h in handlers if getattr(h, "__self__", None) is not owner]


class TreeWalk:
    """Walk a module once: keep the name resolver and ancestor stack current,
    and call rule handlers. `on_error(handler, exc)` receives rule crashes."""

    def __init__(
        self, ctx: FileContext, dispatch: Dispatch, on_error: Callable[[Handler, BaseException], None]
    ) -> None:
        self.ctx = ctx
        self.dispatch = dispatch
        self.on_error = on_error
        # Leaf nodes (names, numbers, strings, operators) that no handler asks
        # for are most of a tree: they are not entered at all.
        self._silent_leaf: dict[type, bool] = {}

    def run(self) -> None:
        self._walk(self.ctx.module)

    def _skips(self, node_type: type) -> bool:
        known = self._silent_leaf.get(node_type)
        if known is None:
            known = self._silent_leaf[node_type] = (
                is_leaf(node_type) and node_type not in self.dispatch.visit and node_type not in self.dispatch.leave
            )
        return known

    def _call(self, handlers: Iterable[Handler], node: cst.CSTNode) -> None:
        for handler in list(handlers):
            try:
                handler(node)
            except Exception as exc:  # noqa: BLE001 - one rule must not stop the file
                self.on_error(handler, exc)

    def _walk(self, node: cst.CSTNode) -> None:
        ctx = self.ctx
        node_type = type(node)
        ctx.stack.append(node)
        handlers = self.dispatch.visit.get(node_type)
        if handlers:
            self._call(handlers, node)
        names = ctx.names
        if node_type is cst.FunctionDef or node_type is cst.Lambda:
            self._walk_function(node)
        elif node_type is cst.ClassDef:
            self._walk_class(node)
        else:
            self._walk_children(node)
            if node_type is cst.Assign:
                for target in node.targets:
                    names.bind_target(target.target, node.value)
            elif node_type is cst.AnnAssign:
                names.bind_target(node.target, node.value if node.value is not None else OPAQUE)
            elif node_type is cst.AugAssign:
                names.bind_target(node.target, OPAQUE)
            elif node_type is cst.Import or node_type is cst.ImportFrom:
                names.bind_import(node)
            elif node_type is cst.WithItem:
                if node.asname is not None:
                    # `with open(p) as f`: f is bound to what the item evaluates to
                    # (for a file object, open() returns the handle itself).
                    names.bind_target(node.asname.name, node.item)
        handlers = self.dispatch.leave.get(node_type)
        if handlers:
            self._call(handlers, node)
        ctx.stack.pop()

    def _walk_children(self, node: cst.CSTNode) -> None:
        if type(node) is cst.For:
            # The loop target is bound before the body runs.
            self._walk(node.iter)
            self._walk(node.target)
            self.ctx.names.bind_target(node.target, LoopItem(node.iter))
            self._walk(node.body)
            if node.orelse is not None:
                self._walk(node.orelse)
            return
        if type(node) is cst.CompFor:
            self._walk(node.iter)
            self.ctx.names.bind_target(node.target, LoopItem(node.iter))
            for if_ in node.ifs:
                self._walk(if_)
            if node.inner_for_in is not None:
                self._walk(node.inner_for_in)
            return
        silent = self._silent_leaf
        node_type = type(node)
        fields = _fields_cache.get(node_type) or child_fields(node_type)
        for name in fields:
            value = getattr(node, name)
            value_type = type(value)
            if value_type is tuple or value_type is list:
                for item in value:
                    item_type = type(item)
                    skip = silent.get(item_type)
                    if skip is None:
                        skip = self._skips(item_type) if _is_node(item) else True
                    if not skip:
                        self._walk(item)
            else:
                skip = silent.get(value_type)
                if skip is None:
                    skip = self._skips(value_type) if _is_node(value) else True
                if not skip:
                    self._walk(value)

    def _walk_function(self, node) -> None:
        names = self.ctx.names
        if isinstance(node, cst.FunctionDef):
            for decorator in node.decorators:
                self._walk(decorator)
            for param in _params(node.params):
                if param.default is not None:
                    self._walk(param.default)
            names.bind(node.name.value, node)
            names.push(node, "function")
            for param in _params(node.params):
                names.bind(param.name.value, OPAQUE)
            self._walk(node.body)
            names.pop()
        else:
            names.push(node, "function")
            for param in _params(node.params):
                names.bind(param.name.value, OPAQUE)
            self._walk(node.body)
            names.pop()

    def _walk_class(self, node: cst.ClassDef) -> None:
        names = self.ctx.names
        for decorator in node.decorators:
            self._walk(decorator)
        for base in node.bases:
            self._walk(base)
        for keyword in node.keywords:
            self._walk(keyword)
        names.bind(node.name.value, node)
        names.push(node, "class")
        self._walk(node.body)
        names.pop()


def _params(params: cst.Parameters):
    yield from params.posonly_params
    yield from params.params
    if isinstance(params.star_arg, cst.Param):
        yield params.star_arg
    yield from params.kwonly_params
    if params.star_kwarg is not None:
        yield params.star_kwarg

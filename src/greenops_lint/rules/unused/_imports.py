"""Import bookkeeping for GO206: which names an import binds, and which of
them the module reads."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.names import dotted_name
from greenops_lint.walker import children

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _aliases(node) -> list[tuple[Optional[str], str]]:
    """(name bound, top-level package) per alias; the bound name is None for
    a star import or a relative import."""
    if isinstance(node, cst.Import):
        found = []
        for alias in node.names:
            dotted = dotted_name(alias.name) or ""
            top = dotted.split(".")[0]
            bound = (
                alias.asname.name.value if alias.asname is not None and isinstance(alias.asname.name, cst.Name) else top
            )
            found.append((bound, top))
        return found
    if node.relative or node.module is None:
        return [(None, "")]
    top = (dotted_name(node.module) or "").split(".")[0]
    if isinstance(node.names, cst.ImportStar):
        return [(None, top)]
    found = []
    for alias in node.names:
        name = alias.asname.name if alias.asname is not None else alias.name
        found.append((name.value if isinstance(name, cst.Name) else None, top))
    return found


class _Uses:
    """Names read anywhere in a module (import statements aside), words of
    string annotations, every import statement, and dynamic name access."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.annotation_words: set[str] = set()
        self.imports: list = []
        self.dynamic = False

    def walk(self, node: cst.CSTNode, in_annotation: bool = False) -> None:
        node_type = type(node)
        if node_type is cst.Import or node_type is cst.ImportFrom:
            self.imports.append(node)
            return
        if node_type is cst.If and "TYPE_CHECKING" in (dotted_name(node.test) or ""):
            # Never runs: its imports load nothing (names read in it still count).
            self._walk_type_checking(node.body)
            if node.orelse is not None:
                self.walk(node.orelse, in_annotation)
            return
        if node_type is cst.Name:
            self.names.add(node.value)
            return
        if node_type is cst.Annotation:
            in_annotation = True
        elif in_annotation and node_type is cst.SimpleString:
            self.annotation_words.update(_WORD.findall(node.value))
            return
        elif (
            node_type is cst.Call and isinstance(node.func, cst.Name) and node.func.value in ("globals", "eval", "exec")
        ):
            self.dynamic = True
        for child in children(node):
            self.walk(child, in_annotation)

    def _walk_type_checking(self, body: cst.CSTNode) -> None:
        before = len(self.imports)
        self.walk(body)
        del self.imports[before:]

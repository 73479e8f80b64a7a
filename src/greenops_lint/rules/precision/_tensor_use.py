"""Where a tensor made from a float64 NumPy array goes (GO403): narrowed back to
float32, into a plot or metric, or into a model or training loop the module
runs. Read from the walk's stack and the enclosing scope; nothing is executed."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.classes import MODEL_NAME
from greenops_lint.analysis.tree import is_self_attr, last_word
from greenops_lint.rules.precision._shared import (
    DATA_SINKS,
    FIT_METHODS,
    PLOT_METHODS,
    PLOT_PREFIXES,
    PLOT_WORDS,
    SHAPE_ATTRIBUTES,
    TRANSPARENT_METHODS,
    children,
    narrows_dtype,
    target_keys,
    trains,
    widens_dtype,
)


class TensorUse:
    """Mixin for a rule with `self.ctx`: `_use(call)` names where the tensor goes."""

    def _use(self, node: cst.Call) -> Optional[str]:
        """'narrowed' (cast back to float32 in the same expression), 'plot'
        (a plot, a metric, a demo), a few words naming the model or training
        loop the tensor feeds, or None when no such use is seen in the module."""
        stack = self.ctx.stack
        index = len(stack) - 1
        while stack[index] is not node:
            index -= 1
        child: cst.CSTNode = node
        for ancestor in reversed(stack[:index]):
            if isinstance(ancestor, cst.Attribute) and ancestor.value is child:
                pass
            elif isinstance(ancestor, cst.Call) and isinstance(ancestor.func, cst.Attribute) and ancestor.func is child:
                if narrows_dtype(self.ctx, ancestor.func.attr.value, ancestor) or widens_dtype(
                    self.ctx, ancestor.func.attr.value, ancestor
                ):
                    # Cast back to float32, or to float64 on purpose (`.to(torch.float64)`): no default at work.
                    return "narrowed"
                if ancestor.func.attr.value not in TRANSPARENT_METHODS:
                    sink = self._sink(ancestor)
                    if sink is not None:
                        return sink
            elif isinstance(ancestor, cst.Call):
                sink = self._sink(ancestor)
                if sink is not None:
                    return sink
            elif isinstance(ancestor, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
                targets = (
                    [t.target for t in ancestor.targets] if isinstance(ancestor, cst.Assign) else [ancestor.target]
                )
                keys = {k for t in targets for k in target_keys(t)}
                return self._flows(keys, self._scope(stack[:index], keys)) if keys else None
            elif isinstance(ancestor, cst.Return):
                return self._returned(stack[:index])
            elif isinstance(ancestor, (cst.SimpleStatementLine, cst.BaseCompoundStatement, cst.Lambda)):
                break
            child = ancestor
        return self._context_words(stack[:index])

    def _context_words(self, ancestors: list) -> Optional[str]:
        for ancestor in ancestors:
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)) and PLOT_WORDS.search(ancestor.name.value):
                return "plot"
        return None

    def _scope(self, ancestors: list, keys: set) -> cst.CSTNode:
        """Where the assigned names live: the class for `self.x`, else the function, else the module."""
        kinds = (cst.ClassDef,) if any(k.startswith("self.") for k in keys) else (cst.FunctionDef,)
        for ancestor in reversed(ancestors):
            if isinstance(ancestor, kinds):
                return ancestor
        return self.ctx.module

    def _returned(self, ancestors: list) -> Optional[str]:
        """A helper returns the tensor: follow its calls, one call deep."""
        function = next((a for a in reversed(ancestors) if isinstance(a, cst.FunctionDef)), None)
        if function is None or self._context_words(ancestors) == "plot":
            return self._context_words(ancestors)
        marker = f"call:{function.name.value}"
        for scope in [self.ctx.module, *(n for n in children(self.ctx.module) if isinstance(n, cst.FunctionDef))]:
            if scope is function:
                continue
            use = self._flows({marker}, scope, top_only=scope is self.ctx.module)
            if use is not None:
                return use
        return None

    def _flows(self, keys: set, scope: cst.CSTNode, top_only: bool = False) -> Optional[str]:
        """Follow the names through assignments in `scope` to a model, a data
        set or loader, a `.fit`, or a loop that calls `.backward()`."""
        tainted = set(keys)
        if top_only and isinstance(scope, cst.Module):
            # The module's own statements, not the functions' (they are scopes of their own).
            statements = [s for s in scope.body if not isinstance(s, (cst.FunctionDef, cst.ClassDef))]
            nodes = [n for statement in statements for n in (statement, *children(statement))]
        else:
            nodes = list(children(scope))
        for _ in range(3):
            before = len(tainted)
            for node in nodes:
                if isinstance(node, cst.Assign) and self._carries(node.value, tainted):
                    tainted.update(k for t in node.targets for k in target_keys(t.target))
                elif isinstance(node, (cst.For, cst.CompFor)) and self._carries(node.iter, tainted):
                    tainted.update(target_keys(node.target))
            if len(tainted) == before:
                break
        plot = None
        for node in nodes:
            if isinstance(node, cst.Call) and any(self._carries(a.value, tainted) for a in node.args):
                sink = self._sink(node)
                if sink == "plot":
                    plot = sink
                elif sink is not None:
                    return sink
        for node in nodes:
            if (
                isinstance(node, (cst.For, cst.While))
                and trains(node)
                and any(
                    isinstance(n, (cst.Name, cst.Attribute)) and self._carries(n, tainted) for n in children(node.body)
                )
            ):
                return "a training loop"
        return plot

    def _carries(self, node: cst.BaseExpression, tainted: set) -> bool:
        """Does the value of `node` hold the float64 tensor (not a float32 cast, a shape or a length)?"""
        if isinstance(node, cst.Name):
            return node.value in tainted
        if isinstance(node, cst.Attribute):
            if isinstance(node.value, cst.Name) and node.value.value == "self" and f"self.{node.attr.value}" in tainted:
                return True
            return node.attr.value not in SHAPE_ATTRIBUTES and self._carries(node.value, tainted)
        if isinstance(node, cst.Subscript):
            return self._carries(node.value, tainted)
        if isinstance(node, cst.BinaryOperation):
            return self._carries(node.left, tainted) or self._carries(node.right, tainted)
        if isinstance(node, (cst.Tuple, cst.List)):
            return any(self._carries(e.value, tainted) for e in node.elements)
        if isinstance(node, cst.Call):
            func = node.func
            if f"call:{last_word(func)}" in tainted and (isinstance(func, cst.Name) or is_self_attr(func)):
                return True
            if isinstance(func, cst.Attribute):
                if narrows_dtype(self.ctx, func.attr.value, node):
                    return False
                if func.attr.value in TRANSPARENT_METHODS:
                    return self._carries(func.value, tainted)
            name = self.ctx.call_name(node) or ""
            if name.startswith("torch.") and name.rsplit(".", 1)[-1] in ("cat", "stack", "vstack", "hstack", "concat"):
                return any(self._carries(a.value, tainted) for a in node.args)
        return False

    def _sink(self, call: cst.Call) -> Optional[str]:
        """A model, a data set or loader, a fit method: a few words; a plot or metric: 'plot'."""
        name = self.ctx.call_name(call) or ""
        func = call.func
        word = last_word(func)
        if name in DATA_SINKS:
            return f"a {name.rsplit('.', 1)[-1]}"
        if name.startswith(PLOT_PREFIXES) or word in PLOT_METHODS or PLOT_WORDS.search(word):
            return "plot"
        if isinstance(func, cst.Attribute) and word in FIT_METHODS:
            return f"{self.ctx.snippet(func, 30)}()"
        if word and MODEL_NAME.search(word) and not name.startswith(("torch.", "numpy.", "tensorflow.")):
            return f"{self.ctx.snippet(func, 30)}(...)"
        if isinstance(func, cst.Name) and self.ctx.dataset_classes.is_model_class(word):
            return f"the data set {word}"
        return None

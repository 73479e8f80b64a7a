"""`FileContext`: what rules see of the file being linted.

It owns the ancestor stack of the single walk, the name resolver, the raw
reports, and the lazily computed module-wide analyses that rules share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import libcst as cst

from greenops_lint.analysis.names import NameResolver
from greenops_lint.analysis.registry import ANALYSES, AnalysisError
from greenops_lint.finding import Fix, SavingsEstimate

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.analysis.classes import ModelClasses
    from greenops_lint.analysis.loops import LoopAnalysis
    from greenops_lint.rule import Rule
    from greenops_lint.savings import HardwareProfile


@dataclass
class RawReport:
    rule: "Rule"
    node: cst.CSTNode
    statement: Optional[cst.CSTNode]
    message: str
    estimate: Optional[SavingsEstimate]
    fix: Optional[Fix] = None
    severity: Optional[str] = None  # None: the rule's own


class FileContext:
    def __init__(self, path: str, module: cst.Module, text: str, hardware: "HardwareProfile") -> None:
        self.path = path
        self.module = module
        self.text = text
        self.hardware = hardware
        self.names = NameResolver()
        self.stack: list[cst.CSTNode] = []
        self.reports: list[RawReport] = []
        # Shared analyses by name (see analysis/registry.py), built on first use.
        self._analyses: dict[str, Any] = {}
        self.failed_analyses: dict[str, BaseException] = {}

    def release(self) -> None:
        """Drop the analyses: they point back at this context, and the cycle
        would keep the whole tree alive until the next full collection."""
        self.__dict__.clear()

    # -- reporting -----------------------------------------------------------
    def report(
        self,
        rule: "Rule",
        node: cst.CSTNode,
        message: str,
        estimate: Optional[SavingsEstimate],
        statement: Optional[cst.CSTNode] = None,
        fix: Optional[Fix] = None,
        severity: Optional[str] = None,
    ) -> None:
        """Record a finding; `statement` (for noqa) defaults to the one being visited,
        and must be given by rules that decide after the walk has moved on."""
        self.reports.append(
            RawReport(rule, node, statement or self.enclosing_statement(), message, estimate, fix, severity)
        )

    def enclosing_statement(self) -> Optional[cst.CSTNode]:
        for node in reversed(self.stack):
            if isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                return node
        return None

    def snippet(self, node: cst.CSTNode, limit: int = 48) -> str:
        """A node's source on one line, shortened for messages."""
        text = " ".join(self.module.code_for_node(node).split())
        return text if len(text) <= limit else text[: limit - 3] + "..."

    # -- names ----------------------------------------------------------------
    def qualified_name(self, node: cst.BaseExpression) -> Optional[str]:
        return self.names.qualified_name(node)

    def call_name(self, call: cst.Call) -> Optional[str]:
        return self.names.qualified_name(call.func)

    def value_of(self, node: cst.BaseExpression) -> Any:
        return self.names.value_of(node)

    # -- structure ------------------------------------------------------------
    def parent(self, levels: int = 1) -> Optional[cst.CSTNode]:
        """The node `levels` above the one being visited."""
        index = len(self.stack) - 1 - levels
        return self.stack[index] if index >= 0 else None

    def enclosing(self, *types: type) -> Optional[cst.CSTNode]:
        for node in reversed(self.stack[:-1]):
            if isinstance(node, types):
                return node
        return None

    def enclosing_function(self) -> Optional[cst.FunctionDef]:
        return self.enclosing(cst.FunctionDef)  # type: ignore[return-value]

    def enclosing_class(self) -> Optional[cst.ClassDef]:
        return self.enclosing(cst.ClassDef)  # type: ignore[return-value]

    # -- shared module-wide analyses, computed on first use ----------------
    def analysis(self, name: str, building: bool = False) -> Any:
        """The named shared analysis of this file; raises `AnalysisError` if it
        failed (then and on every later request), `KeyError` if unknown."""
        found = self._analyses.get(name)
        if found is not None:
            return found
        if name in self.failed_analyses:
            raise AnalysisError(name, self.failed_analyses[name])
        spec = ANALYSES[name]
        if spec.walk_fed and not building:
            # Fed by the walk: only the engine can start it, before the walk.
            exc = RuntimeError(f"analysis '{name}' is fed by the walk; declare it in Rule.analyses")
            self.failed_analyses[name] = exc
            raise AnalysisError(name, exc)
        try:
            found = self._analyses[name] = spec.build(self)
        except Exception as exc:
            self.failed_analyses[name] = exc
            raise AnalysisError(name, exc) from exc
        return found

    @property
    def loops(self) -> "LoopAnalysis":
        return self.analysis("loops")

    @property
    def model_classes(self) -> "ModelClasses":
        return self.analysis("model_classes")

    @property
    def dataset_classes(self) -> "ModelClasses":
        return self.analysis("dataset_classes")

    @property
    def calls_gradcheck(self) -> bool:
        """Numerical gradient checks need float64: precision rules stay silent."""
        return "gradcheck" in self.text

"""The shared analyses a rule can declare in `Rule.analyses`, by name.

Each is computed at most once per file, on first use, and cached on the
`FileContext` (`ctx.analysis(name)`). A walk-fed analysis also has
`visit_`/`leave_` methods that run during the one traversal, before the rules'
own handlers for the same node, so rules see its facts up to the current node.

If an analysis raises on a file, the rules that declare it are skipped for
that file and the GO003 finding names the analysis and those rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext


@dataclass(frozen=True)
class AnalysisSpec:
    name: str
    build: Callable[["FileContext"], Any]
    doc: str
    walk_fed: bool = False
    always: bool = False


def _loops(ctx: "FileContext"):
    from greenops_lint.analysis.loops import LoopAnalysis

    return LoopAnalysis(ctx)


def _training_script(ctx: "FileContext"):
    from greenops_lint.analysis.training import TrainingScript

    return TrainingScript(ctx)


def _model_classes(ctx: "FileContext"):
    from greenops_lint.analysis.classes import ModelClasses

    return ModelClasses(ctx.module, ctx.names)


def _dataset_classes(ctx: "FileContext"):
    from greenops_lint.analysis.classes import DATASET_BASES, ModelClasses

    return ModelClasses(ctx.module, ctx.names, DATASET_BASES)


def _module_attributes(ctx: "FileContext"):
    from greenops_lint.analysis.attributes import ModuleAttributes

    return ModuleAttributes(ctx)


def _literal_sizes(ctx: "FileContext"):
    from greenops_lint.analysis.ast_index import AstIndex

    # CPython's `ast` of the same text (C speed, built only when a rule with a
    # finding asks): constant folding and alias lookups that LibCST nodes make slow.
    return AstIndex(ctx.text)


def _scope_reads(ctx: "FileContext"):
    from greenops_lint.analysis.unused_names import ScopeReadsIndex

    return ScopeReadsIndex()


ANALYSES: dict[str, AnalysisSpec] = {
    spec.name: spec
    for spec in (
        AnalysisSpec("loops", _loops, "loop context: epoch/step/eval loops, frames, call sites", walk_fed=True),
        AnalysisSpec(
            "training_script",
            _training_script,
            "training calls reached from module-level code, and imports (for --statistics)",
            walk_fed=True,
            always=True,
        ),
        AnalysisSpec("model_classes", _model_classes, "the module's model classes (nn.Module subclasses and friends)"),
        AnalysisSpec("dataset_classes", _dataset_classes, "the module's Dataset subclasses"),
        AnalysisSpec("module_attributes", _module_attributes, "submodule assignments and reads of model classes"),
        AnalysisSpec("scope_reads", _scope_reads, "names read in each function scope"),
        AnalysisSpec("literal_sizes", _literal_sizes, "literal layer shapes, batch sizes and constants (AstIndex)"),
    )
}


class AnalysisError(Exception):
    """A shared analysis raised on this file."""

    def __init__(self, name: str, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.name = name
        self.cause = cause


def unknown_analyses(names) -> list[str]:
    return [name for name in names if name not in ANALYSES]

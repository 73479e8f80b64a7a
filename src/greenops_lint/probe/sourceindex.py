"""`SourceIndex`: a module's AST with import aliases resolved, for the literal
sizes (layer shapes, batch sizes, file paths) the probe's plans read."""

from __future__ import annotations

import ast
from typing import Optional

from greenops_lint.analysis.ast_index import AstIndex


class SourceIndex(AstIndex):
    """The module's AST with import aliases resolved, for literal sizes (read from `path`)."""

    def __init__(self, path: str, text: Optional[str] = None) -> None:
        self.path = path
        if text is None:
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
            except OSError:
                text = ""
        super().__init__(text, annotated_constants=True)

    def call_at(self, line: int, column: int) -> Optional[ast.Call]:
        """The call that starts at a finding's position (LibCST columns are 1-based)."""
        on_line = [c for c in self.calls if c.lineno == line]
        exact = [c for c in on_line if c.col_offset == column - 1]
        return (exact or on_line or [None])[0]

    def nodes_at(self, line: int) -> list[ast.AST]:
        if self.tree is None:
            return []
        return [n for n in ast.walk(self.tree) if getattr(n, "lineno", None) == line]

    def shapes(self) -> list[tuple[int, ...]]:
        """Literal shapes of torch/NumPy tensor factories, in source order."""
        shapes = []
        factories = {f"torch.{n}" for n in ("randn", "rand", "zeros", "ones", "empty", "full", "randint")}
        factories |= {f"numpy.{n}" for n in ("zeros", "ones", "empty")} | {"numpy.random.rand", "numpy.random.randn"}
        for call in self.calls:
            name = self.call_name(call)
            if name not in factories:
                continue
            if name == "torch.randint":
                args = call.args[2:3] if len(call.args) >= 3 else []
                values = [self.literal(a) for a in args]
                values = list(values[0]) if values and isinstance(values[0], (tuple, list)) else []
            elif len(call.args) == 1 and isinstance(self.literal(call.args[0]), (tuple, list)):
                values = list(self.literal(call.args[0]))
            else:
                values = [self.literal(a) for a in call.args if not isinstance(a, ast.Starred)]
                if name == "torch.full":
                    values = list(values[0]) if values and isinstance(values[0], (tuple, list)) else []
            if values and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
                shapes.append(tuple(values))
        return shapes

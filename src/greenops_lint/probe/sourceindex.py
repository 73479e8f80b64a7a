"""`SourceIndex`: a module's AST with import aliases resolved, for the literal
sizes (layer shapes, batch sizes, file paths) the probe's plans read."""

from __future__ import annotations

import ast
from typing import Any, Optional


class SourceIndex:
    """The module's AST with import aliases resolved, for literal sizes."""

    def __init__(self, path: str, text: Optional[str] = None) -> None:
        self.path = path
        if text is None:
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    text = handle.read()
            except OSError:
                text = ""
        try:
            self.tree: Optional[ast.Module] = ast.parse(text)
        except (SyntaxError, ValueError):
            self.tree = None
        self.aliases: dict[str, str] = {}
        self.constants: dict[str, Any] = {}
        self.calls: list[ast.Call] = []
        if self.tree is None:
            return
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        self.aliases.setdefault(alias.name.split(".")[0], alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Call):
                self.calls.append(node)
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.constants[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                self.constants[node.target.id] = node.value
        self.calls.sort(key=lambda c: (c.lineno, c.col_offset))

    def qualified(self, node: ast.AST) -> Optional[str]:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualified(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def call_name(self, call: ast.Call) -> str:
        return self.qualified(call.func) or ""

    def literal(self, node: Optional[ast.AST], depth: int = 0) -> Any:
        """A literal value, following a module-level constant one name deep."""
        if node is None:
            return None
        if isinstance(node, ast.Name) and depth == 0 and node.id in self.constants:
            return self.literal(self.constants[node.id], depth + 1)
        try:
            return ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None

    def int_arg(self, call: ast.Call, index: int, keyword: Optional[str] = None) -> Optional[int]:
        node = None
        if keyword:
            node = next((k.value for k in call.keywords if k.arg == keyword), None)
        if node is None and index < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[: index + 1]):
            node = call.args[index]
        value = self.literal(node)
        if isinstance(value, (tuple, list)) and value and all(isinstance(v, int) for v in value):
            value = value[0]
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    def calls_named(self, *names: str) -> list[ast.Call]:
        return [c for c in self.calls if self.call_name(c) in names]

    def call_at(self, line: int, column: int) -> Optional[ast.Call]:
        """The call that starts at a finding's position (LibCST columns are 1-based)."""
        on_line = [c for c in self.calls if c.lineno == line]
        exact = [c for c in on_line if c.col_offset == column - 1]
        return (exact or on_line or [None])[0]

    def nodes_at(self, line: int) -> list[ast.AST]:
        if self.tree is None:
            return []
        return [n for n in ast.walk(self.tree) if getattr(n, "lineno", None) == line]

    def batch_size(self) -> Optional[int]:
        """A literal batch size: `batch_size=64` in a call, a BATCH_SIZE
        constant, or an argparse `--batch-size` default."""
        for call in self.calls:
            for keyword in call.keywords:
                if keyword.arg in ("batch_size", "per_device_train_batch_size", "train_batch_size"):
                    value = self.literal(keyword.value)
                    if isinstance(value, int) and value > 0:
                        return value
            if isinstance(call.func, ast.Attribute) and call.func.attr == "add_argument":
                names = [self.literal(a) for a in call.args]
                if any(isinstance(n, str) and "batch" in n.replace("-", "_").lower() for n in names):
                    default = next((self.literal(k.value) for k in call.keywords if k.arg == "default"), None)
                    if isinstance(default, int) and default > 0:
                        return default
        for name, node in self.constants.items():
            if "batch" in name.lower():
                value = self.literal(node)
                if isinstance(value, int) and value > 0:
                    return value
        return None

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

"""`AstIndex`: a module's `ast` tree with import aliases resolved, for the
literal sizes (layer shapes, batch sizes, file paths) that estimates and the
probe's plans read. One reading for both: the GO4xx rules' float64 workload
(`rules/precision/_shared.py`) and the probe's `SourceIndex`; and whether a module's
model is tiny (GO404, GO507)."""

from __future__ import annotations

import ast
import re
from typing import Any, Optional

BATCH_KEYWORDS = ("batch_size", "per_device_train_batch_size", "train_batch_size")
# nn.Linear(in_features, out_features), nn.Conv2d(in_channels, out_channels, kernel_size)
TORCH_LAYER_KEYWORDS = {
    "Linear": ("in_features", "out_features"),
    "Conv2d": ("in_channels", "out_channels"),
}


class AstIndex:
    """The module's AST with import aliases resolved, for literal sizes.

    `annotated_constants`: also read `NAME: int = 64` at module level as a constant.
    """

    def __init__(self, text: str, annotated_constants: bool = False) -> None:
        self.aliases: dict[str, str] = {}
        self.constants: dict[str, Any] = {}
        self.calls: list[ast.Call] = []
        self.assigns: list[ast.Assign] = []
        try:
            self.tree: Optional[ast.Module] = ast.parse(text)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            self.tree = None
            return
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        head = alias.name.split(".")[0]
                        self.aliases.setdefault(head, head)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
            elif isinstance(node, ast.Call):
                self.calls.append(node)
            elif isinstance(node, ast.Assign):
                self.assigns.append(node)
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.constants[node.targets[0].id] = node.value
            elif (
                annotated_constants
                and isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.value is not None
            ):
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

    def calls_named(self, *names: str) -> list[ast.Call]:
        return [c for c in self.calls if self.call_name(c) in names]

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

    def arg(self, call: ast.Call, index: int, keyword: Optional[str] = None) -> Any:
        """The literal value of an argument, by keyword or else by position."""
        node = next((k.value for k in call.keywords if keyword and k.arg == keyword), None)
        if (
            node is None
            and index < len(call.args)
            and not any(isinstance(a, ast.Starred) for a in call.args[: index + 1])
        ):
            node = call.args[index]
        return self.literal(node)

    def int_arg(self, call: ast.Call, index: int, keyword: Optional[str] = None) -> Optional[int]:
        """A positive literal int argument (a tuple's first element: `kernel_size=(3, 3)`)."""
        value = self.arg(call, index, keyword)
        if isinstance(value, (tuple, list)) and value and all(isinstance(v, int) for v in value):
            value = value[0]
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    def modules(self) -> set[str]:
        return {q.split(".")[0] for q in self.aliases.values()}

    def batch_size(self) -> Optional[int]:
        """A literal batch size: `batch_size=64` in a call, an argparse
        `--batch-size` default, or a BATCH_SIZE constant."""
        for call in self.calls:
            for keyword in call.keywords:
                if keyword.arg in BATCH_KEYWORDS:
                    value = self.literal(keyword.value)
                    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
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
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
        return None


def torch_layers(index: AstIndex, kind: str) -> tuple[list[tuple[int, ...]], bool]:
    """Literal (in, out[, kernel]) sizes of `nn.<kind>` calls (`kind` is
    "Linear" or "Conv2d"), and whether any such layer exists at all (sized or not)."""
    layers: list[tuple[int, ...]] = []
    seen = False
    first, second = TORCH_LAYER_KEYWORDS[kind]
    for call in index.calls_named(f"torch.nn.{kind}", f"torch.nn.modules.{kind.lower()}.{kind}"):
        seen = True
        a, b = index.int_arg(call, 0, first), index.int_arg(call, 1, second)
        if a and b:
            layers.append((a, b, index.int_arg(call, 2, "kernel_size") or 3) if kind == "Conv2d" else (a, b))
    return layers, seen


def chain(layers: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The longest run of layers whose sizes connect (out -> in)."""
    best: list[tuple[int, ...]] = []
    for start in range(len(layers)):
        run = [layers[start]]
        for layer in layers[start + 1 :]:
            if layer[0] == run[-1][1]:
                run.append(layer)
        if len(run) > len(best):
            best = run
    return best


# A tiny model: every torch.nn layer that does the math is built from literal sizes, each matmul layer holds at
# most TINY_MATMUL_WEIGHTS weights (nn.Linear(256, 256)) and each convolution has at most TINY_CONV_CHANNELS
# output channels (an MNIST convnet). Its step is bound by kernel launches, not by matmul or convolution
# throughput: faster math units (TF32, AMP) gain ~1x.
TINY_MATMUL_WEIGHTS = 256 * 256
TINY_CONV_CHANNELS = 64
_RECURRENT_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_CONV_LAYERS = ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")
# Anything else that may hold the model's math: a pretrained or zoo model, attention, explicit matmuls.
_OTHER_MODEL_TEXT = re.compile(
    r"torchvision\.models|from\s+torchvision\s+import\s+[^\n]*\bmodels\b|\btimm\b|torch\.hub\.load|"
    r"Transformer|Attention|einsum|\bbmm\b|matmul|\bAutoModel"
)
_PRETRAINED = re.compile(r"(\w+)\s*\.\s*from_pretrained\b")
_NOT_A_MODEL = re.compile(r"(tokeni[sz]er|processor|feature_?extractor|config)", re.IGNORECASE)


def _int(index: AstIndex, node: Optional[ast.AST], depth: int = 0) -> Optional[int]:
    """An int from a literal, a module constant or arithmetic on them (`32 * 4 * 4`)."""
    if node is None or depth > 8:
        return None
    if isinstance(node, ast.BinOp):
        left, right = _int(index, node.left, depth + 1), _int(index, node.right, depth + 1)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.FloorDiv) and right:
            return left // right
        return None
    value = index.literal(node)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _int_arg(index: AstIndex, call: ast.Call, position: int, keyword: str) -> Optional[int]:
    node = next((k.value for k in call.keywords if k.arg == keyword), None)
    if node is None and position < len(call.args) and not isinstance(call.args[position], ast.Starred):
        node = call.args[position]
    return _int(index, node)


def is_tiny_model(index: AstIndex, text: str) -> bool:
    """The module builds its model from small torch.nn layers with literal sizes (see TINY_MATMUL_WEIGHTS)
    and nothing in it loads or builds a bigger one."""
    if index.tree is None or _OTHER_MODEL_TEXT.search(text):
        return False
    if any(not _NOT_A_MODEL.search(name) for name in _PRETRAINED.findall(text)):
        return False
    layers = 0
    for call in index.calls:
        name = index.call_name(call)
        if not name.startswith("torch.nn."):
            continue
        kind = name.rsplit(".", 1)[-1]
        if kind == "Linear":
            n_in, n_out = _int_arg(index, call, 0, "in_features"), _int_arg(index, call, 1, "out_features")
            weights = n_in * n_out if n_in is not None and n_out is not None else None
        elif kind in _RECURRENT_GATES:
            n_in, hidden = _int_arg(index, call, 0, "input_size"), _int_arg(index, call, 1, "hidden_size")
            weights = _RECURRENT_GATES[kind] * hidden * (n_in + hidden) if n_in and hidden else None
        elif kind in _CONV_LAYERS:
            channels = _int_arg(index, call, 1, "out_channels")
            weights = 0 if channels is not None and channels <= TINY_CONV_CHANNELS else None
        else:
            continue
        if weights is None or weights > TINY_MATMUL_WEIGHTS:
            return False
        layers += 1
    return layers > 0

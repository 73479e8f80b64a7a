"""Facts the GO5xx efficiency rules share, computed from the ancestors of the
node being visited (`ctx.stack`) and the loop facts of `analysis/loops.py`:

- is this module PyTorch code that runs on a GPU (`uses_torch`, `uses_cuda`);
- is gradient recording switched off around a node (`grad_mode`);
- does an `if` test make a node run on some iterations only (`rare_guard`:
  periodic `if step % n == 0`, one-off `if i == last`; `exits_block`:
  early-exit branches), the guard tests of the GO5xx rules (the guard scan
  itself is `analysis/candidates.py`'s, with the rule of `analysis/guards.py`);
- is a loop a *training* step loop (`TrainingLoops`), as opposed to an
  evaluation loop, an epoch loop or any other loop;
- does an expression hold a (device) tensor (`tensor_evidence`), a device
  (`is_device_expr`), or a model (`is_model_callee`).

Every answer is conservative: unknown means "not a finding" where a false
positive would be worse than a miss.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from greenops_lint.analysis.calls import NOT_LITERAL, get_arg, literal_value
from greenops_lint.analysis.classes import MODEL_NAME, is_model_constructor
from greenops_lint.analysis.loops import LoopInfo, _descendants, referenced_names  # (one copy of the loop walk)
from greenops_lint.analysis.names import LoopItem, Opaque, dotted_name
from greenops_lint.analysis.tree import names_word, walk_expr

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext


# -- module context ------------------------------------------------------------------

_CUDA_TEXT = re.compile(r"cuda|Accelerator\(|accelerator\s*=\s*[\"'](gpu|cuda|auto)|\bgpus\s*=|device_map")


def uses_torch(ctx: "FileContext") -> bool:
    return "torch" in ctx.text


def uses_cuda(ctx: "FileContext") -> bool:
    """The module moves work to an NVIDIA GPU (or lets accelerate/Lightning do it)."""
    return bool(_CUDA_TEXT.search(ctx.text))


# -- gradient mode -------------------------------------------------------------------------

GRAD_OFF = frozenset(
    {
        "torch.no_grad",
        "torch.inference_mode",
        "torch.autograd.no_grad",
        "torch.autograd.inference_mode",
        "torch.autograd.grad_mode.no_grad",
        "torch.autograd.grad_mode.inference_mode",
    }
)
GRAD_SET = frozenset(
    {"torch.set_grad_enabled", "torch.autograd.set_grad_enabled", "torch.autograd.grad_mode.set_grad_enabled"}
)
# Library contexts that switch gradients off as well: MONAI's `eval_mode(net)` is `net.eval()` + `no_grad()`.
GRAD_OFF_CONTEXTS = frozenset({"monai.networks.utils.eval_mode", "monai.networks.eval_mode"})
GRAD_ON = frozenset({"torch.enable_grad", "torch.autograd.enable_grad", "torch.autograd.grad_mode.enable_grad"})


def grad_switch(ctx: "FileContext", expr: cst.BaseExpression, user: bool = True) -> Optional[str]:
    """'off' for `torch.no_grad()`/`inference_mode()`/`set_grad_enabled(<not True>)`
    (a dynamic flag counts: the author chose the mode), 'on' for `enable_grad()`,
    None otherwise. Accepts the bare decorator form (`@torch.no_grad`). With
    `user` (decorators and `with` items), the author's own switches count too."""
    call = expr if isinstance(expr, cst.Call) else None
    target = call.func if call is not None else expr
    qualified = ctx.qualified_name(target)
    if qualified is None:
        return _user_grad_off(ctx, target) if user else None
    if qualified in GRAD_OFF_CONTEXTS:
        return "off"
    if qualified in GRAD_OFF:
        if call is not None:
            mode = get_arg(call, "mode", 0)
            if mode is not None and literal_value(mode.value) is False:
                return None
        return "off"
    if qualified in GRAD_SET and call is not None:
        mode = get_arg(call, "mode", 0)
        return "on" if mode is not None and literal_value(mode.value) is True else "off"
    if qualified in GRAD_ON:
        return "on"
    return _user_grad_off(ctx, target) if user else None


_GRAD_OFF_NAME = re.compile(r"(inference_mode|no_grad)$", re.IGNORECASE)
_GRAD_OFF_TEXT = re.compile(r"\b(inference_mode|no_grad)\b")


def _user_grad_off(ctx: "FileContext", target: cst.BaseExpression) -> Optional[str]:
    """'off' for what the author wrote to switch gradients off: a decorator or
    context named like `*inference_mode`/`*no_grad` (ultralytics'
    `smart_inference_mode()`), a function of the module that wraps them, or a
    name bound to them (`grad_context = nullcontext if with_grad else torch.no_grad`)."""
    name = dotted_name(target)
    if name is not None and _GRAD_OFF_NAME.search(name.rsplit(".", 1)[-1]):
        return "off"
    if type(target) is not cst.Name:
        return None
    value = ctx.value_of(target)
    if type(value) is cst.FunctionDef:
        code = ctx.module.code_for_node(value)
        return "off" if _GRAD_OFF_TEXT.search(code) and "enable_grad" not in code else None
    if isinstance(value, cst.BaseExpression):
        for node in walk_expr(value):
            if type(node) in (cst.Name, cst.Attribute) and ctx.qualified_name(node) in GRAD_OFF:
                return "off"
    return None


def grad_mode(ctx: "FileContext") -> Optional[str]:
    """The gradient mode the node being visited runs under, from its `with`
    blocks and the decorators of the functions (and classes) around it:
    'off', 'on' (explicit `enable_grad`), or None (the default: recording)."""
    stack = ctx.stack
    for index in range(len(stack) - 2, -1, -1):
        node = stack[index]
        node_type = type(node)  # (exact types: isinstance() on LibCST's ABCs is slow here)
        if node_type is cst.With:
            for item in node.items:
                mode = grad_switch(ctx, item.item)
                if mode is not None:
                    return mode
        elif node_type is cst.FunctionDef or node_type is cst.ClassDef:
            for decorator in node.decorators:
                mode = grad_switch(ctx, decorator.decorator)
                if mode is not None:
                    return mode
    return None


# -- guards: code that runs on some iterations only ------------------------------------------

_COUNTER = re.compile(
    r"^(i|j|it|n|idx|index|step|steps|global_step|iteration|iters?|batch_idx|batch_index|batch_i|epoch|update|updates|count|counter)$|(_step|_iter|_idx|_count)$"
)
_RARE_FLAGS = re.compile(
    r"(sync_gradients|should_log|should_save|should_evaluate|log_now|is_last|last_step|last_batch|do_log|do_eval)"
)


def periodic_period(test: cst.BaseExpression) -> Optional[object]:
    """For a test using `%` (`if step % 100 == 0`): the literal period, or
    NOT_LITERAL when it is not a literal; None when the test is not periodic."""
    found: Optional[object] = None
    for node in walk_expr(test):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo):
            value = literal_value(node.right)
            if isinstance(value, int) and not isinstance(value, bool):
                found = value if found is None or found is NOT_LITERAL else max(found, value)  # type: ignore[operator]
            elif found is None:
                found = NOT_LITERAL
    return found


def exits_block(block: cst.BaseSuite) -> bool:
    """The block ends with raise/break/return: it runs at most once per loop."""
    body = block.body if isinstance(block, cst.IndentedBlock) else getattr(block, "body", ())
    if not body:
        return False
    last = body[-1]
    small = (
        last.body
        if isinstance(last, cst.SimpleStatementLine)
        else [last]
        if isinstance(last, cst.SimpleStatementSuite)
        else []
    )
    return any(isinstance(s, (cst.Raise, cst.Break, cst.Return)) for s in small)


def rare_guard(test: cst.BaseExpression, variant: set[str], min_period: int = 0) -> bool:
    """Does `if test:` make its body run on a fraction of the iterations?
    Periodic tests (with a literal period of at least `min_period`, or a
    non-literal one), `==`/`in` tests on a counter or a name that changes in the
    loop (`if i == len(loader) - 1`), and flags such as
    `accelerator.sync_gradients` count."""
    period = periodic_period(test)
    if period is not None:
        return period is NOT_LITERAL or period >= min_period  # type: ignore[operator]
    for node in walk_expr(test):
        if isinstance(node, cst.Comparison):
            for target in node.comparisons:
                if isinstance(target.operator, (cst.Equal, cst.In)):
                    names = referenced_names(node.left) | referenced_names(target.comparator)
                    if names & variant or any(_COUNTER.search(n) for n in names):
                        return True
        elif names_word(node, _RARE_FLAGS):
            return True
    return False


# -- training loops ------------------------------------------------------------------------------

TRAINING_FRAMEWORK_STEPS = ("training_step()", "train_step()")


class TrainingLoops:
    """Which loops run a training step on every iteration.

    `train_frames` are the names of the module's functions that run a
    backward pass or an optimizer step themselves (collected by the rule
    during the walk). A loop trains when it runs one directly or calls such a
    function; it is a *training step loop* when it is the innermost loop that
    does so: a step loop, a plain loop (`for step in range(n)` calling
    `train_step()`), or an epoch loop that is itself the step (full-batch
    training: no step loop inside). Framework methods count when they are
    training steps (`training_step`, Keras' `train_step`), not evaluation
    steps.
    """

    def __init__(self, loops, train_frames: set[str]) -> None:
        self.loops = loops
        self.train_frames = train_frames
        self.step_frames = {
            loop.frame.name.value
            for loop in loops.loops
            if loop.kind == "step" and isinstance(loop.frame, cst.FunctionDef)
        }

    def trains(self, loop: LoopInfo) -> bool:
        return loop.has_train_step or bool(loop.calls & self.train_frames)

    def is_training_step_loop(self, loop: LoopInfo) -> bool:
        if loop.framework:
            return loop.framework.endswith(TRAINING_FRAMEWORK_STEPS)
        if loop.is_retry or not self.trains(loop):
            return False
        if loop.kind in ("step", "loop") or loop.iterates_data:
            return True  # (a loop over the DataLoader is a step loop even when a nested loop looks like one)
        # An epoch loop that is itself the step (full-batch training).
        return not any(d.kind == "step" for d in _descendants(loop)) and not (loop.calls & self.step_frames)

    def optimizer_loops(self, module: cst.Module) -> Iterator[tuple[LoopInfo, str]]:
        """The `for`/`while` training step loops that run `.backward(` and
        `.step(` in their own code or call a training function of the module
        (not a saliency map or an adversarial attack), with their code."""
        for loop in self.loops.loops:
            if not isinstance(loop.node, (cst.For, cst.While)) or not self.is_training_step_loop(loop):
                continue
            code = module.code_for_node(loop.node)
            if (".backward(" in code and ".step(" in code) or (loop.calls & self.train_frames):
                yield loop, code


# -- what an expression holds --------------------------------------------------------------------

_HOST_PREFIXES = ("numpy.", "pandas.", "sklearn.", "scipy.", "math.", "statistics.", "polars.", "random.", "time.")
_HOST_BUILTINS = frozenset(
    {
        "builtins.float",
        "builtins.int",
        "builtins.len",
        "builtins.round",
        "builtins.str",
        "builtins.bool",
        "builtins.abs",
    }
)
_HOST_METHODS = frozenset(
    {"item", "tolist", "numpy", "cpu", "__len__", "size", "dim", "numel", "get_last_lr", "keys", "values"}
)
_DEVICE_METHODS = frozenset({"to", "cuda"})
LOSS_NAME = re.compile(r"(^|_)(loss|losses|criterion|loss_fn|loss_func|lossfn|objective)(_|$)|loss$", re.IGNORECASE)
_LOADER_LIKE = re.compile(r"(loader|batches|dataset|ds|data|iterator|env|envs)$", re.IGNORECASE)


def _root_call(ctx: "FileContext", expr: cst.BaseExpression) -> cst.BaseExpression:
    """`Net().to(dev).eval()` -> `Net()`; `x.detach().cpu()` -> `x`;
    `AutoModel.from_pretrained(p).to(dev)` -> the `from_pretrained` call (a call
    that resolves to a library function is a root)."""
    while True:
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and ctx.call_name(expr) is None:
            expr = expr.func.value
        elif isinstance(expr, (cst.Attribute, cst.Subscript)):
            expr = expr.value
        else:
            return expr


def tensor_evidence(ctx: "FileContext", expr: cst.BaseExpression, depth: int = 0) -> Optional[bool]:
    """True: the expression holds a framework tensor produced by device work (a
    model or loss output, a `torch.*` result, a `.to(device)` copy); False: it
    holds a host value (NumPy, pandas, a Python number, a raw batch straight
    from a DataLoader); None: unknown."""
    if depth > 4:
        return None
    if isinstance(expr, cst.Call):
        func = expr.func
        qualified = ctx.call_name(expr)
        if qualified is not None:
            if qualified.startswith(_HOST_PREFIXES) or qualified in _HOST_BUILTINS:
                return False
            if qualified.startswith("torch.") and qualified not in ("torch.device", "torch.Generator"):
                return True
            return None
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method in _HOST_METHODS:
                return False
            if method in _DEVICE_METHODS:
                return True
            receiver = tensor_evidence(ctx, func.value, depth + 1)
            return receiver
        if isinstance(func, cst.Name):
            if LOSS_NAME.search(func.value) or MODEL_NAME.search(func.value):
                return True
            value = ctx.value_of(func)
            if isinstance(value, cst.Call) and is_model_constructor(
                ctx.call_name(value), value.func, ctx.model_classes
            ):
                return True
            if isinstance(value, cst.ClassDef) and ctx.model_classes.is_model_class(value.name.value):
                return True
        return None
    if isinstance(expr, (cst.Attribute, cst.Subscript)):
        if isinstance(expr, cst.Attribute) and expr.attr.value in ("shape", "device", "dtype"):
            return False
        if (
            isinstance(expr, cst.Attribute)
            and isinstance(expr.value, cst.Name)
            and expr.value.value in ("self", "args", "cfg", "config")
        ):
            return None
        return tensor_evidence(ctx, expr.value, depth + 1)
    if isinstance(expr, cst.BinaryOperation):
        left = tensor_evidence(ctx, expr.left, depth + 1)
        right = tensor_evidence(ctx, expr.right, depth + 1)
        if left or right:
            return True
        if left is False and right is False:
            return False
        return None
    if isinstance(expr, cst.UnaryOperation):
        return tensor_evidence(ctx, expr.expression, depth + 1)
    if isinstance(
        expr,
        (
            cst.Integer,
            cst.Float,
            cst.SimpleString,
            cst.FormattedString,
            cst.ConcatenatedString,
            cst.List,
            cst.Dict,
            cst.Tuple,
        ),
    ):
        return False
    if isinstance(expr, cst.Name):
        value = ctx.value_of(expr)
        if isinstance(value, LoopItem):
            iterable = value.iterable
            while (
                isinstance(iterable, cst.Call)
                and iterable.args
                and ctx.call_name(iterable)
                in (
                    "builtins.enumerate",
                    "builtins.zip",
                    "tqdm.tqdm",
                    "tqdm.auto.tqdm",
                )
            ):
                iterable = iterable.args[0].value
            name = (
                iterable.value
                if isinstance(iterable, cst.Name)
                else (iterable.attr.value if isinstance(iterable, cst.Attribute) else "")
            )
            return False if _LOADER_LIKE.search(name) else None
        if isinstance(value, (Opaque, type(None))) or value is None:
            return None
        if isinstance(value, cst.BaseExpression):
            return tensor_evidence(ctx, value, depth + 1)
        return None
    return None


def is_host_root(ctx: "FileContext", expr: cst.BaseExpression) -> bool:
    """The receiver chain starts from NumPy/pandas/Python values."""
    root = _root_call(ctx, expr)
    return tensor_evidence(ctx, root) is False


_DEVICE_NAME = re.compile(r"(^|_)(device|dev|gpu|cuda|rank|local_rank)(_|$)|device$", re.IGNORECASE)
_DEVICE_STRINGS = ("cuda", "mps", "xpu", "npu", "hpu")


def is_device_expr(ctx: "FileContext", expr: cst.BaseExpression) -> bool:
    """`"cuda"`, `"cuda:0"`, `0`, `device`, `torch.device("cuda")`, `x.device`,
    `args.device`, `accelerator.device`; not `"cpu"`, dtypes or tensors."""
    value = literal_value(expr)
    if isinstance(value, str):
        return value.startswith(_DEVICE_STRINGS)
    if isinstance(value, int) and not isinstance(value, bool):
        return value >= 0
    if value is not NOT_LITERAL:
        return False
    if isinstance(expr, cst.Call):
        if ctx.call_name(expr) != "torch.device":
            return False
        first = get_arg(expr, "type", 0)
        literal = literal_value(first.value) if first is not None else NOT_LITERAL
        return not (isinstance(literal, str) and literal.startswith("cpu"))
    if isinstance(expr, cst.Name):
        bound = ctx.value_of(expr)
        if isinstance(bound, cst.BaseExpression) and not isinstance(bound, cst.Name):
            literal = literal_value(bound)
            if isinstance(literal, str):
                return literal.startswith(_DEVICE_STRINGS)
            if isinstance(bound, cst.Call) and ctx.call_name(bound) == "torch.device":
                return is_device_expr(ctx, bound)
        return bool(_DEVICE_NAME.search(expr.value))
    if isinstance(expr, cst.Attribute):
        return bool(_DEVICE_NAME.search(expr.attr.value))
    return False


# Libraries whose calls the analysis knows: a call from one of them that is not a
# model constructor does not return a model. Calls into the project's own
# modules (`from models import Generator`) are unknown: the name decides.
_KNOWN_LIBRARIES = (
    "torch.",
    "transformers.",
    "diffusers.",
    "numpy.",
    "pandas.",
    "sklearn.",
    "scipy.",
    "tensorflow.",
    "keras.",
    "jax.",
    "flax.",
    "timm.",
    "torchvision.",
    "sentence_transformers.",
    "lightning.",
    "accelerate.",
    "builtins.",
    "random.",
    "math.",
    "datasets.",
    "tokenizers.",
    "peft.",
    "trl.",
    "openai.",
    "gym.",
    "gymnasium.",
)
_MODEL_WRAPPERS = frozenset(
    {
        "torch.compile",
        "torch.jit.script",
        "torch.jit.trace",
        "torch.nn.DataParallel",
        "torch.nn.parallel.DistributedDataParallel",
        "torch.nn.parallel.DataParallel",
    }
)


_NOT_MODELS = re.compile(r"(tokeni[sz]er|processor|feature_?extractor|scheduler|config|pipe(line)?)", re.IGNORECASE)


def _model_binding(ctx: "FileContext", value: object, name: str, depth: int) -> bool:
    if _NOT_MODELS.search(name):
        return False
    if isinstance(value, cst.BaseExpression):
        root = _root_call(ctx, value)
        if isinstance(root, cst.Call):
            qualified = ctx.call_name(root)
            if _NOT_MODELS.search(dotted_name(root.func) or ctx.module.code_for_node(root.func)):
                return False  # AutoTokenizer.from_pretrained, CLIPProcessor.from_pretrained, ...
            if qualified in _MODEL_WRAPPERS or is_model_constructor(qualified, root.func, ctx.model_classes):
                return True
            if qualified is not None and qualified.startswith(_KNOWN_LIBRARIES):
                return False  # a library call that does not build a model (pipeline, Generator, ...)
        elif isinstance(root, cst.Name) and root is not value and root.value != name and depth < 3:
            return is_model_callee(ctx, root, depth + 1)
        if isinstance(value, (cst.SimpleString, cst.Integer, cst.Float, cst.List, cst.Dict, cst.Tuple)):
            return False
        return bool(MODEL_NAME.search(name))
    if isinstance(value, (cst.FunctionDef, cst.ClassDef)):
        return False
    if value is not None and not isinstance(value, Opaque):
        return False  # an import, a loop item
    return bool(MODEL_NAME.search(name))


def is_model_callee(ctx: "FileContext", func: cst.BaseExpression, depth: int = 0) -> bool:
    """Calling `func` runs a model's forward pass: `model(x)`, `self.encoder(x)`,
    `net.module(x)`, a name bound to a model constructor."""
    if isinstance(func, cst.Name):
        return _model_binding(ctx, ctx.value_of(func), func.value, depth)
    if isinstance(func, cst.Attribute):
        if func.attr.value == "module" and isinstance(func.value, (cst.Name, cst.Attribute)) and depth < 3:
            return is_model_callee(ctx, func.value, depth + 1)
        if isinstance(func.value, cst.Name) and func.value.value == "self":
            return _model_binding(ctx, ctx.value_of(func), func.attr.value, depth)
    return False


# Calls that bring a tensor to the host; the first in a chain is the sync.
HOST_CHAIN = ("item", "cpu", "numpy", "tolist")


def already_on_host(node: cst.BaseExpression) -> bool:
    """`x.cpu().item()`, `x.numpy().tolist()`: the sync was the first call."""
    while True:
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            if node.func.attr.value in HOST_CHAIN:
                return True
            node = node.func.value
        elif isinstance(node, (cst.Attribute, cst.Subscript)):
            node = node.value
        else:
            return False

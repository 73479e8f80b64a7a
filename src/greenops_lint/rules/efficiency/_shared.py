"""What only the GO5xx rules share: `LoopBoundRule`, the base of the loop rules
(a `CandidateRule`: candidates recorded during the walk, decided once the loops
are classified), its guard rule, and how a training call and an optimizer
receiver look."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import literal_value
from greenops_lint.analysis.candidates import CandidateRule
from greenops_lint.analysis.efficiency import exits_block, rare_guard
from greenops_lint.analysis.loops import FrameNode, LoopInfo, referenced_names
from greenops_lint.analysis.tree import is_test_file, last_word, walk_expr

OPTIMIZER_RECEIVER = re.compile(r"(opt|optim|optimizer|optimiser|scaler)", re.IGNORECASE)
# Reinforcement learning: stepping an environment already waits for the device on every env step, and the
# policies are small MLPs (GO501 reports its syncs at info). RL_MODULE_IMPORT: imported at the top of the
# module, so the module is an RL script (GO507 leaves it alone), not a library with one RL helper.
_RL_LIBRARIES = r"(gym|gymnasium|stable_baselines3|sb3_contrib|tianshou|rl_games|pettingzoo|dm_control)\b"
RL_IMPORT = re.compile(r"^\s*(import|from)\s+" + _RL_LIBRARIES, re.MULTILINE)
RL_MODULE_IMPORT = re.compile(r"^(import|from)\s+" + _RL_LIBRARIES, re.MULTILINE)


def is_train_call(node: cst.Call) -> bool:
    """`loss.backward()`, `accelerator.backward(loss)`, `optimizer.step()`, `tape.gradient`."""
    func = node.func
    if not isinstance(func, cst.Attribute):
        return False
    method = func.attr.value
    if method in ("backward", "gradient"):
        return True
    if method == "step":
        name = last_word(func.value)
        return bool(OPTIMIZER_RECEIVER.search(name)) and "sched" not in name.lower()
    return False


def calls_module_function(func: cst.BaseExpression) -> bool:
    """`helper(...)` or `self.helper(...)`: a call that may run a function of
    the module. (Exact types: isinstance() on LibCST's ABCs is slow here.)"""
    return type(func) is cst.Name or (
        type(func) is cst.Attribute and type(func.value) is cst.Name and func.value.value == "self"
    )


def _frame_name(frame: FrameNode) -> Optional[str]:
    return frame.name.value if isinstance(frame, cst.FunctionDef) else None


class LoopBoundRule(CandidateRule):
    """Shared machinery of the GO5xx loop rules (not a rule itself).

    Guards (see `analysis/guards.py`): these rules replace the base guard rule
    with their own: an `if` whose body holds the node and whose test makes it
    run on a fraction of the iterations (`guard_test`, default `rare_guard`:
    periodic tests, counter equality, flags such as `sync_gradients`) or whose
    body ends in raise/break/return, and any exception handler (an OOM
    recovery or error path runs rarely)."""

    family = "efficiency"

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.train_frames: set[str] = set()

    def guard_test(self, test: cst.BaseExpression, variant: set[str]) -> bool:
        """Does `if test:` make its body run rarely in the loops around it?"""
        return rare_guard(test, variant)

    def is_guard(self, node: cst.CSTNode, child: cst.CSTNode, variant: set[str]) -> bool:
        node_type = type(node)
        if node_type is cst.If:
            return child is node.body and (self.guard_test(node.test, variant) or exits_block(node.body))
        return node_type is cst.ExceptHandler

    def visit_Call(self, node: cst.Call) -> None:
        if is_train_call(node):
            name = _frame_name(self.ctx.loops.current_frame)
            if name is not None:
                self.train_frames.add(name)
        self.check_call(node)

    def check_call(self, node: cst.Call) -> None:  # pragma: no cover - overridden
        pass


def backward_inputs(function: cst.FunctionDef) -> tuple[set[str], list[tuple[set[str], cst.BaseExpression]]]:
    """The names whose values flow into a `.backward()` (or `autograd.grad`) in
    `function`, and its assignments (targets, value)."""
    names: set[str] = set()
    assignments: list[tuple[set[str], cst.BaseExpression]] = []
    for node in walk_expr(function.body):
        node_type = type(node)
        if node_type is cst.Call and type(node.func) is cst.Attribute and node.func.attr.value in ("backward", "grad"):
            names |= referenced_names(node.func.value)
            for arg in node.args:
                names |= referenced_names(arg.value)
        elif node_type is cst.Assign and node.value is not None:
            targets: set[str] = set()
            for target in node.targets:
                targets |= referenced_names(target.target)
            assignments.append((targets, node.value))
        elif node_type in (cst.AugAssign, cst.AnnAssign) and node.value is not None:
            assignments.append((referenced_names(node.target), node.value))
    if not names:
        return names, []
    changed = True
    while changed:
        changed = False
        for targets, value in assignments:
            if targets & names:
                added = referenced_names(value) - names
                if added:
                    names |= added
                    changed = True
    return names, assignments


# -- how often code runs (materiality; GO502, GO506) ---------------------------------------------

# A loop over at most this many literal items is a small fixed collection.
SMALL_LOOP = 8
# Functions that build a model or its state once.
_SETUP_FRAME = re.compile(
    r"^(__init__|__post_init__|_?setup\w*|_?build\w*|reset_parameters|_?init_\w*|_reset\w*|_?load\w*|_?fuse\w*|"
    r"\w*reparam\w*|switch_to_deploy|_?convert\w*|_?export\w*|check_\w*|get_equivalent_kernel_bias)$"
)
_TESTING_PATH = re.compile(r"(^|/)(testing|test_utils|testing_utils)(/|\.py$|_)")


def is_test_code(path: str) -> bool:
    """A test file, or a testing helper module (`utils/testing_utils.py`): the
    API is what is tested there."""
    return is_test_file(path) or bool(_TESTING_PATH.search(path.replace("\\", "/")))


def is_setup_frame(frame: FrameNode) -> bool:
    """`__init__`, `reset_parameters`, `_init_weights`: code that runs once per model."""
    return isinstance(frame, cst.FunctionDef) and bool(_SETUP_FRAME.match(frame.name.value))


def literal_length(ctx, iterable: Optional[cst.BaseExpression], depth: int = 0) -> Optional[int]:
    """How many items a literal iterable has: `[a, b]`, `("x", "y")`, `range(4)`,
    a name bound once to a literal list, `enumerate`/`zip` of those."""
    if iterable is None or depth > 2:
        return None
    if isinstance(iterable, (cst.List, cst.Tuple, cst.Set)):
        if any(isinstance(e, cst.StarredElement) for e in iterable.elements):
            return None
        return len(iterable.elements)
    if isinstance(iterable, cst.Call):
        name = ctx.call_name(iterable)
        positional = [a.value for a in iterable.args if a.keyword is None]
        if name == "builtins.range":
            values = [literal_value(a) for a in positional]
            if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                start, stop = (0, values[0]) if len(values) == 1 else (values[0], values[1])
                step = values[2] if len(values) > 2 else 1
                return max(0, (stop - start + step - 1) // step) if step > 0 else None
            return None
        if name in ("builtins.enumerate", "builtins.reversed", "builtins.sorted") and positional:
            return literal_length(ctx, positional[0], depth + 1)
        if name == "builtins.zip" and positional:
            lengths = [literal_length(ctx, a, depth + 1) for a in positional]
            known = [n for n in lengths if n is not None]
            return min(known) if known else None
        return None
    if isinstance(iterable, cst.Name):
        value = ctx.value_of(iterable)
        if isinstance(value, cst.BaseExpression) and value is not iterable:
            return literal_length(ctx, value, depth + 1)
    return None


def is_small_fixed_loop(ctx, loop: LoopInfo) -> bool:
    """A loop over a small fixed collection: at most `SMALL_LOOP` literal items."""
    if loop.count is not None:
        return loop.count <= SMALL_LOOP
    count = literal_length(ctx, loop.iterable)
    return count is not None and count <= SMALL_LOOP


# What a loop over a small fixed collection iterates: module lists, config entries, channels, templates.
_FEW_NAME = re.compile(
    r"(^|_)(layers?|blocks?|modules?|heads?|channels?|keys|names|templates?|transforms?|transformations|types|"
    r"stages?|scales?|levels?|components?|children|groups|factories|keyframes|refs|references?|"
    r"reference_images(_batch)?|tokenizers|(text_)?encoders|devices|chunks?|frames?|splits?|folds?|views?|crops?|branches|experts|tasks)$",
    re.IGNORECASE,
)
_FEW_COUNT = re.compile(r"^(n_|num_?|number_of_)\w+$|^iter_?$", re.IGNORECASE)


def is_few_items(ctx, iterable: Optional[cst.BaseExpression], depth: int = 0) -> bool:
    """`self.layers`, `config.items()`, `range(x.shape[1])`, `range(self.num_layers)`,
    `reference_images`: a handful of items, not data."""
    if iterable is None or depth > 2:
        return False
    if isinstance(iterable, cst.Call):
        name = ctx.call_name(iterable) or ""
        positional = [a.value for a in iterable.args if a.keyword is None]
        if name in ("builtins.enumerate", "builtins.zip", "builtins.reversed", "builtins.sorted"):
            return bool(positional) and all(is_few_items(ctx, a, depth + 1) for a in positional[:1])
        if isinstance(iterable.func, cst.Attribute) and iterable.func.attr.value in ("items", "keys", "values"):
            return True
        if isinstance(iterable.func, cst.Attribute) and iterable.func.attr.value in ("children", "named_children"):
            return True
        if name == "builtins.range" and positional:
            return _few_count(ctx, positional[-1] if len(positional) <= 2 else positional[1])
        return False
    if isinstance(iterable, cst.Attribute):
        if isinstance(iterable.value, cst.Name) and iterable.value.value == "self":
            return not ctx.loops._iterates_data(iterable)
        return bool(_FEW_NAME.search(iterable.attr.value))
    if isinstance(iterable, cst.Name):
        return bool(_FEW_NAME.search(iterable.value))
    return False


def _few_count(ctx, stop: cst.BaseExpression) -> bool:
    """`self.num_layers`, `n_heads`, `x.shape[1]`, `x.size(1)`, `len(self.blocks)`."""
    for node in walk_expr(stop):
        if isinstance(node, cst.Attribute) and node.attr.value in ("shape", "ndim"):
            return True
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in ("size", "dim")
        ):
            return True
        if isinstance(node, cst.Call) and ctx.call_name(node) == "builtins.len" and node.args:
            return is_few_items(ctx, node.args[0].value, 1)
        word = (
            node.value if isinstance(node, cst.Name) else node.attr.value if isinstance(node, cst.Attribute) else None
        )
        if word and (
            _FEW_COUNT.match(word)
            and not re.search(r"(sample|step|iter|batch|epoch|token|item|row|example)s?$", word, re.IGNORECASE)
        ):
            return True
    return False

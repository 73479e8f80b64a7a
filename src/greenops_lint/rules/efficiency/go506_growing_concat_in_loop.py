"""GO506: an array, tensor or DataFrame grown by concatenation in a loop."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.loops import LoopInfo
from greenops_lint.analysis.tree import display_name, walk_expr
from greenops_lint.finding import SavingsEstimate, format_figure
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.efficiency._shared import is_few_items, literal_length
from greenops_lint.savings import SOURCE_COUNTED
from greenops_lint.walker import children

# ## Estimate: repeated work. n concatenations onto a growing buffer copy each chunk (n - 1) / 2 extra times on
# average; n is the literal loop count, otherwise a range of iterations is assumed from the loop's kind:
# a data loop (over a DataLoader, a dataset, batches; a training step or epoch loop) runs this many times,
DATA_ITERATIONS = (100, 10000)
# a loop over a small fixed collection (modules, dict keys, channels, `range(self.num_layers)`) this many,
FEW_ITERATIONS = (2, 20)
# and any other loop this many.
ASSUMED_ITERATIONS = (10, 1000)
# Loops of at most this many iterations are not worth a finding.
MAX_TINY_ITERATIONS = 2
# ## When it is material: at least this many extra copies of each chunk for certain (the low end of the
# estimate), i.e. 21 iterations or more: a data loop, or a literal count over 20. The rest is info.
MATERIAL_EXTRA_COPIES = 10.0


def extra_copies(iterations: int) -> float:
    """Extra copies of each chunk, on average, for `iterations` concatenations."""
    return round((iterations - 1) / 2, 1)


_SEQUENCE_CONCATS = frozenset(
    {
        "torch.cat",
        "torch.concat",
        "torch.concatenate",
        "torch.vstack",
        "torch.hstack",
        "torch.row_stack",
        "numpy.concatenate",
        "numpy.vstack",
        "numpy.hstack",
        "numpy.row_stack",
        "numpy.column_stack",
        "numpy.dstack",
        "pandas.concat",
        "tensorflow.concat",
        "jax.numpy.concatenate",
        "jax.numpy.vstack",
        "jax.numpy.hstack",
        "polars.concat",
    }
)
_APPENDS = frozenset({"numpy.append"})
_SEQUENCE_KEYWORDS = ("tensors", "arrays", "tup", "objs", "values", "items")


class GrowingConcatInLoop(Rule):
    """Grows an array, tensor or DataFrame by concatenating to it in a loop.

    ## What it does
    Flags `x = torch.cat([x, y])`, `x = np.concatenate((x, y))`,
    `x = np.append(x, y)`, `x = np.vstack([x, y])`, `df = pd.concat([df, row])`,
    `x = tf.concat([x, y], 0)` (and `self.x = ...` forms) inside a `for` or
    `while` loop, when the accumulator is not read anywhere else in the loop
    (so it could be collected and concatenated once).

    ## Why is this bad
    Each concatenation allocates a new buffer and copies everything gathered
    so far: n iterations copy about n^2/2 chunks instead of n, so the loop
    gets quadratically slower as it grows (and on the GPU churns the
    allocator). The pandas docs warn that `concat` "makes a full copy of the
    data, and ... constantly reusing this function can create a significant
    performance hit".

    Not flagged: loops that read the accumulator on every iteration
    (autoregressive decoding `idx = torch.cat([idx, next_token], 1)` feeds it
    to the model; DenseNet blocks feed it to the next layer), sliced results
    (`buf = torch.cat([buf, y])[-k:]`, a bounded window), loops of at most two
    iterations, and list appends.

    ## Fix
    Append the pieces to a Python list and concatenate once after the loop
    (`torch.cat(chunks)`, `np.concatenate(chunks)`, `pd.concat(frames)`); in
    TensorFlow graphs use `tf.TensorArray`.

    ## Estimate
    Repeated work: each chunk is copied (n - 1) / 2 extra times on average
    for n iterations. n is the literal count (`range(64)`, a literal list);
    otherwise it is assumed from the kind of loop: 100-10000 iterations
    (49.5-5000 extra copies) for a data loop (over a DataLoader, a
    dataset or batches, or a training step or epoch loop), 2-20 (0.5-9.5)
    for a loop over a small fixed collection (modules, dict items,
    channels, `range(self.num_layers)`, reference images, keyframes), and
    4.5-500 (10-1000 iterations assumed) for any other loop. When the
    accumulator is not reset in an outer loop, the growth spans it too and
    the counts multiply.

    ## When it is material
    Quadratic copying matters over a data-sized loop: a finding is a
    warning when its estimate is at least 10 extra copies of each chunk for
    certain (the low end), that is a data loop or a literal count over 20.
    Loops over a few items (channels, keyframes, eight edge templates,
    twenty VAE chunks) and loops of unknown size are reported at severity
    info (hidden unless `--show-info`): the copies are small next to the
    work of each iteration.
    """

    code = "GO506"
    name = "growing-concat-in-loop"
    family = "efficiency"
    estimate_sources = {
        SOURCE_COUNTED: "any hardware: chunk copies from the loop's literal count, else an assumed count by kind of loop",
    }
    analyses = ("loops", "model_classes")
    tokens = ("cat(", "concat", "append(", "stack(")
    INVALID = [
        Invalid(
            """
            import torch
            all_preds = torch.empty(0)
            for x, _ in loader:
                all_preds = torch.cat([all_preds, model(x)])
            """,
            line=4,
            message="all_preds = torch.cat([all_preds, ...]) copies everything gathered so far",
        ),
        """
        import pandas as pd
        df = pd.DataFrame()
        for path in paths:
            df = pd.concat([df, pd.read_csv(path)], ignore_index=True)
        """,
        """
        import numpy as np
        feats = np.zeros((0, 128))
        for batch in batches:
            feats = np.append(feats, encode(batch), axis=0)
        """,
    ]
    VALID = [
        """
        import torch
        chunks = []
        for x, _ in loader:
            chunks.append(model(x))
        all_preds = torch.cat(chunks)
        """,
        """
        import torch
        for _ in range(max_new_tokens):
            logits = model(idx)[:, -1, :]
            idx_next = torch.multinomial(logits.softmax(-1), 1)
            idx = torch.cat((idx, idx_next), dim=1)
        """,
        """
        import torch
        for layer in self.layers:
            new = layer(x)
            x = torch.cat([x, new], 1)
        """,
    ]

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) != 1 or not isinstance(node.value, cst.Call):
            return
        target = node.targets[0].target
        if not isinstance(target, (cst.Name, cst.Attribute)):
            return
        call = node.value
        qualified = self.ctx.call_name(call)
        if qualified not in _SEQUENCE_CONCATS and qualified not in _APPENDS:
            return
        target_code = self.ctx.module.code_for_node(target)
        if qualified in _SEQUENCE_CONCATS:
            sequence = get_arg(call, None, 0)
            if sequence is None:
                for keyword in _SEQUENCE_KEYWORDS:
                    sequence = get_arg(call, keyword)
                    if sequence is not None:
                        break
            if sequence is None or not isinstance(sequence.value, (cst.List, cst.Tuple)):
                return
            elements = [e.value for e in sequence.value.elements if not isinstance(e, cst.StarredElement)]
            accumulators = [e for e in elements if self.ctx.module.code_for_node(e) == target_code]
            if len(elements) < 2 or not accumulators:
                return
            shape = f"{target_code} = {display_name(qualified)}([{target_code}, ...])"
        else:
            first = get_arg(call, "arr", 0)
            if first is None or self.ctx.module.code_for_node(first.value) != target_code:
                return
            accumulators = [first.value]
            shape = f"{target_code} = {display_name(qualified)}({target_code}, ...)"
        loop = self._innermost_loop()
        if loop is None or self._tiny(loop) or self._read_elsewhere(loop, [target, *accumulators], target, target_code):
            return
        # Sized once the loops are classified (leave_Module).
        self.pending.append((node, shape, target_code, self.ctx.loops.loops_at()))

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.pending: list[tuple] = []

    def _size(self, loop: LoopInfo) -> tuple[int, int, str]:
        """(fewest, most) iterations of one loop, and what they rest on."""
        count = loop.count if loop.count is not None else literal_length(self.ctx, loop.iterable)
        if count is not None:
            return count, count, f"{count} (literal)"
        if loop.iterates_data or loop.kind in ("step", "epoch"):
            return (*DATA_ITERATIONS, "a data loop")
        if is_few_items(self.ctx, loop.iterable):
            return (*FEW_ITERATIONS, "a loop over a small fixed collection")
        return (*ASSUMED_ITERATIONS, "not literal")

    def _spanned_loops(self, loops: tuple[LoopInfo, ...], target_code: str) -> list[LoopInfo]:
        """The innermost loop, and the loops outside it in which the accumulator
        is not reset (the growth spans them too)."""
        spanned = [loops[0]]
        for outer in loops[1:]:
            if self._reset_in(outer.node, spanned[-1].node, target_code):
                break
            spanned.append(outer)
        return spanned

    def _reset_in(self, outer: cst.CSTNode, inner: cst.CSTNode, target_code: str) -> bool:
        stack: list[cst.CSTNode] = list(children(outer))
        while stack:
            node = stack.pop()
            if node is inner or isinstance(node, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
                continue
            if isinstance(node, cst.Assign) and any(
                self.ctx.module.code_for_node(t.target) == target_code for t in node.targets
            ):
                return True
            stack.extend(children(node))
        return False

    def leave_Module(self, node: cst.Module) -> None:
        for assign, shape, target_code, loops in self.pending:
            if not loops:
                continue
            fewest = most = 1
            reasons = []
            for loop in self._spanned_loops(loops, target_code):
                low, high, why = self._size(loop)
                fewest, most = fewest * low, most * high
                reasons.append(why)
            low, high = extra_copies(fewest), extra_copies(most)
            if len(reasons) == 1 and reasons[0].endswith("(literal)"):
                assumption = f"the loop runs {fewest} times (literal)"
            elif reasons == ["not literal"]:
                first, last = ASSUMED_ITERATIONS
                assumption = f"the iteration count is not literal: {first}-{last} iterations assumed"
            else:
                span = f"{fewest}" if fewest == most else f"{fewest}-{most}"
                assumption = f"{span} iterations assumed ({'; '.join(reasons)})"
            material = low >= MATERIAL_EXTRA_COPIES
            copies = format_figure(low) if low == high else f"{format_figure(low)}-{format_figure(high)}"
            self.report(
                assign,
                f"{shape} copies everything gathered so far on every iteration "
                f"(quadratic in the number of iterations: {copies} extra copies of each chunk); "
                "append the pieces to a list and concatenate once after the loop",
                SavingsEstimate(
                    metric="repeated_work",
                    low=low,
                    high=high,
                    unit="extra copies of each chunk",
                    basis="n concatenations onto a growing buffer copy about n^2/2 chunks instead of n "
                    "(pandas docs: concat makes a full copy of the data each time)",
                    hardware=self.ctx.hardware.key,
                    source=SOURCE_COUNTED,
                    assumptions=(assumption,) if material else (assumption, "below the materiality threshold"),
                ),
                severity=None if material else "info",
            )

    def _innermost_loop(self) -> Optional[cst.CSTNode]:
        for node in reversed(self.ctx.stack[:-1]):
            if isinstance(node, (cst.For, cst.While)):
                return node
            if isinstance(node, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
                return None
        return None

    def _read_elsewhere(self, loop: cst.CSTNode, own: list, target: cst.BaseExpression, code: str) -> bool:
        """The accumulator is used in the loop apart from this assignment's
        target and the accumulator element itself (and `x is None` tests): it
        is needed on every iteration."""
        inside = {id(n) for node in own for n in walk_expr(node)}
        stack: list[cst.CSTNode] = [loop]
        while stack:
            node = stack.pop()
            if id(node) in inside:
                continue
            if isinstance(node, cst.Comparison) and any(
                isinstance(c.operator, (cst.Is, cst.IsNot)) and literal_value(c.comparator) is None
                for c in node.comparisons
            ):
                continue
            if isinstance(node, cst.Assign):
                stack.append(node.value)  # rebinding the name is not a read
                continue
            if isinstance(target, cst.Name) and isinstance(node, cst.Name) and node.value == target.value:
                return True
            if (
                isinstance(target, cst.Attribute)
                and isinstance(node, cst.Attribute)
                and self.ctx.module.code_for_node(node) == code
            ):
                return True
            stack.extend(children(node))
        return False

    def _count(self, loop: cst.CSTNode) -> Optional[int]:
        if (
            isinstance(loop, cst.For)
            and isinstance(loop.iter, cst.Call)
            and self.ctx.call_name(loop.iter) == "builtins.range"
        ):
            values = [literal_value(a.value) for a in loop.iter.args if a.keyword is None]
            if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                start, stop = (0, values[0]) if len(values) == 1 else (values[0], values[1])
                step = values[2] if len(values) > 2 else 1
                return max(0, (stop - start + step - 1) // step) if step > 0 else None
        if isinstance(loop, cst.For) and isinstance(loop.iter, (cst.List, cst.Tuple)):
            return len(loop.iter.elements)
        return None

    def _tiny(self, loop: cst.CSTNode) -> bool:
        count = self._count(loop)
        return count is not None and count <= MAX_TINY_ITERATIONS

"""GO506: an array, tensor or DataFrame grown by concatenation in a loop."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.tree import display_name, walk_expr
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.walker import children

# ## Estimate: repeated work. n concatenations onto a growing buffer copy each chunk (n - 1) / 2 extra times on
# average; n is the literal loop count, otherwise this range of iterations is assumed.
ASSUMED_ITERATIONS = (10, 1000)
# Loops of at most this many iterations are not worth a finding.
MAX_TINY_ITERATIONS = 2


def extra_copies(iterations: int) -> float:
    """Extra copies of each chunk, on average, for `iterations` concatenations."""
    return round((iterations - 1) / 2, 1)


_SEQUENCE_CONCATS = frozenset(
    {
        "torch.cat", "torch.concat", "torch.concatenate", "torch.vstack", "torch.hstack", "torch.row_stack",
        "numpy.concatenate", "numpy.vstack", "numpy.hstack", "numpy.row_stack", "numpy.column_stack", "numpy.dstack",
        "pandas.concat", "tensorflow.concat", "jax.numpy.concatenate", "jax.numpy.vstack", "jax.numpy.hstack",
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
    for n iterations (literal counts), otherwise 4.5-499.5 (10-1000
    iterations assumed).
    """

    code = "GO506"
    name = "growing-concat-in-loop"
    family = "efficiency"
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
        count = self._count(loop)
        if count:
            low = high = extra_copies(count)
            assumption = f"the loop runs {count} times (literal)"
        else:
            low, high = (extra_copies(n) for n in ASSUMED_ITERATIONS)
            fewest, most = ASSUMED_ITERATIONS
            assumption = f"the iteration count is not literal: {fewest}-{most} iterations assumed"
        self.report(
            node,
            f"{shape} copies everything gathered so far on every iteration "
            "(quadratic in the number of iterations); append the pieces to a list and concatenate once after the loop",
            SavingsEstimate(
                metric="repeated_work",
                low=low,
                high=high,
                unit="extra copies of each chunk",
                basis="n concatenations onto a growing buffer copy about n^2/2 chunks instead of n "
                "(pandas docs: concat makes a full copy of the data each time)",
                hardware=self.ctx.hardware.key,
                assumptions=(assumption,),
            ),
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

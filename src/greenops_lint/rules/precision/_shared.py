"""What only the GO4xx rules share: the unsafe fix that puts float32 where float64 was."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.rewrite import float32_like, replace_with
from greenops_lint.finding import Fix


def float32_fix(value: cst.BaseExpression, new: Optional[cst.BaseExpression] = None) -> Optional[Fix]:
    """Replace `value` (a float64 dtype, or a switch's argument) with `new`, by
    default its float32 spelling; None when there is nothing to write."""
    if new is None:
        new = float32_like(value)
    return Fix(value, replace_with(new), safe=False, title="use float32") if new is not None else None

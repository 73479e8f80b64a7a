"""GO515 pandas-row-loop: per-row arithmetic in Python over a DataFrame (iterrows, itertuples, apply(axis=1))."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.loops import bound_names
from greenops_lint.analysis.tree import is_test_file
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid
from greenops_lint.rules.efficiency._pandas import literal_rows, vectorisable
from greenops_lint.rules.efficiency._shared import LoopBoundRule
from greenops_lint.savings import SOURCE_CPU

# -- estimate (`## Estimate`): measured on CPU (process CPU time on a 2-vCPU AMD EPYC VM, pandas 3.1.1, numpy 2.4),
# a two-column `a * 2 + b` per row against the same column expression, 1,000 to 100,000 rows (medians of 3-5 runs).
# Per row: (microseconds, factor at 1k rows, factor at 100k rows). `greenops-lint probe` measures it again.
MEASURED = {
    "iterrows": (16.0, 130.0, 1800.0),
    "apply": (5.0, 43.0, 560.0),
    "itertuples": (0.5, 4.0, 50.0),
}
MEASURED_ON = "2-vCPU AMD EPYC VM, pandas 3.1.1, 1k-100k rows"
# huggingface/lerobot#2077: df.apply(axis=1) 3.81 s vs vectorised 0.047 s (100 rows x 1000 repeats).
LEROBOT_FACTOR = 80
# A frame built from a literal with at most this many rows is tiny: not reported.
TINY_ROWS = 1000

_ROW_METHODS = frozenset({"iterrows", "itertuples"})
_WRAPPERS = frozenset(
    {"builtins.enumerate", "tqdm.tqdm", "tqdm.auto.tqdm", "tqdm.notebook.tqdm", "builtins.zip", "builtins.list"}
)
# Frames that are summaries (a few rows): aggregation results, heads and samples.
_SMALL_FRAME_METHODS = frozenset(
    {
        "groupby",
        "agg",
        "aggregate",
        "describe",
        "value_counts",
        "pivot_table",
        "corr",
        "cov",
        "head",
        "tail",
        "nlargest",
        "nsmallest",
        "sample",
        "T",
        "mean",
        "sum",
        "count",
    }
)
_SUMMARY_NAME = re.compile(r"(result|metric|summary|stats|score|report|leaderboard|config|param)", re.IGNORECASE)


class PandasRowLoop(LoopBoundRule):
    """Does per-row arithmetic in Python over a pandas DataFrame.

    ## What it does
    Flags `for ... in df.iterrows()` and `for ... in df.itertuples()` loops
    (also through `enumerate`/`tqdm`), and `df.apply(f, axis=1)` with a
    lambda or a function of the module, whose body does arithmetic on the
    row's fields (`row["a"] * 2 + row["b"]`, `total += row.price`) and
    nothing else that a column operation could not do.

    ## Why is this bad
    Each row becomes a Python object (a `Series` for `iterrows` and `apply`,
    a namedtuple for `itertuples`), so the per-row cost is microseconds of
    interpreter work where a column operation costs nanoseconds. Measured on
    CPU here (CPU time on a 2-vCPU VM, pandas 3.1.1, `a * 2 + b` over two
    float columns): `iterrows` ~16 us per row, `apply(axis=1)` ~5 us,
    `itertuples` ~0.5 us, against ~0.01 us for `df["a"] * 2 + df["b"]`:
    130-1800x, 43-560x and 4-50x slower for 1,000-100,000 rows
    (`greenops-lint probe` measures it again). huggingface/lerobot#2077 measured
    `apply(axis=1)` 80x slower than the vectorised code on 100 rows. On a GPU
    machine the GPU waits while the CPU prepares the data.

    Not flagged: loops that do I/O per row (open, read, save, download,
    print, plot) or call a model, a tokenizer or any function the rule does
    not know (per-row logic that may not vectorise), loops with a nested
    loop, string building, frames built from a small literal or that are
    summaries (`groupby(...).agg(...)`, `describe()`, `head(n)`, results
    tables), `apply(..., raw=True)`, and test files.

    ## Example
    ```python
    for _, row in df.iterrows():  # GO515
        df.loc[_, "bmi"] = row["weight"] / row["height"] ** 2
    ```

    ## Fix
    Use column operations: `df["bmi"] = df["weight"] / df["height"] ** 2`;
    `np.where` for per-row conditions; `df.itertuples()` as a last resort
    when the logic really is per row. No automatic fix.

    ## Estimate
    Time factor of the loop against the column operation, measured on CPU
    (not a GPU figure): 130-1800x for `iterrows`, 43-560x for
    `apply(axis=1)`, 4-50x for `itertuples`, from 1,000 to 100,000 rows.

    ## When it is material
    When a pass over the frame costs about a second or more, or repeats:
    `iterrows` reaches a second at ~60,000 rows and `apply(axis=1)` at
    ~200,000, sizes that training tables reach, so both are reported for
    frames of unknown size; `itertuples` needs ~2,000,000 rows, so it is
    reported at info unless the
    loop runs on every epoch, step or sample. Tiny literal frames are not
    reported.
    """

    code = "GO515"
    name = "pandas-row-loop"
    estimate_sources = {
        SOURCE_CPU: "pandas on a 2-vCPU AMD EPYC machine, 1k-100k rows (CPU work on any machine)",
    }
    track_call_sites = False
    uses_guards = False
    tokens = ("iterrows", "itertuples", "axis")
    INVALID = [
        Invalid(
            """
            import pandas as pd
            df = pd.read_csv("patients.csv")
            bmi = []
            for _, row in df.iterrows():
                bmi.append(row["weight"] / row["height"] ** 2)
            """,
            line=4,
            message="df.iterrows() loop does arithmetic on each row in Python",
        ),
        Invalid(
            """
            import pandas as pd
            df = pd.read_parquet("trips.parquet")
            df["fare_per_km"] = df.apply(lambda r: r["fare"] / (r["km"] + 1e-6), axis=1)
            """,
            line=3,
            message="df.apply(..., axis=1)",
        ),
    ]
    VALID = [
        # I/O per row: not vectorisable.
        """
        import pandas as pd
        from PIL import Image
        df = pd.read_csv("labels.csv")
        for _, row in df.iterrows():
            img = Image.open(row["path"])
            sizes.append(img.width * img.height)
        """,
        # A model per row.
        """
        import pandas as pd
        df = pd.read_csv("texts.csv")
        for row in df.itertuples():
            scores.append(model(row.text) * row.weight)
        """,
        # A tiny literal frame.
        """
        import pandas as pd
        df = pd.DataFrame({"a": [1, 2, 3], "b": [4, 5, 6]})
        for _, row in df.iterrows():
            total += row["a"] * row["b"]
        """,
        # String building, no arithmetic.
        """
        import pandas as pd
        df = pd.read_csv("people.csv")
        names = [row["first"] + " " + row["last"] for _, row in df.iterrows()]
        for _, row in df.iterrows():
            lookup[row["id"]] = row["name"]
        """,
        # A summary table.
        """
        import pandas as pd
        df = pd.read_csv("runs.csv")
        for name, row in df.groupby("model").mean().iterrows():
            best = max(best, row["acc"] * 100)
        """,
        # raw=True passes arrays.
        """
        import pandas as pd
        df = pd.read_csv("x.csv")
        df["s"] = df.apply(lambda r: r[0] + r[1], axis=1, raw=True)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.reported: set[int] = set()

    # -- for loops over rows ------------------------------------------------------------------
    def visit_For(self, node: cst.For) -> None:
        if is_test_file(self.ctx.path):
            return
        call, target = self._row_iteration(node.iter, node.target)
        if call is None:
            return
        method = call.func.attr.value  # type: ignore[union-attr]
        frame = call.func.value  # type: ignore[union-attr]
        if self._small_frame(frame):
            return
        rows = self._row_names(method, target)
        if not rows or not vectorisable(self.ctx, node.body, rows, allow_index_writes=True):
            return
        self.record(node, method=method, frame=frame)

    def _row_iteration(self, iterable: cst.BaseExpression, target: cst.BaseExpression):
        """(the df.iterrows() call, the target bound to its items) through enumerate/tqdm."""
        while isinstance(iterable, cst.Call) and self.ctx.call_name(iterable) in _WRAPPERS and iterable.args:
            if self.ctx.call_name(iterable) == "builtins.enumerate":
                if isinstance(target, cst.Tuple) and len(target.elements) == 2:
                    target = target.elements[1].value
                else:
                    return None, None
            elif self.ctx.call_name(iterable) == "builtins.zip":
                return None, None
            iterable = iterable.args[0].value
        if (
            isinstance(iterable, cst.Call)
            and isinstance(iterable.func, cst.Attribute)
            and iterable.func.attr.value in _ROW_METHODS
            and self.ctx.call_name(iterable) is None
        ):
            return iterable, target
        return None, None

    @staticmethod
    def _row_names(method: str, target: cst.BaseExpression) -> set[str]:
        if method == "iterrows":
            if isinstance(target, cst.Tuple) and len(target.elements) == 2:
                return bound_names(target.elements[1].value)
            return set()
        if isinstance(target, cst.Name):
            return {target.value}
        if isinstance(target, cst.Tuple):
            return bound_names(target) - bound_names(target.elements[0].value)  # (Index, a, b, ...)
        return set()

    # -- apply(axis=1) ------------------------------------------------------------------------
    def check_call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "apply") or self.ctx.call_name(node) is not None:
            return
        axis = get_arg(node, "axis")
        if axis is None or literal_value(axis.value) not in (1, "columns"):
            return
        raw = get_arg(node, "raw")
        if raw is not None and literal_value(raw.value) is not False:
            return
        if is_test_file(self.ctx.path) or self._small_frame(func.value):
            return
        first = get_arg(node, "func", 0)
        if first is None:
            return
        body, rows = self._function_body(first.value)
        if body is None or not rows or not vectorisable(self.ctx, body, rows, allow_index_writes=False):
            return
        self.record(node, method="apply", frame=func.value)

    def _function_body(self, fn: cst.BaseExpression):
        if isinstance(fn, cst.Lambda):
            params = fn.params.params
            return (fn.body, {params[0].name.value}) if params else (None, set())
        if isinstance(fn, cst.Name):
            bound = self.ctx.names.lookup(fn.value)
            if isinstance(bound, cst.FunctionDef) and bound.params.params:
                return bound.body, {bound.params.params[0].name.value}
        return None, set()

    # -- tiny frames ----------------------------------------------------------------------------
    def _small_frame(self, frame: cst.BaseExpression, depth: int = 0) -> bool:
        if depth > 3:
            return False
        node = frame
        while True:
            if isinstance(node, cst.Call) and self.ctx.call_name(node) is not None:
                break  # a library call: pd.DataFrame(...), pd.read_csv(...)
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
                if node.func.attr.value in _SMALL_FRAME_METHODS:
                    return True
                node = node.func.value
            elif isinstance(node, cst.Attribute):
                if node.attr.value in _SMALL_FRAME_METHODS:
                    return True
                node = node.value
            elif isinstance(node, cst.Subscript):
                node = node.value
            else:
                break
        if isinstance(node, cst.Call) and self.ctx.call_name(node) == "pandas.DataFrame" and node.args:
            return literal_rows(node.args[0].value, TINY_ROWS) is not None
        if isinstance(node, cst.Name):
            if _SUMMARY_NAME.search(node.value):
                return True
            bound = self.ctx.value_of(node)
            if isinstance(bound, cst.BaseExpression) and bound is not frame:
                return self._small_frame(bound, depth + 1)
        if isinstance(node, cst.Attribute) and _SUMMARY_NAME.search(node.attr.value):
            return True
        return False

    # -- decision ---------------------------------------------------------------------------------
    def leave_Module(self, node: cst.Module) -> None:
        for candidate in self.candidates:
            method = candidate.extra["method"]
            repeated = self._repeated(candidate)
            per_row_us, low, high = MEASURED[method]
            material = method != "itertuples" or repeated is not None
            frame = self.ctx.snippet(candidate.extra["frame"], 40)
            what = f"{frame}.{method}() loop" if method != "apply" else f"{frame}.apply(..., axis=1)"
            where = f" on every iteration of the {repeated}" if repeated else ""
            self.report(
                candidate.node,
                f"{what} does arithmetic on each row in Python{where} (~{per_row_us:g} us per row measured on CPU, "
                f"{low:g}-{high:g}x the column operation); compute it with column operations "
                '(df["a"] * 2 + df["b"], np.where for conditions)',
                SavingsEstimate(
                    metric="time_factor",
                    low=low,
                    high=high,
                    unit="x data preparation",
                    basis=f"measured on CPU ({MEASURED_ON}): {method} ~{per_row_us:g} us per row vs ~0.01 us vectorised; "
                    f"huggingface/lerobot#2077: apply(axis=1) {LEROBOT_FACTOR}x slower than vectorised",
                    hardware=self.ctx.hardware.key,
                    assumptions=(
                        "the row count is not literal: 1,000-100,000 rows",
                        "the per-row work is arithmetic that column operations express",
                    ),
                    source=SOURCE_CPU,
                ),
                statement=candidate.statement,
                severity=None if material else "info",
            )

    def _repeated(self, candidate) -> Optional[str]:
        frame = candidate.frame
        if isinstance(frame, cst.FunctionDef) and frame.name.value in ("__getitem__", "__getitems__", "__iter__"):
            return "dataset's per-sample method"
        direct = candidate.direct[1:] if isinstance(candidate.node, cst.For) else candidate.direct
        for loop in direct:
            if loop.kind in ("epoch", "step"):
                return loop.describe()
        return None

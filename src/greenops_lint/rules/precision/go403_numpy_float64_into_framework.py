"""GO403: a float64 NumPy array turned into a framework tensor."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg
from greenops_lint.analysis.dtypes import float64_array_source, is_explicit_float64, literal_numel
from greenops_lint.analysis.rewrite import method_call, with_keyword
from greenops_lint.analysis.tree import display_name, is_test_file
from greenops_lint.finding import Fix, SavingsEstimate, human_bytes
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.precision._shared import (
    cost_words,
    float64_estimate,
    float64_model_in_file,
)
from greenops_lint.rules.precision._tensor_use import TensorUse
from greenops_lint.savings import (
    FLOAT64_BYTES_RATIO,
    SOURCE_CODE,
    SOURCE_DATASHEET,
    SOURCE_DERIVED,
    extra_bytes_estimate,
)

# The page's `## Estimate`: with a literal shape, the extra bytes of the float64
# copy, FLOAT64_BYTES - FLOAT32_BYTES an element; where the file runs its model
# in float64, GO401's time factor of the file's workload; otherwise the data's
# bytes, FLOAT64_BYTES_RATIO (2x) of float32 through memory and host-to-device copies.
FLOAT64_BYTES, FLOAT32_BYTES = 8, 4
# Materiality: a float64 copy under 1 MiB of extra bytes (262,144 elements) is
# reported at info severity, whatever its use.
MATERIAL_EXTRA_BYTES = 1 << 20


class NumpyFloat64IntoFramework(TensorUse, Rule):
    """Turns a float64 NumPy array into a framework tensor.

    ## What it does
    Flags `torch.from_numpy(x)`, `torch.tensor(x)`, `torch.as_tensor(x)`,
    `tf.convert_to_tensor(x)` and `tf.constant(x)` without a float32 `dtype=`,
    where `x` is float64: NumPy's default (`np.random.rand/randn/random/...`,
    `rng.random()` of `np.random.default_rng()`, `np.zeros/ones/empty/eye/
    linspace` without a dtype, `np.arange` or `np.array` of float literals,
    `np.loadtxt/genfromtxt`), `.astype(float)` / `.astype(np.float64)`,
    `np.asarray(..., dtype=float)`, and the `.values` / `.to_numpy()` of a
    pandas frame known to hold floats (read with a float64 `dtype=`,
    `astype(float)`, `select_dtypes("float")`, a division or arithmetic with a
    float literal). The array may be the argument itself, a name assigned from
    one of these, or what a helper of the module returns (one call deep).

    It then follows the tensor through names in the module (and through a
    helper that returns it, one call deep) to what it feeds: a model call
    (`model(x)`, `self.policy(x)`), a `TensorDataset`/`DataLoader`/
    `tf.data.Dataset.from_tensor_slices`, a data set class of the module, a
    `.fit()`, or a loop that calls `.backward()` or `optimizer.step()`.

    ## Why is this bad
    The conversion keeps the dtype: the tensor takes twice the host memory and
    host-to-device bytes of float32. Then either a float32 model fails with
    "expected Float but found Double" (and somebody adds `.double()`, GO402)
    or the data is cast on every batch.

    Not flagged: integer data (`np.arange(10)`, `np.random.randint`, a frame
    read without a dtype: edge lists, ids and labels are int64), a dtype given
    to the factory or the conversion, a conversion cast back in the same
    expression (`.float()`, `.half()`, `.bfloat16()`, `.to(torch.float32)`,
    `.type(torch.FloatTensor)`, also after `.to(device)`), an explicit
    `astype("float64")` / `dtype=np.float64` the author chose and that is not
    seen feeding a model (a noise schedule kept in float64 for its log
    precision, a timestamp column), tensors for plots and metrics
    (matplotlib, `sklearn.metrics`, functions named `plot_*`, `*_metrics`,
    `demo_*`), test files, and modules that call `gradcheck`.

    ## When it is material
    A finding is reported at warning severity when the tensor is seen feeding
    a model, a data set or a training loop, or when its literal size makes the
    float64 copy 1 MiB or more larger than float32 (`MATERIAL_EXTRA_BYTES`);
    a smaller literal array, or one whose use is not seen in the module, is
    reported at info severity (shown with `--show-info`).

    ## Fix
    Create float32 at the source (`rng.random(size, dtype=np.float32)`,
    `np.zeros(n, dtype=np.float32)`, `.astype(np.float32)`), or convert with
    `torch.as_tensor(x, dtype=torch.float32)`. Autofix (unsafe, numerics):
    `torch.tensor/as_tensor(x)` and `tf.convert_to_tensor/constant(x)` get
    `dtype=<module>.float32`; `torch.from_numpy(x)` becomes
    `torch.from_numpy(x).float()`.

    ## Estimate
    The extra bytes of the float64 copy (4 bytes an element) when the array's
    shape is literal. Otherwise, where the file runs its model in float64 (a
    float64 default or a `.double()` cast: GO401/GO402), GO401's time factor of
    the file's workload on the selected hardware, since the data is that
    model's input. Otherwise the model runs in float32 and the cost is the
    data's: 1-2x the data-transfer time (2x the bytes through host memory and
    host-to-device copies; 1x where the tensor is cast before the copy), a
    factor on part of the step that `--statistics` does not convert.
    """

    code = "GO403"
    name = "numpy-float64-into-framework"
    family = "precision"
    analyses = ("literal_sizes",)
    estimate_sources = {
        SOURCE_CODE: "any device: extra bytes from the array's literal shape",
        SOURCE_DATASHEET: "the selected `--hardware` profile: its datasheet rates in `data/hardware.toml` (the file's float64 model)",
        SOURCE_DERIVED: "any device: 2x the bytes through host memory and host-to-device copies",
    }
    fixable = True
    fix_safety = "unsafe"
    tokens = ("from_numpy", "tensor", "convert_to_tensor", "constant")
    INVALID = [
        Invalid(
            """
            import numpy as np, torch
            x = torch.from_numpy(np.random.rand(1000, 3))
            """,
            line=2,
            message="torch.from_numpy() of a float64 NumPy array (np.random.rand(1000, 3)) makes a float64 tensor",
            fixed="""
            import numpy as np, torch
            x = torch.from_numpy(np.random.rand(1000, 3)).float()
            """,
        ),
        Invalid(
            """
            import numpy as np
            import torch as T
            features = np.loadtxt("train.csv", delimiter=",")
            inputs = T.tensor(features)
            """,
            line=4,
            message='torch.tensor() of a float64 NumPy array (np.loadtxt("train.csv", delimiter=","))',
            fixed="""
            import numpy as np
            import torch as T
            features = np.loadtxt("train.csv", delimiter=",")
            inputs = T.tensor(features, dtype=T.float32)
            """,
        ),
        Invalid(
            """
            import numpy as np
            import torch

            model = torch.nn.Linear(3, 1).double()
            features = np.loadtxt("train.csv", delimiter=",")
            prediction = model(torch.from_numpy(features))
            """,
            line=6,
            message="makes a float64 tensor that feeds model(...)",
        ),
    ]
    VALID = [
        """
        import numpy as np, torch
        x = torch.from_numpy(np.random.rand(1000, 3)).float()
        """,
        """
        import numpy as np, torch
        labels = torch.from_numpy(np.arange(10))
        """,
        """
        import numpy as np, torch
        x = torch.tensor(np.random.rand(8), dtype=torch.float32)
        """,
    ]

    _CONVERTERS = frozenset(
        {
            "torch.from_numpy",
            "torch.tensor",
            "torch.as_tensor",
            "torch.asarray",
            "tensorflow.convert_to_tensor",
            "tensorflow.constant",
        }
    )

    def visit_Call(self, node: cst.Call) -> None:
        name = self.ctx.call_name(node)
        if name not in self._CONVERTERS or self.ctx.calls_gradcheck or is_test_file(self.ctx.path):
            return
        if name != "torch.from_numpy" and get_arg(node, "dtype") is not None:
            return
        data = get_arg(node, None, 0)
        if data is None:
            return
        source = float64_array_source(self.ctx, data.value)
        if source is None:
            return
        use = self._use(node)
        if use == "narrowed" or use == "plot":
            return
        numel = literal_numel(self.ctx, source) if isinstance(source, cst.Call) else None
        if use is None and is_explicit_float64(self.ctx, source):
            # `astype("float64")` chosen by the author (a noise schedule's log
            # precision, a timestamp) and not seen feeding a model: not waste.
            return
        estimate, cost = self._estimate(numel, use is not None)
        material = numel * (FLOAT64_BYTES - FLOAT32_BYTES) >= MATERIAL_EXTRA_BYTES if numel else use is not None
        short = display_name(name)
        feeds = f" that feeds {use}" if use else ""
        self.report(
            node,
            f"{short}() of a float64 NumPy array ({self.ctx.snippet(source, 40)}) makes a float64 tensor{feeds} "
            f"({cost}); create float32 data or pass dtype={'tf' if name.startswith('tensorflow.') else 'torch'}.float32",
            estimate,
            fix=self._fix(name, node),
            severity=None if material else "info",
        )

    def _estimate(self, numel: Optional[int], fed: bool) -> tuple[SavingsEstimate, str]:
        hardware = self.ctx.hardware
        if numel:
            extra = numel * (FLOAT64_BYTES - FLOAT32_BYTES)
            estimate = extra_bytes_estimate(
                extra, f"{numel} float64 elements take {FLOAT64_BYTES} bytes each instead of {FLOAT32_BYTES}", hardware
            )
            return estimate, f"{human_bytes(extra)} more than float32"
        if fed and float64_model_in_file(self.ctx):
            # The file runs its model in float64 (GO401/GO402): the data is its input.
            estimate = float64_estimate(self.ctx)
            return estimate, cost_words(estimate, hardware)
        estimate = SavingsEstimate(
            metric="time_factor",
            low=1.0,
            high=FLOAT64_BYTES_RATIO,
            unit="x data-transfer time",
            basis=(
                f"a float64 tensor moves {FLOAT64_BYTES_RATIO:g}x the bytes of float32 through host memory and "
                "host-to-device copies (memory-bound); 1x where it is cast to float32 before the copy. The model "
                "itself runs in float32 (no float64 default or cast in this file), so the cast costs a pass per batch"
            ),
            hardware=hardware.key,
            assumptions=("the array's size is not literal in the code",),
            source=SOURCE_DERIVED,
        )
        return estimate, f"{FLOAT64_BYTES_RATIO:g}x the bytes of float32 in memory and host-to-device copies"

    @staticmethod
    def _fix(name: str, node: cst.Call) -> Optional[Fix]:
        func = node.func
        if name == "torch.from_numpy" or not isinstance(func, cst.Attribute):
            return Fix(node, lambda updated: method_call(updated, "float"), safe=False, title=".float()")
        dtype = cst.Attribute(value=func.value, attr=cst.Name("float32"))
        return Fix(node, lambda updated: with_keyword(updated, "dtype", dtype), safe=False, title="dtype=float32")

"""GO512 deterministic-left-on: deterministic algorithms forced on in training code, not behind a flag."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.efficiency import uses_cuda, uses_torch
from greenops_lint.analysis.flags import under_flag
from greenops_lint.analysis.tree import is_test_file
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.savings import SOURCE_CITED

# -- estimate (`## Estimate`) --------------------------------------------------------------------------
# espnet#3041: ConvTranspose1d(256, 256, k=33, stride=15) x100 on a GPU, 1.54 s -> 3.67 s with
# cudnn.deterministic = True (2.4x); pytorch#28777: dilated Conv2d 10-80x slower (an outlier, not the range).
ESPNET_FAST_S = 1.54
ESPNET_DETERMINISTIC_S = 3.67
TIME_FACTOR_LOW = 1.0
TIME_FACTOR_HIGH = round(ESPNET_DETERMINISTIC_S / ESPNET_FAST_S, 1)

_TRAINING_TEXT = re.compile(r"\.backward\(|\.fit\(|Trainer\(|\.train\(\)|training_step")
_SETTINGS = {
    "torch.backends.cudnn.deterministic": True,
    "torch.backends.cudnn.benchmark": False,
}
_LIGHTNING_TRAINERS = frozenset({"lightning.pytorch.Trainer", "lightning.Trainer", "lightning.pytorch.trainer.Trainer"})
_TRAINING_FUNCTION = re.compile(r"^(main|train|run|fit)(_|$)|_train$|^training", re.IGNORECASE)


@dataclass
class _Setting:
    node: cst.CSTNode
    statement: Optional[cst.CSTNode]
    words: str
    function: Optional[cst.FunctionDef]


class DeterministicLeftOn(Rule):
    """Forces deterministic GPU algorithms in training code unconditionally (a reproducibility trade-off).

    ## What it does
    Flags, once per module and at info severity, training code that sets
    `torch.use_deterministic_algorithms(True)`,
    `torch.backends.cudnn.deterministic = True`,
    `torch.backends.cudnn.benchmark = False`, or Lightning's
    `Trainer(deterministic=True)` unconditionally: at module level, in
    `main()`/`train()`, or in a helper the module calls, and not under an
    `if` (a flag or config option: `if args.deterministic:`).

    ## Why is this bad
    Deterministic mode excludes the fastest cuDNN and cuBLAS algorithms and
    turns off cuDNN's autotuner; the PyTorch reproducibility notes warn that
    "deterministic operations are often slower than nondeterministic
    operations". How much depends on the layers: espnet#3041 measured a
    `ConvTranspose1d` at 1.54 s vs 3.67 s with `cudnn.deterministic = True`
    (2.4x), pytorch#28777 dilated convolutions 10-80x slower; matmul-only
    models lose little.

    It is a trade-off, not a mistake: keep it on while debugging a
    nondeterministic failure, for regression tests that compare numbers
    exactly, for a paper's reproduction runs and for CI comparisons. Put it
    behind a flag (`--deterministic`) so that the production and sweep runs
    do not pay for it. Not flagged: settings under any `if`, set from a
    variable (`cudnn.deterministic = args.deterministic`), in a helper that
    the module only calls under a flag or never calls (a library's
    `enable_full_determinism()`), test files, CPU-only code.

    ## Example
    ```python
    torch.backends.cudnn.deterministic = True  # GO512
    torch.backends.cudnn.benchmark = False
    ```

    ## Fix
    Make it an option: `if args.deterministic: torch.use_deterministic_algorithms(True)`,
    and otherwise `torch.backends.cudnn.benchmark = True` for fixed-shape
    convolutional models. No automatic fix: whether the run needs bitwise
    reproducibility is the author's call.

    ## Estimate
    Time factor of the training step: 1x (matmul-only models) to 2.4x
    (espnet#3041, a transposed convolution); dilated convolutions can be
    10-80x (pytorch#28777).

    ## When it is material
    For convolutional models (especially transposed or dilated convolutions)
    and models using scatter/index_add kernels. Always reported at info: it
    is a reproducibility choice that `check` shows with `--show-info`.
    """

    code = "GO512"
    name = "deterministic-left-on"
    family = "efficiency"
    estimate_sources = {
        SOURCE_CITED: "GPU convolutions in espnet#3041 and pytorch#28777 (GPUs not named)",
    }
    severity = "info"
    tokens = ("deterministic", "benchmark")
    INVALID = [
        Invalid(
            """
            import torch
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
            model = Net().cuda()
            for x, y in loader:
                criterion(model(x.cuda()), y.cuda()).backward()
                optimizer.step()
            """,
            line=2,
            message="torch.backends.cudnn.deterministic = True, torch.backends.cudnn.benchmark = False",
        ),
        Invalid(
            """
            import torch

            def set_seed(seed):
                torch.manual_seed(seed)
                torch.use_deterministic_algorithms(True)

            def main():
                set_seed(0)
                model = Net().cuda()
                for x, y in loader:
                    criterion(model(x.cuda()), y.cuda()).backward()
                    optimizer.step()

            if __name__ == "__main__":
                main()
            """,
            line=5,
            message="torch.use_deterministic_algorithms(True)",
        ),
    ]
    VALID = [
        # Behind a flag.
        """
        import torch
        if args.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        model = Net().cuda()
        for x, y in loader:
            criterion(model(x.cuda()), y.cuda()).backward()
            optimizer.step()
        """,
        # From a config option.
        """
        import torch
        torch.backends.cudnn.deterministic = cfg.deterministic
        torch.backends.cudnn.benchmark = not cfg.deterministic
        model = Net().cuda()
        trainer.fit(model)
        """,
        # A helper called only under a flag.
        """
        import torch

        def make_deterministic():
            torch.backends.cudnn.deterministic = True

        if args.seed is not None:
            make_deterministic()
        model = Net().cuda()
        trainer.fit(model)
        """,
        # A library helper, never called here.
        """
        import torch

        def enable_full_determinism():
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic = True
        """,
        # The fast setting.
        """
        import torch
        torch.backends.cudnn.benchmark = True
        model = Net().cuda()
        trainer.fit(model)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.settings: list[_Setting] = []
        self.calls: dict[str, list[bool]] = {}  # function name -> [under a flag] per call site

    def _add(self, node: cst.CSTNode, words: str) -> None:
        if under_flag(self.ctx):
            return
        self.settings.append(_Setting(node, self.ctx.enclosing_statement(), words, self._function()))

    def _function(self) -> Optional[cst.FunctionDef]:
        """The outermost function around the node being visited."""
        for node in self.ctx.stack[:-1]:
            if isinstance(node, cst.FunctionDef):
                return node
        return None

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Name):
            self.calls.setdefault(func.value, []).append(under_flag(self.ctx))
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
            self.calls.setdefault(func.attr.value, []).append(under_flag(self.ctx))
        qualified = self.ctx.call_name(node)
        if qualified == "torch.use_deterministic_algorithms":
            mode = get_arg(node, "mode", 0)
            if mode is not None and literal_value(mode.value) is True:
                self._add(node, "torch.use_deterministic_algorithms(True)")
        elif qualified in _LIGHTNING_TRAINERS:
            arg = get_arg(node, "deterministic")
            if arg is not None and literal_value(arg.value) is True:
                self._add(arg, "Trainer(deterministic=True)")

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            qualified = self.ctx.qualified_name(target.target)
            if qualified in _SETTINGS and literal_value(node.value) is _SETTINGS[qualified]:
                self._add(node, f"{qualified} = {_SETTINGS[qualified]}")

    def leave_Module(self, node: cst.Module) -> None:
        ctx = self.ctx
        if not self.settings or is_test_file(ctx.path) or not (uses_torch(ctx) and uses_cuda(ctx)):
            return
        if not _TRAINING_TEXT.search(ctx.text):
            return
        reported = [s for s in self.settings if self._runs_unconditionally(s.function)]
        if not reported:
            return
        first = reported[0]
        words = ", ".join(dict.fromkeys(s.words for s in reported))
        where = f"in {first.function.name.value}()" if first.function is not None else "at module level"
        self.report(
            first.node,
            f"{words} forces deterministic GPU algorithms {where} on every run of this training code, not behind a flag; "
            "deterministic kernels and a disabled cuDNN autotuner are often slower: make it an option "
            "(if args.deterministic:) unless every run must be bitwise reproducible",
            SavingsEstimate(
                metric="time_factor",
                low=TIME_FACTOR_LOW,
                high=TIME_FACTOR_HIGH,
                unit="x",
                basis=f"PyTorch reproducibility notes: deterministic operations are often slower; espnet#3041: "
                f"ConvTranspose1d {ESPNET_FAST_S} s vs {ESPNET_DETERMINISTIC_S} s deterministic ({TIME_FACTOR_HIGH:g}x); "
                "pytorch#28777: dilated convolutions 10-80x",
                hardware=ctx.hardware.key,
                assumptions=("a convolutional or scatter-heavy model; matmul-only models lose little",),
                source=SOURCE_CITED,
            ),
            statement=first.statement,
        )

    def _runs_unconditionally(self, function: Optional[cst.FunctionDef]) -> bool:
        if function is None:
            return True
        name = function.name.value
        sites = self.calls.get(name)
        if sites:
            return not all(sites)
        return bool(_TRAINING_FUNCTION.search(name)) or _trains(self.ctx.module.code_for_node(function))


def _trains(code: str) -> bool:
    return ".backward(" in code or ".fit(" in code

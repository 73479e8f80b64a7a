"""GO513: `zero_grad(set_to_none=False)` keeps and zero-fills every gradient between steps."""

from __future__ import annotations

import re

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.tree import is_test_file
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.savings import SOURCE_CITED

# ## Estimate: measured by users. Time: Lightning #6534, 4096 images, batch 32: 41.42 s -> 41.05 s
# (0.9%); nnUNet PR #1630: "doesn't do much for run time"; on a V100 no gain (bonlime/pytorch-tools#94).
# Memory: nnUNet Task03_Liver 7800 -> 7500 MB of GPU memory.
LIGHTNING_BEFORE_S = 41.42
LIGHTNING_AFTER_S = 41.05
TIME_FACTOR_LOW = 1.0
TIME_FACTOR_HIGH = round(LIGHTNING_BEFORE_S / LIGHTNING_AFTER_S, 3)  # 1.009x
NNUNET_BEFORE_MB = 7800
NNUNET_AFTER_MB = 7500

# A pretrained model's gradients are as large as its weights (hundreds of MB and up):
# holding them through the next forward pass is then material GPU memory.
_LARGE_MODEL_TEXT = re.compile(r"\.from_pretrained\(|timm\.create_model\(|torch\.hub\.load\(")
# Code that reads `.grad` may expect a zero tensor after `zero_grad()` rather than None.
_READS_GRAD = re.compile(r"\.grad\b(?!_)")


class ZeroGradKeepsTensors(Rule):
    """Keeps every gradient allocated and zero-fills it on each step (`set_to_none=False`).

    ## What it does
    Flags `optimizer.zero_grad(set_to_none=False)` and
    `model.zero_grad(set_to_none=False)` (also positional, `zero_grad(False)`)
    (the keyword is PyTorch's). PyTorch's default has been `set_to_none=True` since 2.0,
    so only an explicit `False` is flagged (TorchFix TOR402 checks the same).

    Not flagged: `zero_grad()`, `set_to_none=True`, a flag
    (`set_to_none=args.x`), test files.

    ## Why is this bad
    With `set_to_none=False` every gradient tensor stays allocated between
    steps and is overwritten with zeros (one memset per parameter tensor),
    and the next backward accumulates into it (`+=`) instead of writing it.
    The PyTorch tuning guide recommends setting gradients to None; it
    frees the gradients' memory during the next forward pass, when
    activations need it.

    ## Example
    ```python
    optimizer.zero_grad(set_to_none=False)
    ```

    ## Fix
    `optimizer.zero_grad()` (autofix: drops the argument). Safe unless the
    code reads `p.grad` between `zero_grad()` and the next backward and
    expects zeros (it then gets None): where the module reads `.grad`, the
    fix needs `--unsafe-fixes`.

    ## Estimate
    Time factor: 1.0x to 1.009x (users measured 41.42 s -> 41.05 s,
    Lightning #6534; "doesn't do much for run time", nnUNet #1630). Memory:
    up to the gradients' size (one gradient per parameter) during the
    forward pass; nnUNet measured 7800 -> 7500 MB.

    ## When it is material
    The time saving is below 1%: the finding is info (shown with
    `--show-info`) unless the module loads a pretrained model
    (`from_pretrained`, `timm.create_model`, `torch.hub.load`), where the
    gradients held through the forward pass are as large as the weights
    (hundreds of MB to GBs of GPU memory): then it is a warning.
    """

    code = "GO513"
    name = "zero-grad-keeps-tensors"
    family = "efficiency"
    estimate_sources = {
        SOURCE_CITED: "Lightning #6534 and nnUNet #1630 (GPU training runs)",
    }
    fixable = True
    fix_safety = "safe"
    tokens = ("set_to_none", "zero_grad(False")
    INVALID = [
        Invalid(
            """
            from transformers import AutoModelForCausalLM
            model = AutoModelForCausalLM.from_pretrained("gpt2").cuda()
            for batch in loader:
                model(**batch).loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=False)
            """,
            line=6,
            message="keeps every gradient allocated",
            fixed="""
            from transformers import AutoModelForCausalLM
            model = AutoModelForCausalLM.from_pretrained("gpt2").cuda()
            for batch in loader:
                model(**batch).loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            """,
        ),
        Invalid(
            """
            import torch as T
            net = T.nn.Linear(10, 1)
            net.zero_grad(False)
            """,
            line=3,
        ),
    ]
    VALID = [
        """
        import torch
        optimizer.zero_grad()
        optimizer.zero_grad(set_to_none=True)
        model.zero_grad(set_to_none=args.keep_grads)
        """,
        """
        def zero_grad(set_to_none=False):  # a definition, not a call
            pass
        """,
    ]

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "zero_grad"):
            return
        arg = get_arg(node, "set_to_none", 0)
        if arg is None or literal_value(arg.value) is not False:
            return
        ctx = self.ctx
        if is_test_file(ctx.path):
            return
        material = bool(_LARGE_MODEL_TEXT.search(ctx.text))
        safe = not _READS_GRAD.search(ctx.text)
        self.report(
            node,
            f"{ctx.snippet(node)} keeps every gradient allocated and zero-fills it on each step; call zero_grad() "
            "(set_to_none=True, the default since PyTorch 2.0) to free them until the next backward",
            SavingsEstimate(
                metric="time_factor",
                low=TIME_FACTOR_LOW,
                high=TIME_FACTOR_HIGH,
                unit="x training time",
                basis=f"Lightning #6534: {LIGHTNING_BEFORE_S} s -> {LIGHTNING_AFTER_S} s; memory: nnUNet #1630 "
                f"{NNUNET_BEFORE_MB} -> {NNUNET_AFTER_MB} MB of GPU memory",
                hardware=ctx.hardware.key,
                assumptions=(
                    "the memory saved is up to the size of the gradients (one per parameter) during the forward pass",
                ),
                source=SOURCE_CITED,
            ),
            fix=Fix(node, lambda updated: updated.with_changes(args=()), safe=safe, title="zero_grad()"),
            severity=None if material else "info",
        )

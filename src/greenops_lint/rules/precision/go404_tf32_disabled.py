"""GO404 tf32-disabled: float32 CUDA training in PyTorch with TF32 off for matmuls."""

from __future__ import annotations

import re

import libcst as cst

from greenops_lint.analysis.calls import environ_assignment, get_arg, literal_value
from greenops_lint.analysis.efficiency import TrainingLoops, uses_cuda, uses_torch
from greenops_lint.analysis.flags import under_flag
from greenops_lint.analysis.tree import is_test_file
from greenops_lint.rule import Invalid
from greenops_lint.rules.efficiency._shared import LoopBoundRule
from greenops_lint.rules.precision._tf32 import (
    BOTH,
    CUDNN,
    MATMUL,
    TF32_SETTINGS,
    Switch,
    cudnn_tf32_estimate,
    highest_precision_switch,
    insert_matmul_precision_fix,
    matmul_estimate,
    setting_switch,
)
from greenops_lint.savings import SOURCE_CITED, SOURCE_DATASHEET, SOURCE_DERIVED

# -- estimate (`## Estimate`): the figures, the hardware table's TF32:FP32 ratio and the materiality rules live in
# rules/precision/_tf32.py (END_TO_END_HIGH = 2.25x, t5-base on A100, transformers#15026; 1x without TF32;
# a cuDNN switch: up to the TF32:FP32 peak ratio for a convolutional or recurrent model, 1x for the others),
# with the switches and what each governs (TF32_SETTINGS).
# Anything that already runs the matmuls below full FP32 (autocast, bf16/fp16, Lightning
# `precision=`, HF `tf32=`/`bf16=`/`fp16=`, DeepSpeed) or chooses precision elsewhere.
_COVERED_TEXT = re.compile(
    r"autocast|GradScaler|torch\.amp|cuda\.amp|mixed_precision|\.half\(\)|bfloat16|float16|\bprecision\s*=|"
    r"\bfp16\b|\bbf16\b|\btf32\b|deepspeed|Accelerator\(|LightningCLI|Fabric\("
)
_MAIN_GUARD = re.compile(r"__name__\s*==\s*[\"']__main__[\"']")
_FLOAT64_TEXT = re.compile(r"set_default_dtype\(\s*torch\.(float64|double)|\.double\(\)")


class TF32Disabled(LoopBoundRule):
    """Trains in float32 on a CUDA GPU with TF32 tensor cores off for matmuls.

    ## What it does
    Flags, once per script, the training step loop of a PyTorch script that
    uses CUDA when nothing in the module enables TensorFloat-32 for matmuls
    (`torch.set_float32_matmul_precision("high")`,
    `torch.backends.cuda.matmul.allow_tf32 = True`,
    `torch.backends.fp32_precision = "tf32"`) or runs them in lower precision
    anyway (`torch.autocast`/AMP, `.half()`/`bfloat16`, Lightning
    `precision=`, Hugging Face `tf32=`/`bf16=`/`fp16=`, accelerate's
    `Accelerator`, DeepSpeed). Where the script switches TF32 off for
    matmuls itself (`torch.backends.cuda.matmul.allow_tf32 = False`,
    `set_float32_matmul_precision("highest")`, `NVIDIA_TF32_OVERRIDE=0`,
    `torch.backends.fp32_precision = "ieee"`), the finding is at that
    statement instead. A switch that takes only cuDNN's convolutions and
    RNNs off TF32 (`torch.backends.cudnn.allow_tf32 = False`,
    `torch.backends.cudnn.conv.fp32_precision = "ieee"`) gets a finding of
    its own, with its own estimate: it does not touch the matmuls.

    ## Why is this bad
    Since PyTorch 1.12, float32 matmuls on Ampere and newer GPUs run on the
    FP32 units unless TF32 is allowed (convolutions use TF32 by default). TF32
    keeps float32's range with a 10-bit mantissa and runs on the tensor cores:
    on an A100, 156 TFLOPS against 19.5 TFLOPS FP32 peak (8x on the matmuls).
    Hugging Face measured t5-base fine-tuning on an A100 at 93.7 samples/s in
    fp32 and 210.5 with TF32 (2.25x, transformers#15026). The PyTorch tuning
    guide and Hugging Face's single-GPU guide recommend it for training.

    Not flagged: modules that enable TF32, autocast or lower precision in any
    way (see above) or set the TF32 switch from a variable (a flag or config
    option chooses); float64 models (`.double()`,
    `set_default_dtype(torch.float64)`); CPU-only code; loops without an
    optimizer step; test files; a switch-off without a training loop in the
    module (a library helper, e.g. for determinism: GO512); and library
    modules, whose training loop sits in a function or method of a module
    without a `__main__` guard (stable-baselines3's `PPO.train()`, a
    `Trainer.fit()`): the matmul precision is a process-wide setting that
    belongs to the script that runs them, as Lightning does (it warns, it
    does not switch TF32 on).

    ## Example
    ```python
    model = Net().cuda()
    for x, y in loader:  # GO404
        loss = criterion(model(x.cuda()), y.cuda())
        loss.backward()
        optimizer.step()
    ```

    ## Fix
    Call `torch.set_float32_matmul_precision("high")` once before training
    (or wrap forward and loss in `torch.autocast`, GO507). The automatic fix
    inserts that call before the loop, or turns the switch-off on; it is
    unsafe: matmul results change in the 4th significant digit, which
    training tolerates but a numerically sensitive computation may not.

    ## Estimate
    Matmuls: time factor of the training step, by GPU (`--hardware`): 1x up
    to min(2.25x, the GPU's TF32:FP32 peak ratio) on Ampere and newer. The
    2.25x is the one end-to-end measurement, t5-base fine-tuning on an A100
    (transformers#15026); on H100 and H200 it is the same A100 figure, not
    measured there, and messages say "up to 2.25x (t5-base on A100)". A10
    and L4 are capped at their 2x peak ratio; 1x on V100, T4 and CPUs (no
    TF32 units); 1x to 2.25x on an unknown GPU.

    A cuDNN switch (`torch.backends.cudnn.allow_tf32 = False`): 1x, at info
    severity, for a model without convolutions or LSTM/GRU/RNN layers in the
    module (the switch changes nothing there). For a convolutional or
    recurrent model, 1x up to the GPU's TF32:FP32 peak ratio (A100 8x, H100
    SXM 7.4x, from the hardware table's datasheet rates): an upper bound on
    the convolutions themselves, not an end-to-end measurement, which none
    of the sources cites for a convolutional model; 1x on GPUs without TF32
    units. A global switch (`torch.backends.fp32_precision = "ieee"`,
    `NVIDIA_TF32_OVERRIDE=0`) on a convolutional or recurrent model gets the
    cuDNN estimate, on other models the matmul one.

    ## When it is material
    When the GPU has TF32 tensor cores faster than its FP32 units and the
    model's time goes to matmuls (linear and attention layers). A finding is
    info on GPUs without TF32 (V100, T4, RTX cards whose TF32 rate equals
    FP32), for convolutional and recurrent models without matmul-heavy
    layers (cuDNN already uses TF32 for convolutions and LSTM/GRU/RNN cells,
    under `torch.backends.cudnn.allow_tf32`, True by default; a `Linear`
    classifier head or an embedding lookup does not count), for tiny models (every `Linear`/recurrent layer of the
    module built from literal sizes with at most 65,536 weights, every
    convolution with at most 64 output channels, and no pretrained or zoo
    model: an MNIST convnet, a 16-wide text classifier) and for small
    batches (the smallest literal `batch_size`, the training one, at most
    32) of a model without attention or recurrent layers: both steps are
    bound by kernel launches (an MNIST MLP at batch 32 gains ~1x).

    A cuDNN switch-off is material for a convolutional or recurrent model
    on a GPU with TF32 units, under the same tiny-model and small-batch
    rules; for a model without convolutions or RNN layers it changes nothing
    and is info.
    """

    code = "GO404"
    name = "tf32-disabled"
    family = "precision"
    estimate_sources = {
        SOURCE_CITED: "matmuls: 2.25x measured for t5-base fine-tuning on an A100 (transformers#15026), not on H100/H200; capped by the selected profile's TF32:FP32 datasheet ratio (1x without TF32 units)",
        SOURCE_DATASHEET: "a cuDNN switch on a convolutional or recurrent model: the selected profile's TF32:FP32 peak ratio, an upper bound (no end-to-end measurement)",
        SOURCE_DERIVED: "a cuDNN switch on a model without convolutions or RNN layers: 1x on any hardware",
    }
    fixable = True
    fix_safety = "unsafe"
    track_call_sites = False
    analyses = LoopBoundRule.analyses + ("literal_sizes",)
    tokens = ("backward", "allow_tf32", "set_float32_matmul_precision", "fp32_precision", "NVIDIA_TF32_OVERRIDE")
    INVALID = [
        Invalid(
            """
            import torch
            model = Net().cuda()
            for x, y in train_loader:
                loss = criterion(model(x.cuda()), y.cuda())
                loss.backward()
                optimizer.step()
            """,
            line=3,
            message="this CUDA training loop runs its float32 matmuls without TF32",
            fixed="""
            import torch
            model = Net().cuda()
            torch.set_float32_matmul_precision("high")
            for x, y in train_loader:
                loss = criterion(model(x.cuda()), y.cuda())
                loss.backward()
                optimizer.step()
            """,
        ),
        Invalid(
            """
            import torch
            torch.backends.cuda.matmul.allow_tf32 = False
            model = nn.Linear(512, 10).cuda()
            for x, y in train_loader:
                loss = criterion(model(x.cuda()), y.cuda())
                loss.backward()
                optimizer.step()
            """,
            line=2,
            message="switches TF32 off for the float32 matmuls",
            fixed="""
            import torch
            torch.backends.cuda.matmul.allow_tf32 = True
            model = nn.Linear(512, 10).cuda()
            for x, y in train_loader:
                loss = criterion(model(x.cuda()), y.cuda())
                loss.backward()
                optimizer.step()
            """,
        ),
        Invalid(
            """
            import torch
            from torch import nn
            torch.set_float32_matmul_precision("high")
            torch.backends.cudnn.allow_tf32 = False
            model = nn.Sequential(nn.Conv2d(3, 256, 3), nn.ReLU(), nn.Conv2d(256, 256, 3)).cuda()
            for x, y in train_loader:
                loss = criterion(model(x.cuda()), y.cuda())
                loss.backward()
                optimizer.step()
            """,
            line=4,
            message="switches TF32 off for cuDNN convolutions/RNNs",
        ),
    ]
    VALID = [
        # TF32 on.
        """
        import torch
        torch.set_float32_matmul_precision("high")
        model = Net().cuda()
        for x, y in train_loader:
            loss = criterion(model(x.cuda()), y.cuda())
            loss.backward()
            optimizer.step()
        """,
        # Autocast covers the matmuls.
        """
        import torch
        model = Net().cuda()
        for x, y in train_loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = criterion(model(x.cuda()), y.cuda())
            loss.backward()
            optimizer.step()
        """,
        # A flag chooses.
        """
        import torch
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        model = Net().cuda()
        for x, y in train_loader:
            loss = criterion(model(x.cuda()), y.cuda())
            loss.backward()
            optimizer.step()
        """,
        # Lightning's precision= and HF's Trainer(bf16=True) cover it.
        """
        import torch
        import lightning as L
        trainer = L.Trainer(accelerator="cuda", precision="bf16-mixed")
        trainer.fit(model, loader)
        """,
        # CPU only.
        """
        import torch
        for x, y in train_loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        """,
        # A determinism helper of a library, no training loop in the module.
        """
        import torch
        def enable_full_determinism():
            torch.use_deterministic_algorithms(True)
            torch.backends.cuda.matmul.allow_tf32 = False
        """,
        # A float64 model: TF32 does not apply.
        """
        import torch
        model = Net().double().cuda()
        for x, y in train_loader:
            loss = criterion(model(x.cuda()), y.cuda())
            loss.backward()
            optimizer.step()
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.enabled: set[str] = set()  # scopes with TF32 switched on, or set from a variable
        self.switched_off: list[Switch] = []

    # -- what the module does with TF32 ---------------------------------------------------
    def check_call(self, node: cst.Call) -> None:
        if self.ctx.call_name(node) != "torch.set_float32_matmul_precision":
            return
        if under_flag(self.ctx):
            self.enabled.add(MATMUL)  # a flag or config option chooses
            return
        arg = get_arg(node, "precision", 0)
        value = literal_value(arg.value) if arg is not None else None
        if value == "highest" and isinstance(arg.value, cst.SimpleString):
            self.switched_off.append(highest_precision_switch(node, arg.value, self.ctx.enclosing_statement()))
        else:
            self.enabled.add(MATMUL)  # "high", "medium", or chosen by a variable

    def visit_Assign(self, node: cst.Assign) -> None:
        env = environ_assignment(self.ctx, node)
        if (env is not None or self._tf32_scope(node)) and under_flag(self.ctx):
            self.enabled |= self._tf32_scope(node) if env is None else BOTH  # a flag or config option chooses
            return
        if env is not None:
            name, value = env
            if name == "NVIDIA_TF32_OVERRIDE":
                if literal_value(value) in ("0", 0):
                    self.switched_off.append(
                        Switch(node, self.ctx.enclosing_statement(), 'NVIDIA_TF32_OVERRIDE="0"', None)
                    )
                else:
                    self.enabled |= BOTH
            return
        for target in node.targets:
            qualified = self.ctx.qualified_name(target.target)
            if qualified not in TF32_SETTINGS:
                continue
            scope = TF32_SETTINGS[qualified]
            value = literal_value(node.value)
            if value is False or value == "ieee":
                self.switched_off.append(setting_switch(node, qualified, value, self.ctx.enclosing_statement()))
            else:
                self.enabled |= scope  # True, "tf32", or a variable: on, or chosen by a flag

    def _tf32_scope(self, node: cst.Assign) -> frozenset:
        """What the TF32 switches this assignment sets govern (empty: none)."""
        scopes = [TF32_SETTINGS.get(self.ctx.qualified_name(t.target) or "") for t in node.targets]
        return frozenset().union(*(scope for scope in scopes if scope))

    # -- decision ---------------------------------------------------------------------------
    def leave_Module(self, node: cst.Module) -> None:
        ctx = self.ctx
        if MATMUL in self.enabled and CUDNN in self.enabled or is_test_file(ctx.path):
            return
        if not (uses_torch(ctx) and uses_cuda(ctx)) or _FLOAT64_TEXT.search(ctx.text):
            return
        if _COVERED_TEXT.search(ctx.text):
            return
        loop = self._training_loop()
        if loop is None:
            return  # no training here: a library helper or a test of numerics
        if not (_MAIN_GUARD.search(ctx.text) or loop.frame is None or ctx.path.endswith(".ipynb")):
            return  # a library's training loop: the precision is its user's process-wide choice
        cudnn_switch = next((s for s in self.switched_off if s.scope == {CUDNN}), None)
        if cudnn_switch is not None and CUDNN not in self.enabled:
            self._report_cudnn_switch(cudnn_switch)
        if MATMUL in self.enabled:
            return
        matmul_switch = next((s for s in self.switched_off if MATMUL in s.scope), None)
        cudnn_off = any(CUDNN in s.scope for s in self.switched_off) and CUDNN not in self.enabled
        estimate, material, why = matmul_estimate(ctx, matmul_switch, cudnn_off)
        severity = None if material else "info"
        if matmul_switch is not None:
            what = "the float32 matmuls" + (" and cuDNN convolutions/RNNs" if matmul_switch.scope == BOTH else "")
            self.report(
                matmul_switch.node,
                f"{matmul_switch.words} switches TF32 off for {what} of this CUDA training script "
                f"(runs them on the FP32 units{why}); remove it, or allow TF32 unless the run needs full FP32 numerics",
                estimate,
                statement=matmul_switch.statement,
                fix=matmul_switch.fix,
                severity=severity,
            )
            return
        self.report(
            loop.node,
            "this CUDA training loop runs its float32 matmuls without TF32 (off for matmuls by default since "
            f"PyTorch 1.12; no autocast or lower precision in the module{why}); call "
            'torch.set_float32_matmul_precision("high") once before training',
            estimate,
            statement=loop.node,
            fix=insert_matmul_precision_fix(self.ctx.text, loop.node),
            severity=severity,
        )

    def _report_cudnn_switch(self, switch: Switch) -> None:
        estimate, material, why = cudnn_tf32_estimate(self.ctx)
        self.report(
            switch.node,
            f"{switch.words} switches TF32 off for cuDNN convolutions/RNNs of this CUDA training script "
            f"(runs them on the FP32 units{why}); remove it, or allow TF32 unless the run needs full FP32 numerics",
            estimate,
            statement=switch.statement,
            fix=switch.fix,
            severity=None if material else "info",
        )

    def _training_loop(self):
        training = TrainingLoops(self.ctx.loops, self.train_frames)
        return next((loop for loop, _code in training.optimizer_loops(self.ctx.module)), None)

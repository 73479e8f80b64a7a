"""GO507: training on a CUDA GPU in full float32 precision."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.ast_index import is_tiny_model
from greenops_lint.analysis.calls import has_star_kwargs, literal_value
from greenops_lint.analysis.classes import is_model_constructor
from greenops_lint.analysis.dtypes import is_float64_dtype
from greenops_lint.analysis.efficiency import TrainingLoops, is_model_callee, uses_cuda, uses_torch
from greenops_lint.analysis.tree import is_test_file, last_part
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid
from greenops_lint.rules.efficiency._shared import RL_MODULE_IMPORT, LoopBoundRule
from greenops_lint.savings import SOURCE_CITED

# ## Estimate: the time factor of training, 1x up to the PyTorch tuning guide's "up to 3x" on Volta and newer;
# Hugging Face's example: bert-large fine-tuning in seconds, float32 against fp16=True.
TIME_FACTOR_LOW = 1.0
TIME_FACTOR_HIGH = 3.0
HF_FP32_SECONDS = 57.8
HF_FP16_SECONDS = 27.5

_MIXED_PRECISION_TEXT = re.compile(
    r"autocast|GradScaler|torch\.amp|cuda\.amp|mixed_precision|\.half\(\)|bfloat16|float16|\bprecision\s*=|"
    r"\bfp16\b|\bbf16\b|deepspeed|set_float32_matmul_precision\(\s*[\"']medium"
)
_HF_ARGUMENTS = frozenset(
    {
        "transformers.TrainingArguments",
        "transformers.Seq2SeqTrainingArguments",
        "transformers.training_args.TrainingArguments",
        "trl.SFTConfig",
        "trl.DPOConfig",
        "trl.GRPOConfig",
        "trl.RewardConfig",
        "trl.ORPOConfig",
        "trl.KTOConfig",
    }
)
# A run too short for mixed precision to matter: a smoke test or a learning-rate search.
SHORT_RUN_BATCHES = 50  # `limit_train_batches` at most this many batches (or this share, as a fraction <= 0.1)
SHORT_RUN_EPOCHS = 2  # `max_epochs` at most this
SHORT_RUN_STEPS = 100  # `max_steps` at most this
# RL policy and value networks: small MLPs whose update is bound by the environment, not by matrix math.
_RL_NAMES = re.compile(r"\b(policy|actor|critic|q_net|qf\d?|value_net|rollout_buffer|replay_buffer)\b")
_LIGHTNING_TRAINERS = frozenset({"lightning.pytorch.Trainer", "lightning.Trainer", "lightning.pytorch.trainer.Trainer"})


class NoMixedPrecision(LoopBoundRule):
    """Trains on a CUDA GPU in full float32 precision.

    ## What it does
    Flags the training step loop of a PyTorch module that uses CUDA when
    nothing in the module enables mixed precision (`torch.autocast`,
    `torch.cuda.amp`/`torch.amp`, `GradScaler`, accelerate's
    `mixed_precision`, `.half()`/`bfloat16`, Lightning `precision=`,
    DeepSpeed); Hugging Face `TrainingArguments` (and `Seq2SeqTrainingArguments`,
    TRL configs) without `bf16=`/`fp16=`; and a Lightning `Trainer(...)`
    without `precision=`. Off by default (info): whether it pays depends on the
    GPU and the model size, which only the probe can tell.

    ## Why is this bad
    Tensor cores run bf16/fp16 matrix math at several times the float32 rate
    and half the bytes move through memory. The PyTorch tuning guide reports
    "up to 3x overall speedup on Volta and newer GPU architectures"; the
    Hugging Face docs measured bert-large fine-tuning at 57.8 s in float32 and
    27.5 s with `fp16=True` (2.1x). Small models and small batches gain little.

    Not flagged: modules that mention any mixed-precision API or make a model
    float64 on purpose (`model.double()`, `torch.set_default_dtype(torch.float64)`:
    numerically sensitive code), loops driven by
    accelerate's `Accelerator()` or `LightningCLI` (precision is set on the
    command line or by `accelerate config`), CPU-only code,
    `TrainingArguments(..., use_cpu=True)`/`no_cuda=True`, `deepspeed=`
    configs, calls with `**kwargs`, test files, and runs where the saving is
    immaterial: a Trainer built for a learning-rate finder (`Tuner(t).lr_find`)
    or for a short run (`fast_dev_run`, `limit_train_batches` of at most
    50 batches, `max_epochs` of at most 2, `max_steps` of at most 100), and
    reinforcement-learning policy updates (`policy`, `actor`, `critic`,
    `rollout_buffer`, or any training in a module that imports `gym`,
    `gymnasium`, `stable_baselines3` and the like at its top: small MLPs whose step
    waits on the environment), and tiny models (every `Linear`/recurrent
    layer of the module built from literal sizes with at most 65,536
    weights, every convolution with at most 64 output channels, no
    pretrained or zoo model: an MNIST convnet), whose step is bound by
    kernel launches.

    Off by default: on the 28-wheel real-code corpus most remaining findings
    are library trainers for arbitrary models and examples with small models,
    where the gain depends on a model size the code does not show.

    ## Fix
    Wrap forward and loss in `with torch.autocast("cuda", dtype=torch.bfloat16):`
    (Ampere and newer); on V100/T4 use `float16` with `torch.amp.GradScaler`.
    `TrainingArguments(bf16=True)`; Lightning `Trainer(precision="bf16-mixed")`.

    ## Estimate
    Time factor of training: 1x to 3x (PyTorch tuning guide: up to 3x;
    Hugging Face example: 2.1x); the probe measures it on your GPU.
    """

    code = "GO507"
    name = "no-mixed-precision"
    estimate_sources = {
        SOURCE_CITED: "Volta and newer GPUs (PyTorch tuning guide; bert-large in Hugging Face's docs)",
    }
    severity = "info"
    default_enabled = False
    analyses = LoopBoundRule.analyses + ("literal_sizes",)
    tokens = ("backward", "TrainingArguments", "Trainer", "Config")
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
            message="this CUDA training loop runs in float32",
        ),
        Invalid(
            """
            from transformers import TrainingArguments
            args = TrainingArguments(output_dir="out", per_device_train_batch_size=16)
            """,
            line=2,
            message="TrainingArguments without bf16=/fp16= trains in float32",
        ),
    ]
    VALID = [
        """
        import torch
        model = Net().cuda()
        for x, y in train_loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = criterion(model(x.cuda()), y.cuda())
            loss.backward()
            optimizer.step()
        """,
        """
        from transformers import TrainingArguments
        args = TrainingArguments(output_dir="out", bf16=True)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.float64_model = False
        self.test_file = is_test_file(ctx.path)
        self.trainer_calls: list[tuple[cst.Call, str, Optional[cst.CSTNode]]] = []

    def check_call(self, node: cst.Call) -> None:
        if self.test_file:
            return
        func = node.func
        if type(func) is cst.Attribute and func.attr.value == "double" and not node.args:
            receiver = func.value
            if is_model_callee(self.ctx, receiver) or (
                isinstance(receiver, cst.Call)
                and is_model_constructor(self.ctx.call_name(receiver), receiver.func, self.ctx.model_classes)
            ):
                self.float64_model = True  # a float64 model on purpose: not a bf16 candidate
            return
        qualified = self.ctx.call_name(node)
        if qualified == "torch.set_default_dtype" and node.args and is_float64_dtype(self.ctx, node.args[0].value):
            self.float64_model = True
            return
        if qualified in _HF_ARGUMENTS:
            keywords = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
            if has_star_kwargs(node) or {"bf16", "fp16", "deepspeed"} & set(keywords):
                return
            if any(literal_value(keywords[k]) is not False for k in ("use_cpu", "no_cuda") if k in keywords):
                return
            message = (
                f"{last_part(qualified)} without bf16=/fp16= trains in float32; "
                "pass bf16=True (Ampere and newer) or fp16=True (V100/T4)"
            )
            self.trainer_calls.append((node, message, self.ctx.enclosing_statement()))
        elif qualified in _LIGHTNING_TRAINERS:
            keywords = {a.keyword.value: a.value for a in node.args if a.keyword is not None}
            if has_star_kwargs(node) or "precision" in keywords or _short_run(keywords):
                return
            if self._learning_rate_finder():
                return
            accelerator = literal_value(keywords["accelerator"]) if "accelerator" in keywords else "auto"
            if accelerator in ("cpu", "tpu"):
                return
            message = (
                "Lightning Trainer without precision= trains in float32 on the GPU; pass "
                'precision="bf16-mixed" (Ampere and newer) or "16-mixed"'
            )
            self.trainer_calls.append((node, message, self.ctx.enclosing_statement()))

    def leave_Module(self, node: cst.Module) -> None:
        ctx = self.ctx
        if self.float64_model or self.test_file:
            return
        if RL_MODULE_IMPORT.search(ctx.text) or is_tiny_model(ctx.analysis("literal_sizes"), ctx.text):
            return  # small policies waiting on the environment, or a launch-bound tiny model: AMP gains ~1x
        for call, message, statement in self.trainer_calls:
            self._report(call, message, statement)
        if not (uses_torch(ctx) and uses_cuda(ctx)) or _MIXED_PRECISION_TEXT.search(ctx.text):
            return
        if "Accelerator(" in ctx.text or "LightningCLI" in ctx.text:
            return  # precision comes from `accelerate config` / the command line
        training = TrainingLoops(ctx.loops, self.train_frames)
        for loop, code in training.optimizer_loops(ctx.module):
            if _RL_NAMES.search(code):
                continue  # an RL policy update: a small MLP, bound by the environment
            self._report(
                loop.node,
                "this CUDA training loop runs in float32 (no autocast/AMP anywhere in the module); wrap forward and "
                'loss in torch.autocast("cuda", dtype=torch.bfloat16) (float16 + GradScaler on V100/T4)',
                loop.node,
            )
            return  # one finding per module

    def _learning_rate_finder(self) -> bool:
        """`lr_trainer = pl.Trainer(...)` then `Tuner(lr_trainer).lr_find(...)`:
        a short search run, not the training."""
        parent = self.ctx.parent()
        if type(parent) is not cst.Assign or type(parent.targets[0].target) is not cst.Name:
            return False
        name = parent.targets[0].target.value
        return bool(re.search(rf"Tuner\(\s*{re.escape(name)}\b|\b{re.escape(name)}\.tuner\b", self.ctx.text))

    def _report(self, node: cst.CSTNode, message: str, statement: Optional[cst.CSTNode]) -> None:
        self.report(
            node,
            message,
            SavingsEstimate(
                metric="time_factor",
                low=TIME_FACTOR_LOW,
                high=TIME_FACTOR_HIGH,
                unit="x",
                basis=f"PyTorch tuning guide: mixed precision gives up to {TIME_FACTOR_HIGH:g}x on Volta and newer; "
                f"Hugging Face: bert-large {HF_FP32_SECONDS} s fp32 vs {HF_FP16_SECONDS} s fp16 "
                f"({HF_FP32_SECONDS / HF_FP16_SECONDS:.1f}x)",
                hardware=self.ctx.hardware.key,
                source=SOURCE_CITED,
                assumptions=("a GPU with tensor cores; small models and batches gain little",),
            ),
            statement=statement,
        )


def _short_run(keywords: dict[str, cst.BaseExpression]) -> bool:
    """A Lightning Trainer for a smoke test or a handful of batches."""
    if "fast_dev_run" in keywords and literal_value(keywords["fast_dev_run"]) not in (False, 0):
        return True
    limit = literal_value(keywords["limit_train_batches"]) if "limit_train_batches" in keywords else None
    if isinstance(limit, int) and not isinstance(limit, bool) and limit <= SHORT_RUN_BATCHES:
        return True
    if isinstance(limit, float) and limit <= 0.1:
        return True
    epochs = literal_value(keywords["max_epochs"]) if "max_epochs" in keywords else None
    if isinstance(epochs, int) and not isinstance(epochs, bool) and 0 < epochs <= SHORT_RUN_EPOCHS:
        return True
    steps = literal_value(keywords["max_steps"]) if "max_steps" in keywords else None
    return isinstance(steps, int) and not isinstance(steps, bool) and 0 < steps <= SHORT_RUN_STEPS

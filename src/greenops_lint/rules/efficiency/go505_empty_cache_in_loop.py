"""GO505: the CUDA caching allocator emptied on every step."""

from __future__ import annotations

import re

import libcst as cst

from greenops_lint.analysis.efficiency import rare_guard
from greenops_lint.analysis.loops import Repetition, referenced_names
from greenops_lint.analysis.tree import walk_expr
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid
from greenops_lint.rules.efficiency._shared import LoopBoundRule
from greenops_lint.savings import SOURCE_CITED

# ## Estimate: the time factor of the step. peft#2894 (MetaMathQA LoRA training, 250 steps, after removing a
# per-step gc.collect()): empty_cache() every step 65 s, every 10 steps 50 s, never 45 s. Hugging Face documents
# `torch_empty_cache_steps` as lowering peak VRAM "at a cost of about 10% slower performance" (interval not given).
PEFT_SECONDS_EVERY_STEP = 65
PEFT_SECONDS_EVERY_10_STEPS = 50
PEFT_SECONDS_NEVER = 45
HF_SLOWDOWN_PERCENT = 10
TIME_FACTOR_LOW = 1.0  # a step long enough that re-allocating is noise
TIME_FACTOR_HIGH = round(PEFT_SECONDS_EVERY_STEP / PEFT_SECONDS_NEVER, 2)  # 1.44
# A periodic guard with a literal period of at least this many steps makes the call rare enough.
MIN_PERIOD = 100

# A test that reads a user option: `args.empty_unused_memory_level >= 1`, `self.args.batch_eval_metrics`,
# `save_mem`, `self.low_vram`: the user switched the memory-saving mode on.
_OPTION_ROOTS = frozenset({"args", "config", "cfg", "conf", "opt", "opts", "options", "hparams", "hp", "settings"})
_MEMORY_FLAG = re.compile(r"(mem|memory|cache|empty|release|vram|offload)", re.IGNORECASE)

_EMPTY_CACHE = frozenset(
    {
        "torch.cuda.empty_cache",
        "torch.mps.empty_cache",
        "torch.xpu.empty_cache",
        "torch.npu.empty_cache",
        "torch.cuda.memory.empty_cache",
    }
)


class EmptyCacheInLoop(LoopBoundRule):
    """Empties the CUDA caching allocator on every step.

    ## What it does
    Flags `torch.cuda.empty_cache()` (also `torch.mps`/`torch.xpu`) that runs
    on every iteration of a step loop (a training or data loop, Lightning's
    `training_step`/`validation_step`, or a function of the module called
    from one, two calls deep), unguarded or under a periodic guard with a
    literal period below 100 steps.

    ## Why is this bad
    PyTorch keeps freed GPU memory in a cache so that the next step can reuse
    it without `cudaMalloc`/`cudaFree`, which synchronise the device.
    `empty_cache()` synchronises, returns every cached block to the driver,
    and the next step has to allocate it all again. It does not give your
    own process more memory. Hugging Face documents its
    `torch_empty_cache_steps` option as lowering peak VRAM "at a cost of about
    10% slower performance".

    Not flagged: once per epoch (outside the step loop), under a periodic
    guard of 100 steps or more (or a non-literal period), in an exception
    handler (the OOM-recovery pattern), under a one-off test, behind a user
    option (an `if` on `args.*`/`config.*`/`self.args.*` or on a memory flag
    such as `save_mem`, `empty_unused_memory_level`: the user chose to trade
    speed for memory), and in a model's `forward` right after it drops a
    reference (`x = None`, `del x`: a deliberate release of a huge
    activation, e.g. in 3D segmentation models, where the alternative is an
    OOM).

    ## Fix
    Remove it. For fragmentation use
    `PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True`; to hand memory to
    another process, call it once after the loop.

    ## Estimate
    Time factor of the step: 1x to 1.44x. peft#2894 measured a LoRA
    training run of 250 steps at 65 s with `empty_cache()` every step, 50 s
    every 10 steps and 45 s without it (1.44x and 1.11x); Hugging Face
    documents `torch_empty_cache_steps` as "about 10% slower" (interval not
    given). The low end is a step so long that re-allocating is noise.
    """

    code = "GO505"
    name = "empty-cache-in-loop"
    estimate_sources = {
        SOURCE_CITED: "a LoRA fine-tuning run in peft#2894 (GPU not named, 19-23 GB reserved); Hugging Face "
        "`TrainingArguments.torch_empty_cache_steps` docs",
    }
    tokens = ("empty_cache",)
    INVALID = [
        Invalid(
            """
            import torch
            for x, y in train_loader:
                loss = model(x).sum()
                loss.backward()
                optimizer.step()
                torch.cuda.empty_cache()
            """,
            line=6,
            message="empty_cache() synchronises the GPU and returns all cached memory to the driver",
        ),
    ]
    VALID = [
        """
        import torch
        for epoch in range(10):
            for x, y in train_loader:
                loss = model(x).sum()
                loss.backward()
                optimizer.step()
            torch.cuda.empty_cache()
        """,
        """
        import torch
        for step, (x, y) in enumerate(train_loader):
            loss = model(x).sum()
            loss.backward()
            if step % 500 == 0:
                torch.cuda.empty_cache()
        """,
        """
        import torch
        for step, (x, y) in enumerate(train_loader):
            loss = model(x).sum()
            loss.backward()
            if args.empty_cache_level >= 2:
                torch.cuda.empty_cache()
        """,
    ]

    def guard_test(self, test: cst.BaseExpression, variant: set[str]) -> bool:
        return rare_guard(test, variant, min_period=MIN_PERIOD) or _user_option(test, variant)

    def where(self, repetition: Repetition) -> str:
        loop = repetition.loop
        if loop.framework or loop.has_train_step:
            return super().where(repetition)
        count = f" ({loop.count} iterations)" if loop.count else ""
        via = f" that calls {' -> '.join(f'{site.name}()' for site in repetition.via)}" if repetition.via else ""
        return f"on every batch of the data loop{count}{via}"

    def check_call(self, node: cst.Call) -> None:
        if self.ctx.call_name(node) in _EMPTY_CACHE and not self._releases_in_forward():
            self.record(node)

    def _releases_in_forward(self) -> bool:
        """In a `forward`, the statement before drops a reference (`out = None`,
        `del out`): the model's author releases a huge activation on purpose."""
        function = self.ctx.enclosing_function()
        statement = self.ctx.enclosing_statement()
        if function is None or function.name.value != "forward" or statement is None:
            return False
        stack = self.ctx.stack
        block = next((stack[i - 1] for i in range(len(stack) - 1, 0, -1) if stack[i] is statement), None)
        body = list(getattr(block, "body", ()))
        if statement not in body or body.index(statement) == 0:
            return False
        previous = body[body.index(statement) - 1]
        small = previous.body if type(previous) is cst.SimpleStatementLine else ()
        return any(
            type(s) is cst.Del or (type(s) is cst.Assign and type(s.value) is cst.Name and s.value.value == "None")
            for s in small
        )

    def leave_Module(self, node: cst.Module) -> None:
        for candidate in self.candidates:
            repetition = self.repetition(candidate, lambda loop: loop.kind == "step" or loop.iterates_data)
            if repetition is None:
                continue
            self.report(
                candidate.node,
                "empty_cache() synchronises the GPU and returns all cached memory to the driver "
                f"{self.where(repetition)}, so the next step must allocate it again; remove it (or call it once "
                "after the loop)",
                SavingsEstimate(
                    metric="time_factor",
                    low=TIME_FACTOR_LOW,
                    high=TIME_FACTOR_HIGH,
                    unit="x",
                    basis=f"peft#2894, 250 LoRA training steps: {PEFT_SECONDS_EVERY_STEP} s with empty_cache() every "
                    f"step, {PEFT_SECONDS_EVERY_10_STEPS} s every 10 steps, {PEFT_SECONDS_NEVER} s without "
                    f"({TIME_FACTOR_HIGH:g}x and {PEFT_SECONDS_EVERY_10_STEPS / PEFT_SECONDS_NEVER:.2f}x); Hugging Face "
                    "TrainingArguments.torch_empty_cache_steps: lowers peak VRAM "
                    f"'at a cost of about {HF_SLOWDOWN_PERCENT}% slower performance'",
                    hardware=self.ctx.hardware.key,
                    source=SOURCE_CITED,
                    assumptions=(
                        "the cost grows with how often it runs and shrinks with the step's length; "
                        "the probe measures the step-time ratio",
                    ),
                ),
                statement=candidate.statement,
            )


def _user_option(test: cst.BaseExpression, variant: set[str]) -> bool:
    """A loop-invariant test of a user option or a memory-saving flag."""
    names = referenced_names(test)
    if (names - {"self"}) & variant:
        return False  # (`self.args.flag`: a loop that sets some `self.x` does not change the option)
    attributes = {node.attr.value for node in walk_expr(test) if type(node) is cst.Attribute}
    return bool(names & _OPTION_ROOTS or attributes & _OPTION_ROOTS) or any(
        _MEMORY_FLAG.search(name) for name in names | attributes
    )

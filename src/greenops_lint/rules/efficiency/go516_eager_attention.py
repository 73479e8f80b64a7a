"""GO516 eager-attention: a Hugging Face model loaded with attn_implementation="eager" in training code."""

from __future__ import annotations

import re

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.flags import under_flag
from greenops_lint.analysis.rewrite import string_like
from greenops_lint.analysis.tree import is_test_file
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.savings import SOURCE_CITED

# -- estimate (`## Estimate`): training time per batch, eager vs SDPA, from the SDPA pull requests of transformers.
# transformers#33298 (OPT, L40S, batch 1, #31031's script): 1.24-1.26x at sequence length 128-512, 1.65x at 1024
# (eager peak memory 4.9 GB vs 1.7 GB); transformers#31031 (pythia-410m, RTX 3080 Ti, fp16, batch 1): 1.23-1.29x;
# transformers#32092 (albert-base-v2, fp16, batch 1-4): ~1.0x. None ran fp32, where SDPA cannot use its flash
# kernel (fp16/bf16 only) and falls back to the memory-efficient or math kernel.
TIME_FACTOR_LOW = 1.0
TIME_FACTOR_HIGH = 1.65
TYPICAL = 1.25

_TRAINING_TEXT = re.compile(r"\.backward\(|Trainer\(|\.train\(\)|\.fit\(|training_step")
# Half precision in the module: the anchors' fp16 regime, where SDPA can pick its flash kernel.
_HALF_PRECISION = re.compile(r"float16|bfloat16|\bfp16\b|\bbf16\b|autocast|mixed_precision|\.half\(\)")
_NEEDS_WEIGHTS = re.compile(r"output_attentions|\.attentions\b|attention_weights|attn_weights|attention_map")
# Models whose authors recommend eager attention for training (logit soft-capping).
_EAGER_MODELS = re.compile(r"gemma-?2|gemma-?3", re.IGNORECASE)
_LOADERS = ("from_pretrained", "from_config", "from_single_file")


class EagerAttention(Rule):
    """Loads a Hugging Face model with `attn_implementation="eager"` for training.

    ## What it does
    Flags `from_pretrained(...)`/`from_config(...)` calls that pass
    `attn_implementation="eager"` in a module that trains (a backward pass,
    a `Trainer`, `.fit()`), unless the module needs the attention weights
    (`output_attentions`, `.attentions`) or the model is one whose authors
    recommend eager attention for training (Gemma 2 and 3, by a literal
    model id).

    ## Why is this bad
    Eager attention materialises the full sequence x sequence attention
    matrix and runs softmax and two matmuls as separate kernels; PyTorch's
    `scaled_dot_product_attention` (SDPA, the default in transformers for
    models that support it) fuses them (flash or memory-efficient kernels).
    The SDPA pull requests of transformers measured training time per batch
    at batch size 1 (albert also at 2 and 4), in float16 where they say
    (#33298 reused #31031's fp16 script): OPT on an L40S 1.24-1.26x faster
    at sequence length 128-512 and 1.65x at 1024, with peak memory 4.9 GB
    -> 1.7 GB (transformers#33298); pythia-410m on an RTX 3080 Ti
    1.23-1.29x (transformers#31031); albert-base-v2 about the same
    (transformers#32092). In fp32 SDPA cannot use its flash kernel
    (fp16/bf16 only); it runs the memory-efficient kernel (or the math
    one), which still avoids the full attention matrix, at a speed these
    figures do not measure.

    What a linter cannot know: whether the architecture supports SDPA (most
    transformers models do; `from_pretrained` raises if it does not),
    whether the code needs the attention weights somewhere else, and the
    sequence length (the gain grows with it). What it can see: a literal
    model id, `output_attentions` and `.attentions` in the module. Not
    flagged: under an `if` (a flag chooses), a non-literal value, modules
    that do not train, test files.

    ## Example
    ```python
    model = AutoModelForCausalLM.from_pretrained(name, attn_implementation="eager")  # GO516
    trainer = Trainer(model=model, args=args, train_dataset=ds)
    trainer.train()
    ```

    ## Fix
    Drop the argument (SDPA is the default) or pass
    `attn_implementation="sdpa"`. The automatic fix writes `"sdpa"`; it is
    unsafe: results differ in the last bits, and a model without SDPA
    support raises at load time.

    ## Estimate
    Time factor of the training step: 1x to 1.65x (transformers#33298;
    ~1.25x at sequence lengths up to 512), more at longer sequences, where
    eager attention's memory also grows with the square of the length.
    Measured at batch size 1 in fp16; at larger batches the attention share
    of the step, and so the gain, may differ. In a module that shows no
    fp16/bf16 (fp32 training) the figure is marked as not measured for
    fp32: SDPA uses its memory-efficient kernel there, not flash.
    """

    code = "GO516"
    name = "eager-attention"
    family = "efficiency"
    estimate_sources = {
        SOURCE_CITED: "batch-1 fp16 training of OPT (L40S), pythia-410m (RTX 3080 Ti) and albert (batch 1-4) in "
        "transformers#33298, #31031, #32092; not measured in fp32",
    }
    fixable = True
    fix_safety = "unsafe"
    tokens = ("attn_implementation",)
    INVALID = [
        Invalid(
            """
            from transformers import AutoModelForCausalLM, Trainer
            model = AutoModelForCausalLM.from_pretrained("meta-llama/Llama-3.2-1B", attn_implementation="eager")
            trainer = Trainer(model=model, args=args, train_dataset=train_ds)
            trainer.train()
            """,
            line=2,
            message='attn_implementation="eager"',
            fixed="""
            from transformers import AutoModelForCausalLM, Trainer
            model = AutoModelForCausalLM.from_pretrained("meta-llama/Llama-3.2-1B", attn_implementation="sdpa")
            trainer = Trainer(model=model, args=args, train_dataset=train_ds)
            trainer.train()
            """,
        ),
    ]
    VALID = [
        # The attention weights are used.
        """
        from transformers import AutoModel
        model = AutoModel.from_pretrained("bert-base-uncased", attn_implementation="eager")
        out = model(**batch, output_attentions=True)
        loss = distill(out.attentions, teacher_attn)
        loss.backward()
        """,
        # Gemma 2: eager is recommended for training.
        """
        from transformers import AutoModelForCausalLM, Trainer
        model = AutoModelForCausalLM.from_pretrained("google/gemma-2-9b", attn_implementation="eager")
        Trainer(model=model, args=args, train_dataset=ds).train()
        """,
        # Inference only.
        """
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained("gpt2", attn_implementation="eager")
        print(model.generate(**inputs))
        """,
        # A flag chooses.
        """
        from transformers import AutoModelForCausalLM, Trainer
        impl = "eager" if args.debug else "sdpa"
        model = AutoModelForCausalLM.from_pretrained("gpt2", attn_implementation=impl)
        Trainer(model=model, args=args, train_dataset=ds).train()
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.candidates: list[tuple[cst.Call, cst.Arg, object]] = []

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value in _LOADERS):
            return
        arg = get_arg(node, "attn_implementation")
        if arg is None or literal_value(arg.value) != "eager" or under_flag(self.ctx):
            return
        model_id = get_arg(node, "pretrained_model_name_or_path", 0)
        literal_id = literal_value(model_id.value) if model_id is not None else None
        if isinstance(literal_id, str) and _EAGER_MODELS.search(literal_id):
            return
        self.candidates.append((node, arg, self.ctx.enclosing_statement()))

    def leave_Module(self, node: cst.Module) -> None:
        ctx = self.ctx
        if not self.candidates or is_test_file(ctx.path):
            return
        if not _TRAINING_TEXT.search(ctx.text) or _NEEDS_WEIGHTS.search(ctx.text):
            return
        half = bool(_HALF_PRECISION.search(ctx.text))
        for _call, arg, statement in self.candidates:
            value = arg.value
            fix = None
            if isinstance(value, cst.SimpleString):
                fix = Fix(
                    value,
                    lambda updated: string_like(updated, "sdpa"),
                    safe=False,
                    title='Use attn_implementation="sdpa"',
                )
            self.report(
                arg,
                'attn_implementation="eager" makes this training run materialise the full attention matrix and run '
                'attention unfused; drop it or pass "sdpa" (PyTorch\'s fused attention, the default) unless the code '
                "needs the attention weights or the model has no SDPA support",
                SavingsEstimate(
                    metric="time_factor",
                    low=TIME_FACTOR_LOW,
                    high=TIME_FACTOR_HIGH,
                    unit="x",
                    basis="transformers SDPA pull requests, training time per batch eager vs sdpa at batch size 1 in "
                    f"fp16: OPT on L40S 1.24-1.26x at sequence 128-512 and {TIME_FACTOR_HIGH:g}x at 1024 (#33298), "
                    "pythia-410m 1.23-1.29x (#31031), albert-base-v2 ~1.0x (#32092, batch 1-4)",
                    hardware=ctx.hardware.key,
                    assumptions=(
                        "the model supports SDPA",
                        "sequence length up to ~1024; longer sequences gain more",
                        "batch size 1 as measured; the attention share of a larger batch's step may differ",
                        *(
                            ()
                            if half
                            else (
                                "no fp16/bf16 in the module: in fp32 SDPA cannot use its flash kernel and runs the "
                                "memory-efficient one; these fp16 figures are not measured for fp32",
                            )
                        ),
                    ),
                    source=SOURCE_CITED,
                ),
                statement=statement,
                fix=fix,
            )

"""GO306: tokenizer calls that pad every training example to the maximum length."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.loops import referenced_names
from greenops_lint.analysis.parallelism import literal_int, literal_str
from greenops_lint.analysis.tree import is_test_file
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.provisioning._shared import identifier
from greenops_lint.savings import SOURCE_CITED

# Step time: 1x when examples are near the maximum length. The derived part: at least 1 - mean/max
# of the compute is on pad tokens. The cited part: Michael Benesty (Lefebvre Sarrut, 2020; CamemBERT on
# X-NLI, one consumer GPU) cut fine-tuning from 56 to 16 min (128 tokens) and from 4h38 to 1h01 (493
# tokens) with dynamic padding, uniform-length batching and mixed precision combined; he reports dynamic padding
# alone as a significant reduction but its own figure is not quoted here, so the estimate stops at the post's
# title, "by 2 or more", as its upper end, not a typical figure.
# The Hugging Face course explains dynamic padding without a figure.
PAD_TIME_LOW = 1.0
PAD_TIME_HIGH = 2.0
# A tokenizer's maximum length when the call gives none (BERT-style models).
TYPICAL_MODEL_MAX_LENGTH = 512
# What the message suggests padding each batch to a multiple of (tensor cores).
PAD_TO_MULTIPLE_OF = 8

_TOKENIZER_NAME = re.compile(r"token|^tok$|^tok_", re.IGNORECASE)
_TOKENIZER_METHODS = frozenset({"encode_plus", "batch_encode_plus", "encode", "__call__", "prepare_seq2seq_batch"})
# Static shapes are wanted (XLA/TPU, JAX, TF graphs, exported engines).
_STATIC_SHAPE_MARKERS = (
    "torch_xla",
    "jax",
    "flax",
    "TPU",
    "xla",
    "tensorflow",
    "keras",
    "onnx",
    "tensorrt",
    "openvino",
    "coreml",
    "tflite",
    # Text encoders of diffusion models are trained and used on prompts
    # padded to the fixed length (77 CLIP tokens): padding is part of the model.
    "diffusers",
    "CLIPTokenizer",
    "CLIPTextModel",
    "open_clip",
    "UNet2DConditionModel",
)
_TRAINING_MARKERS = (
    "Trainer",
    ".backward(",
    "optimizer",
    "TrainingArguments",
    "train_dataset",
    "train_loader",
    "train_dataloader",
    "training_step",
    "accelerator.backward",
)
_INFERENCE_FUNCTION = re.compile(r"predict|infer|serve|export|embed|encode_queries|generate", re.IGNORECASE)
_NO_GRAD = frozenset({"torch.no_grad", "torch.inference_mode"})


class PadToMaxLength(Rule):
    """Pads every training example to the maximum length.

    ## What it does
    Flags tokenizer calls (`tokenizer(...)`, `self.tokenizer(...)`,
    `tok.encode_plus(...)`, `batch_encode_plus`, a name bound to
    `AutoTokenizer.from_pretrained(...)`) with `padding="max_length"` (also
    through a constant) or the legacy `pad_to_max_length=True`, in modules
    that train (they mention a `Trainer`, an optimizer, `.backward(`, a
    training loader or dataset).

    Not flagged: `padding=True` / `"longest"` / `False`, a padding mode chosen
    at run time (`"max_length" if args.pad_to_max_length else False`), a
    single text (a string literal or f-string, or a name bound to one, built
    from no parameter of its function: a demo query after training, padded
    once), test files (a toy tokenizer exercised
    on a dozen tokens),
    inference-only modules, functions named like `predict`/`infer`/`export`,
    calls under `torch.no_grad()` / `torch.inference_mode()`, modules that
    need static shapes: TPU/XLA (`torch_xla`), JAX/Flax, TensorFlow/Keras
    graphs, ONNX/TensorRT/OpenVINO export, and diffusion models (`diffusers`,
    CLIP text encoders), whose text encoders expect prompts padded to their
    fixed length.

    ## Why is this bad
    Every example becomes `max_length` tokens long (the model's maximum, often
    512, when no `max_length` is given), so the model computes on pad tokens:
    linear layers in proportion to the padded length, attention to its
    square. With dynamic padding each batch is padded only to its longest
    example; Hugging Face documents it as "more efficient than padding to a
    global maximum length" (without a figure). Michael Benesty measured
    CamemBERT fine-tuning on X-NLI on one consumer GPU go from 56 to 16
    min (128 tokens) and from 4h38 to 1h01 (493 tokens) with dynamic
    padding, uniform-length batching and mixed precision together; he
    reports dynamic padding alone as a significant reduction (its own
    figure is not quoted here). The fraction of wasted compute is at least
    1 - mean length / max_length.

    ## Fix
    Tokenize with `padding=False` (and `truncation=True, max_length=...`) and
    pad per batch: `DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)`
    (or `tokenizer.pad` in a `collate_fn`); optionally
    `TrainingArguments(group_by_length=True)`. Keep `"max_length"` only where
    static shapes are required (TPU/XLA).

    ## Estimate
    1.0-2.0x step time. Derived: at least 1 - mean/max length of the
    compute is on pad tokens (1x when examples are near the maximum
    length). Cited: Benesty's 3.5x (56 -> 16 min) and 4.6x (4h38 -> 1h01)
    combined dynamic padding, uniform-length batching and mixed precision
    on a consumer GPU; dynamic padding's own share is not quoted here, so
    the estimate stops at his title's "by 2 or more".
    """

    code = "GO306"
    name = "pad-to-max-length"
    family = "provisioning"
    estimate_sources = {
        SOURCE_CITED: "CamemBERT fine-tuning on one consumer GPU with dynamic padding, uniform-length batching and "
        "mixed precision combined (Benesty, 2020); the pad-token share 1 - mean/max is derived",
    }
    tokens = ("max_length",)
    INVALID = [
        Invalid(
            """
            from transformers import AutoTokenizer, Trainer
            tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
            def tokenize(batch):
                return tokenizer(batch["text"], padding="max_length", truncation=True, max_length=256)
            train_ds = raw["train"].map(tokenize, batched=True)
            """,
            line=4,
            message='padding="max_length" pads every example to 256 tokens',
        ),
        """
        import torch
        class ReviewDataset(torch.utils.data.Dataset):
            def __getitem__(self, i):
                return self.tokenizer(self.texts[i], padding="max_length", truncation=True, return_tensors="pt")
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
        """,
        """
        from transformers import BertTokenizerFast
        tok = BertTokenizerFast.from_pretrained("bert-base-cased")
        enc = tok.batch_encode_plus(texts, pad_to_max_length=True, max_length=128)
        optimizer = AdamW(model.parameters())
        """,
    ]
    VALID = [
        """
        from transformers import AutoTokenizer, DataCollatorWithPadding, Trainer
        tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
        def tokenize(batch):
            return tokenizer(batch["text"], truncation=True, max_length=256)
        collator = DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)
        """,
        """
        import torch_xla.core.xla_model as xm
        from transformers import Trainer
        enc = tokenizer(texts, padding="max_length", max_length=128, truncation=True)
        """,
        """
        from transformers import AutoTokenizer, Trainer
        padding = "max_length" if data_args.pad_to_max_length else False
        enc = tokenizer(texts, padding=padding, max_length=128, truncation=True)
        """,
        """
        from transformers import AutoTokenizer, Trainer
        trainer.train()
        input_text = f"answer_me: {question} context: {context} </s>"
        query = tokenizer(input_text, return_tensors="pt", pad_to_max_length=True, max_length=250)
        answer = model.generate(query["input_ids"], max_length=50)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        text = ctx.text
        self.active = (
            any(m in text for m in _TRAINING_MARKERS)
            and not any(m in text for m in _STATIC_SHAPE_MARKERS)
            and not is_test_file(ctx.path)
        )

    def visit_Call(self, node: cst.Call) -> None:
        if not self.active:
            return
        padding = get_arg(node, "padding")
        legacy = get_arg(node, "pad_to_max_length")
        if padding is not None and literal_str(self.ctx, padding.value) == "max_length":
            flagged, what = padding, 'padding="max_length"'
        elif legacy is not None and literal_value(legacy.value) is True:
            flagged, what = legacy, "pad_to_max_length=True"
        else:
            return
        if not self._is_tokenizer_call(node):
            return
        function = self.ctx.enclosing_function()
        if function is not None and _INFERENCE_FUNCTION.search(function.name.value):
            return
        if self._under_no_grad():
            return  # features for a frozen encoder or inference, not training data
        if self._single_text(node):
            return  # one query (a demo after training): not every training example
        max_length = get_arg(node, "max_length")
        length = literal_int(self.ctx, max_length.value) if max_length is not None else None
        if length is not None:
            size = f"{length} tokens"
        elif max_length is not None:
            size = f"max_length={self.ctx.snippet(max_length.value)} tokens"
        else:
            size = f"the model's maximum length (often {TYPICAL_MODEL_MAX_LENGTH} tokens)"
        self.report(
            flagged,
            f"{what} pads every example to {size}, so the model computes on pad tokens; pad each batch to its "
            f"longest example instead (DataCollatorWithPadding(tokenizer, pad_to_multiple_of={PAD_TO_MULTIPLE_OF}))",
            SavingsEstimate(
                metric="time_factor",
                low=PAD_TIME_LOW,
                high=PAD_TIME_HIGH,
                unit="x",
                basis="compute on pad tokens: at least 1 - mean/max length of it is wasted (linear layers scale with "
                "length, attention with its square); Benesty (CamemBERT, one consumer GPU) cut fine-tuning from 56 to "
                "16 min with dynamic padding, uniform-length batching and mixed precision combined; dynamic padding's "
                f"own share is not quoted, so {PAD_TIME_HIGH:g}x is the upper end",
                hardware=self.ctx.hardware.key,
                source=SOURCE_CITED,
                assumptions=(
                    f"{PAD_TIME_LOW:g}x when examples are near the maximum length; up to {PAD_TIME_HIGH:g}x when "
                    "most of each padded example is pad tokens",
                ),
            ),
        )

    def _single_text(self, node: cst.Call) -> bool:
        """The text is one string (a literal, an f-string, or a name bound to
        one) built from no parameter of its function: a single query, padded
        once, not a dataset."""
        first = get_arg(node, "text", 0)
        if first is None:
            return False
        value = first.value
        if isinstance(value, cst.Name):
            bound = self.ctx.value_of(value)
            value = bound if isinstance(bound, cst.BaseExpression) else value
        if not isinstance(value, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
            return False
        # An f-string of the parameters of a preprocessing function is one
        # example of many (`f"question: {example['question']}"` in a .map()).
        function = self.ctx.enclosing_function()
        if function is None:
            return True
        params = {p.name.value for p in (*function.params.params, *function.params.kwonly_params)}
        return not (referenced_names(value) & params)

    def _under_no_grad(self) -> bool:
        for ancestor in self.ctx.stack:
            if isinstance(ancestor, cst.With):
                for item in ancestor.items:
                    call = item.item
                    if isinstance(call, cst.Call) and self.ctx.call_name(call) in _NO_GRAD:
                        return True
        return False

    def _is_tokenizer_call(self, node: cst.Call) -> bool:
        func = node.func
        receiver: Optional[cst.BaseExpression] = func
        if isinstance(func, cst.Attribute) and func.attr.value in _TOKENIZER_METHODS:
            receiver = func.value
        ident = identifier(receiver) if receiver is not None else None
        if ident is None:
            return False
        if _TOKENIZER_NAME.search(ident):
            return True
        value = self.ctx.value_of(receiver)
        if isinstance(value, cst.Call):
            name = self.ctx.call_name(value) or ""
            return name.endswith(".from_pretrained") and "Tokenizer" in name
        return False

"""GO102 pretrained-load-in-loop: a pretrained model loaded again on every iteration, call or request."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.candidates import Candidate
from greenops_lint.analysis.loops import LoopInfo, Repetition
from greenops_lint.analysis.tree import display_name, last_part
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid
from greenops_lint.rules.caching._shared import UNKNOWN_REPEATS, RepeatedWorkRule
from greenops_lint.savings import SOURCE_COUNTED

# -- estimate (`## Estimate`): (iterations - 1) extra model (tokenizer, processor, config) loads in a
# loop; per call or request, `UNKNOWN_REPEATS` (the number of calls is not known statically).
REPEATED = "model loads"
PER_CALL_BASIS = "one model load per call instead of one per process"

PRETRAINED_LOADERS = frozenset(
    {
        "transformers.pipeline",
        "sentence_transformers.SentenceTransformer",
        "sentence_transformers.CrossEncoder",
        "torch.hub.load",
        "keras.models.load_model",
        "keras.saving.load_model",
        "tensorflow.saved_model.load",
        "whisper.load_model",
        "spacy.load",
        "open_clip.create_model_and_transforms",
        "ultralytics.YOLO",
        "gensim.models.KeyedVectors.load",
        "gensim.models.Word2Vec.load",
        "fasttext.load_model",
    }
)
_ROUTE_DECORATOR = re.compile(r"\.(route|get|post|put|patch|delete|websocket)$")
# `X.from_pretrained` that loads files without weights: the message names them.
_NO_WEIGHTS = (
    (re.compile(r"Tokeni[sz]er", re.IGNORECASE), "tokenizer"),
    (re.compile(r"(Processor|FeatureExtractor)$"), "processor"),
    (re.compile(r"(Config|GenerationConfig)$"), "config"),
)
# A loop body that trains a model (when the loop kind does not already say so).
_TRAINS = re.compile(r"\.backward\(|\.fit\(|\.train\(|Trainer\(|optimizer\.step\(|\.step\(\)")


class PretrainedLoadInLoop(RepeatedWorkRule):
    """Loads a pretrained model, tokenizer or pipeline again on every iteration or call.

    ## What it does
    Flags `*.from_pretrained(...)` (transformers, diffusers, peft,
    sentence-transformers), `transformers.pipeline(...)`,
    `SentenceTransformer(...)`, `timm.create_model(..., pretrained=True)`,
    torchvision models with `weights=`/`pretrained=True`, Keras
    applications with ImageNet weights, `keras.models.load_model`,
    `torch.hub.load`, `whisper.load_model` and `spacy.load` when they run
    repeatedly with the same arguments: inside any loop, in a model method the
    framework calls per batch (`forward`, `training_step`, ...), in a function
    of the module called from a loop (two calls deep), in a function passed to
    `.map()`/`.apply()` (directly or returned by a factory: once per example
    or batch), or in a web request handler (`@app.route`, `@app.post`: once
    per request).

    ## Why is this bad
    Each call reads the weights from disk (gigabytes for current models),
    deserialises them, allocates and initialises the model and copies it to
    the device again. The hub cache avoids the download, not the rest.

    Not flagged: a model id or checkpoint path that changes with the loop
    (evaluating several checkpoints, ensembles), a once-guard around the load
    (`if model is None:`), a branch that loads once and leaves the loop
    (`return`/`break`), memoised loader functions, test files (a test matrix
    of settings starts each case from scratch), and model weights reloaded by
    a loop whose every iteration trains (cross-validation folds, a
    hyperparameter or seed sweep, `for lr in lrs: ... trainer.train()`): each
    run must start from the pretrained weights, and reloading them is how it
    does. Tokenizers, processors and configs are not trained: reloading them
    in such a loop is still flagged, and the message names what is reloaded
    (a tokenizer reloads its vocabulary files, not weights).

    ## Fix
    Load the model once (at start-up, before the loop, or in `__init__`) and
    pass it to the code that uses it.

    ## Estimate
    Repeated work: (iterations - 1) extra model loads, each costing roughly
    the weights' size divided by the storage bandwidth plus initialisation;
    the probe times a load.
    """

    code = "GO102"
    name = "pretrained-load-in-loop"
    family = "caching"
    estimate_sources = {
        SOURCE_COUNTED: "any hardware: a count read from the code; the seconds each repetition costs are measured by `greenops-lint probe`",
    }
    loop_kinds = frozenset({"epoch", "step", "loop"})
    tokens = (
        "from_pretrained",
        "pipeline",
        "SentenceTransformer",
        "create_model",
        "pretrained",
        "weights",
        "load_model",
        "hub.load",
        "spacy",
        "YOLO",
        "CrossEncoder",
    )
    INVALID = [
        Invalid(
            """
            from transformers import AutoModelForSequenceClassification
            for text in texts:
                model = AutoModelForSequenceClassification.from_pretrained("distilbert-base-uncased")
                scores.append(model(**encode(text)).logits)
            """,
            line=3,
            message="AutoModelForSequenceClassification.from_pretrained() reloads pretrained weights on every "
            "iteration of the loop",
        ),
        Invalid(
            """
            from transformers import AutoModel, AutoTokenizer
            for fold, (train_idx, val_idx) in enumerate(folds):
                tok = AutoTokenizer.from_pretrained("bert-base-uncased")
                model = AutoModel.from_pretrained("bert-base-uncased")
                for batch in make_loader(tok, train_idx):
                    model(**batch).loss.backward()
            """,
            line=3,
            message="AutoTokenizer.from_pretrained() reloads the tokenizer files on every iteration of the loop over fold",
        ),
        """
        from transformers import pipeline
        def predict(text):
            clf = pipeline("sentiment-analysis")
            return clf(text)
        results = [predict(t) for t in texts]
        """,
    ]
    VALID = [
        """
        from transformers import AutoModel
        for name in ["bert-base-uncased", "roberta-base"]:
            model = AutoModel.from_pretrained(name)
        """,
        """
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained("bert-base-uncased")
        for text in texts:
            ids = tok(text)
        """,
        """
        from transformers import AutoModel, Trainer
        for lr in (1e-5, 3e-5, 5e-5):
            model = AutoModel.from_pretrained("bert-base-uncased")
            Trainer(model=model, args=make_args(lr), train_dataset=train_ds).train()
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self._training: dict[int, bool] = {}  # id(loop) -> its body trains a model

    def visit_Call(self, node: cst.Call) -> None:
        what = self._pretrained_load(node)
        if what is not None:
            self.record(node, what, loads=self._loaded_kind(node))

    def _loaded_kind(self, node: cst.Call) -> str:
        """ "tokenizer", "processor", "config" (files without weights) or "model"."""
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "from_pretrained":
            receiver = self.ctx.qualified_name(func.value) or self.ctx.module.code_for_node(func.value)
            for pattern, kind in _NO_WEIGHTS:
                if pattern.search(receiver.rsplit(".", 1)[-1]):
                    return kind
        return "model"

    def _pretrained_load(self, node: cst.Call) -> Optional[str]:
        qualified = self.ctx.call_name(node)
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "from_pretrained":
            receiver = self.ctx.snippet(func.value, 40)
            return f"{receiver}.from_pretrained()" if "(" not in receiver else "from_pretrained()"
        if qualified is None:
            return None
        if qualified in PRETRAINED_LOADERS:
            return display_name(qualified) + "()"
        if qualified == "timm.create_model":
            arg = get_arg(node, "pretrained")
            return (
                "timm.create_model(pretrained=True)" if arg is not None and literal_value(arg.value) is True else None
            )
        if qualified.startswith("torchvision.models."):
            weights, pretrained = get_arg(node, "weights"), get_arg(node, "pretrained")
            if weights is not None and literal_value(weights.value) is not None:
                return qualified.replace("torchvision.models.", "torchvision ") + "(weights=...)"
            if pretrained is not None and literal_value(pretrained.value) is True:
                return qualified.replace("torchvision.models.", "torchvision ") + "(pretrained=True)"
            return None
        if qualified.startswith("keras.applications.") and last_part(qualified)[:1].isupper():
            weights = get_arg(node, "weights")
            if weights is None or literal_value(weights.value) is not None:
                return last_part(qualified) + "(weights='imagenet')"
        return None

    def leave_Module(self, node: cst.Module) -> None:
        # Unlike the other GO1xx rules, per-sample functions count: a model is never loaded lazily per sample.
        for candidate in self.candidates:
            if self.memoised(candidate):
                continue
            if candidate.extra.get("loads") == "model":
                repetition = self.repetition(candidate, accept=self._reload_is_waste)
            else:
                repetition = self.repetition(candidate)
            if repetition is not None:
                self.emit(candidate, repetition)
            elif not candidate.direct and not candidate.guards.frame:
                self._per_call(candidate)

    def _reload_is_waste(self, loop: LoopInfo) -> bool:
        """A loop whose every iteration trains (CV folds, a hyperparameter or
        seed sweep, a test matrix of settings) needs fresh pretrained weights
        each time: reloading them is how each run starts from the same point.
        Epoch loops, step loops and loops that only run the model do not."""
        if loop.kind not in self.loop_kinds or loop.is_retry:
            return False
        if loop.kind == "step" or loop.epochish or loop.names_epoch:
            return True
        return loop.kind != "epoch" and not self._trains(loop)

    def _trains(self, loop: LoopInfo) -> bool:
        if id(loop) not in self._training:
            self._training[id(loop)] = bool(_TRAINS.search(self.ctx.module.code_for_node(loop.node)))
        return self._training[id(loop)]

    def _per_call(self, candidate: Candidate) -> None:
        frame = candidate.frame
        if not isinstance(frame, cst.FunctionDef) or candidate.local_arg_names:
            return
        if frame.name.value in self.ctx.loops.callbacks:
            where = f"once per example or batch of the .map()/.apply() that calls {frame.name.value}()"
        elif any(
            _ROUTE_DECORATOR.search(
                self.ctx.module.code_for_node(d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator)
            )
            for d in frame.decorators
        ):
            where = f"on every request handled by {frame.name.value}()"
        else:
            return
        loads = candidate.extra.get("loads", "model")
        self.report(
            candidate.node,
            f"{candidate.label} loads the {loads} {where}; load it once at start-up and reuse it",
            SavingsEstimate(
                metric="repeated_work",
                low=UNKNOWN_REPEATS[0],
                high=UNKNOWN_REPEATS[1],
                unit=f"extra {loads} loads",
                basis=PER_CALL_BASIS,
                hardware=self.ctx.hardware.key,
                source=SOURCE_COUNTED,
                assumptions=("the number of calls is not known statically",),
            ),
            statement=candidate.statement,
        )

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:
        loads = candidate.extra.get("loads", "model")
        what = {"model": "pretrained weights", "config": "the config"}.get(loads, f"the {loads} files")
        self.report(
            candidate.node,
            f"{candidate.label} reloads {what} {self.where(repetition)}; "
            f"load the {loads} once before the loop and reuse it",
            self.repeated_estimate(repetition, REPEATED if loads == "model" else f"{loads} loads"),
            statement=candidate.statement,
        )

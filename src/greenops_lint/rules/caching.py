"""GO1xx: data, weights and pipelines loaded again although nothing changed.

All rules here share the loop-context analysis (`analysis/loops.py`): they
record candidate calls during the walk, with the loops and guards around them,
and decide at the end of the module, when every loop is classified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.loops import FrameNode, LoopInfo, Repetition, referenced_names
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Rule

# -- what counts as "loaded once" --------------------------------------------------

_ONCE_WORDS = re.compile(r"(first|once|resume|cache|cached|loaded|init|best|reload|refresh)", re.IGNORECASE)
_PER_SAMPLE_FUNCTIONS = frozenset({"__getitem__", "__getitems__", "__iter__", "__next__", "__call__", "collate_fn"})
_CACHE_DECORATORS = frozenset(
    {"functools.lru_cache", "functools.cache", "functools.cached_property", "builtins.property", "joblib.Memory.cache"}
)
_HANDLE_NAME = re.compile(r"^(f|fh|fp|fd|fin|fo|fi|file|infile|handle|stream|buf|buffer|fileobj|reader|src)$")


def is_once_guard(test: cst.BaseExpression) -> bool:
    """`if x is None`, `if key not in cache`, `if epoch == 0`, `if not loaded`,
    `if args.resume`: a load under such a test runs once, not every iteration."""
    for node in _walk_expr(test):
        if isinstance(node, cst.Comparison):
            for target in node.comparisons:
                op = target.operator
                if isinstance(op, (cst.Is, cst.IsNot, cst.NotIn, cst.In)):
                    return True
                if isinstance(op, cst.Equal) and literal_value(target.comparator) in (0, 1, None):
                    return True
        elif isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
            return True
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value in ("hasattr", "isinstance"):
            return True
        elif isinstance(node, cst.Name) and _ONCE_WORDS.search(node.value):
            return True
        elif isinstance(node, cst.Attribute) and _ONCE_WORDS.search(node.attr.value):
            return True
    return False


def _walk_expr(node: cst.CSTNode):
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(c for c in current.children if isinstance(c, cst.CSTNode))


def _is_periodic(test: cst.BaseExpression) -> bool:
    """`if step % log_every == 0`: runs on a fraction of iterations."""
    return any(
        isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Modulo) for n in _walk_expr(test)
    )


@dataclass(eq=False)
class Candidate:
    """A call that may repeat, with what the walk knew about it at the time."""

    node: cst.Call
    label: str
    statement: Optional[cst.CSTNode]
    direct: tuple[LoopInfo, ...]
    frame: FrameNode
    arg_names: frozenset[str]
    local_arg_names: frozenset[str]
    guarded: set = field(default_factory=set)  # loops (by id) inside which a once-guard encloses the call
    frame_guarded: bool = False  # a once-guard between the call and its function's top
    frame_cached: bool = False  # the function is memoised (lru_cache, cached_property, ...)
    extra: dict = field(default_factory=dict)


class RepeatedWorkRule(Rule):
    """Shared machinery of the GO1xx rules (not a rule itself)."""

    analyses = ("loops",)
    # Which loop kinds make a repetition worth reporting.
    loop_kinds: frozenset = frozenset({"epoch", "step"})
    follow_calls = True

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.candidates: list[Candidate] = []

    # -- during the walk ----------------------------------------------------------
    def record(self, node: cst.Call, label: str, **extra) -> Candidate:
        loops = self.ctx.loops
        direct = loops.loops_at()
        frame = loops.current_frame
        candidate = Candidate(
            node=node,
            label=label,
            statement=self.ctx.enclosing_statement(),
            direct=direct,
            frame=frame,
            arg_names=_call_names(node),
            local_arg_names=frozenset(),
            extra=extra,
        )
        scope = self.ctx.names.current
        if scope.kind == "function":
            candidate.local_arg_names = frozenset(n for n in candidate.arg_names if n in scope.names)
        self._scan_guards(candidate)
        self.candidates.append(candidate)
        return candidate

    def _scan_guards(self, candidate: Candidate) -> None:
        loop_nodes = {id(loop.node): loop for loop in candidate.direct}
        guard_seen = False
        stack = self.ctx.stack
        for index in range(len(stack) - 2, -1, -1):
            ancestor = stack[index]
            if isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
                break
            if isinstance(ancestor, cst.If) and (is_once_guard(ancestor.test) or _is_periodic(ancestor.test)):
                guard_seen = True
            elif isinstance(ancestor, (cst.Try,)) and any(
                isinstance(h.type, cst.Name) and h.type.value in ("FileNotFoundError", "EOFError") for h in ancestor.handlers
            ):
                guard_seen = True
            loop = loop_nodes.get(id(ancestor))
            if loop is not None and guard_seen:
                candidate.guarded.add(id(loop))
        candidate.frame_guarded = guard_seen
        frame = candidate.frame
        if isinstance(frame, cst.FunctionDef):
            for decorator in frame.decorators:
                target = decorator.decorator.func if isinstance(decorator.decorator, cst.Call) else decorator.decorator
                qualified = self.ctx.qualified_name(target) or ""
                if qualified in _CACHE_DECORATORS or qualified.endswith((".cache", "lru_cache", "cached_property", "memoize")):
                    candidate.frame_cached = True

    # -- after the walk -------------------------------------------------------------
    def leave_Module(self, node: cst.Module) -> None:
        loops = self.ctx.loops
        for candidate in self.candidates:
            if candidate.frame_cached or self._per_sample(candidate.frame):
                continue
            repetition = self.first_repetition(candidate, loops.repetitions(candidate.direct, candidate.frame))
            if repetition is not None:
                self.emit(candidate, repetition)

    def _per_sample(self, frame: FrameNode) -> bool:
        if isinstance(frame, cst.FunctionDef):
            return frame.name.value in _PER_SAMPLE_FUNCTIONS or self.ctx.loops.is_generator(frame)
        return False

    def first_repetition(self, candidate: Candidate, repetitions: Iterable[Repetition]) -> Optional[Repetition]:
        variant: set[str] = set()
        for repetition in repetitions:
            loop = repetition.loop
            if not repetition.via:
                variant |= loop.variant_names()
                if id(loop) in candidate.guarded:
                    return None  # a guard inside this loop also guards the outer ones
            elif candidate.frame_guarded:
                return None
            if loop.is_retry or loop.kind not in self.loop_kinds:
                continue
            if repetition.via:
                if not self._invariant_through_calls(candidate, repetition):
                    continue
            elif candidate.arg_names & variant:
                continue
            return repetition
        return None

    def _invariant_through_calls(self, candidate: Candidate, repetition: Repetition) -> bool:
        """A load in a helper is loop-invariant if it reads only globals, or if
        the helper's own arguments at the call site are loop-invariant."""
        if not candidate.local_arg_names:
            return True
        if len(repetition.via) > 1:
            return False
        site = repetition.via[0]
        variant: set[str] = set()
        for loop in site.loops:
            variant |= loop.variant_names()
            if loop is repetition.loop:
                break
        return not (site.arg_names & variant)

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- message pieces ---------------------------------------------------------------
    def where(self, repetition: Repetition) -> str:
        loop = repetition.loop
        count = f" ({loop.count} iterations)" if loop.count else ""
        if repetition.via:
            chain = " -> ".join(f"{site.name}()" for site in repetition.via)
            return f"on every iteration of the {loop.describe()}{count} that calls {chain}"
        return f"on every iteration of the {loop.describe()}{count}"

    def repeated_estimate(self, repetition: Repetition, what: str) -> SavingsEstimate:
        loop = repetition.loop
        if loop.count:
            low = high = float(max(loop.count - 1, 0))
            assumptions = (f"the loop runs {loop.count} times (literal or default argument in the code)",)
        else:
            low, high = 1.0, 99.0
            assumptions = ("the iteration count is not literal: a typical training run has 2-100 epochs, more steps",)
        return SavingsEstimate(
            metric="repeated_work",
            low=low,
            high=high,
            unit=f"extra {what}",
            basis=f"(iterations - 1) repetitions of the {what}; each costs its read/parse or start-up time, "
            "which the probe measures",
            hardware=self.ctx.hardware.key,
            assumptions=assumptions,
        )


def _call_names(node: cst.Call) -> frozenset[str]:
    """Names the call reads: its arguments, and the receiver of a method call."""
    names: set[str] = set()
    if isinstance(node.func, cst.Attribute):
        names |= referenced_names(node.func.value)
    for arg in node.args:
        names |= referenced_names(arg.value)
    return frozenset(names)


def _snippet(ctx, node: cst.CSTNode, limit: int = 48) -> str:
    text = " ".join(ctx.module.code_for_node(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(qualified: str) -> str:
    for prefix, short in (("pandas.", "pd."), ("numpy.", "np."), ("tensorflow.", "tf.")):
        if qualified.startswith(prefix):
            return short + qualified[len(prefix):]
    return qualified


# -- GO101 --------------------------------------------------------------------------------

DATA_LOADERS = frozenset(
    {
        *(f"pandas.read_{k}" for k in ("csv", "table", "parquet", "feather", "json", "excel", "pickle", "hdf", "orc", "fwf")),
        *(f"numpy.{k}" for k in ("load", "loadtxt", "genfromtxt", "fromfile")),
        *(f"polars.read_{k}" for k in ("csv", "parquet", "json", "ipc")),
        "torch.load", "pickle.load", "json.load", "joblib.load", "h5py.File", "scipy.io.loadmat",
        "datasets.load_dataset", "datasets.load_from_disk", "tensorflow_datasets.load",
        "keras.utils.image_dataset_from_directory", "keras.utils.text_dataset_from_directory",
        "keras.preprocessing.image_dataset_from_directory",
        "PIL.Image.open", "cv2.imread", "imageio.imread", "imageio.v3.imread", "skimage.io.imread",
        "torchvision.io.read_image", "yaml.safe_load", "yaml.load", "safetensors.torch.load_file",
    }
)
# Loaders that read a file object: given a handle opened outside the loop they
# read the next record each time (`while True: pickle.load(f)`), which is fine.
_STREAM_LOADERS = frozenset({"pickle.load", "json.load", "numpy.load", "torch.load", "joblib.load", "yaml.safe_load", "yaml.load"})


class DataLoadInLoop(RepeatedWorkRule):
    """Loads the same file or dataset on every epoch or step.

    ## What it does
    Flags a data load (`pd.read_csv/read_parquet/...`, `np.load/loadtxt`,
    `torch.load`, `pickle.load`, `json.load(open(...))`, `h5py.File`,
    `datasets.load_dataset/load_from_disk`, `PIL.Image.open`, `cv2.imread`,
    ...) inside an epoch loop or a training step loop, or in a function of the
    module called from one (two calls deep), when its arguments do not change
    from one iteration to the next (they do not use the loop variable or names
    assigned in the loop).

    ## Why is this bad
    The file is opened, read and parsed again on every iteration, although
    its content is the same: the disk, the CPU and the waiting GPU pay for it
    each time. The tf.data guide puts it plainly: caching saves "operations
    (like file opening and data reading) from being executed during each epoch".

    Not flagged: loads whose path depends on the loop (per-shard, per-fold or
    per-sample files), loads in `__getitem__`, `__iter__` and generators
    (lazy per-sample loading is the normal pattern), memoised functions
    (`functools.lru_cache`, `cache`, `cached_property`), loads under a
    once-guard (`if data is None:`, `if key not in cache:`, `if epoch == 0:`,
    `if args.resume:`) or a periodic guard (`if step % 100 == 0:`), retry loops
    (`for attempt in range(3)`), and `pickle.load(f)` / `json.load(f)` reading
    successive records from a handle opened before the loop.

    ## Fix
    Load once before the loop and reuse the object (copy it if the loop
    mutates it), or memoise the helper with `functools.lru_cache`. For data
    that does not fit in memory use a memory-mapped format (`np.load(...,
    mmap_mode="r")`, Arrow/Parquet, HF `datasets`) or `tf.data...cache()`.

    ## Estimate
    Repeated work: (iterations - 1) extra loads, where the iteration count is
    literal (`range(30)`, a default argument `epochs=30`); otherwise a range of
    1-99 with the assumption stated. The probe times one load of a file of the
    same kind to turn this into seconds.
    """

    code = "GO101"
    name = "data-load-in-loop"
    family = "caching"
    has_probe = True
    tokens = ("read_", "load", "File", "open", "imread", "read_image")
    INVALID = [
        """
        import pandas as pd
        for epoch in range(10):
            df = pd.read_csv("train.csv")
            for batch in loader:
                loss = model(batch).mean()
                loss.backward()
        """,
        """
        import json
        def load_cfg():
            return json.load(open("config.json"))
        for x, y in train_loader:
            cfg = load_cfg()
            optimizer.step()
        """,
    ]
    VALID = [
        """
        import pandas as pd
        df = pd.read_csv("train.csv")
        for epoch in range(10):
            train(df)
        """,
        """
        import pandas as pd
        for epoch in range(10):
            df = pd.read_parquet(f"part-{epoch}.parquet")
        """,
        """
        import functools, json
        @functools.lru_cache(maxsize=None)
        def load_cfg():
            return json.load(open("config.json"))
        for x, y in train_loader:
            cfg = load_cfg()
            optimizer.step()
        """,
    ]

    def visit_Call(self, node: cst.Call) -> None:
        qualified = self.ctx.call_name(node)
        if qualified not in DATA_LOADERS:
            return
        if qualified in _STREAM_LOADERS and self._reads_open_handle(node):
            return
        if qualified.startswith("yaml.") and not self._inline_open(node):
            return
        self.record(node, _short(qualified))

    def _reads_open_handle(self, node: cst.Call) -> bool:
        first = get_arg(node, None, 0) or get_arg(node, "f") or get_arg(node, "file") or get_arg(node, "fp")
        if first is None or not isinstance(first.value, cst.Name):
            return False
        if _HANDLE_NAME.match(first.value.value):
            return True
        value = self.ctx.value_of(first.value)
        return isinstance(value, cst.Call) and self.ctx.call_name(value) in ("builtins.open", "gzip.open", "io.open", "bz2.open")

    def _inline_open(self, node: cst.Call) -> bool:
        first = get_arg(node, None, 0)
        return first is not None and isinstance(first.value, cst.Call) and self.ctx.call_name(first.value) == "builtins.open"

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:
        self.report(
            candidate.node,
            f"{_snippet(self.ctx, candidate.node)} loads the same data {self.where(repetition)}; "
            "load it once before the loop (or cache it) and reuse it",
            self.repeated_estimate(repetition, "loads"),
            statement=candidate.statement,
        )


# -- GO102 --------------------------------------------------------------------------------

PRETRAINED_LOADERS = frozenset(
    {
        "transformers.pipeline", "sentence_transformers.SentenceTransformer", "sentence_transformers.CrossEncoder",
        "torch.hub.load", "keras.models.load_model", "keras.saving.load_model", "tensorflow.saved_model.load",
        "whisper.load_model", "spacy.load", "open_clip.create_model_and_transforms", "ultralytics.YOLO",
        "gensim.models.KeyedVectors.load", "gensim.models.Word2Vec.load", "fasttext.load_model",
    }
)
_ROUTE_DECORATOR = re.compile(r"\.(route|get|post|put|patch|delete|websocket)$")


class PretrainedLoadInLoop(RepeatedWorkRule):
    """Loads a pretrained model, tokenizer or pipeline again on every iteration or call.

    ## What it does
    Flags `*.from_pretrained(...)` (transformers, diffusers, peft,
    sentence-transformers), `transformers.pipeline(...)`,
    `SentenceTransformer(...)`, `timm.create_model(..., pretrained=True)`,
    torchvision models with `weights=`/`pretrained=True`, Keras
    applications with ImageNet weights, `keras.models.load_model`,
    `torch.hub.load`, `whisper.load_model` and `spacy.load` when they run
    repeatedly with the same arguments: inside any loop, in a function of the
    module called from a loop (two calls deep), in a function passed to
    `.map()`/`.apply()` (once per example or batch), or in a web request
    handler (`@app.route`, `@app.post`: once per request).

    ## Why is this bad
    Each call reads the weights from disk (gigabytes for current models),
    deserialises them, allocates and initialises the model and copies it to
    the device again. The hub cache avoids the download, not the rest.

    Not flagged: a model id or checkpoint path that changes with the loop
    (evaluating several checkpoints, ensembles), a once-guard around the load
    (`if model is None:`), and memoised loader functions.

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
    has_probe = True
    loop_kinds = frozenset({"epoch", "step", "loop"})
    tokens = ("from_pretrained", "pipeline", "SentenceTransformer", "create_model", "pretrained", "weights", "load_model", "hub.load", "spacy", "YOLO", "CrossEncoder")
    INVALID = [
        """
        from transformers import AutoTokenizer
        for text in texts:
            tok = AutoTokenizer.from_pretrained("bert-base-uncased")
            ids = tok(text)
        """,
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
    ]

    def visit_Call(self, node: cst.Call) -> None:
        what = self._pretrained_load(node)
        if what is not None:
            self.record(node, what)

    def _pretrained_load(self, node: cst.Call) -> Optional[str]:
        qualified = self.ctx.call_name(node)
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "from_pretrained":
            return "from_pretrained()"
        if qualified is None:
            return None
        if qualified in PRETRAINED_LOADERS:
            return _short(qualified) + "()"
        if qualified == "timm.create_model":
            arg = get_arg(node, "pretrained")
            return "timm.create_model(pretrained=True)" if arg is not None and literal_value(arg.value) is True else None
        if qualified.startswith("torchvision.models."):
            weights, pretrained = get_arg(node, "weights"), get_arg(node, "pretrained")
            if weights is not None and literal_value(weights.value) is not None:
                return qualified.replace("torchvision.models.", "torchvision ") + "(weights=...)"
            if pretrained is not None and literal_value(pretrained.value) is True:
                return qualified.replace("torchvision.models.", "torchvision ") + "(pretrained=True)"
            return None
        if qualified.startswith("keras.applications.") and qualified.rsplit(".", 1)[-1][:1].isupper():
            weights = get_arg(node, "weights")
            if weights is None or literal_value(weights.value) is not None:
                return qualified.rsplit(".", 1)[-1] + "(weights='imagenet')"
        return None

    def leave_Module(self, node: cst.Module) -> None:
        loops = self.ctx.loops
        for candidate in self.candidates:
            if candidate.frame_cached:
                continue
            repetition = self.first_repetition(candidate, loops.repetitions(candidate.direct, candidate.frame))
            if repetition is not None:
                self.emit(candidate, repetition)
            elif not candidate.direct and not candidate.frame_guarded:
                self._per_call(candidate)

    def _per_call(self, candidate: Candidate) -> None:
        frame = candidate.frame
        if not isinstance(frame, cst.FunctionDef) or candidate.local_arg_names:
            return
        if frame.name.value in self.ctx.loops.callbacks:
            where = f"once per example or batch of the .map()/.apply() that calls {frame.name.value}()"
        elif any(
            _ROUTE_DECORATOR.search(self.ctx.module.code_for_node(d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator))
            for d in frame.decorators
        ):
            where = f"on every request handled by {frame.name.value}()"
        else:
            return
        self.report(
            candidate.node,
            f"{candidate.label} loads the model {where}; load it once at start-up and reuse it",
            SavingsEstimate(
                metric="repeated_work", low=1.0, high=99.0, unit="extra model loads",
                basis="one model load per call instead of one per process",
                hardware=self.ctx.hardware.key,
                assumptions=("the number of calls is not known statically",),
            ),
            statement=candidate.statement,
        )

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:
        self.report(
            candidate.node,
            f"{candidate.label} reloads pretrained weights {self.where(repetition)}; "
            "load the model once before the loop and reuse it",
            self.repeated_estimate(repetition, "model loads"),
            statement=candidate.statement,
        )


# -- GO103 --------------------------------------------------------------------------------

class DataLoaderRebuiltPerEpoch(RepeatedWorkRule):
    """Builds the DataLoader or Dataset again in every epoch.

    ## What it does
    Flags `torch.utils.data.DataLoader(..., num_workers=N)` (N not 0), a
    `torchvision.datasets` constructor or a `Dataset` subclass of the module
    constructed inside an epoch loop (or in a function of the module called
    once per epoch), when its arguments are the same in every epoch.

    ## Why is this bad
    A new DataLoader starts its worker processes again (each re-imports
    modules and receives a pickled copy of the dataset), and a new Dataset
    re-scans or re-reads its files. Reported costs range from seconds per
    epoch to minutes of data initialisation (open-mmlab/mmhuman3d PR #233:
    ~7 min to ~35 s after keeping workers alive).

    Not flagged: loaders whose inputs change with the epoch (curriculum
    learning, progressive resizing: the arguments use the epoch variable),
    DataLoaders with `num_workers=0` or no `num_workers` (no workers to
    restart; building the object itself is cheap), and loaders built inside
    a step loop for other reasons.

    ## Fix
    Build the Dataset and DataLoader once before the epoch loop; reshuffle
    with the sampler (`DistributedSampler.set_epoch(epoch)`), and keep
    workers alive with `persistent_workers=True` (see GO105).

    ## Estimate
    Repeated work: (epochs - 1) extra worker start-ups or dataset scans; the
    probe measures time-to-first-batch.
    """

    code = "GO103"
    name = "dataloader-rebuilt-per-epoch"
    family = "caching"
    has_probe = True
    loop_kinds = frozenset({"epoch"})
    tokens = ("DataLoader", "datasets", "Dataset")
    INVALID = [
        """
        from torch.utils.data import DataLoader
        for epoch in range(20):
            loader = DataLoader(train_set, batch_size=64, shuffle=True, num_workers=8)
            for x, y in loader:
                loss = model(x, y)
                loss.backward()
        """,
    ]
    VALID = [
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(train_set, batch_size=64, shuffle=True, num_workers=8)
        for epoch in range(20):
            for x, y in loader:
                loss = model(x, y)
                loss.backward()
        """,
        """
        from torch.utils.data import DataLoader
        for epoch in range(20):
            loader = DataLoader(subsets[epoch], batch_size=64, num_workers=8)
            for x, y in loader:
                model(x, y).backward()
        """,
    ]

    def visit_Call(self, node: cst.Call) -> None:
        qualified = self.ctx.call_name(node)
        if qualified == "torch.utils.data.DataLoader":
            workers = get_arg(node, "num_workers", 6)
            if workers is None or literal_value(workers.value) == 0:
                return
            self.record(node, "DataLoader", kind="loader")
        elif qualified and qualified.startswith("torchvision.datasets.") and qualified.rsplit(".", 1)[-1][:1].isupper():
            self.record(node, qualified.rsplit(".", 1)[-1], kind="dataset")
        elif qualified is None and isinstance(node.func, cst.Name) and self.ctx.dataset_classes.is_model_class(node.func.value):
            self.record(node, node.func.value, kind="dataset")

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:
        if candidate.extra.get("kind") == "loader":
            cost = "which restarts its worker processes each time"
            fix = "build it once before the loop (reshuffle with sampler.set_epoch, keep workers with persistent_workers=True)"
        else:
            cost = "which re-indexes or re-reads its files each time"
            fix = "build it once before the loop"
        self.report(
            candidate.node,
            f"{candidate.label}(...) is rebuilt {self.where(repetition)}, {cost}; {fix}",
            self.repeated_estimate(repetition, "loader start-ups"),
            statement=candidate.statement,
        )


RULES = [DataLoadInLoop, PretrainedLoadInLoop, DataLoaderRebuiltPerEpoch]

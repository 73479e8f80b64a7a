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
from greenops_lint.analysis.guards import is_guard
from greenops_lint.analysis.tree import display_name
from greenops_lint.analysis.names import BUILTIN_NAMES
from greenops_lint.analysis.loops import FrameNode, LoopInfo, Repetition, describe_repetition, referenced_names
from greenops_lint.analysis.rewrite import with_keyword
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.rule import Rule

# -- what counts as "loaded once" --------------------------------------------------

_PER_SAMPLE_FUNCTIONS = frozenset({"__getitem__", "__getitems__", "__iter__", "__next__", "__call__", "collate_fn"})
_CACHE_DECORATORS = frozenset(
    {"functools.lru_cache", "functools.cache", "functools.cached_property", "builtins.property", "joblib.Memory.cache"}
)
_HANDLE_NAME = re.compile(r"^(f|fh|fp|fd|fin|fo|fi|file|infile|handle|stream|buf|buffer|fileobj|reader|src)$")


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
            if is_guard(ancestor):
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
        the arguments that feed its parameters are loop-invariant at the call
        site, followed through at most two calls."""
        needed = set(candidate.local_arg_names)
        frame = candidate.frame
        module_names = set(self.ctx.names.scopes[0].names)
        for depth, site in enumerate(repetition.via):
            if not needed:
                return True
            expressions = bound_arguments(frame, site.call, needed)
            if expressions is None:
                return False  # a local that is not a parameter: not followed
            names: set[str] = set()
            for expression in expressions:
                names |= referenced_names(expression)
            if depth == len(repetition.via) - 1:
                variant: set[str] = set()
                for loop in site.loops:
                    variant |= loop.variant_names()
                    if loop is repetition.loop:
                        break
                return not (names & variant)
            frame = site.frame
            needed = {n for n in names if n not in module_names and n not in BUILTIN_NAMES}
        return not needed

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- message pieces ---------------------------------------------------------------
    def where(self, repetition: Repetition) -> str:
        return describe_repetition(repetition)

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


def bound_arguments(function: FrameNode, call: cst.Call, params: set[str]) -> Optional[list[cst.BaseExpression]]:
    """The argument expressions a call passes to the named parameters of
    `function` (none for a parameter left at its default); None when a name is
    not a parameter or the call uses *args/**kwargs."""
    if not isinstance(function, cst.FunctionDef) or any(arg.star for arg in call.args):
        return None
    positional = [p.name.value for p in (*function.params.posonly_params, *function.params.params)]
    if isinstance(call.func, cst.Attribute) and positional and positional[0] in ("self", "cls"):
        positional = positional[1:]
    keyword_only = {p.name.value for p in function.params.kwonly_params}
    passed_positional = [arg.value for arg in call.args if arg.keyword is None]
    passed_keyword = {arg.keyword.value: arg.value for arg in call.args if arg.keyword is not None}
    expressions = []
    for name in params:
        if name in passed_keyword:
            expressions.append(passed_keyword[name])
        elif name in positional:
            index = positional.index(name)
            if index < len(passed_positional):
                expressions.append(passed_positional[index])
        elif name not in keyword_only:
            return None
    return expressions


def _call_names(node: cst.Call) -> frozenset[str]:
    """Names the call reads: its arguments, and the receiver of a method call."""
    names: set[str] = set()
    if isinstance(node.func, cst.Attribute):
        names |= referenced_names(node.func.value)
    for arg in node.args:
        names |= referenced_names(arg.value)
    return frozenset(names)





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
# Calls that write a file: a load of the same path in the same loop reads what
# the loop just wrote (a checkpoint, a metrics file), which is not repeated work.
_WRITERS_FIRST_ARG = frozenset({"numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt", "h5py.File"})
_WRITERS_SECOND_ARG = frozenset({"torch.save", "pickle.dump", "json.dump", "joblib.dump", "yaml.dump", "yaml.safe_dump"})
_WRITER_METHODS = frozenset({"to_csv", "to_parquet", "to_json", "to_pickle", "to_feather", "to_hdf", "save_pretrained", "write_text", "write_bytes", "save"})
# Loaders that read a file object: given a handle opened outside the loop they
# read the next record each time (`while True: pickle.load(f)`), which is fine.
_STREAM_LOADERS = frozenset({"pickle.load", "json.load", "numpy.load", "torch.load", "joblib.load", "yaml.safe_load", "yaml.load"})


class DataLoadInLoop(RepeatedWorkRule):
    """Loads the same file or dataset on every epoch or step.

    ## What it does
    Flags a data load (`pd.read_csv/read_parquet/...`, `np.load/loadtxt`,
    `torch.load`, `pickle.load`, `json.load(open(...))`, `h5py.File`,
    `datasets.load_dataset/load_from_disk`, `PIL.Image.open`, `cv2.imread`,
    ...) inside an epoch loop or a training step loop, in a model method that
    the framework calls for every batch (`forward`, Lightning's
    `training_step`/`validation_step`, Keras' `train_step`/`call`), or in a
    function of the module called from one of these (two calls deep), when its
    arguments do not change from one iteration to the next (they do not use
    the loop variable or names assigned in the loop; for a helper, the
    arguments passed to the parameters the load uses).

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
    (`for attempt in range(3)`), `pickle.load(f)` / `json.load(f)` reading
    successive records from a handle opened before the loop, and a path that
    the same loop writes (`torch.save(..., "last.pt")` then
    `torch.load("last.pt")`, `to_csv`, `open(p, "w")`): that is new data.

    ## Fix
    Load once before the loop and reuse the object (copy it if the loop
    mutates it), or memoise the helper with `functools.lru_cache`. For data
    that does not fit in memory use a memory-mapped format (`np.load(...,
    mmap_mode="r")`, Arrow/Parquet, HF `datasets`) or `tf.data...cache()`.
    Autofix (unsafe: the loop may mutate the loaded object): when the load is
    a statement of its own (`df = pd.read_csv(...)`) directly in the body of
    the `for` loop that repeats it, and its name is assigned nowhere else in
    the loop, the statement moves to just before the loop.

    ## Estimate
    Repeated work: (iterations - 1) extra loads, where the iteration count is
    literal (`range(30)`, a default argument `epochs=30`); otherwise a range of
    1-99 with the assumption stated. The probe times one load of a file of the
    same kind to turn this into seconds.
    """

    code = "GO101"
    name = "data-load-in-loop"
    family = "caching"
    fixable = True
    fix_safety = "unsafe"
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

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        # id(loop) -> source texts of the paths written inside it: a file saved
        # and read back in the same loop (a checkpoint, metrics) is new data.
        self.written: dict[int, set[str]] = {}

    def visit_Call(self, node: cst.Call) -> None:
        qualified = self.ctx.call_name(node)
        written = self._written_path(node, qualified)
        if written is not None:
            for loop in self.ctx.loops.loops_at():
                self.written.setdefault(id(loop), set()).add(written)
            return
        if qualified not in DATA_LOADERS:
            return
        if qualified in _STREAM_LOADERS and self._reads_open_handle(node):
            return
        if qualified.startswith("yaml.") and not self._inline_open(node):
            return
        self.record(node, display_name(qualified), path=self._path_text(node))

    def _path_text(self, node: cst.Call) -> Optional[str]:
        first = get_arg(node, None, 0)
        if first is None:
            return None
        value = first.value
        if isinstance(value, cst.Call) and self.ctx.call_name(value) == "builtins.open" and value.args:
            value = value.args[0].value  # json.load(open(path))
        return self.ctx.module.code_for_node(value)

    def _written_path(self, node: cst.Call, qualified: Optional[str]) -> Optional[str]:
        """The path a call writes, as source text, or None."""
        if qualified in _WRITERS_FIRST_ARG or (
            qualified is None and isinstance(node.func, cst.Attribute) and node.func.attr.value in _WRITER_METHODS
        ):
            arg = get_arg(node, None, 0)
        elif qualified in _WRITERS_SECOND_ARG:
            arg = get_arg(node, None, 1)
            if arg is not None and isinstance(arg.value, cst.Call) and self.ctx.call_name(arg.value) == "builtins.open" and arg.value.args:
                arg = arg.value.args[0]
        elif qualified == "builtins.open":
            mode = get_arg(node, "mode", 1)
            if mode is None or not any(c in str(literal_value(mode.value)) for c in "wax+"):
                return None
            arg = get_arg(node, None, 0)
        else:
            return None
        return self.ctx.module.code_for_node(arg.value) if arg is not None else None

    def first_repetition(self, candidate: Candidate, repetitions: Iterable[Repetition]) -> Optional[Repetition]:
        path = candidate.extra.get("path")
        if path is not None:
            repetitions = [r for r in repetitions if path not in self.written.get(id(r.loop), ())]
        return super().first_repetition(candidate, repetitions)

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
            f"{self.ctx.snippet(candidate.node, 48)} loads the same data {self.where(repetition)}; "
            "load it once before the loop (or cache it) and reuse it",
            self.repeated_estimate(repetition, "loads"),
            statement=candidate.statement,
            fix=hoist_fix(candidate, repetition),
        )


def hoist_fix(candidate: Candidate, repetition: Repetition) -> Optional[Fix]:
    """Move `name = load(...)` from the top level of a `for` body to before the loop."""
    loop = repetition.loop.node
    statement = candidate.statement
    if repetition.via or not isinstance(loop, cst.For) or not isinstance(loop.body, cst.IndentedBlock):
        return None
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    assign = statement.body[0]
    if not (isinstance(assign, cst.Assign) and assign.value is candidate.node and len(assign.targets) == 1):
        return None
    target = assign.targets[0].target
    if not isinstance(target, cst.Name) or _assignments_of(loop.body, target.value) != 1:
        return None
    try:
        index = next(i for i, s in enumerate(loop.body.body) if s is statement)
    except StopIteration:
        return None

    def hoist(updated: cst.For):
        body = list(updated.body.body)
        moved = body.pop(index)
        if not body:
            return updated
        return cst.FlattenSentinel([moved, updated.with_changes(body=updated.body.with_changes(body=body))])

    return Fix(loop, hoist, safe=False, title="load once before the loop")


def _assignments_of(block: cst.CSTNode, name: str) -> int:
    from greenops_lint.walker import children

    count = 0
    stack = [block]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.AssignTarget) and isinstance(node.target, cst.Name) and node.target.value == name:
            count += 1
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign, cst.For, cst.NamedExpr)) and name in referenced_names(
            node.target if not isinstance(node, cst.NamedExpr) else node.target
        ):
            count += 2  # assigned another way too: leave the loop alone
        stack.extend(children(node))
    return count


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
            return display_name(qualified) + "()"
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


# -- GO104 --------------------------------------------------------------------------------

_TF_FILE_SOURCES = frozenset(
    {
        "tensorflow.data.TFRecordDataset", "tensorflow.data.TextLineDataset", "tensorflow.data.FixedLengthRecordDataset",
        "tensorflow_datasets.load", "tensorflow.data.experimental.make_csv_dataset",
    }
)
_TF_MEMORY_SOURCES = frozenset(
    {"tensorflow.data.Dataset.from_tensor_slices", "tensorflow.data.Dataset.from_tensors", "tensorflow.data.Dataset.list_files"}
)
_READS = re.compile(r"(read|decode|load|parse|open|imread)", re.IGNORECASE)


@dataclass
class TFPipeline:
    """What a tf.data chain does, followed through `ds = ds.map(...)` reassignments."""

    node: cst.BaseExpression  # the last expression that extended it
    statement: Optional[cst.CSTNode]
    reads_files: bool
    has_cache: bool
    lists_files: bool = False


class TFDataNoCache(RepeatedWorkRule):
    """Reads and decodes the same files in every epoch of a tf.data pipeline.

    ## What it does
    Flags a `tf.data` pipeline that reads files (`TFRecordDataset`,
    `TextLineDataset`, `tfds.load`, or `list_files`/`from_tensor_slices`
    followed by a `.map()` or `.interleave()` that reads or decodes) and is
    consumed for several epochs (`model.fit(ds, epochs=N)` with N > 1 or not
    literal, or a `for batch in ds:` inside an epoch loop) with no `.cache()`
    anywhere in the chain, following `ds = ds.map(...)` reassignments and
    pipelines that a function of the module builds and returns.

    ## Why is this bad
    Without a cache every epoch opens, reads and decodes every file again.
    The tf.data performance guide: with `.cache()`, the transformations before
    it "(like the file opening and data reading) are executed only during the
    first epoch".

    Not flagged: in-memory pipelines (`from_tensor_slices(arrays)` without a
    reading map), a chain with `.cache()` or `.cache(filename)` anywhere, a
    single epoch (`epochs=1`). When the data does not fit in memory, use
    `.cache(filename)` on local disk.

    ## Fix
    Insert `.cache()` after the deterministic, expensive steps (read, decode,
    resize) and before random augmentation, `shuffle` and `batch`.

    ## Estimate
    Repeated work: (epochs - 1) extra passes of reading and decoding, when the
    epoch count is literal.
    """

    code = "GO104"
    name = "tfdata-no-cache"
    family = "caching"
    loop_kinds = frozenset({"epoch"})
    tokens = ("TFRecordDataset", "TextLineDataset", "tfds", "list_files", "from_tensor_slices", "make_csv_dataset")
    INVALID = [
        """
        import tensorflow as tf
        ds = tf.data.TFRecordDataset(files).map(parse_example).batch(32)
        model.fit(ds, epochs=10)
        """,
    ]
    VALID = [
        """
        import tensorflow as tf
        ds = tf.data.TFRecordDataset(files).map(parse_example).cache().batch(32)
        model.fit(ds, epochs=10)
        """,
        """
        import tensorflow as tf
        ds = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(32)
        model.fit(ds, epochs=10)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.pipelines: dict[str, TFPipeline] = {}
        self.returned: dict[str, TFPipeline] = {}  # function name -> the pipeline it returns
        self.reported: set[int] = set()

    def visit_Return(self, node: cst.Return) -> None:
        function = self.ctx.enclosing_function()
        if function is not None and node.value is not None:
            found = self.pipeline(node.value) if not isinstance(node.value, cst.Name) else self.pipelines.get(node.value.value)
            if found is not None:
                self.returned[function.name.value] = found

    def pipeline(self, node: cst.BaseExpression) -> Optional[TFPipeline]:
        """Follow a method chain down to its source."""
        methods: list[cst.Call] = []
        current = node
        while isinstance(current, cst.Call) and isinstance(current.func, cst.Attribute) and self.ctx.call_name(current) is None:
            methods.append(current)
            current = current.func.value
        lists_files = False
        if isinstance(current, cst.Name) and current.value in self.pipelines:
            base = self.pipelines[current.value]
            reads, cached, lists_files = base.reads_files, base.has_cache, base.lists_files
        elif isinstance(current, cst.Call) and isinstance(current.func, cst.Name) and current.func.value in self.returned:
            # `train_ds = make_dataset(files)`: the pipeline a helper returns,
            # reported in the helper (where .cache() goes) unless extended here.
            base = self.returned[current.func.value]
            if not methods:
                return base
            reads, cached, lists_files = base.reads_files, base.has_cache, base.lists_files
        elif isinstance(current, cst.Call):
            qualified = self.ctx.call_name(current)
            if qualified in _TF_FILE_SOURCES:
                reads, cached = True, False
            elif qualified in _TF_MEMORY_SOURCES:
                reads, cached = False, False
                lists_files = qualified.endswith("list_files")
            else:
                return None
        else:
            return None
        for call in reversed(methods):  # source first
            method = call.func.attr.value
            if method == "cache":
                cached = True
            elif method in ("map", "interleave", "flat_map", "parallel_interleave") and call.args:
                # A map over file names reads the files; other maps read when
                # their function does (a lambda, a def or a factory of the module).
                if lists_files or _READS.search(self._function_text(call.args[0].value)):
                    reads = True
                    cached = False  # a cache before the reading step does not save the reading
        return TFPipeline(node, self.ctx.enclosing_statement(), reads, cached, lists_files)

    def _function_text(self, node: cst.BaseExpression) -> str:
        target = node
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Name):
            target = node.func  # a factory: make_parser(...) returns the map function
        if isinstance(target, cst.Name):
            bound = self.ctx.names.lookup(target.value)
            if isinstance(bound, cst.FunctionDef):
                return self.ctx.module.code_for_node(bound)
        return self.ctx.module.code_for_node(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        # Runs before the walker rebinds the target, so `ds = ds.map(...)`
        # still sees the previous pipeline.
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            found = self.pipeline(node.value)
            name = node.targets[0].target.value
            if found is not None:
                self.pipelines[name] = found
            else:
                self.pipelines.pop(name, None)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "fit"):
            return
        data = get_arg(node, "x", 0)
        epochs = get_arg(node, "epochs", 2)
        if data is None or epochs is None:
            return
        count = literal_value(epochs.value)
        if isinstance(epochs.value, cst.Name):
            bound = self.ctx.value_of(epochs.value)
            count = literal_value(bound) if isinstance(bound, cst.BaseExpression) else count
        if isinstance(count, int) and not isinstance(count, bool) and count <= 1:
            return
        pipe = self._consumed(data.value)
        if pipe is not None:
            self._emit_pipeline(pipe, f"each of the {count} epochs of .fit()" if isinstance(count, int) else "every epoch of .fit()", count if isinstance(count, int) else None)

    def visit_For(self, node: cst.For) -> None:
        pipe = self._consumed(node.iter)
        if pipe is not None:
            candidate = self.record(cst.Call(func=cst.Name("iter")), "pipeline", pipe=pipe)
            candidate.direct = candidate.direct[1:]  # the loops around this for, not itself
            candidate.arg_names = frozenset()

    def _consumed(self, node: cst.BaseExpression) -> Optional[TFPipeline]:
        if isinstance(node, cst.Name):
            pipe = self.pipelines.get(node.value)
        else:
            pipe = self.pipeline(node)
        return pipe if pipe is not None and pipe.reads_files and not pipe.has_cache else None

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:
        count = repetition.loop.count
        self._emit_pipeline(candidate.extra["pipe"], f"every iteration of the {repetition.loop.describe()}", count)

    def _emit_pipeline(self, pipe: TFPipeline, where: str, count: Optional[int]) -> None:
        if id(pipe.node) in self.reported:
            return
        self.reported.add(id(pipe.node))
        low, high = (float(count - 1),) * 2 if count else (1.0, 99.0)
        self.report(
            pipe.node,
            f"this tf.data pipeline reads and decodes its files again in {where}; "
            "add .cache() after the deterministic map (before shuffle, augmentation and batch)",
            SavingsEstimate(
                metric="repeated_work", low=low, high=high, unit="extra passes over the files",
                basis="tf.data guide: with .cache() file opening and reading run only in the first epoch",
                hardware=self.ctx.hardware.key,
                assumptions=("the epoch count is literal" if count else "the epoch count is not literal",),
            ),
            statement=pipe.statement,
        )


# -- GO105 --------------------------------------------------------------------------------

class DataLoaderNotPersistent(RepeatedWorkRule):
    """Restarts the DataLoader's worker processes at the start of every epoch.

    ## What it does
    Flags a `DataLoader(..., num_workers=N)` (N not 0) without
    `persistent_workers=True` that is iterated inside an epoch loop (or any
    outer loop), directly, in a function of the module called from it, or in
    a function it is passed to (`train(model, train_loader)` once per epoch).
    Off by default (info): the cost depends on the platform and the dataset.

    ## Why is this bad
    At the end of each pass the loader shuts its workers down and starts new
    ones for the next: each re-imports the training script's modules and
    receives a fresh pickled copy of the dataset. On Linux with a small
    dataset this is well under a second; with spawn start-up (Windows, macOS)
    or a large in-memory dataset it was seconds to minutes per epoch
    (pytorch/ignite #1938, open-mmlab/mmhuman3d PR #233).

    Not flagged: `num_workers=0`, `persistent_workers=True`, a loader
    iterated once.

    ## Fix
    Pass `persistent_workers=True` (PyTorch >= 1.7). If the dataset changes
    its state between epochs in the main process, the persistent workers
    keep their old copy: then leave it off. Autofix: unsafe for that reason
    (the rule catalog's call; the workers also stay resident between epochs);
    `--unsafe-fixes` adds `persistent_workers=True`.

    ## Estimate
    Repeated work: (epochs - 1) worker start-ups.
    """

    code = "GO105"
    name = "dataloader-not-persistent"
    family = "caching"
    severity = "info"
    default_enabled = False
    fixable = True
    fix_safety = "unsafe"
    loop_kinds = frozenset({"epoch", "loop"})
    tokens = ("num_workers",)
    INVALID = [
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(train_set, batch_size=64, num_workers=8)
        for epoch in range(10):
            for x, y in loader:
                model(x).sum().backward()
        """,
    ]
    VALID = [
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(train_set, batch_size=64, num_workers=8, persistent_workers=True)
        for epoch in range(10):
            for x, y in loader:
                model(x).sum().backward()
        """,
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(test_set, batch_size=64, num_workers=8)
        for x, y in loader:
            predict(x)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        # (scope, name) -> (the DataLoader call, its statement, the loops around it)
        self.loaders: dict[tuple[int, str], tuple[cst.Call, Optional[cst.CSTNode], frozenset[int]]] = {}
        self.param_iterations: dict[int, list[tuple[str, tuple[LoopInfo, ...]]]] = {}
        self.passes: list[tuple] = []

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) != 1:
            return
        key = self._key(node.targets[0].target, assigning=True)
        call = node.value
        if key is None:
            return
        self.loaders.pop(key, None)
        if not isinstance(call, cst.Call) or self.ctx.call_name(call) != "torch.utils.data.DataLoader":
            return
        workers = get_arg(call, "num_workers", 6)
        persistent = get_arg(call, "persistent_workers")
        if workers is None or literal_value(workers.value) == 0 or any(a.star == "**" for a in call.args):
            return
        if persistent is not None and literal_value(persistent.value) is not False:
            return
        # The loops around the construction: a loader built inside a loop is
        # new on each pass of that loop (GO103's concern, not this rule's).
        built_in = frozenset(id(loop) for loop in self.ctx.loops.loops_at())
        self.loaders[key] = (call, self.ctx.enclosing_statement(), built_in)

    def visit_For(self, node: cst.For) -> None:
        iterable = node.iter
        while isinstance(iterable, cst.Call) and self.ctx.call_name(iterable) in ("builtins.enumerate", "tqdm.tqdm", "tqdm.auto.tqdm") and iterable.args:
            iterable = iterable.args[0].value
        frame = self.ctx.loops.current_frame
        if isinstance(iterable, cst.Name) and isinstance(frame, cst.FunctionDef) and iterable.value in _param_names(frame):
            # `def train(loader): for x in loader` -- resolved against call sites at the end.
            self.param_iterations.setdefault(id(frame), []).append((iterable.value, self.ctx.loops.loops_at()[1:]))
        key = self._key(iterable)
        if key in self.loaders:
            call, statement, built_in = self.loaders[key]
            candidate = self.record(cst.Call(func=cst.Name("iter")), key[1], loader=call, built_in=built_in)
            candidate.direct = candidate.direct[1:]
            candidate.arg_names = frozenset()
            candidate.statement = statement

    def visit_Call(self, node: cst.Call) -> None:
        # A loader handed to a function of the module that iterates it.
        for arg in node.args:
            key = self._key(arg.value) if not arg.star else None
            if key in self.loaders:
                call, statement, built_in = self.loaders[key]
                loops = self.ctx.loops
                self.passes.append((node, arg.value, key[1], call, statement, built_in, loops.loops_at(), loops.current_frame))

    def _key(self, node: cst.BaseExpression, assigning: bool = False) -> Optional[tuple[int, str]]:
        """Loader names are per scope; `self.x` loaders per class."""
        name = _target_key(node)
        if name is None:
            return None
        names = self.ctx.names
        if name.startswith("self."):
            scope = names.enclosing_class_scope()
            return (id(scope), name) if scope is not None else None
        if assigning:
            return (id(names.current), name)
        for scope in reversed(names.scopes):
            if name in scope.names:
                return (id(scope), name)
        return None

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:
        loader = candidate.extra["loader"]
        self.report(
            loader,
            f"{candidate.label} is iterated {self.where(repetition)} and restarts its worker processes on each pass; "
            "pass persistent_workers=True",
            self.repeated_estimate(repetition, "worker start-ups"),
            statement=candidate.statement,
            fix=Fix(loader, lambda updated: with_keyword(updated, "persistent_workers", cst.Name("True")), safe=False,
                    title="persistent_workers=True"),
        )

    def leave_Module(self, node: cst.Module) -> None:
        reported: set[int] = set()
        loops = self.ctx.loops
        self._resolve_passes(reported)
        for candidate in self.candidates:
            loader = candidate.extra["loader"]
            if id(loader) in reported:
                continue
            outer = tuple(loop for loop in candidate.direct if id(loop) not in candidate.extra["built_in"])
            if len(outer) < len(candidate.direct):
                continue  # rebuilt inside the repeating loop: one pass per loader
            repetition = self.first_repetition(candidate, loops.repetitions(outer, candidate.frame))
            if repetition is not None:
                reported.add(id(loader))
                self.emit(candidate, repetition)


    def _resolve_passes(self, reported: set[int]) -> None:
        loops = self.ctx.loops
        for call, value, label, loader, statement, built_in, site_loops, site_frame in self.passes:
            if id(loader) in reported:
                continue
            name = call.func.value if isinstance(call.func, cst.Name) else (
                call.func.attr.value if isinstance(call.func, cst.Attribute) else None
            )
            for function in loops.functions.get(name, ()):
                for param, inner_loops in self.param_iterations.get(id(function), ()):
                    bound = bound_arguments(function, call, {param})
                    if not bound or bound[0] is not value:
                        continue
                    if inner_loops:
                        direct = inner_loops  # the callee itself iterates it repeatedly
                    elif any(id(loop) in built_in for loop in site_loops):
                        continue  # a new loader on each pass of the caller's loop
                    else:
                        direct = site_loops
                    candidate = Candidate(
                        node=loader, label=label, statement=statement, direct=direct,
                        frame=site_frame if not inner_loops else function, arg_names=frozenset(),
                        local_arg_names=frozenset(), extra={"loader": loader},
                    )
                    repetition = self.first_repetition(candidate, loops.repetitions(candidate.direct, site_frame))
                    if repetition is not None:
                        reported.add(id(loader))
                        self.emit(candidate, repetition)
                        break
                if id(loader) in reported:
                    break


def _param_names(function: cst.FunctionDef) -> set[str]:
    params = function.params
    return {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}


def _target_key(node: cst.BaseExpression) -> Optional[str]:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
        return f"self.{node.attr.value}"
    return None


RULES = [DataLoadInLoop, PretrainedLoadInLoop, DataLoaderRebuiltPerEpoch, TFDataNoCache, DataLoaderNotPersistent]

"""GO101 data-load-in-loop: the same file or dataset loaded on every epoch or step."""

from __future__ import annotations

import re
from typing import Iterable, Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.candidates import Candidate, bound_arguments
from greenops_lint.analysis.loops import LoopInfo, Repetition
from greenops_lint.analysis.tree import display_name, param_names
from greenops_lint.rule import Invalid
from greenops_lint.rules.caching._hoist import _LoopBody, hoist_fix
from greenops_lint.rules.caching._shared import RepeatedWorkRule
from greenops_lint.savings import SOURCE_COUNTED

# -- estimate (`## Estimate`): (iterations - 1) extra loads, `_shared.UNKNOWN_REPEATS` when the count is not literal
REPEATED = "loads"

DATA_LOADERS = frozenset(
    {
        *(
            f"pandas.read_{k}"
            for k in ("csv", "table", "parquet", "feather", "json", "excel", "pickle", "hdf", "orc", "fwf")
        ),
        *(f"numpy.{k}" for k in ("load", "loadtxt", "genfromtxt", "fromfile")),
        *(f"polars.read_{k}" for k in ("csv", "parquet", "json", "ipc")),
        "torch.load",
        "pickle.load",
        "json.load",
        "joblib.load",
        "h5py.File",
        "scipy.io.loadmat",
        "datasets.load_dataset",
        "datasets.load_from_disk",
        "tensorflow_datasets.load",
        "keras.utils.image_dataset_from_directory",
        "keras.utils.text_dataset_from_directory",
        "keras.preprocessing.image_dataset_from_directory",
        "PIL.Image.open",
        "cv2.imread",
        "imageio.imread",
        "imageio.v3.imread",
        "skimage.io.imread",
        "torchvision.io.read_image",
        "yaml.safe_load",
        "yaml.load",
        "safetensors.torch.load_file",
    }
)
# Calls that write a file: a load of the same path in the same loop reads what
# the loop just wrote (a checkpoint, a metrics file), which is not repeated work.
_WRITERS_FIRST_ARG = frozenset({"numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt"})
# Calls that write only in a writing mode (`open(p, "a")`, `h5py.File(p, "w")`).
_OPENERS = frozenset({"builtins.open", "io.open", "gzip.open", "h5py.File"})
_WRITERS_SECOND_ARG = frozenset(
    {"torch.save", "pickle.dump", "json.dump", "joblib.dump", "yaml.dump", "yaml.safe_dump"}
)
_WRITER_METHODS = frozenset(
    {
        "to_csv",
        "to_parquet",
        "to_json",
        "to_pickle",
        "to_feather",
        "to_hdf",
        "save_pretrained",
        "write_text",
        "write_bytes",
        "save",
    }
)
_RECEIVER_WRITERS = frozenset({"write_text", "write_bytes"})  # `Path(p).write_text(data)`
# Loaders that read a file object: given a handle opened outside the loop they
# read the next record each time (`while True: pickle.load(f)`), which is fine.
_STREAM_LOADERS = frozenset(
    {"pickle.load", "json.load", "numpy.load", "torch.load", "joblib.load", "yaml.safe_load", "yaml.load"}
)

# `if path.exists():` / `os.path.exists(path)` around a load of `path`: the loop waits for the file.
_EXISTS_METHODS = frozenset({"exists", "is_file"})
_EXISTS_FUNCTIONS = frozenset({"os.path.exists", "os.path.isfile", "tensorflow.io.gfile.exists"})
_PATH_CLASSES = frozenset({"pathlib.Path", "pathlib.PurePath"})

_HANDLE_NAME = re.compile(r"^(f|fh|fp|fd|fin|fo|fi|file|infile|handle|stream|buf|buffer|fileobj|reader|src)$")


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
    successive records from a handle opened before the loop, a path that
    the same loop writes (`torch.save(..., "last.pt")` then
    `torch.load("last.pt")`, `to_csv(p, mode="a")`, `open(p, "w")`, also in a
    helper of the module it calls, or through a handle its function opens
    for writing or appending: a results log re-read each generation): that
    is new data; a load under `if path.exists():` (`os.path.exists(path)`,
    `os.path.isfile(path)`) of its own path in the loop, which waits for the
    file to appear and so expects the loop to write it (YOLOv5's hyperparameter
    evolution re-reads `evolve.csv`, which a helper of another module appends
    to each generation); a branch that loads once and then leaves the loop with
    `return`, `break` or `raise` (restoring the best checkpoint on the
    early-stop path); and test files.

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
    estimate_sources = {
        SOURCE_COUNTED: "any hardware: (iterations - 1) from the loop's literal count, else 1-99 assumed; `greenops-lint probe` times one load",
    }
    fixable = True
    fix_safety = "unsafe"
    tokens = ("read_", "load", "File", "open", "imread", "read_image")
    INVALID = [
        Invalid(
            """
            import pandas as pd
            for epoch in range(10):
                df = pd.read_csv("train.csv")
                for batch in loader:
                    loss = model(batch).mean()
                    loss.backward()
            """,
            line=3,
            message="loads the same data on every iteration of the epoch loop (10 iterations)",
            fixed="""
            import pandas as pd
            df = pd.read_csv("train.csv")
            for epoch in range(10):
                for batch in loader:
                    loss = model(batch).mean()
                    loss.backward()
            """,
        ),
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
        """
        import torch
        for epoch in range(num_epochs):
            for x, y in loader:
                model(x, y).backward()
            if stopper.should_stop(epoch):
                model.load_state_dict(torch.load("best.pt"))
                return losses
        """,
        """
        import pandas as pd
        for generation in range(generations):
            for x, y in loader:
                model(x, y).backward()
            pd.DataFrame([scores]).to_csv("results.csv", mode="a", header=False)
            history = pd.read_csv("results.csv")
        """,
        """
        import numpy as np
        from utils import print_mutation
        def train(hyp, loader):
            for x, y in loader:
                model(x, y).backward()
        for _ in range(generations):
            if evolve_csv.exists():
                history = np.loadtxt(evolve_csv, ndmin=2, delimiter=",")
                hyp = mutate(history)
            results = train(hyp, loader)
            print_mutation(results, hyp, save_dir)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        # id(loop) -> source texts of the paths written inside it: a file saved
        # and read back in the same loop (a checkpoint, metrics) is new data.
        self.written: dict[int, set[str]] = {}
        # id(frame) -> paths opened for writing or appending anywhere in it (a
        # log handle opened before the loop and written in it).
        self.opened: dict[int, set[str]] = {}
        # function name -> (function, path text) it writes: a helper that
        # appends to a results file, called from the loop.
        self.helper_writes: dict[str, list[tuple[cst.FunctionDef, str]]] = {}
        self._written_by_loop: dict[int, set[str]] = {}
        self._bodies: dict[int, _LoopBody] = {}  # id(loop) -> what the hoist fix needs, computed once
        # The path text of the load being recorded, for `extra_guard` (None outside `record`).
        self._recording_path: Optional[str] = None

    def visit_Call(self, node: cst.Call) -> None:
        qualified = self.ctx.call_name(node)
        written = self._written_path(node, qualified)
        if written is not None:
            loops = self.ctx.loops
            for loop in loops.loops_at():
                self.written.setdefault(id(loop), set()).add(written)
            frame = loops.current_frame
            self.opened.setdefault(id(frame), set()).add(written)
            if isinstance(frame, cst.FunctionDef):
                self.helper_writes.setdefault(frame.name.value, []).append((frame, written))
            return
        if qualified not in DATA_LOADERS:
            return
        if qualified in _STREAM_LOADERS and self._reads_open_handle(node):
            return
        if qualified.startswith("yaml.") and not self._inline_open(node):
            return
        path = self._path_text(node)
        self._recording_path = path
        try:
            self.record(node, display_name(qualified), path=path)
        finally:
            self._recording_path = None

    def extra_guard(self, node: cst.CSTNode, child: cst.CSTNode, variant) -> bool:
        """Also a guard: `if path.exists():` around a load of that same path. A
        loop that checks each time whether the file is there expects it to
        appear, so something in the loop writes it: the load reads new data."""
        if super().extra_guard(node, child, variant):
            return True
        path = self._recording_path
        return path is not None and isinstance(node, cst.If) and child is node.body and self._checks(node.test, path)

    def _checks(self, test: cst.BaseExpression, path: str) -> bool:
        """`test` is, or `and`s in, an existence check of `path` (source text)."""
        if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
            return self._checks(test.left, path) or self._checks(test.right, path)
        if not isinstance(test, cst.Call):
            return False
        code = self.ctx.module.code_for_node
        if self.ctx.call_name(test) in _EXISTS_FUNCTIONS:
            first = get_arg(test, None, 0)
            return first is not None and code(first.value) == path
        if isinstance(test.func, cst.Attribute) and test.func.attr.value in _EXISTS_METHODS and not test.args:
            receiver = test.func.value
            if isinstance(receiver, cst.Call) and self.ctx.call_name(receiver) in _PATH_CLASSES and receiver.args:
                receiver = receiver.args[0].value  # Path(path).exists()
            return code(receiver) == path
        return False

    def _path_text(self, node: cst.Call) -> Optional[str]:
        first = get_arg(node, None, 0)
        if first is None:
            return None
        value = first.value
        if self._is_open(value) and value.args:
            value = value.args[0].value  # json.load(open(path))
        return self.ctx.module.code_for_node(value)

    def _written_path(self, node: cst.Call, qualified: Optional[str]) -> Optional[str]:
        """The path a call writes, as source text, or None."""
        method = node.func.attr.value if isinstance(node.func, cst.Attribute) else None
        if qualified in _WRITERS_FIRST_ARG or (qualified is None and method in _WRITER_METHODS):
            arg = get_arg(node, None, 0)
            if method in _RECEIVER_WRITERS and qualified is None:
                receiver = node.func.value  # Path(p).write_text(data): the path is the receiver
                if isinstance(receiver, cst.Call) and receiver.args:
                    receiver = receiver.args[0].value
                return self.ctx.module.code_for_node(receiver)
        elif qualified in _WRITERS_SECOND_ARG:
            arg = get_arg(node, None, 1)
            if arg is not None and self._is_open(arg.value) and arg.value.args:
                arg = arg.value.args[0]  # json.dump(obj, open(path, "w"))
        elif qualified in _OPENERS:
            mode = get_arg(node, "mode", 1)
            if mode is None or not any(c in str(literal_value(mode.value)) for c in "wax+"):
                return None
            arg = get_arg(node, None, 0)
        else:
            return None
        return self.ctx.module.code_for_node(arg.value) if arg is not None else None

    def repetitions(self, candidate: Candidate) -> Iterable[Repetition]:
        path = candidate.extra.get("path")
        repetitions = super().repetitions(candidate)
        if path is None:
            return repetitions
        return [r for r in repetitions if path not in self.written_by(r.loop)]

    def written_by(self, loop: LoopInfo) -> set[str]:
        """The paths a loop writes: in its body, in a function of the module it
        calls (a helper appending to a results file, with its path parameter
        bound at the call site), or through a handle its function opens for
        writing or appending (a log written each generation and read back)."""
        found = self._written_by_loop.get(id(loop))
        if found is not None:
            return found
        found = set(self.written.get(id(loop), ())) | self.opened.get(id(loop.frame), set())
        for name in loop.calls:
            for function, text in self.helper_writes.get(name, ()):
                found.add(text)
                if text not in param_names(function):
                    continue
                for site in self.ctx.loops.call_sites.get(name, ()):
                    if loop in site.loops:
                        for expression in bound_arguments(function, site.call, {text}) or ():
                            found.add(self.ctx.module.code_for_node(expression))
        self._written_by_loop[id(loop)] = found
        return found

    def _reads_open_handle(self, node: cst.Call) -> bool:
        first = get_arg(node, None, 0) or get_arg(node, "f") or get_arg(node, "file") or get_arg(node, "fp")
        if first is None or not isinstance(first.value, cst.Name):
            return False
        if _HANDLE_NAME.match(first.value.value):
            return True
        value = self.ctx.value_of(first.value)
        return isinstance(value, cst.Call) and self.ctx.call_name(value) in (
            "builtins.open",
            "gzip.open",
            "io.open",
            "bz2.open",
        )

    def _inline_open(self, node: cst.Call) -> bool:
        first = get_arg(node, None, 0)
        return first is not None and self._is_open(first.value)

    def _is_open(self, node: cst.BaseExpression) -> bool:
        return isinstance(node, cst.Call) and self.ctx.call_name(node) == "builtins.open"

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:
        self.report(
            candidate.node,
            f"{self.ctx.snippet(candidate.node, 48)} loads the same data {self.where(repetition)}; "
            "load it once before the loop (or cache it) and reuse it",
            self.repeated_estimate(repetition, REPEATED),
            statement=candidate.statement,
            fix=hoist_fix(candidate, repetition, self._bodies),
        )

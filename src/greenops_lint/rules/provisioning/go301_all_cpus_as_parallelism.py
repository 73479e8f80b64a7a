"""GO301: a worker or thread pool sized to every logical CPU of the host."""

from __future__ import annotations

import re
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg
from greenops_lint.analysis.parallelism import host_cpu_source, is_cpu_count_call, literal_str
from greenops_lint.analysis.tree import display_name
from greenops_lint.finding import Fix
from greenops_lint.rule import Invalid, Rule, RuleOption
from greenops_lint.rules.provisioning._shared import (
    GENERIC_WORKER_KEYWORDS,
    PROCESS_KEYWORDS,
    loader_like_call,
    method_name,
    names_a_pool,
    option_names,
    torch_thread_estimate,
    worker_estimate,
)
from greenops_lint.savings import SOURCE_CPU

# The estimates are the family's: `worker_estimate` for worker counts and
# `torch_thread_estimate` for thread counts, from the constants in `_shared.py`
# that the `## Estimate` section quotes.
# The count the message suggests and the unsafe fix caps `os.cpu_count()` at.
CAP = 8

# Keywords that size a pool of threads (TF1 ConfigProto and friends).
_THREAD_KEYWORDS = frozenset({"intra_op_parallelism_threads", "inter_op_parallelism_threads"})
# `workers=` only means loader workers on training/inference entry points
# (Keras fit, Ultralytics train); elsewhere (web servers) it is something else.
_WORKERS_METHODS = frozenset({"fit", "fit_generator", "train", "evaluate", "predict", "val"})
_THREAD_SETTERS = frozenset(
    {
        "torch.set_num_threads",
        "torch.set_num_interop_threads",
        "tensorflow.config.threading.set_intra_op_parallelism_threads",
        "tensorflow.config.threading.set_inter_op_parallelism_threads",
    }
)
_THREAD_ENV = frozenset(
    {
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "TF_NUM_INTRAOP_THREADS",
        "TF_NUM_INTEROP_THREADS",
    }
)
# Text that shows a scope builds data loaders, and a module that does ML.
_LOADER_TEXT = re.compile(r"DataLoader|DataModule|_loader\b|loader\(|num_proc=|load_dataset")
_ML_MODULE = re.compile(r"\b(torch|tensorflow|keras|transformers|datasets|lightning|pytorch_lightning)\b")

_WORKERS_MESSAGE = (
    "{shown} starts one worker per logical CPU of the host (cpu_count() ignores container quotas, "
    "and every DDP rank starts as many again); use a capped, configurable count such as "
    f"min({CAP}, len(os.sched_getaffinity(0)))"
)
_ENV_MESSAGE = (
    "{shown} sizes every OpenMP/BLAS pool to all logical CPUs of the host; under a CPU quota or with "
    "several ranks the threads outnumber the cores; leave the default or set a per-process share"
)
_THREADS_MESSAGE = (
    "{shown} uses one thread per logical CPU of the host; under a CPU quota or with several ranks the "
    "threads outnumber the cores; set a per-process share such as len(os.sched_getaffinity(0)) // local_world_size"
)


class AllCpusAsParallelism(Rule):
    """Sizes a worker or thread pool to every logical CPU of the host.

    ## What it does
    Flags worker and thread counts set to the number of CPUs the host has, or
    more: `os.cpu_count()`, `multiprocessing.cpu_count()` (any alias, such as
    `import multiprocessing as mp` or `from multiprocessing import cpu_count as
    ncpu`), `psutil.cpu_count()`, `len(os.sched_getaffinity(0))`,
    `os.process_cpu_count()`, and multiples of them (`2 * os.cpu_count()`,
    `os.cpu_count() + 4`, `os.cpu_count() or 1`, `max(1, os.cpu_count())`),
    when they are passed as

    * `num_workers=` (PyTorch `DataLoader`, also through `functools.partial`),
      `dataloader_num_workers=` (HF `TrainingArguments`), `num_proc=` (HF
      datasets `.map`/`.filter`/`load_dataset`), `preprocessing_num_workers=`,
      `workers=` of `fit`/`train` (Keras, Ultralytics);
    * `torch.set_num_threads`, `torch.set_num_interop_threads`,
      `tf.config.threading.set_intra_op_parallelism_threads` /
      `set_inter_op_parallelism_threads`, `intra_op_parallelism_threads=` /
      `inter_op_parallelism_threads=` of a TF1 `ConfigProto`;
    * `os.environ["OMP_NUM_THREADS" | "MKL_NUM_THREADS" | "OPENBLAS_NUM_THREADS" | ...]`
      (also `os.environ.setdefault`, `os.environ.update`, `os.putenv`).

    The value is followed through names: `NUM_WORKERS = os.cpu_count()` at the
    top of the module is reported where a loader uses it, far below; a helper
    of the module that returns the count is followed one call deep. It also
    flags the same values as the default of a parameter or an argparse option
    named like a worker or thread count (`def make_loader(ds,
    num_workers=os.cpu_count())`, `add_argument("--workers",
    default=os.cpu_count())`) and as a class-level config field
    (`num_workers: int = os.cpu_count()`), since nothing else uses them.

    Not flagged: capped or reduced counts: `min(8, os.cpu_count())`,
    `os.cpu_count() // 2` or any division, and `os.cpu_count() - k`, also
    inside `max(1, os.cpu_count() - 2)`. The last one is borderline (it still
    reads the host count, so in a container it can be far too many) but it
    shows that somebody sized the pool on purpose and left cores for the main
    process: the rule reports the unconsidered "all of them" only. Also not
    flagged: `psutil.cpu_count(logical=False)` (physical cores, a deliberate
    choice), `joblib.cpu_count()` (it reads cgroup quotas), `tf.data.AUTOTUNE`,
    counts read from the command line or config, values built with
    `dict(num_workers=...)` or `**kwargs` (not followed), and `n_jobs=`
    (GO302/GO303).

    ## Why is this bad
    `os.cpu_count()` is the number of logical CPUs of the machine, not the
    number this process may use: it ignores container CPU quotas and affinity
    (Python docs), so a job limited to 2 CPUs on a 64-CPU host starts 64
    workers; each DDP rank on the host starts as many again; and a DataLoader
    worker is a whole process with its own copy of the dataset object and its
    own prefetched batches. Past the CPUs the job really has, more workers only
    add memory and contention. Measured here with a fork-based stand-in for a
    DataLoader (workers index a 30,000-sample list dataset held by the main
    process, do pure-Python work per sample and send results over a queue),
    pinned to 2 CPUs with `taskset`, median of 3 runs: with light per-sample
    work 2 workers took 1.24 s and 564 MiB (PSS, all processes), 8 workers
    1.74 s and 866 MiB; with 5x heavier work 1.72 s / 538 MiB against
    1.73 s / 701 MiB. So 8 workers on 2 CPUs were never faster, took up to
    1.4x as long and used 1.3-1.5x the memory. PyTorch itself warns that
    excessive workers "might get DataLoader running slow or even freeze".
    Threads oversubscribed the same way spin and wait on each other: in this
    project's probe calibration (torch 2.13 CPU on a 2-vCPU VM with one vCPU
    kept busy by another job) a small conv training step took 5 ms with 1
    thread and 52 ms with 2, about 10x; `torchrun` sets `OMP_NUM_THREADS=1`
    per rank for this reason.

    ## Fix
    Make the count a configuration value with a small default, and cap what
    the process can really use:
    `min(8, len(os.sched_getaffinity(0)) // local_world_size)` (on Python 3.13,
    `os.process_cpu_count()`); for threads, leave PyTorch's default or set it
    per rank. Measure throughput at 2, 4 and 8 workers before going higher.
    Size workers to what the job needs, not the machine's maximum and not the
    minimum: GO509 is the other side (no workers while loading is the
    bottleneck), and a loader is only ever flagged one way.
    Autofix (unsafe: fewer workers or threads than before): where the count
    is written at the use site, `os.cpu_count()` becomes
    `min(os.cpu_count() or 1, 8)` (the cap is the `cap` option).

    ## Estimate
    Worker counts: 1.0-1.4x data-loading time (measured here: 8 workers
    pinned to 2 CPUs were never faster than 2, up to 1.4x slower, with
    1.3-1.5x the memory). Thread counts: 1.0x with a dedicated core per
    thread up to 10x CPU compute time (measured here with torch 2.13 CPU in
    the probe calibration: a small conv training step on a 2-vCPU VM with one
    vCPU busy took 5 ms with 1 thread and 52 ms with 2; OpenMP threads past
    the free cores wait on each other). Scoped to the loading or CPU part of
    the job, not the GPU workload.
    """

    code = "GO301"
    name = "all-cpus-as-parallelism"
    family = "provisioning"
    estimate_sources = {
        SOURCE_CPU: "worker counts: a loader pinned to 2 CPUs with 8 workers on this project's machine (data loading "
        "runs on CPUs); thread counts: a torch conv training step on a 2-vCPU VM with one vCPU busy",
    }
    tokens = ("cpu_count", "sched_getaffinity", "process_cpu_count")
    fixable = True
    fix_safety = "unsafe"
    options = {"cap": RuleOption(CAP, int, "the worker/thread count the unsafe fix caps `os.cpu_count()` at")}
    INVALID = [
        Invalid(
            """
            import os
            from torch.utils.data import DataLoader
            loader = DataLoader(train_ds, batch_size=64, shuffle=True, num_workers=os.cpu_count())
            """,
            line=3,
            message="num_workers=os.cpu_count() starts one worker per logical CPU of the host",
            fixed="""
            import os
            from torch.utils.data import DataLoader
            loader = DataLoader(train_ds, batch_size=64, shuffle=True, num_workers=min(os.cpu_count() or 1, 8))
            """,
        ),
        Invalid(
            """
            import multiprocessing as mp
            import torch
            torch.set_num_threads(mp.cpu_count())
            """,
            line=3,
            message="torch.set_num_threads(mp.cpu_count()) uses one thread per logical CPU",
            fixed="""
            import multiprocessing as mp
            import torch
            torch.set_num_threads(min(mp.cpu_count() or 1, 8))
            """,
        ),
        Invalid(
            """
            import os
            os.environ["OMP_NUM_THREADS"] = str(os.cpu_count())
            """,
            line=2,
            message="sizes every OpenMP/BLAS pool to all logical CPUs",
        ),
        Invalid(
            """
            from multiprocessing import cpu_count as ncpu
            NUM_WORKERS = ncpu() * 2
            tokenized = raw.map(tokenize, batched=True, num_proc=NUM_WORKERS)
            """,
            line=3,
            message="num_proc=NUM_WORKERS (= ncpu())",
        ),
    ]
    VALID = [
        """
        import os
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=64, num_workers=min(8, os.cpu_count()))
        """,
        """
        import os
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=64, num_workers=os.cpu_count() // 2)
        """,
        """
        import multiprocessing
        workers = max(1, multiprocessing.cpu_count() - 2)
        tokenized = raw.map(tokenize, batched=True, num_proc=workers)
        """,
        """
        import tensorflow as tf
        ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        """,
    ]

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        name = ctx.call_name(node)
        if name in _THREAD_SETTERS:
            arg = get_arg(node, "num_threads", 0) or get_arg(node, "num", 0)
            if arg is not None:
                self._check(arg.value, node, display_name(name), "setter")
            return
        if name in ("os.environ.setdefault", "os.putenv"):
            key, value = get_arg(node, None, 0), get_arg(node, None, 1)
            if key is not None and value is not None and literal_str(ctx, key.value) in _THREAD_ENV:
                self._check(value.value, node, literal_str(ctx, key.value), "env")
            return
        if name == "os.environ.update":
            self._check_env_update(node)
            return
        if name == "builtins.dict":
            return  # `**dict(num_workers=...)`: not followed
        method = method_name(node)
        if method == "add_argument":
            self._check_argparse(node)
            return
        for arg in node.args:
            if arg.keyword is None:
                continue
            keyword = arg.keyword.value
            if keyword in GENERIC_WORKER_KEYWORDS:
                if loader_like_call(ctx, node):
                    self._check(arg.value, arg, keyword, "workers")
            elif keyword in PROCESS_KEYWORDS or (keyword == "workers" and method in _WORKERS_METHODS):
                self._check(arg.value, arg, keyword, "workers")
            elif keyword in _THREAD_KEYWORDS:
                self._check(arg.value, arg, keyword, "threads")

    def visit_Assign(self, node: cst.Assign) -> None:
        # os.environ["OMP_NUM_THREADS"] = str(os.cpu_count())
        for target in node.targets:
            subscript = target.target
            if (
                isinstance(subscript, cst.Subscript)
                and self.ctx.qualified_name(subscript.value) == "os.environ"
                and len(subscript.slice) == 1
                and isinstance(subscript.slice[0].slice, cst.Index)
            ):
                key = literal_str(self.ctx, subscript.slice[0].slice.value)
                if key in _THREAD_ENV:
                    self._check(node.value, node, key, "env")
            elif isinstance(subscript, cst.Name) and self._in_class_body():
                self._check_field(subscript.value, node.value, node)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None and isinstance(node.target, cst.Name) and self._in_class_body():
            self._check_field(node.target.value, node.value, node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        # Defaults are evaluated in the enclosing scope, where the walk is now.
        params = node.params
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            if (
                param.default is not None
                and names_a_pool(param.name.value)
                and host_cpu_source(self.ctx, param.default)
                and self._feeds_a_loader(node)
            ):
                self._check(param.default, param, param.name.value, "workers")

    # -- helpers -------------------------------------------------------------
    def _in_class_body(self) -> bool:
        return isinstance(self.ctx.enclosing(cst.ClassDef, cst.FunctionDef, cst.Lambda), cst.ClassDef)

    def _feeds_a_loader(self, function: cst.FunctionDef) -> bool:
        """A `num_workers=os.cpu_count()` parameter sizes loader workers only in
        a function (or the class of a method) that builds a loader; elsewhere
        it sizes a process pool, whose default is the CPU count anyway."""
        owner = self.ctx.enclosing(cst.ClassDef, cst.FunctionDef)
        scope = owner if isinstance(owner, cst.ClassDef) else function
        return bool(_LOADER_TEXT.search(self.ctx.module.code_for_node(scope)))

    def _check_field(self, name: str, value: cst.BaseExpression, node: cst.CSTNode) -> None:
        if names_a_pool(name) and _ML_MODULE.search(self.ctx.text):
            self._check(value, node, name, "workers")

    def _check_env_update(self, node: cst.Call) -> None:
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value in _THREAD_ENV:
                self._check(arg.value, arg, arg.keyword.value, "env")
            elif arg.keyword is None and not arg.star and isinstance(arg.value, cst.Dict):
                for element in arg.value.elements:
                    if isinstance(element, cst.DictElement) and literal_str(self.ctx, element.key) in _THREAD_ENV:
                        self._check(element.value, element, literal_str(self.ctx, element.key), "env")

    def _check_argparse(self, node: cst.Call) -> None:
        default = get_arg(node, "default")
        if default is None:
            return
        names = option_names(node)
        if any(names_a_pool(n) for n in names) and _ML_MODULE.search(self.ctx.text):
            self._check(default.value, default, f"--{names[0]} default", "workers")

    def _check(self, value: cst.BaseExpression, node: cst.CSTNode, what: str, kind: str) -> None:
        source = host_cpu_source(self.ctx, value)
        if source is None:
            return
        shown = f"{what}({source})" if kind == "setter" else f"{what}={source}"
        if kind == "workers":
            message, estimate = _WORKERS_MESSAGE.format(shown=shown), worker_estimate(self.ctx)
        elif kind == "env":
            message, estimate = _ENV_MESSAGE.format(shown=shown), torch_thread_estimate(self.ctx)
        else:
            message, estimate = _THREADS_MESSAGE.format(shown=shown), torch_thread_estimate(self.ctx)
        self.report(node, message, estimate, fix=self._cap_fix(value) if kind in ("workers", "setter") else None)

    def _cap_fix(self, value: cst.BaseExpression) -> Optional[Fix]:
        """`os.cpu_count()` -> `min(os.cpu_count() or 1, 8)` where the count is
        written at the use site (not through a constant or a helper)."""
        if not (isinstance(value, cst.Call) and is_cpu_count_call(self.ctx, value)):
            return None
        cap = cst.Integer(str(self.opts["cap"]))
        sized_by_len = self.ctx.call_name(value) == "builtins.len"  # len(os.sched_getaffinity(0)) is never None

        def capped(updated: cst.Call) -> cst.Call:
            count = updated if sized_by_len else cst.BooleanOperation(updated, cst.Or(), cst.Integer("1"))
            return cst.Call(cst.Name("min"), [cst.Arg(count), cst.Arg(cap)])

        return Fix(value, capped, safe=False, title=f"cap at {self.opts['cap']}")

"""GO3xx: over-provisioning, "use the specification you need, not the maximum".

Worker, thread and job counts sized to the whole host, parallelism nested in
parallelism, oversized loader settings, full-dataset batches and padding to
the maximum length all buy nothing on a dedicated machine at best, and on a
shared machine (a container with a CPU quota, several DDP ranks, a notebook
server) they make everything slower and use more memory.

What over-subscription costs depends on the CPUs the job really gets and on
the data, which the code does not say. The estimates are therefore ranges
from measurements (here, on 2 CPUs) and published reports, scoped to the part
of the work they slow (`x data-loading time`, `x CPU compute time`), never
to the whole GPU workload; the probe's worker sweep measures the real figure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.functions import called_function
from greenops_lint.analysis.parallelism import (
    all_cores_jobs,
    host_cpu_source,
    is_cpu_count_call,
    literal_int,
    literal_str,
    parallel_jobs,
)
from greenops_lint.analysis.tree import last_part
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.rule import Rule, RuleOption

# -- shared vocabulary ---------------------------------------------------------

# Keywords that size a pool of worker processes.
_PROCESS_KEYWORDS = frozenset(
    {
        "num_workers",
        "n_workers",
        "dataloader_num_workers",
        "num_proc",
        "dataset_num_proc",
        "preprocessing_num_workers",
    }
)
# Keywords that size a pool of threads (TF1 ConfigProto and friends).
_THREAD_KEYWORDS = frozenset({"intra_op_parallelism_threads", "inter_op_parallelism_threads"})
# `workers=` only means loader workers on training/inference entry points
# (Keras fit, Ultralytics train); elsewhere (web servers) it is something else.
_WORKERS_METHODS = frozenset({"fit", "fit_generator", "train", "evaluate", "predict", "val"})

_THREAD_SETTERS = {
    "torch.set_num_threads": "torch.set_num_threads",
    "torch.set_num_interop_threads": "torch.set_num_interop_threads",
    "tensorflow.config.threading.set_intra_op_parallelism_threads": "tf.config.threading.set_intra_op_parallelism_threads",
    "tensorflow.config.threading.set_inter_op_parallelism_threads": "tf.config.threading.set_inter_op_parallelism_threads",
}
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



def worker_estimate(ctx, low: float = 1.0, high: float = 1.4) -> SavingsEstimate:
    return SavingsEstimate(
        metric="time_factor", low=low, high=high, unit="x data-loading time",
        basis="measured here: a fork-based loader pinned to 2 CPUs with 8 workers (cpu_count() of an 8-CPU host) "
        "was never faster than with 2 and took up to 1.4x as long, using 1.3-1.5x the memory",
        hardware=ctx.hardware.key,
        assumptions=("the job gets fewer CPUs than the host has (a container quota, several ranks or jobs)",),
    )


def thread_estimate(ctx, unit: str = "x CPU compute time") -> SavingsEstimate:
    return SavingsEstimate(
        metric="time_factor", low=1.0, high=93.0, unit=unit,
        basis="no slowdown on a dedicated machine; xgboost sizing its threads to the host in a 1-CPU container "
        "took 28 s instead of 0.3 s (dmlc/xgboost#7653); scikit-learn's docs warn of the same oversubscription",
        hardware=ctx.hardware.key,
        assumptions=("the job shares the host or runs under a CPU quota",),
    )


# `num_workers=` / `n_workers=` are generic names (thread pools, dask, job
# runners): they count as loader workers only on a loader-like callee.
_GENERIC_WORKER_KEYWORDS = frozenset({"num_workers", "n_workers"})
_LOADER_CALLEE = re.compile(r"loader|datamodule|data_module|dataset", re.IGNORECASE)


# Text that shows a scope builds data loaders, and a module that does ML.
_LOADER_TEXT = re.compile(r"DataLoader|DataModule|_loader\b|loader\(|num_proc=|load_dataset")
_ML_MODULE = re.compile(r"\b(torch|tensorflow|keras|transformers|datasets|lightning|pytorch_lightning)\b")


def _loader_like_call(rule: Rule, node: cst.Call, depth: int = 0) -> bool:
    """A DataLoader, a data module or a loader factory (`build_dataloader`,
    `get_train_loader`), also wrapped in `functools.partial`."""
    name = rule.ctx.call_name(node)
    if name in ("functools.partial",) and depth == 0:
        target = get_arg(node, None, 0)
        if target is None:
            return False
        inner = target.value
        label = rule.ctx.qualified_name(inner) or _identifier(inner) or ""
        return bool(_LOADER_CALLEE.search(label))
    label = name or _identifier(node.func) or ""
    return bool(_LOADER_CALLEE.search(label.rsplit(".", 1)[-1]))


def _is_dict_call(rule: Rule, node: cst.Call) -> bool:
    return rule.ctx.call_name(node) == "builtins.dict"


def _method_name(node: cst.Call) -> Optional[str]:
    return node.func.attr.value if isinstance(node.func, cst.Attribute) else None


def _option_names(node: cst.Call) -> list[str]:
    """The option strings of `parser.add_argument("--num-workers", "-j", ...)`."""
    names = []
    for arg in node.args:
        if arg.keyword is None and not arg.star:
            value = literal_value(arg.value)
            if isinstance(value, str):
                names.append(value.lstrip("-").replace("-", "_").lower())
    return names


def _in_class_body(rule: Rule) -> bool:
    scope = rule.ctx.enclosing(cst.ClassDef, cst.FunctionDef, cst.Lambda)
    return isinstance(scope, cst.ClassDef)


# -- GO301 ---------------------------------------------------------------------


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
    excessive workers "might get DataLoader running slow or even freeze". Threads oversubscribed the same way spin and wait on
    each other: xgboost with host-count threads in a 1-CPU container took 28 s
    instead of 0.3 s (dmlc/xgboost#7653); `torchrun` sets `OMP_NUM_THREADS=1`
    per rank for this reason.

    ## Fix
    Make the count a configuration value with a small default, and cap what
    the process can really use:
    `min(8, len(os.sched_getaffinity(0)) // local_world_size)` (on Python 3.13,
    `os.process_cpu_count()`); for threads, leave PyTorch's default or set it
    per rank. Measure throughput at 2, 4 and 8 workers before going higher.
    Autofix (unsafe: fewer workers or threads than before): where the count
    is written at the use site, `os.cpu_count()` becomes
    `min(os.cpu_count() or 1, 8)` (the cap is the `cap` option).

    ## Estimate
    Worker counts: 1.0-1.4x data-loading time (measured here: 8 workers
    pinned to 2 CPUs were never faster than 2, up to 1.4x slower, with
    1.3-1.5x the memory). Thread counts: 1.0x on a dedicated machine up to
    93x CPU compute time under a 1-CPU quota (dmlc/xgboost#7653). Scoped to
    the loading or CPU part of the job, not the GPU workload.
    """

    code = "GO301"
    name = "all-cpus-as-parallelism"
    family = "provisioning"
    tokens = ("cpu_count", "sched_getaffinity", "process_cpu_count")
    fixable = True
    fix_safety = "unsafe"
    options = {"cap": RuleOption(8, int, "the worker/thread count the unsafe fix caps `os.cpu_count()` at")}
    INVALID = [
        """
        import os
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=64, shuffle=True, num_workers=os.cpu_count())
        """,
        """
        import multiprocessing as mp
        import torch
        torch.set_num_threads(mp.cpu_count())
        """,
        """
        import os
        os.environ["OMP_NUM_THREADS"] = str(os.cpu_count())
        """,
        """
        from multiprocessing import cpu_count as ncpu
        NUM_WORKERS = ncpu() * 2
        tokenized = raw.map(tokenize, batched=True, num_proc=NUM_WORKERS)
        """,
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
                self._check(arg.value, node, _THREAD_SETTERS[name], "setter")
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
        method = _method_name(node)
        if method == "add_argument":
            self._check_argparse(node)
            return
        for arg in node.args:
            if arg.keyword is None:
                continue
            keyword = arg.keyword.value
            if keyword in _GENERIC_WORKER_KEYWORDS:
                if _loader_like_call(self, node):
                    self._check(arg.value, arg, keyword, "workers")
            elif keyword in _PROCESS_KEYWORDS or (keyword == "workers" and method in _WORKERS_METHODS):
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
            elif isinstance(subscript, cst.Name) and _in_class_body(self):
                self._check_field(subscript.value, node.value, node)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None and isinstance(node.target, cst.Name) and _in_class_body(self):
            self._check_field(node.target.value, node.value, node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        # Defaults are evaluated in the enclosing scope, where the walk is now.
        params = node.params
        for param in (*params.posonly_params, *params.params, *params.kwonly_params):
            if (
                param.default is not None
                and _names_a_pool(param.name.value)
                and host_cpu_source(self.ctx, param.default)
                and self._feeds_a_loader(node)
            ):
                self._check(param.default, param, param.name.value, "workers")

    def _feeds_a_loader(self, function: cst.FunctionDef) -> bool:
        """A `num_workers=os.cpu_count()` parameter sizes loader workers only in
        a function (or the class of a method) that builds a loader; elsewhere
        it sizes a process pool, whose default is the CPU count anyway."""
        owner = self.ctx.enclosing(cst.ClassDef, cst.FunctionDef)
        scope = owner if isinstance(owner, cst.ClassDef) else function
        return bool(_LOADER_TEXT.search(self.ctx.module.code_for_node(scope)))

    # -- helpers -------------------------------------------------------------
    def _check_field(self, name: str, value: cst.BaseExpression, node: cst.CSTNode) -> None:
        if _names_a_pool(name) and _ML_MODULE.search(self.ctx.text):
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
        names = _option_names(node)
        if any(_names_a_pool(n) for n in names) and _ML_MODULE.search(self.ctx.text):
            self._check(default.value, default, f"--{names[0]} default", "workers")

    def _check(self, value: cst.BaseExpression, node: cst.CSTNode, what: str, kind: str) -> None:
        source = host_cpu_source(self.ctx, value)
        if source is None:
            return
        shown = f"{what}({source})" if kind == "setter" else f"{what}={source}"
        if kind == "workers":
            message = (
                f"{shown} starts one worker per logical CPU of the host (cpu_count() ignores container quotas, "
                "and every DDP rank starts as many again); use a capped, configurable count such as "
                "min(8, len(os.sched_getaffinity(0)))"
            )
            estimate = worker_estimate(self.ctx)
        elif kind == "env":
            message = (
                f"{shown} sizes every OpenMP/BLAS pool to all logical CPUs of the host; under a CPU quota or with "
                "several ranks the threads outnumber the cores; leave the default or set a per-process share"
            )
            estimate = thread_estimate(self.ctx)
        else:
            message = (
                f"{shown} uses one thread per logical CPU of the host; under a CPU quota or with several ranks the "
                "threads outnumber the cores; set a per-process share such as len(os.sched_getaffinity(0)) // local_world_size"
            )
            estimate = thread_estimate(self.ctx)
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


def _names_a_pool(name: str) -> bool:
    lowered = name.lower()
    return (
        lowered in _PROCESS_KEYWORDS
        or lowered in ("workers", "num_threads", "n_threads", "nthreads", "threads", "loader_workers", "data_workers")
        or lowered.endswith(("_workers", "_num_workers", "_num_threads", "_threads"))
    )


# -- GO302 / GO303 -------------------------------------------------------------

# Meta-estimators and utilities that fit or score their estimator in parallel
# when their own `n_jobs` is not 1.
_PARALLEL_META = frozenset(
    {
        "sklearn.model_selection.GridSearchCV",
        "sklearn.model_selection.RandomizedSearchCV",
        "sklearn.model_selection.HalvingGridSearchCV",
        "sklearn.model_selection.HalvingRandomSearchCV",
        "sklearn.model_selection.cross_val_score",
        "sklearn.model_selection.cross_validate",
        "sklearn.model_selection.cross_val_predict",
        "sklearn.model_selection.learning_curve",
        "sklearn.model_selection.validation_curve",
        "sklearn.model_selection.permutation_test_score",
        "sklearn.feature_selection.RFECV",
        "sklearn.feature_selection.SequentialFeatureSelector",
        "sklearn.ensemble.BaggingClassifier",
        "sklearn.ensemble.BaggingRegressor",
        "sklearn.ensemble.VotingClassifier",
        "sklearn.ensemble.VotingRegressor",
        "sklearn.ensemble.StackingClassifier",
        "sklearn.ensemble.StackingRegressor",
        "sklearn.multiclass.OneVsRestClassifier",
        "sklearn.multiclass.OneVsOneClassifier",
        "sklearn.multiclass.OutputCodeClassifier",
        "sklearn.multioutput.MultiOutputClassifier",
        "sklearn.multioutput.MultiOutputRegressor",
        "sklearn.inspection.permutation_importance",
        "sklearn.experimental.enable_halving_search_cv.HalvingGridSearchCV",
    }
)
_ESTIMATOR_ROOTS = ("sklearn.", "xgboost.", "lightgbm.", "catboost.", "imblearn.", "joblib.")
# Constructor keywords that size an estimator's own thread or process pool.
_JOBS_KEYWORDS = ("n_jobs", "nthread", "num_threads", "thread_count", "n_threads")
_INNER_MAX_DEPTH = 6




@dataclass
class Nested:
    outer_name: str
    outer_call: cst.Call
    outer_jobs: cst.Arg
    outer_jobs_text: str
    inner_call: cst.Call
    inner_jobs: cst.Arg
    inner_jobs_text: str


def _estimator_jobs(rule: Rule, call: cst.Call) -> Optional[tuple[cst.Arg, str]]:
    """The all-cores jobs argument of an estimator constructor of a known library."""
    name = rule.ctx.call_name(call)
    if name is None or not name.startswith(_ESTIMATOR_ROOTS) or name in ("joblib.Parallel", "joblib.delayed"):
        return None
    for keyword in _JOBS_KEYWORDS:
        arg = get_arg(call, keyword)
        if arg is not None:
            text = all_cores_jobs(rule.ctx, arg.value)
            if text is not None:
                return arg, text
    return None


def _find_inner(rule: Rule, node: cst.CSTNode, depth: int, seen: set[int]) -> Optional[tuple[cst.Call, cst.Arg, str]]:
    """An estimator with all-cores n_jobs inside the expression an outer
    parallel call runs: inline, bound to a name earlier, inside a pipeline or
    a list of (name, estimator) pairs, or built by a function passed to
    `joblib.delayed`."""
    if depth > _INNER_MAX_DEPTH or id(node) in seen:
        return None
    seen.add(id(node))
    ctx = rule.ctx
    if isinstance(node, cst.Call):
        found = _estimator_jobs(rule, node)
        if found is not None:
            return node, found[0], found[1]
        func = node.func
        # joblib: delayed(fit_one)(...) -> look inside fit_one too.
        if isinstance(func, cst.Call) and ctx.call_name(func) == "joblib.delayed":
            target = get_arg(func, None, 0)
            if target is not None:
                hit = _find_in_function(rule, target.value, depth, seen)
                if hit is not None:
                    return hit
        name = ctx.call_name(node)
        if name is not None and not name.startswith(_ESTIMATOR_ROOTS) and name != "builtins.list":
            return None  # an unrelated call: its arguments are not run in parallel here
        for arg in node.args:
            if arg.star:
                continue
            hit = _find_inner(rule, arg.value, depth + 1, seen)
            if hit is not None:
                return hit
        return None
    if isinstance(node, (cst.List, cst.Tuple, cst.Set)):
        for element in node.elements:
            hit = _find_inner(rule, element.value, depth + 1, seen)
            if hit is not None:
                return hit
        return None
    if isinstance(node, (cst.GeneratorExp, cst.ListComp)):
        return _find_inner(rule, node.elt, depth + 1, seen)
    if isinstance(node, (cst.Name, cst.Attribute)):
        value = ctx.value_of(node)
        if isinstance(value, cst.BaseExpression):
            return _find_inner(rule, value, depth + 1, seen)
    return None


def _find_in_function(rule: Rule, target: cst.BaseExpression, depth: int, seen: set[int]):
    """An all-cores estimator built in the body of the module function that
    `joblib.delayed` wraps (literal values only: its own names are not in scope)."""
    if not isinstance(target, cst.Name):
        return None
    function = called_function(rule.ctx, cst.Call(func=target))
    if function is None:
        return None
    stack: list[cst.CSTNode] = [function.body]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Call):
            name = rule.ctx.call_name(current)
            if name is not None and name.startswith(_ESTIMATOR_ROOTS):
                for keyword in _JOBS_KEYWORDS:
                    arg = get_arg(current, keyword)
                    if arg is not None and literal_value(arg.value) == -1:
                        return current, arg, "-1"
        if isinstance(current, (cst.FunctionDef, cst.ClassDef, cst.Lambda)) and current is not function:
            continue
        stack.extend(reversed(current.children))
    return None


def nested_parallelism(rule: Rule, node: cst.Call) -> Optional[Nested]:
    """`GridSearchCV(RandomForestClassifier(n_jobs=-1), ..., n_jobs=-1)` and
    `Parallel(n_jobs=-1)(delayed(fit)(XGBClassifier(n_jobs=-1)) ...)`."""
    ctx = rule.ctx
    func = node.func
    if isinstance(func, cst.Call) and ctx.call_name(func) == "joblib.Parallel":
        jobs = get_arg(func, "n_jobs", 0)
        jobs_text = parallel_jobs(ctx, jobs)
        if jobs is None or jobs_text is None:
            return None
        for arg in node.args:
            hit = _find_inner(rule, arg.value, 0, set())
            if hit is not None:
                return Nested("joblib.Parallel", func, jobs, jobs_text, *hit)
        return None
    name = ctx.call_name(node)
    if name not in _PARALLEL_META:
        return None
    jobs = get_arg(node, "n_jobs")
    jobs_text = parallel_jobs(ctx, jobs)
    if jobs is None or jobs_text is None:
        return None
    estimator = get_arg(node, "estimator", 0) or get_arg(node, "base_estimator") or get_arg(node, "estimators")
    if estimator is None:
        return None
    hit = _find_inner(rule, estimator.value, 0, set())
    if hit is None:
        return None
    return Nested(name, node, jobs, jobs_text, *hit)


class NestedParallelism(Rule):
    """Runs an all-cores estimator inside a parallel search or meta-estimator.

    ## What it does
    Flags a parallel meta-estimator or utility (`GridSearchCV`,
    `RandomizedSearchCV`, the halving searches, `cross_val_score`,
    `cross_validate`, `cross_val_predict`, `learning_curve`, `RFECV`,
    `Bagging*`, `Voting*`, `Stacking*`, `OneVsRest`/`OneVsOne`, `MultiOutput*`,
    `permutation_importance`, and `joblib.Parallel(...)(delayed(f)(...))`) that
    runs with `n_jobs` other than 1 (-1, 4, `os.cpu_count()`, ...), whose
    estimator is itself built with all cores: `n_jobs=-1` or
    `n_jobs=os.cpu_count()` on scikit-learn, xgboost and lightgbm estimators
    (also `nthread=`, `num_threads=`, catboost `thread_count=`). The estimator
    may be inline, bound to a name earlier, a step of a `Pipeline` /
    `make_pipeline`, an entry of `estimators=[("rf", ...)]`, or built inside
    the function given to `joblib.delayed`. Reported at the outer call.

    Not flagged: outer `n_jobs` absent, `None` or 1; inner `n_jobs` absent or a
    fixed small number; values read from config (unknown); estimators that only
    use OpenMP by default (`HistGradientBoosting*`), because joblib's loky
    workers already cap OpenMP threads to cores // n_jobs.

    ## Why is this bad
    Each of the outer workers asks for its own pool of one worker per core,
    so the job requests cores x cores threads: scikit-learn's own example is
    `GridSearchCV(n_jobs=8)` over an 8-thread estimator on 8 CPUs = 64
    threads, "oversubscription ... and thus scheduling overhead". The extra
    threads add no CPU capacity, only contention and memory, and where a
    library reads the host's CPU count instead of the container's quota it
    gets far worse (xgboost with host-count threads in a 1-CPU container: 28 s
    instead of 0.3 s, dmlc/xgboost#7653).

    How much it costs depends on the libraries: joblib limits OpenMP/BLAS
    threads in its loky workers, and a measurement here (scikit-learn 1.x,
    `GridSearchCV(n_jobs=8)` over a 100-tree `RandomForestClassifier`, 4000
    samples, pinned to 2 CPUs, median of 3) found the nested run with inner
    `n_jobs=8` no slower than inner `n_jobs=1` (7.4 s vs 11.3 s). So the rule
    reports a configuration that asks for far more threads than cores, with a
    cost that is large with OpenMP libraries that ignore quotas and small or
    none where joblib caps the inner level.

    ## Fix
    Parallelise one level only: keep the outer `n_jobs` (the search has more,
    coarser tasks) and set the inner estimator's `n_jobs=1`, or split the cores
    (`outer n_jobs=k`, inner `n_jobs=cores // k`).

    ## Estimate
    1.0x (measured here: a nested RandomForest GridSearchCV on 2 CPUs was
    not slower) up to 93x search time where a library sizes threads to the
    host under a CPU quota (dmlc/xgboost#7653).
    """

    code = "GO302"
    name = "nested-parallelism"
    family = "provisioning"
    tokens = ("n_jobs", "thread_count", "nthread", "num_threads")
    INVALID = [
        """
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.model_selection import GridSearchCV
        search = GridSearchCV(RandomForestClassifier(n_jobs=-1), {"max_depth": [4, 8]}, n_jobs=-1)
        """,
        """
        from sklearn.model_selection import cross_val_score
        from xgboost import XGBClassifier
        clf = XGBClassifier(n_estimators=300, n_jobs=-1)
        scores = cross_val_score(clf, X, y, cv=5, n_jobs=4)
        """,
        """
        import os
        from joblib import Parallel, delayed
        from sklearn.ensemble import ExtraTreesRegressor
        models = Parallel(n_jobs=-1)(delayed(fit)(ExtraTreesRegressor(n_jobs=os.cpu_count()), fold) for fold in folds)
        """,
    ]
    VALID = [
        """
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.model_selection import GridSearchCV
        search = GridSearchCV(RandomForestClassifier(n_jobs=1), {"max_depth": [4, 8]}, n_jobs=-1)
        """,
        """
        from sklearn.model_selection import cross_val_score
        from xgboost import XGBClassifier
        clf = XGBClassifier(n_estimators=300, n_jobs=-1)
        scores = cross_val_score(clf, X, y, cv=5)
        """,
        """
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.model_selection import RandomizedSearchCV
        search = RandomizedSearchCV(HistGradientBoostingClassifier(), dist, n_jobs=-1)
        """,
    ]

    def visit_Call(self, node: cst.Call) -> None:
        found = nested_parallelism(self, node)
        if found is None:
            return
        inner = last_part(self.ctx.call_name(found.inner_call) or "estimator")
        outer = last_part(found.outer_name)
        inner_kw = found.inner_jobs.keyword.value if found.inner_jobs.keyword else "n_jobs"
        self.report(
            found.outer_call,
            f"{outer}(n_jobs={found.outer_jobs_text}) runs {inner}({inner_kw}={found.inner_jobs_text}) in each of its "
            f"workers: cores x cores threads; parallelise one level only (set the inner {inner_kw}=1)",
            thread_estimate(self.ctx, "x search time"),
        )


_GO303_MESSAGE = (
    "{what} uses every core the library can see, which on a shared host or under a CPU quota takes the cores "
    "of everything else; set an explicit, configurable count"
)


class AllCoresNJobs(Rule):
    """Runs a single-level scikit-learn / joblib / GBDT job on every core.

    ## What it does
    Flags `n_jobs=-1` or `n_jobs=os.cpu_count()` (also xgboost `nthread=`,
    lightgbm `num_threads=`, catboost `thread_count=-1`) in calls to
    scikit-learn, joblib, xgboost, lightgbm, catboost and imbalanced-learn,
    when GO302 does not already report the same call as part of nested
    parallelism. Off by default and at info level: run it when the code is
    meant for shared machines (CI runners, notebook servers, Kubernetes pods
    with CPU limits). Enable with `extend-select = ["GO303"]`.

    Not flagged: `n_jobs=1`, a small fixed count, `None`/absent (the library's
    own default, even where that is all cores: the rule reports explicit
    choices only), values from config, and calls of other libraries.

    ## Why is this bad
    On a dedicated machine all cores is often right. On a shared one the job
    takes the cores of every other process, and libraries that count the
    host's CPUs instead of the container's CPU quota oversubscribe badly:
    xgboost with `n_jobs=-1` in a 1-CPU container on a 16-CPU host took 28 s
    instead of 0.3 s with `n_jobs=1` (dmlc/xgboost#7653). joblib's own loky
    backend reads cgroup quotas; OpenMP-based libraries may not.

    ## Fix
    Pass an explicit count from configuration (`n_jobs=args.jobs`, default a
    few cores), or cap with `threadpoolctl.threadpool_limits` around the call.

    ## Estimate
    As GO302: 1.0x on a dedicated machine, up to 93x CPU compute time under
    a CPU quota.
    """

    code = "GO303"
    name = "all-cores-n-jobs"
    family = "provisioning"
    severity = "info"
    default_enabled = False
    tokens = ("n_jobs", "thread_count", "nthread", "num_threads")
    INVALID = [
        """
        from sklearn.ensemble import RandomForestClassifier
        clf = RandomForestClassifier(n_estimators=500, n_jobs=-1).fit(X, y)
        """,
        """
        import lightgbm as lgb
        model = lgb.LGBMRegressor(num_leaves=63, n_jobs=-1)
        """,
        """
        from catboost import CatBoostClassifier
        model = CatBoostClassifier(iterations=500, thread_count=-1)
        """,
    ]
    VALID = [
        """
        from sklearn.ensemble import RandomForestClassifier
        clf = RandomForestClassifier(n_estimators=500, n_jobs=4).fit(X, y)
        """,
        """
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.model_selection import GridSearchCV
        search = GridSearchCV(RandomForestClassifier(n_jobs=-1), {"max_depth": [4, 8]}, n_jobs=-1)
        """,
        """
        import xgboost as xgb
        model = xgb.XGBClassifier(n_jobs=args.jobs)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.candidates: list[tuple[cst.Arg, Optional[cst.CSTNode], str]] = []
        self.covered: set[int] = set()

    def visit_Call(self, node: cst.Call) -> None:
        nested = nested_parallelism(self, node)
        if nested is not None:
            self.covered.update((id(nested.inner_jobs), id(nested.outer_jobs)))
        name = self.ctx.call_name(node)
        if name is None or not name.startswith(_ESTIMATOR_ROOTS) or name == "joblib.delayed":
            return
        for keyword in _JOBS_KEYWORDS:
            arg = get_arg(node, keyword, 0 if name == "joblib.Parallel" and keyword == "n_jobs" else None)
            if arg is None:
                continue
            text = all_cores_jobs(self.ctx, arg.value)
            if text is not None:
                what = f"{last_part(name)}({keyword}={text})"
                self.candidates.append((arg, self.ctx.enclosing_statement(), what))

    def leave_Module(self, node: cst.Module) -> None:
        # Reported at the end: a later GridSearchCV can make an earlier
        # estimator part of nested parallelism (GO302 then reports it).
        for arg, statement, what in self.candidates:
            if id(arg) not in self.covered:
                self.report(arg, _GO303_MESSAGE.format(what=what), thread_estimate(self.ctx), statement=statement)


# -- GO304 ---------------------------------------------------------------------

_WORKER_COUNT_KEYWORDS = frozenset({"num_workers", "dataloader_num_workers"})
_PREFETCH_KEYWORDS = frozenset({"prefetch_factor", "dataloader_prefetch_factor"})
_BATCH_NAME = re.compile(r"(^|_)(batch_size|batchsize|bs)$|^batch$", re.IGNORECASE)


class OversizedWorkerSettings(Rule):
    """Sets DataLoader workers or prefetching far beyond what loading needs.

    ## What it does
    Flags, in any call (a `DataLoader`, `functools.partial(DataLoader, ...)`,
    HF `TrainingArguments`, a Lightning `DataModule`):

    * `num_workers=` / `dataloader_num_workers=` set to an int literal above
      `max-workers` (default 16), directly or through a constant;
    * `prefetch_factor=` / `dataloader_prefetch_factor=` above
      `max-prefetch-factor` (default 8);
    * worker counts that scale with the batch size: `num_workers=batch_size`,
      `num_workers=batch_size * 2`, `num_workers=args.batch_size // 4`.

    Not flagged: counts at or below the thresholds, counts from config
    (unknown), `min(batch_size, 8)`, CPU-count expressions (GO301), and
    values passed through `dict(...)` or `**kwargs`.

    ## Why is this bad
    Every worker is a process with its own copy of the dataset object and its
    own `prefetch_factor` batches in host memory, and every DDP rank starts
    its own set. Past the CPUs and storage bandwidth the job has, more workers
    only add memory and contention ("throwing more worker processes at the
    IOPS barrier will not help, it'll make it worse", R. Wightman); a
    benchmark-embedding run with 104 workers froze (embeddings-benchmark/mteb
    #1331), and the RWKV trainer capped workers at 8 as "tested not to affect
    training performance". A worker builds whole batches, so its count should
    follow the CPUs, not the batch size: `num_workers=batch_size` with a batch
    of 256 starts 256 processes. A prefetch factor of 16 keeps 16 batches per
    worker in host memory (default 2) for no gain once the GPU is the
    bottleneck.

    ## Fix
    Start from 2-8 workers (at most the CPUs the job has), measure samples/s,
    and stop when it stops rising; keep `prefetch_factor` at its default of 2
    (raise it only when measured loading is bursty). Raise the thresholds for
    machines that are really that large.

    ## Estimate
    Worker counts: 1.0-1.4x data-loading time, as GO301. `prefetch_factor`:
    prefetch_factor / 2 times the prefetch buffer memory of the default.
    """

    code = "GO304"
    name = "oversized-worker-settings"
    family = "provisioning"
    tokens = ("num_workers", "prefetch_factor")
    options = {
        "max-workers": RuleOption(16, int, "largest literal `num_workers` / `dataloader_num_workers` not reported"),
        "max-prefetch-factor": RuleOption(8, int, "largest literal `prefetch_factor` not reported"),
    }
    INVALID = [
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=32, shuffle=True, num_workers=64)
        """,
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=32, num_workers=4, prefetch_factor=32)
        """,
        """
        from torch.utils.data import DataLoader
        batch_size = 128
        loader = DataLoader(train_ds, batch_size=batch_size, num_workers=batch_size)
        """,
    ]
    VALID = [
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=32, shuffle=True, num_workers=8)
        """,
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=32, num_workers=4, prefetch_factor=4)
        """,
        """
        from torch.utils.data import DataLoader
        loader = DataLoader(train_ds, batch_size=args.batch_size, num_workers=args.workers)
        """,
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if _is_dict_call(self, node):
            return
        for arg in node.args:
            if arg.keyword is None:
                continue
            keyword = arg.keyword.value
            if keyword in _GENERIC_WORKER_KEYWORDS and not _loader_like_call(self, node):
                continue
            if keyword in _WORKER_COUNT_KEYWORDS:
                self._check_workers(arg, keyword)
            elif keyword in _PREFETCH_KEYWORDS:
                self._check_prefetch(arg, keyword)

    def _check_workers(self, arg: cst.Arg, keyword: str) -> None:
        scaled = _scales_with_batch(self, arg.value, 0)
        if scaled is not None:
            self.report(
                arg,
                f"{keyword}={self.ctx.snippet(arg.value)} scales the worker count with the batch size ({scaled}), "
                "one process (and dataset copy) per sample of a batch; size workers to the CPUs instead (2-8)",
                worker_estimate(self.ctx),
            )
            return
        value = literal_int(self.ctx, arg.value)
        limit = self.opts["max-workers"]
        if value is not None:
            if value > limit:
                self.report(
                    arg,
                    f"{keyword}={value} starts {value} worker processes per loader and per DDP rank, each with its own "
                    f"dataset copy; past the CPUs the job has they only add memory and contention; start from 2-8 "
                    f"and measure (max-workers={limit})",
                    worker_estimate(self.ctx),
                )

    def _check_prefetch(self, arg: cst.Arg, keyword: str) -> None:
        value = literal_int(self.ctx, arg.value)
        limit = self.opts["max-prefetch-factor"]
        if value is not None and value > limit:
            self.report(
                arg,
                f"{keyword}={value} keeps {value} batches per worker in host memory ({value / 2:g}x the default of 2) "
                f"and loads no faster once the GPU is the bottleneck; keep the default (max-prefetch-factor={limit})",
                SavingsEstimate(
                    metric="memory_factor", low=value / 2, high=value / 2, unit="x prefetch buffer memory",
                    basis=f"prefetch_factor={value} holds {value} batches per worker against the default 2",
                    hardware=self.ctx.hardware.key, assumptions=("batch size and worker count unchanged",),
                ),
            )


def _identifier(node: cst.BaseExpression) -> Optional[str]:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return None


def _scales_with_batch(rule: Rule, node: cst.BaseExpression, depth: int) -> Optional[str]:
    """The batch-size name a worker count grows with, if it does."""
    if depth > 5:
        return None
    ident = _identifier(node)
    if ident is not None:
        if _BATCH_NAME.search(ident):
            return rule.ctx.snippet(node)
        value = rule.ctx.value_of(node)
        if isinstance(value, cst.BaseExpression):
            return _scales_with_batch(rule, value, depth + 1)
        return None
    if isinstance(node, cst.BinaryOperation):
        if isinstance(node.operator, (cst.Multiply, cst.Add)):
            return _scales_with_batch(rule, node.left, depth + 1) or _scales_with_batch(rule, node.right, depth + 1)
        if isinstance(node.operator, (cst.FloorDivide, cst.Divide)) and isinstance(literal_value(node.right), (int, float)):
            return _scales_with_batch(rule, node.left, depth + 1)
        return None
    if isinstance(node, cst.Call):
        name = rule.ctx.call_name(node)
        args = [a for a in node.args if a.keyword is None and not a.star]
        if name in ("builtins.int", "builtins.round") and args:
            return _scales_with_batch(rule, args[0].value, depth + 1)
        if name == "builtins.max":
            for arg in args:
                found = _scales_with_batch(rule, arg.value, depth + 1)
                if found:
                    return found
    return None


# -- GO305 ---------------------------------------------------------------------

# "val", "valid", "test", "eval", "dev", "pred", "infer", "holdout" at the start
# of a word (not "interval", "device", "value", "latest").
_EVAL_MARKERS = re.compile(r"(?<![a-z])(val(?!ue)|test|eval|dev(?!ice)|pred|infer|holdout|calib)", re.IGNORECASE)
# Methods that need the full batch by design (second-order optimisers, exact
# or variational GPs, HMC/MCMC samplers, physics-informed nets, Cox models).
_FULL_BATCH_BY_DESIGN = re.compile(
    r"LBFGS|gpytorch|\bHMC\b|MCMC|\bNUTS\b|\bpyro\b|numpyro|PINN|physics[-_ ]informed|CoxPH|lifelines|pycox"
)
_FULL_BATCH_COMMENT = re.compile(
    r"#[^\n]*(full[- ]?batch|whole (data|training|train)|entire (data|training|train)|all (the )?(samples|data|rows)|at once)",
    re.IGNORECASE,
)
_DATALOADERS = frozenset({"torch.utils.data.DataLoader", "torch_geometric.loader.DataLoader"})


class BatchEqualsDataset(Rule):
    """Trains on the whole dataset as one batch.

    ## What it does
    Flags a training loader or `fit` whose batch size is the size of the data
    it loads: `DataLoader(train_ds, batch_size=len(train_ds))`,
    `DataLoader(TensorDataset(X, y), batch_size=X.shape[0], shuffle=True)`,
    `model.fit(x_train, y_train, batch_size=len(x_train))`, also through a
    constant (`N = len(train_ds)` ... `batch_size=N`). The size expression
    must measure the same data the loader loads (`len()`, `.shape[0]`,
    `.size(0)`), and a `DataLoader` must be a training loader: it shuffles
    (`shuffle=True`) and has no "val"/"test"/"eval"/"pred" in its own or its
    dataset's name. Without shuffling, a whole-set loader is usually there to
    get all the data at once (arrays for a kNN, a plot, an evaluation pass).

    Not flagged: evaluation or prediction loaders (one big batch for
    inference is fine), `batch_size=len(classes)` or other sizes of other
    data, a loader only used as `next(iter(loader))` (loading everything once
    to compute statistics or get arrays), `tfds.load(..., batch_size=-1)`
    (materialises a split as arrays, on purpose), and deliberate full-batch
    training: a comment on the statement that says so (`# full batch`, `# all
    samples at once`), or a module that uses a method that needs it (L-BFGS,
    GPyTorch, HMC/MCMC/NUTS samplers, Pyro, physics-informed nets, Cox models).

    ## Why is this bad
    Full-batch training does one optimizer step per epoch: mini-batch SGD
    reaches the same loss in far fewer passes over the data, so the same
    result costs many more epochs of GPU time. Activation memory grows with
    the dataset instead of staying fixed, so the job needs a larger GPU (or
    fails once the data grows), and a shuffled full batch does no shuffling at
    all. It is usually an accident of a small-data prototype.

    ## Fix
    Use a mini-batch (32-512 is typical) and tune the learning rate for it. If
    full-batch gradient descent is intended (L-BFGS, some physics-informed
    models), keep it and add `# noqa: GO305`.

    Off by default (info): what it costs depends on the dataset size and on
    convergence, which neither the code nor a micro-benchmark shows, so the
    finding carries no estimate; turn it on with `extend-select = ["GO305"]`.
    """

    code = "GO305"
    name = "batch-equals-dataset"
    severity = "info"
    default_enabled = False
    family = "provisioning"
    tokens = ("batch_size",)
    INVALID = [
        """
        from torch.utils.data import DataLoader
        train_loader = DataLoader(train_ds, batch_size=len(train_ds), shuffle=True)
        """,
        """
        from torch.utils.data import DataLoader, TensorDataset
        loader = DataLoader(TensorDataset(X, y), batch_size=X.shape[0], shuffle=True)
        """,
        """
        history = model.fit(x_train, y_train, epochs=200, batch_size=len(x_train))
        """,
    ]
    VALID = [
        """
        from torch.utils.data import DataLoader
        val_loader = DataLoader(val_ds, batch_size=len(val_ds))
        """,
        """
        from torch.utils.data import DataLoader
        train_loader = DataLoader(train_ds, batch_size=len(classes), shuffle=True)
        """,
        """
        import tensorflow_datasets as tfds
        images, labels = tfds.as_numpy(tfds.load("mnist", split="train", batch_size=-1, as_supervised=True))
        """,
    ]

    def visit_Call(self, node: cst.Call) -> None:
        name = self.ctx.call_name(node)
        if name in _DATALOADERS:
            data = get_arg(node, "dataset", 0)
            batch = get_arg(node, "batch_size", 1)
            if data is None or batch is None or not self._training_loader(node, data.value):
                return
        elif _method_name(node) == "fit" and name is None:
            data = get_arg(node, "x", 0)
            batch = get_arg(node, "batch_size")
            if data is None or batch is None:
                return
        else:
            return
        subject = _size_subject(self, batch.value, 0)
        if subject is None or not _same_data(self, subject, data.value):
            return
        if _FULL_BATCH_BY_DESIGN.search(self.ctx.text):
            return
        statement = self.ctx.enclosing_statement()
        if statement is not None and _FULL_BATCH_COMMENT.search(self.ctx.module.code_for_node(statement)):
            return  # `# full batch` next to it: deliberate
        message = (
            f"batch_size={self.ctx.snippet(batch.value)} makes the whole training set ({self.ctx.snippet(data.value)}) "
            "one batch: one optimizer step per epoch and activation memory that grows with the dataset; "
            "use a mini-batch (e.g. 32-512) and tune the learning rate"
        )
        if name in _DATALOADERS:
            parent = self.ctx.parent()
            if isinstance(parent, cst.Arg) and isinstance(self.ctx.parent(2), cst.Call) and self.ctx.call_name(self.ctx.parent(2)) == "builtins.iter":
                return  # next(iter(DataLoader(ds, batch_size=len(ds)))): loads everything once
            if isinstance(parent, cst.Assign) and len(parent.targets) == 1 and isinstance(parent.targets[0].target, cst.Name):
                # Decided at the end of the module: a loader only used as
                # `next(iter(loader))` loads the data once (to compute
                # statistics, or to get arrays), it does not train on it.
                self.pending.append((parent.targets[0].target.value, batch, self.ctx.enclosing_statement(), message))
                return
        self.report(batch, message)

    def leave_Module(self, node: cst.Module) -> None:
        if not self.pending:
            return
        names = {name for name, *_ in self.pending}
        uses, iter_uses = _name_uses(self.ctx, node, names)
        for name, batch, statement, message in self.pending:
            if uses.get(name, 0) and uses.get(name, 0) == iter_uses.get(name, 0):
                continue
            self.report(batch, message, statement=statement)

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.pending: list[tuple[str, cst.Arg, Optional[cst.CSTNode], str]] = []

    def _training_loader(self, node: cst.Call, data: cst.BaseExpression) -> bool:
        names = [self.ctx.snippet(data, 200)]
        parent = self.ctx.parent()
        if isinstance(parent, cst.Assign):
            names += [self.ctx.snippet(t.target, 200) for t in parent.targets]
        elif isinstance(parent, (cst.AnnAssign,)):
            names.append(self.ctx.snippet(parent.target, 200))
        if any(_EVAL_MARKERS.search(n) for n in names):
            return False
        # Only shuffling says "training": a whole-set loader without it is
        # usually there to get all the data at once (arrays for a kNN, a
        # plot, an evaluation pass over the training set).
        shuffle = get_arg(node, "shuffle", 2)
        return shuffle is not None and literal_value(shuffle.value) is True


def _name_uses(ctx, module: cst.Module, names: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """How often each name is read in the module, and how often as `iter(name)`."""
    uses: dict[str, int] = {}
    iter_uses: dict[str, int] = {}
    stack: list[cst.CSTNode] = [module]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Assign):
            # Targets are stores, not reads.
            stack.append(current.value)
            for target in current.targets:
                if not isinstance(target.target, cst.Name):
                    stack.append(target.target)
            continue
        if isinstance(current, cst.Name) and current.value in names:
            uses[current.value] = uses.get(current.value, 0) + 1
        elif (
            isinstance(current, cst.Call)
            and isinstance(current.func, cst.Name)
            and current.func.value == "iter"
            and len(current.args) == 1
            and isinstance(current.args[0].value, cst.Name)
            and current.args[0].value.value in names
        ):
            iter_uses[current.args[0].value.value] = iter_uses.get(current.args[0].value.value, 0) + 1
        stack.extend(current.children)
    return uses, iter_uses


def _size_subject(rule: Rule, node: cst.BaseExpression, depth: int) -> Optional[cst.BaseExpression]:
    """`S` when `node` is `len(S)`, `S.shape[0]` or `S.size(0)` (through names)."""
    if depth > 4:
        return None
    if isinstance(node, cst.Call):
        if rule.ctx.call_name(node) == "builtins.len" and len(node.args) == 1 and node.args[0].keyword is None:
            return node.args[0].value
        func = node.func
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value == "size"
            and len(node.args) == 1
            and literal_value(node.args[0].value) == 0
        ):
            return func.value
        if rule.ctx.call_name(node) == "builtins.int" and node.args:
            return _size_subject(rule, node.args[0].value, depth + 1)
        return None
    if (
        isinstance(node, cst.Subscript)
        and isinstance(node.value, cst.Attribute)
        and node.value.attr.value == "shape"
        and len(node.slice) == 1
        and isinstance(node.slice[0].slice, cst.Index)
        and literal_value(node.slice[0].slice.value) == 0
    ):
        return node.value.value
    if isinstance(node, cst.Name):
        value = rule.ctx.value_of(node)
        if isinstance(value, cst.BaseExpression):
            return _size_subject(rule, value, depth + 1)
    return None


def _same_data(rule: Rule, subject: cst.BaseExpression, data: cst.BaseExpression) -> bool:
    """Does `subject` measure the data a loader loads (`data`, or one of the
    arrays it wraps: `TensorDataset(X, y)` directly or through a name)?"""
    ctx = rule.ctx
    wanted = ctx.snippet(subject, 500)
    if ctx.snippet(data, 500) == wanted:
        return True
    candidates = [data]
    if isinstance(data, cst.Name):
        value = ctx.value_of(data)
        if isinstance(value, cst.BaseExpression):
            candidates.append(value)
    for candidate in candidates:
        if ctx.snippet(candidate, 500) == wanted:
            return True
        if isinstance(candidate, cst.Call):
            for arg in candidate.args:
                if not arg.star and ctx.snippet(arg.value, 500) == wanted:
                    return True
    return False


# -- GO306 ---------------------------------------------------------------------

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
    at run time (`"max_length" if args.pad_to_max_length else False`),
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
    global maximum length", and dynamic padding with length grouping has been
    measured to cut fine-tuning time by 2x or more. The fraction of wasted
    compute is at least 1 - mean length / max_length.

    ## Fix
    Tokenize with `padding=False` (and `truncation=True, max_length=...`) and
    pad per batch: `DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8)`
    (or `tokenizer.pad` in a `collate_fn`); optionally
    `TrainingArguments(group_by_length=True)`. Keep `"max_length"` only where
    static shapes are required (TPU/XLA).

    ## Estimate
    1.0-2.0x step time: at least 1 - mean/max length of the compute is on pad
    tokens; dynamic padding has divided fine-tuning time by 2 or more.
    """

    code = "GO306"
    name = "pad-to-max-length"
    family = "provisioning"
    tokens = ("max_length",)
    INVALID = [
        """
        from transformers import AutoTokenizer, Trainer
        tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")
        def tokenize(batch):
            return tokenizer(batch["text"], padding="max_length", truncation=True, max_length=256)
        train_ds = raw["train"].map(tokenize, batched=True)
        """,
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
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        text = ctx.text
        self.active = any(m in text for m in _TRAINING_MARKERS) and not any(m in text for m in _STATIC_SHAPE_MARKERS)

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
        max_length = get_arg(node, "max_length")
        length = literal_int(self.ctx, max_length.value) if max_length is not None else None
        if length is not None:
            size = f"{length} tokens"
        elif max_length is not None:
            size = f"max_length={self.ctx.snippet(max_length.value)} tokens"
        else:
            size = "the model's maximum length (often 512 tokens)"
        self.report(
            flagged,
            f"{what} pads every example to {size}, so the model computes on pad tokens; pad each batch to its "
            "longest example instead (DataCollatorWithPadding(tokenizer, pad_to_multiple_of=8))",
            SavingsEstimate(
                metric="time_factor", low=1.0, high=2.0, unit="x",
                basis="compute on pad tokens: at least 1 - mean/max length of it is wasted (linear layers scale with "
                "length, attention with its square); dynamic padding has divided fine-tuning time by 2 or more (HF "
                "course; practitioner benchmarks)",
                hardware=self.ctx.hardware.key,
                assumptions=("1x when examples are near the maximum length; 2x and more for typical text data",),
            ),
        )

    def _under_no_grad(self) -> bool:
        for ancestor in self.ctx.stack:
            if isinstance(ancestor, cst.With):
                for item in ancestor.items:
                    call = item.item
                    name = self.ctx.call_name(call) if isinstance(call, cst.Call) else None
                    if name in ("torch.no_grad", "torch.inference_mode"):
                        return True
        return False

    def _is_tokenizer_call(self, node: cst.Call) -> bool:
        func = node.func
        receiver: Optional[cst.BaseExpression] = func
        if isinstance(func, cst.Attribute) and func.attr.value in _TOKENIZER_METHODS:
            receiver = func.value
        ident = _identifier(receiver) if receiver is not None else None
        if ident is None:
            return False
        if _TOKENIZER_NAME.search(ident):
            return True
        value = self.ctx.value_of(receiver)
        if isinstance(value, cst.Call):
            name = self.ctx.call_name(value) or ""
            return name.endswith(".from_pretrained") and "Tokenizer" in name
        return False


RULES = [
    AllCpusAsParallelism,
    NestedParallelism,
    AllCoresNJobs,
    OversizedWorkerSettings,
    BatchEqualsDataset,
    PadToMaxLength,
]

"""What only the provisioning rules share: the estimates, the keywords that
size a pool, loader-like callees and nested-parallelism detection.

What any rule may use lives in `analysis/` (`analysis/parallelism.py` says what
a count evaluates to); this module holds the GO3xx vocabulary on top of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.functions import called_function
from greenops_lint.analysis.parallelism import all_cores_jobs, parallel_jobs
from greenops_lint.analysis.tree import last_part
from greenops_lint.finding import SavingsEstimate
from greenops_lint.savings import SOURCE_CITED, SOURCE_CPU, SOURCE_DERIVED
from greenops_lint.walker import children

if TYPE_CHECKING:  # pragma: no cover
    from greenops_lint.context import FileContext

# -- estimates -----------------------------------------------------------------
# Worker counts past the CPUs the job has (the `## Estimate` sections of GO301
# and GO304 quote these). Measured here: a fork-based DataLoader stand-in pinned
# to 2 CPUs was never faster with 8 workers (cpu_count() of an 8-CPU host)
# than with 2, took up to 1.4x as long and used 1.3-1.5x the memory.
MEASURED_CPUS = 2
MEASURED_WORKERS = 8
WORKER_TIME_LOW = 1.0
WORKER_TIME_HIGH = 1.4
WORKER_MEMORY_LOW = 1.3
WORKER_MEMORY_HIGH = 1.5

# Thread pools sized to the host under a CPU quota (GO302, GO303): xgboost,
# sizing its OpenMP threads to a 16-CPU host in a 1-CPU container, took 28 s
# instead of 0.3 s (dmlc/xgboost#7653, before xgboost read the quota). Quoted
# for other libraries as the mechanism (host-sized threads throttled by a
# quota), never as their own figure.
XGBOOST_QUOTA_SECONDS = 28.0
XGBOOST_ONE_THREAD_SECONDS = 0.3
THREAD_TIME_LOW = 1.0
THREAD_TIME_HIGH = float(round(XGBOOST_QUOTA_SECONDS / XGBOOST_ONE_THREAD_SECONDS))  # 93x

# Threads past the cores that are free (GO301's thread counts), measured by
# this project's probe calibration (probe-research.md 3.0): torch 2.13 CPU on a
# 2-vCPU VM with one vCPU kept busy by another job, a small conv training step
# took 5 ms with 1 thread and 52 ms with 2.
TORCH_ONE_THREAD_MS = 5.0
TORCH_OVERSUBSCRIBED_MS = 52.0
TORCH_THREAD_TIME_HIGH = float(round(TORCH_OVERSUBSCRIBED_MS / TORCH_ONE_THREAD_MS))  # 10x

# Who sizes an "all cores" -1 to the container's CPU quota, by library:
# joblib's cpu_count() (scikit-learn, imbalanced-learn) reads affinity and the
# cgroup quota; xgboost since 1.6 (GetCfsCPUCount, dmlc/xgboost#7654; cgroup v2
# since #9651); catboost's NSystemInfo::NumberOfCpus reads cpu.max or the CFS
# quota (v2 since catboost#2519). lightgbm leaves -1 to OpenMP, which counts
# the host's logical CPUs (affinity, not the CFS quota). An explicit count such
# as os.cpu_count() is used as given by every library: it bypasses the quota.
# scikit-learn, imbalanced-learn and joblib: parallel through joblib's worker processes.
JOBLIB_ROOTS = ("sklearn.", "joblib.", "imblearn.")
_QUOTA_READERS = tuple((root, "joblib") for root in JOBLIB_ROOTS)
_QUOTA_READERS += (("xgboost.", "xgboost"), ("catboost.", "catboost"))


def quota_reader(name: str, jobs_text: str) -> Optional[str]:
    """What sizes this all-cores count to the container's CPU quota (joblib,
    xgboost, catboost); None for an explicit host count (`os.cpu_count()`,
    used as given) and for lightgbm's `-1` (OpenMP's host count)."""
    if jobs_text != "-1":
        return None
    return next((reader for root, reader in _QUOTA_READERS if name.startswith(root)), None)


def host_threads_why(name: str, jobs_text: str) -> str:
    """Why an all-cores count that `quota_reader` leaves out ignores the quota."""
    if jobs_text == "-1":
        library = name.split(".")[0]
        return f"{library}'s -1 leaves the count to OpenMP, which counts the host's logical CPUs, not the CPU quota"
    return f"{jobs_text} is the host's CPU count, which the library uses as given, bypassing the CPU quota"


def worker_estimate(ctx: "FileContext", unit: str = "x data-loading time", analogue: str = "") -> SavingsEstimate:
    """More worker processes than CPUs, as measured with a DataLoader; `analogue`
    names another process pool the same measurement stands for."""
    return SavingsEstimate(
        metric="time_factor",
        low=WORKER_TIME_LOW,
        high=WORKER_TIME_HIGH,
        unit=unit,
        basis=f"measured here: a fork-based loader pinned to {MEASURED_CPUS} CPUs with {MEASURED_WORKERS} workers "
        f"(cpu_count() of an {MEASURED_WORKERS}-CPU host) was never faster than with {MEASURED_CPUS} and took up to "
        f"{WORKER_TIME_HIGH:g}x as long, using {WORKER_MEMORY_LOW:g}-{WORKER_MEMORY_HIGH:g}x the memory{analogue}",
        hardware=ctx.hardware.key,
        source=SOURCE_CPU,
        assumptions=("the job gets fewer CPUs than the host has (a container quota, several ranks or jobs)",),
    )


def host_threads_estimate(ctx: "FileContext", why: str, unit: str = "x CPU compute time") -> SavingsEstimate:
    """A pool sized to the host's CPUs under a CPU quota: the mechanism of
    dmlc/xgboost#7653, quoted with xgboost's own figure."""
    return SavingsEstimate(
        metric="time_factor",
        low=THREAD_TIME_LOW,
        high=THREAD_TIME_HIGH,
        unit=unit,
        basis=f"no slowdown on a dedicated machine; {why}; threads sized to a 16-CPU host in a 1-CPU container took "
        f"{XGBOOST_QUOTA_SECONDS:g} s instead of {XGBOOST_ONE_THREAD_SECONDS:g} s in xgboost's measurement "
        "(dmlc/xgboost#7653): the mechanism, not a figure measured for this library",
        hardware=ctx.hardware.key,
        source=SOURCE_CITED,
        assumptions=("the job runs under a CPU quota smaller than the host",),
    )


def quota_sized_estimate(
    ctx: "FileContext", basis: str, unit: str = "x CPU compute time", source: str = SOURCE_DERIVED
) -> SavingsEstimate:
    """No oversubscription from the count: the library sizes it to the quota."""
    return SavingsEstimate(
        metric="time_factor",
        low=1.0,
        high=1.0,
        unit=unit,
        basis=basis,
        hardware=ctx.hardware.key,
        source=source,
        assumptions=("contention with other jobs on a shared host is not quantified here",),
    )


def torch_thread_estimate(ctx: "FileContext") -> SavingsEstimate:
    """Intra-op threads past the free cores (GO301), from this project's torch measurement."""
    return SavingsEstimate(
        metric="time_factor",
        low=1.0,
        high=TORCH_THREAD_TIME_HIGH,
        unit="x CPU compute time",
        basis="no slowdown with a dedicated core per thread; measured here (torch 2.13 CPU, a 2-vCPU VM with one vCPU "
        f"busy with another job): a small conv training step took {TORCH_ONE_THREAD_MS:g} ms with 1 thread and "
        f"{TORCH_OVERSUBSCRIBED_MS:g} ms with 2",
        hardware=ctx.hardware.key,
        source=SOURCE_CPU,
        assumptions=("more threads than the job has free cores (a CPU quota, several ranks, a busy host)",),
    )


# -- worker keywords and loader-like callees --------------------------------------

# Keywords that size a pool of worker processes.
PROCESS_KEYWORDS = frozenset(
    {
        "num_workers",
        "n_workers",
        "dataloader_num_workers",
        "num_proc",
        "dataset_num_proc",
        "preprocessing_num_workers",
    }
)
# `num_workers=` / `n_workers=` are generic names (thread pools, dask, job
# runners): they count as loader workers only on a loader-like callee.
GENERIC_WORKER_KEYWORDS = frozenset({"num_workers", "n_workers"})
_LOADER_CALLEE = re.compile(r"loader|datamodule|data_module|dataset", re.IGNORECASE)
_POOL_NAMES = frozenset(
    {"workers", "num_threads", "n_threads", "nthreads", "threads", "loader_workers", "data_workers"}
)


def identifier(node: cst.BaseExpression) -> Optional[str]:
    """`x` for `x` and for `obj.x`; None for anything else."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return None


def method_name(node: cst.Call) -> Optional[str]:
    """`fit` for `model.fit(...)`; None for a call of a plain name."""
    return node.func.attr.value if isinstance(node.func, cst.Attribute) else None


def loader_like_call(ctx: "FileContext", node: cst.Call) -> bool:
    """A DataLoader, a data module or a loader factory (`build_dataloader`,
    `get_train_loader`), also wrapped in `functools.partial`."""
    name = ctx.call_name(node)
    if name == "functools.partial":
        target = get_arg(node, None, 0)
        if target is None:
            return False
        label = ctx.qualified_name(target.value) or identifier(target.value) or ""
        return bool(_LOADER_CALLEE.search(label))
    label = name or identifier(node.func) or ""
    return bool(_LOADER_CALLEE.search(last_part(label)))


def names_a_pool(name: str) -> bool:
    """A parameter, option or field named like a worker or thread count."""
    lowered = name.lower()
    return (
        lowered in PROCESS_KEYWORDS
        or lowered in _POOL_NAMES
        or lowered.endswith(("_workers", "_num_workers", "_num_threads", "_threads"))
    )


def option_names(node: cst.Call) -> list[str]:
    """The option strings of `parser.add_argument("--num-workers", "-j", ...)`,
    as identifiers (`num_workers`, `j`)."""
    names = []
    for arg in node.args:
        if arg.keyword is None and not arg.star:
            value = literal_value(arg.value)
            if isinstance(value, str):
                names.append(value.lstrip("-").replace("-", "_").lower())
    return names


# -- nested parallelism (GO302 reports it, GO303 leaves it to GO302) ----------------

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
ESTIMATOR_ROOTS = ("sklearn.", "xgboost.", "lightgbm.", "catboost.", "imblearn.", "joblib.")
# Constructor keywords that size an estimator's own thread or process pool.
JOBS_KEYWORDS = ("n_jobs", "nthread", "num_threads", "thread_count", "n_threads")
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


def nested_parallelism(ctx: "FileContext", node: cst.Call) -> Optional[Nested]:
    """`GridSearchCV(RandomForestClassifier(n_jobs=-1), ..., n_jobs=-1)` and
    `Parallel(n_jobs=-1)(delayed(fit)(XGBClassifier(n_jobs=-1)) ...)`."""
    func = node.func
    if isinstance(func, cst.Call) and ctx.call_name(func) == "joblib.Parallel":
        jobs = get_arg(func, "n_jobs", 0)
        jobs_text = parallel_jobs(ctx, jobs)
        if jobs is None or jobs_text is None:
            return None
        for arg in node.args:
            hit = _find_inner(ctx, arg.value, 0, set())
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
    hit = _find_inner(ctx, estimator.value, 0, set())
    if hit is None:
        return None
    return Nested(name, node, jobs, jobs_text, *hit)


_Hit = tuple[cst.Call, cst.Arg, str]


def _estimator_jobs(ctx: "FileContext", call: cst.Call) -> Optional[tuple[cst.Arg, str]]:
    """The all-cores jobs argument of an estimator constructor of a known library."""
    name = ctx.call_name(call)
    if name is None or not name.startswith(ESTIMATOR_ROOTS) or name in ("joblib.Parallel", "joblib.delayed"):
        return None
    for keyword in JOBS_KEYWORDS:
        arg = get_arg(call, keyword)
        if arg is not None:
            text = all_cores_jobs(ctx, arg.value)
            if text is not None:
                return arg, text
    return None


def _find_inner(ctx: "FileContext", node: cst.CSTNode, depth: int, seen: set[int]) -> Optional[_Hit]:
    """An estimator with all-cores n_jobs inside the expression an outer
    parallel call runs: inline, bound to a name earlier, inside a pipeline or
    a list of (name, estimator) pairs, or built by a function passed to
    `joblib.delayed`."""
    if depth > _INNER_MAX_DEPTH or id(node) in seen:
        return None
    seen.add(id(node))
    if isinstance(node, cst.Call):
        found = _estimator_jobs(ctx, node)
        if found is not None:
            return node, found[0], found[1]
        func = node.func
        # joblib: delayed(fit_one)(...) -> look inside fit_one too.
        if isinstance(func, cst.Call) and ctx.call_name(func) == "joblib.delayed":
            target = get_arg(func, None, 0)
            if target is not None:
                hit = _find_in_function(ctx, target.value)
                if hit is not None:
                    return hit
        name = ctx.call_name(node)
        if name is not None and not name.startswith(ESTIMATOR_ROOTS) and name != "builtins.list":
            return None  # an unrelated call: its arguments are not run in parallel here
        for arg in node.args:
            if arg.star:
                continue
            hit = _find_inner(ctx, arg.value, depth + 1, seen)
            if hit is not None:
                return hit
        return None
    if isinstance(node, (cst.List, cst.Tuple, cst.Set)):
        for element in node.elements:
            hit = _find_inner(ctx, element.value, depth + 1, seen)
            if hit is not None:
                return hit
        return None
    if isinstance(node, (cst.GeneratorExp, cst.ListComp)):
        return _find_inner(ctx, node.elt, depth + 1, seen)
    if isinstance(node, (cst.Name, cst.Attribute)):
        value = ctx.value_of(node)
        if isinstance(value, cst.BaseExpression):
            return _find_inner(ctx, value, depth + 1, seen)
    return None


def _find_in_function(ctx: "FileContext", target: cst.BaseExpression) -> Optional[_Hit]:
    """An all-cores estimator built in the body of the module function that
    `joblib.delayed` wraps (literal values only: its own names are not in scope)."""
    if not isinstance(target, cst.Name):
        return None
    function = called_function(ctx, cst.Call(func=target))
    if function is None:
        return None
    stack: list[cst.CSTNode] = [function.body]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Call):
            name = ctx.call_name(current)
            if name is not None and name.startswith(ESTIMATOR_ROOTS):
                for keyword in JOBS_KEYWORDS:
                    arg = get_arg(current, keyword)
                    if arg is not None and literal_value(arg.value) == -1:
                        return current, arg, "-1"
        if isinstance(current, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue  # nested definitions run at another time
        stack.extend(reversed(children(current)))
    return None

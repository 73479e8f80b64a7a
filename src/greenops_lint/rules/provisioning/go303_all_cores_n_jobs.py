"""GO303: a single-level scikit-learn / joblib / GBDT job on every core."""

from __future__ import annotations

from typing import Optional

import libcst as cst

from greenops_lint.analysis.calls import get_arg, literal_value
from greenops_lint.analysis.parallelism import all_cores_jobs
from greenops_lint.analysis.tree import last_part
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.provisioning._shared import (
    ESTIMATOR_ROOTS,
    JOBLIB_ROOTS,
    JOBS_KEYWORDS,
    host_threads_estimate,
    host_threads_why,
    nested_parallelism,
    quota_reader,
    quota_sized_estimate,
    worker_estimate,
)
from greenops_lint.savings import SOURCE_CITED, SOURCE_CPU, SOURCE_DERIVED

# The estimates are the family's (constants in `_shared.py`, quoted by the
# `## Estimate` section); `quota_reader` says which applies.
_HOST_COUNT_MESSAGE = (
    "{what} sizes the pool to the host's CPU count, which the library uses as given: under a container CPU quota "
    "the threads outnumber the cores; set an explicit, configurable count"
)
_OPENMP_MESSAGE = (
    "{what} leaves the count to OpenMP, which counts the host's logical CPUs and ignores a container CPU quota: "
    "the threads can outnumber the cores; set an explicit, configurable count"
)
# joblib (scikit-learn, imbalanced-learn), xgboost and catboost size -1 to the
# container's CPU quota: only contention with other jobs on a shared host (info).
_QUOTA_MESSAGE = (
    "{what} uses every core of the machine or of the container's CPU quota ({reader} reads it); on a host "
    "shared with other jobs that takes their cores: set an explicit, configurable count"
)
_QUOTA_BASIS = {
    "joblib": "joblib sizes n_jobs=-1 with loky's cpu_count(), which reads the CPU affinity and the cgroup CPU quota",
    "xgboost": "xgboost sizes -1 to the cgroup CPU quota since 1.6 (GetCfsCPUCount, dmlc/xgboost#7654; cgroup v2 "
    "since #9651)",
    "catboost": "catboost sizes -1 with NSystemInfo::NumberOfCpus(), which reads the cgroup CPU quota (cpu.max "
    "since catboost#2519)",
}


def _ignores_n_jobs(node: cst.Call, name: str) -> bool:
    """Estimators on which `n_jobs` does nothing in the configuration written:
    scikit-learn's `LogisticRegression` uses it only with `multi_class="ovr"`
    and a solver other than liblinear (lbfgs, the default, fits one
    multinomial problem: the cores stay idle), and `LinearRegression` only for several targets on
    sparse data or with `positive=True`."""
    estimator = last_part(name)
    if not name.startswith("sklearn."):
        return False
    if estimator == "LogisticRegression":
        multi_class, solver = get_arg(node, "multi_class"), get_arg(node, "solver")
        if solver is not None and literal_value(solver.value) == "liblinear":
            return True  # ignored with liblinear in any case
        return multi_class is None or literal_value(multi_class.value) != "ovr"
    if estimator == "LinearRegression":
        positive = get_arg(node, "positive")
        return positive is None or literal_value(positive.value) is not True
    return False


class AllCoresNJobs(Rule):
    """Runs a single-level scikit-learn / joblib / GBDT job on every core.

    ## What it does
    Flags `n_jobs=-1` or `n_jobs=os.cpu_count()` (also xgboost `nthread=`,
    lightgbm `num_threads=`, catboost `thread_count=-1`) in calls to
    scikit-learn, joblib, xgboost, lightgbm, catboost and imbalanced-learn,
    when GO302 does not already report the same call as part of nested
    parallelism. On by default since the triage of issue 17: the product
    brief names "maxed-out workers", and on 28 wheels of real ML code its
    findings were explicit all-core choices once the estimators that ignore
    `n_jobs` were left out (see below). On a dedicated machine all cores may
    be what you want: say so with `# noqa: GO303` or `ignore = ["GO303"]`.

    Not flagged: `n_jobs=1`, a small fixed count, `None`/absent (the library's
    own default, even where that is all cores: the rule reports explicit
    choices only), values from config, calls of other libraries, and
    estimators on which `n_jobs` has no effect as written: scikit-learn's
    `LogisticRegression` without `multi_class="ovr"` or with liblinear (the
    default lbfgs solver fits one multinomial problem and ignores `n_jobs`), and
    `LinearRegression` without `positive=True` (`n_jobs` only splits several
    targets of a sparse problem).

    ## Why is this bad
    On a dedicated machine all cores is often right. On a shared one the job
    takes the cores of every other process, and a count of the host's CPUs
    instead of the container's CPU quota oversubscribes badly: xgboost, before
    it read the quota, took 28 s with `n_jobs=-1` in a 1-CPU container on a
    16-CPU host instead of 0.3 s with `n_jobs=1` (dmlc/xgboost#7653).

    ## Fix
    Pass an explicit count from configuration (`n_jobs=args.jobs`, default a
    few cores), or cap with `threadpoolctl.threadpool_limits` around the call.

    Reported at info severity where the library sizes `-1` to the container's
    CPU quota, so only a host shared with other jobs is affected:
    scikit-learn, imbalanced-learn and joblib (loky's `cpu_count()` reads the
    CPU affinity and the cgroup quota), xgboost since 1.6 (GetCfsCPUCount,
    dmlc/xgboost#7654; cgroup v2 since #9651) and catboost
    (`NSystemInfo::NumberOfCpus` reads the cgroup quota; v2 since
    catboost#2519). Reported as a warning where the count ignores the quota:
    lightgbm's `-1` / `num_threads=-1` leaves it to OpenMP, which counts the
    host's logical CPUs (it follows the affinity mask, not the CFS quota), and
    an explicit host count (`n_jobs=os.cpu_count()`) is used as given by every
    library, bypassing the quota.

    ## Estimate
    `-1` on scikit-learn, imbalanced-learn, joblib, xgboost and catboost: 1.0x
    (derived: the library reads the quota; contention with other jobs on a
    shared host is not quantified here). An explicit host count on
    scikit-learn, imbalanced-learn or joblib (worker processes): 1.0-1.4x,
    measured on CPU with surplus DataLoader worker processes (8 on 2 CPUs),
    with 1.3-1.5x the memory. An explicit host count on xgboost, lightgbm or
    catboost, or lightgbm's `-1` (OpenMP threads): 1.0x on a dedicated
    machine up to 93x CPU compute time under a 1-CPU quota, xgboost's
    measurement of host-sized threads under a quota (dmlc/xgboost#7653),
    quoted for the mechanism and not measured for the other libraries.
    """

    code = "GO303"
    name = "all-cores-n-jobs"
    family = "provisioning"
    estimate_sources = {
        SOURCE_CITED: "host counts on xgboost/lightgbm/catboost and lightgbm -1: host-sized threads under a 1-CPU "
        "quota (dmlc/xgboost#7653)",
        SOURCE_CPU: "host counts on scikit-learn/joblib: surplus worker processes, 8 on 2 CPUs (a DataLoader, this "
        "project's machine)",
        SOURCE_DERIVED: "any machine: joblib, xgboost and catboost size -1 to the CPU quota, so no oversubscription from it",
    }
    tokens = ("n_jobs", "thread_count", "nthread", "num_threads")
    INVALID = [
        Invalid(
            """
            from sklearn.ensemble import RandomForestClassifier
            clf = RandomForestClassifier(n_estimators=500, n_jobs=-1).fit(X, y)
            """,
            line=2,
            message="RandomForestClassifier(n_jobs=-1) uses every core of the machine or of the container's CPU quota",
        ),
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
        """
        from sklearn.linear_model import LinearRegression, LogisticRegression
        classifier = LogisticRegression(max_iter=1000, n_jobs=-1)
        regressor = LinearRegression(n_jobs=-1)
        """,
    ]

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.candidates: list[tuple[cst.Arg, Optional[cst.CSTNode], str, str, str]] = []
        self.covered: set[int] = set()

    def visit_Call(self, node: cst.Call) -> None:
        nested = nested_parallelism(self.ctx, node)
        if nested is not None:
            self.covered.update((id(nested.inner_jobs), id(nested.outer_jobs)))
        name = self.ctx.call_name(node)
        if name is None or not name.startswith(ESTIMATOR_ROOTS) or name == "joblib.delayed":
            return
        if _ignores_n_jobs(node, name):
            return
        for keyword in JOBS_KEYWORDS:
            arg = get_arg(node, keyword, 0 if name == "joblib.Parallel" and keyword == "n_jobs" else None)
            if arg is None:
                continue
            text = all_cores_jobs(self.ctx, arg.value)
            if text is not None:
                what = f"{last_part(name)}({keyword}={text})"
                self.candidates.append((arg, self.ctx.enclosing_statement(), what, name, text))

    def leave_Module(self, node: cst.Module) -> None:
        # Reported at the end: a later GridSearchCV can make an earlier
        # estimator part of nested parallelism (GO302 then reports it).
        for arg, statement, what, name, text in self.candidates:
            if id(arg) in self.covered:
                continue
            reader = quota_reader(name, text)
            if reader is not None:
                basis = f"{_QUOTA_BASIS[reader]}: no oversubscription under a container quota"
                message = _QUOTA_MESSAGE.format(what=what, reader=reader)
                self.report(arg, message, quota_sized_estimate(self.ctx, basis), statement=statement, severity="info")
                continue
            template = _HOST_COUNT_MESSAGE if text != "-1" else _OPENMP_MESSAGE
            if name.startswith(JOBLIB_ROOTS):
                # joblib's workers are processes (loky) or coarse tasks, not spinning
                # OpenMP threads: the DataLoader measurement of surplus worker processes fits.
                estimate = worker_estimate(
                    self.ctx, "x CPU compute time", "; joblib's worker processes oversubscribe the same way"
                )
            else:
                estimate = host_threads_estimate(self.ctx, host_threads_why(name, text))
            self.report(arg, template.format(what=what), estimate, statement=statement)

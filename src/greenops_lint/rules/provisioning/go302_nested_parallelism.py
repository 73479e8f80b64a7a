"""GO302: an all-cores estimator run inside a parallel search or meta-estimator."""

from __future__ import annotations

import libcst as cst

from greenops_lint.analysis.tree import last_part
from greenops_lint.finding import SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.provisioning._shared import (
    Nested,
    host_threads_estimate,
    host_threads_why,
    nested_parallelism,
    quota_reader,
    quota_sized_estimate,
)
from greenops_lint.savings import SOURCE_CITED, SOURCE_CPU, SOURCE_DERIVED

# The estimates are the family's (constants in `_shared.py`, quoted by the
# `## Estimate` section), scoped to the search; which one depends on what sizes
# the inner count (`quota_reader`).
ESTIMATE_UNIT = "x search time"
# Measured here (scikit-learn 1.x, 2 CPUs, median of 3): the nest the page describes.
MEASURED_NESTED_SECONDS = 7.4
MEASURED_FLAT_SECONDS = 11.3
_JOBLIB_BASIS = (
    "measured here: GridSearchCV(n_jobs=8) over RandomForestClassifier(n_jobs=8), pinned to 2 CPUs, took "
    f"{MEASURED_NESTED_SECONDS:g} s against {MEASURED_FLAT_SECONDS:g} s with the inner n_jobs=1; joblib's loky "
    "workers cap inner OpenMP/BLAS threads to cpu_count() // n_jobs, and its cpu_count() reads the CPU quota"
)
_READER_BASIS = {
    "xgboost": "derived: xgboost sizes -1 to the CPU quota (since 1.6, dmlc/xgboost#7654) and to OpenMP's thread "
    "limit, which joblib's loky workers set to cpu_count() // n_jobs: no host-sized pool",
    "catboost": "derived: catboost sizes -1 to the CPU quota (cgroup cpu.max or CFS quota, catboost#2519): no "
    "host-sized pool, though each outer worker still starts a quota-sized one (not quantified here)",
}


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
    threads add no CPU capacity, only contention and memory, and where the
    inner count is the host's CPU count instead of the container's quota it
    gets far worse: threads sized to a 16-CPU host in a 1-CPU container took
    28 s instead of 0.3 s in xgboost's measurement (dmlc/xgboost#7653, from
    before xgboost read the quota).

    How much it costs depends on the libraries: joblib limits OpenMP/BLAS
    threads in its loky workers, and a measurement here (scikit-learn 1.x,
    `GridSearchCV(n_jobs=8)` over a 100-tree `RandomForestClassifier`, 4000
    samples, pinned to 2 CPUs, median of 3) found the nested run with inner
    `n_jobs=8` no slower than inner `n_jobs=1` (7.4 s vs 11.3 s). So the rule
    reports a configuration that asks for far more threads than cores, with a
    cost that is large where the inner count ignores the quota and small or
    none where joblib caps the inner level.

    What sizes the inner count decides the estimate. joblib's loky workers cap
    the inner OpenMP/BLAS threads to `cpu_count() // n_jobs` (scikit-learn's
    parallelism docs), and joblib's `cpu_count()` reads the cgroup CPU quota;
    xgboost sizes `-1` to the quota since 1.6 (dmlc/xgboost#7654, cgroup v2 in
    #9651) and catboost does too (catboost#2519 for cgroup v2). An explicit
    host count (`os.cpu_count()`, `multiprocessing.cpu_count()`) is used as
    given by every library and bypasses the quota, and lightgbm's `-1` leaves
    the count to OpenMP, which counts the host's logical CPUs.

    ## Fix
    Parallelise one level only: keep the outer `n_jobs` (the search has more,
    coarser tasks) and set the inner estimator's `n_jobs=1`, or split the cores
    (`outer n_jobs=k`, inner `n_jobs=cores // k`).

    ## Estimate
    scikit-learn, imbalanced-learn or joblib inner estimators with `-1`: 1.0x
    search time (measured here: the nested RandomForest GridSearchCV above
    on 2 CPUs was not slower). xgboost and catboost inner estimators with
    `-1`: 1.0x (derived: they size `-1` to the quota). An inner explicit host
    count, or lightgbm's `-1`: 1.0x on a dedicated machine up to 93x search
    time under a 1-CPU quota, xgboost's measurement of host-sized threads
    under a quota (dmlc/xgboost#7653), quoted for the mechanism and not
    measured for the other libraries.
    """

    code = "GO302"
    name = "nested-parallelism"
    family = "provisioning"
    estimate_sources = {
        SOURCE_CPU: "scikit-learn/joblib inner -1: a nested RandomForest GridSearchCV pinned to 2 CPUs on this project's machine",
        SOURCE_DERIVED: "xgboost/catboost inner -1: any machine, the library sizes -1 to the CPU quota",
        SOURCE_CITED: "inner host counts and lightgbm -1: host-sized threads under a 1-CPU quota (dmlc/xgboost#7653)",
    }
    tokens = ("n_jobs", "thread_count", "nthread", "num_threads")
    INVALID = [
        Invalid(
            """
            from sklearn.ensemble import RandomForestClassifier
            from sklearn.model_selection import GridSearchCV
            search = GridSearchCV(RandomForestClassifier(n_jobs=-1), {"max_depth": [4, 8]}, n_jobs=-1)
            """,
            line=3,
            message="GridSearchCV(n_jobs=-1) runs RandomForestClassifier(n_jobs=-1) in each of its workers",
        ),
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
        found = nested_parallelism(self.ctx, node)
        if found is None:
            return
        inner = last_part(self.ctx.call_name(found.inner_call) or "estimator")
        outer = last_part(found.outer_name)
        inner_kw = found.inner_jobs.keyword.value if found.inner_jobs.keyword else "n_jobs"
        self.report(
            found.outer_call,
            f"{outer}(n_jobs={found.outer_jobs_text}) runs {inner}({inner_kw}={found.inner_jobs_text}) in each of its "
            f"workers: cores x cores threads; parallelise one level only (set the inner {inner_kw}=1)",
            self._estimate(found),
        )

    def _estimate(self, found: Nested) -> SavingsEstimate:
        name = self.ctx.call_name(found.inner_call) or ""
        reader = quota_reader(name, found.inner_jobs_text)
        if reader == "joblib":
            return quota_sized_estimate(self.ctx, _JOBLIB_BASIS, ESTIMATE_UNIT, source=SOURCE_CPU)
        if reader is not None:
            return quota_sized_estimate(self.ctx, _READER_BASIS[reader], ESTIMATE_UNIT)
        return host_threads_estimate(self.ctx, host_threads_why(name, found.inner_jobs_text), ESTIMATE_UNIT)

"""GO302: an all-cores estimator run inside a parallel search or meta-estimator."""

from __future__ import annotations

import libcst as cst

from greenops_lint.analysis.tree import last_part
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.provisioning._shared import nested_parallelism, thread_estimate
from greenops_lint.savings import SOURCE_CITED

# The estimate is the family's `thread_estimate` (constants in `_shared.py`,
# quoted by the `## Estimate` section), scoped to the search.
ESTIMATE_UNIT = "x search time"


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
    estimate_sources = {
        SOURCE_CITED: "CPU work under a 1-CPU container quota (dmlc/xgboost#7653)",
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
            thread_estimate(self.ctx, ESTIMATE_UNIT),
        )

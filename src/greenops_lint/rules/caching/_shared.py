"""What only the GO1xx rules share: the same work done again on every iteration."""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from greenops_lint.analysis.candidates import Candidate, CandidateRule
from greenops_lint.analysis.efficiency import exits_block
from greenops_lint.analysis.loops import FrameNode, Repetition
from greenops_lint.analysis.tree import is_test_file
from greenops_lint.finding import SavingsEstimate
from greenops_lint.savings import SOURCE_COUNTED

if TYPE_CHECKING:  # pragma: no cover
    pass

# The `## Estimate` of every GO1xx rule: with a literal count, (iterations - 1)
# repetitions; otherwise a typical run of 2-100 epochs, that is 1-99 repetitions.
TYPICAL_EPOCHS = (2, 100)
UNKNOWN_REPEATS = (float(TYPICAL_EPOCHS[0] - 1), float(TYPICAL_EPOCHS[1] - 1))
UNKNOWN_COUNT = f"a typical training run has {TYPICAL_EPOCHS[0]}-{TYPICAL_EPOCHS[1]} epochs, more steps"

# Functions that run once per sample or per batch by design: lazy loading there is the normal pattern.
PER_SAMPLE_FUNCTIONS = frozenset({"__getitem__", "__getitems__", "__iter__", "__next__", "__call__", "collate_fn"})
CACHE_DECORATORS = frozenset(
    {"functools.lru_cache", "functools.cache", "functools.cached_property", "builtins.property", "joblib.Memory.cache"}
)
_CACHE_DECORATOR_ENDINGS = (".cache", "lru_cache", "cached_property", "memoize")


def leaves_the_loop(block: cst.CSTNode) -> bool:
    """The block (an `if`/`else`/`try`/`except` body) ends with return, break or raise."""
    if isinstance(block, (cst.Else, cst.Finally)):
        block = block.body
    if not isinstance(block, cst.BaseSuite):
        return False
    return exits_block(block)


class RepeatedWorkRule(CandidateRule):
    """A call that does the same work again on every epoch or step (not a rule itself)."""

    family = "caching"
    same_arguments = True
    loop_kinds = frozenset({"epoch", "step"})

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self._memoised: dict[int, bool] = {}  # id(frame) -> decorated with a cache
        self.in_test_file = is_test_file(ctx.path)

    def report(self, node, message, estimate=None, statement=None, fix=None, severity=None) -> None:
        """Nothing in a test file (`test_*.py`, `conftest.py`, under `tests/`): a
        test loop runs the API it checks over a matrix of settings, each case
        from scratch; it is not a training workload."""
        if not self.in_test_file:
            super().report(node, message, estimate, statement, fix, severity)

    def record(self, node: cst.CSTNode, label: str = "", **extra) -> Candidate:
        candidate = super().record(node, label, **extra)
        frame = candidate.frame
        if id(frame) not in self._memoised:
            self._memoised[id(frame)] = self._is_memoised(frame)
        return candidate

    def _is_memoised(self, frame: FrameNode) -> bool:
        """`functools.lru_cache`, `cache`, `cached_property`, ...: the body runs once per argument."""
        if not isinstance(frame, cst.FunctionDef):
            return False
        for decorator in frame.decorators:
            target = decorator.decorator.func if isinstance(decorator.decorator, cst.Call) else decorator.decorator
            qualified = self.ctx.qualified_name(target) or ""
            if qualified in CACHE_DECORATORS or qualified.endswith(_CACHE_DECORATOR_ENDINGS):
                return True
        return False

    def extra_guard(self, node: cst.CSTNode, child: cst.CSTNode, variant) -> bool:
        """A block that ends with `return`, `break` or `raise` runs at most once
        in the loop around it (an early-stop branch that restores the best
        checkpoint and leaves): what it loads is not loaded again."""
        return leaves_the_loop(child)

    def memoised(self, candidate: Candidate) -> bool:
        return self._memoised.get(id(candidate.frame), False)

    def per_sample(self, frame: FrameNode) -> bool:
        if isinstance(frame, cst.FunctionDef):
            return frame.name.value in PER_SAMPLE_FUNCTIONS or self.ctx.loops.is_generator(frame)
        return False

    def leave_Module(self, node: cst.Module) -> None:
        for candidate in self.candidates:
            if self.memoised(candidate) or self.per_sample(candidate.frame):
                continue
            repetition = self.repetition(candidate)
            if repetition is not None:
                self.emit(candidate, repetition)

    def emit(self, candidate: Candidate, repetition: Repetition) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def repeated_estimate(self, repetition: Repetition, what: str) -> SavingsEstimate:
        """(iterations - 1) extra `what` for a literal count, else the typical range."""
        count = repetition.loop.count
        if count:
            low = high = float(max(count - 1, 0))
            assumptions = (f"the loop runs {count} times (literal or default argument in the code)",)
        else:
            low, high = UNKNOWN_REPEATS
            assumptions = (f"the iteration count is not literal: {UNKNOWN_COUNT}",)
        return SavingsEstimate(
            metric="repeated_work",
            low=low,
            high=high,
            unit=f"extra {what}",
            basis=f"(iterations - 1) repetitions of the {what}; each costs its read/parse or start-up time, "
            "which the probe measures",
            hardware=self.ctx.hardware.key,
            source=SOURCE_COUNTED,
            assumptions=assumptions,
        )

"""Candidates: record during the walk, decide at the end of the module.

Whether code repeats is known only once every loop is classified (see
`analysis/loops.py`), so loop rules record a `Candidate` when the walk meets
the node (with the loops and guards around it, which the walk knows then) and
decide in `leave_Module` with `CandidateRule.repetition`:

1. **Loops.** The candidate repeats in the loops around it (innermost first),
   then, when it sits in a function of the module and `follow_calls` is set,
   in the loops around the calls of that function, two calls deep
   (`LoopAnalysis.repetitions`), and in a model method the framework calls for
   every batch.
2. **Guards.** A guard between the candidate and a loop makes it run once or
   rarely in that loop and in every loop outside it: the search stops. The
   guard rule is `analysis/guards.is_guard` (once-guards, periodic tests, a
   `try` that catches `FileNotFoundError`/`EOFError`); a rule may widen it with
   `extra_guard(node, child, variant)`, which also sees the child on the path
   (to tell an `if` body from its `else`) and the names that change in the
   loops around. Only `If`, `Try` and `ExceptHandler` nodes are judged. A
   guard anywhere in the candidate's function guards the calls of it; a guard
   around one call site of it skips the loops of that site only.
3. **Same work.** With `same_arguments` set (a load, a constructor), the
   candidate repeats only where the names its call reads do not change in the
   loop; through calls, the arguments bound to the parameters it reads are
   followed to the call site instead (`invariant_through_calls`).
4. **Kinds.** Retry loops (`for attempt in range(3)`) never count, and the
   rule says which loop kinds do (`loop_kinds`, or `accept` per call).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Iterable, Iterator, Optional, Sequence

import libcst as cst

from greenops_lint.analysis.guards import is_guard
from greenops_lint.analysis.loops import (
    CallSite,
    FrameNode,
    LoopInfo,
    Repetition,
    describe_repetition,
    referenced_names,
)
from greenops_lint.analysis.names import BUILTIN_NAMES
from greenops_lint.rule import Rule

# The only nodes a guard predicate is asked about.
GUARD_TYPES = (cst.If, cst.Try, cst.ExceptHandler)
_FRAME_TYPES = (cst.FunctionDef, cst.Lambda)

# (ancestor, its child on the path down to the candidate), innermost first.
Path = Sequence[tuple[cst.CSTNode, cst.CSTNode]]
# guard(node, child, variant names of the loops around) -> is `node` a guard on this path?
GuardPredicate = Callable[[cst.CSTNode, cst.CSTNode, "LoopNames"], bool]


@dataclass
class Guards:
    """Guards between a node and the loops around it, in its own function."""

    loops: set[int] = field(default_factory=set)  # id(loop) inside which a guard encloses the node
    frame: bool = False  # a guard between the node and the top of its function


@dataclass(eq=False)
class Candidate:
    """A node that may repeat, with what the walk knew about it at the time."""

    node: cst.CSTNode
    statement: Optional[cst.CSTNode]
    direct: tuple[LoopInfo, ...]  # the loops around it in its frame, innermost first
    frame: FrameNode
    guards: Guards = field(default_factory=Guards)
    label: str = ""
    arg_names: frozenset[str] = frozenset()  # names the call reads (with `same_arguments`)
    local_arg_names: frozenset[str] = frozenset()  # those of them local to its function
    extra: dict = field(default_factory=dict)


def call_names(node: cst.CSTNode) -> frozenset[str]:
    """Names a call reads: its arguments, and the receiver of a method call."""
    if not isinstance(node, cst.Call):
        return frozenset()
    names: set[str] = set()
    if isinstance(node.func, cst.Attribute):
        names |= referenced_names(node.func.value)
    for arg in node.args:
        names |= referenced_names(arg.value)
    return frozenset(names)


def variant_names(loops: Iterable[LoopInfo]) -> set[str]:
    names: set[str] = set()
    for loop in loops:
        names |= loop.variant_names()
    return names


def changes_any(loops: Iterable[LoopInfo], names: Iterable[str]) -> bool:
    """Does one of `loops` bind or assign one of `names`? (No union of the
    loops' names is built: a loop of thousands of assignments stays linear.)"""
    return any(not loop.targets.isdisjoint(names) or not loop.assigned.isdisjoint(names) for loop in loops)


class LoopNames:
    """The names that change in some loops, as a read-only set-like view (built
    lazily: judging guards for thousands of candidates in one loop stays linear)."""

    def __init__(self, loops: Iterable[LoopInfo]) -> None:
        self.loops = tuple(loops)

    def __contains__(self, name: object) -> bool:
        return any(name in loop.targets or name in loop.assigned for loop in self.loops)

    def isdisjoint(self, names: Iterable[str]) -> bool:
        return not changes_any(self.loops, names)

    def __and__(self, names: Iterable[str]) -> set[str]:
        return {name for name in names if name in self}

    __rand__ = __and__

    def __iter__(self) -> Iterator[str]:
        return iter(variant_names(self.loops))


def scan_guards(path: Path, loops: tuple[LoopInfo, ...], guard: GuardPredicate) -> Guards:
    """Judge the ancestors on `path` (innermost first, up to the function) with
    `guard(node, child, variant)`: a guard encloses every loop above it."""
    found = Guards()
    loop_ids = {id(loop.node): id(loop) for loop in loops}
    variant: Optional[LoopNames] = None
    seen = False
    for node, child in path:
        if not seen and isinstance(node, GUARD_TYPES):
            if variant is None:
                variant = LoopNames(loops)
            seen = guard(node, child, variant)
        if seen:
            loop_id = loop_ids.get(id(node))
            if loop_id is not None:
                found.loops.add(loop_id)
    found.frame = seen
    return found


def stack_path(stack: Sequence[cst.CSTNode]) -> Iterator[tuple[cst.CSTNode, cst.CSTNode]]:
    """(ancestor, child) pairs of the node on top of the walk's stack, up to its function."""
    for index in range(len(stack) - 2, -1, -1):
        node = stack[index]
        if isinstance(node, _FRAME_TYPES):
            return
        yield node, stack[index + 1]


def call_paths(root: cst.CSTNode, keep: set[int]) -> dict[int, tuple[tuple[cst.CSTNode, cst.CSTNode], ...]]:
    """For every call under `root`, not in nested functions: id(call) -> the
    (ancestor, child) pairs on its path whose ancestor is guard-like or has its
    id in `keep` (the loops), innermost first."""
    from greenops_lint.walker import children

    found: dict[int, tuple[tuple[cst.CSTNode, cst.CSTNode], ...]] = {}
    stack: list[tuple[cst.CSTNode, tuple]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if type(node) is cst.Call:
            found[id(node)] = path
        kept = isinstance(node, GUARD_TYPES) or id(node) in keep
        for child in children(node):
            if type(child) is cst.FunctionDef or type(child) is cst.Lambda:
                continue  # another frame: its calls have their own sites
            stack.append((child, ((node, child), *path) if kept else path))
    return found


class CandidateRule(Rule):
    """A rule that records candidates during the walk and decides at the end
    (not a rule itself; see the module docstring)."""

    analyses = ("loops",)
    # Follow a candidate in a function to the loops around the calls of it.
    follow_calls: ClassVar[bool] = True
    # A candidate repeats only where the names its call reads stay the same.
    same_arguments: ClassVar[bool] = False
    # The loop kinds in which a repetition counts (unless `accept` is given).
    loop_kinds: ClassVar[frozenset] = frozenset({"epoch", "step", "loop"})

    def __init__(self, ctx, options=None) -> None:
        super().__init__(ctx, options)
        self.candidates: list[Candidate] = []
        self._site_paths: dict[int, dict[int, list]] = {}  # id(frame) -> call_paths of it
        self._site_guards: dict[int, Guards] = {}  # id(call site) -> its guards

    # -- guards ----------------------------------------------------------------------
    def extra_guard(self, node: cst.CSTNode, child: cst.CSTNode, variant: "LoopNames") -> bool:
        """Guards this rule accepts beyond `analysis/guards.is_guard` (none)."""
        return False

    def is_guard(self, node: cst.CSTNode, child: cst.CSTNode, variant: "LoopNames") -> bool:
        return is_guard(node) or self.extra_guard(node, child, variant)

    # -- during the walk ---------------------------------------------------------------
    def record(
        self,
        node: cst.CSTNode,
        label: str = "",
        *,
        outer_only: bool = False,
        statement: Optional[cst.CSTNode] = None,
        **extra,
    ) -> Candidate:
        """Record the node being visited (or `node`, visited in its place).
        `outer_only`: the node is a loop, which repeats in the loops around it only."""
        loops = self.ctx.loops
        direct = loops.loops_at()
        guards = scan_guards(stack_path(self.ctx.stack), direct, self.is_guard)
        candidate = Candidate(
            node=node,
            statement=statement or self.ctx.enclosing_statement(),
            direct=direct[1:] if outer_only else direct,
            frame=loops.current_frame,
            guards=guards,
            label=label,
            extra=extra,
        )
        if self.same_arguments and not outer_only:
            candidate.arg_names = call_names(node)
            scope = self.ctx.names.current
            if scope.kind == "function":
                candidate.local_arg_names = frozenset(n for n in candidate.arg_names if n in scope.names)
        self.candidates.append(candidate)
        return candidate

    # -- after the walk ----------------------------------------------------------------
    def repetitions(self, candidate: Candidate) -> Iterable[Repetition]:
        return self.ctx.loops.repetitions(candidate.direct, candidate.frame)

    def repetition(
        self, candidate: Candidate, accept: Optional[Callable[[LoopInfo], bool]] = None
    ) -> Optional[Repetition]:
        """The first loop that runs the candidate again on every iteration, doing
        the same work, of a kind `accept` (default: `loop_kinds`) takes."""
        inner: list[LoopInfo] = []  # the direct loops so far: names they change are variant
        for repetition in self.repetitions(candidate):
            loop = repetition.loop
            if not repetition.via:
                inner.append(loop)
                if id(loop) in candidate.guards.loops or (loop.node is candidate.frame and candidate.guards.frame):
                    return None  # a guard inside this loop also guards the outer ones
            else:
                if not self.follow_calls or candidate.guards.frame:
                    return None
                if self.site_guarded(repetition):
                    continue
            if loop.is_retry or not (accept(loop) if accept is not None else loop.kind in self.loop_kinds):
                continue
            if self.same_arguments:
                if repetition.via:
                    if not self.invariant_through_calls(candidate, repetition):
                        continue
                elif candidate.arg_names and changes_any(inner, candidate.arg_names):
                    continue
            return repetition
        return None

    def site_guarded(self, repetition: Repetition) -> bool:
        """A guard around a call on the way: in the function of an inner call
        site, or between the outermost site and the repeating loop."""
        last = len(repetition.via) - 1
        for index, site in enumerate(repetition.via):
            guards = self._guards_of_site(site)
            if index < last or repetition.loop.node is site.frame:
                if guards.frame:
                    return True
            elif id(repetition.loop) in guards.loops:
                return True
        return False

    def _guards_of_site(self, site: CallSite) -> Guards:
        guards = self._site_guards.get(id(site))
        if guards is None:
            frame = site.frame
            paths = self._site_paths.get(id(frame))
            if paths is None:
                keep = {id(loop.node) for loop in self.ctx.loops.loops if loop.frame is frame}
                paths = self._site_paths[id(frame)] = call_paths(frame if frame is not None else self.ctx.module, keep)
            guards = self._site_guards[id(site)] = scan_guards(paths.get(id(site.call), ()), site.loops, self.is_guard)
        return guards

    def invariant_through_calls(self, candidate: Candidate, repetition: Repetition) -> bool:
        """A call in a helper does the same work on every call if it reads only
        globals, or if the arguments that feed the parameters it reads are
        loop-invariant at the call site, followed through at most two calls."""
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

    @staticmethod
    def where(repetition: Repetition) -> str:
        return describe_repetition(repetition)


def bound_arguments(function: FrameNode, call: cst.Call, params: set[str]) -> Optional[list[cst.BaseExpression]]:
    """The argument expressions a call passes to the named parameters of
    `function` (none for a parameter left at its default; the receiver for
    `self` in `obj.method(...)`); None when a name is not a parameter or the
    call uses *args/**kwargs."""
    if not isinstance(function, cst.FunctionDef) or any(arg.star for arg in call.args):
        return None
    positional = [p.name.value for p in (*function.params.posonly_params, *function.params.params)]
    receiver: Optional[cst.BaseExpression] = None
    bound_self = ""
    if isinstance(call.func, cst.Attribute) and positional and positional[0] in ("self", "cls"):
        # `self.make_loader()`: the method's `self` is the caller's receiver.
        receiver, bound_self = call.func.value, positional[0]
        positional = positional[1:]
    keyword_only = {p.name.value for p in function.params.kwonly_params}
    passed_positional = [arg.value for arg in call.args if arg.keyword is None]
    passed_keyword = {arg.keyword.value: arg.value for arg in call.args if arg.keyword is not None}
    expressions = []
    for name in params:
        if receiver is not None and name == bound_self:
            expressions.append(receiver)
        elif name in passed_keyword:
            expressions.append(passed_keyword[name])
        elif name in positional:
            index = positional.index(name)
            if index < len(passed_positional):
                expressions.append(passed_positional[index])
        elif name not in keyword_only:
            return None
    return expressions

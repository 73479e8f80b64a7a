"""The `Rule` base class: a rule is a small class that documents itself.

A rule subclass sets its code, name, family and severity, writes its rule page
as the docstring (sections `## What it does`, `## Why is this bad`, `## Fix`,
`## Estimate`), lists `INVALID` snippets it must flag and `VALID` look-alikes it
must not, and defines `visit_<Node>` / `leave_<Node>` methods named after LibCST
node classes. The engine builds one dispatch table for all enabled rules and
walks each file once; rules read shared analyses from `self.ctx`.
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import libcst as cst

from greenops_lint.finding import Fix, SavingsEstimate


@dataclass(frozen=True)
class Invalid:
    """An INVALID example that pins more than "the rule fires": the 1-based
    line of the finding, a fragment its message must contain, and the source
    after `--fix --unsafe-fixes` (all optional, as Fixit's `Invalid`)."""

    code: str
    line: Optional[int] = None
    message: Optional[str] = None
    fixed: Optional[str] = None

    @property
    def source(self) -> str:
        return textwrap.dedent(self.code).strip("\n") + "\n"

    @property
    def fixed_source(self) -> Optional[str]:
        return None if self.fixed is None else textwrap.dedent(self.fixed).strip("\n") + "\n"


@dataclass(frozen=True)
class RuleOption:
    """A documented, typed option under `[tool.greenops-lint.rules.CODE]`."""

    default: Any
    type: type
    help: str


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    family: ClassVar[str]
    severity: ClassVar[str] = "warning"
    default_enabled: ClassVar[bool] = True
    fixable: ClassVar[bool] = False
    # "safe" or "unsafe" for a fixable rule: what `--fix` needs to apply it.
    fix_safety: ClassVar[str] = ""
    # A third-party rule that ships its own probe says so here; built-in rules
    # have one when the probe package registers a planner for their code
    # (`greenops_lint.probe.plans.has_probe`).
    has_probe: ClassVar[bool] = False
    # The prefilter: a file that contains none of these strings cannot match,
    # so it is not parsed for this rule. Empty means "always run".
    tokens: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[dict[str, RuleOption]] = {}
    # Walk-fed analyses this rule reads from its context (e.g. "loops").
    analyses: ClassVar[tuple[str, ...]] = ()
    # Where each kind of figure this rule's estimates carry comes from (a
    # `finding.SOURCES` label) -> the hardware or setting it holds for. The
    # rule page shows it; a test checks the estimates carry only these labels.
    estimate_sources: ClassVar[dict[str, str]] = {}
    VALID: ClassVar[list[str]] = []
    # Plain snippets, or `Invalid(...)` entries that pin line, message and fix.
    INVALID: ClassVar[list[Any]] = []

    # `ctx` is the engine's FileContext (context.py): the file, its tree, the
    # shared analyses and where findings go. This module does not import it, so
    # that rules sit at the bottom of the dependency graph.
    def __init__(self, ctx: Any, options: Optional[dict[str, Any]] = None) -> None:
        self.ctx = ctx
        self.opts = {name: opt.default for name, opt in self.options.items()}
        if options:
            self.opts.update(options)

    def report(
        self,
        node: cst.CSTNode,
        message: str,
        estimate: Optional[SavingsEstimate] = None,
        statement: Optional[cst.CSTNode] = None,
        fix: Optional[Fix] = None,
        severity: Optional[str] = None,
    ) -> None:
        """Report a finding at `node`. `severity="info"` marks one that the rule's
        own estimate says is below its materiality threshold (hidden by default)."""
        self.ctx.report(self, node, message, estimate, statement, fix, severity)

    # -- documentation ------------------------------------------------------
    @classmethod
    def doc(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        return cls.doc().split("\n\n", 1)[0].replace("\n", " ").strip()

    @classmethod
    def section(cls, title: str) -> str:
        """The text under `## title` in the docstring ('' if absent)."""
        body = cls.doc()
        marker = f"## {title}"
        if marker not in body:
            return ""
        after = body.split(marker, 1)[1]
        return after.split("\n## ", 1)[0].strip()

    @classmethod
    def invalid_examples(cls) -> list[Invalid]:
        return [entry if isinstance(entry, Invalid) else Invalid(entry) for entry in cls.INVALID]

    @classmethod
    def examples(cls) -> tuple[list[str], list[str]]:
        """The INVALID and VALID snippets as source text."""
        return [e.source for e in cls.invalid_examples()], [Invalid(s).source for s in cls.VALID]


def dispatch_methods(rule_cls: type[Rule]) -> list[tuple[str, str, str]]:
    """(event, node class name, method name) for every visit_/leave_ method."""
    found = []
    for attr in dir(rule_cls):
        for event in ("visit", "leave"):
            prefix = f"{event}_"
            if attr.startswith(prefix):
                node_name = attr[len(prefix) :]
                if isinstance(getattr(cst, node_name, None), type):
                    found.append((event, node_name, attr))
    return found

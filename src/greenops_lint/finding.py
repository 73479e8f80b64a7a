"""What a rule reports: a `Finding`, and the `SavingsEstimate` it may carry."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

# Lowest first. `check` shows findings at or above `min-severity` (default
# "warning"): "info" is for findings whose own estimate says they are below the
# rule's materiality threshold, and for advisory rules.
SEVERITIES = ("info", "warning", "error")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


# Where an estimate's figure comes from (`SavingsEstimate.source`). Each rule
# declares the ones it uses (`Rule.estimate_sources`) and its page shows them.
SOURCE_DATASHEET = "datasheet"  # computed from the configured hardware profile's datasheet rates
SOURCE_DERIVED = "derived"  # a stated model's arithmetic, the same on any hardware
SOURCE_CODE = "literal sizes in the code"  # bytes from literal shapes: any device
SOURCE_COUNTED = "counted in the code"  # repetitions from the code's loops: any device
SOURCE_CITED = "cited"  # a published measurement, on the hardware its rule page names
SOURCE_CPU = "measured on CPU"  # measured here on CPU: never a GPU figure
SOURCES = (SOURCE_DATASHEET, SOURCE_DERIVED, SOURCE_CODE, SOURCE_COUNTED, SOURCE_CITED, SOURCE_CPU)
DEVICE_INDEPENDENT_SOURCES = (SOURCE_CODE, SOURCE_COUNTED)


@dataclass(frozen=True)
class SavingsEstimate:
    """What a finding wastes, as a range, with where the number comes from.

    `metric` is one of `time_factor` (the affected work runs `low`..`high` times
    slower), `repeated_work` (the same work is done `low`..`high` times),
    `memory_bytes`, or `energy`. `source` is one of `SOURCES` (below): where
    the figure comes from, which decides the hardware it holds for. A figure
    measured on CPU is never presented as the configured GPU's; only a
    `datasheet` figure is computed for the configured `hardware`.
    """

    metric: str
    low: float
    high: float
    unit: str
    basis: str
    hardware: str
    assumptions: tuple[str, ...] = ()
    source: str = ""

    @property
    def measured_on_cpu(self) -> bool:
        """The figure was measured on CPU. Estimates without a `source` label
        are read from their basis ("measured: ... CPU ...") so that a rule not
        yet labelled is not presented as the configured GPU's figure."""
        if self.source:
            return self.source == SOURCE_CPU
        basis = self.basis.lower()
        return "measured" in basis.split(":", 1)[0].split(" at ", 1)[0] and "cpu" in basis

    def to_json(self) -> dict:
        data = asdict(self)
        data["assumptions"] = list(self.assumptions)
        return data

    def headline(self) -> str:
        """A few words for the one-line text output, ending with where the
        figure holds: "on a100-80gb" only for one computed for that profile."""
        where = self.where()
        # "... on t4" for a profile's figure, "..., cited" for the others.
        where = "" if not where else f" {where}" if where.startswith("on ") else f", {where}"
        if self.metric == "memory_bytes":
            return (
                f"est. {human_bytes(self.low)}"
                + ("" if self.low == self.high else f"-{human_bytes(self.high)}")
                + f" memory{where}"
            )
        span = (
            format_figure(self.low)
            if self.low == self.high
            else f"{format_figure(self.low)}-{format_figure(self.high)}"
        )
        if self.metric == "time_factor":
            scope = "" if self.unit == "x" else " " + self.unit.removeprefix("x ")
            return f"est. {span}x{scope or ' time'}{where}"
        if self.metric == "repeated_work":
            return f"est. {span} {self.unit}"
        return f"est. {span} {self.unit}{where}"

    def where(self) -> str:
        """The hardware the figure holds for, in a few words ('' when it holds
        on any: a count or a size read from the code)."""
        if self.measured_on_cpu:
            return "measured on CPU"
        if self.source in DEVICE_INDEPENDENT_SOURCES:
            return ""
        if self.source in (SOURCE_CITED, SOURCE_DERIVED):
            return self.source
        return f"on {self.hardware}"


def format_figure(value: float) -> str:
    """A figure as the headline prints it: 49.5, 5000 (no false precision past 100)."""
    return f"{value:g}" if value < 100 else f"{value:.0f}"


def human_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    code: str
    name: str
    family: str
    message: str
    severity: str = "warning"
    fixable: bool = False
    estimate: Optional[SavingsEstimate] = None
    # Lines on which a noqa comment suppresses this finding (the reported
    # line and the first line of its statement); not part of the output.
    noqa_lines: tuple[int, ...] = field(default=(), compare=False, repr=False)
    # Notebooks: the cell (1-based, as the notebook shows it); `line` is then
    # the line within that cell.
    cell: Optional[int] = None

    def sort_key(self) -> tuple:
        return (self.path, self.cell or 0, self.line, self.column, self.code)

    def location(self) -> str:
        """`path:line:col`, or `nb.ipynb:cell 3:2:5` for a notebook cell."""
        cell = f"cell {self.cell}:" if self.cell is not None else ""
        return f"{self.path}:{cell}{self.line}:{self.column}"

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "code": self.code,
            "name": self.name,
            "family": self.family,
            "message": self.message,
            "severity": self.severity,
            "fixable": self.fixable,
            "estimate": self.estimate.to_json() if self.estimate else None,
            **({"cell": self.cell} if self.cell is not None else {}),
        }


@dataclass(frozen=True)
class Fix:
    """A change to the tree that removes a finding.

    `apply` receives the target node as the fix pass sees it (with any fixes
    inside it already applied) and returns its replacement: a node, a
    `FlattenSentinel` or a `RemovalSentinel`. An unsafe fix may change numerics
    or behaviour and runs only with `--unsafe-fixes`.
    """

    target: Any  # libcst.CSTNode
    apply: Callable[[Any], Any]
    safe: bool
    title: str

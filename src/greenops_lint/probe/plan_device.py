"""GO502's plan: a tensor created on the CPU and moved vs created on the device (a CUDA-only saving)."""

from __future__ import annotations

import ast
import math
from typing import Optional

from greenops_lint.finding import Finding
from greenops_lint.probe.plans import Host, Plan, SourceIndex
from greenops_lint.probe.stats import Claim

DEVICE_CLAIM = Claim(
    "ratio", 1.05, math.inf, "x", "GO502: creating a tensor on the device skips the host tensor and the copy"
)


_SHAPE_FACTORIES = frozenset({"zeros", "ones", "empty", "rand", "randn"})


def plan_device(finding: Finding, index: SourceIndex, host: Host, claim: Optional[Claim]) -> Plan:
    shape, factory = None, "randn"
    for node in index.nodes_at(finding.line):
        if isinstance(node, ast.Call) and index.call_name(node).startswith("torch."):
            values = [index.literal(a) for a in node.args]
            if len(values) == 1 and isinstance(values[0], (tuple, list)):
                values = list(values[0])
            if values and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
                shape = values
                name = index.call_name(node).rsplit(".", 1)[-1]
                factory = name if name in _SHAPE_FACTORIES else "randn"
                break
    sized = "literal" if shape else "default"
    shape = shape or [1024, 1024]
    return Plan(
        finding=finding,
        title="tensor created on the CPU and moved vs created on the device",
        bench="device_creation",
        variants=("before", "after"),
        labels={"before": f"torch.{factory} on the CPU, then .to(device)", "after": f"torch.{factory}(..., device=)"},
        params={"shape": shape, "factory": factory},
        sized=sized,
        sizes=f"shape {tuple(shape)}" + ("" if sized == "literal" else " (default)"),
        series="step",
        clock="wall",
        measure="ratio",
        unit="tensor",
        claim=claim if claim is not None and claim.metric == "time_factor" else DEVICE_CLAIM,
        problem=None
        if host.cuda
        else "not applicable on this hardware: no CUDA device (the saving is a host-to-device copy)",
    )

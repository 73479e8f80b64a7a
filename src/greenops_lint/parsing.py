"""LibCST's parse, without the two costs that do not change the tree it builds.

Measured on the benchmark corpus (benchmarks/bench_corpus.py, 416 files of
transformers/timm/diffusers/lightning): of LibCST's stock `parse_module` time,
about a fifth goes to CPython's cyclic garbage collector walking the young
tree again and again while it grows (a CST has no cycles: reference counting
frees it), and about a tenth to `CSTNode._validate`, which checks invariants
that the native parser's grammar already guarantees (LibCST's own comment in
`CSTNode.__post_init__` says as much; validation is for trees built by hand).

`parse_module` skips validation for the nodes the parser creates, and
`collector_paused` keeps the collector off while one file is linted. Both
restore what they changed on the way out, so trees built afterwards (autofix)
are validated as usual. Both switches are process-wide while a file is parsed;
the linter parses in one thread per process (workers are processes).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

import libcst as cst
from libcst._nodes.base import CSTNode

# The hook that dataclass-generated __init__ methods of every node call; no
# node class overrides it (checked in tests, so a LibCST upgrade that changes
# this fails loudly rather than silently validating nothing).
_VALIDATING_POST_INIT = CSTNode.__dict__.get("__post_init__")


def _skip_validation(self: CSTNode) -> None:
    return None


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (restored after)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_module(text: str) -> cst.Module:
    """`libcst.parse_module(text)`, minus node validation."""
    if _VALIDATING_POST_INIT is None:  # a LibCST without the hook: parse as is
        return cst.parse_module(text)
    CSTNode.__post_init__ = _skip_validation
    try:
        return cst.parse_module(text)
    finally:
        CSTNode.__post_init__ = _VALIDATING_POST_INIT

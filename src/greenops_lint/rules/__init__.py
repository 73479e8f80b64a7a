"""Built-in rules, registered through the same pluggy hook as third-party packs.

Each family is a package (`rules/caching/`, ...) and each rule a module in it
named after its code and name (`go101_data_load_in_loop.py`). Registration walks
the packages, so adding a rule means adding its module: there is no list to keep.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import lru_cache

from greenops_lint.hookspecs import hookimpl
from greenops_lint.rule import Rule

FAMILIES = ("core", "caching", "unused", "provisioning", "precision", "efficiency")
RULE_MODULE = re.compile(r"^go(\d{3})_[a-z0-9_]+$")


def _rules_of(module) -> list[type[Rule]]:
    """The rule classes a rule module defines (not the ones it imports)."""
    return [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Rule)
        and value.__module__ == module.__name__
        and isinstance(value.__dict__.get("code"), str)
    ]


@lru_cache(maxsize=None)
def builtin_rules() -> tuple[type[Rule], ...]:
    found: list[type[Rule]] = []
    for family in FAMILIES:
        package = importlib.import_module(f"{__name__}.{family}")
        for info in pkgutil.iter_modules(package.__path__):
            if RULE_MODULE.match(info.name):
                found.extend(_rules_of(importlib.import_module(f"{package.__name__}.{info.name}")))
    return tuple(sorted(found, key=lambda rule: rule.code))


@hookimpl
def greenops_lint_rules():
    return list(builtin_rules())

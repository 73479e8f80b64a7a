"""The plugin manager: built-in rules and third-party rule packs, loaded alike."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

import pluggy

from greenops_lint import hookspecs
from greenops_lint.analysis.registry import ANALYSES, unknown_analyses
from greenops_lint.rule import Rule

ENTRY_POINT_GROUP = "greenops_lint"


@dataclass
class RuleRegistry:
    rules: dict[str, type[Rule]]
    plugin_errors: list[str] = field(default_factory=list)
    plugin_names: tuple[str, ...] = ()
    formatters: dict = field(default_factory=dict)


def make_plugin_manager(disabled: tuple[str, ...] = ()) -> tuple[pluggy.PluginManager, list[str]]:
    from greenops_lint import rules as builtin_rules

    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(builtin_rules, name="builtin")
    errors: list[str] = []
    for name in disabled:
        manager.set_blocked(name)
    _load_entry_points(manager, errors)
    return manager, errors


def _load_entry_points(manager: pluggy.PluginManager, errors: list[str]) -> None:
    """Like `load_setuptools_entrypoints`, one plugin at a time, so that one that
    fails to import is reported by name and the others still load."""
    from importlib.metadata import entry_points

    try:
        found = entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # pragma: no cover - Python < 3.10
        found = entry_points().get(ENTRY_POINT_GROUP, [])
    for entry in sorted(found, key=lambda e: e.name):
        if manager.is_blocked(entry.name) or manager.has_plugin(entry.name):
            continue
        try:
            plugin = entry.load()
            manager.register(plugin, name=entry.name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the linter
            errors.append(f"plugin '{entry.name}' ({entry.value}) failed to load: {type(exc).__name__}: {exc}")


def load_rules(disabled: tuple[str, ...] = ()) -> RuleRegistry:
    manager, errors = make_plugin_manager(disabled)
    rules: dict[str, type[Rule]] = {}
    for plugin in manager.get_plugins():
        plugin_name = manager.get_name(plugin) or repr(plugin)
        hook = getattr(plugin, "greenops_lint_rules", None)
        if hook is None:
            continue
        try:
            provided = list(hook() or [])
        except Exception as exc:  # noqa: BLE001
            errors.append(f"plugin '{plugin_name}' failed while registering rules: {type(exc).__name__}: {exc}")
            continue
        for rule_cls in provided:
            problem = _check_rule_class(rule_cls)
            if problem:
                errors.append(f"plugin '{plugin_name}': {problem}")
            elif rule_cls.code in rules and rules[rule_cls.code] is not rule_cls:
                errors.append(f"plugin '{plugin_name}': rule code {rule_cls.code} is already registered")
            else:
                rules[rule_cls.code] = rule_cls
    formatters: dict = {}
    for plugin in manager.get_plugins():
        hook = getattr(plugin, "greenops_lint_formatters", None)
        if hook is None:
            continue
        try:
            formatters.update(hook() or {})
        except Exception as exc:  # noqa: BLE001
            errors.append(
                f"plugin '{manager.get_name(plugin)}' failed while registering formatters: {type(exc).__name__}: {exc}"
            )
    names = tuple(sorted(manager.get_name(p) or "" for p in manager.get_plugins()))
    return RuleRegistry(dict(sorted(rules.items())), errors, names, formatters)


def _check_rule_class(rule_cls: object) -> str:
    if not (isinstance(rule_cls, type) and issubclass(rule_cls, Rule)):
        return f"{rule_cls!r} is not a Rule subclass"
    for attribute in ("code", "name", "family"):
        if not isinstance(getattr(rule_cls, attribute, None), str):
            return f"rule {rule_cls.__name__} has no {attribute}"
    unknown = unknown_analyses(rule_cls.analyses)
    if unknown:
        return f"rule {rule_cls.code} declares unknown analyses {unknown} (known: {', '.join(ANALYSES)})"
    if not re.fullmatch(r"[A-Z]{1,4}[0-9]{2,4}", rule_cls.code):
        return f"rule {rule_cls.__name__} has an invalid code {rule_cls.code!r} (letters then digits, like XYZ001)"
    return ""


def warn(message: str) -> None:
    print(f"greenops-lint: warning: {message}", file=sys.stderr)

"""Configuration: `[tool.greenops-lint]` in the nearest `pyproject.toml`, validated.

Every key is checked: an unknown key, an unknown rule code or a value of the
wrong type is a `ConfigError` that names the key and the file (exit 2).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Optional

from greenops_lint.finding import SEVERITIES, severity_rank
from greenops_lint.tomlcompat import tomllib

DEFAULT_EXCLUDES = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".env",
    "env",
    ".tox",
    ".nox",
    "build",
    "dist",
    "__pycache__",
    "node_modules",
    "site-packages",
    ".eggs",
    "*.egg-info",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".greenops_lint_cache",
    ".ipynb_checkpoints",
)


class ConfigError(Exception):
    """A configuration or usage problem; the CLI prints it on one line and exits 2."""


@dataclass(frozen=True)
class Config:
    root: Path = field(default_factory=Path.cwd)
    source: Optional[Path] = None  # the file the settings came from
    # DEFAULT: every rule that is on by default; ALL (as in ruff): every rule.
    select: tuple[str, ...] = ("DEFAULT",)
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES
    extend_exclude: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    respect_gitignore: bool = True
    rule_options: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    hardware: str = "generic-gpu"
    region: str = "WORLD"
    pue: float = 1.0
    gpu_hours: Optional[float] = None
    disabled_plugins: tuple[str, ...] = ()
    min_severity: str = "warning"

    def shows(self, finding) -> bool:
        """Whether a finding is at or above `min-severity` (core errors always are)."""
        return severity_rank(finding.severity) >= severity_rank(self.min_severity)

    def options_for(self, code: str) -> dict[str, Any]:
        for rule_code, items in self.rule_options:
            if rule_code == code:
                return dict(items)
        return {}

    def with_overrides(self, **overrides: Any) -> "Config":
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


# key -> (attribute, expected kind)
_KEYS = {
    "select": ("select", "codes"),
    "extend-select": ("extend_select", "codes"),
    "ignore": ("ignore", "codes"),
    "exclude": ("exclude", "strings"),
    "extend-exclude": ("extend_exclude", "strings"),
    "per-file-ignores": ("per_file_ignores", "per-file"),
    "respect-gitignore": ("respect_gitignore", "bool"),
    "rules": ("rule_options", "rules"),
    "hardware": ("hardware", "hardware"),
    "region": ("region", "region"),
    "pue": ("pue", "pue"),
    "gpu-hours": ("gpu_hours", "positive"),
    "plugins": ("disabled_plugins", "plugins"),
    "min-severity": ("min_severity", "severity"),
}


def find_config_file(start: Path) -> Optional[Path]:
    """The nearest `pyproject.toml` at or above `start` with a `[tool.greenops-lint]` table."""
    directory = start if start.is_dir() else start.parent
    for candidate_dir in (directory, *directory.parents):
        candidate = candidate_dir / "pyproject.toml"
        if candidate.is_file():
            data = _read_toml(candidate)
            if "greenops-lint" in _tool_table_parent(data, candidate):
                return candidate
    return None


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _tool_table_parent(data: dict, path: Path) -> dict:
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: 'tool' must be a table, not {_type_name(tool)}")
    return tool


def _tool_table(data: dict, path: Path) -> dict:
    """`[tool.greenops-lint]` of a pyproject.toml (the whole file for another
    TOML file without that table), checked to be a table at every level."""
    tool = _tool_table_parent(data, path)
    fallback = data if path.name != "pyproject.toml" else {}
    table = tool.get("greenops-lint", fallback)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.greenops-lint] must be a table, not {_type_name(table)}")
    return table


def check_pattern(pattern: str, where: str) -> str:
    """A gitignore-style pattern pathspec can compile (a lone or trailing `\\` cannot)."""
    import pathspec

    try:
        pathspec.GitIgnoreSpec.from_lines([pattern])
    except Exception as exc:  # noqa: BLE001 - pathspec's own error types vary by version
        raise ConfigError(f"{where}: invalid pattern {pattern!r}: {exc}") from None
    return pattern


def disabled_plugins(explicit: Optional[Path], start: Path) -> tuple[str, ...]:
    """`plugins.disable` read before the plugins load (their codes are needed
    to validate the rest of the configuration)."""
    path = explicit if explicit is not None and explicit.is_file() else find_config_file(start)
    if path is None:
        return ()
    table = _tool_table(_read_toml(path), path)
    names = table.get("plugins", {}).get("disable", []) if isinstance(table.get("plugins"), dict) else []
    if not isinstance(names, list):
        return ()
    return tuple(n for n in names if isinstance(n, str))


def load_config(
    explicit: Optional[Path],
    start: Path,
    known_codes: Iterable[str],
    rule_option_types: dict[str, dict[str, type]],
) -> Config:
    """Read and validate the configuration for a run starting at `start`."""
    if explicit is not None:
        if not explicit.exists():
            raise ConfigError(f"{explicit}: config file not found")
        path = explicit
    else:
        path = find_config_file(start)
        if path is None:
            return Config(root=Path.cwd())
    table = _tool_table(_read_toml(path), path)
    values = parse_table(table, path, set(known_codes), rule_option_types)
    return Config(root=path.resolve().parent, source=path, **values)


def parse_table(table: dict, path: Path, known_codes: set[str], rule_option_types: dict[str, dict[str, type]]) -> dict:
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            hint = difflib.get_close_matches(key, _KEYS, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConfigError(
                f"{path}: unknown key '{key}' in [tool.greenops-lint]{suggestion}; "
                f"valid keys: {', '.join(sorted(_KEYS))}"
            )
        attribute, kind = _KEYS[key]
        values[attribute] = _parse_value(key, kind, value, path, known_codes, rule_option_types)
    return values


def _parse_value(key, kind, value, path, known_codes, rule_option_types):
    where = f"{path}: '{key}'"
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {_type_name(value)}")
        return value
    if kind in ("strings", "codes"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, not {_type_name(value)}")
        if kind == "codes":
            for code in value:
                check_selector(code, known_codes, where)
        else:
            for pattern in value:
                check_pattern(pattern, where)
        return tuple(value)
    if kind == "per-file":
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table of glob = [codes]")
        pairs = []
        for pattern, codes in value.items():
            if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
                raise ConfigError(f"{where}: '{pattern}' must map to a list of codes")
            for code in codes:
                check_selector(code, known_codes, f"{where} '{pattern}'")
            check_pattern(pattern, where)
            pairs.append((pattern, tuple(codes)))
        return tuple(pairs)
    if kind == "severity":
        if value not in SEVERITIES:
            raise ConfigError(f"{where} must be one of {', '.join(SEVERITIES)}, not {value!r}")
        return value
    if kind == "hardware":
        return check_hardware(value, where)
    if kind == "region":
        return check_region(value, where)
    if kind == "plugins":
        if not isinstance(value, dict) or set(value) - {"disable"}:
            raise ConfigError(f"{where} must be a table with one key, 'disable' (a list of plugin names)")
        names = value.get("disable", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}.disable must be a list of plugin names")
        return tuple(names)
    if kind in ("pue", "positive"):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value <= 0
            or (kind == "pue" and value < 1)
        ):
            bound = "a number >= 1.0" if kind == "pue" else "a positive number"
            raise ConfigError(f"{where} must be {bound}, not {value!r}")
        return float(value)
    if kind == "rules":
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table of rule codes")
        parsed = []
        for code, options in value.items():
            if code not in known_codes:
                raise ConfigError(f"{where}: unknown rule code '{code}'")
            if not isinstance(options, dict):
                raise ConfigError(f"{where}.{code} must be a table of options")
            types = rule_option_types.get(code, {})
            for name, option_value in options.items():
                if name not in types:
                    valid = ", ".join(sorted(types)) or "none"
                    raise ConfigError(f"{where}.{code}: unknown option '{name}' (options of {code}: {valid})")
                expected = types[name]
                ok = isinstance(option_value, expected) and not (expected is int and isinstance(option_value, bool))
                if expected is float and isinstance(option_value, int) and not isinstance(option_value, bool):
                    ok = True
                if not ok:
                    raise ConfigError(
                        f"{where}.{code}: option '{name}' must be {expected.__name__}, not {_type_name(option_value)}"
                    )
            parsed.append((code, tuple(sorted(options.items()))))
        return tuple(parsed)
    raise AssertionError(kind)  # pragma: no cover


def check_output_path(value: Optional[str], option: str) -> None:
    """An output file's folder must exist: checked before any work (a probe
    measurement would otherwise be lost at the end)."""
    if not value:
        return
    import os

    folder = os.path.dirname(os.path.abspath(value))
    if not os.path.isdir(folder):
        raise ConfigError(f"{option}: the folder {folder} does not exist")
    if os.path.isdir(value):
        raise ConfigError(f"{option}: {value} is a directory")


def check_hardware(value: Any, where: str) -> str:
    from greenops_lint.savings import hardware_table

    # Internal profiles describe a host the probe measured on, not a choice.
    choices = [key for key, profile in hardware_table().items() if not profile.internal]
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{where}: unknown hardware {value!r}; valid: {', '.join(choices)}")
    return value


def check_region(value: Any, where: str) -> str:
    from greenops_lint.savings import grid_table

    if not isinstance(value, str) or value.upper() not in grid_table():
        raise ConfigError(f"{where}: unknown region {value!r}; valid: {', '.join(grid_table())}")
    return value.upper()


def check_selector(code: str, known_codes: set[str], where: str) -> None:
    """A selector is a rule code or a prefix of one (`GO4`, `GO401`), `ALL` or `DEFAULT`."""
    if code in ("ALL", "DEFAULT") or any(known.startswith(code) for known in known_codes):
        return
    raise ConfigError(f"{where}: unknown rule code or prefix '{code}'")


def _type_name(value: Any) -> str:
    return {
        dict: "a table",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)

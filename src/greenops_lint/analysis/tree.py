"""Small tree and path helpers that rules of several families share."""

from __future__ import annotations

import re
from typing import Callable, Iterable, Iterator, TypeVar

import libcst as cst

T = TypeVar("T")

# How messages spell well-known modules: the names people import them as.
_DISPLAY_PREFIXES = (
    ("torch.nn.", "nn."),
    ("keras.layers.", "layers."),
    ("jax.numpy.", "jnp."),
    ("numpy.", "np."),
    ("pandas.", "pd."),
    ("tensorflow.", "tf."),
)


def walk_expr(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every node under `node` that carries meaning (no whitespace), not
    entering nested functions or lambdas (their bodies run at another time)."""
    from greenops_lint.walker import children

    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        for child in children(current):
            if type(child) is cst.FunctionDef or type(child) is cst.Lambda:
                continue
            stack.append(child)


def descendants(root: T, children_of: Callable[[T], Iterable[T]]) -> Iterator[T]:
    """Everything below `root` (not `root` itself), depth-first: CST nodes with
    the walker's `children`, loops with `lambda loop: loop.children`, ..."""
    stack = list(children_of(root))
    while stack:
        child = stack.pop()
        yield child
        stack.extend(children_of(child))


def is_self_attr(node: cst.CSTNode) -> bool:
    """`self.x`."""
    return isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self"


def last_word(node: cst.CSTNode) -> str:
    """A name's or an attribute's own word: `opt` for `opt`, `optimizer` for
    `self.optimizer`; "" for anything else."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return node.attr.value
    return ""


def names_word(node: cst.CSTNode, pattern: "re.Pattern[str]") -> bool:
    """A name or an attribute whose own word matches `pattern` (`first_epoch`, `self.loaded`)."""
    word = last_word(node)
    return bool(word) and bool(pattern.search(word))


def param_names(function: cst.FunctionDef) -> set[str]:
    """The names of a function's parameters (not *args / **kwargs)."""
    params = function.params
    return {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}


def display_name(qualified: str) -> str:
    """`numpy.concatenate` -> `np.concatenate`, `torch.nn.Linear` -> `nn.Linear`."""
    for prefix, short in _DISPLAY_PREFIXES:
        if qualified.startswith(prefix):
            return short + qualified[len(prefix) :]
    return qualified


def last_part(qualified: str) -> str:
    """`sklearn.model_selection.GridSearchCV` -> `GridSearchCV`."""
    return qualified.rsplit(".", 1)[-1]


def is_test_file(path: str) -> bool:
    """A pytest file or a file under a test folder: calls there check an API,
    they are not workloads."""
    normalised = "/" + path.replace("\\", "/")
    name = normalised.rsplit("/", 1)[-1]
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or "/tests/" in normalised
        or "/test/" in normalised
    )

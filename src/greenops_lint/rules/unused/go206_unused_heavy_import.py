"""GO206: a heavy ML framework is imported and never used in the module."""

from __future__ import annotations

import re
import sys

import libcst as cst

from greenops_lint.analysis.tree import is_test_file
from greenops_lint.analysis.unused_names import is_module_script, module_exports
from greenops_lint.finding import Fix, SavingsEstimate
from greenops_lint.rule import Invalid, Rule
from greenops_lint.rules.unused._imports import _aliases, _Uses
from greenops_lint.savings import SOURCE_CITED, SOURCE_CPU

# The page's `## Estimate`: seconds one process start spends importing the framework.
# torch: measured by benchmarks/import_startup.py on this CPU (2 vCPUs, warm page cache,
# torch 2.13.0+cpu, 7 interleaved fresh interpreters): CPU time (user + system) of the
# import 1.86-2.02 s, median 1.92 s, an empty interpreter 0.02 s (benchmarks/results/import_startup.txt).
TORCH_IMPORT_S = (1.8, 2.0)
TORCH_UNIT = "s CPU time per process start"
# TensorFlow: cited, not measured here (not installed), wall time (elapsed): tensorflow/tensorflow#37729
# reported 4.3 s for TF 2.1, then closed as resolved: TF 2.7 took 2.67 s (Colab CPU) and 2.80 s (Colab GPU),
# and 1.14 s on an M1 Max. #110143 (TF 2.20, about 10 s) is one Windows machine, whose colleague's similar
# machine was faster: an outlier the basis names, not the range.
TF_IMPORT_S = (1.1, 2.8)
TF_SOURCE = (
    "tensorflow/tensorflow#37729, closed as resolved: TF 2.7 2.7-2.8 s on Colab, 1.1 s on an M1 Max (TF 2.1 had "
    "taken 4.3 s); outlier: about 10 s on one Windows machine (TF 2.20, #110143)"
)
# JAX: cited, wall time: 0.34 s for jax.numpy (jax-ml/jax#24967, hyperfine; its CPU time was 0.90 s user +
# 0.04 s system, on several cores), about 0.5 s for `import jax` after lazy scipy (jax-ml/jax#12679).
JAX_IMPORT_S = (0.3, 0.5)
JAX_SOURCE = (
    "jax-ml/jax#24967 (jax.numpy: 0.34 s wall, 0.94 s CPU time, user + system) and #12679 (import jax: about 0.5 s)"
)
CITED_UNIT = "s wall time per process start"
# `## When it is material`: a finding whose saving reaches this many seconds a
# start, in a script whose other imports cannot load the framework anyway.
MATERIAL_SECONDS = 1.0

# Top-level package -> the framework its import loads.
_LOADS = {
    "torch": "torch",
    "torchvision": "torch",
    "torchaudio": "torch",
    "torchtext": "torch",
    "timm": "torch",
    "lightning": "torch",
    "pytorch_lightning": "torch",
    "diffusers": "torch",
    "accelerate": "torch",
    "peft": "torch",
    "sentence_transformers": "torch",
    "transformers": "torch",
    "tensorflow": "tensorflow",
    "keras": "tensorflow",
    "tf_keras": "tensorflow",
    "tensorflow_hub": "tensorflow",
    "tensorflow_probability": "tensorflow",
    "jax": "jax",
    "flax": "jax",
    # Side-effect imports (never reported) that load a framework themselves.
    "torch_xla": "torch",
    "intel_extension_for_pytorch": "torch",
    "habana_frameworks": "torch",
    "torch_npu": "torch",
    "tensorflow_addons": "tensorflow",
    "tensorflow_text": "tensorflow",
}
# The packages GO206 reports (the others above only tell what a used import loads).
_REPORTED = frozenset(
    {
        "torch",
        "torchvision",
        "torchaudio",
        "timm",
        "lightning",
        "pytorch_lightning",
        "transformers",
        "diffusers",
        "tensorflow",
        "keras",
        "tf_keras",
        "tensorflow_hub",
        "jax",
        "flax",
    }
)
# Third-party packages that load none of the frameworks on import.
_LIGHT = frozenset(
    {
        "numpy",
        "pandas",
        "scipy",
        "sklearn",
        "matplotlib",
        "seaborn",
        "tqdm",
        "yaml",
        "requests",
        "PIL",
        "cv2",
        "rich",
        "click",
        "typer",
        "omegaconf",
        "hydra",
        "wandb",
        "mlflow",
        "h5py",
        "pyarrow",
        "einops",
        "__future__",
    }
)
_DELIBERATE = re.compile(
    r"#\s*(noqa\s*:[^#\n]*\bF401\b|pylint:\s*disable=[^#\n]*unused-import|type:\s*ignore)", re.IGNORECASE
)
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))


class UnusedHeavyImport(Rule):
    """A heavy ML framework is imported and never used in the module.

    ## What it does
    Flags a module-level `import torch`, `import tensorflow as tf`,
    `from transformers import AutoModel`... (torch, torchvision, torchaudio,
    timm, Lightning, transformers, diffusers, TensorFlow, Keras,
    TensorFlow Hub, JAX, Flax) whose names nothing in the module reads.

    Not flagged (the policy): `__init__.py` files (re-exports); test files
    (the test runner has imported the framework already); names listed
    in `__all__`; imports marked `# noqa: F401`, `# pylint:
    disable=unused-import` or `# type: ignore` (and, as for every rule, a bare
    `# noqa`); imports that are not at module level: under `if
    TYPE_CHECKING:`, in `try: import torch / except ImportError:`
    availability checks, inside functions; a name used only in annotations,
    string annotations included (the annotation needs it, also with `from
    __future__ import annotations` for tools that evaluate it); imports
    whose framework another used import of the module loads anyway (`import
    torch` next to a used `from torch import nn` or `import torchvision`):
    removing them saves nothing; modules that read names dynamically
    (`globals()`, `eval`, `exec`, a module `__getattr__`). Packages imported
    for their side effects (`torch_xla`, `tensorflow_addons`,
    `tensorflow_text`, `intel_extension_for_pytorch`, `habana_frameworks`:
    they register devices or ops) are never flagged. scikit-learn is left
    out: `import sklearn` loads its subpackages lazily and costs a fraction
    of torch's start-up.

    ## Why is this bad
    Importing a framework loads hundreds of Python modules and its native
    libraries (CUDA, cuDNN, MKL, XLA) in every process that runs the file:
    every script start, every DataLoader worker started with `spawn`, every
    test and CLI invocation. TensorFlow also initialises its runtime on
    import, and later maps nearly all GPU memory on its first device use
    unless memory growth is set.

    ## Fix
    Remove the import. Autofix: safe, when every name of the statement is
    unused and the file is not an `__init__.py`; otherwise none.

    Off by default: the 28-wheel real-code corpus (libraries) gave it no
    finding in a script, so its precision where it matters is not measured
    yet; turn it on with `extend-select = ["GO206"]` (or `--select ALL`).

    ## When it is material
    In a script or notebook (an entry point: an `if __name__ == "__main__":`
    block, no definitions, or a top-level loop) whose other imports are the
    standard library or known light packages (numpy, pandas, scipy...), so
    that removing the import really removes the framework from start-up, and
    the framework costs at least 1 s a start (torch, TensorFlow). Others are
    reported at info severity: a library module (the package usually imports
    the framework elsewhere), a script that imports its own modules (they may
    import it), a plain `import transformers` (lazy until a model class is
    used), and JAX (0.3-0.5 s wall time).

    ## Estimate
    Seconds per process start; the unit says which seconds. torch: 1.8-2.0 s
    of CPU time (user + system), measured on CPU by
    `benchmarks/import_startup.py` (torch 2.13 CPU build, fresh interpreters,
    warm page cache; a cold start, or a CUDA build that loads more native
    libraries, is slower; wall time on a busy host is longer); the
    torch-based packages cost at least as much. TensorFlow and Keras:
    1.1-2.8 s of wall time, cited from tensorflow/tensorflow#37729 (closed
    as resolved: TF 2.7 took 2.7-2.8 s on Colab, 1.1 s on an M1 Max); the
    about 10 s of #110143 (TF 2.20, one Windows machine) is an outlier, named
    in the basis but not in the range. JAX and Flax: 0.3-0.5 s of wall time,
    cited from jax-ml/jax#24967 (0.34 s wall for `import jax.numpy`, whose
    CPU time, 0.94 s user + system, is the figure to set beside torch's) and
    #12679.
    """

    code = "GO206"
    name = "unused-heavy-import"
    family = "unused"
    estimate_sources = {
        SOURCE_CPU: "torch 2.13 CPU build, fresh interpreters on this project's 2-vCPU machine (`benchmarks/import_startup.py`)",
        SOURCE_CITED: "TensorFlow and JAX import wall times reported in tensorflow#37729 (TF 2.7: Colab, an M1 Max) and jax-ml/jax#24967, #12679; the 10 s of tensorflow#110143 (one Windows machine) is an outlier outside the range",
    }
    default_enabled = False
    fixable = True
    fix_safety = "safe"
    tokens = ("torch", "tensorflow", "keras", "jax", "flax", "transformers", "timm", "lightning", "diffusers")
    INVALID = [
        Invalid(
            """
            import argparse

            import numpy as np
            import torch

            def main():
                parser = argparse.ArgumentParser()
                print(np.zeros(3))

            if __name__ == "__main__":
                main()
            """,
            line=4,
            message="import torch: torch is imported but never used in this module",
            fixed="""
            import argparse

            import numpy as np

            def main():
                parser = argparse.ArgumentParser()
                print(np.zeros(3))

            if __name__ == "__main__":
                main()
            """,
        ),
        Invalid(
            """
            import pandas as pd
            import tensorflow as tf

            df = pd.read_csv("train.csv")
            print(df.describe())
            """,
            line=2,
            message="TensorFlow",
        ),
    ]
    VALID = [
        """
        from typing import TYPE_CHECKING

        if TYPE_CHECKING:
            import torch

        def size(x: "torch.Tensor") -> int:
            return x.numel()
        """,
        """
        try:
            import torch
        except ImportError:
            torch = None
        """,
        """
        import torch  # noqa: F401  (registers the CUDA allocator first)
        import torch_xla
        """,
        """
        import torch
        import torch.nn as nn

        model = nn.Linear(4, 4)
        """,
        """
        import torch

        def scale(x: torch.Tensor) -> torch.Tensor:
            return x * 2
        """,
        """
        import tensorflow as tf

        __all__ = ["tf"]
        """,
    ]

    def leave_Module(self, node: cst.Module) -> None:
        path = self.ctx.path.replace("\\", "/")
        if path.rsplit("/", 1)[-1] == "__init__.py" or is_test_file(path):
            return
        scan = _Uses()
        scan.walk(node)
        if scan.dynamic or any(isinstance(s, cst.FunctionDef) and s.name.value == "__getattr__" for s in node.body):
            return
        used = scan.names | scan.annotation_words | module_exports(self.ctx)
        # The candidates: module-level, not deliberate, a reported package, never read.
        candidates: list[tuple[cst.SimpleStatementLine, cst.CSTNode, list]] = []
        removable: set[tuple[int, str]] = set()
        for stmt in node.body:
            if not isinstance(stmt, cst.SimpleStatementLine) or self._deliberate(stmt):
                continue
            for small in stmt.body:
                if isinstance(small, (cst.Import, cst.ImportFrom)):
                    unused = [(b, t) for b, t in _aliases(small) if b is not None and b not in used and t in _REPORTED]
                    if unused:
                        candidates.append((stmt, small, unused))
                        removable.update((id(small), b) for b, _ in unused)
        # What the imports that stay load (used ones, deliberate ones, and any
        # import not at module level that may run): removing a candidate of
        # the same framework then saves nothing.
        loaded: set[str] = set()
        unknown_imports = False
        for imp in scan.imports:
            for bound, top in _aliases(imp):
                framework = _LOADS.get(top)
                if framework and (id(imp), bound) not in removable:
                    loaded.add(framework)
                if framework is None and top not in _LIGHT and top not in _STDLIB:
                    unknown_imports = True  # the project's own modules, other packages: may load one
        script = is_module_script(self.ctx)
        for stmt, small, unused in candidates:
            aliases = _aliases(small)
            for bound, top in unused:
                framework = _LOADS[top]
                if framework in loaded:
                    continue  # another import that stays loads it anyway: nothing saved
                whole = len(stmt.body) == 1 and len(unused) == len(aliases)
                self._report(small, stmt if whole else None, bound, top, framework, script, unknown_imports)
                break  # one finding per statement

    def _deliberate(self, stmt: cst.SimpleStatementLine) -> bool:
        comment = stmt.trailing_whitespace.comment
        return comment is not None and bool(_DELIBERATE.search(comment.value))

    def _report(self, small, stmt, bound, top, framework, script, unknown_imports) -> None:
        text = " ".join(self.ctx.module.code_for_node(small).split())
        if len(text) > 60:
            text = text[:57] + "..."
        low, high, basis, source, label = _cost(top, framework)
        unit = TORCH_UNIT if source == SOURCE_CPU else CITED_UNIT
        estimate = SavingsEstimate(
            metric="startup_time",
            low=low,
            high=high,
            unit=unit,
            basis=basis,
            hardware=self.ctx.hardware.key,
            assumptions=("nothing else the process imports loads the framework",),
            source=source,
        )
        lazy = top == "transformers" and isinstance(small, cst.Import)
        material = script and not unknown_imports and low >= MATERIAL_SECONDS and not lazy
        why = ""
        if not material:
            if not script:
                why = " (a library module: the package may import it elsewhere, and then nothing is saved)"
            elif unknown_imports:
                why = " (if the modules this script imports do not load it too)"
            elif lazy:
                why = " (`import transformers` is lazy until a model class is used)"
        fix = None
        if stmt is not None:
            fix = Fix(stmt, lambda updated: cst.RemovalSentinel.REMOVE, safe=True, title=f"remove `{text}`")
        self.report(
            small,
            f"{text}: {bound} is imported but never used in this module; importing {label} costs "
            f"{low:g}-{high:g} s of {'CPU' if source == SOURCE_CPU else 'wall'} time at every process start{why}; "
            "remove the import",
            estimate,
            severity=self.severity if material else "info",
            fix=fix,
        )


def _cost(top: str, framework: str) -> tuple[float, float, str, str, str]:
    """(low, high, basis, source, label) of one start's import cost."""
    if framework == "tensorflow":
        label = (
            "TensorFlow" if top in ("tensorflow", "tensorflow_hub", "tensorflow_probability") else f"{top} (TensorFlow)"
        )
        return (*TF_IMPORT_S, f"cited, wall time of `import tensorflow`: {TF_SOURCE}", SOURCE_CITED, label)
    if framework == "jax":
        return (*JAX_IMPORT_S, f"cited, wall time: {JAX_SOURCE}", SOURCE_CITED, top)
    label = "torch" if top == "torch" else f"{top} (which loads torch)"
    basis = (
        f"measured on CPU: `import torch` cost {TORCH_IMPORT_S[0]:g}-{TORCH_IMPORT_S[1]:g} s of CPU time per fresh "
        "interpreter (benchmarks/import_startup.py, torch 2.13 CPU build, warm page cache)"
        + ("" if top == "torch" else f"; {top} loads torch, so it costs at least that")
    )
    return (*TORCH_IMPORT_S, basis, SOURCE_CPU, label)

"""Which files are training scripts, and how `check --statistics --gpu-hours`
spreads the workload over them (analysis/training.py, statistics.py)."""

from __future__ import annotations

import textwrap

import pytest

from conftest import ROOT
from greenops_lint.config import Config
from greenops_lint.engine import Linter
from greenops_lint.plugins import load_rules
from greenops_lint.selection import enabled_rules


def facts(source: str, path: str = "snippet.py", select=("ALL",)):
    config = Config(root=ROOT, select=tuple(select))
    linter = Linter(config, enabled_rules(load_rules().rules, config))
    return linter.lint_bytes(path, textwrap.dedent(source).encode()).script


LOOP = """\
    for x, y in loader:
        loss = model(x).sum()
        loss.backward()
        optimizer.step()
"""


@pytest.mark.parametrize(
    "source,kinds",
    [
        # At module level, in a notebook-style script.
        ("import torch\n" + textwrap.dedent(LOOP), (".backward()", "an optimizer's .step()")),
        # Through main() under the main guard, two calls deep.
        (
            "def train():\n" + LOOP + "def main():\n    train()\nif __name__ == '__main__':\n    main()\n",
            (".backward()", "an optimizer's .step()"),
        ),
        # A function handed to another call (DDP's spawn).
        ("import torch.multiprocessing as mp\ndef worker(rank):\n" + LOOP + "mp.spawn(worker, nprocs=2)\n", None),
        ("from transformers import Trainer\nTrainer(model=m, args=a).train()\n", ("a trainer's .train()",)),
        ("trainer = make()\ntrainer.train()\n", ("a trainer's .train()",)),
        ("from sklearn.linear_model import LogisticRegression\nLogisticRegression().fit(X, y)\n", (".fit()",)),
        ("import jax\ngrads = jax.grad(loss_fn)(params)\n", ("jax.grad()",)),
        ("from lightning.pytorch.cli import LightningCLI\nLightningCLI(Model)\n", ("LightningCLI()",)),
    ],
)
def test_training_scripts_are_recognised(source, kinds):
    script = facts(source)
    assert script.is_training_script
    if kinds is not None:
        assert script.training_calls == kinds


@pytest.mark.parametrize(
    "source",
    [
        # A library's training function that nothing at module level calls.
        "import torch\ndef train_one_epoch(model, loader, optimizer):\n" + LOOP,
        # A model module: `model.train()` switches a mode, a scheduler's step is no optimizer step.
        "import torch\nmodel = Net()\nmodel.train()\nscheduler.step()\n",
        # Preprocessing: a scaler's fit.
        "from sklearn.preprocessing import StandardScaler\nscaler = StandardScaler()\nscaler.fit(X)\n",
        "import numpy as np\ng = np.gradient(x)\n",
    ],
)
def test_files_without_a_reachable_training_call_are_not_training_scripts(source):
    script = facts(source)
    assert script is not None and not script.is_training_script


def test_a_file_no_rule_reads_is_still_checked_for_training_calls():
    # GO402's tokens are not in the file: the prefilter would skip its tree, but `.fit(` trains.
    assert facts("clf = make()\nclf.fit(X, y)\n", select=("GO402",)).training_calls == (".fit()",)
    skipped = facts("from .model import Net\nimport pkg.data\nx = 1\n", select=("GO402",))
    assert skipped.training_calls == () and skipped.imports == (".model", ".model.Net", "pkg.data")


def test_a_syntax_error_leaves_the_file_unanalysed():
    assert facts("def f(:\n") is None


# -- the workload over the training scripts ----------------------------------------------------

FLOAT64_SCRIPT = "import torch\n\ntorch.set_default_dtype(torch.float64)\nmodel = build_model()\n" + textwrap.dedent(
    LOOP
)
TF32_OFF_SCRIPT = (
    "import torch\n\ntorch.backends.cuda.matmul.allow_tf32 = False\n\n\ndef main():\n"
    "    model = build_model().cuda()\n" + LOOP.replace("model(x)", "model(x.cuda())") + "\n\n"
    "if __name__ == '__main__':\n    main()\n"
)
LIBRARY = (
    "import torch\n\n\ndef build_model():\n    return torch.nn.Linear(10, 1).double()\n\n\n"
    "def train(model, loader, optimizer):\n" + LOOP
)


@pytest.fixture
def scripts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.greenops-lint]\n")
    (tmp_path / "a.py").write_text(FLOAT64_SCRIPT)
    (tmp_path / "b.py").write_text(TF32_OFF_SCRIPT)
    (tmp_path / "model.py").write_text(LIBRARY)
    return tmp_path


def statistics(cli, *extra):
    args = ("check", ".", "--statistics", "--gpu-hours", "100", "--hardware", "a100-80gb", *extra)
    return cli(*args).stdout.split("\n\n", 1)[1]


def test_two_training_scripts_sum_their_savings_over_equal_shares(scripts, cli):
    out = statistics(cli, "--no-cache")
    assert "training scripts: 2 checked files whose module-level code reaches a training call" in out
    assert "(.backward() in 2, an optimizer's .step() in 2): a.py, b.py" in out
    # a.py: float64 default, 1-16x on an A100; b.py: TF32 off, 1-2.25x. 50 GPU-h each, summed (not the worst one).
    assert "a.py: 50 GPU-h x (1 - 1/1) = 0.0 GPU-h [low] to 50 GPU-h x (1 - 1/16) = 46.9 GPU-h [high]" in out
    assert "b.py: 50 GPU-h x (1 - 1/1) = 0.0 GPU-h [low] to 50 GPU-h x (1 - 1/2.25) = 27.8 GPU-h [high]" in out
    assert "[high] GPU time saved: 46.9 + 27.8 = 74.7 GPU-h" in out
    assert "93.8" not in out  # 100 GPU-h x (1 - 1/16): the worst script taken for the whole workload
    # The library has a training function nobody calls here: not a training script, and nothing imports it.
    (found,) = [line for line in out.splitlines() if line.startswith("  training scripts:")]
    assert "model.py" not in found
    assert (
        "not converted: 1 whole-step finding (GO402) in 1 file that is not a training script and that no "
        "training script imports: model.py; which script runs that code is not known statically"
    ) in out


def test_a_library_finding_counts_in_the_scripts_that_import_it(scripts, cli):
    (scripts / "b.py").write_text("from model import build_model\n" + TF32_OFF_SCRIPT)
    out = statistics(cli, "--no-cache")
    # GO402 (1x) in model.py overlaps b.py's own precision finding (1-2.25x): one family, one range.
    assert "b.py: " in out and "slowdown 1-2.25x from precision 1-2.25x (with model.py)" in out
    assert "not converted: 1 whole-step finding (GO402)" not in out


def test_scripts_without_whole_step_findings_keep_their_share(scripts, cli):
    (scripts / "c.py").write_text("import torch\n" + textwrap.dedent(LOOP))
    out = statistics(cli, "--no-cache")
    assert "in equal shares (33.3333 GPU-h each" in out
    assert "c.py: no whole-step finding; 0 GPU-h saved of its share (33.3333 GPU-h)" in out
    assert "[high] GPU time saved: 31.3 + 18.5 = 49.8 GPU-h" in out  # 33.3333 x 15/16 + 33.3333 x 1.25/2.25


def test_statistics_from_the_cache_and_from_workers_are_the_same(scripts, cli, monkeypatch):
    for index in range(16):  # enough files for a process pool (lint_files)
        (scripts / f"filler_{index:02}.py").write_text(f"import pkg{index}\nx = {index}\n")
    cold = statistics(cli)
    assert "training scripts: 2 checked files" in cold and "46.9 + 27.8 = 74.7" in cold
    from greenops_lint import engine

    def no_linting(*args, **kwargs):
        raise AssertionError("a file was linted: the cache should have served it")

    with monkeypatch.context() as patched:
        patched.setattr(engine.Linter, "lint_bytes", no_linting)
        assert statistics(cli) == cold
    assert statistics(cli, "--no-cache", "--jobs", "2") == cold
    assert statistics(cli, "--no-cache", "--jobs", "1") == cold


def test_cache_entries_keep_the_script_facts(tmp_path):
    from greenops_lint.analysis.training import ScriptFacts
    from greenops_lint.cache import ResultCache

    cache = ResultCache(tmp_path / "c", "fp")
    key = cache.key("t.py", b"x")
    cache.put(key, [], [], ScriptFacts((".fit()",), ("pkg.model",)))
    assert cache.get(key) == ([], [], ScriptFacts((".fit()",), ("pkg.model",)))
    cache.put(key, [], [], None)
    assert cache.get(key) == ([], [], None)
    # An entry of the first format (no facts) is a miss: its file is linted again.
    cache._entry(key).write_text('{"key": "%s", "findings": [], "suppressed": []}' % key)
    assert cache.get(key) is None


def test_relative_and_package_imports_resolve_between_checked_files():
    from greenops_lint.analysis.training import ScriptFacts
    from greenops_lint.statistics import _imported_files

    scripts = {
        "proj/train.py": ScriptFacts((".backward()",), ("pkg", "pkg.build", "torch")),
        "proj/pkg/__init__.py": ScriptFacts((), (".model", ".model.build")),
        "proj/pkg/model.py": ScriptFacts(),
        "other/pkg/__init__.py": ScriptFacts(),  # another `pkg`, not above proj/train.py
        "other/tool.py": ScriptFacts((), ("helpers",)),
        "a/helpers.py": ScriptFacts(),
        "b/helpers.py": ScriptFacts(),  # two `helpers`, neither above other/tool.py: ambiguous
    }
    imported = _imported_files(scripts)
    assert imported["proj/train.py"] == {"proj/pkg/__init__.py"}
    assert imported["proj/pkg/__init__.py"] == {"proj/pkg/model.py"}
    assert imported["other/tool.py"] == set()

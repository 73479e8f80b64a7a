"""`greenops-lint probe` end to end on CPU: real tiny probes (small sizes, few
repeats), asserting structure and sanity, never exact timings."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import time
import types

import pytest
from click.testing import CliRunner

from conftest import ROOT
from greenops_lint.cli import main
from greenops_lint.probe import plans, stats
from greenops_lint.probe.procs import alive

pytest.importorskip("torch")

FAST = ("--repeats", "2", "--min-time", "0.08")
REQUIRED = {
    "path",
    "line",
    "code",
    "estimate",
    "measured",
    "verdict",
    "seconds",
    "bytes",
    "joules",
    "energy_source",
    "threads",
    "foreign_load",
}

F64 = """
import torch
from torch import nn

class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))

    def forward(self, x):
        return self.net(x)

model = Head().double()
"""

LOAD = """
import numpy as np

for epoch in range(4):
    features = np.load("cache/features.npy")
    for batch in loader:
        loss = model(batch).mean()
        loss.backward()
"""

UNUSED = """
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(128, 10)
        self.aux = nn.Linear(256, 256)

    def forward(self, x):
        return self.body(x)

model = DDP(Net(), find_unused_parameters=True)
"""


def invoke(*args, **kwargs):
    return CliRunner().invoke(main, ["probe", *map(str, args)], catch_exceptions=False, **kwargs)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe-project")
    write(root / "pyproject.toml", "[tool.greenops-lint]\n")
    write(root / "f64.py", F64)
    write(root / "load.py", LOAD)
    (root / "cache").mkdir()
    (root / "cache" / "features.npy").write_bytes(b"\0" * 256 * 1024)
    write(root / "unused.py", UNUSED)
    return root


@pytest.fixture(scope="module")
def records(project):
    result = invoke(project, "--format", "json", *FAST)
    assert result.exit_code == 0, result.stderr
    assert "Probed 4 findings" in result.stderr
    return {r["code"]: r for r in json.loads(result.stdout)}


def _consistent(record):
    """The verdict follows from the recorded interval, claim and floor."""
    measured, claim = record["measured"], record["claim"]
    if record["verdict"] != "inconclusive" and record.get("band"):
        low, high = record["band"]
        overlaps = measured["low"] <= high and measured["high"] >= low
        if record["verdict"] in ("confirmed", "checked"):
            assert overlaps
            if claim["metric"] in ("time_factor", "ratio"):
                assert measured["low"] > record["noise_floor"]  # a measured saving, whatever the claim's low end
        else:
            assert not overlaps or measured["high"] < record["noise_floor"]


def test_every_record_has_the_fields_ci_keeps(records):
    assert set(records) == {"GO402", "GO101", "GO201", "GO202"}
    for record in records.values():
        assert REQUIRED <= set(record)
        assert record["verdict"] in stats.VERDICTS
        assert record["threads"] == 1 or isinstance(record["threads"], dict)
        assert record["energy_source"] in ("nvml", "rapl", "none")
        if record["energy_source"] == "none":
            assert record["joules"] == {"before": None, "after": None}  # never a model presented as measured
        assert record["hardware"] in ("cloud-vcpu-2", "x86-server-cpu")
        assert record["runs"]["before"] == 2 and record["runs"]["after"] == 2
        assert record["order"].startswith("A B") or record["order"].startswith("A B C")


def test_float64_probe_measures_a_positive_ordered_ratio(records):
    record = records["GO402"]
    measured = record["measured"]
    assert measured["metric"] == "time_ratio" and measured["clock"] == "cpu"
    assert 0 < measured["low"] <= measured["median"] <= measured["high"]
    assert record["sized"] == "literal" and "MLP 256-256-10" in record["sizes"]
    # The estimate was rechecked for the CPU this runs on, not the configured GPU.
    assert record["estimate"]["hardware"] in ("cloud-vcpu-2", "x86-server-cpu")
    assert record["estimate_configured"]["hardware"] == "generic-gpu"
    parts_before, parts_after = record["bytes"]["before"]["tensor_parts"], record["bytes"]["after"]["tensor_parts"]
    assert parts_before["params"] == 2 * parts_after["params"]  # exact tensor accounting
    assert parts_before["optimizer"] == 2 * parts_after["optimizer"]
    assert record["seconds"]["before"] > 0 and record["seconds"]["after"] > 0
    if record["energy_source"] == "none":
        assert record["energy_estimated"]["model"].startswith("estimated:")
    _consistent(record)


def test_repeated_load_reports_the_speed_up_of_loading_once(records):
    record = records["GO101"]
    assert record["sized"] == "file" and "256.0 KiB" in record["sizes"]
    measured = record["measured"]
    # The time the extra loads take, measured; the count (3) is the code's, not re-derived.
    assert measured["metric"] == "extra_load_seconds" and measured["unit"] == "s" and record["claim"]["low"] == 3
    assert measured["ratio"]["median"] > 1.0  # loading once is faster
    assert measured["low"] <= measured["median"] <= measured["high"]
    # A template without the loop's own work cannot say what share of it the loads are: never confirmed.
    assert record["verdict"] == "inconclusive" and "--run" in record["reason"]


def test_unused_layer_bytes_are_exact(records):
    record = records["GO201"]
    assert record["measured"]["median"] == record["measured"]["low"] == 257 * 256 * 4
    assert record["verdict"] == "checked"  # parameter bytes: an arithmetic check, not a measured waste
    assert record["bytes"]["before"]["checkpoint"] > record["bytes"]["after"]["checkpoint"]


def test_ddp_probe_runs_two_gloo_ranks(records):
    record = records["GO202"]
    assert record["measured"]["clock"] == "wall"
    assert record["measured"]["median"] > 0
    assert "nn.Linear(256, 256)" in record["sizes"]
    _consistent(record)
    # The verdict's two variants are the flag on and off with the unused layer
    # removed in both (GO202's own claim); the layer runs only as written.
    ddp = {variant: info["ddp"] for variant, info in record["details"].items()}
    assert bool(ddp["before"]["find_unused_parameters"]) and not ddp["before"]["unused_parameter_size"]
    assert not ddp["after"]["find_unused_parameters"] and not ddp["after"]["unused_parameter_size"]
    assert bool(ddp["as_written"]["find_unused_parameters"])
    assert ddp["as_written"]["unused_parameter_size"] == 257 * 256 * 4
    assert record["runs"]["as_written"] == 2 and record["seconds"]["as_written"] > 0
    assert "unused layer (as written)" in record["variants"]["as_written"]
    # As written vs both fixed is the pair's cost: credited to GO201 + GO202, never judged as GO202's.
    (pair,) = record["extras"]
    assert pair["credited_to"] == ["GO201", "GO202"] and pair["median"] > 0
    # The text report prints the DDP record whatever shape torch gives its sizes in.
    from greenops_lint.probe.report import render_text

    assert "GO202" in render_text([record])


def test_unused_layer_peak_rss_leaves_out_the_checkpoint(tmp_path):
    """Peak RSS is the model's: the probe's own serialization of the state dict
    (which the old code held in a BytesIO before reading the peak) is not in it.
    With a 64 MiB layer the peak rises by the layer, not by twice it."""
    from greenops_lint.probe.server import ProbeServer

    layer = {"cls": "Linear", "args": [4096, 4096], "kwargs": {}}
    params = {"layer": layer, "trunk": [256, 256, 10], "batch": 32, "threads": 1, "device": "cpu"}
    params.update(min_time=0.02, min_samples=2, warmup=1, energy=False)
    server = ProbeServer(threads=1)
    try:
        memory = {v: server.run("unused_layer", v, params, 120.0)["result"]["memory"] for v in ("before", "after")}
    finally:
        server.close()
    before, after = memory["before"], memory["after"]
    if before["peak_rss"] is None or after["peak_rss"] is None:
        pytest.skip("no VmHWM in /proc/self/status here")
    layer_bytes = before["tensors"] - after["tensors"]
    assert layer_bytes == (4096 * 4096 + 4096) * 4
    checkpoint = before["checkpoint"] - after["checkpoint"]
    assert checkpoint >= layer_bytes
    assert before["peak_rss"] - after["peak_rss"] < layer_bytes + checkpoint / 2


def test_checkpoint_bytes_are_the_serialized_size():
    import torch

    from greenops_lint.probe.benches import checkpoint_bytes

    state = torch.nn.Sequential(torch.nn.Linear(300, 200), torch.nn.Linear(200, 7, bias=False)).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    assert checkpoint_bytes(state) == len(buffer.getvalue())


@pytest.mark.parametrize(
    "sizes,expected", [([1024, 2048], [1024, 2048]), ("1024, 2048", [1024, 2048]), ("", []), ("n/a", []), (None, [])]
)
def test_ddp_bucket_sizes_are_read_as_list_or_string(sizes, expected):
    from greenops_lint.probe.report import byte_sizes

    assert byte_sizes(sizes) == expected


def test_text_report_and_rule_filter(project):
    result = invoke(project / "unused.py", "--rule", "GO201", *FAST)
    assert result.exit_code == 0, result.stderr
    assert "GO201 unused-submodule" in result.stdout
    assert "verdict    CHECKED" in result.stdout
    assert "GO202" not in result.stdout
    assert "Probed 1 finding: 0 confirmed, 1 checked (arithmetic)" in result.stderr


@pytest.mark.parametrize("code, words", [("GO999", "unknown rule code"), ("GO203", "has no probe")])
def test_bad_rule_codes_exit_2(project, code, words):
    result = invoke(project, "--rule", code)
    assert result.exit_code == 2 and words in result.stderr


def test_no_findings_prints_an_empty_array(tmp_path):
    write(tmp_path / "clean.py", "x = 1\n")
    result = invoke(tmp_path / "clean.py", "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert "No findings with a probe" in result.stderr


def test_findings_without_a_probe_are_listed_as_not_probed(tmp_path):
    write(tmp_path / "dp.py", "import torch\nmodel = torch.nn.DataParallel(net).cuda()\n")
    result = invoke(tmp_path / "dp.py", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert "Not probed: 1 findings of rules without a probe (GO504 x1)" in result.stderr
    assert "probes exist for GO101" in result.stderr


def test_missing_path_exits_2(tmp_path):
    result = invoke(tmp_path / "nope.py")
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_without_torch_the_probe_says_how_to_install_it(tmp_path):
    blocker = tmp_path / "block"
    write(
        blocker / "sitecustomize.py",
        """
        import sys

        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked for this test")
                return None

        sys.meta_path.insert(0, BlockTorch())
        """,
    )
    script = write(tmp_path / "train.py", "import torch\ntorch.set_default_dtype(torch.float64)\n")
    env = dict(os.environ, PYTHONPATH=str(blocker))
    result = subprocess.run(
        [sys.executable, "-m", "greenops_lint.cli", "probe", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert "needs torch" in result.stderr and "pip install 'greenops-lint[probe]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_plot_without_matplotlib_exits_2(project, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = invoke(project / "f64.py", "--plot", project / "out.png")
    assert result.exit_code == 2
    assert "pip install 'greenops-lint[plot]'" in result.stderr


def test_plot_draws_before_after_with_intervals(records, tmp_path):
    pytest.importorskip("matplotlib")
    from greenops_lint.probe.plot import plot

    target = tmp_path / "probe.png"
    plot(list(records.values()), str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_hanging_variant_is_stopped_at_the_timeout(tmp_path, monkeypatch):
    pid_file = tmp_path / "pids"
    write(tmp_path / "train.py", "import torch\ntorch.set_default_dtype(torch.float64)\n")

    def hanging(finding, index, host, claim, siblings):
        plan = plans.plan_dtype(finding, index, host, claim)
        plan.bench, plan.params = "hang", {"pid_file": str(pid_file)}
        return plan

    monkeypatch.setitem(plans.PLANNERS, "GO401", hanging)
    started = time.monotonic()
    result = invoke(tmp_path / "train.py", "--timeout", "1", "--format", "json")
    assert result.exit_code == 2
    assert "timed out" in result.stderr and "--timeout 1 s" in result.stderr
    record = json.loads(result.stdout)[0]
    assert record["verdict"] == "inconclusive" and record["timed_out"]
    assert time.monotonic() - started < 30
    pids = [int(p) for p in pid_file.read_text().split()]
    assert len(pids) == 2  # the variant and its child that ignores SIGTERM
    assert not any(alive(p) for p in pids)


def test_progress_bar_only_on_a_terminal(monkeypatch):
    from greenops_lint.probe.cli import _Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, shown in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        progress = _Progress(3, "probing")
        for _ in range(3):
            progress.tick()
        progress.close()
        assert ("probing" in stream.getvalue()) is shown


# -- --run ---------------------------------------------------------------------------------

TRAIN = """
import sys
import time

if "--never" in sys.argv:
    import torch
    torch.set_default_dtype(torch.float64)
time.sleep(0.25)
with open("out/log.txt", "a") as handle:
    handle.write("step\\n")
"""


def fake_fixer(monkeypatch, calls):
    module = types.ModuleType("greenops_lint.fixes")

    def fix_paths(paths, config, rules, unsafe):
        calls.append((list(paths), sorted(rules), unsafe))
        changed = []
        for path in paths:
            text = open(path, encoding="utf-8").read()
            fixed = text.replace("torch.float64", "torch.float32").replace("time.sleep(0.25)", "time.sleep(0.05)")
            if fixed != text:
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(fixed)
                changed.append(path)
        return changed

    module.fix_paths = fix_paths
    monkeypatch.setitem(sys.modules, "greenops_lint.fixes", module)


def digests(root):
    out = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            out[os.path.relpath(path, root)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


@pytest.fixture
def user_project(tmp_path):
    root = tmp_path / "proj"
    write(root / "pyproject.toml", "[tool.greenops-lint]\n")
    write(root / "train.py", TRAIN)
    write(root / "out" / "log.txt", "old\n")
    return root


def test_run_interleaves_on_copies_and_leaves_the_users_files_identical(user_project, monkeypatch):
    calls = []
    fake_fixer(monkeypatch, calls)
    before = digests(user_project)
    result = invoke("--run", f"{sys.executable} train.py", "--cwd", user_project, "--repeats", "2", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert digests(user_project) == before  # byte-identical, although the command writes out/log.txt
    assert calls and calls[0][2] is True and "GO401" in calls[0][1]
    assert not any(p.startswith(str(user_project)) for p in calls[0][0])  # only the copy is fixed
    whole, finding = json.loads(result.stdout)
    assert whole["code"] == "RUN" and whole["mode"] == "run"
    assert whole["order"] == "A B B A"
    assert whole["runs"] == {"before": 2, "after": 2}
    if whole["measured"]["clock"] == "wall":
        assert whole["measured"]["median"] > 1.5  # 0.25 s of sleep became 0.05 s
    else:  # judged on CPU time on a busy host: sleeping costs none
        assert any("CPU time" in note for note in whole["notes"])
    assert whole["bytes"]["before"]["maxrss"] > 0
    assert finding["code"] == "GO401" and finding["path"] == str(user_project / "train.py") and finding["line"] == 7
    assert finding["estimate"]["metric"] == "time_factor"
    assert REQUIRED <= set(finding)


def test_run_needs_the_fixer(user_project, monkeypatch):
    monkeypatch.setitem(sys.modules, "greenops_lint.fixes", None)
    before = digests(user_project)
    result = invoke("--run", "python train.py", "--cwd", user_project)
    assert result.exit_code == 2
    assert "greenops_lint.fixes" in result.stderr
    assert digests(user_project) == before


def test_run_stops_a_hanging_command_and_its_children(user_project, monkeypatch, tmp_path):
    fake_fixer(monkeypatch, [])
    pid_file = tmp_path / "pids"
    write(
        user_project / "train.py",
        TRAIN
        + textwrap.dedent(
            f"""
            import os, signal, subprocess
            child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
            open({str(pid_file)!r}, "a").write(f"{{os.getpid()}} {{child.pid}} ")
            time.sleep(600)
            """
        ),
    )
    before = digests(user_project)
    result = invoke("--run", f"{sys.executable} train.py", "--cwd", user_project, "--timeout", "2")
    assert result.exit_code == 2
    assert "ran past --timeout 2 s" in result.stderr and "stopped" in result.stderr
    pids = [int(p) for p in pid_file.read_text().split()]
    assert pids and not any(alive(p) for p in pids)
    assert digests(user_project) == before


def test_run_reports_a_failing_command(user_project, monkeypatch):
    fake_fixer(monkeypatch, [])
    result = invoke("--run", f"{sys.executable} -c 'import sys; print(\"boom\"); sys.exit(3)'", "--cwd", user_project)
    assert result.exit_code == 2
    assert "exit code 3" in result.stderr and "boom" in result.stderr


def test_run_with_the_real_fixer(user_project):
    """The interface of greenops_lint.fixes as it is: the call must not break."""
    pytest.importorskip("greenops_lint.fixes")
    result = invoke("--run", f"{sys.executable} train.py", "--cwd", user_project, "--repeats", "1", "--format", "json")
    assert result.exit_code in (0, 2), result.stderr
    if result.exit_code == 0:
        assert json.loads(result.stdout)[0]["code"] == "RUN"
    else:
        assert "changed none" in result.stderr


def test_readme_documents_the_probe():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Runtime probe" in text and "greenops-lint probe" in text

"""From a finding to a sized micro-benchmark: the plan.

Sizes come from the code where they are literal: layer shapes
(`nn.Linear(1024, 512)`, `nn.Conv2d(3, 16, 3)`), tensor shapes, batch sizes,
loop counts (through the finding's estimate) and the file a loader reads
(its type, and its size when the file exists). Otherwise a documented default
is used and the plan says so (`sized: default`).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from importlib import import_module
from typing import Callable, Optional

from greenops_lint.analysis.ast_index import chain, torch_layers
from greenops_lint.finding import Finding, SavingsEstimate
from greenops_lint.probe.sourceindex import SourceIndex
from greenops_lint.probe.stats import Claim
from greenops_lint.savings import Workload, float64_time_factor, get_hardware

# Defaults, each the calibration case of probe-research.md where there is one.
DEFAULT_MLP = [1024, 1024, 1024, 100]
DEFAULT_BATCH = 64
DEFAULT_CNN_BATCH = 16
DEFAULT_IMAGE = [3, 32, 32]
DEFAULT_MATMUL = 512
DEFAULT_ITERATIONS = 10
MAX_ITERATIONS = 50
DEFAULT_LAYER = {"cls": "Linear", "args": [1024, 1024], "kwargs": {}}
DEFAULT_TRUNK = [256, 256, 10]
DDP_TRUNK = [512, 512, 10]
MAX_LAYER_BYTES = 512 * 1024 * 1024
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_ARRAY_NUMEL = 64 * 1024 * 1024
# A float64 step should take well under a second on one thread: bigger
# literal shapes get a smaller batch (the ratio hardly depends on it).
STEP_FLOP_BUDGET = 6e9

# GO301 has no estimate: its claim is what its message says was measured.
WORKER_CLAIM = Claim(
    "ratio",
    1.0,
    1.4,
    "x",
    "GO301's measurement: more workers than CPUs were never faster and took up to 1.4x as long",
)


@dataclass
class Host:
    """What the plans need to know about where they run."""

    cuda: bool = False
    device_name: str = ""
    profile: str = "cloud-vcpu-2"
    usable_cpus: int = 1
    cpu_count: int = 1
    bf16: bool = False
    numpy: bool = True
    workdir: str = "/tmp"
    threads: int = 1


@dataclass
class Extra:
    """A secondary ratio the plan also reports (matmul, bf16, step time)."""

    label: str
    series: str
    numerator: str
    denominator: str
    # The findings whose fixes together make this ratio, when it is more than
    # the record's own (GO201 + GO202): never a verdict on one of them.
    credited_to: tuple[str, ...] = ()


@dataclass
class Plan:
    finding: Finding
    title: str
    bench: str
    variants: tuple[str, ...]
    labels: dict[str, str]
    params: dict
    sized: str  # literal | file | estimate | default
    sizes: str
    series: str
    clock: str  # cpu | wall (cuda on a GPU host where the series has it)
    measure: str  # ratio | extra_loads | bytes
    unit: str
    claim: Optional[Claim]
    problem: Optional[str] = None
    prepare: Optional[tuple[str, dict]] = None
    notes: list[str] = field(default_factory=list)
    extras: list[Extra] = field(default_factory=list)


def claim_from_estimate(estimate: Optional[SavingsEstimate]) -> Optional[Claim]:
    if estimate is None:
        return None
    if estimate.metric == "time_factor":
        return Claim("time_factor", estimate.low, estimate.high, "x", estimate.basis)
    if estimate.metric == "memory_bytes":
        return Claim("memory_bytes", estimate.low, estimate.high, "bytes", estimate.basis, deterministic=True)
    if estimate.metric == "repeated_work":
        return Claim("repeated_work", estimate.low, estimate.high, estimate.unit, estimate.basis)
    return None


# -- float64 vs float32 (GO401, GO402, GO403 without a literal shape) ------------------------


def plan_dtype(finding: Finding, index: SourceIndex, host: Host, claim: Optional[Claim]) -> Plan:
    notes: list[str] = []
    convs = chain(torch_layers(index, "Conv2d")[0])
    linears = chain(torch_layers(index, "Linear")[0])
    literal_batch = index.batch_size()
    sized = "literal"
    if convs:
        image = DEFAULT_IMAGE[:]
        image[0] = convs[0][0]
        image_note = f"{image[1]}x{image[2]} input (default)"
        for shape in index.shapes():
            if len(shape) == 4 and shape[1] == convs[0][0]:
                image = list(shape[1:])
                literal_batch = literal_batch or shape[0]
                image_note = f"{image[1]}x{image[2]} input"
                break
        classes = next((b for a, b in torch_layers(index, "Linear")[0] if a == convs[-1][1]), 10)
        batch = literal_batch or DEFAULT_CNN_BATCH
        flops = 6 * sum(image[1] * image[2] * c_in * c_out * k * k for c_in, c_out, k in convs)
        params = {"model": "cnn", "convs": [list(c) for c in convs], "image": image, "classes": classes}
        described = "CNN " + "-".join(str(c[0]) for c in convs) + f"-{convs[-1][1]} channels, {image_note}"
    elif linears:
        dims = [linears[0][0]] + [b for _, b in linears]
        batch = literal_batch or DEFAULT_BATCH
        flops = 6 * sum(a * b for a, b in linears)
        params = {"model": "mlp", "dims": dims}
        described = "MLP " + "-".join(map(str, dims))
    else:
        sized = "default"
        dims = DEFAULT_MLP
        batch = DEFAULT_BATCH
        flops = 6 * sum(a * b for a, b in zip(dims, dims[1:]))
        params = {"model": "mlp", "dims": dims}
        described = "MLP " + "-".join(map(str, dims)) + " (default: no literal layer sizes in the file)"
    if literal_batch is None:
        described += f", batch {batch} (default)"
        if sized == "literal":
            notes.append("layer sizes are literal, the batch size is a default")
    else:
        described += f", batch {batch}"
    budget = STEP_FLOP_BUDGET * (200 if host.cuda else 1)
    if flops * batch > budget:
        reduced = max(1, int(budget // flops))
        notes.append(f"batch reduced from {batch} to {reduced} to keep a float64 step under a second")
        batch = reduced
    params["batch"] = batch
    if sized == "literal" and claim is not None and claim.metric == "time_factor":
        # The savings model sized like the measured step, on this host's profile.
        workload = Workload(
            "conv" if convs else "mlp",
            linears=tuple((a, b) for a, b in linears) if not convs else (),
            convs=tuple(tuple(c) for c in convs),
            image=tuple(params.get("image", DEFAULT_IMAGE)[1:3]) if convs else (32, 32),
            batch=batch,
        )
        sized_estimate = float64_time_factor(get_hardware(host.profile), workload)
        claim = claim_from_estimate(sized_estimate)
        notes.append(
            f"estimate sized from the literal shapes: {sized_estimate.low:g}-{sized_estimate.high:g}x on {host.profile}"
        )
    # The matmul is a reference point (the GEMM-bound extreme), not the user's
    # code: a fixed size keeps it cheap and comparable across findings.
    params["matmul"] = DEFAULT_MATMUL
    described += f"; reference matmul {DEFAULT_MATMUL}x{DEFAULT_MATMUL}"
    variants: tuple[str, ...] = ("float64", "float32")
    extras = [Extra("matmul float64/float32", "matmul", "float64", "float32")]
    if host.bf16:
        variants += ("bfloat16",)
        extras += [
            Extra("bf16 autocast step vs float32", "step", "float32", "bfloat16"),
            Extra("bf16 matmul vs float32", "matmul", "float32", "bfloat16"),
        ]
    else:
        notes.append("bf16 not measured: no native bf16 on this device")
    return Plan(
        finding=finding,
        title="float64 vs float32 training step",
        bench="dtype",
        variants=variants,
        labels={"float64": "float64", "float32": "float32", "bfloat16": "float32 + bf16 autocast"},
        params=params,
        sized=sized,
        sizes=described,
        series="step",
        clock="cpu",
        measure="ratio",
        unit="step",
        claim=claim,
        notes=notes,
        extras=extras,
    )


def plan_array(finding: Finding, index: SourceIndex, host: Host, claim: Optional[Claim]) -> Plan:
    """GO403 with a literal shape: the float64 copy's bytes, exactly."""
    estimate = finding.estimate
    numel = int(estimate.low // 4) if estimate else 0
    notes = []
    if numel > MAX_ARRAY_NUMEL:
        notes.append(f"measured {MAX_ARRAY_NUMEL:,} of the {numel:,} elements; bytes scale linearly")
        claim = (
            Claim(claim.metric, MAX_ARRAY_NUMEL * 4, MAX_ARRAY_NUMEL * 4, claim.unit, claim.source, True)
            if claim
            else None
        )
        numel = MAX_ARRAY_NUMEL
    return Plan(
        finding=finding,
        title="float64 vs float32 NumPy array into a tensor",
        bench="array",
        variants=("float64", "float32"),
        labels={"float64": "float64 array", "float32": "float32 array"},
        params={"numel": numel},
        sized="literal",
        sizes=f"{numel:,} elements (the literal shape of the estimate)",
        series="step",
        clock="cpu",
        measure="bytes",
        unit="conversion",
        claim=claim,
        notes=notes,
    )


# -- the same file loaded in every iteration (GO101) -----------------------------------------

_LOADER_KINDS = {
    "numpy.load": "npy",
    "numpy.loadtxt": "csv",
    "numpy.genfromtxt": "csv",
    "numpy.fromfile": "bin",
    "pandas.read_csv": "csv",
    "pandas.read_table": "csv",
    "pandas.read_parquet": "parquet",
    "pandas.read_json": "json",
    "pandas.read_pickle": "pkl",
    "polars.read_csv": "csv",
    "polars.read_parquet": "parquet",
    "torch.load": "pt",
    "json.load": "json",
    "pickle.load": "pkl",
    "joblib.load": "joblib",
    "yaml.safe_load": "yaml",
    "yaml.load": "yaml",
    "PIL.Image.open": "png",
    "scipy.io.loadmat": "mat",
    "h5py.File": "h5",
    "safetensors.torch.load_file": "safetensors",
}
# Default synthetic file sizes: small enough that a load is not dominated by
# page faults and memory-bandwidth contention (8 MiB .npy loads scattered with
# an IQR of 11-37% beside a busy neighbour, 1 MiB ones 5-11%).
_DEFAULT_FILE_BYTES = {
    "npy": 1 << 20,
    "bin": 1 << 20,
    "pt": 1 << 20,
    "safetensors": 1 << 20,
    "h5": 1 << 20,
    "mat": 1 << 20,
    "csv": 256 << 10,
    "parquet": 1 << 20,
    "json": 512 << 10,
    "pkl": 512 << 10,
    "joblib": 512 << 10,
    "yaml": 128 << 10,
    "png": 512 << 10,
}
_ALIASES = {"np.": "numpy.", "pd.": "pandas.", "pl.": "polars."}


def _loader_path(index: SourceIndex, call: ast.Call) -> Optional[str]:
    node = (
        call.args[0]
        if call.args
        else next(
            (
                k.value
                for k in call.keywords
                if k.arg in ("file", "filepath_or_buffer", "f", "fp", "path", "fname", "name")
            ),
            None,
        )
    )
    if isinstance(node, ast.Call) and index.call_name(node) in ("open", "builtins.open", "io.open") and node.args:
        node = node.args[0]
    value = index.literal(node)
    if isinstance(value, str):
        return value
    if isinstance(node, ast.Call) and index.call_name(node) in ("os.path.join",):
        parts = [index.literal(a) for a in node.args]
        if all(isinstance(p, str) for p in parts):
            return os.path.join(*parts)
    return None


def plan_load(finding: Finding, index: SourceIndex, host: Host, claim: Optional[Claim]) -> Plan:
    call = index.call_at(finding.line, finding.column)
    loader = index.call_name(call) if call is not None else ""
    for short, full in _ALIASES.items():
        if loader.startswith(short):
            loader = full + loader[len(short) :]
    if loader == "builtins.open" or loader == "open":
        loader = ""
    kind = _LOADER_KINDS.get(loader)
    estimate = finding.estimate
    if estimate is not None and estimate.low == estimate.high:
        iterations, count_words = int(estimate.low) + 1, "literal loop count"
    else:
        iterations, count_words = DEFAULT_ITERATIONS, "default loop count"
    notes = []
    if iterations > MAX_ITERATIONS:
        notes.append(f"measured {MAX_ITERATIONS} of the {iterations} iterations: the saving per iteration is the same")
        claim = Claim(claim.metric, MAX_ITERATIONS - 1, MAX_ITERATIONS - 1, claim.unit, claim.source) if claim else None
        iterations = MAX_ITERATIONS
    problem = None
    if kind is None:
        problem = f"not applicable: no template for the loader {loader or 'at this line'}"
        kind = "npy"
    sized = "default"
    size = _DEFAULT_FILE_BYTES[kind]
    path = _loader_path(index, call) if call is not None else None
    size_words = f"{_human(size)} synthetic .{kind} file (default size)"
    if path:
        for base in (os.path.dirname(os.path.abspath(index.path)), os.getcwd()):
            candidate = os.path.join(base, path)
            if os.path.isfile(candidate):
                size = min(os.path.getsize(candidate), MAX_FILE_BYTES)
                sized = "file"
                size_words = f"{_human(size)} synthetic .{kind} file, the size of {path}"
                break
    target = os.path.join(host.workdir, f"probe-{os.path.basename(finding.path)}-{finding.line}.{kind}")
    needs = {"npy": host.numpy, "csv": host.numpy or not loader.startswith("numpy"), "bin": host.numpy}
    if not needs.get(kind, True) and problem is None:
        problem = "not applicable: numpy is not installed here"
    return Plan(
        finding=finding,
        title=f"{loader or 'load'} in every iteration vs loaded once",
        bench="repeated_load",
        variants=("before", "after"),
        labels={"before": f"loaded in each of {iterations} iterations", "after": "loaded once, reused"},
        params={"loader": loader, "path": target, "iterations": iterations},
        sized=_combine(
            "file" if sized == "file" else "default", "literal" if count_words.startswith("literal") else "default"
        ),
        sizes=f"{size_words}; {iterations} iterations ({count_words}); page cache warm",
        series="loop",
        clock="cpu",
        measure="extra_loads",
        unit=f"loop of {iterations} iterations",
        claim=claim,
        problem=problem,
        prepare=(
            "make_file",
            {"kind": kind, "path": target, "bytes": size, "header": loader.startswith(("pandas", "polars"))},
        ),
        notes=notes,
    )


def _combine(*labels: str) -> str:
    """One label for several sizes: all literal/file, all default, or mixed."""
    kinds = {"default" if label == "default" else "literal" for label in labels}
    if kinds == {"default"}:
        return "default"
    if kinds == {"literal"}:
        return "file" if "file" in labels else "literal"
    return "mixed"


def _human(value: float) -> str:
    from greenops_lint.probe.stats import human_bytes

    return human_bytes(value)


# -- an unused layer (GO201) and DDP's search for unused parameters (GO202) --------------------


def layer_spec(finding: Finding, index: SourceIndex) -> Optional[dict]:
    """`self.head = nn.Linear(4096, 4096)` at the finding -> a buildable spec."""
    for node in index.nodes_at(finding.line):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Call):
            call = node.value
            name = index.call_name(call)
            if not name.startswith("torch.nn.") or not name.rsplit(".", 1)[-1][:1].isupper():
                continue
            args = [index.literal(a) for a in call.args]
            kwargs = {k.arg: index.literal(k.value) for k in call.keywords if k.arg}
            if any(a is None for a in args) or any(v is None for v in kwargs.values()):
                return None
            if any(isinstance(v, str) and "float64" in v for v in kwargs.values()):
                return None
            return {"cls": name.rsplit(".", 1)[-1], "args": args, "kwargs": kwargs}
    return None


def _spec_words(spec: dict) -> str:
    args = ", ".join([*map(repr, spec["args"]), *(f"{k}={v!r}" for k, v in spec["kwargs"].items())])
    return f"nn.{spec['cls']}({args})"


def plan_unused(finding: Finding, index: SourceIndex, host: Host, claim: Optional[Claim]) -> Plan:
    spec = layer_spec(finding, index)
    problem = None
    if spec is not None:
        sized, words = "literal", _spec_words(spec)
    else:
        spec, sized = DEFAULT_LAYER, "default"
        words = f"{_spec_words(DEFAULT_LAYER)} (default: the layer's constructor is not literal torch.nn)"
        claim = None
    if finding.estimate is not None and finding.estimate.low > MAX_LAYER_BYTES:
        problem = f"not run: the layer holds {_human(finding.estimate.low)}, more than the probe allocates ({_human(MAX_LAYER_BYTES)})"
    return Plan(
        finding=finding,
        title="model with the unused layer vs without",
        bench="unused_layer",
        variants=("before", "after"),
        labels={"before": "with the unused layer", "after": "without it"},
        params={"layer": spec, "trunk": DEFAULT_TRUNK, "batch": 32},
        sized=sized,
        sizes=f"{words} beside a {'-'.join(map(str, DEFAULT_TRUNK))} MLP trunk (default), AdamW, batch 32",
        series="step",
        clock="cpu",
        measure="bytes",
        unit="step",
        claim=claim,
        problem=problem,
        notes=["parameter bytes are counted exactly; Adam state is created only for parameters that get gradients"],
    )


def plan_ddp(finding: Finding, index: SourceIndex, host: Host, claim: Optional[Claim], siblings: list[Finding]) -> Plan:
    """The flag's own cost: flag on vs off on a model with no unused parameter,
    which is what GO202 claims. Where the file's GO201 layer is literal, a third
    variant runs it as written (flag + layer): as written vs both removed is the
    pair's cost, credited to GO201 + GO202 together and never judged as GO202's."""
    spec = None
    for other in siblings:
        if other.code == "GO201" and other.path == finding.path:
            spec = layer_spec(other, index)
            if spec is not None:
                break
    trunk = f"a {'-'.join(map(str, DDP_TRUNK))} MLP (default), batch 64, 2 ranks, 1 thread each"
    variants: tuple[str, ...] = ("before", "after")
    labels = {"before": "find_unused_parameters=True", "after": "flag dropped"}
    extras: list[Extra] = []
    notes = ["gloo on CPU; NCCL bandwidth on a real interconnect is not measured"]
    if spec is not None:
        words = f"{trunk}; as written adds the unused {_spec_words(spec)} of this file (GO201)"
        sized = _combine("literal", "default")  # the layer is the code's, the trunk a default
        variants += ("as_written",)
        labels = {
            "before": "find_unused_parameters=True, unused layer removed",
            "after": "flag dropped, layer removed",
            "as_written": "find_unused_parameters=True + unused layer (as written)",
        }
        extras.append(
            Extra(
                "as written vs flag dropped and layer removed (the pair fixed)",
                "step",
                "as_written",
                "after",
                credited_to=("GO201", "GO202"),
            )
        )
        notes.append(
            "the verdict is on the flag's own cost (on vs off, the layer removed in both); as written vs both "
            "fixed is the cost of the pair, credited to GO201 + GO202 together; the layer kept with the flag off "
            "is no variant: DDP fails on the second step"
        )
    else:
        words = f"{trunk}, with no unused layer: the flag's own cost"
        sized = "default"
    return Plan(
        finding=finding,
        title="DDP find_unused_parameters=True vs removed, 2 gloo ranks",
        bench="ddp",
        variants=variants,
        labels=labels,
        params={"layer": spec, "trunk": DDP_TRUNK, "batch": 64},
        sized=sized,
        sizes=words,
        series="step",
        clock="wall",
        measure="ratio",
        unit="step",
        claim=claim,
        notes=notes,
        extras=extras,
    )


# -- worker and thread counts (GO301) -----------------------------------------------------------

_CPU_FUNCTIONS = {"os.cpu_count", "multiprocessing.cpu_count", "psutil.cpu_count", "os.process_cpu_count"}
_THREAD_WORDS = ("set_num_threads", "set_num_interop_threads", "parallelism_threads", "NUM_THREADS")


def evaluate_count(index: SourceIndex, node: Optional[ast.AST], host_cpus: int, depth: int = 0) -> Optional[int]:
    """The worker/thread count an expression gives on this host: CPU-count
    calls, integers, + - * // and min/max/`or`; a name one assignment deep."""
    if node is None or depth > 4:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in index.constants:
        return evaluate_count(index, index.constants[node.id], host_cpus, depth + 1)
    if isinstance(node, ast.Call):
        name = index.call_name(node)
        if name in _CPU_FUNCTIONS or name.endswith("cpu_count"):
            return host_cpus
        if (
            name in ("len",)
            and node.args
            and isinstance(node.args[0], ast.Call)
            and index.call_name(node.args[0]).endswith("sched_getaffinity")
        ):
            return len(os.sched_getaffinity(0))
        if name in ("str", "int", "builtins.str", "builtins.int") and node.args:
            return evaluate_count(index, node.args[0], host_cpus, depth + 1)
        if name in ("max", "min") and node.args:
            values = [evaluate_count(index, a, host_cpus, depth + 1) for a in node.args]
            if all(v is not None for v in values):
                return (max if name == "max" else min)(values)
        return None
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        return evaluate_count(index, node.values[0], host_cpus, depth + 1)
    if isinstance(node, ast.BinOp):
        left = evaluate_count(index, node.left, host_cpus, depth + 1)
        right = evaluate_count(index, node.right, host_cpus, depth + 1)
        if left is None or right is None:
            return None
        operations: dict[type, Callable[[int, int], int]] = {
            ast.Add: lambda a, b: a + b,
            ast.Sub: lambda a, b: a - b,
            ast.Mult: lambda a, b: a * b,
            ast.FloorDiv: lambda a, b: a // b if b else 0,
        }
        operation = operations.get(type(node.op))
        return operation(left, right) if operation else None
    return None


def _count_expression(finding: Finding, index: SourceIndex) -> tuple[Optional[ast.AST], str]:
    """(the count expression at the finding, 'workers' or 'threads')."""
    nodes = index.nodes_at(finding.line)
    column = finding.column - 1
    for node in nodes:
        if isinstance(node, ast.keyword) and node.col_offset == column:
            threads = "threads" in (node.arg or "")
            return node.value, "threads" if threads else "workers"
    for node in nodes:
        if isinstance(node, ast.Call) and node.col_offset == column:
            name = index.call_name(node)
            kind = (
                "threads"
                if any(w in name for w in _THREAD_WORDS) or "environ" in name or "putenv" in name
                else "workers"
            )
            argument = node.args[-1] if node.args else None
            return argument, kind
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.col_offset == column:
            text = ast.unparse(node)
            return node.value, "threads" if "THREADS" in text.upper() and "WORKERS" not in text.upper() else "workers"
        if isinstance(node, ast.arg) and node.col_offset == column:
            return _default_of(index, node), "workers"
    return None, "workers"


def _default_of(index: SourceIndex, argument: ast.arg) -> Optional[ast.AST]:
    for node in ast.walk(index.tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            positional = [*node.args.posonlyargs, *node.args.args]
            for arg, default in zip(positional[len(positional) - len(node.args.defaults) :], node.args.defaults):
                if arg is argument:
                    return default
            for arg, default in zip(node.args.kwonlyargs, node.args.kw_defaults):
                if arg is argument:
                    return default
    return None


def plan_workers(finding: Finding, index: SourceIndex, host: Host, claim: Optional[Claim]) -> Plan:
    expression, kind = _count_expression(finding, index)
    value = evaluate_count(index, expression, host.cpu_count)
    notes = []
    if value is None:
        value = host.cpu_count
        notes.append("the count expression could not be evaluated: taken as os.cpu_count()")
    capped = max(1, min(8, host.usable_cpus))
    problem = None
    if value <= capped:
        problem = (
            f"not applicable on this hardware: the code asks for {value} {kind} here, no more than the "
            f"{host.usable_cpus} CPUs this process may use; the finding costs where the host reports more CPUs "
            "than the job gets (containers, several ranks)"
        )
    if kind == "threads":
        params = {"counts": {"before": value, "after": capped}, "matmul": 512}
        bench, unit, sizes = "threads", "matmul", f"512x512 float32 matmul with {value} vs {capped} threads"
    else:
        # The images are synthetic, so the user's batch size does not apply to them.
        params = {"counts": {"before": value, "after": capped}, "items": 192, "size": 64, "rounds": 3, "batch": 16}
        bench, unit = "workers", "epoch"
        sizes = f"DataLoader epoch, 192 synthetic 3x64x64 images with an FFT transform, batch 16 (default), {value} vs {capped} workers"
    return Plan(
        finding=finding,
        title=f"{value} {kind} (as written, on this host) vs capped at {capped}",
        bench=bench,
        variants=("before", "after"),
        labels={"before": f"{value} {kind}", "after": f"{capped} {kind}"},
        params=params,
        sized="default",
        sizes=sizes,
        series="epoch" if bench == "workers" else "step",
        clock="wall",
        measure="ratio",
        unit=unit,
        claim=claim or WORKER_CLAIM,
        problem=problem,
        notes=notes,
    )


# -- a DataLoader without workers vs with a few (GO509) -------------------------------------------

# The worker count GO509's message suggests starting from, capped by the CPUs this process may use.
NO_WORKERS_AFTER = 4


def plan_no_workers(finding: Finding, index: SourceIndex, host: Host, claim: Optional[Claim]) -> Plan:
    """0 workers (as written) against a few, on a synthetic dataset with a
    per-sample transform: a CPU measurement of the loading time saved (the
    GPU's share of the step is not measured here)."""
    after = max(1, min(NO_WORKERS_AFTER, host.usable_cpus))
    problem = None
    if after < 2:
        problem = (
            f"not applicable on this hardware: this process may use {host.usable_cpus} CPU, so workers cannot "
            "load in parallel with it"
        )
    params = {"counts": {"before": 0, "after": after}, "items": 128, "size": 64, "rounds": 6, "batch": 16}
    return Plan(
        finding=finding,
        title=f"DataLoader with 0 workers (as written) vs {after}",
        bench="workers",
        variants=("before", "after"),
        labels={"before": "num_workers=0", "after": f"num_workers={after}"},
        params=params,
        sized="default",
        sizes=f"DataLoader epoch, 128 synthetic 3x64x64 images with 6 FFT rounds per sample, batch 16 (default), "
        f"0 vs {after} workers; measured on CPU: the loading time saved, not the GPU's share of the step",
        series="epoch",
        clock="wall",
        measure="ratio",
        unit="epoch",
        claim=claim,
        problem=problem,
        notes=["measured on CPU"],
    )


# -- the registry -----------------------------------------------------------------------------------


def _dtype_or_array(finding, index, host, claim, siblings):
    if finding.code == "GO403" and finding.estimate is not None and finding.estimate.metric == "memory_bytes":
        return plan_array(finding, index, host, claim)
    return plan_dtype(finding, index, host, claim)


PLANNERS: dict[str, Callable[..., Plan]] = {
    "GO101": lambda f, i, h, c, s: plan_load(f, i, h, c),
    "GO201": lambda f, i, h, c, s: plan_unused(f, i, h, c),
    "GO202": plan_ddp,
    "GO301": lambda f, i, h, c, s: plan_workers(f, i, h, c),
    "GO401": _dtype_or_array,
    "GO402": _dtype_or_array,
    "GO403": _dtype_or_array,
    "GO502": lambda f, i, h, c, s: import_module("greenops_lint.probe.plan_device").plan_device(f, i, h, c),
    "GO509": lambda f, i, h, c, s: plan_no_workers(f, i, h, c),
    "GO515": lambda f, i, h, c, s: import_module("greenops_lint.probe.pandas_rows").plan_pandas_rows(f, i, h, c),
}
PROBED_CODES = tuple(PLANNERS)


def has_probe(rule_cls) -> bool:
    """Whether `greenops-lint probe` can measure findings of this rule: the one
    place that decides it (a planner registered here, or a plugin rule that
    declares `has_probe`)."""
    return bool(getattr(rule_cls, "has_probe", False)) or rule_cls.code in PLANNERS


def make_plan(finding: Finding, host: Host, siblings: list[Finding], index: Optional[SourceIndex] = None) -> Plan:
    index = index or SourceIndex(finding.path)
    claim = claim_from_estimate(finding.estimate)
    return PLANNERS[finding.code](finding, index, host, claim, siblings)

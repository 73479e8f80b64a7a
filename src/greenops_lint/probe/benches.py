"""Micro-benchmark templates, run inside a variant's own process.

Imported only by the probe server (which has imported torch first). Each
template takes the plan's parameters and the variant's name and returns
JSON-able measurements: `series` (named lists of per-sample wall/CPU/CUDA
times), `memory` (bytes) and `info`.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import tempfile
import threading
import time
import traceback
from datetime import timedelta
from typing import Any, Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from greenops_lint.probe.host import cpu_has_bf16, cpu_info, cuda_pci_bus_ids, open_energy
from greenops_lint.probe.measure import EnergyWindow, RssPeak, gpu_memory, pss_of_tree, sample_loop

try:  # optional: the loaders of GO101 and NumPy inputs of GO403
    import numpy as np
except ImportError:  # pragma: no cover - numpy is a test dependency
    np = None


class NotApplicable(Exception):
    """The template cannot run here (no CUDA device, a missing library)."""


# -- common ---------------------------------------------------------------------------


def cuda_bf16(cuda: Any = None) -> bool:
    """Native bf16 on the CUDA device: not the emulation that
    `is_bf16_supported()` also accepts on pre-Ampere GPUs."""
    cuda = cuda if cuda is not None else torch.cuda
    try:
        return bool(cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.3 has no such argument and does not count emulation
        return bool(cuda.is_bf16_supported())


class Setup:
    def __init__(self, params: dict) -> None:
        torch.set_num_threads(int(params.get("threads", 1)))
        torch.manual_seed(0)
        self.params = params
        self.device = params.get("device", "cpu")
        self.cuda = self.device == "cuda"
        if self.cuda and not torch.cuda.is_available():
            raise NotApplicable("no CUDA device")
        self.energy: Optional[EnergyWindow] = None
        self.energy_note = ""
        if params.get("energy", True):
            counter, source, note = open_energy(self.cuda, pci_bus_ids=cuda_pci_bus_ids(torch) if self.cuda else None)
            self.energy_note = note
            if counter is not None:
                self.energy = EnergyWindow(counter, source)
        self.rss = RssPeak().start()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()

    def loop(self, step: Callable[[], Any], share: float = 1.0, energy: bool = True, **kwargs) -> dict:
        params = self.params
        return sample_loop(
            step,
            min_time=float(params.get("min_time", 0.3)) * share,
            min_samples=int(kwargs.pop("min_samples", params.get("min_samples", 5))),
            max_samples=int(kwargs.pop("max_samples", params.get("max_samples", 200))),
            warmup=int(kwargs.pop("warmup", params.get("warmup", 2))),
            torch=torch,
            cuda=self.cuda,
            energy=self.energy if energy else None,
            **kwargs,
        )

    def memory(self, **extra) -> dict:
        memory = {"peak_rss": self.rss.peak_delta(), **extra}
        if self.cuda:
            memory.update(gpu_memory(torch))
        return memory


def _tensor_bytes(tensors) -> int:
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        key = (t.data_ptr(), t.numel(), t.dtype)
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


def _optimizer_bytes(optimizer: torch.optim.Optimizer) -> int:
    return _tensor_bytes(v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v))


def _mlp(dims: list[int]) -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in zip(dims, dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def _cnn(convs: list[list[int]], classes: int) -> nn.Module:
    layers: list[nn.Module] = []
    for c_in, c_out, k in convs:
        layers += [nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(convs[-1][1], classes)]
    return nn.Sequential(*layers)


# -- float64 vs float32 vs bf16: a training step and a matmul --------------------------


def bench_dtype(params: dict, variant: str) -> dict:
    setup = Setup(params)
    device = setup.device
    if variant == "bfloat16" and not (cuda_bf16() if setup.cuda else cpu_has_bf16(cpu_info()[1])):
        raise NotApplicable("no native bf16 on this device")
    dtype = torch.float64 if variant == "float64" else torch.float32
    autocast = variant == "bfloat16"
    batch = int(params["batch"])
    if params["model"] == "cnn":
        channels, height, width = params["image"]
        model = _cnn(params["convs"], int(params.get("classes", 10)))
        x = torch.randn(batch, channels, height, width)
        classes = int(params.get("classes", 10))
    else:
        dims = params["dims"]
        model = _mlp(dims)
        x = torch.randn(batch, dims[0])
        classes = dims[-1]
    y = torch.randint(0, classes, (batch,), device=device)
    model = model.to(device=device, dtype=dtype)
    x = x.to(device=device, dtype=dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    parameters = [p for p in model.parameters()]
    param_keys = {(p.data_ptr(), p.numel(), p.dtype) for p in parameters}

    def forward_backward() -> None:
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        forward_backward()
        optimizer.step()

    # Tensor accounting: activations saved for backward, then the state after a step.
    saved: list = []

    def pack(t):
        if (t.data_ptr(), t.numel(), t.dtype) not in param_keys:
            saved.append(t)
        return t

    optimizer.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward_backward()
    optimizer.step()
    activations = _tensor_bytes(saved)
    saved.clear()
    tensors = {
        "params": _tensor_bytes(parameters),
        "grads": _tensor_bytes(p.grad for p in parameters),
        "optimizer": _optimizer_bytes(optimizer),
        "activations": activations,
    }
    series = {"step": setup.loop(step, share=0.8, warmup=3, min_sample_s=0.05)}
    n = int(params.get("matmul", 0))
    if n:
        mm_dtype = torch.bfloat16 if autocast else dtype
        a = torch.randn(n, n, device=device).to(mm_dtype)
        b = torch.randn(n, n, device=device).to(mm_dtype)
        series["matmul"] = setup.loop(lambda: torch.mm(a, b), share=0.2, energy=False, warmup=1, min_samples=5)
    return {
        "series": series,
        "memory": setup.memory(tensors=sum(tensors.values()), tensor_parts=tensors),
        "info": {"energy_note": setup.energy_note, "dtype": variant},
    }


# -- float64 NumPy data into a tensor (GO403, literal shapes) -----------------------------


def bench_array(params: dict, variant: str) -> dict:
    setup = Setup(params)
    numel = int(params["numel"])
    wide = variant == "float64"
    if np is not None:
        rng = np.random.default_rng(0)
        array = rng.random(numel) if wide else rng.random(numel, dtype=np.float32)
        make = lambda: torch.from_numpy(array)  # noqa: E731
    else:
        source = torch.rand(numel, dtype=torch.float64 if wide else torch.float32)
        make = lambda: source.clone()  # noqa: E731
    tensor = make().to(setup.device)

    def step() -> None:
        t = make().to(setup.device)
        (t * 2.0).sum()  # timed with CUDA events on a GPU: no host sync needed

    series = {"step": setup.loop(step, min_sample_s=0.02)}
    return {
        "series": series,
        "memory": setup.memory(tensors=tensor.numel() * tensor.element_size()),
        "info": {"energy_note": setup.energy_note, "numpy": np is not None},
    }


# -- the same file loaded every iteration vs once (GO101) ---------------------------------


def _loader(name: str) -> Callable[[str], Any]:
    if name == "numpy.load":
        _need(np, "numpy")
        return lambda p: np.load(p)
    if name in ("numpy.loadtxt", "numpy.genfromtxt"):
        _need(np, "numpy")
        function = getattr(np, name.split(".")[1])
        return lambda p: function(p, delimiter=",")
    if name == "numpy.fromfile":
        _need(np, "numpy")
        return lambda p: np.fromfile(p, dtype=np.float32)
    if name.startswith("pandas.read_"):
        pandas = _import("pandas")
        return getattr(pandas, name.split(".")[1])
    if name.startswith("polars.read_"):
        polars = _import("polars")
        return getattr(polars, name.split(".")[1])
    if name == "torch.load":
        return lambda p: torch.load(p)
    if name == "safetensors.torch.load_file":
        return _import("safetensors.torch").load_file
    if name == "json.load":
        return lambda p: _with_open(p, "r", json.load)
    if name == "pickle.load":
        return lambda p: _with_open(p, "rb", pickle.load)
    if name == "joblib.load":
        return _import("joblib").load
    if name in ("yaml.safe_load", "yaml.load"):
        yaml = _import("yaml")
        return lambda p: _with_open(p, "r", yaml.safe_load)
    if name == "PIL.Image.open":
        image = _import("PIL.Image")
        return lambda p: image.open(p).load()
    if name == "scipy.io.loadmat":
        return _import("scipy.io").loadmat
    if name == "h5py.File":
        h5py = _import("h5py")
        return lambda p: _h5_read(h5py, p)
    raise NotApplicable(f"no template for {name}")


def _h5_read(h5py, path):
    with h5py.File(path, "r") as handle:
        return handle["data"][...]


def _with_open(path: str, mode: str, read: Callable) -> Any:
    with open(path, mode) as handle:
        return read(handle)


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise NotApplicable(f"{name.split('.')[0]} is not installed here") from None


def _need(module: Any, name: str) -> None:
    if module is None:
        raise NotApplicable(f"{name} is not installed here")


def _touch(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 1


def bench_make_file(params: dict, variant: str) -> dict:
    """Write a synthetic file of the finding's kind and about its size."""
    kind, path, size = params["kind"], params["path"], max(1024, int(params["bytes"]))
    rng = torch.Generator().manual_seed(0)
    if kind == "npy":
        _need(np, "numpy")
        rows = max(1, size // (4 * 256))
        np.save(path, np.random.default_rng(0).random((rows, 256), dtype=np.float32))
    elif kind == "bin":
        _need(np, "numpy")
        np.random.default_rng(0).random(size // 4, dtype=np.float32).tofile(path)
    elif kind == "csv":
        cols, rows = 16, max(1, size // (16 * 10))
        values = torch.rand(rows, cols, generator=rng).tolist()
        with open(path, "w") as handle:
            if params.get("header"):
                handle.write(",".join(f"f{i}" for i in range(cols)) + "\n")
            for row in values:
                handle.write(",".join(f"{v:.6f}" for v in row) + "\n")
    elif kind == "pt":
        torch.save(torch.rand(max(1, size // 4), generator=rng), path)
    elif kind == "safetensors":
        _import("safetensors.torch").save_file({"data": torch.rand(max(1, size // 4), generator=rng)}, path)
    elif kind in ("json", "yaml", "pkl", "joblib"):
        records = [
            {"id": i, "x": round(v, 6), "label": f"c{i % 10}"}
            for i, v in enumerate(torch.rand(max(1, size // 48), generator=rng).tolist())
        ]
        if kind == "json":
            with open(path, "w") as handle:
                json.dump(records, handle)
        elif kind == "yaml":
            with open(path, "w") as handle:
                _import("yaml").safe_dump(records, handle)
        elif kind == "pkl":
            with open(path, "wb") as handle:
                pickle.dump(records, handle)
        else:
            _import("joblib").dump(records, path)
    elif kind == "parquet":
        pandas = _import("pandas")
        rows = max(1, size // (16 * 8))
        pandas.DataFrame(torch.rand(rows, 16, generator=rng).numpy(), columns=[f"f{i}" for i in range(16)]).to_parquet(
            path
        )
    elif kind == "png":
        image = _import("PIL.Image")
        side = max(8, int((size / 3) ** 0.5))
        pixels = (torch.rand(side, side, 3, generator=rng) * 255).to(torch.uint8).numpy()
        image.fromarray(pixels).save(path)
    elif kind == "mat":
        _import("scipy.io").savemat(path, {"data": np.random.default_rng(0).random((max(1, size // 8 // 64), 64))})
    elif kind == "h5":
        with _import("h5py").File(path, "w") as handle:
            handle["data"] = np.random.default_rng(0).random((max(1, size // 4 // 256), 256), dtype=np.float32)
    else:
        raise NotApplicable(f"no generator for .{kind} files")
    return {"info": {"bytes": os.path.getsize(path)}}


def bench_repeated_load(params: dict, variant: str) -> dict:
    setup = Setup(params)
    load = _loader(params["loader"])
    path, iterations = params["path"], int(params["iterations"])
    pending = {"wall": 0.0, "cpu": 0.0, "count": 0}
    per_load: dict[str, list[float]] = {"wall": [], "cpu": []}

    def timed_load() -> Any:
        w0, c0 = time.perf_counter(), time.process_time()
        value = load(path)
        pending["wall"] += time.perf_counter() - w0
        pending["cpu"] += time.process_time() - c0
        pending["count"] += 1
        return value

    def on_sample(reps: int) -> None:
        if reps and pending["count"]:
            per_load["wall"].append(pending["wall"] / pending["count"])
            per_load["cpu"].append(pending["cpu"] / pending["count"])
        pending.update(wall=0.0, cpu=0.0, count=0)

    if variant == "before":

        def step() -> None:
            for _ in range(iterations):
                _touch(timed_load())
    else:

        def step() -> None:
            data = timed_load()
            for _ in range(iterations):
                _touch(data)

    series = {
        "loop": setup.loop(
            step,
            warmup=int(params.get("warmup", 1)),
            min_samples=int(params.get("min_samples", 5)),
            min_sample_s=float(params.get("min_sample_s", 0.02)),
            on_sample=on_sample,
        )
    }
    series["load"] = per_load
    return {"series": series, "memory": setup.memory(), "info": {"energy_note": setup.energy_note}}


# -- an unused submodule (GO201) ----------------------------------------------------------


def _build_layer(spec: Optional[dict]) -> Optional[nn.Module]:
    if spec is None:
        return None
    cls = getattr(nn, spec["cls"], None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise NotApplicable(f"torch.nn has no layer {spec['cls']}")
    return cls(*spec.get("args", []), **spec.get("kwargs", {}))


class _Net(nn.Module):
    def __init__(self, dims: list[int], unused: Optional[nn.Module]) -> None:
        super().__init__()
        self.trunk = _mlp(dims)
        if unused is not None:
            self.unused = unused

    def forward(self, x):
        return self.trunk(x)


class _ByteCounter:
    """A write-only file that keeps nothing but the number of bytes written."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, data) -> int:
        size = memoryview(data).nbytes
        self.count += size
        return size

    def flush(self) -> None:
        pass


def checkpoint_bytes(state: dict) -> int:
    """The size `torch.save` gives `state`, without holding the serialized bytes."""
    counter = _ByteCounter()
    torch.save(state, counter)
    return counter.count


def bench_unused_layer(params: dict, variant: str) -> dict:
    setup = Setup(params)
    dims, batch = params["trunk"], int(params["batch"])
    layer = _build_layer(params["layer"]) if variant == "before" else None
    model = _Net(dims, layer).to(setup.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch, dims[0], device=setup.device)
    y = torch.randint(0, dims[-1], (batch,), device=setup.device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    series = {"step": setup.loop(step)}
    parameters = list(model.parameters())
    parts = {
        "params": _tensor_bytes(parameters),
        "grads": _tensor_bytes(p.grad for p in parameters),
        "optimizer": _optimizer_bytes(optimizer),
    }
    # Peak RSS is read before the checkpoint is serialized: it is the model's
    # and its training step's, not the probe's own serialization.
    memory = setup.memory(tensors=parts["params"], tensor_parts=parts)
    memory["checkpoint"] = checkpoint_bytes(model.state_dict())
    return {
        "series": series,
        "memory": memory,
        "info": {
            "energy_note": setup.energy_note,
            "param_groups": sum(len(g["params"]) for g in optimizer.param_groups),
            "params_with_state": len(optimizer.state),
        },
    }


# -- DDP with find_unused_parameters on two gloo ranks (GO202) ----------------------------


def _ddp_rank(rank: int, world: int, init: str, params: dict, variant: str, conn) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    try:
        torch.set_num_threads(1)
        dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world, timeout=timedelta(seconds=60))
        torch.manual_seed(0)
        # "as_written" keeps the unused layer (with the flag, as DDP needs);
        # "before" has the flag without it, "after" neither. Flag off with the
        # layer kept is no variant: DDP fails on the second step.
        flag = variant in ("before", "as_written")
        model = _Net(params["trunk"], _build_layer(params["layer"]) if variant == "as_written" else None)
        ddp = DistributedDataParallel(model, find_unused_parameters=flag)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=1e-3)
        dims, batch = params["trunk"], int(params["batch"])
        x, y = torch.randn(batch, dims[0]), torch.randint(0, dims[-1], (batch,))
        rss = RssPeak().start()

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(ddp(x), y).backward()
            optimizer.step()

        for _ in range(int(params.get("warmup", 2))):
            step()
        walls, cpus = [], []
        for _ in range(int(params["steps"])):
            w0, c0 = time.perf_counter(), time.process_time()
            step()
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        logging = {}
        try:
            data = ddp._get_ddp_logging_data()
            logging = {
                k: data[k] for k in ("bucket_sizes", "unused_parameter_size", "find_unused_parameters") if k in data
            }
        except Exception:  # noqa: BLE001 - private API
            pass
        conn.send({"rank": rank, "wall": walls, "cpu": cpus, "peak_rss": rss.peak_delta(), "ddp": logging})
        # No destroy_process_group(): a gloo teardown can hang under load, and
        # the process ends here anyway (the parent stops stragglers).
    except BaseException:  # noqa: BLE001
        conn.send({"rank": rank, "error": traceback.format_exc()})
        raise


def _collect_reports(receivers: list, ranks: list) -> list[dict]:
    """Every rank's report; as soon as one rank fails the others are stopped
    (they would wait for it in a collective until gloo's timeout)."""
    from multiprocessing.connection import wait

    reports: dict[int, dict] = {}
    pending = dict(enumerate(receivers))
    while pending:
        for receiver in wait(list(pending.values())):
            rank = next(r for r, c in pending.items() if c is receiver)
            try:
                report = receiver.recv()
            except EOFError:
                report = {
                    "rank": rank,
                    "error": f"rank {rank} exited without a report (exit code {ranks[rank].exitcode})",
                }
            reports[rank] = report
            del pending[rank]
            if "error" in report:
                for process in ranks:
                    if process.is_alive():
                        process.terminate()
                for process in ranks:
                    process.join(5)
                return [report]
    deadline = time.monotonic() + 10.0
    for process in ranks:
        process.join(max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(5)
    return [reports[r] for r in sorted(reports)]


def bench_ddp(params: dict, variant: str) -> dict:
    import multiprocessing

    Setup({**params, "energy": False})  # threads and seed of this process
    context = multiprocessing.get_context("fork")
    world = 2
    # Under the probe's work directory, which the CLI removes even when a
    # timeout stopped this process before its own clean-up.
    with tempfile.TemporaryDirectory(prefix="greenops-ddp-", dir=params.get("workdir")) as store:
        init = f"file://{store}/rendezvous"
        pipes = [context.Pipe(duplex=False) for _ in range(world)]
        ranks = [
            context.Process(target=_ddp_rank, args=(r, world, init, params, variant, pipes[r][1])) for r in range(world)
        ]
        for process in ranks:
            process.start()
        for _, sender in pipes:
            sender.close()  # a rank that dies without a report gives EOF, not a hang
        reports = _collect_reports([receiver for receiver, _ in pipes], ranks)
    errors = [r["error"] for r in reports if "error" in r]
    if errors:
        raise RuntimeError("a DDP rank failed:\n" + errors[0])
    walls = [max(values) for values in zip(*(r["wall"] for r in reports))]
    cpus = [max(values) for values in zip(*(r["cpu"] for r in reports))]
    return {
        "series": {"step": {"wall": walls, "cpu": cpus}},
        "memory": {"peak_rss": max((r["peak_rss"] or 0) for r in reports)},
        "info": {
            "ddp": reports[0].get("ddp", {}),
            "ranks": world,
            "backend": "gloo",
            "energy_note": "not read for DDP",
        },
    }


# -- worker and thread counts (GO301) ------------------------------------------------------


class _Synthetic(torch.utils.data.Dataset):
    """Images with a CPU-bound transform (a few FFT low-pass rounds)."""

    def __init__(self, items: int, size: int, rounds: int) -> None:
        self.items, self.size, self.rounds = items, size, rounds

    def __len__(self) -> int:
        return self.items

    def __getitem__(self, index: int):
        generator = torch.Generator().manual_seed(index)
        x = torch.randn(3, self.size, self.size, generator=generator)
        for _ in range(self.rounds):
            spectrum = torch.fft.rfft2(x)
            spectrum[..., self.size // 4 :, :] = 0
            x = torch.fft.irfft2(spectrum, s=x.shape[-2:]).clamp(-3, 3)
        return x, index % 10


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def bench_workers(params: dict, variant: str) -> dict:
    setup = Setup({**params, "energy": params.get("energy", True)})
    workers = int(params["counts"][variant])
    dataset = _Synthetic(int(params["items"]), int(params["size"]), int(params["rounds"]))
    batch = int(params["batch"])
    peak = {"pss": 0}
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            peak["pss"] = max(peak["pss"], pss_of_tree())
            stop.wait(0.05)

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    cpu_with_children: list[float] = []

    def epoch() -> None:
        c0 = time.process_time() + _children_cpu()
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch, num_workers=workers, worker_init_fn=_worker_init if workers else None
        )
        for xb, _ in loader:
            xb.mean().item()
        del loader
        cpu_with_children.append(time.process_time() + _children_cpu() - c0)

    try:
        series = {"epoch": setup.loop(epoch, warmup=0, min_samples=int(params.get("min_samples", 3)))}
    finally:
        stop.set()
        thread.join()
    series["epoch"]["cpu"] = cpu_with_children[-len(series["epoch"]["wall"]) :]
    return {
        "series": series,
        "memory": setup.memory(pss=peak["pss"]),
        "info": {"workers": workers, "energy_note": setup.energy_note},
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_threads(params: dict, variant: str) -> dict:
    setup = Setup(params)
    threads = int(params["counts"][variant])
    torch.set_num_threads(threads)
    n = int(params["matmul"])
    a, b = torch.randn(n, n), torch.randn(n, n)
    series = {"step": setup.loop(lambda: torch.mm(a, b))}
    return {"series": series, "memory": setup.memory(), "info": {"threads": threads, "energy_note": setup.energy_note}}


# -- a tensor created on the CPU and moved vs created on the device (GO502) -----------------


def bench_device_creation(params: dict, variant: str) -> dict:
    setup = Setup(params)
    if not setup.cuda:
        raise NotApplicable("no CUDA device")
    shape = params["shape"]
    factory = getattr(torch, params.get("factory", "randn"))
    if variant == "before":
        step = lambda: factory(*shape).to("cuda")  # noqa: E731
    else:
        step = lambda: factory(*shape, device="cuda")  # noqa: E731
    series = {"step": setup.loop(step)}
    return {"series": series, "memory": setup.memory(), "info": {"energy_note": setup.energy_note}}


# -- the host, and a template that hangs (for the tests of the timeout) -----------------------


def bench_detect(params: dict, variant: str) -> dict:
    info: dict = {"torch": torch.__version__, "cuda": False, "numpy": np is not None}
    model, flags = cpu_info()
    info["cpu_model"] = model
    info["cpu_bf16"] = cpu_has_bf16(flags)
    if torch.cuda.is_available():
        info["cuda"] = True
        info["device_name"] = torch.cuda.get_device_name(0)
        info["cuda_bf16"] = cuda_bf16()
        info["device_count"] = torch.cuda.device_count()
    return {"info": info}


def bench_hang(params: dict, variant: str) -> dict:
    """Sleeps forever, with a child that ignores SIGTERM (tests only)."""
    import signal

    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if params.get("pid_file"):
            with open(params["pid_file"], "a") as handle:
                handle.write(f"{os.getpid()}\n")
        while True:
            time.sleep(1)
    if params.get("pid_file"):
        with open(params["pid_file"], "a") as handle:
            handle.write(f"{os.getpid()}\n")
    while True:
        time.sleep(1)


def _pandas_rows_bench() -> Callable[[dict, str], dict]:
    from greenops_lint.probe.pandas_rows import bench_pandas_rows

    return bench_pandas_rows


BENCHES: dict[str, Callable[[dict, str], dict]] = {
    "dtype": bench_dtype,
    "array": bench_array,
    "make_file": bench_make_file,
    "repeated_load": bench_repeated_load,
    "unused_layer": bench_unused_layer,
    "ddp": bench_ddp,
    "workers": bench_workers,
    "threads": bench_threads,
    "device_creation": bench_device_creation,
    "pandas_rows": lambda params, variant: _pandas_rows_bench()(params, variant),
    "detect": bench_detect,
    "hang": bench_hang,
}


def run(request: dict) -> dict:
    bench = BENCHES[request["bench"]]
    try:
        return bench(request.get("params", {}), request.get("variant", ""))
    except NotApplicable as exc:
        return {"not_applicable": str(exc)}

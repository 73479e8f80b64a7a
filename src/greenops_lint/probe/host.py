"""What the probe runs on: CPUs, the hardware profile, foreign load, energy counters.

Energy comes only from real counters: RAPL `energy_uj` (package domains) where
readable, NVML's total-energy counter on NVIDIA GPUs (Volta and newer). Where
neither exists, joules are `None`, never a model presented as a measurement.
"""

from __future__ import annotations

import glob
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

CPU_PROFILE_SMALL = "cloud-vcpu-2"
CPU_PROFILE_SERVER = "x86-server-cpu"

# CUDA device name (torch.cuda.get_device_name / nvmlDeviceGetName) -> profile key
# in data/hardware.toml. First match wins: more specific patterns first.
_CUDA_PROFILES = (
    (r"H200", "h200"),
    (r"H100\s*NVL", "h100-nvl"),
    (r"H100.*PCIe", "h100-pcie"),
    (r"H100", "h100-sxm"),
    (r"A100.*PCIE.*80\s*GB|A100 80GB PCIe", "a100-80gb-pcie"),
    (r"A100.*PCIE", "a100-40gb-pcie"),
    (r"A100.*80\s*GB|A100-SXM4-80GB|A100 80GB", "a100-80gb"),
    (r"A100", "a100-40gb"),
    (r"A10G", "a10g"),
    (r"\bA10\b", "a10"),
    (r"\bL4\b", "l4"),
    (r"V100", "v100"),
    (r"\bT4\b", "t4"),
    (r"RTX\s*4090", "rtx-4090"),
    (r"RTX\s*3090", "rtx-3090"),
)


def profile_for_cuda_name(name: str) -> str:
    """The hardware profile of a CUDA device name; `generic-gpu` if unknown."""
    for pattern, key in _CUDA_PROFILES:
        if re.search(pattern, name, re.IGNORECASE):
            return key
    return "generic-gpu"


def cpu_profile_key(usable: int) -> str:
    """The CPU profile: the 2-vCPU class for small hosts, the server part otherwise."""
    return CPU_PROFILE_SMALL if usable <= 4 else CPU_PROFILE_SERVER


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def cgroup_cpu_limit(root: str = "/sys/fs/cgroup") -> Optional[float]:
    """CPUs allowed by the cgroup quota (v2 `cpu.max`, v1 `cfs_quota_us`); None if unlimited."""
    text = _read(os.path.join(root, "cpu.max"))
    if text:
        parts = text.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                return int(parts[0]) / int(parts[1])
            except (ValueError, ZeroDivisionError):
                return None
        return None
    quota = _read(os.path.join(root, "cpu", "cpu.cfs_quota_us")) or _read(os.path.join(root, "cpu.cfs_quota_us"))
    period = _read(os.path.join(root, "cpu", "cpu.cfs_period_us")) or _read(os.path.join(root, "cpu.cfs_period_us"))
    try:
        if quota and period and int(quota) > 0:
            return int(quota) / int(period)
    except ValueError:
        return None
    return None


def usable_cpus() -> int:
    """The CPUs this process may really use: affinity, capped by a cgroup quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        count = max(1, min(count, int(limit + 0.999)))
    return count


def cpu_info(path: str = "/proc/cpuinfo") -> tuple[str, frozenset]:
    """(model name, flags) of the first CPU."""
    text = _read(path) or ""
    model, flags = "unknown CPU", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "Hardware") and model == "unknown CPU":
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def cpu_has_bf16(flags: frozenset) -> bool:
    """Native bf16 math (AVX512_BF16, AMX, Arm BF16); elsewhere bf16 is emulated."""
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


# -- foreign load --------------------------------------------------------------------


def read_proc_stat(path: str = "/proc/stat") -> Optional[tuple[float, float, float]]:
    """(busy seconds, total seconds, steal seconds) of the whole machine."""
    text = _read(path)
    if not text:
        return None
    first = text.splitlines()[0].split()
    if first[0] != "cpu":
        return None
    values = [int(v) for v in first[1:]]
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    # user nice system idle iowait irq softirq steal guest guest_nice
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    steal = values[7] if len(values) > 7 else 0
    total = sum(values[:8])
    busy = total - idle - steal
    return busy / hz, total / hz, steal / hz


def process_cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of a live process (0 if gone)."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    hz = os.sysconf("SC_CLK_TCK")
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / hz


class LoadMonitor:
    """Foreign load: machine busy time from /proc/stat minus our own processes'
    CPU time, as a fraction of the usable CPUs over the window."""

    def __init__(self, pids: Sequence[int] = (), cpus: Optional[int] = None, stat_path: str = "/proc/stat") -> None:
        self.pids = list(pids)
        self.cpus = cpus or os.cpu_count() or 1
        self.stat_path = stat_path
        self._start: Optional[tuple] = None

    def _own(self) -> float:
        times = os.times()
        return (
            times.user
            + times.system
            + times.children_user
            + times.children_system
            + sum(process_cpu_seconds(p) for p in self.pids)
        )

    def start(self) -> "LoadMonitor":
        self._start = (time.perf_counter(), read_proc_stat(self.stat_path), self._own())
        return self

    def stop(self) -> dict:
        if self._start is None:
            return {"foreign_load": None, "steal_s": None}
        wall0, stat0, own0 = self._start
        wall, stat, own = time.perf_counter(), read_proc_stat(self.stat_path), self._own()
        if stat0 is None or stat is None or wall <= wall0:
            return {"foreign_load": None, "steal_s": None}
        busy = stat[0] - stat0[0]
        # The machine counter covers all CPUs, ours may be fewer: normalise by
        # the CPUs of the machine, the only denominator /proc/stat knows.
        cpus = os.cpu_count() or self.cpus
        foreign = max(0.0, busy - (own - own0)) / ((wall - wall0) * cpus)
        return {"foreign_load": round(min(foreign, 1.0), 3), "steal_s": round(stat[2] - stat0[2], 3)}


# -- RAPL ------------------------------------------------------------------------------

RAPL_ROOTS = ("/sys/class/powercap", "/sys/devices/virtual/powercap")


@dataclass
class RaplDomain:
    path: str
    name: str
    max_range_uj: int


class Rapl:
    """Package-level RAPL counters (`intel-rapl:N`, whose name starts with
    `package`), read from sysfs. Sub-domains (core, uncore, dram) and `psys`
    are left out so that nothing is counted twice."""

    source = "rapl"

    def __init__(self, domains: list[RaplDomain]) -> None:
        self.domains = domains

    @classmethod
    def open(cls, roots: Sequence[str] = RAPL_ROOTS) -> Optional["Rapl"]:
        domains = []
        seen = set()
        for root in roots:
            for directory in sorted(glob.glob(os.path.join(root, "intel-rapl:*"))):
                if directory.count(":") != 1:
                    continue  # a sub-domain such as intel-rapl:0:0
                name = (_read(os.path.join(directory, "name")) or "").strip()
                if not name.startswith("package"):
                    continue
                real = os.path.realpath(directory)
                if real in seen:
                    continue
                energy = os.path.join(directory, "energy_uj")
                if _read(energy) is None:
                    continue  # root-only since CVE-2020-8694 on most distributions
                seen.add(real)
                max_range = int((_read(os.path.join(directory, "max_energy_range_uj")) or "0").strip() or 0)
                domains.append(RaplDomain(energy, name, max_range))
        return cls(domains) if domains else None

    def read(self) -> list[int]:
        return [int((_read(d.path) or "0").strip()) for d in self.domains]

    def joules(self, before: list[int], after: list[int]) -> float:
        total = 0
        for domain, a, b in zip(self.domains, before, after):
            delta = b - a
            if delta < 0 and domain.max_range_uj:
                delta += domain.max_range_uj  # the counter wrapped around
            total += max(delta, 0)
        return total / 1e6


# -- NVML ------------------------------------------------------------------------------


class NvmlUnavailable(Exception):
    pass


def _nvml_module() -> Any:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError as exc:
        raise NvmlUnavailable("nvidia-ml-py is not installed (pip install 'greenops-lint[gpu]')") from exc
    return pynvml


class Nvml:
    """NVML's total-energy counter (mJ, Volta and newer) of the GPUs named by
    `CUDA_VISIBLE_DEVICES` (indices or `GPU-` UUIDs), in CUDA order. MIG
    instances have no energy counter of their own: unavailable."""

    source = "nvml"

    def __init__(
        self,
        module: Any = None,
        visible: Optional[str] = None,
        first_only: bool = False,
        pci_bus_ids: Optional[Sequence[str]] = None,
        order: Optional[str] = None,
    ) -> None:
        self.nvml = module if module is not None else _nvml_module()
        try:
            self.nvml.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - NVMLError or a missing driver library
            raise NvmlUnavailable(f"NVML could not start: {exc}") from exc
        visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
        order = os.environ.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST") if order is None else order
        try:
            if pci_bus_ids:
                # What CUDA calls device 0, 1, ...: exact, whatever the order.
                self.handles = [self._by_bus_id(bus) for bus in pci_bus_ids]
            else:
                self.handles = self._handles(visible, order)
        except NvmlUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - NVMLError: Not Found, Invalid Argument
            self.close()
            raise NvmlUnavailable(f"cannot find the GPU in NVML: {exc}") from exc
        if first_only:
            self.handles = self.handles[:1]
        if not self.handles:
            raise NvmlUnavailable("no visible GPU")
        for handle in self.handles:
            try:
                self.nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            except Exception as exc:  # noqa: BLE001
                raise NvmlUnavailable(f"this GPU has no energy counter (pre-Volta or vGPU): {exc}") from exc

    def _by_bus_id(self, bus: str) -> Any:
        lookup = getattr(self.nvml, "nvmlDeviceGetHandleByPciBusId_v2", None) or self.nvml.nvmlDeviceGetHandleByPciBusId
        return lookup(bus)

    def _handles(self, visible: Optional[str], order: str = "PCI_BUS_ID") -> list:
        if visible is None:
            handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(self.nvml.nvmlDeviceGetCount())]
            self._check_order(handles, order)
            return handles
        handles = []
        for entry in (e.strip() for e in visible.split(",")):
            if not entry:
                continue
            if entry.startswith("MIG-"):
                raise NvmlUnavailable("MIG instances have no per-instance energy counter")
            if entry.startswith("GPU-"):
                handles.append(self.nvml.nvmlDeviceGetHandleByUUID(entry))
                continue
            try:
                index = int(entry)
            except ValueError:
                raise NvmlUnavailable(f"cannot map CUDA_VISIBLE_DEVICES entry {entry!r} to a GPU") from None
            if index < 0:
                break  # CUDA stops at the first invalid index
            handles.append(self.nvml.nvmlDeviceGetHandleByIndex(index))
        if any(not e.strip().startswith("GPU-") for e in visible.split(",") if e.strip()):
            self._check_order(
                [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(self.nvml.nvmlDeviceGetCount())], order
            )
        return handles

    def _check_order(self, every: list, order: str) -> None:
        """NVML numbers GPUs by PCI bus id; CUDA, unless CUDA_DEVICE_ORDER is
        PCI_BUS_ID, fastest first. The two agree when every GPU is the same
        model (ties keep the bus order); otherwise an index may name another GPU."""
        if order.upper() == "PCI_BUS_ID" or len(every) < 2:
            return
        if len({self._name(h) for h in every}) > 1:
            raise NvmlUnavailable(
                "mixed GPU models and CUDA_DEVICE_ORDER is not PCI_BUS_ID: NVML's index may name another GPU "
                "than CUDA's (set CUDA_DEVICE_ORDER=PCI_BUS_ID)"
            )

    def _name(self, handle: Any) -> str:
        name = self.nvml.nvmlDeviceGetName(handle)
        return name.decode() if isinstance(name, bytes) else str(name)

    def names(self) -> list[str]:
        return [self._name(handle) for handle in self.handles]

    def read(self) -> list[int]:
        return [int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self.handles]

    def joules(self, before: list[int], after: list[int]) -> float:
        return sum(max(b - a, 0) for a, b in zip(before, after)) / 1000.0

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


RAPL_ON_GPU = "rapl-cpu-package"


def cuda_pci_bus_ids(torch: Any, count: int = 1) -> Optional[list[str]]:
    """NVML-style PCI bus ids of CUDA devices 0..count-1 (None if torch cannot say)."""
    try:
        ids = []
        for index in range(count):
            props = torch.cuda.get_device_properties(index)
            ids.append(f"{props.pci_domain_id:08X}:{props.pci_bus_id:02X}:{props.pci_device_id:02X}.0")
        return ids
    except Exception:  # noqa: BLE001 - an older torch without the pci_* fields
        return None


def open_energy(
    cuda: bool, first_only: bool = True, nvml_module: Any = None, pci_bus_ids: Optional[Sequence[str]] = None
) -> tuple[Optional[Any], str, str]:
    """(counter, source, note): NVML on a CUDA host, else RAPL, else none.

    On a CUDA host without NVML, RAPL still reads the CPU packages: its
    source is `rapl-cpu-package`, and the note says it is not the GPU's energy."""
    notes = []
    if cuda:
        try:
            return Nvml(nvml_module, first_only=first_only, pci_bus_ids=pci_bus_ids), "nvml", ""
        except NvmlUnavailable as exc:
            notes.append(f"NVML: {exc}")
    rapl = Rapl.open()
    if rapl is not None:
        if cuda:
            return (
                rapl,
                RAPL_ON_GPU,
                (
                    "; ".join(notes)
                    + "; RAPL measures the whole CPU packages (other processes included), not the GPU: "
                    "the GPU's energy is not measured"
                ),
            )
        return rapl, "rapl", "RAPL package counters cover the whole machine, other processes included"
    notes.append("no readable RAPL counter (/sys/class/powercap absent or root-only)")
    return None, "none", "; ".join(notes)

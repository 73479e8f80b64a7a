"""Where the probe runs: hardware profiles, CPU limits, foreign load, RAPL and
NVML energy counters (NVML and CUDA through fakes: no GPU here)."""

from __future__ import annotations

import os

import pytest

from greenops_lint.probe import host
from greenops_lint.probe.host import LoadMonitor, Nvml, NvmlUnavailable, Rapl
from greenops_lint.savings import float64_time_factor, get_hardware, hardware_table


@pytest.mark.parametrize(
    "name, key",
    [
        ("NVIDIA H200", "h200"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
        ("NVIDIA A100-PCIE-40GB", "a100-40gb-pcie"),
        ("NVIDIA A100 80GB PCIe", "a100-80gb-pcie"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H100 NVL", "h100-nvl"),
        ("Tesla T4", "t4"),
        ("Tesla V100-SXM2-32GB", "v100"),
        ("NVIDIA A10G", "a10g"),
        ("NVIDIA A10", "a10"),
        ("NVIDIA L4", "l4"),
        ("NVIDIA GeForce RTX 3090", "rtx-3090"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("Quadro P1000", "generic-gpu"),
    ],
)
def test_cuda_names_map_to_hardware_profiles(name, key):
    assert host.profile_for_cuda_name(name) == key
    assert key in hardware_table()


def test_cpu_profiles_exist_and_a_cpu_estimate_differs_from_a_gpu_one():
    assert host.cpu_profile_key(2) == "cloud-vcpu-2"
    assert host.cpu_profile_key(64) == "x86-server-cpu"
    cpu = float64_time_factor(get_hardware("cloud-vcpu-2"))
    t4 = float64_time_factor(get_hardware("t4"))
    assert cpu.high < 4 < t4.high  # CPU: float64 convs measured at 3.3-3.4x


def test_cgroup_limits(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert host.cgroup_cpu_limit(str(tmp_path)) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert host.cgroup_cpu_limit(str(tmp_path)) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert host.cgroup_cpu_limit(str(v1)) == 2.0
    assert 1 <= host.usable_cpus() <= (os.cpu_count() or 1)


def test_cpu_info_and_bf16(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor : 0\nmodel name : AMD EPYC 9B45\nflags : fpu avx512f avx512_bf16\n")
    model, flags = host.cpu_info(str(info))
    assert model == "AMD EPYC 9B45"
    assert host.cpu_has_bf16(flags)
    assert not host.cpu_has_bf16(frozenset({"avx2"}))


def _stat(path, busy, idle, steal=0):
    # cpu user nice system idle iowait irq softirq steal
    path.write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 {steal} 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n")


def test_foreign_load_is_machine_busy_time_minus_our_own(tmp_path):
    stat = tmp_path / "stat"
    hz = os.sysconf("SC_CLK_TCK")
    _stat(stat, busy=0, idle=0)
    monitor = LoadMonitor(stat_path=str(stat)).start()
    wall0 = monitor._start[0]
    cpus = os.cpu_count() or 1
    # Pretend every CPU was busy for 10 s of machine time per CPU.
    _stat(stat, busy=int(10 * hz * cpus), idle=0, steal=hz)
    monitor._start = (wall0 - 10.0, monitor._start[1], monitor._start[2])
    figures = monitor.stop()
    assert 0.9 <= figures["foreign_load"] <= 1.0
    assert figures["steal_s"] == pytest.approx(1.0)
    assert host.read_proc_stat(str(tmp_path / "missing")) is None


def _rapl_domain(root, name, label, energy, max_range):
    directory = root / name
    directory.mkdir()
    (directory / "name").write_text(label + "\n")
    (directory / "energy_uj").write_text(f"{energy}\n")
    (directory / "max_energy_range_uj").write_text(f"{max_range}\n")
    return directory


def test_rapl_reads_package_domains_and_handles_wrap_around(tmp_path):
    package = _rapl_domain(tmp_path, "intel-rapl:0", "package-0", 900_000, 1_000_000)
    _rapl_domain(tmp_path, "intel-rapl:0:0", "core", 5, 1_000_000)  # a sub-domain: not counted twice
    _rapl_domain(tmp_path, "intel-rapl:1", "psys", 5, 1_000_000)  # platform: not counted
    rapl = Rapl.open([str(tmp_path)])
    assert rapl is not None and [d.name for d in rapl.domains] == ["package-0"]
    before = rapl.read()
    (package / "energy_uj").write_text("100000\n")  # wrapped past 1 J
    assert rapl.joules(before, rapl.read()) == pytest.approx(0.2)
    assert Rapl.open([str(tmp_path / "nothing")]) is None


class FakeNvml:
    """The few pynvml calls the probe makes; counters advance 1 J per read."""

    def __init__(self, count=4, energy_supported=True, init_fails=False, names=None):
        self.count, self.energy_supported, self.init_fails = count, energy_supported, init_fails
        self.names = names
        self.counters: dict = {}
        self.shutdown = False

    def nvmlInit(self):
        if self.init_fails:
            raise RuntimeError("NVML Shared Library Not Found")

    def nvmlShutdown(self):
        self.shutdown = True

    def nvmlDeviceGetCount(self):
        return self.count

    def nvmlDeviceGetHandleByIndex(self, index):
        if index >= self.count:
            raise RuntimeError("Invalid Argument")
        return ("index", index)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        if not uuid.startswith("GPU-"):
            raise RuntimeError("Invalid Argument")
        if uuid == "GPU-gone":
            raise RuntimeError("Not Found")
        return ("uuid", uuid)

    def nvmlDeviceGetHandleByPciBusId_v2(self, bus):
        return ("bus", bus)

    def nvmlDeviceGetName(self, handle):
        if self.names and handle[0] == "index":
            return self.names[handle[1]]
        return b"NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.energy_supported:
            raise RuntimeError("Not Supported")
        self.counters[handle] = self.counters.get(handle, 0) + 1000  # mJ
        return self.counters[handle]


def test_nvml_follows_cuda_visible_devices_by_index_and_uuid():
    fake = FakeNvml()
    nvml = Nvml(fake, visible="2,3")
    assert nvml.handles == [("index", 2), ("index", 3)]
    before = nvml.read()
    assert nvml.joules(before, nvml.read()) == pytest.approx(2.0)  # 1 J on each of the two visible GPUs
    assert Nvml(FakeNvml(), visible="2,3", first_only=True).handles == [("index", 2)]
    assert Nvml(FakeNvml(), visible="GPU-8a3c").handles == [("uuid", "GPU-8a3c")]
    assert Nvml(FakeNvml(), visible="1,-1,3").handles == [("index", 1)]  # CUDA stops at an invalid index
    assert len(Nvml(FakeNvml(), visible=None).handles) == 4
    assert nvml.names() == ["NVIDIA H100 80GB HBM3"] * 2
    nvml.close()
    assert fake.shutdown


@pytest.mark.parametrize(
    "fake, visible, words",
    [
        (FakeNvml(), "MIG-4f1c", "MIG"),
        (FakeNvml(), "", "no visible GPU"),
        (FakeNvml(energy_supported=False), "0", "no energy counter"),
        (FakeNvml(init_fails=True), "0", "could not start"),
        (FakeNvml(), "bogus", "cannot map"),
    ],
)
def test_nvml_unavailable_cases(fake, visible, words):
    with pytest.raises(NvmlUnavailable, match=words):
        Nvml(fake, visible=visible)


def test_open_energy_prefers_nvml_then_rapl_then_none(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    counter, source, _ = host.open_energy(True, nvml_module=FakeNvml())
    assert source == "nvml" and isinstance(counter, Nvml)
    monkeypatch.setattr(host.Rapl, "open", classmethod(lambda cls, roots=(): None))
    counter, source, note = host.open_energy(True, nvml_module=FakeNvml(energy_supported=False))
    assert counter is None and source == "none"
    assert "NVML" in note and "RAPL" in note


@pytest.mark.parametrize("visible", ["GPU-gone", "7"])
def test_nvml_lookup_errors_mean_no_energy_counter_not_a_failed_variant(visible):
    # NVMLError "Not Found" / "Invalid Argument" from a handle lookup: the
    # variant runs without a counter instead of failing.
    fake = FakeNvml(count=2)
    with pytest.raises(NvmlUnavailable, match="cannot find the GPU in NVML"):
        Nvml(fake, visible=visible)
    assert fake.shutdown


def test_nvml_follows_cuda_order_by_pci_bus_id():
    # torch's device properties give the bus ids of what CUDA calls 0, 1, ...
    nvml = Nvml(FakeNvml(), pci_bus_ids=["00000000:81:00.0"])
    assert nvml.handles == [("bus", "00000000:81:00.0")]
    # Mixed models, CUDA's default fastest-first order: an index may name another GPU.
    mixed = FakeNvml(count=2, names=[b"NVIDIA A100-SXM4-80GB", b"Tesla T4"])
    with pytest.raises(NvmlUnavailable, match="CUDA_DEVICE_ORDER"):
        Nvml(mixed, visible="0", order="FASTEST_FIRST")
    assert Nvml(FakeNvml(count=2, names=[b"A", b"B"]), visible="1", order="PCI_BUS_ID").handles == [("index", 1)]
    assert Nvml(FakeNvml(count=2), visible="1", order="FASTEST_FIRST").handles == [("index", 1)]  # same model


def test_cuda_pci_bus_ids_from_torch_properties():
    class Props:
        pci_domain_id, pci_bus_id, pci_device_id = 0, 0x3B, 0

    class Cuda:
        @staticmethod
        def get_device_properties(index):
            return Props()

    class Torch:
        cuda = Cuda()

    assert host.cuda_pci_bus_ids(Torch()) == ["00000000:3B:00.0"]
    assert host.cuda_pci_bus_ids(object()) is None


def test_rapl_on_a_cuda_host_without_nvml_is_labelled_cpu_package(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(host.Rapl, "open", classmethod(lambda cls, roots=(): "rapl-counter"))
    counter, source, note = host.open_energy(True, nvml_module=FakeNvml(init_fails=True))
    assert counter == "rapl-counter" and source == "rapl-cpu-package"
    assert "not the GPU" in note
    _, source, _ = host.open_energy(False)
    assert source == "rapl"


def test_cuda_bf16_excludes_emulation():
    from greenops_lint.probe.benches import cuda_bf16

    class Volta:
        @staticmethod
        def is_bf16_supported(including_emulation=True):
            return including_emulation  # emulated only

    class OldTorch:
        @staticmethod
        def is_bf16_supported():
            return False

    assert cuda_bf16(Volta()) is False
    assert cuda_bf16(OldTorch()) is False


def test_sample_loop_synchronises_cuda_around_the_calibration_step():
    from greenops_lint.probe.measure import sample_loop

    events = []

    class Cuda:
        @staticmethod
        def synchronize():
            events.append("sync")

        class Event:
            def __init__(self, enable_timing=True):
                pass

            def record(self):
                pass

            def synchronize(self):
                pass

            def elapsed_time(self, other):
                return 1.0

    class Torch:
        cuda = Cuda

    sample_loop(
        lambda: events.append("step"),
        min_time=0.0,
        min_samples=1,
        max_samples=1,
        warmup=0,
        torch=Torch,
        cuda=True,
        min_sample_s=0.001,
    )
    assert events[:3] == ["sync", "step", "sync"]


def test_new_datacenter_profiles_have_their_board_power():
    table = hardware_table()
    assert (table["a100-40gb-pcie"].tdp_w, table["a100-80gb-pcie"].tdp_w) == (250, 300)
    assert (table["h100-pcie"].tdp_w, table["h100-nvl"].tdp_w) == (350, 400)
    assert table["h100-nvl"].fp64_tc == 60 and table["h100-pcie"].tf32 == 378


def test_gpu_probe_script_has_no_pipefail_grep_race():
    import re
    import subprocess

    from conftest import ROOT

    script = ROOT / "benchmarks" / "gpu_probe.sh"
    text = script.read_text()
    assert "set -euo pipefail" in text
    # `producer | grep -q`: grep exits at the first match, the producer dies of SIGPIPE, pipefail fails the test.
    assert not re.search(r"\|\s*grep -q", text)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0

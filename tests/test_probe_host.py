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
        ("NVIDIA A100-PCIE-40GB", "a100-40gb"),
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
    assert cpu.high < 3 < t4.high


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

    def __init__(self, count=4, energy_supported=True, init_fails=False):
        self.count, self.energy_supported, self.init_fails = count, energy_supported, init_fails
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
        return ("uuid", uuid)

    def nvmlDeviceGetName(self, handle):
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

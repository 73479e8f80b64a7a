"""`probe --run CMD`: the user's own command, as it is and with the fixes applied.

Both variants run on temporary copies of the project, so the user's files are
never touched (not even by what the command itself writes: checkpoints, logs).
What the copies hold (`copy_project`): regular files and symbolic links (as
links); FIFOs, sockets and devices are skipped (reading one would block or
never end). A file of `LINK_BYTES` or more (a data set, a checkpoint) is not
copied byte by byte: it becomes a copy-on-write clone where the filesystem
has them (btrfs, XFS), else a hard link, else a symbolic link to the original.
A hard or symbolic link shares the original's bytes: a command that rewrites
such a file in place changes the user's file, which the fingerprint taken
before and after the runs reports ("project changed"); a command that
replaces it (writes a new file under the same name) does not.
The fixes come from `greenops_lint.fixes.fix_paths`, applied to the "after"
copy only; which findings they fixed is read by linting the copy again. Runs
alternate A B B A, each in its own session, stopped with its children at the
timeout.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import stat
import tempfile
from collections import Counter
from pathlib import Path
from typing import Callable, Optional, Sequence

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

from greenops_lint.config import DEFAULT_EXCLUDES
from greenops_lint.probe import stats
from greenops_lint.probe.host import (
    LoadMonitor,
    Nvml,
    NvmlUnavailable,
    Rapl,
    cpu_profile_key,
    profile_for_cuda_name,
    usable_cpus,
)
from greenops_lint.probe.procs import run_command
from greenops_lint.probe.runner import collect_findings, load_project, order
from greenops_lint.savings import get_hardware

_SKIP_DIRS = frozenset(d for d in DEFAULT_EXCLUDES if "*" not in d)


class RunError(Exception):
    """--run cannot go on (no fixer, a failing or hanging command): exit 2."""


def import_fixer() -> Callable:
    try:
        from greenops_lint.fixes import fix_paths  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RunError(
            "--run needs the autofix machinery (greenops_lint.fixes.fix_paths), which this version of "
            f"greenops-lint does not have yet ({exc}); the template probes (greenops-lint probe PATH) work without it"
        ) from None
    return fix_paths


# -- copies and fingerprints ----------------------------------------------------------------


def _ignore(directory: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _SKIP_DIRS or n.endswith(".egg-info")}


LINK_BYTES = 8 * 1024 * 1024
_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


class CopySummary:
    """What `copy_project` did besides copying: links made, files skipped."""

    def __init__(self) -> None:
        self.linked: dict[str, str] = {}  # path -> "clone", "hard link" or "symbolic link"
        self.skipped: list[str] = []  # FIFOs, sockets, devices

    def notes(self, root: Path) -> list[str]:
        notes = []
        if self.linked:
            kinds = sorted(set(self.linked.values()))
            notes.append(
                f"{len(self.linked)} file(s) of {LINK_BYTES // 2**20} MiB or more linked into the copies, not copied "
                f"({', '.join(kinds)})"
            )
        if self.skipped:
            names = ", ".join(os.path.relpath(p, root) for p in self.skipped[:5])
            more = f" and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            notes.append(f"not copied (FIFO, socket or device): {names}{more}")
        return notes


def _link_large(source: str, target: str) -> Optional[str]:
    """Put `source` at `target` without copying its bytes; the kind of link, or None."""
    try:
        if fcntl is None:
            raise OSError("no ioctl")
        with open(source, "rb") as src, open(target, "wb") as dst:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
        shutil.copystat(source, target)
        return "clone"
    except OSError:
        try:
            os.unlink(target)
        except OSError:
            pass
    try:
        os.link(source, target)
        return "hard link"
    except OSError:
        pass
    try:
        os.symlink(os.path.abspath(source), target)
        return "symbolic link"
    except OSError:
        return None


def copy_project(root: Path, target: Path) -> CopySummary:
    """Copy the project for one variant (see the module docstring)."""
    summary = CopySummary()

    def copy(source: str, destination: str) -> str:
        info = os.lstat(source)
        if not stat.S_ISREG(info.st_mode):
            summary.skipped.append(source)
            return destination
        if info.st_size >= LINK_BYTES:
            kind = _link_large(source, destination)
            if kind is not None:
                summary.linked[source] = kind
                return destination
        return shutil.copy2(source, destination)

    shutil.copytree(root, target, symlinks=True, ignore=_ignore, copy_function=copy)
    return summary


def fingerprint(root: Path) -> dict[str, str]:
    """What --run promises not to touch: content digests of the project's
    files; size and modification time for files of LINK_BYTES or more (hashing
    a data set twice would cost more than the runs); FIFOs, sockets and devices
    are left out (opening a FIFO blocks)."""
    digests = {}
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        for name in filenames:
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
                if stat.S_ISLNK(info.st_mode):
                    digests[path] = "link:" + os.readlink(path)
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                if info.st_size >= LINK_BYTES:
                    digests[path] = f"stat:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"
                    continue
                digest = hashlib.sha256()
                with open(path, "rb") as handle:
                    for chunk in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(chunk)
                digests[path] = digest.hexdigest()
            except OSError:
                continue
    return digests


# -- the host without torch ---------------------------------------------------------------------


def _host_profile() -> tuple[str, str, Optional[object], str]:
    """(profile, words, energy counter, energy source) from NVML or the CPUs."""
    try:
        nvml = Nvml()
        name = nvml.names()[0]
        return profile_for_cuda_name(name), f"cuda: {name}", nvml, "nvml"
    except (NvmlUnavailable, Exception):  # noqa: BLE001 - no GPU, no driver, no pynvml
        pass
    cpus = usable_cpus()
    rapl = Rapl.open()
    profile = cpu_profile_key(cpus)
    return profile, f"cpu: {cpus} usable CPUs (profile {profile})", rapl, "rapl" if rapl else "none"


# -- the mode ------------------------------------------------------------------------------------


def run_mode(
    command: str,
    cwd: str,
    paths: Sequence[str],
    codes: Optional[Sequence[str]],
    repeats: int,
    timeout: float,
    tolerance: float,
    unsafe: bool,
    config_file: Optional[Path],
    progress: Callable = None,
) -> list[dict]:
    fix_paths = import_fixer()
    root = Path(cwd).resolve()
    before_digest = fingerprint(root)
    profile, words, energy, source = _host_profile()
    workdir = Path(tempfile.mkdtemp(prefix="greenops-run-"))
    try:
        variants = _prepare(root, workdir, paths, codes, unsafe, config_file, profile, fix_paths)
        records = _measure(
            command, root, variants, repeats, timeout, tolerance, words, profile, energy, source, progress
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if energy is not None and hasattr(energy, "close"):
            energy.close()
    if fingerprint(root) != before_digest:
        records.append(_warning_record(command, root))
    return records


class Variant:
    def __init__(
        self, name: str, directory: Path, findings: list = (), label: str = "", notes: Sequence[str] = ()
    ) -> None:
        self.name, self.directory, self.findings, self.label = name, directory, list(findings), label
        self.notes = list(notes)  # about the copies (links made, files skipped)


def _prepare(root, workdir, paths, codes, unsafe, config_file, profile, fix_paths) -> list[Variant]:
    before_dir = workdir / "before" / root.name
    after_dir = workdir / "after" / root.name
    copied = copy_project(root, before_dir)
    copy_project(root, after_dir)

    def inside(directory: Path) -> list[str]:
        if not paths:
            return [str(directory)]
        mapped = []
        for path in paths:
            relative = os.path.relpath(os.path.abspath(path), root)
            if relative.startswith(".."):
                raise RunError(f"{path} is outside the project directory {root}")
            mapped.append(str(directory / relative))
        return mapped

    config, rules, _ = load_project([str(after_dir)], config_file, codes)
    found = collect_findings(inside(after_dir), config, rules, profile)
    if not found.findings:
        raise RunError("no findings in the project: nothing to fix and compare")
    fix_paths(found.files, found.config, rules, unsafe)
    remaining = collect_findings(inside(after_dir), config, rules, profile).findings
    fixed_groups = _fixed(found.findings, remaining, after_dir)
    if not fixed_groups:
        hint = "" if unsafe else " (only safe fixes were applied; drop --safe-fixes-only to apply unsafe ones)"
        raise RunError(f"the fixer changed none of the {len(found.findings)} findings{hint}: nothing to compare")
    fixed = [(relative, f) for (relative, _), group in sorted(fixed_groups.items()) for f in group]
    variants = [
        Variant("before", before_dir, label="as it is", notes=copied.notes(root)),
        Variant("after", after_dir, fixed, "all fixes applied"),
    ]
    if len(fixed_groups) > 1:
        # One more copy per (file, rule), with only that fix, to attribute the saving.
        for number, ((relative, code), group) in enumerate(sorted(fixed_groups.items()), start=1):
            directory = workdir / f"fix{number}" / root.name
            copy_project(root, directory)
            fix_paths([str(directory / relative)], config.with_overrides(root=directory), {code: rules[code]}, unsafe)
            variants.append(
                Variant(f"fix{number}", directory, [(relative, f) for f in group], f"only {code} in {relative}")
            )
    return variants


def _fixed(before: list, after: list, directory: Path) -> dict:
    """(relative path, code) -> the findings that the fix removed (by count)."""
    remaining = Counter((os.path.relpath(f.path, directory), f.code) for f in after)
    groups: dict = {}
    for finding in before:
        key = (os.path.relpath(finding.path, directory), finding.code)
        groups.setdefault(key, []).append(finding)
    fixed = {}
    for key, group in groups.items():
        gone = len(group) - remaining.get(key, 0)
        if gone > 0:
            fixed[key] = group if gone == len(group) else group[:gone]
    return fixed


def _measure(
    command, root, variants, repeats, timeout, tolerance, words, profile, energy, source, progress
) -> list[dict]:
    names = [v.name for v in variants]
    by_name = {v.name: v for v in variants}
    samples: dict[str, dict[str, list[float]]] = {n: {"wall": [], "cpu": [], "maxrss": [], "joules": []} for n in names}
    sequence = order(names, repeats)
    bar = progress(len(sequence), "running") if progress else None
    monitor = LoadMonitor(cpus=usable_cpus()).start()
    logs = Path(tempfile.mkdtemp(prefix="greenops-run-logs-"))
    try:
        for index, name in enumerate(sequence):
            variant = by_name[name]
            env = dict(os.environ, GREENOPS_PROBE_VARIANT=name)
            log = logs / f"{index}-{name}.log"
            start = energy.read() if energy is not None else None
            done = run_command(command, str(variant.directory), timeout, env=env, log_path=str(log))
            joules = energy.joules(start, energy.read()) if energy is not None else None
            if bar is not None:
                bar.tick()
            if done.timed_out:
                raise RunError(
                    f"the command ran past --timeout {timeout:g} s in the {name!r} variant and was stopped "
                    f"with its {done.stopped} process(es): {command}"
                )
            if done.returncode != 0:
                tail = _tail(log)
                raise RunError(
                    f"the command failed with exit code {done.returncode} in the {name!r} variant: {command}\n{tail}"
                )
            samples[name]["wall"].append(done.wall_s)
            samples[name]["cpu"].append(done.cpu_s)
            samples[name]["maxrss"].append(done.maxrss_bytes)
            if joules is not None:
                samples[name]["joules"].append(joules)
    finally:
        if bar is not None:
            bar.close()
        shutil.rmtree(logs, ignore_errors=True)
    load = monitor.stop()
    context = {
        "load": load,
        "words": words,
        "profile": profile,
        "source": source,
        "tolerance": tolerance,
        "command": command,
        "order": " ".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ"[names.index(n)] for n in sequence),
        "root": root,
    }
    records = [_record(samples["before"], samples["after"], None, context, "all fixes")]
    records[0]["notes"].extend(variants[0].notes)
    separate = len(variants) > 2
    for variant in variants[1:]:
        if variant.name == "after" and separate:
            continue
        for relative, finding in variant.findings:
            records.append(
                _record(
                    samples["before"],
                    samples[variant.name],
                    finding,
                    context,
                    variant.label,
                    len(variant.findings),
                    relative,
                )
            )
    return records


def _tail(path: Path, limit: int = 1500) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-limit:].rstrip()
    except OSError:
        return ""


def _record(
    before: dict, after: dict, finding, context: dict, label: str, together: int = 1, relative: str = ""
) -> dict:
    load = context["load"]
    foreign = load.get("foreign_load")
    floor = stats.noise_floor(foreign)
    # Wall time is what the user waits for; beside a neighbour that keeps more
    # than half the machine busy it says nothing, and CPU time (the work done,
    # children included) is the better witness.
    busy = foreign is not None and foreign > stats.WALL_FOREIGN_LIMIT
    on_cpu = get_hardware(context["profile"]).kind == "cpu"  # on a GPU host CPU time misses the GPU's work
    clock = "cpu" if busy and on_cpu else "wall"
    other = "wall" if clock == "cpu" else "cpu"
    a, b = [[v] for v in before[clock]], [[v] for v in after[clock]]
    ratio = stats.ratio_interval(a, b)
    other_ratio = stats.ratio_interval([[v] for v in before[other]], [[v] for v in after[other]], resamples=1000)
    noise = max(stats.iqr_ratio(before[clock]), stats.iqr_ratio(after[clock]))
    estimate = finding.estimate if finding is not None else None
    claim = stats.Claim("ratio", floor * 1.001, math.inf, "x", "the fixed run should be measurably faster")
    notes = []
    if clock == "cpu":
        notes.append(f"judged on CPU time: the host was too busy for wall time (foreign load {foreign:.2f})")
    problem = None
    if min(len(before[clock]), len(after[clock])) < 2:
        # One run each has no spread: a no-op's noise would read as a saving.
        problem = "one run per variant cannot confirm anything (no spread to judge the noise); use --repeats 2 or more"
    elif busy and not on_cpu:
        problem = (
            f"host too busy for a wall-clock measurement: foreign load {foreign:.2f} > {stats.WALL_FOREIGN_LIMIT:g}"
        )
    verdict = stats.decide(ratio, claim, floor=floor, tolerance=context["tolerance"], noise=noise, problem=problem)
    if finding is not None:
        verdict = against_estimate(verdict, ratio, estimate, floor, context["tolerance"])
    median = lambda values: stats.median(values) if values else None  # noqa: E731
    root = context["root"]
    record = {
        "path": str(root / relative) if finding else str(root),
        "line": finding.line if finding else None,
        "column": finding.column if finding else None,
        "code": finding.code if finding else "RUN",
        "name": finding.name if finding else "whole run",
        "message": finding.message if finding else "",
        "mode": "run",
        "command": context["command"],
        "probe": f"the command as it is vs {label}"
        + (f" ({together} findings fixed together)" if together > 1 else ""),
        "sized": "run",
        "sizes": "the user's own command, on temporary copies of the project",
        "variants": {"before": "as it is", "after": label},
        "hardware": context["profile"],
        "device": context["words"],
        "estimate": estimate.to_json() if estimate else None,
        "claim": claim.to_json(),
        "measured": {
            "metric": "time_ratio",
            "unit": "x",
            **ratio.to_json(),
            "clock": clock,
            "per": "run",
            f"{other}_ratio": other_ratio.to_json(),
        },
        "seconds": {"before": median(before[clock]), "after": median(after[clock]), "clock": clock, "per": "run"},
        "cpu_seconds": {"before": median(before["cpu"]), "after": median(after["cpu"])},
        "wall_seconds": {"before": median(before["wall"]), "after": median(after["wall"])},
        "bytes": {"before": {"maxrss": median(before["maxrss"])}, "after": {"maxrss": median(after["maxrss"])}},
        "joules": {"before": median(before["joules"]), "after": median(after["joules"])},
        "energy_source": context["source"] if before["joules"] else "none",
        "energy_note": "RAPL package counters cover the whole machine" if context["source"] == "rapl" else "",
        "energy_estimated": None,
        "threads": int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS", "").isdigit() else "default",
        "foreign_load": foreign,
        "steal_s": load.get("steal_s"),
        "noise_floor": floor,
        "noise_iqr": round(noise, 4),
        "tolerance": context["tolerance"],
        "runs": {"before": len(before["wall"]), "after": len(after["wall"])},
        "order": context["order"],
        "extras": [{"label": f"{'CPU' if other == 'cpu' else 'wall'} time ratio", **other_ratio.to_json()}],
        "notes": notes,
        **verdict.to_json(),
        "timed_out": False,
    }
    return record


def against_estimate(
    verdict: stats.Verdict, ratio: stats.Interval, estimate, floor: float, tolerance: float
) -> stats.Verdict:
    """A per-finding `--run` verdict: the whole run's measured saving judged
    against the finding's own claim. A time estimate is confirmed only where
    the interval meets it; a smaller saving says the estimate was not checked
    at this scale (the rest of the run is unchanged), never "confirmed"."""
    saving = f"saving measured: {ratio.median:.3g}x [{ratio.low:.3g}, {ratio.high:.3g}] for the whole run"
    if verdict.verdict == stats.REFUTED and "no measurable saving" in verdict.reason and estimate is not None:
        return stats.Verdict(
            stats.INCONCLUSIVE,
            f"no measurable saving at the scale of the whole run (below the noise floor {floor:g}x); "
            "the estimate is of the affected work and is not checked at this scale",
            verdict.band,
        )
    if verdict.verdict != stats.CONFIRMED or estimate is None:
        return verdict
    if estimate.metric == "repeated_work":
        share = 1 - 1 / ratio.median if ratio.median > 0 else 0.0
        return stats.Verdict(
            stats.CONFIRMED,
            f"{saving}: the repeated work took {share:.0%} of the run's time",
            verdict.band,
        )
    if estimate.metric != "time_factor":
        return stats.Verdict(
            stats.INCONCLUSIVE,
            f"{saving}; the estimate is of {estimate.metric.replace('_', ' ')}, not time: not checked by this measurement",
            verdict.band,
        )
    claim = stats.Claim("time_factor", estimate.low, estimate.high, "x", estimate.basis)
    band = stats.claim_band(claim, floor, tolerance)
    span = f"{estimate.low:g}" if estimate.low == estimate.high else f"{estimate.low:g}-{estimate.high:g}"
    if ratio.low > band[1]:
        return stats.Verdict(
            stats.REFUTED,
            f"larger than estimated: {saving}, above the estimate's accepted range "
            f"{band[0]:.3g}-{band[1]:.3g}x; the waste is real, the estimate too cautious here",
            band,
        )
    if ratio.high < band[0]:
        return stats.Verdict(
            stats.INCONCLUSIVE,
            f"{saving}; the estimate ({span}x of the affected work) is not checked at this scale: the rest of the "
            "run is unchanged",
            band,
        )
    return stats.Verdict(
        stats.CONFIRMED, f"{saving}, within the estimate's accepted range {band[0]:.3g}-{band[1]:.3g}x", band
    )


def _warning_record(command: str, root: Path) -> dict:
    return {
        "path": str(root),
        "line": None,
        "column": None,
        "code": "RUN",
        "name": "project changed",
        "message": "",
        "mode": "run",
        "command": command,
        "probe": "check of the project's files",
        "sized": "run",
        "sizes": "",
        "variants": {},
        "hardware": None,
        "device": None,
        "estimate": None,
        "claim": None,
        "measured": None,
        "seconds": {},
        "cpu_seconds": {},
        "wall_seconds": {},
        "bytes": {"before": {}, "after": {}},
        "joules": {},
        "energy_source": "none",
        "threads": None,
        "foreign_load": None,
        "runs": {},
        "extras": [],
        "notes": [
            "the command changed files in the project directory although it ran on copies: it writes to absolute paths"
        ],
        "verdict": stats.INCONCLUSIVE,
        "reason": "the project changed during the probe",
        "band": None,
        "timed_out": False,
    }

"""The machine a run measured: CPU, cores, threads, RAM, GPU, OS and library versions, and how busy it was.

Every bench run folder keeps this block (``system.json``) and ``summary.md`` starts with it, because a figure
means nothing without the machine it came from, nor without the other work it did meanwhile (``LoadWatch``:
the load average and the CPU other processes took, before and during a run). Library versions come from
package metadata, so nothing heavy is imported; llama.cpp's build line comes from llama-cpp-python only when it
is installed.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import platform
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LIBRARIES = ("torch", "transformers", "llama-cpp-python")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def physical_cores() -> int:
    """Cores as llama.cpp counts them for decode (``common_cpu_get_num_math``): one per distinct set of
    thread siblings, so SMT twins count once; at most the CPUs this process may run on."""
    siblings: set[str] = set()
    for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology/thread_siblings"):
        try:
            siblings.add(path.read_text().strip())
        except OSError:
            continue
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not siblings:
        import psutil

        return max(1, min(psutil.cpu_count(logical=False) or usable, usable))
    return max(1, min(len(siblings), usable))


def gpu() -> dict[str, str] | None:
    """The first NVIDIA GPU and its driver, through NVML when it is installed; None on a CPU machine."""
    if importlib.util.find_spec("pynvml") is None:
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
        driver = pynvml.nvmlSystemGetDriverVersion()
    except Exception:  # no driver or no device
        return None
    return {"name": _text(name), "driver": _text(driver)}


def _text(value: bytes | str) -> str:
    """NVML returns bytes in older bindings and str in newer ones."""
    return value.decode() if isinstance(value, bytes) else str(value)


def llama_cpp_build() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    try:
        # by name: a plain import here would make every importer of the summary (the UI too) depend on llama_cpp
        llama_cpp = importlib.import_module("llama_cpp")
        return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    except Exception:  # an unusable build: say nothing rather than fail the run
        return None


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def system_block() -> dict[str, Any]:
    """What ``system.json`` holds; ``threads`` maps each in-process model to the CPU threads it loaded with
    (filled in as the models load: runtime/runfolder.py's ``record_threads``)."""
    import psutil

    return {
        "cpu": cpu_model(),
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "threads": {},
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": gpu(),
        "os": platform.platform(),
        "python": platform.python_version(),
        **{name: version(name) for name in LIBRARIES},
        "llama_cpp_build": llama_cpp_build(),
    }


def _threads_text(entry: Any) -> str:
    """One model's threads: decode and prompt counts and why (older runs kept one count)."""
    if not isinstance(entry, dict):
        return str(entry)
    return f"decode {entry.get('decode')}, prompt {entry.get('prompt')} ({entry.get('why')})"


def describe(block: dict[str, Any]) -> list[str]:
    """The block as Markdown list items, for summary.md."""
    gpu_text = f"{block['gpu']['name']} (driver {block['gpu']['driver']})" if block.get("gpu") else "none"
    threads = "; ".join(f"{m}: {_threads_text(n)}" for m, n in (block.get("threads") or {}).items()) or "—"
    versions = ", ".join(f"{name} {block.get(name) or '—'}" for name in LIBRARIES)
    lines = [
        f"- CPU: {block.get('cpu')}, {block.get('physical_cores')} physical cores, {block.get('logical_cpus')} "
        f"logical CPUs; RAM {block.get('ram_gb')} GB; GPU: {gpu_text}",
        f"- threads used: {threads}",
        f"- OS: {block.get('os')}; Python {block.get('python')}; {versions}",
    ]
    if block.get("llama_cpp_build"):
        lines.append(f"- llama.cpp build: {block['llama_cpp_build']}")
    for n, load in enumerate(block.get("load") or [], 1):
        lines.append(f"- machine load{f' (session {n})' if len(block['load']) > 1 else ''}: {load_line(load)}")
    return lines


# ---- how busy the machine was ------------------------------------------------------------------------

BUSY_CORES = 1.0  # other processes took more than a core's worth: "busy machine"
MIN_BEFORE_S = 0.25  # the shortest look at the machine before a run starts


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds spent so far: by the whole machine (every CPU's non-idle time, steal left out), by this process
    (its threads and waited-for children) and by the processes a run leaves out (a local server it measures)."""

    at: float  # time.monotonic()
    machine_s: float
    own_s: float
    excluded_s: float


def _process_cpu_s(process) -> float:
    times = process.cpu_times()
    return times.user + times.system + getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0)


def cpu_snapshot(exclude: Iterable[int] = ()) -> CpuSnapshot:
    import psutil

    machine = psutil.cpu_times()
    busy = machine.user + machine.nice + machine.system + getattr(machine, "irq", 0.0) + \
        getattr(machine, "softirq", 0.0)
    excluded = 0.0
    for pid in exclude:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            excluded += sum(_process_cpu_s(p) for p in [process, *process.children(recursive=True)])
    return CpuSnapshot(time.monotonic(), busy, _process_cpu_s(psutil.Process()), excluded)


def others_cores(before: CpuSnapshot, after: CpuSnapshot) -> float | None:
    """The cores' worth of CPU that other processes took between two snapshots (0 at least); None over no time."""
    span = after.at - before.at
    if span <= 0:
        return None
    other = (after.machine_s - before.machine_s) - (after.own_s - before.own_s) \
        - (after.excluded_s - before.excluded_s)
    return max(other, 0.0) / span


def load_figures(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, Any]:
    """One window's figures, as system.json and session logs keep them."""
    cores = others_cores(before, after)
    return {"load_avg_1m": round(os.getloadavg()[0], 2), "others_cores": None if cores is None else round(cores, 2),
            "window_s": round(after.at - before.at, 2)}


def local_server_pids(sources: Iterable[str]) -> list[int]:
    """The processes listening on this machine for the loopback URLs among ``sources`` (HTTP models served
    here): their work is the measurement, not other work. Empty where the system will not say."""
    ports = set()
    for source in sources:
        parts = urlsplit(source)
        if parts.scheme in ("http", "https") and parts.hostname in ("127.0.0.1", "localhost", "::1"):
            with contextlib.suppress(ValueError):
                ports.add(parts.port or (443 if parts.scheme == "https" else 80))
    if not ports:
        return []
    import psutil

    try:
        listening = psutil.net_connections("inet")
    except (psutil.Error, OSError):
        return []
    return sorted({c.pid for c in listening if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports
                   and c.pid is not None and c.pid != os.getpid()})


class LoadWatch:
    """The machine's other work around a run: made when the wait before it begins, ``started()`` when the run
    does (at least MIN_BEFORE_S after, waiting out the rest), ``finished()`` when it ends; ``record()`` is what
    system.json's ``load`` and a session log's first turn keep."""

    def __init__(self, exclude: Iterable[int] = ()) -> None:
        self.exclude = list(exclude)
        self.first = cpu_snapshot(self.exclude)
        self.start: CpuSnapshot | None = None
        self.end: CpuSnapshot | None = None

    @classmethod
    def for_models(cls, specs: Iterable[Any]) -> LoadWatch:
        """A watch that leaves out the local servers of these ModelSpecs' HTTP models."""
        return cls(local_server_pids(spec.source for spec in specs if spec.backend == "http"))

    def started(self) -> None:
        wait = MIN_BEFORE_S - (time.monotonic() - self.first.at)
        if wait > 0:
            time.sleep(wait)
        self.start = cpu_snapshot(self.exclude)

    def finished(self) -> None:
        self.end = cpu_snapshot(self.exclude)

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cores": os.cpu_count(), "excluded_pids": self.exclude}
        if self.start is not None:
            out["before"] = load_figures(self.first, self.start)
            if self.end is not None:
                out["during"] = load_figures(self.start, self.end)
        out["busy"] = busy(out)
        return out


def busy(load: dict[str, Any] | None) -> bool:
    """Whether other work took more than a core's worth before or during the run."""
    if not load:
        return False
    return any(((load.get(window) or {}).get("others_cores") or 0) > BUSY_CORES for window in ("before", "during"))


def busy_note(load: dict[str, Any] | None) -> str:
    """"" on a quiet machine, else the sentence every view prints beside the figures."""
    if not busy(load):
        return ""
    assert load is not None
    cores = max((load.get(w) or {}).get("others_cores") or 0 for w in ("before", "during"))
    return (f"busy machine: other processes took {cores:.1f} cores of {load.get('cores')} around this run, so its "
            "figures were taken on a busy machine and are slower than the machine's own")


def run_busy_note(block: dict[str, Any] | None) -> str:
    """A run folder's busy-machine sentence (its system.json: the first of its sessions that was busy), or ""."""
    return next((note for load in (block or {}).get("load") or [] if (note := busy_note(load))), "")


def load_line(load: dict[str, Any]) -> str:
    """One line: the load average and other processes' CPU before and during, and "busy machine" when they took
    more than a core (the figures are then slower than the machine's own)."""
    parts = []
    for window in ("before", "during"):
        figures = load.get(window)
        if figures:
            cores = figures.get("others_cores")
            parts.append(f"{window}: load average {figures.get('load_avg_1m')}, other processes "
                         f"{'—' if cores is None else f'{cores:.2f}'} cores")
    verdict = ("busy machine: other work took more than a core, so these figures are slower than this machine's "
               "own" if busy(load) else "quiet machine")
    return f"{'; '.join(parts) or 'not measured'} ({verdict})"

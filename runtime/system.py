"""The machine a run measured: CPU, cores, threads, RAM, GPU, OS and library versions.

Every bench run folder keeps this block (``system.json``) and ``summary.md`` starts with it, because a
figure means nothing without the machine it came from. Library versions come from package metadata, so
nothing heavy is imported; llama.cpp's build line comes from llama-cpp-python only when it is installed.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
from pathlib import Path
from typing import Any

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


def passive_openmp() -> None:
    """Call before the first ``import llama_cpp``: ggml's OpenMP threads then sleep between operations
    instead of spinning. With one thread per core, spinning threads on a machine that is also busy with
    other work starve each other (measured on 2 vCPUs under load: SmolLM2 decode 1 tok/s spinning, 60 tok/s
    passive). A value the user exported wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def llama_cpp_build() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return None
    passive_openmp()
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


def system_block(threads: dict[str, int] | None = None) -> dict[str, Any]:
    """What ``system.json`` holds; ``threads`` maps each model to the CPU threads it runs with."""
    import psutil

    return {
        "cpu": cpu_model(),
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "threads": threads or {},
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": gpu(),
        "os": platform.platform(),
        "python": platform.python_version(),
        **{name: version(name) for name in LIBRARIES},
        "llama_cpp_build": llama_cpp_build(),
    }


def describe(block: dict[str, Any]) -> list[str]:
    """The block as Markdown list items, for summary.md."""
    gpu_text = f"{block['gpu']['name']} (driver {block['gpu']['driver']})" if block.get("gpu") else "none"
    threads = ", ".join(f"{m}: {n}" for m, n in (block.get("threads") or {}).items()) or "—"
    versions = ", ".join(f"{name} {block.get(name) or '—'}" for name in LIBRARIES)
    lines = [
        f"- CPU: {block.get('cpu')}, {block.get('physical_cores')} physical cores, {block.get('logical_cpus')} "
        f"logical CPUs; RAM {block.get('ram_gb')} GB; GPU: {gpu_text}",
        f"- threads used: {threads}",
        f"- OS: {block.get('os')}; Python {block.get('python')}; {versions}",
    ]
    if block.get("llama_cpp_build"):
        lines.append(f"- llama.cpp build: {block['llama_cpp_build']}")
    return lines

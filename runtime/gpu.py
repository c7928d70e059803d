"""GPU memory and energy around a turn, where CUDA (and NVML) exist; nothing at all on CPU.

Figures go into ``Done.extra`` and from there into the metrics: ``gpu_peak_mem_mb`` (torch's allocator peak
during the turn, transformers), ``gpu_process_mem_mb`` (what NVML says this process holds on the card at the
end of the turn, llama.cpp, which has no allocator peak to read), ``energy_j`` (the card's energy counter)
and ``gpu_shared`` (another measured turn ran on the GPU at the same time, so the figures are the card's, not
this model's alone). On a machine without a GPU they are absent (None), never zero.

The pure functions here take what the probes read as arguments, so the logic is tested on a CPU machine.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from .events import DoneExtra

MIB = 2**20
GPU_ERRORS_HELP = "docs/INSTALL.md, section 'On a GPU machine'"


def _bare_uuid(uuid: str) -> str:
    """NVML writes ``GPU-1a2b...``, torch writes ``1a2b...``: compare them without the prefix."""
    uuid = uuid.strip().lower()
    return uuid[4:] if uuid.startswith(("gpu-", "mig-")) else uuid


def nvml_index(nvml_uuids: Sequence[str], cuda_uuid: str | None = None, visible: str | None = None,
               device_order: str | None = None) -> int | None:
    """The NVML index of CUDA device 0 (the card torch and llama.cpp use), or None when it cannot be told.

    NVML numbers cards in PCI order whatever ``CUDA_VISIBLE_DEVICES`` says, so its index 0 is not CUDA's
    device 0: match the CUDA device's UUID (from torch), else a UUID in ``CUDA_VISIBLE_DEVICES`` (CUDA accepts
    a unique prefix), else the only card, else a listed index when ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` makes
    CUDA's order NVML's.
    """
    bare = [_bare_uuid(u) for u in nvml_uuids]
    if cuda_uuid:
        wanted = _bare_uuid(cuda_uuid)
        return bare.index(wanted) if wanted in bare else None
    first = (visible or "").split(",")[0].strip()
    if first and not first.isdigit():
        matches = [i for i, u in enumerate(bare) if u.startswith(_bare_uuid(first))]
        return matches[0] if len(matches) == 1 else None
    if len(bare) == 1:
        return 0
    if device_order == "PCI_BUS_ID":
        index = int(first or 0)
        return index if index < len(bare) else None
    return None


def process_memory_mb(processes: Iterable[Any], pid: int) -> float | None:
    """What ``pid`` holds on the card per NVML's process list; None when NVML does not list it (another PID
    namespace, or the driver hides per-process figures)."""
    used = [p.usedGpuMemory for p in processes if p.pid == pid and p.usedGpuMemory is not None]
    return sum(used) / MIB if used else None


def load_delta_mb(before_mb: float | None, after_mb: float | None) -> float | None:
    """Memory one model's load added: other models already on the GPU are not charged to it."""
    if before_mb is None or after_mb is None:
        return None
    return max(after_mb - before_mb, 0.0)


def memory_bandwidth_tb_s(memory_clock_mhz: float, bus_width_bits: int) -> float:
    """Peak memory bandwidth from the card's own memory clock and bus width (double data rate), so an H100
    PCIe (2.0 TB/s), SXM (3.35) and NVL (3.9) each get their own figure."""
    return memory_clock_mhz * 1e6 * 2 * bus_width_bits / 8 / 1e12


def out_of_memory_message(name: str, free_mb: float | None, total_mb: float | None, held_mb: float | None) -> str:
    """The problem half of a CUDA out-of-memory error: what was free before the load, and what this process's
    other models already held."""
    parts = []
    if free_mb is not None and total_mb:
        parts.append(f"{free_mb:.0f} MiB of {total_mb:.0f} MiB were free")
    if held_mb:
        parts.append(f"other models loaded in taskclock hold {held_mb:.0f} MiB")
    detail = f" ({'; '.join(parts)})" if parts else ""
    return f"the GPU ran out of memory loading {name}{detail}"


def _torch_cuda_ready() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def _nvml():
    """The pynvml module, initialised, or None (not installed, no driver)."""
    if importlib.util.find_spec("pynvml") is None:
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no driver, no device: NVML figures are simply absent
        return None


def nvml_gpu_count() -> int:
    """How many cards the NVIDIA driver sees (0 without a driver): asks NVML, never torch."""
    nvml = _nvml()
    if nvml is None:
        return 0
    try:
        return nvml.nvmlDeviceGetCount()
    except Exception:  # a driver that cannot count its cards sees none usable
        return 0


def _nvml_handle():
    """NVML's handle for CUDA device 0, found by UUID (see ``nvml_index``), or None."""
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        cuda_uuid = None
        if _torch_cuda_ready():
            import torch

            cuda_uuid = str(torch.cuda.get_device_properties(0).uuid)
        index = nvml_index([nvml.nvmlDeviceGetUUID(h) for h in handles], cuda_uuid,
                           os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("CUDA_DEVICE_ORDER"))
    except Exception:  # a driver without these queries: no NVML figures rather than the wrong card's
        return None
    return handles[index] if index is not None else None


def card_bandwidth() -> tuple[str, float] | None:
    """(card name, peak memory bandwidth in TB/s) of CUDA device 0 from NVML, or None without it."""
    handle = _nvml_handle()
    if handle is None:
        return None
    import pynvml

    try:
        clock = pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM)
        width = pynvml.nvmlDeviceGetMemoryBusWidth(handle)
        return pynvml.nvmlDeviceGetName(handle), memory_bandwidth_tb_s(clock, width)
    except Exception:  # a card that does not report its memory clock: no floor rather than a guessed one
        return None


_active: set[TurnProbe] = set()
_active_lock = threading.Lock()


class TurnProbe:
    """Call ``start()`` before a turn and ``finish()`` after; ``finish()`` returns the figures found.

    Probes that run at the same time (concurrent compare) see each other: none resets torch's peak while
    another turn runs, and every one of them marks its figures ``gpu_shared``.
    """

    def __init__(self, uses_torch_cuda: bool, uses_gpu: bool) -> None:
        self.torch_cuda = uses_torch_cuda
        self.nvml = _nvml_handle() if uses_gpu else None
        self.shared = False
        self._energy_mj: int | None = None

    def _measures(self) -> bool:
        return self.torch_cuda or self.nvml is not None

    def _energy(self) -> int | None:
        if self.nvml is None:
            return None
        try:
            import pynvml

            return pynvml.nvmlDeviceGetTotalEnergyConsumption(self.nvml)
        except Exception:  # older GPUs expose no energy counter
            return None

    def start(self) -> None:
        if not self._measures():
            return
        with _active_lock:
            self.shared = bool(_active)
            for other in _active:
                other.shared = True
            _active.add(self)
        if self.torch_cuda and not self.shared:
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._energy_mj = self._energy()

    def finish(self) -> DoneExtra:
        if not self._measures():
            return DoneExtra()
        with _active_lock:
            _active.discard(self)
        figures = DoneExtra()
        if self.torch_cuda:
            import torch

            figures["gpu_peak_mem_mb"] = torch.cuda.max_memory_allocated() / MIB
        elif self.nvml is not None:
            import pynvml

            try:
                used = process_memory_mb(pynvml.nvmlDeviceGetComputeRunningProcesses(self.nvml), os.getpid())
            except Exception:  # per-process figures not supported here
                used = None
            if used is not None:
                figures["gpu_process_mem_mb"] = used
        end = self._energy()
        if end is not None and self._energy_mj is not None:
            figures["energy_j"] = (end - self._energy_mj) / 1000
        if self.shared:
            figures["gpu_shared"] = True
        return figures


def allocated_mb(uses_torch_cuda: bool) -> float | None:
    """What torch's allocator holds on the GPU now, or None off CUDA."""
    if not uses_torch_cuda:
        return None
    import torch

    return torch.cuda.memory_allocated() / MIB


def free_memory_mb(uses_torch_cuda: bool) -> tuple[float | None, float | None]:
    """(free, total) MiB on the current CUDA device as the driver sees it, or (None, None) off CUDA."""
    if not uses_torch_cuda:
        return None, None
    import torch

    free, total = torch.cuda.mem_get_info()
    return free / MIB, total / MIB


def cuda_mismatch(gpus_seen: int, torch_version: str, torch_cuda: str | None, cuda_available: bool) -> str | None:
    """Why a GPU machine would silently run on the CPU, or None: the driver sees cards but torch cannot use
    them (a CPU wheel, or a CUDA wheel newer than the driver)."""
    if gpus_seen == 0 or cuda_available:
        return None
    if torch_cuda is None:
        return (f"NVML sees {gpus_seen} GPU(s) but torch {torch_version} is a CPU build; install the CUDA torch "
                f"({GPU_ERRORS_HELP})")
    return (f"NVML sees {gpus_seen} GPU(s) but torch {torch_version} (CUDA {torch_cuda}) cannot use them: the "
            f"driver is older than its CUDA, or the GPU is hidden (CUDA_VISIBLE_DEVICES); see {GPU_ERRORS_HELP}")


def check_torch_sees_gpus() -> str | None:
    """``cuda_mismatch`` for this machine; imports torch only where NVML sees a card."""
    gpus = nvml_gpu_count()
    if gpus == 0:
        return None
    import torch

    return cuda_mismatch(gpus, torch.__version__, torch.version.cuda, torch.cuda.is_available())

"""GPU memory and energy around a turn, where CUDA (and NVML) exist; nothing at all on CPU.

Figures go into ``Done.extra`` and from there into the metrics as ``gpu_peak_mem_mb`` and ``energy_j``;
on a machine without a GPU they are absent (None), never zero.
"""
from __future__ import annotations

import importlib.util

from .events import DoneExtra


def _nvml_handle():
    if importlib.util.find_spec("pynvml") is None:
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception:  # no driver, no device: NVML figures are simply absent
        return None


class TurnProbe:
    """Call ``start()`` before a turn and ``finish()`` after; ``finish()`` returns the figures found."""

    def __init__(self, uses_torch_cuda: bool, uses_gpu: bool) -> None:
        self.torch_cuda = uses_torch_cuda
        self.nvml = _nvml_handle() if uses_gpu else None
        self._energy_mj: int | None = None

    def _energy(self) -> int | None:
        if self.nvml is None:
            return None
        try:
            import pynvml

            return pynvml.nvmlDeviceGetTotalEnergyConsumption(self.nvml)
        except Exception:  # older GPUs expose no energy counter
            return None

    def start(self) -> None:
        if self.torch_cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._energy_mj = self._energy()

    def finish(self) -> DoneExtra:
        figures = DoneExtra()
        if self.torch_cuda:
            import torch

            figures["gpu_peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
        elif self.nvml is not None:
            import pynvml

            figures["gpu_peak_mem_mb"] = pynvml.nvmlDeviceGetMemoryInfo(self.nvml).used / 2**20
        end = self._energy()
        if end is not None and self._energy_mj is not None:
            figures["energy_j"] = (end - self._energy_mj) / 1000
        return figures


def model_memory_mb(uses_torch_cuda: bool) -> float | None:
    """Memory the loaded model holds on the GPU (torch's allocator), or None off CUDA."""
    if not uses_torch_cuda:
        return None
    import torch

    return torch.cuda.memory_allocated() / 2**20

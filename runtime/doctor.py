"""What this machine's GPU stack can do, checked part by part, and the CPU threads a model runs with, for
`taskclock doctor`.

Each check says OK or why not, so a GPU machine that would silently run on the CPU (a CPU torch wheel, a
llama.cpp built without CUDA) is caught before the first measured turn. "absent" is normal on a CPU machine;
"problem" means a GPU is there but a part cannot use it.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
from dataclasses import dataclass

from .backend import ModelSpec, load_model
from .errors import TaskclockError
from .gpu import GPU_ERRORS_HELP, check_torch_sees_gpus, nvml_gpu_count
from .models import local_file
from .untrusted import safe_line


@dataclass(frozen=True)
class Check:
    name: str
    state: str  # "ok", "absent" (no GPU part here, fine on a CPU machine) or "problem"
    detail: str


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_torch() -> Check:
    import torch

    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check("torch", "ok", f"{torch.__version__}, CUDA {torch.version.cuda}: {names}")
    mismatch = check_torch_sees_gpus()
    if mismatch:
        return Check("torch", "problem", mismatch)
    if torch.version.cuda is None:
        return Check("torch", "absent", f"{torch.__version__}, a CPU build: transformers models run on the CPU "
                                        f"(CUDA torch: {GPU_ERRORS_HELP})")
    return Check("torch", "absent", f"{torch.__version__} (CUDA {torch.version.cuda}), no GPU here")


def check_nvml() -> Check:
    if importlib.util.find_spec("pynvml") is None:
        return Check("NVML", "absent", "nvidia-ml-py is not installed: no GPU memory or energy figures "
                                       "(pip install 'taskclock[gpu]')")
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return Check("NVML", "absent", f"no NVIDIA driver ({exc})")
    count = nvml_gpu_count()
    return Check("NVML", "ok" if count else "absent",
                 f"driver {pynvml.nvmlSystemGetDriverVersion()}, {count} GPU(s)")


def check_llamacpp() -> Check:
    version = _version("llama_cpp_python")
    if version is None:
        return Check("llama.cpp", "absent", "llama-cpp-python is not installed")
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        return Check("llama.cpp", "ok", f"llama-cpp-python {version} with GPU offload: all layers go on the GPU "
                                        "by default")
    state = "problem" if nvml_gpu_count() else "absent"
    return Check("llama.cpp", state, f"llama-cpp-python {version} was built without GPU offload: GGUF models run "
                                     f"on the CPU (CUDA build: {GPU_ERRORS_HELP})")


def check_bitsandbytes() -> Check:
    version = _version("bitsandbytes")
    if version is None:
        return Check("bitsandbytes", "absent", "not installed: no 8-/4-bit (pip install 'taskclock[quant]')")
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        from bitsandbytes import cextension  # it prints notes about optional kernels on import
    if cextension.BNB_BACKEND == "CUDA" and cextension.lib.compiled_with_cuda:
        return Check("bitsandbytes", "ok", f"{version}, CUDA kernels loaded")
    if cextension.BNB_BACKEND == "CUDA":
        return Check("bitsandbytes", "problem", f"{version}: torch has CUDA but bitsandbytes' CUDA library did "
                                                "not load")
    return Check("bitsandbytes", "absent", f"{version}, {cextension.BNB_BACKEND} backend: 8-/4-bit run on the CPU")


def checks() -> list[Check]:
    return [check() for check in (check_torch, check_nvml, check_llamacpp, check_bitsandbytes)]


def check_options(spec: ModelSpec) -> Check:
    """The options ``spec``'s backend declares (runtime/options.py), each with the value it runs with."""
    settings = spec.backend_options.settings()
    return Check("options", "ok", f"{spec.name} ({spec.backend}): {', '.join(settings) or 'none declared'}")


def check_threads(spec: ModelSpec) -> list[Check]:
    """The threads ``spec``'s model runs with and why (loading it measures them if nothing is cached), and for a
    GGUF the llama-server command line that runs it with the same threads."""
    if spec.backend == "http":
        return [Check("threads", "absent", f"{spec.name} runs on its server's own threads")]
    try:
        model = load_model(spec)
    except TaskclockError as exc:
        return [Check("threads", "absent", f"cannot load {spec.name} to choose its threads: {exc}")]
    model.close()
    choice = model.threads
    if choice is None:
        return [Check("threads", "absent", f"{spec.name} does not say which threads it runs with")]
    found = [Check("threads", "ok", f"{spec.name}: decode {choice.decode}, prompt {choice.prompt}: {choice.why}")]
    if spec.backend == "llamacpp":
        from .backends.llamacpp import server_threads

        line = " ".join(["llama-server", "-m", safe_line(local_file(spec)), *server_threads(choice)])
        found.append(Check("llama-server", "ok", f"{line} (the same threads)"))
    return found

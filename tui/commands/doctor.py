"""`taskclock doctor`: torch and its CUDA, NVML, llama.cpp GPU offload and bitsandbytes, each OK or why not."""
from __future__ import annotations

import argparse

MARKS = {"ok": "OK", "absent": "no", "problem": "PROBLEM"}


def add_parser(sub) -> None:
    sub.add_parser("doctor", help="check the GPU stack: torch/CUDA, NVML, llama.cpp offload, bitsandbytes",
                   description="Exits 1 when a GPU is present but a part cannot use it (a CPU torch wheel, a "
                               "llama.cpp built without CUDA); 'no' is normal on a CPU machine.")


def run(args: argparse.Namespace) -> int:
    import importlib

    from taskclock.runtime.untrusted import safe_line

    # Looked up by name, as runtime.backend.get_backend does for the backends: the checks import the engines
    # (torch, llama_cpp, bitsandbytes), which the UI never imports itself.
    found = importlib.import_module("taskclock.runtime.doctor").checks()
    width = max(len(check.name) for check in found)
    for check in found:
        print(f"{check.name:<{width}}  {MARKS[check.state]:<7}  {safe_line(check.detail)}")
    return 1 if any(check.state == "problem" for check in found) else 0

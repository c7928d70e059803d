"""`taskclock doctor`: torch and its CUDA, NVML, llama.cpp GPU offload and bitsandbytes, each OK or why not; then
a model's backend options, the CPU threads it runs with, why, and the llama-server command line for the same."""
from __future__ import annotations

import argparse

from . import common

MARKS = {"ok": "OK", "absent": "no", "problem": "PROBLEM"}


def add_parser(sub) -> None:
    p = sub.add_parser("doctor", help="check the GPU stack and the CPU threads a model runs with",
                       description="Exits 1 when a GPU is present but a part cannot use it (a CPU torch wheel, a "
                                   "llama.cpp built without CUDA); 'no' is normal on a CPU machine. Then loads "
                                   "the model (measuring its decode threads if none are cached) and prints the "
                                   "threads it runs with, why, and the llama-server command line for the same.")
    p.add_argument("--model", "-m", help="the model whose threads to show (default: the config's default model)")
    p.add_argument("--config", help="config TOML (default: $TASKCLOCK_CONFIG or the user config dir)")
    common.add_backend_options(p)
    p.add_argument("--reprobe", action="store_true",
                   help="forget every cached thread choice and measure again (after other work kept the CPU busy)")


def run(args: argparse.Namespace) -> int:
    import importlib

    from taskclock.runtime.config import load_config
    from taskclock.runtime.untrusted import safe_line

    config = load_config(args.config)
    spec = common.resolve_specs([args.model or config.defaults.model], args, config)[0]
    # Looked up by name, as runtime.backend.get_backend does for the backends: the checks import the engines
    # (torch, llama_cpp, bitsandbytes), which the UI never imports itself.
    doctor = importlib.import_module("taskclock.runtime.doctor")
    if args.reprobe:
        importlib.import_module("taskclock.runtime.threads").forget_all()
    found = doctor.checks()
    found.append(doctor.check_options(spec))
    common.status(f"loading {safe_line(spec.name)} ({spec.backend}) for its threads…")
    found += doctor.check_threads(spec)
    width = max(len(check.name) for check in found)
    for check in found:
        print(f"{check.name:<{width}}  {MARKS[check.state]:<7}  {safe_line(check.detail)}")
    return 1 if any(check.state == "problem" for check in found) else 0

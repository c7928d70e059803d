"""After `benchmarks/gpu_check.sh llamacpp` has built llama-cpp-python with CUDA: does taskclock's llama.cpp path use
the GPU? `taskclock doctor`, the `cuda and gpu_offload` tests, and decode with every layer offloaded on the GGUF
named by $TASKCLOCK_GGUF (else the SmolLM2 package's, where installed); written to OUT/llamacpp.txt.

    python benchmarks/gpu_llamacpp.py OUT
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    out = Path(sys.argv[1])
    lines = []
    for command in ([sys.executable, "-m", "taskclock", "doctor"],
                    [sys.executable, "-m", "pytest", "-q", "-rs", "-m", "cuda and gpu_offload", "tests/test_gpu.py",
                     "-p", "no:cacheprovider"]):
        proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=240)
        lines += [f"$ {' '.join(command[1:])}  (exit {proc.returncode})", proc.stdout.strip(),
                  proc.stderr.strip()[-2000:]]
    from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
    from taskclock.runtime.errors import TaskclockError
    from taskclock.runtime.models import local_file, resolve
    from taskclock.runtime.turn import run_turn

    try:
        gguf = Path(os.environ["TASKCLOCK_GGUF"]) if "TASKCLOCK_GGUF" in os.environ else local_file(resolve("smollm2"))
        model = load_model(ModelSpec("gpu-gguf", "llamacpp", str(gguf)))
        try:
            for _ in range(3):
                m = run_turn(model, [{"role": "user", "content": "Write a long story about a storm."}],
                             SamplingParams(max_tokens=128)).metrics
                lines.append(f"{gguf.name}: decode {m.decode_tps:.1f} tok/s, TTFT {m.ttft_s:.3f} s, GPU memory "
                             f"(process) {m.gpu_process_mem_mb} MiB, layers {model.llm.model_params.n_gpu_layers}")
        finally:
            model.close()
    except TaskclockError as exc:
        lines.append(f"no decode figure: {exc} (set TASKCLOCK_GGUF to a .gguf on this machine)")
    (out / "llamacpp.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

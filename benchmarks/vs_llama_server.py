"""In-process llama.cpp vs llama.cpp's own llama-server over HTTP: same GGUF, prompt and greedy settings.

Alternates the two paths round by round (the order flips every round), on a cold prompt (a new first line
each round, so nothing is reused) and on a cached prompt (the same prompt again, so both reuse its KV
prefix), and prints median decode tok/s and TTFT for both. Targets: in-process decode >= 0.95x the
server's, and TTFT within 10 ms of the server's on a cached prompt. Both use the same threads (`--threads`
for decode and prefill; default: taskclock's measured choice, runtime/threads.py, as `-t`/`-tb`).

    .venv/bin/python benchmarks/vs_llama_server.py [--model smollm2] [--tokens 128] [--rounds 5] [--threads T]
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

# Run as a script from the checkout: the imports below need this path first, hence their `noqa: E402`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import LlamaServer, rounds_parser  # noqa: E402

from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model  # noqa: E402
from taskclock.runtime.backends.llamacpp import server_threads  # noqa: E402
from taskclock.runtime.models import local_file, resolve  # noqa: E402
from taskclock.runtime.turn import run_turn  # noqa: E402

STORY = "Write a long story about a lighthouse keeper and a storm."
PATHS = ("in-process", "llama-server")
PROMPTS = ("cold", "cached")


def prompt(kind: str, round_no: int) -> list[dict[str, str]]:
    first = f"Story number {round_no}." if kind == "cold" else "Story."
    return [{"role": "user", "content": f"{first}\n{STORY}"}]


def main() -> None:
    parser = rounds_parser(__doc__)
    parser.set_defaults(tokens=128)
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for both (default: taskclock's measured choice)")
    args = parser.parse_args()
    spec = resolve(args.model).with_overrides(threads=args.threads or None)
    params = SamplingParams(max_tokens=args.tokens)
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {(p, k): [] for p in PATHS for k in PROMPTS}
    in_process = load_model(spec)
    assert in_process.threads is not None
    chosen = in_process.threads
    threads = f"decode {chosen.decode}, prompt {chosen.prompt}"
    with LlamaServer(local_file(spec), slots=1, threads=server_threads(chosen)) as url:
        models = {"in-process": in_process, "llama-server": load_model(ModelSpec("server", "http", url))}
        for model in models.values():  # untimed: warm caches, and put the cached prompt in place
            run_turn(model, prompt("cached", 0), params)
        for round_no in range(1, args.rounds + 1):
            order = PATHS if round_no % 2 else PATHS[::-1]
            for kind in PROMPTS:
                for path in order:
                    if kind == "cached":  # the other path's cold prompt ran in between on the in-process side
                        run_turn(models[path], prompt("cached", 0), SamplingParams(max_tokens=1))
                    m = run_turn(models[path], prompt(kind, round_no), params).metrics
                    figures[(path, kind)].append((m.decode_tps or 0.0, m.ttft_s or 0.0))
        for model in models.values():
            model.close()
    medians = {key: (statistics.median(d for d, _ in v), statistics.median(t for _, t in v))
               for key, v in figures.items()}
    ratio = medians[("in-process", "cached")][0] / medians[("llama-server", "cached")][0]
    ttft_gap_ms = (medians[("in-process", "cached")][1] - medians[("llama-server", "cached")][1]) * 1000
    if args.markdown:
        print("## In-process llama.cpp vs llama-server — `benchmarks/vs_llama_server.py`\n")
        print(f"{args.model}, greedy, {args.tokens} tokens, {args.rounds} alternating rounds, threads {threads} for "
              "both (llama-server `-np 1 -t D -tb P`, over HTTP on loopback). Medians:\n")
        print("| path | prompt | decode tok/s | TTFT |")
        print("|---|---|---|---|")
        for (path, kind), (decode, ttft) in medians.items():
            print(f"| {path} | {kind} | {decode:.1f} | {ttft * 1000:.1f} ms |")
        print(f"\nIn-process / server decode on the cached prompt: **{ratio:.3f}×** (target ≥ 0.95×); in-process "
              f"TTFT minus the server's on the cached prompt: **{ttft_gap_ms:+.1f} ms** (target within 10 ms).")
    else:
        for (path, kind), (decode, ttft) in medians.items():
            print(f"{path:>12} {kind:>6}: decode {decode:6.1f} tok/s, TTFT {ttft * 1000:6.1f} ms")
        print(f"decode ratio (cached) {ratio:.3f}x (target >= 0.95); TTFT gap (cached) {ttft_gap_ms:+.1f} ms "
              f"(target within 10 ms); threads {threads}")


if __name__ == "__main__":
    main()

"""Runtime overhead: llama-cpp-python's own streaming call vs taskclock's stream, same model, same process.

Alternates the two, 5 rounds each, greedy, same prompt and length, and prints decode TPS and TTFT for both
and their ratio. Target: taskclock >= 0.98x raw decode TPS.

    .venv/bin/python benchmarks/overhead.py [--model smollm2] [--tokens 200] [--rounds 5]
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

# Run as a script from the checkout: the imports below need this path first, hence their `noqa: E402`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import rounds_parser  # noqa: E402

from taskclock.runtime.backend import SamplingParams, load_model  # noqa: E402
from taskclock.runtime.models import resolve  # noqa: E402
from taskclock.runtime.turn import run_turn  # noqa: E402

PROMPT = [{"role": "user", "content": "Write a long story about a lighthouse keeper and a storm."}]


def raw_round(llm, tokens: int) -> tuple[float, float]:
    """llama-cpp-python's chat completion stream, timestamped in a tight loop."""
    submit = time.perf_counter_ns()
    stamps = []
    for chunk in llm.create_chat_completion(PROMPT, stream=True, max_tokens=tokens, temperature=0.0,
                                            top_k=1, repeat_penalty=1.0):
        if chunk["choices"][0]["delta"].get("content"):
            stamps.append(time.perf_counter_ns())
    decode = (len(stamps) - 1) * 1e9 / (stamps[-1] - stamps[0])
    return decode, (stamps[0] - submit) / 1e9


def taskclock_round(model, tokens: int) -> tuple[float, float]:
    m = run_turn(model, PROMPT, SamplingParams(max_tokens=tokens)).metrics
    return m.decode_tps, m.ttft_s


def main() -> None:
    args = rounds_parser(__doc__).parse_args()
    model = load_model(resolve(args.model))
    raw, ours = [], []
    taskclock_round(model, 16)  # warm both paths' caches once
    raw_round(model.llm, 16)
    for _ in range(args.rounds):
        raw.append(raw_round(model.llm, args.tokens))
        ours.append(taskclock_round(model, args.tokens))
    model.close()
    raw_tps, raw_ttft = (statistics.median(r[i] for r in raw) for i in (0, 1))
    our_tps, our_ttft = (statistics.median(r[i] for r in ours) for i in (0, 1))
    if args.markdown:
        print(f"## Runtime overhead — `benchmarks/overhead.py`\n\n{args.model} through llama.cpp, {args.tokens} "
              f"greedy tokens, {args.rounds} alternating rounds in one process (medians). Raw = llama-cpp-python's "
              "own `create_chat_completion(stream=True)` timestamped in a tight loop; taskclock = `run_turn` on the "
              "llama.cpp backend (low-level token loop). Both reuse llama.cpp's prompt cache, so TTFT is a "
              "cached-prefix figure.\n")
        print("| path | decode TPS | TTFT |\n|---|---|---|")
        print(f"| raw llama-cpp-python stream | {raw_tps:.1f} tok/s | {raw_ttft*1000:.1f} ms |")
        print(f"| taskclock stream | {our_tps:.1f} tok/s | {our_ttft*1000:.1f} ms |")
        print(f"| **ratio** | **{our_tps / raw_tps:.3f}** (target ≥ 0.98) | |")
        return
    print(f"model {args.model}, {args.tokens} tokens, {args.rounds} alternating rounds (medians)")
    print(f"raw llama-cpp-python stream: decode {raw_tps:7.1f} tok/s   TTFT {raw_ttft*1000:6.1f} ms")
    print(f"taskclock stream:            decode {our_tps:7.1f} tok/s   TTFT {our_ttft*1000:6.1f} ms")
    print(f"ratio taskclock/raw decode TPS: {our_tps / raw_tps:.3f} (target >= 0.98)")


if __name__ == "__main__":
    main()

"""CPU threads: prefill and decode tok/s at every thread count, through llama.cpp's own llama-bench, taskclock
in process and llama-server, for every offline model; and transformers' torch threads the same way.

For each GGUF model: `llama-bench -t 1,2,… -p P -n N` (llama.cpp's own figure at each count, prefill and decode on
the same count), taskclock's llama.cpp backend and llama-server (`-np 1`) at each count for both and at
taskclock's default (the measured decode count and all CPUs for prefill, runtime/threads.py), every
configuration loaded at once; each round runs one llama-bench repetition and then the others, alternating
(medians over rounds), so a machine that drifts during the run moves the yardstick too. Prompts start with a new salt
each round, so no prefix cache serves them. For transformers (smollm2-hf, fp32): torch threads at each count
and the default, bf16 at the default, and inter-op threads 1 against torch's default (each in a fresh process,
as torch fixes them at its first parallel work). Targets: default in-process decode >= 0.95x the best llama-bench
count's, prefill >= 0.95x the best llama-bench prefill.

    .venv/bin/python benchmarks/threads.py [--models smollm2,gemma3-270m,smollm2-hf] [--rounds 3] [--markdown]
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script from the checkout: the imports below need this path first, hence their `noqa: E402`.
sys.path.insert(0, str(ROOT))

from common import LlamaServer, engine_binary  # noqa: E402

from taskclock.runtime import system  # noqa: E402
from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model  # noqa: E402
from taskclock.runtime.backends.llamacpp import server_threads  # noqa: E402
from taskclock.runtime.models import local_file, resolve  # noqa: E402
from taskclock.runtime.sweep import filler_text  # noqa: E402
from taskclock.runtime.threads import candidate_counts, usable_cpus  # noqa: E402
from taskclock.runtime.turn import run_turn  # noqa: E402

STORY = "Write a long story about a lighthouse keeper and a storm."
DEFAULT = "default"


def prompt(words: int) -> list[dict[str, str]]:
    """A fresh salt, then about ``words`` words of fixed text and the ask: no cache can serve it."""
    text = " ".join(filler_text().split()[:words])
    return [{"role": "user", "content": f"[{secrets.token_hex(4)}] {text}\n{STORY}"}]


def llama_bench(binary: Path, gguf: Path, counts: list[int], prompt_tokens: int,
                tokens: int) -> dict[int, tuple[float, float]]:
    """One llama-bench repetition's (prefill, decode) tok/s per thread count."""
    out = subprocess.run([str(binary), "-m", str(gguf), "-t", ",".join(map(str, counts)), "-p", str(prompt_tokens),
                          "-n", str(tokens), "-r", "1", "-o", "json"], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}, timeout=600).stdout
    rates: dict[int, dict[str, float]] = {}
    for test in json.loads(out):
        kind = "prefill" if test["n_prompt"] else "decode"
        rates.setdefault(test["n_threads"], {})[kind] = test["avg_ts"]
    return {n: (r["prefill"], r["decode"]) for n, r in rates.items()}


def medians(seen: dict[Any, list[tuple[float, float]]]) -> dict[Any, tuple[float, float]]:
    return {key: (statistics.median(p for p, _ in v), statistics.median(d for _, d in v)) for key, v in seen.items()}


def alternate(models: dict[str, object], rounds: int, words: int, tokens: int,
              each_round: Callable[[], None] = lambda: None) -> dict[str, tuple[float, float]]:
    """Median (prefill, decode) tok/s per configuration, the configurations alternating round by round;
    ``each_round`` runs first in every round (llama-bench), so a machine that drifts moves every path alike."""
    seen: dict[str, list[tuple[float, float]]] = {name: [] for name in models}
    params = SamplingParams(max_tokens=tokens)
    for model in models.values():  # untimed: warm every path once
        run_turn(model, prompt(words), SamplingParams(max_tokens=4))
    for round_no in range(rounds):
        each_round()
        order = list(models) if round_no % 2 == 0 else list(reversed(models))
        for name in order:
            m = run_turn(models[name], prompt(words), params).metrics
            seen[name].append((m.prefill_tps or 0.0, m.decode_tps or 0.0))
    return medians(seen)


def gguf_rows(name: str, args) -> tuple[list[tuple], str]:
    spec = resolve(name)
    gguf = local_file(spec)
    counts = candidate_counts(system.physical_cores(), usable_cpus())
    binary = engine_binary("llama-bench", "TASKCLOCK_LLAMA_BENCH")
    if binary is None:
        print("no llama-bench (make llama-server builds it, or set TASKCLOCK_LLAMA_BENCH): its rows are left out",
              file=sys.stderr)
    bench_seen: dict[int, list[tuple[float, float]]] = {n: [] for n in counts} if binary else {}

    def bench_round() -> None:
        if binary is not None:
            for n, rates in llama_bench(binary, gguf, counts, args.prompt_tokens, args.tokens).items():
                bench_seen[n].append(rates)
    configs = {str(n): spec.with_overrides(threads=n, n_ctx=2048) for n in counts}
    configs[DEFAULT] = spec.with_overrides(n_ctx=2048)
    models = {key: load_model(config) for key, config in configs.items()}
    chosen = models[DEFAULT].threads
    label = {key: f"{key} / {key}" for key in configs} | {DEFAULT: f"{chosen.decode} / {chosen.prompt} (default)"}
    servers = {key: LlamaServer(gguf, slots=1, n_ctx=2048,
                                threads=server_threads(models[key].threads)) for key in configs}
    try:
        urls = {key: server.__enter__() for key, server in servers.items()} if not args.no_server else {}
        clients = {f"server {key}": load_model(ModelSpec(f"server-{key}", "http", url)) for key, url in urls.items()}
        figures = alternate({**models, **clients}, args.rounds, args.words, args.tokens, bench_round)
    finally:
        for server in servers.values():
            if getattr(server, "proc", None) is not None:
                server.__exit__()
        for model in models.values():
            model.close()
    rows = [(name, "llama-bench", f"{n} / {n}", p, d) for n, (p, d) in sorted(medians(bench_seen).items())]
    for key in configs:
        rows.append((name, "in-process", label[key], *figures[key]))
    for key in urls:
        rows.append((name, "llama-server", label[key], *figures[f"server {key}"]))
    verdict = ""
    if bench_seen:
        best_prefill = max(r[3] for r in rows if r[1] == "llama-bench")
        best_decode = max(r[4] for r in rows if r[1] == "llama-bench")
        prefill, decode = figures[DEFAULT]
        verdict = (f"{name}: default in-process decode **{decode / best_decode:.2f}×** the best llama-bench count's "
                   f"(target ≥ 0.95), prefill **{prefill / best_prefill:.2f}×** the best llama-bench prefill "
                   "(target ≥ 0.95; taskclock's prefill figure is input tokens / TTFT through the chat template).")
    return rows, verdict


def hf_child(args) -> None:
    """One fresh process at ``--interop`` inter-op threads: prints the default configuration's figures as JSON."""
    import torch

    if args.interop:
        torch.set_num_interop_threads(args.interop)
    model = load_model(resolve(args.models))
    try:
        prefill, decode = alternate({DEFAULT: model}, args.rounds, args.words, args.tokens)[DEFAULT]
    finally:
        model.close()
    print(json.dumps({"interop": torch.get_num_interop_threads(), "prefill": prefill, "decode": decode}))


def hf_rows(name: str, args) -> list[tuple]:
    spec = resolve(name)
    counts = candidate_counts(system.physical_cores(), usable_cpus())
    configs = {str(n): spec.with_overrides(threads=n) for n in counts}
    configs[DEFAULT] = spec
    configs["bf16"] = spec.with_overrides(dtype="bfloat16")
    models = {key: load_model(config) for key, config in configs.items()}
    chosen = models[DEFAULT].threads
    try:
        figures = alternate(models, args.rounds, args.words, args.tokens)
    finally:
        for model in models.values():
            model.close()
    label = {key: f"{key} / {key}" for key in configs} | {DEFAULT: f"{chosen.decode} / {chosen.prompt} (default)",
                                                          "bf16": f"{chosen.decode} / {chosen.prompt}, bf16"}
    rows = [(name, "transformers", label[key], *figures[key]) for key in configs]
    for interop in (1, 0):
        child = subprocess.run([sys.executable, __file__, "--hf-child", "--interop", str(interop), "--models", name,
                                "--rounds", str(args.rounds), "--words", str(args.words), "--tokens", str(args.tokens)],
                               capture_output=True, text=True, check=True, timeout=600)
        got = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append((name, "transformers, fresh process", f"{chosen.decode} / {chosen.prompt}, inter-op "
                     f"{got['interop']}{'' if interop else ' (torch default)'}", got["prefill"], got["decode"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="smollm2,gemma3-270m,smollm2-hf")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64, help="decode tokens per turn (llama-bench -n)")
    parser.add_argument("--prompt-tokens", type=int, default=128, help="llama-bench -p")
    parser.add_argument("--words", type=int, default=90, help="filler words in each prompt (about 128 tokens)")
    parser.add_argument("--no-server", action="store_true", help="leave out the llama-server rows")
    parser.add_argument("--markdown", action="store_true", help="print a docs/BENCHMARKS.md section")
    parser.add_argument("--hf-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--interop", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hf_child:
        hf_child(args)
        return
    rows, verdicts = [], []
    for name in args.models.split(","):
        print(f"measuring {name}…", file=sys.stderr, flush=True)
        if resolve(name).backend == "llamacpp":
            found, verdict = gguf_rows(name, args)
            rows += found
            verdicts += [verdict] if verdict else []
        else:
            rows += hf_rows(name, args)
    table = ["| model | path | threads (decode / prompt) | prefill tok/s | decode tok/s |", "|---|---|---|---|---|"]
    table += [f"| {m} | {path} | {t} | {p:.1f} | {d:.1f} |" for m, path, t, p, d in rows]
    if args.markdown:
        print("## CPU threads — `benchmarks/threads.py`\n")
        print(f"{system.cpu_model()}, {system.physical_cores()} physical cores, {usable_cpus()} usable CPUs. "
              f"llama-bench `-p {args.prompt_tokens} -n {args.tokens} -r 1` once per round; in process and "
              f"llama-server (`-np 1`): greedy, a salted prompt of about {args.prompt_tokens} tokens, {args.tokens} "
              f"output tokens; {args.rounds} rounds, llama-bench first in each, the rest alternating (medians "
              "over rounds); `OMP_WAIT_POLICY=PASSIVE` throughout.\n")
    print("\n".join(table))
    if verdicts:
        print("\n" + "\n\n".join(verdicts))


if __name__ == "__main__":
    main()

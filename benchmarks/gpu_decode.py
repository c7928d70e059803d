"""Decode speed through taskclock vs plain transformers on the same model, eager and compiled.

Random-weight Llama models of real shapes (Llama-3-8B: 32 layers, hidden 4096, GQA 32/8, MLP 14336; and
SmolLM2-135M), FP16 on CUDA. For each, plain `model.generate()` with a timestamping streamer (what a user
gets outside taskclock) alternates with taskclock's stream, 3 rounds, and the compiled variant (static cache
+ transformers' compiled decode step, set on the model's generation config, so plain `generate()` uses it too)
is measured the same way after its warm-up. Each shape's model is freed before the next is built. Also prints
the memory-bandwidth ceiling for batch-1 decode (card bandwidth / weights bytes), with the card's bandwidth
worked out from its memory clock and bus width as NVML reports them.

Needs a GPU for the real figures; `--device cpu --shapes smollm2` runs the same code on a CPU.

    .venv/bin/python benchmarks/gpu_decode.py [--shapes llama3-8b,smollm2] [--tokens 128] [--markdown]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHAPES = {
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8),
    "smollm2": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),  # benchmarks/gpu_check.py's CPU rehearsal
}
VOCAB = 49152  # SmolLM2's vocabulary size for both shapes, so one word-level tokenizer serves
PROMPT = " ".join(f"w{i}" for i in range(10, 42))


def build(shape: str, device: str, dtype):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "<pad>"] + [f"w{i}" for i in range(VOCAB - 4)]
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="<pad>")
    config = LlamaConfig(vocab_size=VOCAB, max_position_embeddings=4096, bos_token_id=1, eos_token_id=2,
                         pad_token_id=3, **SHAPES[shape])
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    model.eval()
    return model, tokenizer


def raw_decode_tps(model, prompt_ids, tokens: int) -> float:
    """Plain generate() with a streamer that only timestamps: the outside-taskclock reference."""
    import torch

    stamps: list[int] = []

    class Stamp:
        def put(self, value):
            stamps.append(time.perf_counter_ns())

        def end(self):
            pass

    with torch.inference_mode():
        model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), max_new_tokens=tokens,
                       min_new_tokens=tokens, do_sample=False, streamer=Stamp(), pad_token_id=3)
    new = stamps[1:]  # the first put() is the prompt
    return (len(new) - 1) * 1e9 / (new[-1] - new[0])


def measure(shape: str, device: str, tokens: int, rounds: int, dtype=None,
            modes: tuple[bool, ...] = (False, True)) -> tuple[list[tuple[str, float, float, str]], int]:
    """(mode, plain tok/s, taskclock tok/s, peak GPU memory) for eager (False) and compiled (True) ``modes``, and
    the weights' bytes; ``dtype``: FP16 on CUDA, FP32 on the CPU by default."""
    import torch

    from taskclock.runtime.backend import ModelSpec, SamplingParams
    from taskclock.runtime.backends.hf import HFModel
    from taskclock.runtime.options import HFOptions
    from taskclock.runtime.turn import run_turn

    dtype = dtype or (torch.float16 if device == "cuda" else torch.float32)
    model, tokenizer = build(shape, device, dtype)
    messages = [{"role": "user", "content": PROMPT}]
    prompt_ids = torch.tensor([tokenizer.encode(messages[0]["content"])], device=device)
    rows = []
    for compiled in modes:
        spec = ModelSpec(shape, "hf", "(in memory)", chat=False,
                         backend_options=HFOptions(device=device, compile=compiled))
        loaded = HFModel(spec, model, tokenizer, device, 0.0, time.perf_counter_ns())
        try:
            if compiled:
                loaded.compile()
            raw_decode_tps(model, prompt_ids, 8)  # warm both paths
            ours, raw = [], []
            for _ in range(rounds):
                raw.append(raw_decode_tps(model, prompt_ids, tokens))
                result = run_turn(loaded, messages, SamplingParams(max_tokens=tokens))
                ours.append(result.metrics.decode_tps)
        finally:
            loaded.worker.close()  # the model itself is still needed for the next mode
        mem = result.metrics.gpu_peak_mem_mb
        rows.append(("compiled" if compiled else "eager", statistics.median(raw), statistics.median(ours),
                     f"{mem:.0f} MiB" if mem is not None else "—"))
    params_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    del model, loaded
    release_memory()
    return rows, params_bytes


def release_memory() -> None:
    """Free a shape's model before the next one is built: an 8B left resident skews the small rows."""
    import gc

    import torch

    torch._dynamo.reset()  # compiled code holds on to the weights too
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def bandwidth_floor(params_bytes: int) -> str:
    from taskclock.runtime.gpu import card_bandwidth

    card = card_bandwidth()
    if card is None:
        return "—"
    name, tb_s = card
    return f"{tb_s * 1e12 / params_bytes:.0f} tok/s ({name}, {tb_s:.2f} TB/s)"


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="llama3-8b,smollm2")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.markdown and args.device != "cuda":
        print("## GPU decode — `benchmarks/gpu_decode.py`\n\nNot run: no CUDA GPU on this machine. Run "
              "`benchmarks/gpu_decode.py --markdown` on a GPU host (see docs/INSTALL.md).")
        return
    lines = ["| shape | mode | plain transformers | through taskclock | ratio | peak GPU mem | bandwidth floor |",
             "|---|---|---|---|---|---|---|"]
    for shape in args.shapes.split(","):
        rows, params_bytes = measure(shape, args.device, args.tokens, args.rounds)
        floor = bandwidth_floor(params_bytes)
        for mode, raw, ours, mem in rows:
            lines.append(f"| {shape} | {mode} | {raw:.1f} tok/s | {ours:.1f} tok/s | {ours / raw:.2f} | "
                         f"{mem} | {floor} |")
    if args.markdown:
        print(f"## GPU decode — `benchmarks/gpu_decode.py`\n\nRandom weights, FP16, batch 1, {args.tokens} greedy "
              f"tokens, {args.rounds} alternating rounds (medians).\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

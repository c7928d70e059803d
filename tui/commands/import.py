"""`taskclock import FILE --format vllm -o NEW.jsonl`: another tool's per-request timings as a session log."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("import", help="turn another tool's per-request timing file into a replayable session log",
                       description="Read a vLLM serving-benchmark result saved with --save-detailed (per-request "
                                   "ttfts, itls, output_lens, generated_texts), a GenAI-Perf profile_export.json "
                                   "(per-response timestamps) or llama.cpp server completions with their timings, "
                                   "one per line (what `taskclock export --format llama` writes), and write it as "
                                   "a new session log that `taskclock replay` and the app's Sessions tab replay. "
                                   "Field mapping: docs/REPLAY.md.")
    p.add_argument("file", help="the timing file")
    p.add_argument("--format", "-f", choices=("vllm", "genai-perf", "llama"), default="vllm")
    p.add_argument("-o", "--output", required=True, help="the new session .jsonl to write (never replaced)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from taskclock.runtime.importers import import_file
    from taskclock.runtime.untrusted import safe_line

    from . import common

    written, skipped, placeholder = import_file(Path(args.file), args.format, Path(args.output))
    common.status(f"imported {written} request(s)" + (f", skipped {skipped} failed or incomplete" if skipped else ""))
    if placeholder:
        common.status("note: the file has no generated text: replays show placeholder words of the recorded "
                      "token count")
    print(safe_line(args.output))
    return 0

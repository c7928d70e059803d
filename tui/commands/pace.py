"""`taskclock pace --ttft S --tps R [--words N]`: canned text streamed at a chosen TTFT and rate."""
from __future__ import annotations

import argparse

from taskclock.runtime import values

from . import common
from .replay import report, stream_to_terminal


def add_parser(sub) -> None:
    p = sub.add_parser("pace", help="stream canned text at a chosen TTFT and tokens/s, to feel a latency budget",
                       description="Wait --ttft seconds, then stream --words words of canned text at --tps tokens "
                                   "a second, and say whether that pace outruns a reader.")
    # Parsed here, ranged in runtime/values.py (check_pace), as the Pace tab's fields are.
    p.add_argument("--ttft", type=common.number, default=1.0, metavar="S",
                   help=f"seconds to the first token (0 to {values.PACE_TTFT_MAX_S:g})")
    p.add_argument("--tps", type=common.number, default=12.0, metavar="R",
                   help=f"tokens per second after it (more than 0, at most {values.PACE_TPS_MAX:g})")
    p.add_argument("--words", type=common.whole_number, default=200, metavar="N",
                   help=f"how many words (1 to {values.PACE_WORDS_MAX}, default 200)")
    p.add_argument("--json", action="store_true", help="print one JSON object of the figures instead")


def run(args: argparse.Namespace) -> int:
    from taskclock.runtime.replay import pace_recording, reading_line

    with common.options_named():
        recording = pace_recording(args.ttft, args.tps, args.words)
    line = reading_line(args.tps)
    if not args.json:
        common.status(line)
    events = stream_to_terminal(recording, 1.0, args.json)
    report(recording, events, args.json, ttft=args.ttft, tps=args.tps, words=args.words, reading=line)
    return 0

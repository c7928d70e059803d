"""`taskclock pace --ttft S --tps R [--words N]`: canned text streamed at a chosen TTFT and rate."""
from __future__ import annotations

import argparse

from . import common
from .replay import positive_float, report, stream_to_terminal


def add_parser(sub) -> None:
    p = sub.add_parser("pace", help="stream canned text at a chosen TTFT and tokens/s, to feel a latency budget",
                       description="Wait --ttft seconds, then stream --words words of canned text at --tps tokens "
                                   "a second, and say whether that pace outruns a reader.")
    p.add_argument("--ttft", type=common.non_negative_float, default=1.0, metavar="S",
                   help="seconds to the first token")
    p.add_argument("--tps", type=positive_float, default=12.0, metavar="R", help="tokens per second after it")
    p.add_argument("--words", type=common.positive_int, default=200, metavar="N", help="how many words (default 200)")
    p.add_argument("--json", action="store_true", help="print one JSON object of the figures instead")


def run(args: argparse.Namespace) -> int:
    from taskclock.runtime.replay import pace_recording, reading_line

    recording = pace_recording(args.ttft, args.tps, args.words)
    line = reading_line(args.tps)
    if not args.json:
        common.status(line)
    events = stream_to_terminal(recording, 1.0, args.json)
    report(recording, events, args.json, ttft=args.ttft, tps=args.tps, words=args.words, reading=line)
    return 0

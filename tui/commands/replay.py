"""`taskclock replay SESSION.jsonl [--turn N] [--speed X] [--json]`: re-stream a recorded turn at its pace."""
from __future__ import annotations

import argparse
import json
import sys

from taskclock.runtime import values

from . import common


def add_parser(sub) -> None:
    p = sub.add_parser("replay", help="re-stream a recorded turn at its recorded pace, then its metrics",
                       description="Re-stream one turn of a session log (chat, compare or import) or a bench or "
                                   "sweep run (its folder or results.jsonl) with its recorded TTFT and token gaps, "
                                   "divided by --speed, then print the same figures block as `run`.")
    p.add_argument("source", help="a session .jsonl file, a run's results.jsonl, or a bench or sweep run folder")
    p.add_argument("--turn", type=common.positive_int, metavar="N", help="which turn, from 1 (default: the last)")
    p.add_argument("--speed", type=common.number, default=1.0, metavar="X",
                   help=f"play X times faster (0.5 = half speed; {values.REPLAY_SPEED_MIN:g} to "
                        f"{values.REPLAY_SPEED_MAX:g}; default 1, the recorded pace)")
    p.add_argument("--json", action="store_true", help="print one JSON object of the replayed figures instead")


def stream_to_terminal(recording, speed: float, quiet: bool) -> list:
    """Play ``recording`` on stdout (unless ``quiet``); returns the replayed events."""
    from taskclock.runtime.events import Event, Token
    from taskclock.runtime.replay import play

    def echo(event: Event) -> None:
        if not quiet and isinstance(event, Token):
            sys.stdout.write(event.text)  # already through safe_text when the recording was built
            sys.stdout.flush()

    events = play(recording.schedule, speed, echo)
    if not quiet:
        print(flush=True)
    return events


def report(recording, events: list, as_json: bool, **head) -> None:
    """The figures of the replayed events: a JSON object on stdout, or `run`'s block on stderr."""
    from taskclock.runtime.metrics import compute, output_text

    figures = compute(events).as_dict()
    if as_json:  # ASCII-only: a hostile log's C1 or bidi characters leave escaped
        print(json.dumps({**head, "text": output_text(events), **figures, "notes": recording.notes}))
        return
    from ..format import metrics_block

    print("\n" + metrics_block(figures), file=sys.stderr)
    for note in recording.notes:
        print(f"note: {note}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from taskclock.runtime.replay import load_recording

    with common.options_named():
        values.check_speed(args.speed)  # before the log is read (rebase checks it too, for the app)
    number, total, recording = load_recording(Path(args.source), args.turn)
    if not args.json:
        common.status(f"replaying turn {number} of {total} ({recording.label}) at {args.speed:g}×…")
    events = stream_to_terminal(recording, args.speed, args.json)
    report(recording, events, args.json, model=recording.model, turn=number, speed=args.speed)
    return 0

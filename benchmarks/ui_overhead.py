"""UI overhead: does the app slow what it measures? And how soon does `taskclock` paint its first frame?

1. Decode TPS of the same greedy SmolLM2 turn, run headless (run_turn) and in the app driven by Pilot
   (App.run_test, the real Chat tab and meter), alternating, 5 rounds each. The ratio is the median of the
   per-round ratios (each app round over the headless round just before it), so a machine whose speed
   drifts between rounds (a shared VM) moves both sides of a pair alike. Target: app/headless >= 0.97 (issue 23).
2. Time from starting `taskclock` (a fresh process in a pseudo-terminal) to its first painted frame, before
   the model has loaded. Target: <= 0.8 s.

    .venv/bin/python benchmarks/ui_overhead.py [--rounds 5] [--tokens 200] [--markdown]
"""
from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script from the checkout: the imports below need this path first, hence their `noqa: E402`.
sys.path.insert(0, str(ROOT))

from common import rounds_parser  # noqa: E402

from taskclock.runtime.backend import SamplingParams, load_model  # noqa: E402
from taskclock.runtime.config import Config  # noqa: E402
from taskclock.runtime.models import resolve  # noqa: E402
from taskclock.runtime.turn import run_turn  # noqa: E402

PROMPT = "Write a long story about a lighthouse keeper and a storm."


def headless_round(model, params: SamplingParams) -> float:
    return run_turn(model, [{"role": "user", "content": PROMPT}], params).metrics.decode_tps


async def app_round(model, params: SamplingParams, sessions: Path) -> float:
    """The real app and Chat tab; the already-loaded model is handed in so both paths reuse one model."""
    from taskclock.tui.app import TaskclockApp
    from taskclock.tui.context import AppContext
    from taskclock.tui.panes.chat import ChatPane
    from taskclock.tui.widgets.prompt_input import PromptInput

    app = TaskclockApp(AppContext(Config(), model.spec, sessions, params, loader=lambda spec: model))
    async with app.run_test(size=(140, 40)) as pilot:
        chat = app.query_one(ChatPane)
        while chat.model is None:
            await pilot.pause(0.05)
        chat.model = None  # so closing the app does not close the shared model
        chat.model, prompt = model, chat.query_one(PromptInput)
        prompt.focus()
        prompt.load_text(PROMPT)
        await pilot.pause()
        await pilot.press("enter")
        while chat.last_result is None:  # not pilot.pause(): it forces a screen refresh the app would not do
            await asyncio.sleep(0.05)
        chat.model = None
        return chat.last_result.metrics.decode_tps


def first_frame_s() -> float:
    """Start `taskclock` in a 140x40 pseudo-terminal; seconds until the tab bar has been drawn."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 140, 0, 0))
    with tempfile.TemporaryDirectory() as sessions:
        start = time.perf_counter()
        proc = subprocess.Popen([str(ROOT / ".venv/bin/taskclock"), "--sessions", sessions], stdin=slave,
                                stdout=slave, stderr=slave, cwd=ROOT, env={**os.environ, "TERM": "xterm-256color"})
        os.close(slave)
        seen = b""
        try:
            while b"Sessions" not in seen:
                ready, _, _ = select.select([master], [], [], 10)
                if not ready:
                    raise RuntimeError("no frame within 10 s")
                seen += os.read(master, 65536)
            return time.perf_counter() - start
        finally:
            proc.terminate()
            while proc.poll() is None:  # keep reading: an app blocked writing to a full terminal never exits
                if select.select([master], [], [], 0.1)[0]:
                    try:
                        os.read(master, 65536)
                    except OSError:  # the terminal closed with the process
                        break
            proc.wait()
            os.close(master)


def main() -> None:
    args = rounds_parser(__doc__).parse_args()
    params = SamplingParams(max_tokens=args.tokens)
    model = load_model(resolve(args.model))
    headless, in_app = [], []
    with tempfile.TemporaryDirectory() as sessions:
        headless_round(model, SamplingParams(max_tokens=16))  # warm the caches once
        for _ in range(args.rounds):
            headless.append(headless_round(model, params))
            in_app.append(asyncio.run(app_round(model, params, Path(sessions))))
    model.close()
    frames = [first_frame_s() for _ in range(args.rounds)]
    h, a, f = statistics.median(headless), statistics.median(in_app), statistics.median(frames)
    ratio = statistics.median(x / y for x, y in zip(in_app, headless, strict=True))
    if args.markdown:
        print(f"## UI overhead — `benchmarks/ui_overhead.py`\n\n{args.model} through llama.cpp, {args.tokens} "
              f"greedy tokens, {args.rounds} alternating rounds in one process (medians; the ratio is the median "
              "of per-round ratios): headless `run_turn` vs the app's Chat tab driven by Pilot (`App.run_test`), "
              "repainting at 10 Hz. First frame: a fresh `taskclock` process in a 140x40 pseudo-terminal until "
              "the tab bar is drawn (model still loading).\n")
        print("| measure | headless | app | ratio / target |\n|---|---|---|---|")
        print(f"| decode TPS | {h:.1f} tok/s | {a:.1f} tok/s | **{ratio:.3f}** (target ≥ 0.97) |")
        print(f"| start → first frame | | {f:.2f} s (max {max(frames):.2f} s) | target ≤ 0.8 s |")
        return
    print(f"model {args.model}, {args.tokens} tokens, {args.rounds} alternating rounds (medians)")
    print(f"headless run_turn: decode {h:7.1f} tok/s   rounds: {', '.join(f'{x:.1f}' for x in headless)}")
    print(f"app (Pilot):       decode {a:7.1f} tok/s   rounds: {', '.join(f'{x:.1f}' for x in in_app)}")
    print(f"ratio app/headless decode TPS, median of per-round ratios: {ratio:.3f} (target >= 0.97)")
    print(f"taskclock start -> first frame: median {f:.2f} s, max {max(frames):.2f} s (target <= 0.8 s)")


if __name__ == "__main__":
    main()

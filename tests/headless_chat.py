"""The real app, driven headless by Pilot in a process of its own, so fault tests can kill it mid-turn.

    python tests/headless_chat.py SESSIONS_DIR [--tag T] [--turns N] [--then-stream] [--scripted TOKENS]

Sends N prompts ("T 0", "T 1", ...) and prints "turn I done" after each finished turn. With --then-stream it
sends one more, long prompt, prints "streaming" once tokens are arriving, and waits to be killed.
--scripted replies with TOKENS words from the scripted test source (tests/scripted.py) instead of SmolLM2.
"""
from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from app_helpers import make_app, ready, send, turn, wait_for
from scripted import scripted_loader

LONG_PROMPT = "Write a very long story about a dragon who learns to bake bread."
MAX_TOKENS = 400


async def drive(args: argparse.Namespace) -> None:
    options = {"loader": scripted_loader(tokens=args.scripted)} if args.scripted else {}
    app = make_app(Path(args.sessions), max_tokens=max(MAX_TOKENS, args.scripted or 0), **options)
    async with app.run_test(size=(120, 40)) as pilot:
        chat = await ready(pilot)
        for index in range(args.turns):
            await turn(pilot, f"{args.tag} {index}: reply with one word.")
            print(f"turn {index} done", flush=True)
        if args.then_stream:
            await send(pilot, LONG_PROMPT)
            await wait_for(pilot, lambda: chat.live is not None and len(chat.live.events) > 3, "tokens")
            print("streaming", flush=True)
            await asyncio.sleep(3600)  # until the test kills this process


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sessions")
    parser.add_argument("--tag", default="turn")
    parser.add_argument("--turns", type=int, default=1)
    parser.add_argument("--then-stream", action="store_true")
    parser.add_argument("--scripted", type=int, default=0)
    asyncio.run(drive(parser.parse_args()))


if __name__ == "__main__":
    main()

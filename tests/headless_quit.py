"""The real app, driven headless by Pilot in a process of its own, quit with Ctrl+Q while it is working.

    python -m tests.headless_quit DIR chat MODEL      # a chat turn streaming from MODEL
    python -m tests.headless_quit DIR batch MODEL     # a Batch tab run of MODEL over the shared MMLU copy

Prints "working" once the turn is streaming (chat) or the first row is written (batch), waits for a line on
stdin, presses Ctrl+Q and prints "quit" when the app has closed. The process must then end on its own: a
thread still working would keep it alive.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from app_helpers import make_app, ready, send, wait_for
from textual.widgets import Input

from taskclock.runtime.config import Config, Defaults
from taskclock.tui.panes.batch import BatchPane

BATCH_LIMIT = "40"


async def drive(args: argparse.Namespace) -> None:
    config = Config(defaults=Defaults(runs_dir=str(Path(args.dir) / "runs")))
    app = make_app(Path(args.dir) / "sessions", model=args.model, config=config, max_tokens=8)
    async with app.run_test(size=(160, 50)) as pilot:
        chat = await ready(pilot)
        if args.tab == "chat":
            await send(pilot, "Tell me a long story.")
            await wait_for(pilot, lambda: chat.live is not None, "the turn to start")
        else:
            await pilot.press("f5")
            pane = app.query_one(BatchPane)
            for field_id, value in (("batch-models", args.model), ("batch-tasks", "mc"),
                                    ("batch-limit", BATCH_LIMIT), ("batch-mmlu", "")):
                pane.query_one(f"#{field_id}", Input).value = value
            await pilot.click("#batch-start")
            await wait_for(pilot, lambda: pane.live is not None and any(pane.live.rows.values()), "a row")
        print("working", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await pilot.press("ctrl+q")
    print("quit", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("tab", choices=["chat", "batch"])
    parser.add_argument("model")
    asyncio.run(drive(parser.parse_args()))


if __name__ == "__main__":
    main()

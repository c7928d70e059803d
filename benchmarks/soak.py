"""Soak: 10,000 turns from the scripted test source into a session log and the live meter; does memory stay flat?

    .venv/bin/python benchmarks/soak.py [--turns 10000] [--markdown]

Each turn is what the Chat tab does with a reply: run_turn, the meter's live repaints while it streams and its
final figures, then one fsynced line in the session log. The meter is the real widget, mounted in a headless
app (App.run_test) that gets to render between turns. RSS is sampled every 1,000 turns; memory is flat when
it grows less than 10% after the first 1,000 (warm-up: caches, the allocator's arenas).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
# Run as a script from the checkout: the imports below need this path first, hence their `noqa: E402`.
sys.path.insert(0, str(ROOT))

from textual.app import App, ComposeResult  # noqa: E402

from taskclock.runtime import storage  # noqa: E402
from taskclock.runtime.backend import ModelSpec, SamplingParams  # noqa: E402
from taskclock.runtime.events import Token  # noqa: E402
from taskclock.runtime.sessions import SessionLog, turn_record  # noqa: E402
from taskclock.runtime.turn import run_turn  # noqa: E402
from taskclock.tui.widgets.meter import Meter  # noqa: E402
from tests.scripted import ScriptedModel  # noqa: E402

SAMPLE_EVERY = 1_000
FLAT_LIMIT = 0.10  # growth after warm-up that still counts as flat
LIVE_REPAINTS = 3  # meter repaints while a reply streams (the Chat tab's 10 Hz timer, for a short reply)


class MeterApp(App):
    def compose(self) -> ComposeResult:
        yield Meter(id="meter")


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


async def soak(turns: int, folder: Path) -> tuple[list[tuple[int, float]], Path, float]:
    model = ScriptedModel(ModelSpec("scripted", "scripted", "tests/scripted.py"))
    log = SessionLog(folder, "scripted")
    params = SamplingParams(max_tokens=256)
    samples = [(0, rss_mib())]
    app = MeterApp()
    began = time.perf_counter()
    async with app.run_test(size=(100, 30)) as pilot:
        meter = app.query_one(Meter)
        for index in range(1, turns + 1):
            result = run_turn(model, [{"role": "user", "content": f"question {index}"}], params)
            meter.start()
            tokens = [i for i, event in enumerate(result.events) if isinstance(event, Token)]
            for cut in tokens[:: max(1, len(tokens) // LIVE_REPAINTS)]:
                meter.show_live(result.events[: cut + 1], result.events[cut].t_ns)
            meter.show_final(result.events)
            log.append(turn_record(result))
            if index % 10 == 0:
                await pilot.pause()  # let the app render what the meter shows
            if index % SAMPLE_EVERY == 0:
                samples.append((index, rss_mib()))
    return samples, log.path, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10_000)
    parser.add_argument("--markdown", action="store_true", help="print a docs/BENCHMARKS.md section")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        samples, path, seconds = asyncio.run(soak(args.turns, Path(tmp)))
        lines = sum(1 for _ in storage.read(path))
        log_mib = path.stat().st_size / 2**20
    if lines != args.turns:
        sys.exit(f"the session log holds {lines} records, not {args.turns}")
    warm = samples[1][1] if len(samples) > 2 else samples[0][1]
    final = samples[-1][1]
    growth = (final - warm) / warm
    flat = growth < FLAT_LIMIT
    verdict = "flat" if flat else "NOT flat"
    if args.markdown:
        print(f"## Soak — `benchmarks/soak.py` ({datetime.date.today().isoformat()})\n")
        print(f"{args.turns:,} turns from the scripted test source (tests/scripted.py, {len(samples) - 1} RSS samples) "
              f"into one session log ({lines:,} fsynced lines, {log_mib:.1f} MiB, every line read back) and the live "
              f"meter widget in a headless app ({LIVE_REPAINTS} live repaints and the final figures per turn), "
              f"in {seconds:.0f} s.\n")
        print("| turns | " + " | ".join(f"{n:,}" for n, _ in samples) + " |")
        print("|---|" + "---|" * len(samples))
        print("| RSS MiB | " + " | ".join(f"{mib:.1f}" for _, mib in samples) + " |")
        print(f"\nGrowth after the first {SAMPLE_EVERY:,} turns (warm-up): **{growth:+.1%}** "
              f"(flat means < {FLAT_LIMIT:.0%}): memory is **{verdict}**.")
    else:
        for turn_count, mib in samples:
            print(f"after {turn_count:>6} turns: RSS {mib:7.1f} MiB")
        print(f"{lines} records in the session log ({log_mib:.1f} MiB), {seconds:.0f} s; growth after warm-up "
              f"{growth:+.1%}: memory is {verdict} (limit {FLAT_LIMIT:.0%})")
    sys.exit(0 if flat else 1)


if __name__ == "__main__":
    main()

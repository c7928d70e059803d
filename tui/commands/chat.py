"""`taskclock chat` (and plain `taskclock`): open the app on a model."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

from . import common


def add_parser(sub) -> None:
    p = sub.add_parser("chat", help="open the app: chat under a live latency meter (the default command)",
                       description="Open the taskclock app. Every turn is logged to the sessions folder.")
    common.add_model_options(p)
    common.add_sampling_options(p)
    p.add_argument("--sessions", metavar="DIR", help="session log folder (default: config, else ./sessions in a "
                                                     "checkout, else the user data dir)")
    p.add_argument("--theme", help="theme name (built-in: taskclock-dark, taskclock-light, taskclock-high-contrast)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from taskclock.runtime import remembered
    from taskclock.runtime.config import load_config
    from taskclock.runtime.untrusted import safe_line

    from ..app import TaskclockApp
    from ..context import AppContext

    config = load_config(args.config)
    spec = common.resolve_specs([args.model or config.defaults.model], args, config)[0]
    params, _, kept, problem = common.remembered_settings(args, config)  # flags win
    if kept.mmlu:
        config = replace(config, defaults=replace(config.defaults, mmlu=kept.mmlu))
    context = AppContext(config=config, model=spec, sessions_dir=common.sessions_dir(args, config), params=params,
                         remembered=kept, remembered_path=remembered.default_path(), remembered_problem=problem)
    app = TaskclockApp(context, theme=args.theme)
    with own_terminal_stream():
        app.run()
    for path in context.written:
        print(f"taskclock: wrote {safe_line(path)}", file=sys.stderr)
    return app.return_code or 0


@contextlib.contextmanager
def own_terminal_stream():
    """Give Textual its own copy of the terminal's fd 2.

    Textual draws on sys.__stderr__, and llama.cpp's loader points fd 2 at /dev/null while it loads to hide
    its logs: frames drawn meanwhile would be lost. A duplicate descriptor keeps pointing at the terminal.
    """
    original = sys.__stderr__
    if original is None:
        yield
        return
    stream = open(os.dup(original.fileno()), "w", encoding=original.encoding, errors="replace")
    sys.__stderr__ = stream  # type: ignore[misc]  # typeshed marks it Final; swapping it is the point here
    try:
        yield
    finally:
        sys.__stderr__ = original  # type: ignore[misc]  # (see above)
        stream.close()

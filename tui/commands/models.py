"""`taskclock models`: the aliases and configured models, and whether their weights are here."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list model aliases and configured models")
    p.add_argument("--config", help="config TOML")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from taskclock.runtime.config import load_config
    from taskclock.runtime.models import DEFAULT_MODEL, all_models, is_present
    from taskclock.runtime.untrusted import redact_url

    from ..format import plain

    config = load_config(args.config)
    table = Table(title="taskclock models")
    for column in ("name", "backend", "options", "present", "source / description"):
        table.add_column(column)
    for spec in all_models(config.models):
        options = [spec.quantization] if spec.quantization != "none" else []
        options += [] if spec.chat else ["completion"]
        name = f"{spec.name} (default)" if spec.name == (config.defaults.model or DEFAULT_MODEL) else spec.name
        # names, sources and descriptions come from the config: plain text, never markup or escape codes
        table.add_row(plain(name), plain(spec.backend), ", ".join(options), is_present(spec),
                      plain(spec.description or redact_url(spec.source)))
    Console().print(table)
    return 0

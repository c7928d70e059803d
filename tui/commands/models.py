"""`taskclock models`: the aliases and configured models, the backend options each sets (those not at their
declared default), and whether their weights are here; `taskclock models URL`: the models a server serves (the
model picker's list for that URL), each with the name that reaches it."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list model aliases and configured models, or the models a server serves",
                       description="With no argument: the built-in aliases and configured models. With a server URL "
                                   "(or a configured http model): the models it serves (OpenAI /v1/models, Ollama's "
                                   "list, llama-server's context size), each with the name to pass to --model.")
    p.add_argument("server", nargs="?", help="a server URL (http://HOST:PORT/v1) or a configured http model")
    p.add_argument("--config", help="config TOML")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from taskclock.runtime.config import load_config
    from taskclock.runtime.models import DEFAULT_MODEL, all_models, is_present
    from taskclock.runtime.untrusted import redact_url

    from ..format import plain

    config = load_config(args.config)
    if args.server:
        return served(args.server, config)
    table = Table(title="taskclock models")
    for column in ("name", "backend", "options", "present", "source / description"):
        table.add_column(column)
    for spec in all_models(config.models):
        options = spec.backend_options.settings(changed_only=True) + ([] if spec.chat else ["completion"])
        name = f"{spec.name} (default)" if spec.name == (config.defaults.model or DEFAULT_MODEL) else spec.name
        # names, sources and descriptions come from the config: plain text, never markup or escape codes
        table.add_row(plain(name), plain(spec.backend), plain(", ".join(options)), is_present(spec),
                      plain(spec.description or redact_url(spec.source)))
    Console().print(table)
    return 0


def served(server: str, config) -> int:
    from rich.console import Console
    from rich.table import Table

    from taskclock.runtime.backends.http import api_key
    from taskclock.runtime.discovery import list_served
    from taskclock.runtime.errors import ModelNotFound
    from taskclock.runtime.metrics import figure
    from taskclock.runtime.models import resolve

    from ..format import plain

    spec = resolve(server, config.models)
    if spec.backend != "http":
        raise ModelNotFound(f"{server!r} is not a server URL ({spec.backend} model)",
                            "pass http://HOST:PORT/v1 or a configured http model")
    listing = list_served(spec.source, api_key=api_key(spec))
    more = f" (and {listing.more} more)" if listing.more else ""
    table = Table(title=f"{listing.server} at {listing.url}: {len(listing.models)} model(s){more}",
                  title_justify="left")
    for column in ("name (pass to --model)", "context", "detail"):
        table.add_column(column, overflow="fold")
    for model in listing.models:  # ids and details come from the server: plain text, never markup
        table.add_row(plain(listing.name(model)), figure(model.context, unit="tokens"), plain(model.detail))
    Console().print(table)
    return 0

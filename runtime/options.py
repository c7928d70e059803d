"""What each backend lets a user set, declared once: name, type, default, range or choices, CLI flag and help.

In the manner of harlequin's adapter options: a backend's options are a frozen dataclass whose fields are
declared with ``option(...)``; `ModelSpec.backend_options` holds one. The config reader, run.toml, the CLI's
backend flags, `taskclock models` and `taskclock doctor` read these declarations, and tests/test_docs.py
holds docs/CONFIG.md to them. This module imports nothing heavy (the CLI builds its flags from it for
``--help``), so the declarations live here rather than in the backend modules, which import their engines'
clients; each backend module reads its block back with ``NAME_OPTIONS.of(spec)``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from . import values
from .values import RANGES, Range

_DECLARED = "option"


@dataclass(frozen=True)
class Option:
    """One declared option: ``name`` is its key in ``[models.NAME]`` and run.toml; ``flag`` its command-line
    option ("" for config only), which for a boolean stores ``flag_value``; ``old_names`` keys it was read under
    before (still read)."""

    name: str
    kind: type
    default: Any
    help: str
    flag: str = ""
    flag_value: Any = None
    choices: tuple[str, ...] = ()
    range: Range | None = None
    old_names: tuple[str, ...] = ()

    def check(self, value: Any) -> None:
        """One InvalidValue naming the option and its range or choices; None is "worked out at load"."""
        if value is None and self.default is None:
            return
        if self.range is not None:
            self.range.check(self.name, value)
        elif self.choices:
            values.check_choice(self.name, value, self.choices)

    def allowed(self) -> str:
        """What the option takes, for help lines and docs/CONFIG.md."""
        if self.choices:
            return ", ".join(self.choices)
        if self.range is not None:
            return ("whole number " if self.range.kind is int else "") + self.range.text()
        return {bool: "true or false", str: "a string", dict: "a table"}.get(self.kind, self.kind.__name__)


def option(default: Any, help: str, *, kind: type | None = None, flag: str = "", flag_value: Any = None,
           choices: tuple[str, ...] = (), range: Range | None = None, old_names: tuple[str, ...] = ()) -> Any:
    """A dataclass field declared as a backend option (its name is the field's)."""
    spec = dict(kind=kind or type(default), default=default, help=help, flag=flag, flag_value=flag_value,
                choices=choices, range=range, old_names=old_names)
    if isinstance(default, dict):
        return field(default_factory=dict, compare=False, metadata={_DECLARED: spec})
    return field(default=default, metadata={_DECLARED: spec})


Block = TypeVar("Block", bound="BackendOptions")


@dataclass(frozen=True)
class BackendOptions:
    """A backend's block of options; a backend that declares none (a test's scripted one) has this empty one."""

    def __post_init__(self) -> None:
        for declared in declarations(type(self)):
            declared.check(getattr(self, declared.name))

    @classmethod
    def of(cls: type[Block], spec: Any) -> Block:
        """``spec``'s block as this backend's type (a spec of another backend is a programming error)."""
        block = spec.backend_options
        if not isinstance(block, cls):
            raise TypeError(f"{spec.name} runs on {spec.backend}, not with {cls.__name__}")
        return block

    def values(self) -> dict[str, Any]:
        """Every option by name, as config.toml and run.toml write them."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def settings(self, changed_only: bool = False) -> list[str]:
        """``name=value`` per option (``changed_only``: those not at their default), for `taskclock models` and
        `doctor`; values may come from a config file, so callers show them as plain text."""
        return [f"{o.name}={_written(getattr(self, o.name))}" for o in declarations(type(self))
                if not changed_only or getattr(self, o.name) != o.default]


def _written(value: Any) -> str:
    """A value as TOML writes it (true, 60.0, "name"), unset for None."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (str, dict)) else str(value)


def declarations(block: type[BackendOptions]) -> tuple[Option, ...]:
    return tuple(Option(name=f.name, **f.metadata[_DECLARED]) for f in fields(block))


NO_OPTIONS = BackendOptions()  # a ModelSpec's "left out": it takes its backend's defaults

_THREADS_HELP = ("CPU threads for decode and prefill (0: decode measured per machine and model, prefill on every "
                 "CPU; `taskclock doctor` shows the choice)")


@dataclass(frozen=True)
class LlamaCppOptions(BackendOptions):
    n_gpu_layers: int | None = option(None, "layers on the GPU (unset: all where llama.cpp has GPU offload, else 0; "
                                      "-1: all)", kind=int, flag="--gpu-layers", range=RANGES["n_gpu_layers"])
    flash_attn: bool = option(True, "flash attention (--no-flash-attn turns it off)", flag="--no-flash-attn",
                              flag_value=False)
    threads: int = option(0, _THREADS_HELP, flag="--threads", range=RANGES["threads"])


@dataclass(frozen=True)
class HFOptions(BackendOptions):
    dtype: str = option("auto", "weights' type (auto: on CUDA the model's own fp16/bf16, else bf16; fp32 on CPU)",
                        flag="--dtype", choices=values.CHOICES["dtype"])
    device: str = option("auto", "where the model runs (auto: CUDA when torch sees a GPU)", flag="--device",
                         choices=values.CHOICES["device"])
    quantization: str = option("none", "bitsandbytes quantization", flag="--quant",
                               choices=values.CHOICES["quantization"])
    compile: bool = option(False, "static cache + torch.compile (warm-up reported apart)", flag="--compile",
                           flag_value=True)
    threads: int = option(0, _THREADS_HELP, flag="--threads", range=RANGES["threads"])


@dataclass(frozen=True)
class HTTPOptions(BackendOptions):
    api_model: str = option("", "the server's model name (a URL's #MODEL)")
    api_key_env: str = option("", "environment variable holding the API key (never the key itself)")
    timeout_s: float = option(60.0, "give up when the server sends no data this long (pings do not count)",
                              flag="--timeout", range=RANGES["timeout_s"])
    turn_timeout_s: float = option(900.0, "give up on a turn that takes longer than this overall",
                                   flag="--turn-timeout", range=RANGES["turn_timeout_s"])
    extra_body: dict = option({}, "fields merged last into every request body (server-specific sampling)",
                              old_names=("options",))


BACKEND_OPTIONS: dict[str, type[BackendOptions]] = {"llamacpp": LlamaCppOptions, "hf": HFOptions,
                                                    "http": HTTPOptions}


def block_type(backend: str) -> type[BackendOptions]:
    return BACKEND_OPTIONS.get(backend, BackendOptions)


def declared(backend: str) -> tuple[Option, ...]:
    """The options ``backend`` declares (none for one it does not know)."""
    return declarations(block_type(backend))


def flags() -> dict[str, Option]:
    """The CLI's backend flags, each once: an option two backends declare (threads) shares its flag."""
    return {o.flag: o for block in BACKEND_OPTIONS.values() for o in declarations(block) if o.flag}


def backends_of(name: str) -> list[str]:
    """The backends that declare the option ``name``."""
    return [b for b, block in BACKEND_OPTIONS.items() if any(o.name == name for o in declarations(block))]


def owner(key: str) -> tuple[type[BackendOptions], str] | None:
    """The first backend's block that declares ``key`` (under its name or an old one), and the name it has now."""
    for block in BACKEND_OPTIONS.values():
        for o in declarations(block):
            if key in (o.name, *o.old_names):
                return block, o.name
    return None

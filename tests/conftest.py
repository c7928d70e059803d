"""Shared fixtures: real models, loaded once per test session.

SmolLM2 through llama.cpp and through transformers are the real offline models; the tiny random-weight
llama is for fast plumbing tests where the words do not matter.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import ROOT, random_llama

# The loopback servers (a real llama_cpp.server and a scripted SSE one) are fixtures every test can use.
pytest_plugins = ["llama_server"]



def pytest_sessionstart(session):
    """A GPU machine whose torch cannot use the GPU would skip every `cuda` test and measure the CPU: stop."""
    from taskclock.runtime.gpu import check_torch_sees_gpus

    problem = check_torch_sees_gpus()
    if problem:
        raise pytest.UsageError(problem)


def pytest_collection_modifyitems(config, items):
    """CUDA tests run where a GPU exists (the lent GPU machine) and skip cleanly everywhere else; llama.cpp
    offload tests need only a llama-cpp-python built with GPU offload, not torch's CUDA."""
    cuda_items = [item for item in items if "cuda" in item.keywords]
    if not cuda_items:
        return
    import importlib.util

    import torch

    offload = importlib.util.find_spec("llama_cpp") is not None and __import__("llama_cpp").llama_supports_gpu_offload()
    for item in cuda_items:
        if "gpu_offload" in item.keywords:
            if not offload:  # a bare GPU machine has none until `benchmarks/gpu_check.sh llamacpp` builds it
                item.add_marker(pytest.mark.skip(reason="llama-cpp-python is missing or was built without GPU "
                                                        "offload"))
        elif not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA"))


@pytest.fixture(autouse=True, scope="session")
def _isolated_user_dirs(tmp_path_factory):
    """Keep tests away from the real user folders, the cache included: a test run neither reads a thread choice
    probed earlier on this machine nor leaves its own behind; the session shares one cache (models converted once)."""
    home = tmp_path_factory.mktemp("xdg")
    os.environ["TASKCLOCK_CACHE"] = str(home / "cache")
    os.environ["XDG_CONFIG_HOME"] = str(home / "config")
    os.environ["XDG_DATA_HOME"] = str(home / "data")
    os.environ["XDG_STATE_HOME"] = str(home / "state")
    os.environ.pop("TASKCLOCK_CONFIG", None)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    yield


def _checkout_files() -> set[str]:
    return {str(p.relative_to(ROOT)) for name in ("sessions", "runs") if (ROOT / name).is_dir()
            for p in (ROOT / name).rglob("*") if p.name != ".gitkeep"}


@pytest.fixture(autouse=True)
def _nothing_written_into_the_checkout():
    """Every test writes under its tmp_path only: a file it leaves in the checkout's sessions/ or runs/ (a
    command run from the checkout without --sessions / --out) fails that test, naming the files."""
    before = _checkout_files()
    yield
    stray = _checkout_files() - before
    assert not stray, f"this test wrote into the checkout: {sorted(stray)}"


@pytest.fixture(scope="session")
def smollm2():
    from taskclock.runtime.backend import load_model
    from taskclock.runtime.models import resolve

    model = load_model(resolve("smollm2"))
    yield model
    model.close()


@pytest.fixture(scope="session")
def smollm2_hf():
    from taskclock.runtime.backend import load_model
    from taskclock.runtime.models import resolve

    model = load_model(resolve("smollm2-hf"))
    yield model
    model.close()


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A 2-layer random-weight llama with a word-level in-memory tokenizer and a chat template."""
    return random_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_llama(tiny_llama_dir):
    from taskclock.runtime.backend import ModelSpec, load_model

    model = load_model(ModelSpec("tiny", "hf", str(tiny_llama_dir)))
    yield model
    model.close()


@pytest.fixture()
def workdir(tmp_path, monkeypatch) -> Path:
    """The test's own working folder, so the folders the tabs show read the same on every machine."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TASKCLOCK_MMLU", raising=False)
    return tmp_path

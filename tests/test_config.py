"""Config TOML: typed, strict, and every mistake named by file, key and line."""
import pytest
from helpers import run_cli

from taskclock.runtime.config import load_config
from taskclock.runtime.errors import ConfigError
from taskclock.runtime.models import resolve
from taskclock.runtime.options import HFOptions, LlamaCppOptions


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_models_and_sampling_are_read(tmp_path):
    path = write(tmp_path, """
[defaults]
model = "tiny"

[sampling]
max_tokens = 64
temperature = 0
stop = ["###"]

[models.tiny]
backend = "hf"
source = "/some/folder"
dtype = "bfloat16"
quantization = "4bit"
n_ctx = 1024
""")
    config = load_config(path)
    assert config.defaults.model == "tiny"
    assert config.sampling.max_tokens == 64 and config.sampling.stop == ("###",)
    assert config.sampling.temperature == 0.0
    spec = resolve("tiny", config.models)
    options = HFOptions.of(spec)
    assert (spec.backend, options.dtype, options.quantization, spec.n_ctx) == ("hf", "bfloat16", "4bit", 1024)


def test_unknown_key_names_file_key_and_line(tmp_path):
    path = write(tmp_path, "[sampling]\nmax_tokens = 8\ntemprature = 0.5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "temprature" in str(err.value) and "line 3" in str(err.value)


def test_wrong_type_is_named(tmp_path):
    path = write(tmp_path, '[models.x]\nbackend = "hf"\nsource = "y"\nn_ctx = "big"\n')
    with pytest.raises(ConfigError, match=r"n_ctx must be an integer"):
        load_config(path)


def test_gpu_layers_is_an_optional_integer(tmp_path):
    """Unset, llama.cpp decides (all layers where it can offload); 0 in the file keeps a model on the CPU."""
    path = write(tmp_path, '[models.a]\nbackend = "llamacpp"\nsource = "a.gguf"\n\n'
                           '[models.b]\nbackend = "llamacpp"\nsource = "b.gguf"\nn_gpu_layers = 0\n')
    models = load_config(path).models
    assert (LlamaCppOptions.of(models["a"]).n_gpu_layers, LlamaCppOptions.of(models["b"]).n_gpu_layers) == (None, 0)
    with pytest.raises(ConfigError, match=r"n_gpu_layers must be an integer"):
        load_config(write(tmp_path, '[models.x]\nbackend = "llamacpp"\nsource = "y"\nn_gpu_layers = "all"\n'))


def test_syntax_error_names_the_file(tmp_path):
    path = write(tmp_path, "[sampling\nmax_tokens = 1\n")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_config(path)


def test_config_from_environment_variable_reaches_the_cli(tmp_path):
    path = write(tmp_path, "[defaults]\nmodle = 'x'\n")
    proc = run_cli("models", env={"TASKCLOCK_CONFIG": str(path)})
    assert proc.returncode == 2 and "modle" in proc.stderr and "Traceback" not in proc.stderr

"""What a model name can reach (runtime/discovery.py): the models real loopback servers serve (a scripted OpenAI
and Ollama server, llama.cpp's own llama-server), bounded and cancellable against hostile ones; path completion;
"did you mean"; `taskclock models URL`; and "save as" into the user's config."""
from __future__ import annotations

import contextlib
import json
import os
import socketserver
import threading
import time

import pytest
from helpers import one_error_line, run_cli
from hostile_server import ESCAPES, MARKUP
from llama_server import HOST, running_scripted_server, serving

from taskclock.runtime import config as config_module
from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.config import load_config, save_model
from taskclock.runtime.discovery import (
    MAX_SERVED,
    Cancelled,
    Choice,
    choices,
    complete_path,
    list_served,
)
from taskclock.runtime.errors import BackendError, ConfigError, ModelNotFound
from taskclock.runtime.models import ALIASES, did_you_mean, resolve

OLLAMA_TAGS = {"models": [{"name": "llama3.2:1b", "model": "llama3.2:1b", "size": 1_321_098_329,
                           "details": {"parameter_size": "1.2B", "quantization_level": "Q8_0"}},
                          {"name": "qwen2.5:0.5b", "size": 397_821_319, "details": {"parameter_size": "494M"}}]}


def test_an_openai_server_lists_its_models_with_the_names_that_reach_them():
    with running_scripted_server() as server:
        server.models = ["alpha", "beta"]
        listing = list_served(server.url.removesuffix("/v1"))  # a bare host gets /v1 as --model does
        assert listing.server == "openai" and [m.id for m in listing.models] == ["alpha", "beta"]
        assert listing.name(listing.models[1]) == f"{server.url}#beta"
        spec = resolve(listing.name(listing.models[1]))
        assert (spec.backend, spec.source, spec.api_model) == ("http", server.url, "beta")


def test_an_ollama_server_lists_its_own_models_with_size_and_quantization():
    with running_scripted_server() as server:
        server.routes["/api/tags"] = OLLAMA_TAGS
        listing = list_served(server.url)
    assert listing.server == "ollama"
    assert [(m.id, m.detail) for m in listing.models] == [("llama3.2:1b", "1.2B Q8_0 1.3 GB"),
                                                          ("qwen2.5:0.5b", "494M 0.4 GB")]
    assert "/api/tags" in server.gets


def test_llama_server_props_give_the_context_of_a_slot():
    with running_scripted_server() as server:
        server.routes["/props"] = {"default_generation_settings": {"n_ctx": 8192}, "total_slots": 2}
        listing = list_served(server.url)
    assert listing.server == "llama-server" and listing.models[0].context == 8192


def test_the_real_llama_server_is_recognised_with_its_context_and_quantization(one_slot_llama_server):
    listing = list_served(one_slot_llama_server.url)
    (model,) = listing.models
    assert listing.server == "llama-server" and model.context == 2048 and model.detail.startswith("Q4_1")
    assert resolve(listing.name(model)).api_model == model.id


def test_the_same_list_prints_headless_with_taskclock_models_url():
    with running_scripted_server() as server:
        server.models = ["alpha", f"beta{ESCAPES}"]
        proc = run_cli("models", server.url)
    assert proc.returncode == 0, proc.stderr
    assert f"{server.url}#alpha" in proc.stdout and "openai at" in proc.stdout
    assert "\x1b" not in proc.stdout and "beta␛]0;pwned" in proc.stdout.replace("\n", "").replace("│", "")


def test_taskclock_models_on_a_dead_server_or_a_local_model_is_one_line():
    dead = run_cli("models", "http://127.0.0.1:9/v1")
    assert dead.returncode == 2 and "cannot reach http://127.0.0.1:9/v1/models" in one_error_line(dead)
    local = run_cli("models", "smollm2")
    assert local.returncode == 2 and "is not a server URL" in one_error_line(local)


# ---- hostile servers ------------------------------------------------------------------------------------

class _Hostile(socketserver.StreamRequestHandler):
    """``server.answer(handler)`` writes whatever it likes after the request line and headers are read."""

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            self.request_line = self.rfile.readline(65536).decode("latin-1")
            while self.rfile.readline(65536).strip():
                pass
            self.server.answer(self)

    def send_json(self, body: bytes) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


@contextlib.contextmanager
def hostile(answer):
    server = socketserver.ThreadingTCPServer((HOST, 0), _Hostile)
    server.daemon_threads = True
    server.answer = answer
    with serving(server):
        yield f"http://{HOST}:{server.server_address[1]}/v1"


def _trickle(handler) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
    for _ in range(10_000):
        handler.wfile.write(b" ")
        handler.wfile.flush()
        time.sleep(0.05)


def test_a_server_that_trickles_its_list_is_cut_at_the_deadline():
    with hostile(_trickle) as url:
        began = time.monotonic()
        with pytest.raises(BackendError, match="no model list within 1 s"):
            list_served(url, deadline_s=1.0)
    assert time.monotonic() - began < 30  # a guard against hanging, not a speed check


def test_a_listing_is_cancelled_from_another_thread():
    cancel = threading.Event()
    with hostile(_trickle) as url:
        threading.Timer(0.3, cancel.set).start()
        with pytest.raises(Cancelled):
            list_served(url, deadline_s=60.0, cancel=cancel)


def test_hostile_lists_are_bounded_and_their_ids_kept_for_the_server_but_never_shown_raw():
    ids = [f"{MARKUP}{ESCAPES}", "x" * 5000, *(f"m{i}" for i in range(MAX_SERVED + 50))]
    body = json.dumps({"data": [{"id": i, "owned_by": ESCAPES} for i in ids] + [{"id": 5}, "junk", {"no": 1}]})
    with hostile(lambda h: h.send_json(body.encode())) as url:
        listing = list_served(url)
    assert listing.models[0].id == f"{MARKUP}{ESCAPES}"  # sent back as it came: the server's own spelling
    assert all(len(m.id) <= 200 for m in listing.models) and len(listing.models) == MAX_SERVED
    assert listing.more == 1 + MAX_SERVED + 50 - MAX_SERVED  # the 5000-character id is left out, not counted
    assert "\x1b" not in listing.models[0].detail


def test_a_body_too_large_or_not_a_list_is_one_line():
    with hostile(lambda h: h.send_json(b'{"data": [' + b'{"id": "m"},' * 200_000 + b'{"id": "n"}]}')) as url, \
            pytest.raises(BackendError, match="sent more than 1 MiB"):
        list_served(url)
    with hostile(lambda h: h.send_json(b"[" * 100_000 + b"]" * 100_000)) as url, \
            pytest.raises(BackendError, match="did not answer with JSON"):
        list_served(url)


# ---- paths, typos and the picker's list ---------------------------------------------------------------

def test_a_path_completes_to_its_folders_and_gguf_files(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "small.gguf").write_bytes(b"x")
    (tmp_path / "models" / "notes.txt").write_text("x")
    (tmp_path / "models" / ".hidden.gguf").write_bytes(b"x")
    (tmp_path / "models" / "qwen").mkdir()
    (tmp_path / "models" / "qwen" / "config.json").write_text("{}")
    typed = f"{tmp_path}/models/"
    assert complete_path(typed) == [f"{typed}qwen/", f"{typed}small.gguf"]
    assert complete_path(f"{typed}sm") == [f"{typed}small.gguf"]
    assert complete_path(f"{typed}.h") == [f"{typed}.hidden.gguf"]
    listed = choices(typed, {})
    assert listed == [Choice(f"{typed}qwen", "model folder", "transformers"), Choice(f"{typed}small.gguf", "gguf",
                                                                                      "llama.cpp")]


def test_a_typo_gets_did_you_mean_in_the_error_and_in_the_picker():
    with pytest.raises(ModelNotFound) as caught:
        resolve("smolm2")
    assert "did you mean smollm2?" in str(caught.value)
    assert did_you_mean("gemma3", ALIASES) == "gemma3-270m"  # the start of one name
    assert did_you_mean("llama", ALIASES) is None
    assert choices("smolm2", {"smollm2": "", "gemma3-270m": ""}) == [
        Choice("smollm2", "suggestion", "did you mean smollm2?")]
    proc = run_cli("run", "hi", "--model", "smolm2")
    assert proc.returncode == 2 and "did you mean smollm2?" in one_error_line(proc)


def test_recent_names_come_first_and_a_hub_id_is_offered_as_typed():
    known = {"smollm2": "a", "smollm2-hf": "b", "gemma3-270m": "c"}
    assert [c.name for c in choices("", known, ["gemma3-270m"])] == ["gemma3-270m", "smollm2", "smollm2-hf"]
    assert choices("Org/Model-1B", known) == [Choice("Org/Model-1B", "hub", choices("Org/Model-1B", {})[0].detail)]


# ---- save as ------------------------------------------------------------------------------------------

def test_save_as_adds_a_models_entry_the_config_then_reads(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[defaults]\nmodel = "smollm2"  # mine\n')
    path.chmod(0o600)
    spec = resolve("http://127.0.0.1:8080/v1#qwen\x7f\"x")
    saved = save_model(path, "qwen-server", spec, builtin=set(ALIASES))
    assert path.read_text().startswith('[defaults]\nmodel = "smollm2"  # mine\n')  # the user's text kept
    assert (path.stat().st_mode & 0o777) == 0o600
    loaded = load_config(path).models["qwen-server"]
    assert loaded == saved and (loaded.source, loaded.api_model) == ("http://127.0.0.1:8080/v1", "qwen\x7f\"x")
    before = path.read_text()
    for name, problem in (("qwen-server", "already has"), ("smollm2", "built-in"), ("a b", "cannot name")):
        with pytest.raises(ConfigError, match=problem):
            save_model(path, name, spec, builtin=set(ALIASES))
    with pytest.raises(ConfigError, match="password"):
        save_model(path, "secret", ModelSpec("s", "http", "http://me:pw@host/v1"))
    assert path.read_text() == before


def test_save_as_never_writes_through_a_link_and_makes_a_missing_config(tmp_path):
    target = tmp_path / "elsewhere.toml"
    target.write_text("")
    link = tmp_path / "config.toml"
    link.symlink_to(target)
    with pytest.raises(Exception, match="symbolic link"):
        save_model(link, "m", ModelSpec("m", "llamacpp", "/x.gguf"))
    assert target.read_text() == ""
    fifo = tmp_path / "fifo.toml"  # read through the outside-file gate: a FIFO would block the read for ever
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is not a regular file"):
        save_model(fifo, "m", ModelSpec("m", "llamacpp", "/x.gguf"))
    fresh = tmp_path / "new" / "config.toml"
    save_model(fresh, "m", ModelSpec("m", "llamacpp", "/x.gguf"))
    assert load_config(fresh).models["m"].source == "/x.gguf"
    assert config_module.user_config_path(load_config(fresh)) == fresh

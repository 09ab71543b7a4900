"""Expert episodes become chat records that render through the Qwen3 template."""

import json

import pytest

from knowgen.agents.expert_data import (
    ExpertDataConfig,
    compact_action,
    generate_expert_data,
    read_jsonl,
    turns_to_messages,
    write_jsonl,
)
from knowgen.agents.tiny import qwen3_chat_template
from knowgen.envs.messages import build_messages
from knowgen.envs.trl_env import tool_schemas
from knowgen.errors import ConfigError


@pytest.fixture(scope="module")
def scripted_data(shared_backends):
    backends = {k: v for k, v in shared_backends.items() if k != "benchmark"}
    return generate_expert_data(ExpertDataConfig(limit=12, env_overrides=backends))


def test_compact_action_drops_top_k_and_adds_think():
    action = '<tool_call>{"name": "search", "arguments": {"queries": ["capital Lima"], "top_k": 8}}</tool_call>'
    out = compact_action(action)
    assert out.startswith("<think>Search for the clues.</think>")
    assert '"top_k"' not in out and '"capital Lima"' in out
    answer = ('<answer>{"gen_prompt": "the first reference image", "reference_images": '
              '[{"img_id": "IMG_002", "note": "flag"}]}</answer>')
    assert "IMG_002" in compact_action(answer) and compact_action("junk") == "junk"


def test_compact_action_keeps_a_reasoning_experts_think():
    action = ('<think>The country whose capital is Lima is Peru.</think>\n<tool_call>{"name": '
              '"image_search", "arguments": {"query": "Flag of Peru", "top_k": 8}}</tool_call>')
    kept = compact_action(action, keep_think=True)
    assert kept.startswith("<think>The country whose capital is Lima is Peru.</think>")
    assert '"top_k"' not in kept
    assert compact_action(action).startswith("<think>Find the official image.</think>")


def test_guided_records_keep_what_the_expert_read(shared_backends):
    backends = {k: v for k, v in shared_backends.items() if k != "benchmark"}
    records, stats = generate_expert_data(ExpertDataConfig(expert="guided", limit=6,
                                                           env_overrides=backends))
    assert stats["played"] == 6 and records
    thoughts = [m["content"] for r in records for m in r["messages"] if m["role"] == "assistant"]
    assert any(" is " in t and "<think>" in t and "Answer with the references" not in t
               for t in thoughts)
    for record in records:
        assert record["expert"] == "guided" and record["reward"] >= 0.75
    assert not any("The caption" in t for t in thoughts)
    planned, _ = generate_expert_data(ExpertDataConfig(expert="guided", limit=6, plan_caption=True,
                                                       env_overrides=backends))
    firsts = [next(m["content"] for m in r["messages"] if m["role"] == "assistant") for r in planned]
    assert planned and all("caption" in f.lower() for f in firsts), firsts


def _quotes_and_answers(records):
    from knowgen.quoting import quoted_texts

    for record in records:
        request = next(m for m in record["messages"] if m["role"] == "user")["content"]
        answer = record["messages"][-1]["content"]
        for quote in quoted_texts(request):
            yield quote, json.loads(answer.partition("<answer>")[2].partition("</answer>")[0])


def test_guided_copies_quoted_captions_as_quoted_when_asked(shared_backends):
    backends = {k: v for k, v in shared_backends.items() if k != "benchmark"}
    plain, _ = generate_expert_data(ExpertDataConfig(expert="guided", limit=6,
                                                     env_overrides=backends))
    copied, _ = generate_expert_data(ExpertDataConfig(expert="guided", limit=6, copy_quotes=True,
                                                      env_overrides=backends))
    assert [r["task_id"] for r in copied] == [r["task_id"] for r in plain]
    assert all(r["reward"] >= 0.75 for r in copied)
    # Without the option a quote that is the name in capitals is written as the name.
    assert any(f'"{q}"' not in a["gen_prompt"] for q, a in _quotes_and_answers(plain))
    pairs = list(_quotes_and_answers(copied))
    assert pairs and all(f'"{q}"' in a["gen_prompt"] for q, a in pairs), pairs



def test_guided_counts_subjects_when_asked(shared_backends):
    backends = {k: v for k, v in shared_backends.items() if k != "benchmark"}
    records, _ = generate_expert_data(ExpertDataConfig(expert="guided", limit=3,
                                                       count_subjects=True, env_overrides=backends))
    firsts = [next(m["content"] for m in r["messages"] if m["role"] == "assistant") for r in records]
    assert firsts and all(f.startswith("<think>The request asks for one ") for f in firsts), firsts
    assert all(" 1 of 1: " in f for f in firsts), firsts

@pytest.mark.slow
def test_records_have_the_chat_shape(scripted_data):
    records, stats = scripted_data
    assert stats["played"] == 12 and stats["kept"] == len(records) >= 8
    for record in records:
        roles = [m["role"] for m in record["messages"]]
        assert roles[:2] == ["system", "user"] and roles[-1] == "assistant"
        assert record["messages"][-1]["content"].startswith("<think>")
        assert "<answer>" in record["messages"][-1]["content"]
        assert record["reward"] >= 0.75
        assert json.loads(record["tools"]) == tool_schemas()
        for message in record["messages"]:
            if message["role"] == "tool":
                assert "<tool_response>" not in message["content"]
            for call in message.get("tool_calls") or []:
                assert "top_k" not in json.loads(call["function"]["arguments"])


@pytest.mark.slow
def test_records_render_like_build_messages(scripted_data, shared_backends):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()))
    tok.chat_template = qwen3_chat_template()
    records, _ = scripted_data
    record = max(records, key=lambda r: len(r["messages"]))
    tools = json.loads(record["tools"])
    text = tok.apply_chat_template(record["messages"], tools=tools, tokenize=False)
    for message in record["messages"][1:]:
        if message["role"] == "tool":
            assert f"<tool_response>\n{message['content']}\n</tool_response>" in text
    # Dict arguments (what inference builds) render to the very same text.
    as_dicts = json.loads(json.dumps(record["messages"]))
    for message in as_dicts:
        for call in message.get("tool_calls") or []:
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    assert tok.apply_chat_template(as_dicts, tools=tools, tokenize=False) == text


@pytest.mark.slow
def test_turns_to_messages_matches_build_messages(shared_backends):
    from knowgen.agents.expert_data import play_episode
    from knowgen.config import EnvConfig
    from knowgen.envs.searchgen import SearchGenEnv
    from knowgen.reference_policies.scripted import ScriptedPolicy

    env = SearchGenEnv(EnvConfig(split="train", top_k=3), **shared_backends)
    episode = play_episode(env, ScriptedPolicy(), env.tasks[40].id)
    ours = turns_to_messages(episode["request"], episode["turns"], system="S")
    theirs = build_messages(episode["request"], episode["turns"], fmt="hf", system="S")
    for message in theirs:
        for call in message.get("tool_calls") or []:
            call["function"]["arguments"] = json.dumps(call["function"]["arguments"],
                                                       ensure_ascii=False)
    assert ours == theirs


def test_jsonl_round_trip_and_errors(tmp_path):
    records = [{"messages": [{"role": "user", "content": "héllo"}], "tools": "[]"}]
    path = write_jsonl(records, tmp_path / "d.jsonl")
    assert read_jsonl(path) == records
    with pytest.raises(ConfigError, match="knowgen train data"):
        read_jsonl(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"messages": []}\nnot json\n')
    with pytest.raises(ConfigError, match="bad.jsonl:2"):
        read_jsonl(tmp_path / "bad.jsonl")


def test_unknown_expert_is_refused():
    with pytest.raises(ConfigError, match="scripted, oracle"):
        generate_expert_data(ExpertDataConfig(expert="human", limit=1))

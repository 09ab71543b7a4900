"""Upstream Gen-Searcher training files (sft_data.json, rl_data.json) read into knowgen's forms.

The upstream files are written here in the format upstream's training configs define:
the SFT file as a LLaMA-Factory sharegpt dataset (``messages`` of role/content with the
system, user and assistant roles, tool results as user turns in ``<tool_response>``, an
``<image>`` placeholder per attached picture, an ``images`` list), the RL file as
``{"id", "prompt", "gt_image"}`` items. The transcripts are real world episodes played
by the scripted expert.
"""

import json
import re

import pytest
from PIL import Image

from knowgen.agents.expert_data import play_episode, turns_to_messages
from knowgen.agents.train.config import load_train_config
from knowgen.agents.train.grpo import env_config, prompt_source, task_ids_of
from knowgen.agents.train.sft_data import expert_records
from knowgen.agents.upstream_data import read_rl_file, read_sft_file
from knowgen.config import EnvConfig
from knowgen.envs.searchgen import SearchGenEnv
from knowgen.envs.trl_env import DEFAULT_SYSTEM_PROMPT
from knowgen.errors import DataError, UnknownNameError
from knowgen.reference_policies.scripted import ScriptedPolicy

UPSTREAM_SYSTEM = "You are a research assistant that prepares image generation prompts."


@pytest.fixture(scope="module")
def episodes(shared_backends):
    backends = {k: v for k, v in shared_backends.items() if k != "benchmark"}
    env = SearchGenEnv(EnvConfig(split="train", top_k=3), benchmark=shared_backends["benchmark"],
                       **backends)
    policy = ScriptedPolicy(caps=False)
    ids = [t.id for t in env.tasks[::400]][:5]
    return [play_episode(env, policy, task_id) for task_id in ids]


def upstream_item(episode):
    """An episode written as one item of upstream's sft_data.json."""
    messages = [{"role": "system", "content": UPSTREAM_SYSTEM},
                {"role": "user", "content": episode["request"]}]
    images = []
    for n, (action, observation) in enumerate(episode["turns"]):
        messages.append({"role": "assistant", "content": action})
        if n == len(episode["turns"]) - 1:
            break
        with_images = re.sub(r"^(IMG_\d{3}:.*)$", r"\1\n<image>", observation, flags=re.MULTILINE)
        images += [f"images/{m}.jpg" for m in re.findall(r"^(IMG_\d{3}):", observation,
                                                           re.MULTILINE)]
        messages.append({"role": "user", "content": with_images})
    return {"messages": messages, "images": images}


def write_json(path, data):
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def test_upstream_transcripts_become_the_records_knowgen_writes(tmp_path, episodes):
    items = [upstream_item(e) for e in episodes]
    assert any("<image>" in m["content"] for it in items for m in it["messages"])
    records, rejected = read_sft_file(write_json(tmp_path / "sft_data.json", items))
    assert rejected == [] and len(records) == len(episodes)
    for record, episode in zip(records, episodes):
        expected = turns_to_messages(episode["request"], episode["turns"], DEFAULT_SYSTEM_PROMPT)
        assert record["messages"] == expected
        assert record["source"] == "upstream" and json.loads(record["tools"])
        assert all("<image>" not in str(m.get("content")) for m in record["messages"])


def test_default_sharegpt_tags_are_read(tmp_path, episodes):
    tags = {"system": "system", "user": "human", "assistant": "gpt"}
    item = upstream_item(episodes[0])
    converted = {"conversations": [{"from": tags[m["role"]] if m["role"] != "user" or i < 2
                                    else "observation", "value": m["content"]}
                                   for i, m in enumerate(item["messages"])]}
    records, rejected = read_sft_file(write_json(tmp_path / "sharegpt.json", [converted]))
    assert rejected == []
    assert records[0]["messages"] == turns_to_messages(
        episodes[0]["request"], episodes[0]["turns"], DEFAULT_SYSTEM_PROMPT)


def test_unusable_transcripts_are_set_aside_with_reasons(tmp_path, episodes):
    good = upstream_item(episodes[0])
    no_answer = {"messages": good["messages"][:-1]}
    broken = {"messages": good["messages"][:2] + [{"role": "assistant", "content": "I will search"}]}
    bad_role = {"messages": [{"role": "narrator", "content": "x"}]}
    path = write_json(tmp_path / "sft_data.json", [good, no_answer, broken, bad_role, 7])
    records, rejected = read_sft_file(path)
    assert len(records) == 1
    reasons = {r.index: r.reason for r in rejected}
    assert sorted(reasons) == [1, 2, 3, 4]
    assert "does not end with an <answer>" in reasons[1]
    assert "breaks the protocol" in reasons[2]
    assert "'narrator'" in reasons[3] and "JSON object" in reasons[4]
    cfg = load_train_config("smoke", {"output_dir": str(tmp_path / "run"), "sft.data": str(path)})
    assert len(expert_records(cfg)) == 1
    lines = (tmp_path / "run" / "sft_data.rejected.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == [1, 2, 3, 4]
    assert json.loads(lines[3])["item"] == 7


def test_a_file_with_nothing_usable_is_refused(tmp_path):
    with pytest.raises(DataError, match="No usable SFT transcript.*role"):
        read_sft_file(write_json(tmp_path / "bad.json", [{"messages": [{"role": "x"}]}]))
    (tmp_path / "broken.json").write_text('[{"messages": ', encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        read_sft_file(tmp_path / "broken.json")


def test_knowgen_records_pass_through(tmp_path, expert_records):
    path = tmp_path / "ours.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in expert_records[:3]), encoding="utf-8")
    records, rejected = read_sft_file(path)
    assert records == expert_records[:3] and rejected == []


@pytest.fixture
def rl_file(tmp_path):
    (tmp_path / "gt").mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (32, 24), (200, 30, 30)).save(tmp_path / "gt" / f"{name}.png")
    items = [
        {"id": 1, "prompt": "A poster of the flag of Peru", "gt_image": "gt/a.png"},
        {"id": "x2", "prompt": "A logo card", "gt_image": str(tmp_path / "gt" / "b.png"),
         "meta": {"category": "Science", "difficulty": "easy"}},
        {"id": 3, "prompt": "No picture", "gt_image": "gt/missing.png"},
        {"id": 4, "prompt": "", "gt_image": "gt/a.png"},
    ]
    return write_json(tmp_path / "rl_data.json", items)


def test_rl_prompts_follow_upstream_loader_rules(rl_file):
    records, rejected = read_rl_file(rl_file)
    assert [r["id"] for r in records] == ["1", "x2"]
    assert records[0]["meta"] == {"category": "rl_data"}
    assert records[1]["meta"]["category"] == "Science"
    assert records[0]["gt_image"] == str(rl_file.parent / "gt" / "a.png")
    assert {r.index: r.reason for r in rejected} == {
        2: "ground-truth image 'gt/missing.png' not found", 3: "missing prompt"}


def test_duplicate_rl_ids_are_refused(tmp_path, rl_file):
    items = json.loads(rl_file.read_text())[:1] * 2
    with pytest.raises(DataError, match="'1' appears more than once"):
        read_rl_file(write_json(rl_file.parent / "dup.json", items))


def test_grpo_data_serves_the_prompts_as_tasks(tmp_path, rl_file):
    cfg = load_train_config("smoke", {"output_dir": str(tmp_path / "run"), "grpo.data": str(rl_file),
                                      "grpo.env_overrides": {"generation_seed": 3}})
    source = prompt_source(cfg)
    assert source[0].startswith("knowgen:path=") and source[1] == "test"
    assert task_ids_of(cfg, source) == ["1", "x2"]
    rejected = (tmp_path / "run" / "grpo" / "rl_data.rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 2
    env_cfg = env_config(cfg, source)
    assert env_cfg.generation_seed == 3 and env_cfg.benchmark == source[0]
    env = SearchGenEnv(env_cfg)
    obs, info = env.reset(options={"task_id": "x2"})
    assert "A logo card" in obs and info["task_id"] == "x2"


def test_an_unknown_environment_override_is_named(tmp_path):
    cfg = load_train_config("smoke", {"output_dir": str(tmp_path),
                                      "grpo.env_overrides": {"image_judg": "openai"}})
    with pytest.raises(UnknownNameError, match="Did you mean 'image_judge'"):
        env_config(cfg)

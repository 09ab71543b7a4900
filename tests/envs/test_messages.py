"""Chat-message views of real episodes: HF (rendered by TRL's Qwen3 template) and OpenAI."""

import base64
import io
import json
from pathlib import Path

import pytest
from PIL import Image

from knowgen.envs.messages import build_messages, listed_image_ids, strip_tool_response
from knowgen.envs.protocol import format_answer, format_tool_call
from knowgen.errors import ConfigError, DataError
from knowgen.reference_policies.common import parse_images
from knowgen.types import Answer, ReferenceImage
from knowgen.world.data import load_world


def _qwen3_tokenizer():
    trl = pytest.importorskip("trl")
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    template = (Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja").read_text()
    vocab = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    return PreTrainedTokenizerFast(tokenizer_object=vocab, chat_template=template)


def _scripted_episode(env):
    """Search, image-search every entity, make one malformed turn, then answer."""
    env.reset(options={"task_index": 0})
    world = load_world()
    env.step(format_tool_call("search", {"queries": ["capital city"]}, think="find facts"))
    ids = []
    for entity in env.task.facts.entities:
        title = world.images[entity.image_id].title
        obs, *_ = env.step({"tool": "image_search", "arguments": {"query": title}})
        ids += [i.img_id for i in parse_images(obs) if i.title == title][:1]
    env.step("I am not sure what to do")
    refs = tuple(ReferenceImage(i, "official") for i in ids)
    answer = format_answer(Answer("A poster of the first reference image", refs), think="done")
    *_, term, _trunc, _info = env.step(answer)
    assert term
    return answer


@pytest.mark.slow
def test_hf_messages_render_through_trl_qwen3_template(make_env):
    env = make_env()
    answer = _scripted_episode(env)
    messages = env.messages()
    roles = [m["role"] for m in messages]
    n_tools = len(env.task.facts.entities) + 1
    assert roles == ["system", "user"] + ["assistant", "tool"] * n_tools + \
        ["assistant", "user", "assistant"]
    assert messages[1]["content"] == env.task.prompt
    assert messages[2]["content"] == "<think>find facts</think>"
    assert messages[2]["tool_calls"][0]["function"] == {
        "name": "search", "arguments": {"queries": ["capital city"]}}
    assert messages[-1]["content"] == answer  # the model's text, unchanged
    rendered = _qwen3_tokenizer().apply_chat_template(messages, tokenize=False)
    tool_observations = [obs for _action, obs in env.turns if obs.startswith("<tool_response>")]
    assert len(tool_observations) == n_tools
    for obs in tool_observations:
        inner = strip_tool_response(obs)
        assert "<tool_response>" not in inner
        assert inner in rendered
    in_system = env.system_prompt.count("<tool_response>")
    assert rendered.count("<tool_response>") == n_tools + in_system
    assert '"name": "image_search"' in rendered and env.task.prompt in rendered
    assert "I am not sure what to do" in rendered and '"gen_prompt"' in rendered


def test_openai_messages_ids_json_arguments_and_images(make_env):
    env = make_env()
    _scripted_episode(env)
    plain = env.messages(fmt="openai", system="")
    assert plain[0] == {"role": "user", "content": env.task.prompt}
    calls = [m for m in plain if m.get("tool_calls")]
    tools = [m for m in plain if m["role"] == "tool"]
    assert [c["tool_calls"][0]["id"] for c in calls] == [t["tool_call_id"] for t in tools]
    assert calls[0]["tool_calls"][0]["id"] == "call_1"
    for call in calls:
        args = call["tool_calls"][0]["function"]["arguments"]
        assert isinstance(args, str) and isinstance(json.loads(args), dict)
    assert all(isinstance(t["content"], str) for t in tools)

    with_images = env.messages(fmt="openai", images=True)
    image_tools = [m for m in with_images if m["role"] == "tool" and isinstance(m["content"], list)]
    assert len(image_tools) == len(env.task.facts.entities)
    first = image_tools[0]["content"]
    assert first[0]["type"] == "text" and "IMG_001" in first[0]["text"]
    urls = [b["image_url"]["url"] for b in first[1:]]
    assert urls and all(u.startswith("data:image/png;base64,") for u in urls)
    decoded = Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1])))
    with Image.open(env._pool.get("IMG_001").local_path) as original:
        assert decoded.size == original.size
    shown = sum(len(m["content"]) - 1 for m in image_tools)
    assert shown == len(env._pool)  # each image attached once, where it first appeared


def test_hf_image_blocks_point_at_local_files(make_env):
    env = make_env()
    env.reset(seed=4)
    env.step(format_tool_call("image_search", {"query": "Flag of Peru", "top_k": 3}))
    env.step(format_tool_call("image_search", {"query": "Flag of Peru", "top_k": 3}))
    messages = env.messages(images=True)
    first, again = messages[3]["content"], messages[5]["content"]
    assert [b["type"] for b in first] == ["text", "image", "image", "image"]
    assert [b["image"] for b in first[1:]] == [env._pool.get(i).local_path
                                              for i in ("IMG_001", "IMG_002", "IMG_003")]
    assert isinstance(again, str)  # the same images again: nothing new to attach


def test_build_messages_on_handwritten_turns():
    obs = ("<tool_response>\n--- image search result for [x] ---\nIMG_001: A\n  url: u\n"
           "--- end of image search result ---\n</tool_response>\n\n[Tool calls left: 7.]")
    turns = [
        ({"tool_calls": [{"id": "z", "type": "function",
                          "function": {"name": "image_search", "arguments": '{"query": "x"}'}}]},
         obs),
        ({"answer": {"gen_prompt": "p", "reference_images": ["IMG_001"]}, "think": "t"}, "ok"),
    ]
    messages = build_messages("draw x", turns, system="sys")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert messages[3]["content"].endswith("--- end of image search result ---\n\n"
                                           "[Tool calls left: 7.]")
    assert messages[4]["content"].startswith("<think>t</think>\n<answer>")
    assert listed_image_ids(obs) == ["IMG_001"]
    as_dicts = [(action, {"text": text, "num_images": 0}) for action, text in turns]
    assert build_messages("draw x", as_dicts, system="sys") == messages
    with pytest.raises(DataError, match="IMG_001"):
        build_messages("draw x", turns[:1], fmt="openai", images={"IMG_001": "/no/such.png"})
    with pytest.raises(ConfigError, match="hf"):
        build_messages("draw x", turns, fmt="anthropic")


def test_strip_tool_response_keeps_text_without_wrapper():
    assert strip_tool_response("plain error") == "plain error"
    assert strip_tool_response("<tool_response>\na</tool_response> b</tool_response>") == \
        "a</tool_response> b"
    assert strip_tool_response("x <tool_response>a</tool_response>") == \
        "x <tool_response>a</tool_response>"


def test_reset_info_carries_the_request(make_env):
    env = make_env()
    _obs, info = env.reset(options={"task_index": 2})
    assert info["request"] == env.tasks[2].prompt
    assert env.messages(system="") == [{"role": "user", "content": env.tasks[2].prompt}]

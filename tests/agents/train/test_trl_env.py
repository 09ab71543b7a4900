"""The TRL adapter drives SearchGenEnv exactly as env.step does and pays the env's reward."""

import json

import pytest

from knowgen.config import EnvConfig
from knowgen.envs.privileged import bind_policy
from knowgen.envs.protocol import format_tool_call
from knowgen.envs.searchgen import SearchGenEnv
from knowgen.envs.trl_env import (
    SearchGenToolEnv,
    final_assistant_text,
    make_env_factory,
    searchgen_reward,
    tool_names,
    tool_schemas,
)
from knowgen.errors import ConfigError
from knowgen.reference_policies.oracle import OraclePolicy


def _env(backends, **cfg):
    config = EnvConfig(split="test", **cfg)
    return SearchGenToolEnv(SearchGenEnv(config, **backends), config)


def _single_flag_task(env):
    return next(t for t in env.env.tasks if len(t.facts.entities) == 1)


def _oracle_episode(backends, adapter, request=None):
    """Drive ``adapter`` with the oracle's tool calls; return (task id, final answer text).

    ``request``, when given, is the row's request the adapter must hand the model.
    """
    task = _single_flag_task(adapter)
    row = {"prompt": [{"role": "user", "content": ""}]}
    if request is not None:
        row["request"] = request
    assert adapter.reset(task_id=task.id, **row) == (request or task.prompt)
    oracle = bind_policy(OraclePolicy(), adapter.env)
    obs, info = "", dict(adapter.info)
    oracle.reset(obs, info)
    while True:
        action = oracle.act(obs, {**adapter.info})
        if "<answer>" in action:
            return task.id, action
        call = json.loads(action.split("<tool_call>")[1].split("</tool_call>")[0])
        obs = getattr(adapter, call["name"])(**call["arguments"])


def test_reset_returns_request_and_checks_split(shared_backends):
    adapter = _env(shared_backends)
    task = adapter.env.tasks[5]
    assert adapter.reset(task_id=task.id, split="test") == task.prompt
    assert adapter.info["task_id"] == task.id
    with pytest.raises(ConfigError, match="split"):
        adapter.reset(task_id=task.id, split="train")


def test_a_rows_request_is_what_the_model_reads_and_the_task_is_judged_as_its_own(
        shared_backends):
    said = "Please make a poster of that flag, as the request above asked, in other words."
    paid = []
    for request in (None, said):
        adapter = _env(shared_backends)
        _, answer = _oracle_episode(shared_backends, adapter, request=request)
        assert adapter.env.task.prompt != said  # the task keeps its own words
        paid += searchgen_reward([[{"role": "assistant", "content": answer}]],
                                 environments=[adapter])
    assert paid[0] == paid[1] and paid[0] > 0.5  # same facts, same judges, same reward
    task = adapter.env.task
    assert adapter.reset(task_id=task.id, request="  ") == task.prompt


def test_tools_forward_to_env_step_with_identical_observations(shared_backends):
    adapter = _env(shared_backends)
    plain = SearchGenEnv(EnvConfig(split="test"), **shared_backends)
    task = adapter.env.tasks[0]
    adapter.reset(task_id=task.id)
    plain.reset(options={"task_id": task.id})
    text = adapter.search(["capital city Lima"])
    obs, _, _, _, info = plain.step(format_tool_call("search", {"queries": ["capital city Lima"]}))
    assert "--- search result for [capital city Lima] ---" in text
    assert "<tool_response>" not in text and text in obs.replace("\n</tool_response>", "")
    assert adapter.info == info
    shown = adapter.image_search("Flag of Peru")
    assert "IMG_001: Flag of Peru" in shown
    assert adapter.info["tool_calls_used"] == 2 and adapter.info["image_ids"][0] == "IMG_001"


def test_reward_equals_env_reward_for_the_same_answer(shared_backends):
    adapter = _env(shared_backends)
    task_id, answer = _oracle_episode(shared_backends, adapter)
    completion = [{"role": "assistant", "content": answer}]
    rewards = searchgen_reward([completion], environments=[adapter])
    # Replay the adapter's actions, the final answer included, on a plain environment.
    actions = [m["content"] for m in adapter.env.transcript if m["role"] == "assistant"]
    assert actions[-1] == answer and len(actions) >= 2
    plain = SearchGenEnv(EnvConfig(split="test"), **shared_backends)
    plain.reset(options={"task_id": task_id})
    for action in actions:
        _, reward, terminated, _, info = plain.step(action)
    assert terminated and rewards == [reward] and reward > 0.5
    assert adapter.info["reward_terms"] == info["reward_terms"]
    # The rollout is over: more tools do nothing and the reward stays.
    assert "episode is over" in adapter.search(["x"])
    assert searchgen_reward([completion], environments=[adapter]) == [reward]


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_alpha_selects_image_or_text_reward(shared_backends, alpha):
    adapter = _env(shared_backends, alpha=alpha)
    _, answer = _oracle_episode(shared_backends, adapter)
    [reward] = searchgen_reward([[{"role": "assistant", "content": answer}]],
                                environments=[adapter])
    terms = adapter.info["reward_terms"]
    assert terms["alpha"] == alpha
    assert reward == pytest.approx(terms["text"] if alpha == 1.0 else terms["image"])


def test_no_answer_pays_zero(shared_backends):
    adapter = _env(shared_backends)
    adapter.reset(task_id=adapter.env.tasks[1].id)
    adapter.image_search("Flag of Peru")
    tool_turn = [{"role": "assistant", "content": "", "tool_calls": [{"type": "function"}]},
                 {"role": "tool", "name": "search", "content": "..."}]
    assert searchgen_reward([tool_turn], environments=[adapter]) == [0.0]
    adapter.reset(task_id=adapter.env.tasks[1].id)
    garbage = [{"role": "assistant", "content": "I think it is Peru."}]
    assert searchgen_reward([garbage], environments=[adapter]) == [0.0]
    assert adapter.info["last_action"]["kind"] == "invalid"


def test_reward_function_needs_environments():
    with pytest.raises(ConfigError, match="environment_factory"):
        searchgen_reward([[{"role": "assistant", "content": "x"}]])


def test_final_assistant_text_keeps_reasoning():
    message = {"role": "assistant", "content": "<answer>{}</answer>", "reasoning_content": "r"}
    assert final_assistant_text([message]) == "<think>r</think>\n<answer>{}</answer>"
    assert final_assistant_text([]) is None
    assert final_assistant_text("plain") == "plain"


def test_tool_schemas_come_from_typed_methods():
    schemas = tool_schemas()
    assert [s["function"]["name"] for s in schemas] == tool_names() == [
        "browse", "fetch_image", "image_search", "search"]
    search = next(s for s in schemas if s["function"]["name"] == "search")
    assert search["function"]["parameters"]["properties"]["queries"]["type"] == "array"
    assert search["function"]["parameters"]["required"] == ["queries"]


def test_factory_shares_backends_but_not_episodes(shared_backends):
    factory = make_env_factory(EnvConfig(split="test"))
    first, second = factory(), factory()
    assert first.env is not second.env
    assert first.env.text_search is second.env.text_search
    tasks = first.env.tasks
    assert first.reset(task_id=tasks[0].id) == tasks[0].prompt
    assert second.reset(task_id=tasks[1].id) == tasks[1].prompt
    first.image_search("Flag of Peru")
    assert second.info["tool_calls_used"] == 0


def test_answer_tool_variant_owns_its_reward(shared_backends):
    """The TRL-native style: answer() is a tool and get_reward() returns the env's reward."""
    from knowgen.envs.trl_env import SearchGenAnswerToolEnv

    config = EnvConfig(split="test")
    adapter = SearchGenAnswerToolEnv(SearchGenEnv(config, **shared_backends), config)
    _, answer_text = _oracle_episode(shared_backends, adapter)
    assert adapter.get_reward() == 0.0
    answer = json.loads(answer_text.split("<answer>")[1].split("</answer>")[0])
    reply = adapter.answer(answer["gen_prompt"], answer["reference_images"])
    assert "Reward" in reply and adapter.done
    plain = _env(shared_backends)
    _, expected_answer = _oracle_episode(shared_backends, plain)
    [expected] = searchgen_reward([[{"role": "assistant", "content": expected_answer}]],
                                  environments=[plain])
    assert adapter.get_reward() == expected > 0.5
    assert "answer" in tool_names(SearchGenAnswerToolEnv)
    assert "answer" not in tool_names() and "get_reward" not in tool_names(SearchGenAnswerToolEnv)
    schema = {s["function"]["name"]: s for s in tool_schemas(SearchGenAnswerToolEnv)}["answer"]
    assert set(schema["function"]["parameters"]["required"]) == {"gen_prompt", "reference_images"}
    assert isinstance(make_env_factory(config, answer_tool=True)(), SearchGenAnswerToolEnv)


def test_compact_adapter_offers_two_short_tools_and_compact_results(shared_backends):
    from knowgen.envs.trl_env import CompactSearchGenToolEnv, adapter_class
    from knowgen.envs.views import compact_observation

    assert adapter_class("compact") is CompactSearchGenToolEnv
    assert tool_names(CompactSearchGenToolEnv) == ["image_search", "search"]
    assert len(json.dumps(tool_schemas(CompactSearchGenToolEnv))) < 0.5 * len(
        json.dumps(tool_schemas()))
    config = EnvConfig(split="test", top_k=3)
    compact = CompactSearchGenToolEnv(SearchGenEnv(config, **shared_backends), config)
    full = _env(shared_backends, top_k=3)
    task_id = full.env.tasks[0].id
    compact.reset(task_id=task_id)
    full.reset(task_id=task_id)
    got, want = compact.image_search("Flag of Peru"), full.image_search("Flag of Peru")
    assert got == compact_observation(want) and got.startswith("IMG_001: Flag of Peru")
    assert compact.search(["capital Lima"]) == compact_observation(full.search(["capital Lima"]))
    with pytest.raises(ConfigError, match="answer tool"):
        adapter_class("compact", answer_tool=True)
    with pytest.raises(ConfigError, match="full, compact"):
        make_env_factory(config, view="short")

"""The agent on the transformers backend: a tiny random-weight Qwen3 built from a config.

The tokenizer is trained here on the world's pages (``tiny_agent_dir``); episodes
run in the real world environment with a short turn limit.
"""

import json
from pathlib import Path

import pytest

from knowgen.envs.protocol import parse_action
from knowgen.errors import DataError


@pytest.fixture(scope="module")
def short_env(env_like):
    return env_like(max_turns=4)


@pytest.mark.slow
def test_transformers_policy_runs_an_episode(tiny_agent_dir, short_env, one_entity_task):
    from knowgen.agents.policy import transformers_policy

    policy = transformers_policy(path=str(tiny_agent_dir), device="cpu", seed=1)
    backend = policy.backend
    limit = json.loads((tiny_agent_dir / "knowgen_agent.json").read_text())["generation"][
        "max_new_tokens"]
    assert backend.generation["max_new_tokens"] == limit
    assert backend.system_prompt == "Search the offline world, then answer."
    obs, info = short_env.reset(options={"task_id": one_entity_task.id})
    policy.reset(obs, info)
    done, steps = False, 0
    while not done:
        action = policy.act(obs, info)
        assert isinstance(action, str) and "<|im_end|>" not in action
        assert 0 < backend.last_new_tokens <= limit
        obs, _reward, terminated, truncated, info = short_env.step(action)
        done, steps = terminated or truncated, steps + 1
    assert steps <= 4 and len(policy.turns) == steps - 1
    # the prompt of the last call held every earlier observation, rendered by the chat template
    rendered = backend.render(policy.messages(), policy.tools)
    assert rendered.startswith("<|im_start|>system\nSearch the offline world, then answer.")
    assert rendered.endswith("<|im_start|>assistant\n")
    assert one_entity_task.prompt in rendered and '"name": "image_search"' in rendered
    for _action, observation in policy.turns:
        assert observation.splitlines()[0] in rendered or observation[:40] in rendered


@pytest.mark.slow
def test_transformers_backend_is_deterministic_and_respects_max_new_tokens(
        tiny_agent_dir, short_env, one_entity_task):
    from knowgen.agents.policy import transformers_policy

    def actions(seed, **kwargs):
        policy = transformers_policy(path=str(tiny_agent_dir), device="cpu", seed=seed, **kwargs)
        obs, info = short_env.reset(options={"task_id": one_entity_task.id})
        policy.reset(obs, info)
        out = []
        for _ in range(2):
            out.append(policy.act(obs, info))
            obs, *_rest, info = short_env.step(out[-1])
        return out, policy.backend

    first, _ = actions(7)
    again, _ = actions(7)
    other, _ = actions(8)
    assert first == again and first != other
    _, backend = actions(7, max_new_tokens=5)
    assert backend.generation["max_new_tokens"] == 5 and backend.last_new_tokens <= 5
    greedy, _ = actions(3, temperature=0.0)
    greedy2, _ = actions(4, temperature=0.0)
    assert greedy == greedy2  # greedy decoding ignores the seed


@pytest.mark.slow
def test_tiny_policy_loads_the_packaged_checkpoint(tiny_agent_dir, monkeypatch):
    import knowgen.agents.policy as policy_mod

    monkeypatch.setattr(policy_mod, "tiny_checkpoint_dir", lambda: tiny_agent_dir)
    policy = policy_mod.tiny_policy(seed=5, max_new_tokens=3)
    assert policy.name == "gen-searcher-tiny" and policy.backend.device == "cpu"
    assert policy.backend.path == Path(tiny_agent_dir)
    policy.reset("## Image request\nThe flag of Peru", {"task_id": "x"})
    policy.act("", {})
    assert policy.backend.last_new_tokens <= 3


def test_transformers_backend_errors(monkeypatch, tmp_path):
    import sys

    from knowgen.agents.transformers_backend import TransformersBackend
    from knowgen.errors import MissingDependencyError

    with monkeypatch.context() as m:
        m.setitem(sys.modules, "torch", None)  # as if torch were not installed
        with pytest.raises(MissingDependencyError, match=r"knowgen\[train\]"):
            TransformersBackend(tmp_path)
    pytest.importorskip("torch")
    with pytest.raises(DataError, match="not a model folder"):
        TransformersBackend(tmp_path / "nothing-here")


def test_repeating_tail_finds_short_loops_only():
    from knowgen.agents.transformers_backend import repeating_tail

    assert repeating_tail([5] * 16)
    assert not repeating_tail([5] * 15)
    assert repeating_tail([1, 2, 3] + [7, 8, 9, 10, 11] * 4)
    assert not repeating_tail([7, 8, 9, 10, 11] * 3)
    # a list of references repeats its skeleton but not its ids
    answer = [j for i in range(6) for j in (40, 41, 100 + i, 42, 43, 44)]
    assert not repeating_tail(answer)
    assert not repeating_tail(list(range(200)))


@pytest.mark.slow
def test_loop_guard_ends_a_greedy_reply_stuck_in_a_loop(tiny_agent_dir, short_env, one_entity_task):
    from knowgen.agents.policy import transformers_policy
    from knowgen.agents.transformers_backend import repeating_tail

    def first_reply(**kwargs):
        policy = transformers_policy(path=str(tiny_agent_dir), device="cpu", temperature=0.0,
                                     **kwargs)
        obs, info = short_env.reset(options={"task_id": one_entity_task.id})
        policy.reset(obs, info)
        policy.act(obs, info)
        return policy.backend.last_new_ids, policy.backend

    unguarded, backend = first_reply(stop_loops=False)
    # the random model falls into a loop and writes until its budget runs out
    assert backend.last_new_tokens == backend.generation["max_new_tokens"]
    assert repeating_tail(unguarded)
    guarded, backend = first_reply()
    assert backend.last_new_tokens < backend.generation["max_new_tokens"]
    assert repeating_tail(guarded) and guarded == unguarded[:len(guarded)]


@pytest.mark.slow
def test_format_retries_resample_replies_that_break_the_protocol(
        tiny_agent_dir, short_env, one_entity_task):
    from knowgen.agents.policy import transformers_policy

    def act(**kwargs):
        policy = transformers_policy(path=str(tiny_agent_dir), device="cpu", seed=2,
                                     temperature=0.0, **kwargs)
        obs, info = short_env.reset(options={"task_id": one_entity_task.id})
        policy.reset(obs, info)
        return policy.act(obs, info), policy.backend

    once, backend = act()
    assert backend._calls == 1 and parse_action(once).kind == "invalid"
    retried, backend = act(format_retries=2)
    # the random model never writes a valid turn: one greedy reply, then two sampled ones
    assert backend._calls == 3 and parse_action(retried).kind == "invalid"
    assert retried != once
    again, _ = act(format_retries=2)
    assert again == retried  # resampling follows the policy seed


@pytest.mark.slow
def test_cite_pictures_holds_the_answer_back_until_a_picture_is_shown(
        tiny_agent_dir, env_like, one_entity_task, play_under_rules):
    """A random model under the grammar and ``cite_pictures``: every turn it writes fits
    the rules of the messages it saw (no answer before a picture, only the answer once the
    tools are closed), and the setting is read back from the folder."""
    from knowgen.agents.policy import transformers_policy

    env = env_like(max_turns=4, max_tool_calls=1)
    policy = transformers_policy(path=str(tiny_agent_dir), device="cpu", grammar=True,
                                 cite_pictures=True, max_new_tokens=48)
    assert policy.backend.cite_pictures
    turns = []
    for seed in range(3):
        policy.seed = seed
        turns += play_under_rules(env, policy, one_entity_task.id)
    # random weights rarely finish a turn in 48 tokens, but they do pick its kind
    held = [action for rules, action in turns if not rules["answer"]]
    closed = [action for rules, action in turns if not rules["tools"]]
    assert held and closed and any("<tool_call>" in action for action in held)
    assert not any("<answer>" in action for action in held)
    assert not any("<tool_call>" in action for action in closed)


@pytest.mark.slow
def test_finish_count_makes_the_model_look_for_the_next_counted_picture(tiny_agent_dir, env_like):
    """After the agent's own "flag 1 of 2" and one picture, a random model under
    ``finish_count`` writes no answer, while it may call a tool."""
    from knowgen.agents.transformers_backend import TransformersBackend
    from knowgen.envs.protocol import format_tool_call

    env = env_like(max_tool_calls=3)
    task = next(t for t in env.tasks if t.id.startswith("two_flags"))
    env.reset(options={"task_id": task.id})
    env.step(format_tool_call("image_search", {"query": "Flag of Peru"},
                              think="Next, flag 1 of 2: the official flag of Peru."))
    messages = env.messages()
    backend = TransformersBackend(tiny_agent_dir, device="cpu", grammar=True, cite_pictures=True,
                                  finish_count=True, max_new_tokens=48)
    assert backend.finish_count and backend.reply_rules(messages, None)["answer"] is False
    replies = []
    for seed in range(4):
        backend.reseed(seed)
        replies.append(backend.resample(messages)["content"])
    assert not any("<answer>" in reply for reply in replies)
    assert any("<tool_call>" in reply for reply in replies)


@pytest.mark.slow
def test_fresh_calls_decode_a_repeating_turn_again_without_its_tool(tiny_agent_dir, env_like):
    """``fresh_calls`` (given, or from ``knowgen_agent.json``): a reply that would make the
    episode's earlier call a third time is decoded again with that tool closed. Here the
    turn must call a tool (the agent counted "flag 1 of 3" and has looked twice) and the
    only tool offered can only repeat the image search made twice, so the plain backend
    repeats it and the fresh one, its tool closed, calls nothing (the random model's
    answer may be cut short inside its think block)."""
    import json

    from knowgen.agents.transformers_backend import TransformersBackend
    from knowgen.agents.turn_rules import repeated_tool
    from knowgen.envs.prompt import TOOL_SCHEMAS
    from knowgen.envs.protocol import format_tool_call

    env = env_like(max_tool_calls=4)
    task = next(t for t in env.tasks if t.id.startswith("two_flags"))
    env.reset(options={"task_id": task.id})
    env.step(format_tool_call("image_search", {"query": "Flag of Peru"},
                              think="Next, flag 1 of 3: the official flag of Peru."))
    env.step(format_tool_call("image_search", {"query": "Flag of Peru"}))
    messages = env.messages()
    schema = json.loads(json.dumps(next(t for t in TOOL_SCHEMAS
                                        if t["function"]["name"] == "image_search")))
    schema["function"]["parameters"]["properties"] = {
        "query": {"type": "string", "enum": ["Flag of Peru"]}}
    meta_path = tiny_agent_dir / "knowgen_agent.json"
    meta = json.loads(meta_path.read_text())
    settings = {"device": "cpu", "grammar": True, "cite_pictures": True, "finish_count": True,
                "max_new_tokens": 128}
    plain = TransformersBackend(tiny_agent_dir, **settings)
    try:
        meta_path.write_text(json.dumps({**meta, "generation": {
            **meta.get("generation", {}), "fresh_calls": True}}))
        fresh = TransformersBackend(tiny_agent_dir, **settings)
    finally:
        meta_path.write_text(json.dumps(meta))
    assert fresh.fresh_calls and not plain.fresh_calls
    repeats = 0
    for seed in range(6):
        plain.reseed(seed)
        fresh.reseed(seed)
        again = plain.resample(messages, [schema])["content"]
        reply = fresh.resample(messages, [schema])["content"]
        assert repeated_tool(messages, reply) is None, reply
        if repeated_tool(messages, again) == "image_search":  # the same first draw
            repeats += 1
            assert "<tool_call>" not in reply, reply  # its tool closed: only an answer
    assert repeats  # some draws of the random model finish their call within 128 tokens

"""The verifiers and SkyRL-gym adapters, each run through its framework's own entry point.

verifiers: ``vf.load_environment`` finds ``knowgen.envs.verifiers_env`` and the
environment's own ``evaluate_sync`` plays rollouts against an OpenAI-compatible
endpoint on 127.0.0.1 that replays the scripted policy's turns. SkyRL-gym:
``skyrl_gym.make`` builds the registered environment and the episode is played
with ``init`` / ``step``. Both must pay and show what the same turns pay and
show in-process. (rllm is not on PyPI, so it has no adapter; see the README.)
"""

from __future__ import annotations

import pytest
from serving_helpers import ReplayChatServer, plain, play_in_process


def first_user_text(messages):
    return next(m["content"] for m in messages if m["role"] == "user")


@pytest.mark.slow
def test_verifiers_load_environment_and_evaluate(local_env, world_cache, monkeypatch):
    vf = pytest.importorskip("verifiers")
    env = vf.load_environment("knowgen.envs.verifiers_env", split="test", num_tasks=3,
                              benchmark=f"world:cache_dir={world_cache}")
    rows = list(env.get_eval_dataset())
    assert len(rows) == 3 and [r["info"]["task_id"] for r in rows] == [
        t.id for t in local_env.tasks[:3]]
    records = {r["info"]["task_id"]: play_in_process(local_env, task_id=r["info"]["task_id"])
               for r in rows}
    turns = {first_user_text(r["prompt"]): records[r["info"]["task_id"]]["actions"]
             for r in rows}
    server = ReplayChatServer(turns)
    monkeypatch.setenv("KNOWGEN_TEST_CHAT_KEY", "test-key")
    try:
        client = vf.ClientConfig(api_base_url=server.base_url, max_retries=0,
                                 api_key_var="KNOWGEN_TEST_CHAT_KEY")
        out = env.evaluate_sync(client=client, model="replay", num_examples=3,
                                rollouts_per_example=1, max_concurrent=2)
    finally:
        server.close()
    outputs = out["outputs"]
    assert len(outputs) == 3
    for output in outputs:
        record = records[output["info"]["task_id"]]
        assert output["error"] is None and output["stop_condition"] == "episode_over"
        assert output["reward"] == record["rewards"][-1] > 0
        terms = record["infos"][-1]["reward_terms"]
        assert output["metrics"]["image_reward"] == terms["image"]
        assert output["metrics"]["text_reward"] == terms["text"]
        completion = [m if isinstance(m, dict) else m.model_dump() for m in output["completion"]]
        assert [m["content"] for m in completion if m["role"] == "assistant"] == record["actions"]
        assert [m["content"] for m in completion if m["role"] == "user"] == \
            record["observations"][1:]
    # the prompt the model saw is the environment's own rendering of the task
    local_env.reset(options={"task_id": rows[0]["info"]["task_id"]})
    first = next(b for b in server.requests if first_user_text(b["messages"]) ==
                 first_user_text(rows[0]["prompt"]))
    assert first["messages"][:2] == local_env.messages(fmt="openai")


def test_verifiers_adapter_refuses_unknown_settings():
    pytest.importorskip("verifiers")
    from knowgen.envs.verifiers_env import load_environment
    from knowgen.errors import ConfigError

    with pytest.raises(ConfigError, match="alhpa"):
        load_environment(alhpa=0.3)


@pytest.mark.slow
def test_skyrl_gym_make_plays_an_episode(local_env, recorded, world_cache):
    skyrl_gym = pytest.importorskip("skyrl_gym")
    from knowgen.envs.skyrl_env import register_skyrl_env

    env_id = register_skyrl_env()
    assert register_skyrl_env() == env_id  # idempotent
    for seed in (3, 5):
        record = recorded[seed]
        config = {"split": "test", "benchmark": f"world:cache_dir={world_cache}"}
        env = skyrl_gym.make(env_id, env_config=config,
                             extras={"extra_info": {"task_id": record["task_id"]}})
        chat, meta = env.init([{"role": "user", "content": "the row's prompt is replaced"}])
        local_env.reset(options={"task_id": record["task_id"]})
        assert chat == local_env.messages(fmt="openai")
        assert meta == {"task_id": record["task_id"]}
        outputs = [env.step(action) for action in record["actions"]]
        env.close()
        assert [o["reward"] for o in outputs] == record["rewards"]
        assert [o["done"] for o in outputs] == [any(d) for d in record["done"]]
        shown = [o["observations"][0]["content"] for o in outputs[:-1]]
        assert shown == record["observations"][1:-1]
        assert outputs[-1]["observations"] == []
        assert outputs[-1]["metadata"]["observation"] == record["observations"][-1]
        assert plain(outputs[-1]["metadata"]["info"]) == plain(record["infos"][-1])
        metrics = env.get_metrics()
        assert metrics["reward"] == record["rewards"][-1]
        assert metrics["turns"] == len(record["actions"])


def test_skyrl_env_config_names_unknown_settings():
    pytest.importorskip("skyrl_gym")
    from knowgen.envs.skyrl_env import config_from
    from knowgen.errors import ConfigError

    assert config_from({"alpha": 0.3}).alpha == 0.3
    with pytest.raises(ConfigError, match="splitt"):
        config_from({"splitt": "train"})

"""Whole episodes through OpenEnv's own clients against the served SearchGenEnv.

The reference is always the same seed played in-process with the scripted
policy: observations, rewards, done flags, image ids and ``info`` must come back
unchanged over the WebSocket session, over the HTTP session routes, and from
``knowgen serve env`` started as a real process.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("openenv")

from openenv.core import GenericEnvClient
from serving_helpers import free_port, plain

from knowgen.envs.messages import listed_image_ids
from knowgen.envs.openenv_client import SearchGenEnvClient, SearchGenHttpSession
from knowgen.envs.openenv_models import SearchGenAction
from knowgen.envs.protocol import parse_action
from knowgen.registry import POLICIES


def expected_ids(record, k):
    """The image ids observation ``k`` of an in-process record lists (with files attached)."""
    shown = record["infos"][k]["observation_images"]
    return listed_image_ids(record["observations"][k])[:len(shown)]


def check_step(result, record, k):
    """``result`` (an OpenEnv StepResult) equals observation ``k`` of the in-process record."""
    obs = result.observation
    assert obs.text == record["observations"][k]
    assert obs.metadata["info"] == plain(record["infos"][k])
    assert obs.image_ids == expected_ids(record, k)
    if k == 0:
        assert result.reward is None and result.done is False
    else:
        terminated, truncated = record["done"][k - 1]
        assert result.reward == record["rewards"][k - 1]
        assert result.done is (terminated or truncated)
        assert (obs.metadata["terminated"], obs.metadata["truncated"]) == (terminated, truncated)


def play_remote(env, seed, make_action=lambda text, known: SearchGenAction(text=text)):
    """Play ``seed`` with the scripted policy acting on what the server sends back."""
    policy = POLICIES.create("scripted", seed=0)
    results = [env.reset(seed=seed)]
    policy.reset(results[0].observation.text, results[0].observation.metadata["info"])
    while not results[-1].done:
        obs = results[-1].observation
        info = obs.metadata["info"]
        results.append(env.step(make_action(policy.act(obs.text, info), info["image_ids"])))
    return results


def check_episode(results, record):
    assert len(results) == len(record["observations"])
    for k, result in enumerate(results):
        check_step(result, record, k)


def structured(text, known):
    """The same turn as a typed dict-form action (tool + arguments, or answer)."""
    parsed = parse_action(text, known)
    if parsed.kind == "tool":
        return SearchGenAction(tool=parsed.tool_call.name, arguments=parsed.tool_call.arguments,
                               think=parsed.think or None)
    return SearchGenAction(answer=parsed.answer.to_dict(), think=parsed.think or None)


def test_websocket_sessions_replay_in_process_episodes(served, recorded):
    with SearchGenEnvClient(base_url=served.url).sync() as env:
        for seed in (0, 1, 2, 3):
            check_episode(play_remote(env, seed), recorded[seed])
        state = env.state()
    last = recorded[3]
    assert (state.task_id, state.done, state.step_count) == (last["task_id"], True,
                                                             len(last["actions"]))
    assert state.image_ids == last["infos"][-1]["image_ids"]
    shown = [i for rec in recorded.values() for k in range(len(rec["observations"]))
             for i in expected_ids(rec, k)]
    assert shown, "the scripted episodes should list images"


def test_dict_and_tool_call_actions_equal_the_text_turns(served, recorded):
    record = recorded[1]
    with SearchGenEnvClient(base_url=served.url).sync() as env:
        check_episode(play_remote(env, 1, structured), record)

    def as_tool_calls(text, known):
        parsed = parse_action(text, known)
        name = parsed.tool_call.name if parsed.kind == "tool" else "answer"
        args = parsed.tool_call.arguments if parsed.kind == "tool" else parsed.answer.to_dict()
        return SearchGenAction(tool_calls=[{"id": "c1", "type": "function",
                                            "function": {"name": name, "arguments": args}}])

    with SearchGenEnvClient(base_url=served.url).sync() as env:
        results = play_remote(env, 1, as_tool_calls)
    assert [r.observation.text for r in results] == record["observations"]
    assert [r.reward for r in results[1:]] == record["rewards"]


def test_generic_openenv_client_with_plain_dicts(served, recorded):
    record = recorded[2]
    with GenericEnvClient(base_url=served.url).sync() as env:
        first = env.reset(seed=2)
        assert first.observation["text"] == record["observations"][0]
        for k, action in enumerate(record["actions"], start=1):
            result = env.step({"text": action})
            assert result.observation["text"] == record["observations"][k]
            assert result.reward == record["rewards"][k - 1]
        assert result.done


def test_http_sessions_replay_in_process_episodes(served, recorded):
    with SearchGenHttpSession(served.url) as session:
        for seed in (0, 4):
            check_episode(play_remote(session, seed), recorded[seed])
        state = session.state()
        assert state.task_id == recorded[4]["task_id"] and state.done


def test_images_come_with_the_observation_on_request(served, recorded):
    record = recorded[0]
    with SearchGenEnvClient(base_url=served.url).sync() as env:
        plain_run = play_remote(env, 0)
        policy = POLICIES.create("scripted", seed=0)
        result = env.reset(seed=0, images=True)
        policy.reset(result.observation.text, result.observation.metadata["info"])
        with_images = [result]
        while not result.done:
            obs = result.observation
            result = env.step(SearchGenAction(text=policy.act(obs.text, obs.metadata["info"])))
            with_images.append(result)
    assert all(not r.observation.images for r in plain_run)
    attached = 0
    for k, result in enumerate(with_images):
        obs = result.observation
        paths = record["infos"][k]["observation_images"]
        assert [i.img_id for i in obs.images] == obs.image_ids == expected_ids(record, k)
        for image, path in zip(obs.images, paths):
            assert base64.b64decode(image.data) == Path(path).read_bytes()
            assert image.media_type == "image/png"
            attached += 1
    assert attached > 0


def test_schema_health_metadata_and_openenv_runtime_validation(served):
    from openenv.cli._validation import validate_running_environment

    schema = httpx.get(f"{served.url}/schema").json()
    assert {"text", "tool", "arguments", "answer", "tool_calls"} <= set(
        schema["action"]["properties"])
    assert {"text", "image_ids", "images", "reward", "done", "metadata"} <= set(
        schema["observation"]["properties"])
    assert {"task_id", "turn", "episode_id", "step_count"} <= set(schema["state"]["properties"])
    assert httpx.get(f"{served.url}/health").json() == {"status": "healthy"}
    assert httpx.get(f"{served.url}/metadata").json()["name"] == "knowgen-searchgen"
    report = validate_running_environment(served.url)
    failed = [c for c in report["criteria"] if not c["passed"]]
    assert report["passed"], failed
    assert report["mode"] == "simulation"


def test_stateless_http_routes_reset_and_explain_step(served, recorded):
    first = httpx.post(f"{served.url}/reset", json={"seed": 5})
    assert first.status_code == 200
    assert first.json()["observation"]["text"] == recorded[5]["observations"][0]
    step = httpx.post(f"{served.url}/step", json={"action": {"text": "hello"}})
    assert step.status_code == 409
    assert "/ws" in step.json()["error"] and "POST /sessions" in step.json()["error"]
    assert httpx.get(f"{served.url}/state").status_code == 200


def test_task_api_lists_the_served_split(served, local_env):
    base = f"{served.url}/knowgen-searchgen"
    assert httpx.get(f"{base}/splits").json() == [{"name": "test", "type": "test"}]
    count = httpx.post(f"{base}/num_tasks", json={"split": "test"}).json()["num_tasks"]
    assert count == len(local_env.tasks)
    task = httpx.post(f"{base}/task", json={"split": "test", "index": 3}).json()["task"]
    assert (task["id"], task["prompt"]) == (local_env.tasks[3].id, local_env.tasks[3].prompt)
    assert httpx.post(f"{base}/task", json={"split": "test", "index": count}).status_code == 400
    wrong = httpx.post(f"{base}/num_tasks", json={"split": "train"})
    assert wrong.status_code == 422 and "serves split 'test'" in wrong.json()["error"]


def listening_hosts(port: int) -> set[str]:
    """Local IPv4 addresses listening on ``port`` (from /proc/net/tcp, no traffic sent)."""
    hosts = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            octets = bytes.fromhex(address)[::-1]
            hosts.add(".".join(str(b) for b in octets))
    return hosts


@pytest.mark.slow
def test_knowgen_serve_env_process_plays_the_same_episodes(world_cache, recorded, tmp_path):
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "knowgen", "serve", "env", "--port", str(port),
         "--benchmark", f"world:cache_dir={world_cache}", "--max-sessions", "4"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start in 180 s"
            time.sleep(0.5)
        assert listening_hosts(port) == {"127.0.0.1"}
        with SearchGenEnvClient(base_url=url).sync() as env:
            for seed in (6, 7):
                check_episode(play_remote(env, seed), recorded[seed])
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()

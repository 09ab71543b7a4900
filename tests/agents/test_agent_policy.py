"""The Gen-Searcher agent policy, mostly on its OpenAI-compatible backend.

The OpenAI backend talks to a real HTTP server on 127.0.0.1 that speaks the chat
completions wire format. The transformers backend's own tests are in
``test_agent_transformers.py``; the packaged checkpoint's grammar test is here.
"""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from knowgen.agents.agent import GenSearcherAgent, load_system_prompt, message_to_text
from knowgen.agents.llm import AgentBackendError, OpenAIChatBackend, read_assistant_message
from knowgen.agents.policy import openai_policy, tiny_checkpoint_dir
from knowgen.envs.prompt import TOOL_SCHEMAS, split_first_observation
from knowgen.envs.protocol import parse_action
from knowgen.errors import ConfigError, DataError
from knowgen.reference_policies.common import parse_images
from knowgen.registry import Registry
from knowgen.world.data import load_world

KEY_ENV = "KNOWGEN_TEST_AGENT_KEY"
KEY = "sk-agent-test-key"


class ChatServer:
    """A chat-completions endpoint on 127.0.0.1; ``script(body, n)`` gives each reply message."""

    def __init__(self, script):
        self.script, self.requests = script, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body,
                                        "auth": self.headers.get("Authorization")})
                status, payload = server.reply(body, len(server.requests) - 1)
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def reply(self, body, n):
        out = self.script(body, n)
        if isinstance(out, tuple):
            return out
        message = {"role": "assistant", "content": None, **out}
        return 200, {"id": f"c{n}", "object": "chat.completion", "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": "stop", "message": message}]}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    servers = []
    yield lambda script: servers.append(ChatServer(script)) or servers[-1]
    for s in servers:
        s.close()


def play(env, policy, task_id, **options):
    obs, info = env.reset(options={"task_id": task_id, **options})
    policy.reset(obs, info)
    actions, done = [], False
    while not done:
        action = policy.act(obs, info)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return reward, info, actions


ORDINALS = ("first", "second", "third", "fourth", "fifth")


def tool_text(message):
    content = message["content"]
    return content if isinstance(content, str) else "\n".join(
        p["text"] for p in content if p["type"] == "text")


def searching_model(tasks):
    """A scripted model that knows ``tasks``: it image-searches each entity, then answers.

    It reads the request and the tool results from the request body, so every
    answer depends on what the policy actually sent.
    """
    by_prompt = {t.prompt: t for t in tasks}

    def script(body, n):
        messages = body["messages"]
        task = by_prompt[next(m["content"] for m in messages if m["role"] == "user")]
        titles = [official_title(task, i) for i in range(len(task.facts.entities))]
        results = [tool_text(m) for m in messages if m["role"] == "tool"]
        if len(results) < len(titles):
            args = json.dumps({"query": titles[len(results)]})
            return {"content": "<think>I need the official picture.</think>",
                    "tool_calls": [{"id": f"call_{len(results)}", "type": "function",
                                    "function": {"name": "image_search", "arguments": args}}]}
        ids = [next(i.img_id for i in parse_images(text) if i.title == title)
               for text, title in zip(results, titles)]
        shown = " beside ".join(f"the {ORDINALS[k]} reference image ({title})"
                                for k, title in enumerate(titles))
        texts = ", then ".join(f'"{t}"' for t in task.facts.required_text)
        prompt = f"A clean poster showing {shown}"
        prompt += f", with the text {texts} on banners below." if texts else "."
        answer = {"gen_prompt": prompt, "reference_images": [
            {"img_id": i, "note": title} for i, title in zip(ids, titles)]}
        return {"content": f"<think>Found them.</think>\n<answer>{json.dumps(answer)}</answer>"}

    return script


def official_title(task, index=0):
    return load_world().images[task.facts.entities[index].image_id].title


def test_openai_policy_plays_an_episode_to_a_positive_reward(serve, world_env, one_entity_task):
    title = official_title(one_entity_task)
    server = serve(searching_model([one_entity_task]))
    policy = openai_policy(model="gen-searcher-8b", base_url=server.base_url, api_key_env=KEY_ENV)
    reward, info, actions = play(world_env, policy, one_entity_task.id)
    assert reward > 0.9 and info["last_action"]["kind"] == "answer"
    entity = one_entity_task.facts.entities[0]
    assert [r["image_id"] for r in info["references"]] == [entity.image_id]
    # the tool call came back through function calling and was written in the text protocol
    assert parse_action(actions[0]).tool_call.arguments == {"query": title}
    first, second = (r["body"] for r in server.requests)
    assert all(r["path"] == "/v1/chat/completions" and r["auth"] == f"Bearer {KEY}"
               for r in server.requests)
    assert (first["temperature"], first["top_p"], first["model"]) == (0.6, 0.9, "gen-searcher-8b")
    assert [t["function"]["name"] for t in first["tools"]] == [
        "search", "image_search", "browse", "fetch_image"]
    instructions, request = split_first_observation(world_env.reset(
        options={"task_id": one_entity_task.id})[0])
    assert first["messages"] == [{"role": "system", "content": instructions},
                                 {"role": "user", "content": request}]
    assert request == one_entity_task.prompt
    # second request: the assistant's tool call and the tool result, as OpenAI messages
    call_msg, tool_msg = second["messages"][2:]
    call = call_msg["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"query": title}
    assert tool_msg["tool_call_id"] == call["id"] and title in tool_msg["content"]
    assert "<tool_response>" not in tool_msg["content"]
    assert first["seed"] != second["seed"]


def test_images_travel_as_data_url_blocks(serve, world_env, one_entity_task):
    server = serve(searching_model([one_entity_task]))
    policy = openai_policy(model="m", base_url=server.base_url, api_key_env=KEY_ENV, images=True)
    reward, _info, _ = play(world_env, policy, one_entity_task.id)
    assert reward > 0.9
    tool_msg = server.requests[1]["body"]["messages"][-1]
    assert tool_msg["role"] == "tool" and tool_msg["content"][0]["type"] == "text"
    listed = parse_images(tool_msg["content"][0]["text"])
    urls = [p["image_url"]["url"] for p in tool_msg["content"][1:]]
    assert len(urls) == len(listed) >= 1
    for url, image in zip(urls, listed):
        assert url.startswith("data:image/png;base64,")
        assert base64.b64decode(url.split(",", 1)[1]) == Path(image.local_path).read_bytes()
    # the first request has no tool result, so no image
    assert all(isinstance(m["content"], str) for m in server.requests[0]["body"]["messages"])


UPSTREAM_PY = '''\
"""Prompts of an agent."""
import os
raise SystemExit("this module must never be run")
MAX_TURNS = 10
GREETING = "not this one"
SYSTEM_PROMPT_AGENT = (
    "You are a careful searcher. "
    "Think, then call one tool."
)
OTHER_PROMPT = "not the first"
'''


@pytest.mark.parametrize("kind", ["py", "txt"])
def test_system_prompt_from_a_file(serve, world_env, one_entity_task, tmp_path, kind):
    expected = "You are a careful searcher. Think, then call one tool."
    path = tmp_path / "checkout" / f"prompts.{kind}"
    path.parent.mkdir()
    path.write_text(UPSTREAM_PY if kind == "py" else f"\n{expected}\n", encoding="utf-8")
    server = serve(searching_model([one_entity_task]))
    registry = Registry("policy", {"openai": "knowgen.agents.policy:openai_policy"})
    policy = registry.create(f"openai:model=m,base_url={server.base_url},api_key_env={KEY_ENV},"
                             f"system_prompt_from={path}", seed=4)
    reward, _info, _ = play(world_env, policy, one_entity_task.id)
    assert reward > 0.9
    for req in server.requests:
        assert req["body"]["messages"][0] == {"role": "system", "content": expected}


def test_system_prompt_errors_say_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="is not a file"):
        load_system_prompt(tmp_path / "missing.py")
    bad = tmp_path / "noprompt.py"
    bad.write_text("TEXT = 'x'\ndef f():\n    PROMPT = 'inside a function'\n")
    with pytest.raises(ConfigError, match="PROMPT.*TEXT"):
        load_system_prompt(bad)
    broken = tmp_path / "broken.py"
    broken.write_text("PROMPT = 'unterminated\n")
    with pytest.raises(ConfigError, match="not valid Python"):
        load_system_prompt(broken)
    (tmp_path / "empty.md").write_text("  \n")
    with pytest.raises(ConfigError, match="empty"):
        load_system_prompt(tmp_path / "empty.md")


def test_api_key_model_and_refusals(serve, monkeypatch):
    monkeypatch.delenv("KNOWGEN_UNSET_KEY", raising=False)
    with pytest.raises(ConfigError, match="KNOWGEN_UNSET_KEY"):
        openai_policy(model="m", api_key_env="KNOWGEN_UNSET_KEY")
    with pytest.raises(ConfigError, match="model=NAME"):
        openai_policy(base_url="http://127.0.0.1:9/v1", api_key_env="")
    server = serve(lambda body, n: (404, {"error": {"message": "model m does not exist"}}))
    backend = OpenAIChatBackend("m", base_url=server.base_url, api_key_env="", retries=0)
    with pytest.raises(AgentBackendError, match="HTTP 404.*model name"):
        backend.complete([{"role": "user", "content": "hi"}], TOOL_SCHEMAS)
    assert server.requests[0]["auth"] is None  # no key for a local server


def test_message_replies_and_conversion(serve, world_env, one_entity_task):
    server = serve(searching_model([one_entity_task]))
    backend = OpenAIChatBackend("m", base_url=server.base_url, api_key_env="")
    policy = GenSearcherAgent(backend, action_format="message", tools=False)
    obs, info = world_env.reset(options={"task_id": one_entity_task.id})
    policy.reset(obs, info)
    action = policy.act(obs, info)
    assert action["tool_calls"][0]["function"]["name"] == "image_search"
    assert "tools" not in server.requests[0]["body"] and "seed" not in server.requests[0]["body"]
    text = message_to_text(action)
    assert text.startswith("<think>I need") and parse_action(text).kind == "tool"
    # arguments already a dict, broken JSON arguments and vLLM's reasoning field
    assert parse_action(message_to_text({"tool_calls": [{"function": {
        "name": "search", "arguments": {"queries": ["x"]}}}]})).kind == "tool"
    broken = parse_action(message_to_text({"tool_calls": [{"function": {
        "name": "search", "arguments": "{'queries': 1"}}]}))
    assert broken.kind == "invalid" and "not valid JSON" in broken.error
    raw = json.dumps({"choices": [{"message": {"content": "<answer>{}</answer>",
                                               "reasoning_content": "hmm"}}]}).encode()
    assert read_assistant_message(raw)["content"] == "<think>hmm</think>\n<answer>{}</answer>"
    with pytest.raises(ConfigError, match="action_format"):
        GenSearcherAgent(backend, action_format="xml")


def test_tiny_checkpoint_location_and_missing_message(monkeypatch, tmp_path):
    import knowgen.agents
    import knowgen.agents.policy as policy_mod

    folder = tiny_checkpoint_dir()
    assert folder == Path(knowgen.agents.__file__).parent / "checkpoints" / "gen-searcher-tiny"
    monkeypatch.setattr(policy_mod, "tiny_checkpoint_dir", lambda: tmp_path / "absent")
    with pytest.raises(DataError, match="knowgen train tiny --out runs/tiny"):
        policy_mod.tiny_policy()
    with pytest.raises(ConfigError, match="path=DIR"):
        policy_mod.transformers_policy()


# ------------------------------------------------------------------ transformers
@pytest.mark.parametrize("name,kind", [("accelerate_multi_gpu.yaml", "MULTI_GPU"),
                                       ("accelerate_deepspeed_zero3.yaml", "DEEPSPEED")])
def test_accelerate_configs_load(name, kind):
    pytest.importorskip("accelerate")
    from accelerate.commands.config.config_args import load_config_from_file

    import knowgen.agents

    path = Path(knowgen.agents.__file__).parent / "configs" / name
    config = load_config_from_file(str(path))
    assert config.distributed_type.name == kind and config.mixed_precision == "bf16"
    assert config.num_processes >= 2 and config.num_machines == 1


@pytest.mark.slow
def test_knowgen_eval_runs_the_openai_policy(serve, world_env, tmp_path, monkeypatch, capsys):
    from knowgen.cli import main
    from knowgen.eval.report import load_summary
    from knowgen.registry import POLICIES

    monkeypatch.setitem(POLICIES._entries, "openai", "knowgen.agents.policy:openai_policy")
    cache = world_env.benchmark.gt_dir.parent.parent
    tasks = world_env.benchmark.tasks("test")
    server = serve(searching_model(tasks))
    run = tmp_path / "run"
    spec = f"openai:model=m,base_url={server.base_url},api_key_env={KEY_ENV}"
    prompt_file = tmp_path / "upstream, checkout" / "system_prompt.txt"
    prompt_file.parent.mkdir()
    prompt_file.write_text("Official system prompt, read at run time.\n")
    rc = main(["eval", "--policy", spec, "--limit", "3", "--benchmark",
               f"world:cache_dir={cache}", "--run-dir", str(run), "--no-progress",
               "--system-prompt-from", str(prompt_file)])
    assert rc == 0, capsys.readouterr().out
    systems = {m["content"] for r in server.requests for m in r["body"]["messages"]
               if m["role"] == "system"}
    assert systems == {"Official system prompt, read at run time."}
    summary = load_summary(run)
    assert summary["n_evaluated"] == 3 and summary["k_score"] > 80
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3
    assert len(server.requests) == sum(s["turns"] for s in samples)


def test_format_retries_need_a_backend_that_resamples():
    class OneShot:
        fmt = "openai"

        def complete(self, messages, tools):
            return {"role": "assistant", "content": "hello"}

    with pytest.raises(ConfigError, match="OneShot cannot"):
        GenSearcherAgent(OneShot(), format_retries=1)
    with pytest.raises(ConfigError, match=">= 0"):
        GenSearcherAgent(OneShot(), format_retries=-1)


def test_openai_format_retries_ask_again_and_hand_over_the_reply_that_parses(
        serve, world_env, one_entity_task, tmp_path):
    """A broken first reply is resampled; the environment only ever sees valid turns."""
    expert = searching_model([one_entity_task])
    seen = {}

    def script(body, n):  # the first reply to each conversation breaks the protocol
        key = json.dumps(body["messages"])
        seen[key] = seen.get(key, 0) + 1
        return {"content": "I will look for it"} if seen[key] == 1 else expert(body, n)

    server = serve(script)
    options = {"model": "m", "base_url": server.base_url, "api_key_env": KEY_ENV,
               "temperature": 0, "seed": 3, "format_retries": 1,
               "cache_dir": str(tmp_path / "cache")}
    reward, _, actions = play(world_env, openai_policy(**options), one_entity_task.id)
    assert reward > 0.9 and len(actions) == 2
    assert all(parse_action(a, ["IMG_001"]).kind != "invalid" for a in actions)
    bodies = [r["body"] for r in server.requests]
    assert len(bodies) == 4 and all("knowgen_attempt" not in b for b in bodies)
    # retries sample even though the policy decodes greedily, each with its own seed
    assert [b["temperature"] for b in bodies] == [0, 0.6, 0, 0.6]
    assert len({b["seed"] for b in bodies}) == 4
    # a rerun reads all four replies, retries included, back from the cache
    again = play(world_env, openai_policy(**options), one_entity_task.id)
    assert again[2] == actions and len(server.requests) == 4


@pytest.mark.parametrize("drop", [False, True])
def test_drop_invalid_turns_keeps_broken_turns_out_of_the_next_request(
        serve, world_env, one_entity_task, drop):
    broken = "<think>Search first.</think> I will look for the flag"
    expert = searching_model([one_entity_task])

    def script(body, n):  # one turn that breaks the protocol, then the expert
        return {"content": broken} if n == 0 else expert(body, n)

    server = serve(script)
    policy = openai_policy(model="m", base_url=server.base_url, api_key_env=KEY_ENV,
                           drop_invalid_turns=drop)
    reward, info, actions = play(world_env, policy, one_entity_task.id)
    assert parse_action(actions[0]).kind == "invalid" and info["last_action"]["kind"] == "answer"
    assert reward > 0.9 and len(actions) == 3
    second = json.dumps(server.requests[1]["body"]["messages"])
    # the env still saw and counted the broken turn; only the model's context leaves it out
    assert ("I will look for the flag" in second) is not drop
    assert ("No <tool_call> or <answer>" in second) is not drop
    assert policy.dropped_turns == int(drop) and len(policy.turns) == 2 - int(drop)


@pytest.mark.parametrize("resample", [False, True])
def test_resample_repeats_asks_again_when_a_reply_repeats_an_earlier_call(
        serve, world_env, one_entity_task, resample):
    """A model that repeats its image search word for word is asked again under
    ``resample_repeats``; without it the repeat reaches the environment."""
    expert = searching_model([one_entity_task])
    first = {}

    def script(body, n):  # after the first search, the first reply repeats it
        key = json.dumps(body["messages"])
        first[key] = key not in first
        if n and first[key] and sum(m["role"] == "tool" for m in body["messages"]) == 1:
            return expert({**body, "messages": body["messages"][:2]}, 0)
        return expert(body, n)

    server = serve(script)
    policy = openai_policy(model="m", base_url=server.base_url, api_key_env=KEY_ENV,
                           format_retries=1, resample_repeats=resample)
    reward, _, actions = play(world_env, policy, one_entity_task.id)
    assert reward > 0.9
    ids = [f"IMG_{i:03d}" for i in range(1, 40)]
    kinds = [parse_action(a, ids).kind for a in actions]
    assert kinds == ["tool"] * (1 + (not resample)) + ["answer"]
    if not resample:
        assert parse_action(actions[0]).tool_call == parse_action(actions[1]).tool_call
    assert len(server.requests) == 3


@pytest.mark.parametrize("turns,calls", [(2, 8), (3, 1)])
def test_a_dropped_turn_still_passes_on_that_the_next_turn_must_answer(
        serve, env_like, one_entity_task, turns, calls):
    """The notice rides on the broken turn's error reply (last turn, or tools spent after
    one call); dropping the turn must not hide it from the model."""
    from knowgen.envs.observations import TOOLS_CLOSED

    env = env_like(max_turns=turns, max_tool_calls=calls)
    expert = searching_model([one_entity_task])
    broken = "<think>Now answer.</think> The flag"

    def script(body, n):  # the expert's first call (when one is left), then a broken turn
        return expert(body, 0) if n == 0 and turns > 2 else {"content": broken}

    server = serve(script)
    policy = openai_policy(model="m", base_url=server.base_url, api_key_env=KEY_ENV,
                           drop_invalid_turns=True)
    play(env, policy, one_entity_task.id)
    last = server.requests[-1]["body"]["messages"]
    assert policy.dropped_turns >= 1 and "The flag" not in json.dumps(last)
    assert TOOLS_CLOSED in last[-1]["content"]
    assert json.dumps(last).count(TOOLS_CLOSED) == 1


@pytest.mark.slow
def test_packaged_agent_decodes_with_the_grammar_and_finishes_a_turn_it_used_to_break(tmp_path):
    """The shipped checkpoint on the two-hop request it used to break (its capital is in it).

    Unconstrained, after copying the country's name into the answer's banner text the
    model closes the whole answer (``\\"Liechtenstein"}]}``), which is not JSON. With the
    checkpoint's own settings the grammar refuses that token and the turn parses. The
    request is served from a task file, word for word as the world once generated it.
    Retrained checkpoints may slip elsewhere; then pick another request that shows it.
    """
    from knowgen.agents.grammar import ReplyGrammar
    from knowgen.agents.policy import tiny_policy
    from knowgen.benchmarks.world import WorldBenchmark
    from knowgen.envs.searchgen import SearchGenEnv

    if not (tiny_checkpoint_dir() / "config.json").is_file():
        pytest.skip("no gen-searcher-tiny checkpoint is installed")
    task_id = "flag_by_capital-li"
    record = {"id": task_id, "meta": {"category": "geography", "difficulty": "medium"},
              "prompt": "Draw the national flag of the country whose capital city is Vaduz. "
                        "Under the flag, put a dark banner with that country's name written "
                        "in capital letters.",
              "facts": {"entities": ["country/li"], "required_text": ["LIECHTENSTEIN"],
                        "text_case": "upper"}}
    task_file = tmp_path / "tasks.jsonl"
    task_file.write_text(json.dumps(record) + "\n", encoding="utf-8")
    bench = WorldBenchmark(cache_dir=str(tmp_path / "cache"), tasks=str(task_file))
    env = SearchGenEnv(benchmark=bench, split="test")
    constrained = tiny_policy()
    assert constrained.backend.grammar and constrained.drop_invalid_turns
    reward, info, actions = play(env, constrained, task_id)
    assert info["last_action"]["kind"] == "answer" and reward > 0.5
    assert "Liechtenstein" in parse_action(actions[-1], ["IMG_001"]).answer.gen_prompt
    tools = constrained.backend.tools
    assert all(ReplyGrammar(tools, ["IMG_001"]).feed(a) for a in actions)
    _, _, free = play(env, tiny_policy(grammar=False, format_retries=0), task_id)
    assert free[:2] == actions[:2]  # the same searches, then the broken answer
    assert parse_action(free[2], ["IMG_001"]).kind == "invalid" and '"}]}' in free[2]

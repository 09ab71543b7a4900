"""Shared fixtures of the agent tests: a world environment and a tiny random-weight checkpoint."""

import json
from pathlib import Path

import pytest

from knowgen.envs.prompt import TOOL_SCHEMAS
from knowgen.envs.searchgen import SearchGenEnv
from knowgen.world.data import load_world

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>",
                  "<tool_response>", "</tool_response>", "<think>", "</think>"]
MAX_NEW_TOKENS = 24


def build_tiny_checkpoint(folder):
    """A random Qwen3 and a byte-level BPE tokenizer trained on world pages, saved to ``folder``."""
    import torch
    import trl
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    lines = [line for page in list(load_world().pages.values())[:60]
             for line in page.text.splitlines() if line.strip()][:400]
    assert len(lines) >= 200
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(lines, trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>")
    template = Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja"
    tokenizer.chat_template = template.read_text(encoding="utf-8")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=16, max_position_embeddings=16384, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    Qwen3ForCausalLM(config).save_pretrained(folder)
    settings = {"system_prompt": "Search the offline world, then answer.",
                "tools": list(TOOL_SCHEMAS),
                "generation": {"max_new_tokens": MAX_NEW_TOKENS, "temperature": 1.0,
                               "top_p": 0.95, "do_sample": True}}
    (Path(folder) / "knowgen_agent.json").write_text(json.dumps(settings), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_agent_dir(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny_agent"))


@pytest.fixture(scope="session")
def world_env(tmp_path_factory):
    from knowgen.benchmarks.world import WorldBenchmark

    bench = WorldBenchmark(cache_dir=str(tmp_path_factory.mktemp("world_cache")))
    return SearchGenEnv(benchmark=bench, split="test")


@pytest.fixture(scope="session")
def env_like(world_env):
    """Build a world environment on ``world_env``'s backends with other settings."""

    def make(**settings):
        return SearchGenEnv(benchmark=world_env.benchmark, text_search=world_env.text_search,
                            image_search=world_env.image_search, browser=world_env.browser,
                            generator=world_env.generator, image_judge=world_env.image_judge,
                            text_judge=world_env.text_judge, **{"split": "test", **settings})

    return make


@pytest.fixture(scope="session")
def one_entity_task(world_env):
    return next(t for t in world_env.tasks if len(t.facts.entities) == 1)


@pytest.fixture(scope="session")
def play_under_rules():
    """Play one episode with a checkpoint policy; every turn must fit the turn rules the
    backend computed from the messages it saw. Returns ``[(rules, action), ...]``."""
    from knowgen.agents.grammar import ReplyGrammar

    def play(env, policy, task_id):
        obs, info = env.reset(options={"task_id": task_id})
        policy.reset(obs, info)
        turns, done = [], False
        while not done:
            action = policy.act(obs, info)
            rules = policy.backend.reply_rules(policy.messages(), policy.tools)
            assert ReplyGrammar(**rules).feed(action), (rules, action)
            turns.append((rules, action))
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        return turns

    return play

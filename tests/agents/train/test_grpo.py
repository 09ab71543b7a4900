"""GRPO through TRL with the adapter: smoke steps, tool-output masking, the env's reward."""

import copy
import json

import pytest
import torch

from knowgen.agents.train.grpo import build_grpo_trainer, grpo_arguments, run_grpo
from knowgen.agents.train.sft import AGENT_FILE
from knowgen.config import EnvConfig
from knowgen.envs.searchgen import SearchGenEnv
from knowgen.envs.trl_env import CompactSearchGenToolEnv, tool_schemas
from knowgen.errors import ConfigError
from knowgen.world.data import load_world


@pytest.mark.slow
def test_smoke_grpo_runs_two_steps_and_saves(smoke_run):
    cfg, _ = smoke_run
    final = run_grpo(cfg)
    assert (final / "model.safetensors").is_file() and (final / AGENT_FILE).is_file()
    assert list((final.parent / "runs").rglob("events.out.tfevents.*"))
    meta = json.loads((final / AGENT_FILE).read_text())
    assert meta["tools"] == tool_schemas(CompactSearchGenToolEnv) and meta["view"] == "compact"
    assert meta["system_prompt"] == cfg.system_prompt


@pytest.mark.slow
def test_bf16_grpo_step_keeps_float32_weights(tmp_path, smoke_run):
    from safetensors.torch import load_file

    cfg = copy.deepcopy(smoke_run[0])
    cfg.output_dir, cfg.precision, cfg.grpo.init = str(tmp_path), "bf16", str(smoke_run[1])
    cfg.grpo.max_steps = 1
    final = run_grpo(cfg)
    tensors = list(load_file(str(final / "model.safetensors")).values())
    assert tensors and {t.dtype for t in tensors} == {torch.float32}
    assert all(bool(torch.isfinite(t).all()) for t in tensors)


@pytest.mark.slow
def test_grpo_resumes_to_a_longer_run(tmp_path, smoke_run):
    """A run stopped after its checkpoint goes on with ``grpo.resume`` and a larger
    ``grpo.max_steps`` (how a CPU trains GRPO in stages), and refuses to resume from nothing."""
    cfg = copy.deepcopy(smoke_run[0])
    cfg.output_dir, cfg.grpo.init = str(tmp_path), str(smoke_run[1])
    cfg.grpo.max_steps, cfg.grpo.save_steps = 1, 1
    first = run_grpo(cfg).parent / "checkpoint-1" / "trainer_state.json"
    step_one = [h for h in json.loads(first.read_text())["log_history"] if "loss" in h]
    cfg.grpo.resume, cfg.grpo.max_steps = True, 2
    final = run_grpo(cfg)
    state = json.loads((final.parent / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    logged = [h for h in state["log_history"] if "loss" in h]
    # step 1 is the first run's own log (its timing included), not a second step 1
    assert [h["step"] for h in logged] == [1, 2] and logged[0] == step_one[0]
    cfg.output_dir = str(tmp_path / "empty")
    with pytest.raises(ConfigError, match="no checkpoint"):
        run_grpo(cfg)


@pytest.mark.slow
def test_batch_must_be_a_multiple_of_the_group(smoke_run):
    cfg = copy.deepcopy(smoke_run[0])
    cfg.grpo.batch_size, cfg.grpo.num_generations = 3, 2
    with pytest.raises(ConfigError, match="multiple"):
        grpo_arguments(cfg, cfg.output_dir)


@pytest.mark.slow
def test_missing_start_model_is_explained(tmp_path, smoke_run):
    cfg = copy.deepcopy(smoke_run[0])
    cfg.output_dir = str(tmp_path)
    with pytest.raises(ConfigError, match="knowgen train sft"):
        build_grpo_trainer(cfg)


class _Scripted:
    """Plays the expert's turns in place of the model: a tool call, then the answer."""

    def __init__(self, tokenizer, turns):
        self.tokenizer = tokenizer
        self.turns = turns
        self.close_id = tokenizer.convert_tokens_to_ids("</tool_response>")

    def __call__(self, prompt_ids, images, multimodal_fields, num_generations,
                 has_tool_images=False):
        out = []
        for ids in prompt_ids:
            done = list(ids).count(self.close_id)
            text = self.turns[min(done, len(self.turns) - 1)] + self.tokenizer.eos_token
            out.append(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return out, None


@pytest.mark.slow
def test_tool_results_are_masked_and_the_reward_is_the_envs(smoke_run, shared_backends):
    cfg = copy.deepcopy(smoke_run[0])
    env = SearchGenEnv(EnvConfig(split="train", top_k=3), **shared_backends)
    task = next(t for t in env.tasks if len(t.facts.entities) == 1)
    entity = task.facts.entities[0]
    title = load_world().images[entity.image_id].title
    text = f'"{task.facts.required_text[0]}"' if task.facts.required_text else ""
    answer = {"gen_prompt": f"A poster of the first reference image ({entity.name}) {text}",
              "reference_images": [{"img_id": "IMG_001", "note": entity.name}]}
    call = json.dumps({"name": "image_search", "arguments": {"query": title}})
    turns = [f"<think>\nFind it.\n</think>\n\n<tool_call>\n{call}\n</tool_call>",
             f"<think>\nAnswer.\n</think>\n\n<answer>{json.dumps(answer)}</answer>"]
    # The same episode on a plain environment.
    env.reset(options={"task_id": task.id})
    env.step(turns[0])
    _, expected, terminated, _, _ = env.step(turns[1])
    assert terminated and expected > 0.5

    cfg.grpo.limit, cfg.grpo.max_completion_length = None, 1024
    trainer = build_grpo_trainer(cfg)
    trainer._generate_single_turn = _Scripted(trainer.processing_class, turns)
    trainer.model.train()
    row = {"prompt": [{"role": "system", "content": cfg.system_prompt},
                      {"role": "user", "content": ""}], "task_id": task.id}
    out = trainer._generate_and_score_completions([row, row])
    tok = trainer.processing_class
    ids, mask = out["completion_ids"][0].tolist(), out["tool_mask"][0].tolist()
    keep = out["completion_mask"][0].tolist()
    masked = tok.decode([t for t, m, k in zip(ids, mask, keep) if k and not m])
    trained = tok.decode([t for t, m, k in zip(ids, mask, keep) if k and m])
    assert "<tool_response>" in masked and f"IMG_001: {title}" in masked
    assert masked.rstrip().endswith("<|im_start|>assistant")
    assert "<tool_response>" not in trained and "IMG_001: " not in trained
    assert trained.count("<tool_call>") == 1 and "<answer>" in trained
    rewards = trainer._metrics["train"]["rewards/searchgen_reward/mean"]
    assert rewards[-1] == pytest.approx(expected)
    prompt = tok.decode(out["prompt_ids"][0][out["prompt_mask"][0].bool()])
    assert "local_path" not in masked  # the compact view of the smoke preset
    for schema in tool_schemas(CompactSearchGenToolEnv):
        assert json.dumps(schema, ensure_ascii=False) in prompt
    assert task.prompt in prompt and torch.all(out["advantages"] == 0)

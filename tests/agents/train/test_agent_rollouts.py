"""GRPO rollouts played by the agent under its decoding rules (``grpo.rollouts: agent``)."""

import copy

import pytest

from knowgen.agents.train.agent_rollouts import episode_reward, trained_mask
from knowgen.agents.train.grpo import build_grpo_trainer, rollout_kind, run_grpo
from knowgen.agents.train.sft import AGENT_FILE
from knowgen.config import EnvConfig
from knowgen.envs.searchgen import SearchGenEnv
from knowgen.errors import ConfigError, UnknownNameError


def test_trained_mask_keeps_only_replies_held_after_their_own_prompt():
    first = [1, 2, 3]
    # turn 1: prompt [1,2,3] -> reply [10,11]; its context then gains a tool result [7,8].
    # turn 2: prompt [1,2,3,10,11,7,8] -> reply [12].  turn 3 (dropped by the agent) was
    # sampled after [1,2,3,10,11] and wrote [13]: the sequence does not hold it there.
    turns = [([1, 2, 3], [10, 11]), ([1, 2, 3, 10, 11, 7, 8], [12]), ([1, 2, 3, 10, 11], [13])]
    sequence = [1, 2, 3, 10, 11, 7, 8, 12]
    assert trained_mask(len(first), sequence, turns) == [1, 1, 0, 0, 1]
    # A reply the template writes with other tokens in the next prompt is left out of the loss.
    rewritten = [([1, 2, 3], [10, 11]), ([1, 2, 3, 10, 99, 7, 8], [12])]
    assert trained_mask(3, [1, 2, 3, 10, 99, 7, 8, 12], rewritten) == [0, 0, 0, 0, 1]


def test_episode_reward_passes_the_rollouts_rewards_and_refuses_none():
    assert episode_reward(["a", "b"], episode_reward=[0.5, 1]) == [0.5, 1.0]
    logged = {}
    episode_reward(["a", "b"], episode_reward=[0, 1], reply_tokens=[30, 10],
                   trained_tokens=[20, 10], log_metric=logged.__setitem__)
    assert logged == {"rollouts/trained_fraction": 0.75}
    with pytest.raises(ConfigError, match="grpo.rollouts: tools"):
        episode_reward(["a", "b"])


def test_an_unknown_rollout_kind_is_named_with_a_suggestion(smoke_run):
    cfg = copy.deepcopy(smoke_run[0])
    cfg.grpo.rollouts = "agnet"
    with pytest.raises(UnknownNameError, match="agent"):
        rollout_kind(cfg)


@pytest.mark.slow
def test_agent_rollouts_train_on_the_agents_own_replies_and_pay_the_envs_reward(
        tmp_path, smoke_run, shared_backends):
    cfg = copy.deepcopy(smoke_run[0])
    cfg.output_dir, cfg.grpo.init = str(tmp_path), str(smoke_run[1])
    cfg.grpo.rollouts, cfg.grpo.max_turns, cfg.grpo.max_tool_calls = "agent", 3, 2
    # The untrained smoke model often runs out of tokens; keep such episodes to look at.
    cfg.grpo.max_completion_length, cfg.grpo.mask_truncated_completions = 4096, False
    trainer = build_grpo_trainer(cfg, backends=shared_backends)
    rollouts = trainer.rollout_func
    row = trainer.train_dataset[0]
    assert row["prompt"][-1]["task_id"] == row["task_id"]
    trainer.model.train()
    out = trainer._generate_and_score_completions([row, row])
    assert trainer.model.training  # the rollouts leave the model as they found it
    tok = trainer.processing_class
    actions = rollouts.last_actions
    assert len(actions) == 2 and all(actions) and rollouts.episodes == 2
    rewards = []
    for i, episode in enumerate(actions):
        ids, mask = out["completion_ids"][i].tolist(), out["tool_mask"][i].tolist()
        keep = out["completion_mask"][i].tolist()
        trained = [t for t, m, k in zip(ids, mask, keep) if k and m]
        assert trained, "every episode trains on at least its last reply"
        text = tok.decode(trained)
        assert "<tool_response>" not in text and "<|im_start|>" not in text
        # Each trained run of tokens is one reply the agent handed the environment.
        runs, run = [], []
        for t, m, k in zip(ids, mask, keep):
            if k and m:
                run.append(t)
            elif run:
                runs.append(run)
                run = []
        runs += [run] if run else []
        for piece in runs:
            reply = tok.decode(piece).replace("<|im_end|>", "").strip()
            assert any(reply in action or action.strip() in reply for action in episode)
        # The same actions on a fresh environment earn the reward the trainer was paid.
        env = SearchGenEnv(EnvConfig(split="train", max_turns=3, max_tool_calls=2, top_k=3,
                                     alpha=cfg.grpo.alpha), **shared_backends)
        env.reset(options={"task_id": row["task_id"]})
        done, reward = False, 0.0
        for action in episode:
            assert not done
            _, reward, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
        assert done
        rewards.append(reward)
    logged = trainer._metrics["train"]["rewards/episode_reward/mean"][-1]
    assert logged == pytest.approx(sum(rewards) / 2)
    fraction = trainer._metrics["train"]["rollouts/trained_fraction"][-1]
    assert 0 < fraction <= 1
    # Two episodes of one task drew their own samples (a seed per episode).
    assert out["completion_ids"][0].tolist() != out["completion_ids"][1].tolist()


@pytest.mark.slow
def test_a_grpo_step_with_agent_rollouts_saves_an_agent(tmp_path, smoke_run, shared_backends,
                                                        monkeypatch):
    from knowgen.agents.train import grpo

    cfg = copy.deepcopy(smoke_run[0])
    cfg.output_dir, cfg.grpo.init = str(tmp_path), str(smoke_run[1])
    cfg.grpo.rollouts, cfg.grpo.max_steps, cfg.grpo.max_turns = "agent", 1, 2
    cfg.grpo.max_completion_length = 4096
    built = grpo.build_grpo_trainer
    monkeypatch.setattr(grpo, "build_grpo_trainer",
                        lambda c, out_dir=None: built(c, out_dir, backends=shared_backends))
    final = run_grpo(cfg)
    assert (final / "model.safetensors").is_file() and (final / AGENT_FILE).is_file()

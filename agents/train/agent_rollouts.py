"""GRPO rollouts decoded as the bundled agent decodes: grammar, turn rules and retries.

TRL's own tool loop (``environment_factory``) samples each turn from the bare model,
so its rollouts break the protocol, call tools the grammar would refuse and repeat
calls ``fresh_calls`` would close, none of which the shipped agent can do. With
``grpo.rollouts: agent`` the episodes are instead played by
:class:`~knowgen.agents.agent.GenSearcherAgent` over a
:class:`~knowgen.agents.transformers_backend.TransformersBackend` wrapped around the
model being trained, with the start checkpoint's decoding settings (grammar,
``cite_pictures``, ``finish_count``, ``fresh_calls``, format retries, dropped invalid
turns) and the GRPO sampling temperature. :class:`AgentRollouts` is TRL's
``rollout_func``; :func:`episode_reward` hands each episode's reward to the trainer.

Each episode becomes one sequence for the loss: the prompt of its first turn, then its
last turn's prompt and reply. A reply is trained on (mask 1) only where that sequence
holds it, token for token, after the very prompt it was sampled from; everything
else (tool results, template tokens, replies the agent dropped or whose text the
template writes otherwise) is masked out. So every trained token is scored in the
context it was sampled in.

Example:
    >>> rollouts = AgentRollouts(init_dir, EnvConfig(split="train"), temperature=1.0)  # doctest: +SKIP
    >>> GRPOTrainer(..., reward_funcs=[episode_reward], rollout_func=rollouts)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from knowgen.config import EnvConfig
from knowgen.errors import ConfigError

logger = logging.getLogger(__name__)


def request_message(request: str, task_id: str) -> dict[str, Any]:
    """The user message of a prompt row: the request, and the task it asks about.

    The chat template reads only ``role`` and ``content``; :class:`AgentRollouts` reads
    ``task_id`` to reset the environment to that task.
    """
    return {"role": "user", "content": request, "task_id": task_id}


def trained_mask(prompt_length: int, sequence: Sequence[int],
                 turns: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[int]:
    """Which tokens of ``sequence[prompt_length:]`` were sampled in the context before them.

    Args:
        prompt_length: Tokens of the episode's first prompt (not part of the completion).
        sequence: The episode as one token sequence (last prompt, then last reply).
        turns: ``(prompt ids, reply ids)`` of each decode the episode kept.

    Returns:
        1 for a token of a reply that ``sequence`` holds right after that reply's own
        prompt, 0 elsewhere.
    """
    mask = [0] * (len(sequence) - prompt_length)
    for prompt, reply in turns:
        start, end = len(prompt), len(prompt) + len(reply)
        if (start >= prompt_length and reply and list(sequence[:start]) == list(prompt)
                and list(sequence[start:end]) == list(reply)):
            mask[start - prompt_length:end - prompt_length] = [1] * len(reply)
    return mask


def episode_reward(completions: list[Any], episode_reward: list[float] | None = None,
                   reply_tokens: list[int] | None = None,
                   trained_tokens: list[int] | None = None, **kwargs: Any) -> list[float]:
    """TRL reward function of agent rollouts: the reward each episode's environment paid.

    Also logs ``rollouts/trained_fraction``, the share of the tokens the agent wrote
    that the loss sees (TRL's ``log_metric``, when passed).

    Args:
        completions: TRL's completions (one per rollout; only their number is used).
        episode_reward: The rewards :class:`AgentRollouts` returned, one per rollout.
        reply_tokens: Tokens each episode's decodes wrote.
        trained_tokens: Of those, the tokens with mask 1.
        **kwargs: Other columns TRL passes (``log_metric`` is used when present).

    Raises:
        ConfigError: when the rollouts carried no rewards (not agent rollouts).
    """
    if episode_reward is None or len(episode_reward) != len(completions):
        raise ConfigError("episode_reward scores the rollouts of AgentRollouts; with TRL's own "
                          "tool loop use searchgen_reward (grpo.rollouts: tools).")
    log_metric = kwargs.get("log_metric")
    if callable(log_metric) and reply_tokens and trained_tokens is not None:
        log_metric("rollouts/trained_fraction", sum(trained_tokens) / max(1, sum(reply_tokens)))
    return [float(r) for r in episode_reward]


class AgentRollouts:
    """TRL ``rollout_func``: every prompt's episode played by the agent on the live model.

    Args:
        init_dir: The checkpoint folder GRPO starts from; its ``knowgen_agent.json``
            gives the system prompt, tools, context view and decoding rules.
        env_config: Settings of the rollouts' environment (split, budgets, ``alpha``).
        temperature: Sampling temperature of every reply.
        top_p: Nucleus sampling of every reply.
        seed: Seed of the sampling; each episode gets its own from it and a counter.
        backends: Ready environment backends to share (``benchmark``, judges...).

    Attributes:
        episodes: Episodes played so far.
        last_actions: The actions each episode of the last call handed the environment.
    """

    def __init__(self, init_dir: str | Path, env_config: EnvConfig, temperature: float = 1.0,
                 top_p: float = 0.95, seed: int = 0, backends: dict[str, Any] | None = None):
        if temperature <= 0:
            raise ConfigError(f"Agent rollouts sample; grpo.temperature must be above 0, got "
                              f"{temperature}.")
        self.init_dir = Path(init_dir)
        self.env_config = env_config
        self.temperature, self.top_p, self.seed = float(temperature), float(top_p), int(seed)
        self.backends = dict(backends or {})
        self.episodes = 0
        self.last_actions: list[list[str]] = []
        self._env: Any = None
        self._agent: Any = None

    def __call__(self, prompts: list[list[dict[str, Any]]], trainer: Any) -> dict[str, Any]:
        """Play one episode per prompt; return its token ids, loss mask and reward.

        Returns:
            ``prompt_ids``, ``completion_ids``, ``logprobs`` (None: the trainer scores
            the tokens itself), ``env_mask`` (1 on trained reply tokens),
            ``episode_reward``, and per episode the tokens its decodes wrote
            (``reply_tokens``) and those the loss sees (``trained_tokens``).
        """
        import torch
        from trl.models.utils import unwrap_model_for_generation

        agent = self._agent_for(trainer)
        out: dict[str, Any] = {"prompt_ids": [], "completion_ids": [], "logprobs": None,
                               "env_mask": [], "episode_reward": [], "reply_tokens": [],
                               "trained_tokens": []}
        self.last_actions = []
        # Gradient checkpointing is off while the agent decodes (it would also turn the
        # KV cache off), dropout too; both come back for the update.
        with unwrap_model_for_generation(
                trainer.model_wrapped, trainer.accelerator,
                gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs
        ) as model:
            was_training = model.training
            model.eval()
            agent.backend.model = model
            try:
                # No autocast: the agent decodes in the weights' own precision, as it
                # does when evaluated (on a CPU, autocast would cast every weight at
                # every token).
                with torch.no_grad():
                    for prompt in _progress(prompts):
                        first, sequence, mask, reward, replies = self._episode(agent, prompt)
                        out["prompt_ids"].append(first)
                        out["completion_ids"].append(sequence[len(first):])
                        out["env_mask"].append(mask)
                        out["episode_reward"].append(reward)
                        out["reply_tokens"].append(replies)
                        out["trained_tokens"].append(sum(mask))
            finally:
                model.train(was_training)
        rewards = out["episode_reward"]
        logger.info("Agent rollouts: %d episodes, mean reward %.3f, %d of %d reply tokens "
                    "trained", len(prompts), sum(rewards) / max(1, len(rewards)),
                    sum(out["trained_tokens"]), sum(out["reply_tokens"]))
        return out

    def _agent_for(self, trainer: Any) -> Any:
        """The agent over the trainer's model (built on the first call, then reused)."""
        if self._agent is None:
            from knowgen.agents.policy import checkpoint_agent
            from knowgen.agents.transformers_backend import TransformersBackend

            backend = TransformersBackend(
                self.init_dir, device=str(trainer.accelerator.device),
                temperature=self.temperature, top_p=self.top_p, do_sample=True,
                model=trainer.model, tokenizer=trainer.processing_class)
            if not backend.grammar:
                logger.warning("The start checkpoint %s decodes without the grammar; agent "
                               "rollouts then differ from TRL's only in the agent's retries.",
                               self.init_dir)
            self._agent = checkpoint_agent(backend, None, None, None, seed=self.seed,
                                           name="grpo-rollouts")
        return self._agent

    def _environment(self) -> Any:
        if self._env is None:
            from knowgen.envs.searchgen import SearchGenEnv

            self._env = SearchGenEnv(self.env_config, **self.backends)
        return self._env

    def _episode(self, agent: Any, prompt: list[dict[str, Any]]
                 ) -> tuple[list[int], list[int], list[int], float, int]:
        """One episode: (first prompt ids, whole sequence, mask, reward, reply tokens)."""
        user = next((m for m in reversed(prompt) if m.get("role") == "user"), None)
        if user is None or not user.get("task_id"):
            raise ConfigError("Agent rollouts need prompt rows whose user message names its "
                              "task (request_message); build them with grpo_dataset.")
        env = self._environment()
        obs, info = env.reset(options={"task_id": str(user["task_id"])})
        request = str(user.get("content") or "").strip() or env.task.prompt
        agent.reset(obs, {**info, "request": request})
        agent.backend.reseed(self.seed * 1_000_003 + self.episodes)
        self.episodes += 1
        turns: list[tuple[list[int], list[int]]] = []
        actions: list[str] = []
        self.last_actions.append(actions)
        reward, done = 0.0, False
        while not done:
            action = agent.act(obs, info)
            actions.append(str(action))
            turns.append((agent.backend.last_prompt_ids, agent.backend.last_new_ids))
            obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        first = turns[0][0]
        sequence = list(turns[-1][0]) + list(turns[-1][1])
        mask = trained_mask(len(first), sequence, turns)
        return list(first), sequence, mask, float(reward), sum(len(r) for _, r in turns)


def _progress(prompts: list[Any]) -> Any:
    """The prompts, with a bar of the episodes played (hidden with the training bars)."""
    from tqdm.auto import tqdm

    from knowgen.agents.train.progress import bars_enabled

    return tqdm(prompts, desc="agent rollouts", unit="episode", leave=False,
                disable=not bars_enabled())

"""A ``verifiers`` environment: SearchGenEnv as a multi-turn ``vf.MultiTurnEnv``.

verifiers finds an environment by module name and calls its
``load_environment(**kwargs)``::

    import verifiers as vf
    env = vf.load_environment("knowgen.envs.verifiers_env", split="train")
    results = env.evaluate_sync(client=vf.ClientConfig(api_base_url=URL), model="m")

Each dataset row is one task of the split: the prompt is the environment's own
chat rendering of the request (its system prompt, then the request). Every
assistant message goes to :meth:`SearchGenEnv.step` as it is (text protocol, or
an assistant message with one tool call); the observation comes back as a user
message (as a ``tool`` message after a native tool call). The rollout stops
when the episode ends, and the rubric pays the environment's own dual reward
(``image`` and ``text`` terms are logged as metrics), so verifiers' rewards are
those of the in-process environment.

Needs ``pip install 'knowgen[verifiers]'``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from knowgen.config import EnvConfig
from knowgen.envs.messages import strip_tool_response
from knowgen.envs.shared import SharedBackends
from knowgen.errors import ConfigError, MissingDependencyError

try:
    import verifiers as vf
    from datasets import Dataset
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(exc.name or "verifiers", "verifiers",
                                 "The verifiers environment") from None

logger = logging.getLogger(__name__)

ENV_KEY = "searchgen_env"
"""Where a rollout's SearchGenEnv lives in verifiers' rollout state."""


def task_dataset(shared: SharedBackends, limit: int | None = None) -> Dataset:
    """One row per task of the split: ``prompt`` (messages), ``info.task_id``, ``answer`` ("")."""
    env = shared.make_env()
    rows = []
    try:
        for task in env.tasks[:limit]:
            env.reset(options={"task_id": task.id})
            rows.append({"prompt": env.messages(fmt="openai"), "answer": "",
                         "info": {"task_id": task.id}})
    finally:
        env.close()
    return Dataset.from_list(rows)


def _content_text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(getattr(part, "text", "") or "" for part in content)


def to_env_action(message: Any) -> Any:
    """An assistant message of verifiers as an action of :meth:`SearchGenEnv.step`."""
    text = _content_text(getattr(message, "content", None))
    calls = getattr(message, "tool_calls", None) or []
    if not calls:
        return text
    return {"role": "assistant", "content": text or None, "tool_calls": [
        {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
        for c in calls]}


async def searchgen_reward(state: Any, **_: Any) -> float:
    """The episode's dual reward (0.0 when it ended without an accepted answer)."""
    return float(state.get("searchgen_reward") or 0.0)


async def image_reward(state: Any, **_: Any) -> float:
    """The image judge's term of the reward (a metric, weight 0)."""
    return float((state.get("searchgen_terms") or {}).get("image", 0.0))


async def text_reward(state: Any, **_: Any) -> float:
    """The text judge's term of the reward (a metric, weight 0)."""
    return float((state.get("searchgen_terms") or {}).get("text", 0.0))


class SearchGenVerifiersEnv(vf.MultiTurnEnv):
    """SearchGenEnv episodes as verifiers rollouts (see the module docstring).

    Args:
        shared: Where each rollout's environment comes from.
        dataset: The tasks (:func:`task_dataset`).
        **kwargs: Passed to ``vf.MultiTurnEnv`` (``max_turns`` defaults to the
            environment's).
    """

    def __init__(self, shared: SharedBackends, dataset: Dataset, **kwargs: Any):
        rubric = vf.Rubric(funcs=[searchgen_reward, image_reward, text_reward],
                           weights=[1.0, 0.0, 0.0])
        kwargs.setdefault("max_turns", shared.config.max_turns)
        super().__init__(dataset=dataset, eval_dataset=dataset, rubric=rubric, **kwargs)
        self.shared = shared

    async def setup_state(self, state: Any) -> Any:
        """Start the rollout's episode on the row's task."""
        env = self.shared.make_env()
        env.reset(options={"task_id": state["info"]["task_id"]})
        state[ENV_KEY] = env
        state["searchgen_done"] = False
        state["searchgen_reward"] = 0.0
        return state

    async def env_response(self, messages: Any, state: Any, **kwargs: Any) -> Any:
        """Step the episode with the last assistant message; the observation is the reply."""
        env = state[ENV_KEY]
        last = messages[-1]
        obs, reward, terminated, truncated, info = env.step(to_env_action(last))
        calls = getattr(last, "tool_calls", None) or []
        reply = ([vf.ToolMessage(tool_call_id=calls[0].id, content=strip_tool_response(obs))]
                 if len(calls) == 1 else [vf.UserMessage(content=obs)])
        if terminated or truncated:
            state["searchgen_done"] = True
            state["searchgen_reward"] = float(reward)
            state["searchgen_terms"] = info.get("reward_terms")
            state["searchgen_info"] = json.loads(json.dumps(info, default=str))
            state["final_env_response"] = reply
        return reply

    @vf.stop
    async def episode_over(self, state: Any) -> bool:
        """The episode has ended (answered, or out of turns)."""
        return bool(state.get("searchgen_done"))

    @vf.cleanup
    async def close_episode(self, state: Any) -> None:
        """Close the rollout's environment."""
        env = state.pop(ENV_KEY, None)
        if env is not None:
            env.close()


def load_environment(split: str = "test", benchmark: str = "world",
                     num_tasks: int | None = None, config: EnvConfig | None = None,
                     **settings: Any) -> SearchGenVerifiersEnv:
    """The verifiers entry point: SearchGenEnv on a benchmark split.

    Args:
        split: The split whose tasks form the dataset (train and eval alike).
        benchmark: Benchmark spec (``world``, ``knowgen:...``).
        num_tasks: Keep only the first tasks of the split.
        config: Full environment settings (``split``, ``benchmark`` and
            ``settings`` override it).
        **settings: :class:`~knowgen.config.EnvConfig` fields (``alpha``,
            ``max_turns``, backend specs such as ``search="serper"``).

    Raises:
        ConfigError: for an unknown setting, a setting out of range or an empty split.
    """
    from dataclasses import fields, replace

    known = {f.name for f in fields(EnvConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(f"Unknown SearchGenEnv setting(s) {unknown}. Known: "
                          f"{', '.join(sorted(known))}.")
    cfg = replace(config if config is not None else EnvConfig(), split=split,
                  benchmark=benchmark, **settings)
    shared = SharedBackends(cfg)
    return SearchGenVerifiersEnv(shared, task_dataset(shared, num_tasks))


__all__ = ["SearchGenVerifiersEnv", "image_reward", "load_environment", "searchgen_reward",
           "task_dataset", "text_reward", "to_env_action"]

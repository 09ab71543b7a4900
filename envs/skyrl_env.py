"""A SkyRL-gym text environment: SearchGenEnv as a ``skyrl_gym`` ``BaseTextEnv``.

SkyRL builds one environment per trajectory by name, with the dataset row's
``env_extras``::

    from knowgen.envs.skyrl_env import register_skyrl_env
    import skyrl_gym

    register_skyrl_env()                       # id "knowgen-searchgen"
    env = skyrl_gym.make("knowgen-searchgen", env_config={"split": "train"},
                         extras={"task_id": "flag_named-pe"})
    chat, meta = env.init(prompt)              # the environment's own opening messages
    out = env.step(model_text)                 # {observations, reward, done, metadata}

``env_config`` holds :class:`~knowgen.config.EnvConfig` fields (a dict or an
OmegaConf node); ``extras`` picks the task (``task_id``, also read from
``extras["extra_info"]``; otherwise ``seed`` draws one). ``init`` replaces the
row's prompt by the environment's chat rendering of the task (system prompt,
then request), each ``step`` hands the model's text to
:meth:`SearchGenEnv.step` and returns the observation as a user message, and
the reward is the environment's dual reward on the last step (0 before).
Environments with the same settings share one set of backends per process.

Needs ``pip install 'knowgen[skyrl]'``.
"""

from __future__ import annotations

import logging
from dataclasses import fields, replace
from typing import Any

from knowgen.config import EnvConfig
from knowgen.envs.shared import shared_backends_for
from knowgen.errors import ConfigError, MissingDependencyError

try:
    import skyrl_gym
    from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(exc.name or "skyrl-gym", "skyrl",
                                 "The SkyRL-gym environment") from None

logger = logging.getLogger(__name__)

SKYRL_ENV_ID = "knowgen-searchgen"
"""The id :func:`register_skyrl_env` registers by default."""


def config_from(env_config: Any) -> EnvConfig:
    """An :class:`EnvConfig` from SkyRL's ``env_config`` (None, a dict or an OmegaConf node).

    Raises:
        ConfigError: for a setting :class:`EnvConfig` does not have.
    """
    if env_config is None:
        return EnvConfig()
    items = dict(env_config.items()) if hasattr(env_config, "items") else None
    if items is None:
        raise ConfigError(f"env_config must be a mapping of EnvConfig settings, got "
                          f"{type(env_config).__name__}.")
    known = {f.name for f in fields(EnvConfig)}
    unknown = sorted(set(map(str, items)) - known)
    if unknown:
        raise ConfigError(f"Unknown SearchGenEnv setting(s) {unknown} in env_config. Known: "
                          f"{', '.join(sorted(known))}.")
    return replace(EnvConfig(), **{str(k): v for k, v in items.items()})


class SearchGenSkyRLEnv(BaseTextEnv):
    """One trajectory's SearchGenEnv for SkyRL (see the module docstring).

    Args:
        env_config: :class:`EnvConfig` settings (dict or OmegaConf node).
        extras: The dataset row's ``env_extras``: ``task_id`` (or
            ``extra_info.task_id``) and an optional ``seed``.
    """

    def __init__(self, env_config: Any = None, extras: dict[str, Any] | None = None):
        super().__init__()
        extras = dict(extras or {})
        extra_info = extras.get("extra_info") or {}
        self.task_id = extras.get("task_id", extra_info.get("task_id"))
        self.seed = extras.get("seed", extra_info.get("seed"))
        config = config_from(env_config)
        self.env = shared_backends_for(config).make_env()
        self.max_turns = config.max_turns
        self.info: dict[str, Any] = {}
        self.reward = 0.0
        self.done = False

    def init(self, prompt: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Start the episode; returns the opening messages (the row's ``prompt`` is not used).

        Raises:
            UnknownNameError: for a task id the split does not hold.
        """
        options = {"task_id": str(self.task_id)} if self.task_id is not None else None
        _obs, self.info = self.env.reset(seed=self.seed, options=options)
        self.turns, self.reward, self.done = 0, 0.0, False
        return self.env.messages(fmt="openai"), {"task_id": self.info["task_id"]}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        """Carry out one assistant turn; the observation comes back as a user message."""
        if self.done:
            return BaseTextEnvStepOutput(observations=[], reward=0.0, done=True,
                                         metadata={"info": self.info})
        self.turns += 1
        obs, reward, terminated, truncated, self.info = self.env.step(action)
        self.done = bool(terminated or truncated)
        self.reward = float(reward)
        return BaseTextEnvStepOutput(
            observations=[] if self.done else [{"role": "user", "content": obs}],
            reward=self.reward, done=self.done,
            metadata={"info": self.info, "observation": obs, "terminated": bool(terminated),
                      "truncated": bool(truncated)})

    def get_metrics(self) -> dict[str, Any]:
        """The episode's reward terms and length."""
        terms = self.info.get("reward_terms") or {}
        return {"reward": self.reward, "image": terms.get("image", 0.0),
                "text": terms.get("text", 0.0), "turns": self.turns}

    def close(self) -> None:
        """Close the wrapped environment."""
        self.env.close()


def register_skyrl_env(env_id: str = SKYRL_ENV_ID) -> str:
    """Register :class:`SearchGenSkyRLEnv` with ``skyrl_gym`` under ``env_id`` (idempotent).

    Returns:
        The id, for ``skyrl_gym.make``.
    """
    if env_id not in skyrl_gym.registry:
        skyrl_gym.register(id=env_id, entry_point="knowgen.envs.skyrl_env:SearchGenSkyRLEnv")
    return env_id


__all__ = ["SKYRL_ENV_ID", "SearchGenSkyRLEnv", "config_from", "register_skyrl_env"]

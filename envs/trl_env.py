"""A TRL adapter: :class:`SearchGenEnv` as a tool-calling environment for ``GRPOTrainer``.

TRL 1.16's ``GRPOTrainer(environment_factory=...)`` builds one instance per
rollout, calls ``reset(**row)`` (the returned text is appended to the prompt's
last user message), offers every public method but ``reset`` as a tool (its
type hints and Google docstring become the JSON schema the chat template shows)
and executes the tool calls the model writes. Each tool method here forwards
the call to a wrapped :class:`~knowgen.envs.searchgen.SearchGenEnv` through
``env.step``, so budgets, observations and ``info`` are exactly those of the
Gymnasium environment.

The model's last assistant message (``<answer>{json}</answer>``) never reaches
the environment by itself: :func:`searchgen_reward` (pass it in ``reward_funcs``)
hands it to each rollout's environment, which generates, judges and pays the
dual reward ``(1 - alpha) * image + alpha * text``.

Example:
    >>> from trl import GRPOTrainer
    >>> trainer = GRPOTrainer(model=..., reward_funcs=[searchgen_reward], train_dataset=ds,
    ...                       environment_factory=make_env_factory(EnvConfig(split="train")))
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from knowgen.config import EnvConfig
from knowgen.envs.messages import strip_tool_response
from knowgen.envs.protocol import format_tool_call
from knowgen.envs.views import view_function
from knowgen.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "Find the facts and official images the image request needs with the tools, then reply "
    '<answer>{"gen_prompt": ..., "reference_images": [{"img_id": "IMG_###", "note": ...}]}</answer>.'
)
"""The short system prompt of the trained agents (also saved beside each checkpoint)."""

_SHARED_BACKENDS = ("benchmark", "text_search", "image_search", "browser", "generator",
                    "image_judge", "text_judge")


def tool_message_content(observation: str) -> str:
    """The content of the ``tool`` message for an environment observation.

    The chat template wraps tool messages in ``<tool_response>`` itself, so the
    environment's own wrapper is removed (notices after it, such as the remaining
    budget, are kept after a blank line), exactly as
    :func:`knowgen.envs.messages.build_messages` writes tool messages.
    """
    return strip_tool_response(observation)


def final_assistant_text(completion: list[dict[str, Any]] | str) -> str | None:
    """The text of a rollout's last assistant turn when it is not a tool call, else None.

    Args:
        completion: The rollout's messages after the prompt (TRL's conversational
            completion) or plain text.
    """
    if isinstance(completion, str):
        return completion
    if not completion:
        return None
    last = completion[-1]
    if last.get("role") != "assistant" or last.get("tool_calls"):
        return None
    content = last.get("content") or ""
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    reasoning = last.get("reasoning_content")
    return f"<think>{reasoning}</think>\n{content}" if reasoning else content


class ToolEnvBase:
    """What every adapter shares: the wrapped environment, ``reset``, stepping, the reward.

    Subclasses add the tool methods TRL offers to the model; ``view`` names the
    context view (:mod:`knowgen.envs.views`) their tool results are written in.

    Args:
        env: A ready :class:`~knowgen.envs.searchgen.SearchGenEnv`; when None one is
            built from ``config`` on the first :meth:`reset`.
        config: Settings of the built environment (``alpha`` sets the reward weights:
            0 pays the image judge only, 1 the text judge only).
        backends: Ready backends to share (``benchmark``, ``text_search``, ...).

    Attributes:
        reward: The episode's reward (0.0 until it ends).
        info: The ``info`` of the environment's last step.
    """

    def __init__(self, env: Any = None, config: EnvConfig | None = None,
                 backends: dict[str, Any] | None = None):
        self.env = env
        self.config = config if config is not None else EnvConfig()
        self.backends = dict(backends or {})
        self.reward = 0.0
        self.info: dict[str, Any] = {}
        self.done = False

    view = "full"
    """Context view of the tool results (``"full"``: as the environment writes them)."""

    def _ensure_env(self) -> Any:
        if self.env is None:
            from knowgen.envs.searchgen import SearchGenEnv

            self.env = SearchGenEnv(self.config, **self.backends)
        return self.env

    def reset(self, **row: Any) -> str:
        """Start the episode of a dataset row and return the user's request.

        Args:
            **row: The dataset row; ``task_id`` picks the task (a random one when
                absent); ``split`` and ``benchmark``, when present, must name the
                environment's own; a non-empty ``request`` is returned instead of the
                task's own words (the same task said otherwise: it is still judged
                against its own facts and ground truth). Other columns (``prompt``,
                ...) are ignored.

        Raises:
            ConfigError: when the row names another split or benchmark.
            UnknownNameError: for a task id the split does not hold.
        """
        env = self._ensure_env()
        for key in ("split", "benchmark"):
            wanted = row.get(key)
            if wanted is not None and str(wanted) != str(getattr(env.config, key)):
                raise ConfigError(
                    f"The row asks for {key} {wanted!r} but the environment serves "
                    f"{getattr(env.config, key)!r}; build the factory with {key}={wanted!r}.")
        task_id = row.get("task_id")
        options = {"task_id": str(task_id)} if task_id is not None else None
        _obs, self.info = env.reset(options=options)
        self.reward, self.done = 0.0, False
        request = row.get("request")
        return request if isinstance(request, str) and request.strip() else env.task.prompt

    def _step(self, action: str) -> str:
        if self.done or self.env is None or self.env.task is None:
            return "The episode is over: no tool can run now."
        obs, reward, terminated, truncated, self.info = self.env.step(action)
        if terminated or truncated:
            self.done, self.reward = True, float(reward)
        if self.view == "full":
            return tool_message_content(obs)
        return view_function(self.view)(obs)

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        return self._step(format_tool_call(name, arguments))

    def _finish(self, text: str | None) -> float:
        """Hand the final assistant text to the environment and return the reward."""
        if self.done or self.env is None or self.env.task is None:
            return self.reward
        if text is None or not self.env.task:
            self.done = True
            return self.reward
        _obs, reward, terminated, truncated, self.info = self.env.step(text)
        # An answer that does not parse ends the rollout unpaid (the model has no next turn).
        self.done, self.reward = True, float(reward) if (terminated or truncated) else 0.0
        return self.reward


class SearchGenToolEnv(ToolEnvBase):
    """One rollout's environment for ``GRPOTrainer(environment_factory=...)``, with all four tools.

    Built like :class:`ToolEnvBase` (``env``, ``config``, ``backends``).
    """

    def browse(self, url: str, query: str) -> str:
        """Read a web page and return the parts relevant to the query.

        Args:
            url: Address of the page, taken from a search result.
            query: What to look for on the page.
        """
        return self._call("browse", {"url": url, "query": query})

    def fetch_image(self, url: str) -> str:
        """Load one image by its address and list it under a citable IMG_ id.

        Args:
            url: Address of an image seen in a page or a result.
        """
        return self._call("fetch_image", {"url": url})

    def image_search(self, query: str) -> str:
        """Search images; each result gets an id such as IMG_001 to cite in the answer.

        Args:
            query: What to look for, e.g. "Flag of Peru".
        """
        return self._call("image_search", {"query": query})

    def search(self, queries: list[str]) -> str:
        """Search the web; returns lines of [Title](url) snippet for each query.

        Args:
            queries: One to five search queries.
        """
        return self._call("search", {"queries": queries})

class CompactSearchGenToolEnv(ToolEnvBase):
    """The adapter for small models: two tools with short schemas and compact results.

    Only ``search`` and ``image_search`` are offered (the compact view drops page
    addresses, so ``browse`` and ``fetch_image`` would have nothing to act on) and
    tool results come in the ``compact`` view of :mod:`knowgen.envs.views`; the
    rendered prompt is about a third as long as with :class:`SearchGenToolEnv`.
    """

    view = "compact"

    def image_search(self, query: str) -> str:
        """Image search; cite results by their IMG_ id.

        Args:
            query: e.g. "Flag of Peru".
        """
        return self._call("image_search", {"query": query})

    def search(self, queries: list[str]) -> str:
        """Web search.

        Args:
            queries: One to five queries.
        """
        return self._call("search", {"queries": queries})


class SearchGenAnswerToolEnv(SearchGenToolEnv):
    """The adapter in TRL's own reward style: the answer is a tool and the env owns the reward.

    The model answers by calling the ``answer`` tool (the environment takes a
    function named ``answer`` as the Gen-Searcher answer), so the episode ends
    inside the environment and TRL reads the dual reward from :meth:`get_reward`;
    no reward function is needed (``reward_funcs=[]`` is not allowed by TRL, so
    pass one that returns zeros, or combine it with others). Use
    :class:`SearchGenToolEnv` with :func:`searchgen_reward` to keep the upstream
    text protocol, where the answer is an ``<answer>`` block.
    """

    def answer(self, gen_prompt: str, reference_images: list[dict[str, str]]) -> str:
        """Give the final answer: the generation prompt and the chosen reference images.

        Args:
            gen_prompt: The prompt for the image generator; it calls the references "the
                first reference image", "the second reference image", and so on.
            reference_images: One to five items {"img_id": "IMG_001", "note": "what it shows"}.
        """
        if self.done or self.env is None or self.env.task is None:
            return "The episode is over."
        action = {"role": "assistant", "content": "", "tool_calls": [{
            "id": "answer", "type": "function", "function": {
                "name": "answer",
                "arguments": {"gen_prompt": gen_prompt, "reference_images": reference_images}}}]}
        obs, reward, terminated, truncated, self.info = self.env.step(action)
        if terminated or truncated:
            self.done, self.reward = True, float(reward)
        return tool_message_content(obs)

    def get_reward(self) -> float:
        """The episode's dual reward (0.0 when it ended without an accepted answer)."""
        return self.reward


def tool_names(cls: type = SearchGenToolEnv) -> list[str]:
    """Names of an adapter class's tools, in TRL's (alphabetical) order."""
    return [name for name, _ in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_") and name not in ("reset", "get_reward")]


def tool_schemas(cls: type = SearchGenToolEnv) -> list[dict[str, Any]]:
    """The JSON schemas TRL renders into the prompt, from an adapter's typed tool methods.

    Saved beside checkpoints so inference renders the same tools as training.
    """
    from transformers.utils import get_json_schema

    bare = cls()
    return [get_json_schema(getattr(bare, name)) for name in tool_names(cls)]


def adapter_class(view: str = "full", answer_tool: bool = False) -> type[ToolEnvBase]:
    """The adapter class for a context view (and answer style).

    Raises:
        ConfigError: for an unknown view, or the answer tool with the compact view.
    """
    view_function(view)  # validates the name
    if view == "compact":
        if answer_tool:
            raise ConfigError("The compact view has no answer tool; answer with an <answer> "
                              "block (answer_tool=False) or use view='full'.")
        return CompactSearchGenToolEnv
    return SearchGenAnswerToolEnv if answer_tool else SearchGenToolEnv


def make_env_factory(config: EnvConfig | None = None, *, answer_tool: bool = False,
                     view: str = "full", **overrides: Any) -> Callable[[], ToolEnvBase]:
    """A factory of adapters whose environments share one set of backends.

    The first environment is built on the first call; later ones reuse its
    benchmark, search backends, generator and judges (building the world and its
    index once), while each keeps its own episode state.

    Args:
        config: Environment settings (``split="train"`` for training).
        answer_tool: Build :class:`SearchGenAnswerToolEnv` (answer as a tool, reward
            from ``get_reward``) instead of :class:`SearchGenToolEnv`.
        view: ``"compact"`` builds :class:`CompactSearchGenToolEnv` (see :func:`adapter_class`).
        **overrides: :class:`~knowgen.config.EnvConfig` fields overriding ``config``.
    """
    cfg = replace(config if config is not None else EnvConfig(), **overrides)
    shared: dict[str, Any] = {}
    cls = adapter_class(view, answer_tool)

    def factory() -> ToolEnvBase:
        from knowgen.envs.searchgen import SearchGenEnv

        if not shared:
            first = SearchGenEnv(cfg)
            shared.update({key: getattr(first, key) for key in _SHARED_BACKENDS})
            return cls(first, cfg)
        return cls(SearchGenEnv(cfg, **shared), cfg)

    return factory


def searchgen_reward(completions: list[Any], environments: list[ToolEnvBase] | None = None,
                     **kwargs: Any) -> list[float]:
    """TRL reward function: each rollout's environment judges its final answer.

    Args:
        completions: TRL's completions (message lists), one per rollout.
        environments: The rollouts' :class:`SearchGenToolEnv` instances (TRL passes
            them when ``environment_factory`` is set).
        **kwargs: Other columns TRL passes; ``log_metric`` is used when present.

    Raises:
        ConfigError: when called without environments.
    """
    if environments is None:
        raise ConfigError("searchgen_reward needs the rollouts' environments: use it with "
                          "GRPOTrainer(environment_factory=make_env_factory(...)).")
    rewards = [env._finish(final_assistant_text(c)) for c, env in zip(completions, environments)]
    log_metric = kwargs.get("log_metric")
    if callable(log_metric) and environments:
        terms = [e.info.get("reward_terms") or {} for e in environments]
        for key in ("image", "text"):
            log_metric(f"searchgen/{key}", sum(t.get(key, 0.0) for t in terms) / len(terms))
        answered = sum(1 for e in environments if e.info.get("answer"))
        log_metric("searchgen/answer_rate", answered / len(environments))
    return rewards

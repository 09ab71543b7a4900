"""SearchGenEnv: a Gymnasium environment for search-augmented image generation.

Example:
    >>> import gymnasium as gym
    >>> import knowgen  # registers the environment
    >>> env = gym.make("knowgen/SearchGen-v0", split="test")
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(
    ...     '<tool_call>{"name": "search", "arguments": {"queries": ["capital Lima"]}}</tool_call>')
"""

from __future__ import annotations

import difflib
import logging
import time
from dataclasses import fields, replace
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium.error import ResetNeeded
from gymnasium.spaces import Text
from PIL import Image

from knowgen.config import EnvConfig
from knowgen.envs import observations as fmt
from knowgen.envs.actions import (
    ACTION_FORMATS,
    action_to_text,
    parse_any_action,
    read_action,
)
from knowgen.envs.backends import backends_from
from knowgen.envs.grading import (
    draw_answer,
    end_info,
    judge_answer,
    resolve_references,
    save_image,
)
from knowgen.envs.messages import build_messages
from knowgen.envs.normalize import clean_text
from knowgen.envs.prompt import build_first_observation, build_system_prompt
from knowgen.envs.protocol import MAX_QUERIES, MAX_REFERENCES, ParsedAction
from knowgen.envs.rewards import no_answer_terms
from knowgen.envs.spaces import UnicodeText, multimodal_observation, multimodal_space
from knowgen.errors import ConfigError, UnknownNameError
from knowgen.registry import BENCHMARKS
from knowgen.types import Answer, ResolvedReference, Task, ToolCall

logger = logging.getLogger(__name__)

ACTION_MAX_LENGTH = 8192
"""Longest text the (Text) action space samples; ``step`` takes longer turns and dicts too."""
OBSERVATION_MODES = ("text", "dict")

class SearchGenEnv(gym.Env[Any, Any]):
    """An agent searches an (offline or real) web, then answers with a generation prompt.

    The first observation is the system prompt plus the user's request; each
    action is one assistant turn in the protocol of :mod:`knowgen.envs.protocol`
    (a ``<think>`` block, then one ``<tool_call>`` or an ``<answer>``). Tool
    results come back wrapped in ``<tool_response>``. The answer is drawn by the
    generator, judged against the ground truth, and paid
    ``(1 - alpha) * image + alpha * text`` (0 when the reference gate fails).

    Actions: the action space is a ``Text`` space (what ``check_env`` samples),
    but ``step`` also takes a dict (``{"tool": ..., "arguments": {...}}`` or
    ``{"answer": {...}}``) and an OpenAI assistant message or ``tool_calls`` list;
    see :mod:`knowgen.envs.actions`. Observations are text, or with
    ``observation_mode="dict"`` a dict of the text and the images it lists (see
    :func:`knowgen.envs.spaces.multimodal_space`). :meth:`messages` gives the
    episode as chat messages. Each tool call runs under ``tool_timeout_s``.

    Each backend argument takes either a ready object or a spec string; a string
    overrides the matching :class:`~knowgen.config.EnvConfig` field (so
    ``gym.make(ENV_ID, benchmark="world:seed=1")`` works).

    Args:
        config: Settings; ``None`` uses :class:`~knowgen.config.EnvConfig` defaults.
        benchmark: A ready benchmark object (else built from ``config.benchmark``).
        text_search: A ready text search backend (else built from ``config.search``).
        image_search: A ready image search backend.
        browser: A ready browse backend.
        generator: A ready image generator.
        image_judge: A ready image judge.
        text_judge: A ready text judge.
        image_dir: When set, each generated image is saved there as ``<task_id>.png``.
        render_mode: ``None`` or ``"ansi"`` (the transcript so far).
        **overrides: Any :class:`~knowgen.config.EnvConfig` field, overriding ``config``.

    Info keys (every step; ``reset`` adds ``request``, the task's prompt):
    ``task_id``, ``turn`` (model calls so far), ``tool_calls_used``,
    ``tool_calls_left``, ``turns_left``, ``max_turns``, ``max_tool_calls``,
    ``image_ids`` (ids shown so far), ``observation_images`` (local files of the
    images this observation lists, for vision models) and ``last_action``
    (``{kind, tool, ok, error}``; ``kind`` is ``None`` after reset). When the
    episode ends, also ``reward_terms`` (``{image, text, alpha, gated, reward}``),
    ``image_judgement`` and ``text_judgement`` (dicts, ``None`` without an
    answer), ``answer`` (dict or ``None``), ``generated_image`` (the saved path
    when ``image_dir`` is set, else ``None``) and ``references`` (resolved
    references as dicts). ``info`` holds no timings, so equal inputs give equal infos.

    Raises:
        ConfigError: for an unknown setting or a benchmark split without tasks.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}

    def __init__(
        self,
        config: EnvConfig | None = None,
        *,
        benchmark: Any = None,
        text_search: Any = None,
        image_search: Any = None,
        browser: Any = None,
        generator: Any = None,
        image_judge: Any = None,
        text_judge: Any = None,
        image_dir: str | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ):
        given = {"benchmark": benchmark, "text_search": text_search, "image_search": image_search,
                 "browser": browser, "generator": generator, "image_judge": image_judge,
                 "text_judge": text_judge}
        for key, value in list(given.items()):
            if isinstance(value, str):  # a spec string overrides the config field
                overrides["search" if key == "text_search" else key] = value
                given[key] = None
        self.config = self._make_config(config, overrides)
        if render_mode not in (None, "ansi"):
            raise ConfigError(f"Unknown render_mode {render_mode!r}; use None or 'ansi'.")
        self.render_mode = render_mode
        self.benchmark = given.pop("benchmark") or BENCHMARKS.create(self.config.benchmark)
        backends = backends_from(self.config, given)
        self.text_search = backends["text_search"]
        self.image_search = backends["image_search"]
        self.browser = backends["browser"]
        self.generator = backends["generator"]
        self.image_judge = backends["image_judge"]
        self.text_judge = backends["text_judge"]
        self.image_dir = image_dir
        self.tasks: list[Task] = list(self.benchmark.tasks(self.config.split))
        if not self.tasks:
            raise ConfigError(f"Split {self.config.split!r} of benchmark "
                              f"{self.config.benchmark!r} has no tasks; pick another split.")
        self._task_by_id = {t.id: t for t in self.tasks}
        cfg = self.config
        self.system_prompt = build_system_prompt(
            max_turns=cfg.max_turns, max_tool_calls=cfg.max_tool_calls, top_k=cfg.top_k,
            max_queries=MAX_QUERIES, max_images=cfg.max_images_per_observation,
            max_refs=MAX_REFERENCES, forced_final_turn=cfg.forced_final_turn)
        self._text_max = max(65536, 4 * cfg.max_observation_chars + 8192)
        self.observation_space = UnicodeText(self._text_max) if cfg.observation_mode == "text" \
            else multimodal_space(self._text_max, cfg.max_images_per_observation,
                                  cfg.observation_image_size)
        self.action_space = Text(max_length=ACTION_MAX_LENGTH)
        self.task: Task | None = None
        self.last_image: Image.Image | None = None
        self.transcript: list[dict[str, Any]] = []
        self.turns: list[tuple[Any, str]] = []
        self._pool = fmt.ImagePool()
        self._turn = 0
        self._tool_calls = 0
        self._shown: list[str] = []
        self._shown_ids: list[str] = []
        self._done = True
        self._tools = fmt.ToolRunner(top_k=cfg.top_k, max_images=cfg.max_images_per_observation,
                                     max_chars=cfg.max_observation_chars,
                                     timeout_s=cfg.tool_timeout_s)

    @classmethod
    def check_config(cls, config: EnvConfig) -> EnvConfig:
        """Check ``config`` the way the constructor does, without building anything.

        Raises:
            ConfigError: for a setting out of range or an unknown mode.
        """
        return cls._make_config(config, {})

    @staticmethod
    def _make_config(config: EnvConfig | None, overrides: dict[str, Any]) -> EnvConfig:
        cfg = config if config is not None else EnvConfig()
        known = {f.name for f in fields(EnvConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"Unknown SearchGenEnv setting(s) {unknown}. "
                              f"Known: {', '.join(sorted(known))}.")
        cfg = replace(cfg, **overrides)
        if cfg.max_turns < 1 or cfg.max_tool_calls < 0:
            raise ConfigError("max_turns must be at least 1 and max_tool_calls at least 0.")
        if not 0.0 <= cfg.alpha <= 1.0:
            raise ConfigError(f"alpha must lie in [0, 1], got {cfg.alpha}.")
        if cfg.observation_mode not in OBSERVATION_MODES:
            raise ConfigError(f"observation_mode must be one of {OBSERVATION_MODES}, "
                              f"got {cfg.observation_mode!r}.")
        if cfg.action_format != "auto" and cfg.action_format not in ACTION_FORMATS:
            raise ConfigError(f"Unknown action_format {cfg.action_format!r}; use 'auto' or one "
                              f"of {sorted(ACTION_FORMATS)}.")
        for name, least in (("max_images_per_observation", 1), ("observation_image_size", 1),
                            ("max_observation_chars", 1), ("max_action_chars", 1),
                            ("tool_timeout_s", 0)):
            if not getattr(cfg, name) >= least:  # also refuses NaN
                raise ConfigError(f"{name} must be at least {least}, got {getattr(cfg, name)}.")
        return cfg

    # ------------------------------------------------------------------ reset
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start an episode.

        Args:
            seed: Seeds the environment's random generator (task drawing).
            options: ``{"task_id": ...}`` or ``{"task_index": i}`` pick the task;
                otherwise it is drawn at random.

        Raises:
            UnknownNameError: for an unknown ``task_id``.
            ConfigError: for a ``task_index`` out of range.
        """
        super().reset(seed=seed)
        self.task = self._pick_task(options or {})
        self._pool = fmt.ImagePool()
        self._turn = 0
        self._tool_calls = 0
        self._shown, self._shown_ids = [], []
        self._done = False
        self.last_image = None
        obs = build_first_observation(self.system_prompt, clean_text(self.task.prompt))
        self.transcript = [{"role": "user", "content": obs}]
        self.turns = []
        info = self._info({"kind": None, "tool": None, "ok": None, "error": None})
        info["request"] = self.task.prompt
        return self._observe(obs), info

    def _pick_task(self, options: dict[str, Any]) -> Task:
        if options.get("task_id") is not None:
            task_id = str(options["task_id"])
            if task_id not in self._task_by_id:
                close = difflib.get_close_matches(task_id, list(self._task_by_id), n=8, cutoff=0)
                raise UnknownNameError(f"task of split {self.config.split!r} (closest ids shown)",
                                       task_id, close)
            return self._task_by_id[task_id]
        if options.get("task_index") is not None:
            index = options["task_index"]
            if isinstance(index, bool) or not isinstance(index, int) or not (
                    0 <= index < len(self.tasks)):
                raise ConfigError(f"task_index must be an integer in [0, {len(self.tasks) - 1}], "
                                  f"got {index!r}.")
            return self.tasks[index]
        return self.tasks[int(self.np_random.integers(len(self.tasks)))]

    # ------------------------------------------------------------------- step
    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Carry out one assistant turn.

        Args:
            action: The turn as text, a dict (``{"tool": ..., "arguments": {...}}``
                or ``{"answer": {...}}``) or an OpenAI assistant message or
                ``tool_calls`` list (see :mod:`knowgen.envs.actions`). Anything
                malformed costs a turn and comes back as an error observation.

        Returns:
            ``(observation, reward, terminated, truncated, info)``. ``terminated``
            is True after an answer; ``truncated`` is True when the turns run out
            without one (reward 0).

        Raises:
            gymnasium.error.ResetNeeded: when called before :meth:`reset` or after
                the episode ended.
        """
        if self._done or self.task is None:
            raise ResetNeeded("The episode is over (or never started): call reset() first.")
        self._turn += 1
        self._shown, self._shown_ids = [], []
        cfg = self.config
        final_turn = self._turn >= cfg.max_turns
        started = time.monotonic()  # the tool's time limit covers reading the turn too
        parsed, kept = read_action(action, self._pool.ids(), fmt=cfg.action_format,
                                   max_chars=cfg.max_action_chars)
        self._record_action(kept)
        if parsed.kind == "answer" and parsed.answer is not None:
            return self._finish_with_answer(parsed.answer)
        if final_turn and cfg.forced_final_turn:
            return self._finish_without_answer(parsed)
        if parsed.kind == "tool" and parsed.tool_call is not None:
            if self._tool_calls >= cfg.max_tool_calls:
                error = ("You have used all your tool calls; tools are no longer allowed. "
                         "Answer now.")
                obs, last = fmt.format_invalid_action(error), self._last("invalid", error,
                                                                        parsed.tool_call.name)
            else:
                obs, last = self._run_tool(parsed.tool_call, started)
        else:
            obs = fmt.format_invalid_action(parsed.error)
            last = self._last("invalid", parsed.error)
        if final_turn:  # turns ran out and no turn is reserved for the answer
            return self._finish_out_of_turns(obs, last)
        obs = self._with_notices(obs)
        self._record_observation(obs)
        return self._observe(obs), 0.0, False, False, self._info(last)

    def _record_action(self, kept: Any) -> None:
        """Keep the action's clean copy (see :func:`read_action`) for :meth:`messages` and
        :meth:`render`."""
        self.turns.append((kept, ""))
        text = kept if isinstance(kept, str) else action_to_text(kept,
                                                                 self.config.max_action_chars)
        self.transcript.append({"role": "assistant", "content": text})

    def _record_observation(self, obs: str) -> None:
        self.turns[-1] = (self.turns[-1][0], obs)
        self.transcript.append({"role": "user", "content": obs})

    def _observe(self, text: str) -> Any:
        """The observation for ``text`` in the configured observation mode."""
        if self.config.observation_mode == "text":
            return text
        return multimodal_observation(text, list(zip(self._shown_ids, self._shown)),
                                      self.config.max_images_per_observation,
                                      self.config.observation_image_size)

    def messages(self, fmt: str = "hf", system: str | None = None,
                 images: bool = False) -> list[dict]:
        """The episode so far as chat messages (see :func:`knowgen.envs.messages.build_messages`).

        Args:
            fmt: ``"hf"`` (chat templates, TRL) or ``"openai"``.
            system: The system message; ``None`` uses this environment's system
                prompt, ``""`` leaves it out.
            images: Attach the images each tool result introduced (as content blocks).

        Raises:
            gymnasium.error.ResetNeeded: before the first :meth:`reset`.
        """
        if self.task is None:
            raise ResetNeeded("No episode yet: call reset() first.")
        image_map = None
        if images:
            image_map = {i: hit.local_path for i in self._pool.ids()
                         if (hit := self._pool.get(i)) is not None}
        cfg = self.config
        return build_messages(
            self.task.prompt, self.turns, fmt=fmt,
            system=self.system_prompt if system is None else system, images=image_map,
            parse=lambda action, known: parse_any_action(
                action, known, fmt=cfg.action_format, max_chars=cfg.max_action_chars))

    @staticmethod
    def _last(kind: str, error: str = "", tool: str | None = None, ok: bool = False) -> dict:
        return {"kind": kind, "tool": tool, "ok": ok, "error": error}

    def _with_notices(self, obs: str) -> str:
        turns_left = self.config.max_turns - self._turn
        calls_left = self.config.max_tool_calls - self._tool_calls
        lines = [obs, fmt.budget_line(calls_left, turns_left)]
        if turns_left <= 1 and self.config.forced_final_turn:
            lines.append(fmt.must_answer_notice("This is your final turn."))
        elif calls_left <= 0:
            lines.append(fmt.must_answer_notice("You have used all your tool calls."))
        text = clean_text("\n\n".join(lines))  # tool results come from the outside too
        return text[: self._text_max]

    # ------------------------------------------------------------------ tools
    def _run_tool(self, call: ToolCall, started: float | None = None
                  ) -> tuple[str, dict[str, Any]]:
        self._tool_calls += 1
        backends = {"text_search": self.text_search, "image_search": self.image_search,
                    "browser": self.browser}
        outcome = self._tools.run(call, self._pool, backends, started=started)
        self._shown_ids = [i for i, _ in outcome.shown]
        self._shown = [path for _, path in outcome.shown]
        return outcome.text, self._last("tool", outcome.error, call.name, outcome.ok)

    def close(self) -> None:
        """Stop the tool thread pool (calls still running finish in the background)."""
        self._tools.close()
        super().close()

    # ------------------------------------------------------------- episode end
    def _finish_without_answer(self, parsed: ParsedAction) -> tuple[Any, float, bool, bool, dict]:
        error = parsed.error or "The final turn must be an <answer>; tools are no longer allowed."
        tool = parsed.tool_call.name if parsed.tool_call else None
        last = self._last(parsed.kind if parsed.kind == "invalid" else "tool", error, tool)
        return self._finish_out_of_turns(fmt.format_invalid_action(error), last)

    def _finish_out_of_turns(self, obs: str, last: dict[str, Any]
                             ) -> tuple[Any, float, bool, bool, dict]:
        self._done = True
        obs = (obs + "\n\nThe episode is over: no answer was given.")[: self._text_max]
        self._record_observation(obs)
        info = self._info(last)
        info.update(end_info(no_answer_terms(self.config.alpha), None, None, None, []))
        return self._observe(obs), 0.0, False, True, info

    def _finish_with_answer(self, answer: Answer) -> tuple[Any, float, bool, bool, dict]:
        self._done = True
        assert self.task is not None
        refs = resolve_references(answer, self._pool)
        image = draw_answer(answer, refs, self.generator, self.config)
        self.last_image = image
        saved = save_image(image, self.image_dir, self.task.id)
        image_j, text_j, terms = judge_answer(self.task, answer, refs, image, self.image_judge,
                                              self.text_judge, self.config)
        obs = (f"Your answer was received and drawn. Reward: {terms.reward:.4f} "
               f"(image {terms.image:.4f}, text {terms.text:.2f}"
               f"{', gated: the answer needs 1 to 4 references' if terms.gated else ''}).")
        self._record_observation(obs)
        info = self._info(self._last("answer", "", None, True))
        info.update(end_info(terms, image_j.to_dict(), text_j.to_dict(), answer, refs, saved))
        return self._observe(obs), float(terms.reward), True, False, info

    def resolve_references(self, answer: Answer) -> list[ResolvedReference]:
        """Look the answer's image ids up in this episode's image pool (unknown ids dropped)."""
        return resolve_references(answer, self._pool)

    def _info(self, last_action: dict[str, Any]) -> dict[str, Any]:
        return {
            "task_id": self.task.id if self.task else None,
            "turn": self._turn,
            "tool_calls_used": self._tool_calls,
            "tool_calls_left": self.config.max_tool_calls - self._tool_calls,
            "turns_left": self.config.max_turns - self._turn,
            "max_turns": self.config.max_turns,
            "max_tool_calls": self.config.max_tool_calls,
            "image_ids": self._pool.ids(),
            "observation_images": list(self._shown),
            "last_action": dict(last_action),
        }

    # ----------------------------------------------------------------- render
    def render(self) -> str | None:
        """With ``render_mode="ansi"``, the transcript of the episode so far."""
        if self.render_mode != "ansi":
            return None
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in self.transcript)

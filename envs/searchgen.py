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
import re
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium.error import ResetNeeded
from gymnasium.spaces import Text
from knowgen.agents.prompt import build_first_observation, build_system_prompt
from knowgen.envs import observations as fmt
from knowgen.envs.protocol import MAX_QUERIES, MAX_REFERENCES, ParsedAction, parse_action
from knowgen.envs.rewards import RewardTerms, compute_reward, no_answer_terms
from knowgen.envs.spaces import UnicodeText
from PIL import Image

from knowgen.config import EnvConfig
from knowgen.errors import ConfigError, ToolError, UnknownNameError
from knowgen.registry import (
    BENCHMARKS,
    BROWSERS,
    GENERATORS,
    IMAGE_JUDGES,
    IMAGE_SEARCH,
    TEXT_JUDGES,
    TEXT_SEARCH,
)
from knowgen.search.toolcache import check_mode, wrap_backends
from knowgen.types import Answer, ResolvedReference, Task, ToolCall

logger = logging.getLogger(__name__)

ACTION_MAX_LENGTH = 8192
GENERATOR_REFERENCES = 3
"""References handed to the generator (the first ones by id)."""

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _backends_from(config: EnvConfig, given: dict[str, Any]) -> dict[str, Any]:
    """Use ready-made backends where given, build the rest from the registries.

    With ``config.tool_cache_mode`` ``record`` or ``replay`` the tool backends are
    wrapped in a :mod:`knowgen.search.toolcache` cache; replay builds none of them.
    """
    specs = {
        "text_search": (TEXT_SEARCH, config.search),
        "image_search": (IMAGE_SEARCH, config.image_search),
        "browser": (BROWSERS, config.browser),
        "generator": (GENERATORS, config.generator),
        "image_judge": (IMAGE_JUDGES, config.image_judge),
        "text_judge": (TEXT_JUDGES, config.text_judge),
    }
    mode = config.tool_cache_mode
    check_mode(mode, config.tool_cache)
    replaying = {"text_search", "image_search", "browser"} if mode == "replay" else set()
    backends = {key: given[key] if given.get(key) is not None
                else None if key in replaying else registry.create(spec)
                for key, (registry, spec) in specs.items()}
    if mode == "off":
        return backends
    identities = {key: spec for key, (_, spec) in specs.items()}
    return wrap_backends(backends, config.tool_cache, mode, identities)


class SearchGenEnv(gym.Env[str, str]):
    """An agent searches an (offline or real) web, then answers with a generation prompt.

    Observations and actions are text. The first observation is the system prompt
    plus the user's request; each action is one assistant turn in the protocol of
    :mod:`knowgen.envs.protocol` (a ``<think>`` block, then one ``<tool_call>`` or
    an ``<answer>``). Tool results come back wrapped in ``<tool_response>``. The
    answer is drawn by the generator, judged against the ground truth, and paid
    ``(1 - alpha) * image + alpha * text`` (0 when the reference gate fails).

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

    Info keys (every step): ``task_id``, ``turn`` (model calls so far),
    ``tool_calls_used``, ``tool_calls_left``, ``turns_left``, ``max_turns``,
    ``max_tool_calls``, ``image_ids`` (ids shown so far), ``observation_images``
    (local files of the images this observation lists, for vision models) and ``last_action``
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
        backends = _backends_from(self.config, given)
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
        self.system_prompt = build_system_prompt(
            max_turns=self.config.max_turns, max_tool_calls=self.config.max_tool_calls,
            top_k=self.config.top_k, max_queries=MAX_QUERIES,
            max_images=fmt.MAX_IMAGES_PER_SEARCH, max_refs=MAX_REFERENCES)
        self.observation_space = UnicodeText(
            max(65536, 4 * self.config.max_observation_chars + 8192))
        self.action_space = Text(max_length=ACTION_MAX_LENGTH)
        self.task: Task | None = None
        self.last_image: Image.Image | None = None
        self.transcript: list[dict[str, Any]] = []
        self._pool = fmt.ImagePool()
        self._turn = 0
        self._tool_calls = 0
        self._shown: list[str] = []
        self._done = True

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
        return cfg

    # ------------------------------------------------------------------ reset
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
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
        self._shown = []
        self._done = False
        self.last_image = None
        obs = build_first_observation(self.system_prompt, self.task.prompt)
        self.transcript = [{"role": "user", "content": obs}]
        return obs, self._info({"kind": None, "tool": None, "ok": None, "error": None})

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
    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Carry out one assistant turn.

        Returns:
            ``(observation, reward, terminated, truncated, info)``. ``terminated``
            is True after an answer; ``truncated`` is True when the final turn
            passes without one (reward 0).

        Raises:
            gymnasium.error.ResetNeeded: when called before :meth:`reset` or after
                the episode ended.
        """
        if self._done or self.task is None:
            raise ResetNeeded("The episode is over (or never started): call reset() first.")
        self._turn += 1
        self._shown = []
        final_turn = self._turn >= self.config.max_turns
        self.transcript.append({"role": "assistant", "content": action})
        parsed = parse_action(action, self._pool.ids())
        if parsed.kind == "answer" and parsed.answer is not None:
            return self._finish_with_answer(parsed.answer)
        if final_turn:
            return self._finish_without_answer(parsed)
        if parsed.kind == "tool" and parsed.tool_call is not None:
            if self._tool_calls >= self.config.max_tool_calls:
                error = ("You have used all your tool calls; tools are no longer allowed. "
                         "Answer now.")
                obs, last = fmt.format_invalid_action(error), self._last("invalid", error,
                                                                        parsed.tool_call.name)
            else:
                obs, last = self._run_tool(parsed.tool_call)
        else:
            obs = fmt.format_invalid_action(parsed.error)
            last = self._last("invalid", parsed.error)
        obs = self._with_notices(obs)
        self.transcript.append({"role": "user", "content": obs})
        return obs, 0.0, False, False, self._info(last)

    @staticmethod
    def _last(kind: str, error: str = "", tool: str | None = None, ok: bool = False) -> dict:
        return {"kind": kind, "tool": tool, "ok": ok, "error": error}

    def _with_notices(self, obs: str) -> str:
        turns_left = self.config.max_turns - self._turn
        calls_left = self.config.max_tool_calls - self._tool_calls
        lines = [obs, fmt.budget_line(calls_left, turns_left)]
        if turns_left <= 1:
            lines.append(fmt.must_answer_notice("This is your final turn."))
        elif calls_left <= 0:
            lines.append(fmt.must_answer_notice("You have used all your tool calls."))
        text = "\n\n".join(lines)
        return text[: self.observation_space.max_length]

    # ------------------------------------------------------------------ tools
    def _run_tool(self, call: ToolCall) -> tuple[str, dict[str, Any]]:
        self._tool_calls += 1
        args = call.arguments
        try:
            if call.name == "search":
                text = self._do_search(args["queries"], args.get("top_k", self.config.top_k))
            elif call.name == "image_search":
                text = self._do_image_search(args["query"], args.get("top_k", self.config.top_k))
            elif call.name == "fetch_image":
                text = self._do_fetch_image(args["url"])
            else:
                page = self.browser.browse(args["url"], args.get("query", ""))
                text = fmt.format_page(page)
            ok, error = True, ""
        except ToolError as exc:
            text, ok, error = fmt.format_tool_error(call.name, str(exc)), False, str(exc)
        obs = fmt.wrap_tool_response(text, self.config.max_observation_chars)
        return obs, self._last("tool", error, call.name, ok)

    def _do_search(self, queries: list[str], top_k: int) -> str:
        results = [(q, list(self.text_search.search(q, top_k=top_k))[:top_k]) for q in queries]
        return fmt.format_search_results(results)

    def _do_image_search(self, query: str, top_k: int) -> str:
        limit = min(top_k, fmt.MAX_IMAGES_PER_SEARCH)
        hits = list(self.image_search.search_images(query, top_k=limit))[:limit]
        self._shown = [h.local_path for h in hits]
        return fmt.format_image_results(query, [(self._pool.add(h), h) for h in hits])

    def _do_fetch_image(self, url: str) -> str:
        hit = self.image_search.fetch_image(url)
        self._shown = [hit.local_path]
        return fmt.format_fetched_image(self._pool.add(hit), hit)

    # ------------------------------------------------------------- episode end
    def _finish_without_answer(self, parsed: ParsedAction) -> tuple[str, float, bool, bool, dict]:
        self._done = True
        error = parsed.error or "The final turn must be an <answer>; tools are no longer allowed."
        tool = parsed.tool_call.name if parsed.tool_call else None
        last = self._last(parsed.kind if parsed.kind == "invalid" else "tool", error, tool)
        obs = fmt.format_invalid_action(error) + "\n\nThe episode is over: no answer was given."
        self.transcript.append({"role": "user", "content": obs})
        info = self._info(last)
        info.update(self._end_info(no_answer_terms(self.config.alpha), None, None, None, []))
        return obs, 0.0, False, True, info

    def _finish_with_answer(self, answer: Answer) -> tuple[str, float, bool, bool, dict]:
        self._done = True
        assert self.task is not None
        refs = self.resolve_references(answer)
        image = self.generator.generate(
            answer.gen_prompt, [Path(r.local_path) for r in refs[:GENERATOR_REFERENCES]],
            seed=self.config.generation_seed)
        self.last_image = image
        saved = self._save_image(image)
        image_j = self.image_judge.score(self.task, image)
        text_j = self.text_judge.score(self.task, answer, refs)
        terms = compute_reward(image_j.overall, text_j.score, self.config.alpha, len(refs),
                               self.config.reference_gate)
        obs = (f"Your answer was received and drawn. Reward: {terms.reward:.4f} "
               f"(image {terms.image:.4f}, text {terms.text:.2f}"
               f"{', gated: the answer needs 1 to 4 references' if terms.gated else ''}).")
        self.transcript.append({"role": "user", "content": obs})
        info = self._info(self._last("answer", "", None, True))
        info.update(self._end_info(terms, image_j.to_dict(), text_j.to_dict(), answer, refs,
                                   saved))
        return obs, float(terms.reward), True, False, info

    def resolve_references(self, answer: Answer) -> list[ResolvedReference]:
        """Look the answer's image ids up in this episode's image pool (unknown ids dropped)."""
        resolved = []
        for ref in answer.reference_images:
            hit = self._pool.get(ref.img_id)
            if hit is not None:
                resolved.append(ResolvedReference(
                    img_id=ref.img_id, note=ref.note, title=hit.title, url=hit.url,
                    local_path=hit.local_path, image_id=hit.image_id))
        return resolved

    def _save_image(self, image: Image.Image) -> str | None:
        if not self.image_dir or self.task is None:
            return None
        folder = Path(self.image_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{_UNSAFE_NAME.sub('_', self.task.id)}.png"
        image.save(path)
        return str(path)

    def _end_info(self, terms: RewardTerms, image_j: dict | None, text_j: dict | None,
                  answer: Answer | None, refs: list[ResolvedReference],
                  saved: str | None = None) -> dict[str, Any]:
        return {
            "reward_terms": terms.to_dict(),
            "image_judgement": image_j,
            "text_judgement": text_j,
            "answer": answer.to_dict() if answer else None,
            "generated_image": saved,
            "references": [asdict(r) for r in refs],
        }

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

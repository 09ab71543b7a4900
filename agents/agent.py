"""The Gen-Searcher agent: a language model that searches, then answers, turn by turn.

:class:`GenSearcherAgent` keeps the episode's (action, observation) turns, turns
them into chat messages with :func:`knowgen.envs.messages.build_messages`, asks a
:class:`~knowgen.agents.llm.ChatBackend` for the next assistant message and hands
it to the environment as the action. :mod:`knowgen.agents.policy` builds it over a
backend for each registered policy.

Example:
    >>> agent = GenSearcherAgent(backend, seed=0)
    >>> agent.reset(first_observation, info)
    >>> action = agent.act(observation, info)
"""

from __future__ import annotations

import ast
import json
import logging
import re
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from knowgen.agents.llm import ChatBackend
from knowgen.envs.observations import TOOLS_CLOSED, tools_closed
from knowgen.envs.prompt import TOOL_SCHEMAS, build_system_prompt, split_first_observation
from knowgen.envs.protocol import parse_action
from knowgen.errors import ConfigError

logger = logging.getLogger(__name__)

ACTION_FORMATS = ("text", "message")
_IMAGE_LINE_PREFIX = "IMG_"
_IMAGE_ID = re.compile(r"\bIMG_\d+\b", re.IGNORECASE)


def load_system_prompt(path: str | Path) -> str:
    """Read a system prompt from a file, e.g. in a local checkout of an upstream repository.

    A ``.py`` file is parsed (never run) and its first module-level string constant
    whose name contains ``PROMPT`` is taken; any other file is taken whole.

    Raises:
        ConfigError: when the file is missing, unreadable, empty or holds no such constant.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"system_prompt_from={str(path)!r} is not a file; give the path of a "
                          ".txt, .md or .py file holding the system prompt.")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the system prompt file {file}: {exc}.") from None
    prompt = _prompt_constant(text, file) if file.suffix == ".py" else text
    if not prompt.strip():
        raise ConfigError(f"The system prompt read from {file} is empty.")
    return prompt.strip()


def _prompt_constant(source: str, file: Path) -> str:
    try:
        tree = ast.parse(source, filename=str(file))
    except SyntaxError as exc:
        raise ConfigError(f"{file} is not valid Python ({exc.msg}, line {exc.lineno}); "
                          "point system_prompt_from at the file that defines the prompt.") from None
    names = []
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        for target in targets:
            if not isinstance(target, ast.Name):
                continue
            names.append(target.id)
            value = node.value
            if ("PROMPT" in target.id.upper() and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)):
                logger.info("System prompt taken from %s (%s)", file, target.id)
                return value.value
    shown = ", ".join(names[:20]) or "none"
    raise ConfigError(f"{file} defines no module-level string constant whose name contains "
                      f"PROMPT (module-level names: {shown}). Give a .txt file instead.")


def episode_seed(seed: int, task_id: Any) -> int:
    """A seed for one episode that depends only on the policy seed and the task."""
    return zlib.crc32(f"{seed}:{task_id}".encode()) & 0x7FFFFFFF


def message_to_text(message: Mapping[str, Any]) -> str:
    """An assistant message (content and/or ``tool_calls``) written in the text protocol."""
    parts = [str(message.get("content") or "").strip()]
    for call in message.get("tool_calls") or []:
        function = call.get("function", call) if isinstance(call, dict) else {}
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except ValueError:
                pass  # left as a string: the environment explains what is wrong
        body = json.dumps({"name": function.get("name"), "arguments": arguments},
                          ensure_ascii=False)
        parts.append(f"<tool_call>{body}</tool_call>")
    return "\n".join(p for p in parts if p)


def _build_messages(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    from knowgen.envs.messages import build_messages

    return build_messages(*args, **kwargs)


def _view_function(view: str | None) -> Any:
    from knowgen.envs.views import view_function

    return view_function(view)


def _listed_images(observation: str) -> dict[str, str]:
    """``IMG_### -> local_path`` for the images an observation lists."""
    from knowgen.reference_policies.common import parse_images

    if _IMAGE_LINE_PREFIX not in observation:
        return {}
    return {img.img_id: img.local_path for img in parse_images(observation) if img.local_path}


class GenSearcherAgent:
    """A chat model acting in the Gen-Searcher protocol.

    The system prompt is, in order of preference: ``system_prompt``; the file
    ``system_prompt_from``; the prompt stored with the backend's checkpoint; the
    instructions in the environment's first observation; the default of
    :func:`knowgen.envs.prompt.build_system_prompt`.

    Args:
        backend: The language model (:class:`~knowgen.agents.llm.ChatBackend`).
        system_prompt: System prompt text.
        system_prompt_from: A file to read the system prompt from (see :func:`load_system_prompt`).
        images: Send the images each tool result lists (vision models).
        tools: Pass tool schemas to the backend (``False`` for an endpoint without
            function calling; the model then writes ``<tool_call>`` text).
        action_format: ``"text"``: hand the environment protocol text (tool calls
            written as ``<tool_call>`` blocks); ``"message"``: the assistant message dict.
        seed: Seeds each episode's sampling together with its task id.
        name: Policy name shown in runs and results.
        format_retries: When a reply breaks the protocol (no parsable tool call or answer),
            ask the backend's ``resample`` for up to this many more (sampled) replies and
            hand over the first that parses, else the last. 0 hands every first reply
            over as it is.
        drop_invalid_turns: Leave turns that broke the protocol, and the environment's
            error replies to them, out of the conversation the model sees next, so it
            tries again from a context like those it was trained on. A model trained only
            on clean transcripts rarely recovers once an error is in its context. A
            dropped reply's notice that the next turn must be the answer is kept: it
            is added to the last observation the model does see (or to the request).
        resample_repeats: Treat a tool call that repeats one of the episode's earlier
            calls word for word (same tool, same arguments) like a reply that breaks the
            protocol: the world answers it as before, so a model caught in such a loop
            spends its budget on nothing. Resampled up to ``format_retries`` times.

    Raises:
        ConfigError: for an unknown ``action_format`` or an unreadable prompt file.
    """

    def __init__(self, backend: ChatBackend, system_prompt: str | None = None,
                 system_prompt_from: str | Path | None = None, images: bool = False,
                 tools: bool = True, action_format: str = "text", seed: int = 0,
                 name: str = "gen-searcher", format_retries: int = 0,
                 drop_invalid_turns: bool = False, resample_repeats: bool = False):
        if action_format not in ACTION_FORMATS:
            raise ConfigError(f"Unknown action_format {action_format!r}; use one of "
                              f"{', '.join(ACTION_FORMATS)}.")
        if int(format_retries) < 0:
            raise ConfigError(f"format_retries must be >= 0, got {format_retries}.")
        if format_retries and not callable(getattr(backend, "resample", None)):
            raise ConfigError(f"format_retries needs a backend that can resample a reply; "
                              f"{type(backend).__name__} cannot. Leave format_retries at 0.")
        self.format_retries = int(format_retries)
        self.drop_invalid_turns = bool(drop_invalid_turns)
        self.resample_repeats = bool(resample_repeats)
        self.dropped_turns = 0
        if system_prompt is None and system_prompt_from:
            system_prompt = load_system_prompt(system_prompt_from)
        self.backend = backend
        self.fixed_system_prompt = system_prompt
        self.images, self.use_tools = bool(images), bool(tools)
        self.action_format, self.seed, self.name = action_format, int(seed), name
        self.request = ""
        self.system_prompt = system_prompt or ""
        self.turns: list[tuple[Any, str]] = []
        self.image_paths: dict[str, str] = {}
        self._last_action: Any = None
        self._last_valid = True

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        """The tool schemas sent to the backend (the checkpoint's own when it has them)."""
        if not self.use_tools:
            return None
        return list(getattr(self.backend, "tools", None) or TOOL_SCHEMAS)

    def reset(self, observation: str, info: dict[str, Any]) -> None:
        """Start an episode from the environment's first observation."""
        instructions, request = split_first_observation(str(observation))
        self.request = str(info.get("request") or request)
        self.system_prompt = (self.fixed_system_prompt
                              or getattr(self.backend, "system_prompt", None)
                              or instructions or build_system_prompt(
                                  max_turns=info.get("max_turns", 10),
                                  max_tool_calls=info.get("max_tool_calls", 8)))
        self.turns, self.image_paths, self._last_action = [], {}, None
        self._last_valid, self.dropped_turns = True, 0
        reseed = getattr(self.backend, "reseed", None)
        if callable(reseed):
            reseed(episode_seed(self.seed, info.get("task_id")))

    def messages(self) -> list[dict[str, Any]]:
        """The conversation so far, in the backend's message format and context view."""
        view = _view_function(getattr(self.backend, "view", None))
        turns = [(action, view(obs) if isinstance(obs, str) else obs) for action, obs in self.turns]
        return _build_messages(self.request, turns, fmt=self.backend.fmt,
                               system=self.system_prompt or None,
                               images=dict(self.image_paths) if self.images else None)

    def act(self, observation: str, info: dict[str, Any]) -> Any:
        """Record the latest observation, ask the model, return its turn as the action."""
        if self._last_action is None and not self.turns and not self.request:
            self.reset(observation, info)
        elif self._last_action is not None:
            if self._last_valid or not self.drop_invalid_turns:
                self.turns.append((self._last_action, str(observation)))
                self.image_paths.update(_listed_images(str(observation)))
            else:
                self.dropped_turns += 1
                self._keep_notice(str(observation))
        messages, tools = self.messages(), self.tools
        reply = self.backend.complete(messages, tools)
        valid = self._parses(reply)
        for attempt in range(self.format_retries):
            if valid and not self._repeats(reply):
                break
            logger.debug("Reply %d broke the protocol or repeated a call; asking again",
                         attempt + 1)
            reply = self.backend.resample(messages, tools)
            valid = self._parses(reply)
        self._last_valid = valid
        action: Any = dict(reply) if self.action_format == "message" else message_to_text(reply)
        self._last_action = action
        return action

    def _keep_notice(self, observation: str) -> None:
        """Carry the must-answer notice of a dropped turn's reply into the kept context."""
        notice = "\n".join(line for line in observation.splitlines() if TOOLS_CLOSED in line)
        if not notice:
            return
        if self.turns:
            action, kept = self.turns[-1]
            if isinstance(kept, str) and not tools_closed(kept):
                self.turns[-1] = (action, f"{kept}\n\n{notice}")
        elif not tools_closed(self.request):
            self.request = f"{self.request}\n\n{notice}"

    def _repeats(self, reply: Mapping[str, Any]) -> bool:
        """Whether ``reply`` calls a tool with the arguments of an earlier call (when
        ``resample_repeats`` is on)."""
        if not self.resample_repeats:
            return False
        call = _call_key(message_to_text(reply))
        return call is not None and any(
            _call_key(action if isinstance(action, str) else message_to_text(action)) == call
            for action, _ in self.turns)

    def _parses(self, reply: Mapping[str, Any]) -> bool:
        """Whether ``reply`` is a well-formed tool call or answer (citing ids seen so far)."""
        shown = {m.group(0).upper() for _, obs in self.turns
                 for m in _IMAGE_ID.finditer(str(obs))}
        return parse_action(message_to_text(reply), shown).kind != "invalid"


def _call_key(text: str) -> str | None:
    """The tool and arguments a protocol turn calls, as comparable text (None: no call)."""
    parsed = parse_action(text)
    if parsed.kind != "tool" or parsed.tool_call is None:
        return None
    return json.dumps([parsed.tool_call.name, parsed.tool_call.arguments], sort_keys=True,
                      ensure_ascii=False)

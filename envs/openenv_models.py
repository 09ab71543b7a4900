"""Typed models of SearchGenEnv's actions, observations and state for OpenEnv.

These are the pydantic models the OpenEnv server publishes at ``/schema`` and
checks every request against (:mod:`knowgen.envs.openenv_server`), and that the
typed client (:mod:`knowgen.envs.openenv_client`) sends and reads.

* :class:`SearchGenAction`: one assistant turn in any form
  :meth:`~knowgen.envs.searchgen.SearchGenEnv.step` takes: ``text`` (the
  Gen-Searcher text protocol), ``tool`` + ``arguments`` or ``answer`` (the dict
  form), or ``tool_calls`` (+ ``content``: an OpenAI assistant message). Exactly
  one of ``text``, ``tool``, ``answer`` and ``tool_calls`` is set. What the
  turn *says* is not checked here: a malformed call or answer comes back as an
  observation telling the model what to fix, exactly as in-process.
* :class:`SearchGenObservation`: the observation ``text``, the ``image_ids`` it
  lists and, for an episode reset with ``images=True``, those images' bytes;
  ``reward``, ``done`` and ``metadata`` (``info``, ``terminated``,
  ``truncated``, ``episode_id``) as OpenEnv defines them.
* :class:`SearchGenState`: the episode's counters.

Importing this module imports ``openenv`` (``pip install 'knowgen[openenv]'``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from knowgen.errors import MissingDependencyError

try:
    from openenv.core.env_server.types import Action, Observation, State
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(exc.name or "openenv", "openenv",
                                 "Serving SearchGenEnv over OpenEnv") from None

_TURN_FIELDS = ("text", "tool", "answer", "tool_calls")


class SearchGenAction(Action):
    """One assistant turn: set exactly one of ``text``, ``tool``, ``answer`` or ``tool_calls``.

    Examples (as JSON)::

        {"text": "<think>...</think><tool_call>{...}</tool_call>"}
        {"tool": "image_search", "arguments": {"query": "Flag of Peru"}}
        {"answer": {"gen_prompt": "...", "reference_images": [{"img_id": "IMG_001", "note": "flag"}]}}
        {"tool_calls": [{"id": "c1", "type": "function",
                         "function": {"name": "search", "arguments": "{\\"queries\\": [\\"Lima\\"]}"}}]}
    """

    text: str | None = Field(default=None, description=(
        "The turn in the Gen-Searcher text protocol: <think>...</think>, then one "
        "<tool_call>{...}</tool_call> or <answer>{...}</answer>."))
    tool: str | None = Field(default=None, description=(
        "A tool to call: search, image_search, browse or fetch_image (with `arguments`)."))
    arguments: dict[str, Any] | None = Field(default=None, description=(
        "Arguments of `tool`, e.g. {\"queries\": [\"capital of Peru\"]}."))
    answer: dict[str, Any] | str | None = Field(default=None, description=(
        "The final answer {\"gen_prompt\": ..., \"reference_images\": [{\"img_id\": "
        "\"IMG_001\", \"note\": ...}]}, or its JSON text."))
    tool_calls: list[dict[str, Any]] | None = Field(default=None, description=(
        "OpenAI tool calls of an assistant message (one per turn); a function named "
        "`answer` carries the answer."))
    content: str | None = Field(default=None, description=(
        "With `tool_calls`: the assistant message's content (its <think> block)."))
    think: str | None = Field(default=None, description=(
        "With `tool` or `answer`: the turn's reasoning."))

    @model_validator(mode="after")
    def _one_turn(self) -> SearchGenAction:
        given = [name for name in _TURN_FIELDS if getattr(self, name) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "one_turn",
                "Set exactly one of text, tool, answer or tool_calls (got {given}); "
                "one action is one assistant turn.", {"given": ", ".join(given) or "none"})
        if self.arguments is not None and self.tool is None:
            raise PydanticCustomError("arguments_without_tool",
                                      "`arguments` goes with `tool`; add the tool's name.")
        if self.content is not None and self.tool_calls is None:
            raise PydanticCustomError("content_without_tool_calls",
                                      "`content` goes with `tool_calls`; send plain turns "
                                      "as `text`.")
        if self.think is not None and self.tool is None and self.answer is None:
            raise PydanticCustomError("misplaced_think",
                                      "`think` goes with `tool` or `answer`; in `text` and "
                                      "`content` write a <think> block instead.")
        return self

    def to_env_action(self) -> Any:
        """The action in the form :meth:`SearchGenEnv.step` takes (text, dict or OpenAI message)."""
        if self.text is not None:
            return self.text
        think = {"think": self.think} if self.think is not None else {}
        if self.tool is not None:
            return {"tool": self.tool, "arguments": self.arguments or {}, **think}
        if self.answer is not None:
            return {"answer": self.answer, **think}
        return {"role": "assistant", "content": self.content, "tool_calls": self.tool_calls}


class ImageData(BaseModel):
    """One image an observation lists, as the bytes of its file."""

    model_config = ConfigDict(extra="forbid")

    img_id: str = Field(description="The per-episode id, e.g. IMG_001.")
    media_type: str = Field(description="MIME type of `data`, e.g. image/png.")
    data: str = Field(description="The file's bytes, base64-encoded.")


class SearchGenObservation(Observation):
    """What the agent sees after a reset or a step.

    ``metadata`` holds ``info`` (the Gymnasium ``info`` dict, reward terms and
    judgements included at the end), ``terminated``, ``truncated`` and ``episode_id``.
    """

    text: str = Field(default="", description="The observation text (the user message).")
    image_ids: list[str] = Field(default_factory=list, description=(
        "Ids of the images this observation lists (the ones a vision model is shown)."))
    images: list[ImageData] = Field(default_factory=list, description=(
        "The listed images' bytes; only for episodes reset with images=true."))


class SearchGenState(State):
    """The episode's counters (``episode_id`` and ``step_count`` come from OpenEnv)."""

    task_id: str | None = Field(default=None, description="The task being played.")
    turn: int = Field(default=0, description="Model calls so far.")
    tool_calls_used: int = Field(default=0, description="Tool calls so far.")
    done: bool = Field(default=False, description="Whether the episode has ended.")
    image_ids: list[str] = Field(default_factory=list, description="Ids shown so far.")
    split: str | None = Field(default=None, description="Benchmark split served.")
    benchmark: str | None = Field(default=None, description="Benchmark spec served.")


__all__ = ["ImageData", "SearchGenAction", "SearchGenObservation", "SearchGenState"]

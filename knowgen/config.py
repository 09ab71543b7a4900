"""Configuration dataclasses: a docstring per field, YAML in, CLI flags override.

Environment variables are read only for secrets (API keys), never for settings.

Example:
    >>> cfg = load_config(EvalConfig, "eval.yaml", overrides={"limit": 10})
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from knowgen.errors import ConfigError

T = TypeVar("T")


@dataclass
class EnvConfig:
    """Settings of :class:`knowgen.envs.SearchGenEnv`."""

    benchmark: str = "world"
    """Benchmark spec, ``name[:key=value,...]`` (see ``knowgen list benchmarks``)."""

    split: str = "test"
    """Split of the benchmark whose tasks the environment serves."""

    search: str = "local"
    """Text search backend spec."""

    image_search: str = "local"
    """Image search backend spec."""

    browser: str = "local"
    """Browse backend spec."""

    generator: str = "compositor"
    """Image generator spec used when the agent answers."""

    image_judge: str = "offline"
    """Image judge spec: scores the generated image against the ground truth (on WISE,
    which has no ground truth, it names the WISE judge: ``offline`` or ``openai:...``)."""

    text_judge: str = "offline"
    """Text judge spec: scores whether the answer suffices to draw the ground truth."""

    alpha: float = 0.5
    """Weight of the text reward: reward = (1 - alpha) * image + alpha * text."""

    max_turns: int = 10
    """Model calls per episode, the forced final answer turn included."""

    max_tool_calls: int = 8
    """Tool calls per episode; after the last one the agent must answer."""

    max_observation_chars: int = 6000
    """Longest tool response text; longer ones are cut and marked as truncated."""

    top_k: int = 5
    """Default number of results per search or image search."""

    reference_gate: bool = True
    """Pay reward 0 unless the answer has 1 to 4 valid references (as upstream)."""

    generation_seed: int = 0
    """Seed passed to the image generator."""

    tool_cache: str | None = None
    """Path of the SQLite file that records or replays tool results (see tool_cache_mode)."""

    tool_cache_mode: str = "off"
    """Tool cache use: ``off``, ``record`` (store every tool result) or ``replay`` (answer
    tool calls from ``tool_cache`` only, never calling the backends)."""

    forced_final_turn: bool = True
    """Reserve the last of ``max_turns`` for the answer: the observation before it says
    tools are forbidden, and anything but an answer then ends the episode. When false,
    every turn may call a tool and the episode is truncated after ``max_turns`` turns."""

    max_images_per_observation: int = 5
    """Most images one image search shows (and one ``dict`` observation carries)."""

    observation_mode: str = "text"
    """``text`` (observations are strings) or ``dict`` (text plus the images the
    observation lists, as a ``(N, H, W, 3)`` uint8 array)."""

    observation_image_size: int = 224
    """Side of the square (letterboxed) images of ``dict`` observations, in pixels."""

    tool_timeout_s: float = 30.0
    """Seconds a tool call may take before it returns a timeout error (0 waits forever)."""

    action_format: str = "auto"
    """Accepted action format: ``auto`` (detected per action), ``text``, ``dict`` or
    ``openai`` (see ``knowgen.envs.actions``)."""

    max_action_chars: int = 65536
    """Largest action (characters); a longer one is refused unread as an invalid turn."""


@dataclass
class EvalConfig:
    """Settings of ``knowgen eval``."""

    env: EnvConfig = field(default_factory=EnvConfig)
    """The environment every task runs in."""

    policy: str = "scripted"
    """Policy spec, ``name[:key=value,...]`` (see ``knowgen list policies``)."""

    limit: int | None = None
    """Run only N tasks, spread evenly over the split (all tasks when unset); with --resume, a larger N grows the run to the tasks it lacks."""

    tasks: str | None = None
    """Run only the tasks whose id matches one of these comma-separated patterns (``*`` and ``?`` wildcards, e.g. ``flag_by_neighbours-*,capital_of_city-*``), before --limit spreads its N over them; a pattern that matches nothing is refused."""

    seed: int = 0
    """Seed for the policy and the environment."""

    output_dir: str = "runs"
    """Folder under which run folders are created."""

    resume: str | None = None
    """Path of an interrupted run folder to continue."""

    workers: int = 1
    """Tasks evaluated concurrently (threads of the local executor)."""

    executor: str = "local"
    """Where episodes run: ``local`` (threads of this process, see ``workers``) or
    ``ray[:key=value,...]`` (Ray actors on a cluster; keys: address, actors, num_cpus,
    num_gpus, judge_concurrency, max_retries; needs ``knowgen[ray]``)."""


def _field_type(cls: type, name: str) -> Any:
    hints = typing.get_type_hints(cls)
    return hints[name]


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}.")
        return from_dict(tp, value, where=where)
    if tp is bool:
        if isinstance(value, str):
            low = value.lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off"}:
                return False
            raise ConfigError(f"{where} must be true or false, got {value!r}.")
        return bool(value)
    if tp in (int, float, str):
        if isinstance(value, (list, tuple, dict, set)):
            # str() would turn a YAML list into "['a', 'b']", a value nobody wrote
            several = " (write several values as one comma-separated string)" \
                if tp is str and not isinstance(value, dict) else ""
            raise ConfigError(f"{where} must be one {tp.__name__}, got a "
                              f"{type(value).__name__} {value!r}{several}.")
        try:
            return tp(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where} must be {tp.__name__}, got {value!r}.") from exc
    return value


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys.

    Raises:
        ConfigError: for unknown keys (with a suggestion) or values of the wrong type.
    """
    import difflib

    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Unknown setting {path!r}.{hint} Known: {', '.join(sorted(names))}.")
        kwargs[key] = _coerce(value, _field_type(cls, key), path)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict view of a config dataclass (for summaries and logs)."""
    return dataclasses.asdict(cfg)


class _Clear:
    """Type of :data:`CLEAR`."""

    def __repr__(self) -> str:
        return "CLEAR"


CLEAR = _Clear()
"""An override value that sets a setting to ``None`` (``--set sft.max_records=null``),
where a plain ``None`` override leaves the setting as it is."""


def apply_overrides(cfg: T, overrides: dict[str, Any]) -> T:
    """Return a copy of ``cfg`` with dotted-key ``overrides`` applied (``env.alpha=0.3``).

    ``None`` values are skipped, so unset CLI flags keep the file's values; :data:`CLEAR`
    sets the setting to ``None``.
    """
    data = to_dict(cfg)
    for key, value in overrides.items():
        if value is None:
            continue
        if value is CLEAR:
            value = None
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"Unknown setting {key!r}.")
            node = node[part]
        node[parts[-1]] = value
    return from_dict(type(cfg), data)


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Read ``cls`` from a YAML file (optional), then apply ``overrides``.

    Raises:
        ConfigError: when the file is missing, not YAML, or holds unknown settings.
    """
    cfg = cls()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"Config file {str(p)!r} does not exist.")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"Config file {str(p)!r} is not valid YAML: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"Config file {str(p)!r} is not UTF-8 text (byte {exc.start}); "
                              "save it as UTF-8.") from None
        if not isinstance(data, dict):
            raise ConfigError(f"Config file {str(p)!r} must hold a mapping of settings.")
        if cls is EvalConfig:
            data = lift_env_settings(data, str(p))
        cfg = from_dict(cls, data)
    return apply_overrides(cfg, overrides or {})


def lift_env_settings(data: dict[str, Any], where: str = "the config") -> dict[str, Any]:
    """An eval config mapping with environment settings given at the top level moved under ``env``.

    ``benchmark: world`` at the top level means ``env: {benchmark: world}``; both
    forms may be mixed, but one setting may not be given in both places.

    Raises:
        ConfigError: when a setting is given both at the top level and under ``env``.
    """
    import difflib

    eval_names = {f.name for f in fields(EvalConfig)}
    env_names = {f.name for f in fields(EnvConfig)} - eval_names
    for key in data:
        if key not in eval_names and key not in env_names:
            close = difflib.get_close_matches(str(key), eval_names | env_names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Unknown setting {key!r} in {where}.{hint} Run settings: "
                              f"{', '.join(sorted(eval_names))}; environment settings: see "
                              "'knowgen eval --help'.")
    lifted = {k: v for k, v in data.items() if k in env_names}
    if not lifted:
        return data
    env = data.get("env") or {}
    if not isinstance(env, dict):
        raise ConfigError(f"In {where}, 'env' must be a mapping of environment settings.")
    twice = sorted(set(lifted) & set(env))
    if twice:
        raise ConfigError(f"In {where}, {', '.join(twice)} is given both at the top level and "
                          "under 'env'; keep one.")
    rest = {k: v for k, v in data.items() if k not in lifted}
    return {**rest, "env": {**env, **lifted}}


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of dataclass ``cls`` (for ``--help``)."""
    try:
        tree = ast.parse(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(getattr(nxt, "value", None), ast.Constant)):
            docs[node.target.id] = str(nxt.value.value).strip()
    return docs

"""The ``knowgen serve env`` command line: flags, checks, and the call to :func:`serve_env`.

Kept beside the server so that ``knowgen.cli`` only registers it; nothing here
imports ``openenv`` until the command runs.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from knowgen.errors import ConfigError

# flag -> EnvConfig field, each flag's value given as the field's type
_ENV_FLAGS = {"benchmark": str, "split": str, "search": str, "image_search": str,
              "browser": str, "generator": str, "image_judge": str, "text_judge": str,
              "alpha": float, "max_turns": int, "max_tool_calls": int}


def add_env_parser(services: argparse._SubParsersAction) -> None:
    """Add ``env`` to the ``knowgen serve`` services."""
    from knowgen.config import EnvConfig, field_docs
    from knowgen.envs.openenv_server import (
        DEFAULT_IDLE_TIMEOUT_S,
        DEFAULT_MAX_REQUEST_BYTES,
        DEFAULT_MAX_SESSIONS,
        DEFAULT_PORT,
    )

    p = services.add_parser(
        "env", help="serve SearchGenEnv to the OpenEnv specification (WebSocket /ws, "
        "HTTP /sessions; needs knowgen[openenv])",
        description="Serve SearchGenEnv over OpenEnv's HTTP/WebSocket API, many sessions at "
        "once, each its own episode on shared backends.")
    p.add_argument("--config", help="YAML file of environment settings (EnvConfig); flags "
                   "override it")
    docs, defaults = field_docs(EnvConfig), EnvConfig()
    for name, kind in _ENV_FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=None,
                       help=f"{docs.get(name, '')} (default: {getattr(defaults, name)})"
                       .replace("%", "%%"))
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                   "127.0.0.1; 0.0.0.0 serves other machines, best with a token)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to listen on (default: {DEFAULT_PORT})")
    p.add_argument("--max-sessions", type=int, default=DEFAULT_MAX_SESSIONS,
                   help="most sessions at once, WebSocket and HTTP together; more are "
                   f"refused (default: {DEFAULT_MAX_SESSIONS})")
    p.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_S,
                   metavar="SECONDS", help="end sessions idle this long; 0 never "
                   f"(default: {DEFAULT_IDLE_TIMEOUT_S:g})")
    p.add_argument("--max-request-kb", type=float, default=DEFAULT_MAX_REQUEST_BYTES / 1024,
                   help="largest HTTP body or WebSocket message in KiB; larger ones get 413 "
                   f"or close the socket (default: {DEFAULT_MAX_REQUEST_BYTES // 1024:g})")
    token = p.add_mutually_exclusive_group()
    token.add_argument("--token-env", metavar="NAME", default=None,
                       help="require 'Authorization: Bearer <token>' on every request, the "
                       "token read from environment variable NAME")
    token.add_argument("--token", default=None, help="the bearer token itself (visible to "
                       "other users in the process list; prefer --token-env)")
    p.add_argument("--images", action="store_true", help="attach the bytes of listed images "
                   "to observations unless reset says images=false")


def read_token(args: argparse.Namespace) -> str | None:
    """The bearer token the flags ask for, or None.

    Raises:
        ConfigError: when ``--token-env`` names an unset or empty variable, or the
            token is empty.
    """
    if args.token_env:
        value = os.environ.get(args.token_env, "")
        if not value.strip():
            raise ConfigError(f"--token-env {args.token_env}: that environment variable is "
                              "unset or empty; set it to the token, or drop --token-env.")
        return value.strip()
    if args.token is not None:
        if not args.token.strip():
            raise ConfigError("--token is empty; give a token or drop the flag.")
        return args.token.strip()
    return None


def env_config(args: argparse.Namespace) -> Any:
    """The :class:`EnvConfig` of ``--config`` with the flags applied."""
    from knowgen.config import EnvConfig, load_config

    overrides = {name: getattr(args, name) for name in _ENV_FLAGS}
    return load_config(EnvConfig, args.config, overrides)


def run_serve_env(args: argparse.Namespace) -> int:
    """Run ``knowgen serve env`` until interrupted.

    Raises:
        ConfigError: for bad flags (a limit out of range, an unset token variable).
        MissingDependencyError: without ``knowgen[openenv]``.
    """
    from knowgen.envs.openenv_server import check_limits, require_openenv, serve_env

    if args.max_sessions < 1:
        raise ConfigError(f"--max-sessions must be at least 1, got {args.max_sessions}.")
    if not args.idle_timeout >= 0:
        raise ConfigError(f"--idle-timeout must be 0 (never) or more seconds, got "
                          f"{args.idle_timeout}.")
    if not args.max_request_kb > 0:
        raise ConfigError(f"--max-request-kb must be more than 0, got {args.max_request_kb}.")
    max_request_bytes = int(args.max_request_kb * 1024)
    idle = args.idle_timeout or None
    check_limits(args.max_sessions, idle, max_request_bytes)
    token = read_token(args)
    config = env_config(args)
    require_openenv()
    serve_env(config, host=args.host, port=args.port, max_sessions=args.max_sessions,
              idle_timeout_s=idle, max_request_bytes=max_request_bytes, token=token,
              images=args.images)
    return 0


__all__ = ["add_env_parser", "env_config", "read_token", "run_serve_env"]

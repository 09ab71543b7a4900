"""Record and replay tool results through one content-addressed SQLite file.

A run made with ``tool_cache_mode="record"`` stores every search, image search,
image fetch and browse result (failures included) in the file named by
``tool_cache``; a later run with ``tool_cache_mode="replay"`` answers the same
calls from that file without touching the backends, so a web-backed episode
replays offline with identical observations and rewards.

Each call is keyed by the SHA-256 of the backend identity (its spec string),
the tool name and the canonical JSON of the arguments. Image bytes live once
per content hash in the ``blobs`` table and are written out to
``<tool_cache>.images/<sha256><suffix>``; cached image hits point there, in
record mode as in replay mode, so both runs show the same ``local_path``.

Example:
    >>> cache = ToolCache("runs/tools.sqlite", "record")
    >>> search = CachedTextSearch(LocalTextSearch(), cache, "local")
    >>> hits = search.search("capital Lima")
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from knowgen.errors import ConfigError, DataError, ToolError
from knowgen.types import ImageHit, Page, SearchHit

logger = logging.getLogger(__name__)

#: Accepted values of ``EnvConfig.tool_cache_mode``.
MODES = ("off", "record", "replay")
#: Backend keys of ``SearchGenEnv`` that the cache wraps.
TOOL_KEYS = ("text_search", "image_search", "browser")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY, tool TEXT NOT NULL, request TEXT NOT NULL,
    response TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (sha256 TEXT PRIMARY KEY, data BLOB NOT NULL);
"""


def check_mode(mode: str, path: str | None) -> None:
    """Validate a cache mode and path.

    Raises:
        ConfigError: for an unknown mode, or ``record``/``replay`` without a path.
    """
    if mode not in MODES:
        raise ConfigError(f"Unknown tool_cache_mode {mode!r}; use one of {', '.join(MODES)}.")
    if mode != "off" and not path:
        raise ConfigError(f"tool_cache_mode={mode!r} needs tool_cache, the path of the "
                          "SQLite file to record to or replay from.")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces (non-JSON values written as strings)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


class ToolCache:
    """One SQLite file holding recorded tool calls and image bytes.

    Safe to share between threads: one connection guarded by a lock.

    Args:
        path: The SQLite file (created with its folder when recording).
        mode: ``"off"``, ``"record"`` or ``"replay"``.

    Raises:
        ConfigError: for a bad mode or a missing path.
        DataError: when replaying from a file that does not exist or is not a cache.
    """

    def __init__(self, path: str | Path, mode: str):
        check_mode(mode, str(path) if path else None)
        self.path = Path(path)
        self.mode = mode
        self.image_dir = Path(f"{self.path}.images")
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        if mode != "off":
            self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        if self.mode == "replay" and not self.path.is_file():
            raise DataError(f"Tool cache {str(self.path)!r} does not exist; record a run "
                            "first with tool_cache_mode='record'.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise DataError(f"Tool cache {str(self.path)!r} is not a usable SQLite file "
                            f"({exc}); delete it and record again.") from exc
        return conn

    @staticmethod
    def key(identity: str, tool: str, args: dict[str, Any]) -> str:
        """SHA-256 of the backend identity, the tool name and the canonical arguments."""
        return hashlib.sha256(canonical_json([identity, tool, args]).encode("utf-8")).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored response of call ``key``, or ``None`` when it was not recorded."""
        with self._lock:
            row = self._db().execute("SELECT response FROM calls WHERE key = ?",
                                     (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, tool: str, args: dict[str, Any], response: dict[str, Any]) -> None:
        """Store (or overwrite) the response of call ``key``."""
        with self._lock, self._db():
            self._db().execute(
                "INSERT OR REPLACE INTO calls (key, tool, request, response, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, tool, canonical_json(args), canonical_json(response), time.time()))

    def put_blob(self, data: bytes) -> str:
        """Store ``data`` once under its SHA-256 and return the hash."""
        digest = hashlib.sha256(data).hexdigest()
        with self._lock, self._db():
            self._db().execute("INSERT OR IGNORE INTO blobs (sha256, data) VALUES (?, ?)",
                               (digest, sqlite3.Binary(data)))
        return digest

    def blob_file(self, digest: str, suffix: str = ".png") -> Path:
        """Path of the image file for blob ``digest``, written from the DB if missing.

        Raises:
            ToolError: when the blob is not in the cache.
        """
        target = self.image_dir / f"{digest}{suffix}"
        if target.is_file():
            return target
        with self._lock:
            row = self._db().execute("SELECT data FROM blobs WHERE sha256 = ?",
                                     (digest,)).fetchone()
        if row is None:
            raise ToolError(f"Image {digest} is missing from tool cache {str(self.path)!r}; "
                            "record the run again.")
        self.image_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(bytes(row[0]))
        os.replace(tmp, target)
        return target

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ConfigError("The tool cache is off or closed; it stores nothing.")
        return self._conn


class _Cached:
    """Shared record/replay logic of the wrappers."""

    def __init__(self, inner: Any, cache: ToolCache, identity: str):
        self.inner, self.cache, self.identity = inner, cache, identity

    def _call(self, tool: str, args: dict[str, Any], run: Callable[[], Any],
              encode: Callable[[Any], Any], decode: Callable[[Any], Any]) -> Any:
        mode = self.cache.mode
        if mode == "off":
            return run()
        key = ToolCache.key(self.identity, tool, args)
        if mode == "replay":
            stored = self.cache.get(key)
            if stored is None:
                raise ToolError(
                    f"No recorded result for {tool}({canonical_json(args)}) on backend "
                    f"{self.identity!r} in tool cache {str(self.cache.path)!r}: the run was "
                    "not recorded with these settings. Record it again with "
                    "tool_cache_mode='record'.")
            if not stored["ok"]:
                raise ToolError(stored["error"])
            return decode(stored["value"])
        try:
            result = run()
        except ToolError as exc:
            self.cache.put(key, tool, args, {"ok": False, "error": str(exc)})
            raise
        value = encode(result)
        self.cache.put(key, tool, args, {"ok": True, "value": value})
        return decode(value)

    def _encode_image(self, hit: ImageHit) -> dict[str, Any]:
        data = asdict(hit)
        data["blob"], data["suffix"] = None, ".png"
        source = Path(hit.local_path) if hit.local_path else None
        if source is not None and source.is_file():
            data["blob"] = self.cache.put_blob(source.read_bytes())
            suffix = source.suffix.lower()
            data["suffix"] = suffix if suffix in _IMAGE_SUFFIXES else ".png"
        return data

    def _decode_image(self, data: dict[str, Any]) -> ImageHit:
        fields = {k: v for k, v in data.items() if k not in ("blob", "suffix")}
        hit = ImageHit(**fields)
        if data.get("blob"):
            path = self.cache.blob_file(data["blob"], data.get("suffix") or ".png")
            hit = replace(hit, local_path=str(path))
        return hit


class CachedTextSearch(_Cached):
    """A :class:`~knowgen.search.base.TextSearch` that records or replays its results.

    Args:
        inner: The real backend (may be ``None`` in replay mode).
        cache: The shared cache.
        identity: Backend identity in the call keys (its spec string, e.g. ``"serper"``).
    """

    def search(self, query: str, top_k: int = 5) -> list[SearchHit]:
        """Search, or return the recorded hits."""
        return self._call(
            "search", {"query": query, "top_k": top_k},
            lambda: self.inner.search(query, top_k=top_k),
            lambda hits: [asdict(h) for h in hits],
            lambda rows: [SearchHit(**r) for r in rows])


class CachedImageSearch(_Cached):
    """An :class:`~knowgen.search.base.ImageSearch` that records or replays its results.

    Image bytes are stored in the cache and served from ``<tool_cache>.images``.
    """

    def search_images(self, query: str, top_k: int = 5) -> list[ImageHit]:
        """Search images, or return the recorded hits."""
        return self._call(
            "search_images", {"query": query, "top_k": top_k},
            lambda: self.inner.search_images(query, top_k=top_k),
            lambda hits: [self._encode_image(h) for h in hits],
            lambda rows: [self._decode_image(r) for r in rows])

    def fetch_image(self, url: str) -> ImageHit:
        """Fetch an image by URL, or return the recorded one."""
        return self._call("fetch_image", {"url": url}, lambda: self.inner.fetch_image(url),
                          self._encode_image, self._decode_image)


class CachedBrowser(_Cached):
    """A :class:`~knowgen.search.base.Browser` that records or replays its pages."""

    def browse(self, url: str, query: str = "") -> Page:
        """Read a page, or return the recorded one."""
        return self._call("browse", {"url": url, "query": query},
                          lambda: self.inner.browse(url, query), asdict,
                          lambda row: Page(**row))


_WRAPPERS = {"text_search": CachedTextSearch, "image_search": CachedImageSearch,
             "browser": CachedBrowser}


def wrap_backends(backends: dict[str, Any], cache_path: str | None, mode: str,
                  identities: dict[str, str]) -> dict[str, Any]:
    """Wrap the tool backends of ``backends`` in one shared cache.

    Args:
        backends: Backends by key (``text_search``, ``image_search``, ``browser``;
            other keys pass through unchanged). Values may be ``None`` in replay mode.
        cache_path: The SQLite file.
        mode: ``"off"`` (returned unchanged), ``"record"`` or ``"replay"``.
        identities: Backend identity by key (its spec string).

    Raises:
        ConfigError: for an unknown mode or a missing path.
        DataError: when replaying from a missing or broken file.
    """
    check_mode(mode, cache_path)
    if mode == "off":
        return dict(backends)
    cache = ToolCache(str(cache_path), mode)
    wrapped = dict(backends)
    for key in TOOL_KEYS:
        if key in backends:
            wrapped[key] = _WRAPPERS[key](backends[key], cache, identities.get(key, key))
    logger.info("Tool cache %s in %s mode.", cache_path, mode)
    return wrapped

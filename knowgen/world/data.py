"""The shipped offline world: entities, pages and images, loaded from package data.

Layout of a world folder (``knowgen/world/data`` by default)::

    world.json      {"version", "entities": [...], "images": [...]}
    pages.jsonl     one page a line: {"url", "title", "text", "entity_id", "kind", "lead"}
    images/*.png    every image named in world.json
    NOTICE          upstream licences

URLs live under the reserved ``.invalid`` top-level domain, so they can never
reach a real host: pages at ``https://encyclopedia.world.invalid/wiki/<Slug>``
and images at ``https://media.world.invalid/<file>``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowgen.errors import DataError

DEFAULT_DATA_DIR = Path(__file__).parent / "data"
PAGE_HOST = "https://encyclopedia.world.invalid"
MEDIA_HOST = "https://media.world.invalid"


@dataclass(frozen=True)
class Entity:
    """A real-world thing the world knows about.

    Attributes:
        id: ``"country/<iso2 lower>"`` or ``"brand/<slug>"``.
        kind: ``"country"`` or ``"brand"``.
        name: Display name.
        aliases: Other names.
        facts: Kind-specific facts. Countries: ``iso2``, ``iso3``, ``capital``,
            ``borders`` (entity ids), ``currencies`` (``[{"code", "name"}]``),
            ``languages`` (names), ``region``, ``subregion``, ``population``,
            ``area``, ``flag_colours`` (names of the flag's dominant colours),
            ``demonym`` ("" when unknown), ``calling_codes`` (``["+226"]``),
            ``tlds`` (``[".bf"]``), ``cities`` (up to three notable cities
            other than the capital, each the name of a city page). Brands:
            ``slug``, ``hex`` (``"#RRGGBB"``), ``colour_name`` ("" when the hex
            is no clear colour), ``source``, ``website`` (a domain, "" when
            unknown), ``also_known_as`` and ``former_names`` (lists).
        image_id: Id of its official image (flag or logo).
        page_url: URL of its encyclopedia page.
    """

    id: str
    kind: str
    name: str
    aliases: tuple[str, ...]
    facts: dict[str, Any]
    image_id: str
    page_url: str


@dataclass(frozen=True)
class WorldImage:
    """An image of the world.

    Attributes:
        id: Stable id, e.g. ``"flag/fr"``, ``"logo/github"``, ``"lookalike/flag/fr"``.
        file: File name under ``images/``.
        url: Its URL (under ``MEDIA_HOST``).
        title: Caption shown in image search.
        page_url: The page it illustrates.
        entity_id: The entity it depicts ("" when none).
        official: True for the entity's official image, False for look-alikes.
        kind: ``"flag"``, ``"logo"``, ``"lookalike"``.
    """

    id: str
    file: str
    url: str
    title: str
    page_url: str
    entity_id: str
    official: bool
    kind: str


@dataclass(frozen=True)
class WorldPage:
    """An encyclopedia-like page: paragraphs separated by blank lines.

    Attributes:
        url: Its URL (under ``PAGE_HOST``).
        title: Its title.
        text: Its paragraphs, separated by blank lines.
        entity_id: The entity it is the article of ("" for other pages).
        kind: ``"entity"``, ``"city"`` or ``"distractor"``.
        lead: How many of the first paragraphs form the lead, the only part a
            search snippet may quote; None (worlds before version 2) means
            every paragraph is lead.
    """

    url: str
    title: str
    text: str
    entity_id: str = ""
    kind: str = "entity"
    lead: int | None = None

    def paragraphs(self) -> list[str]:
        """The page's non-empty paragraphs, in order."""
        return [p.strip() for p in re.split(r"\n\s*\n", self.text) if p.strip()]


@dataclass
class World:
    """A loaded world with lookups by id and URL."""

    data_dir: Path
    version: str
    entities: dict[str, Entity]
    images: dict[str, WorldImage]
    pages: dict[str, WorldPage]
    _images_by_url: dict[str, WorldImage] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._images_by_url = {img.url: img for img in self.images.values()}

    def image_path(self, image_id: str) -> Path:
        """Local file of image ``image_id``."""
        return self.data_dir / "images" / self.images[image_id].file

    def image_by_url(self, url: str) -> WorldImage | None:
        """The world image at ``url``, or None."""
        return self._images_by_url.get(url)

    def entities_of(self, kind: str) -> list[Entity]:
        """All entities of ``kind``, sorted by id."""
        return sorted((e for e in self.entities.values() if e.kind == kind), key=lambda e: e.id)

    def fingerprint(self) -> str:
        """A short hash of the world's content (for cache keys)."""
        return hashlib.sha256(f"{self.version}|{len(self.pages)}|{len(self.images)}".encode()).hexdigest()[:12]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(
            f"World file {path} is missing. Reinstall knowgen, or rebuild the world with "
            "'make world' (maintainers)."
        ) from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"World file {path} is not valid JSON: {exc}") from exc


_PAGE_KEYS = frozenset({"url", "title", "text", "entity_id", "kind", "lead"})


def _page(record: Any, where: str) -> WorldPage:
    """A page from its JSON record; ``where`` names the line in errors."""
    if not isinstance(record, dict) or not {"url", "title", "text"} <= record.keys():
        raise DataError(f"{where} is not a page record: it needs 'url', 'title' and 'text'. "
                        "Rebuild the world with 'make world'.")
    unknown = sorted(set(record) - _PAGE_KEYS)
    if unknown:
        raise DataError(f"{where} has unknown page keys {unknown}; known keys are "
                        f"{sorted(_PAGE_KEYS)}. Is this world newer than this knowgen?")
    lead = record.get("lead")
    if lead is not None and (isinstance(lead, bool) or not isinstance(lead, int) or lead < 1):
        raise DataError(f"{where} has lead={lead!r}; it must be a whole number of paragraphs "
                        "(at least 1), or absent when every paragraph is lead.")
    return WorldPage(**record)


@functools.lru_cache(maxsize=4)
def load_world(data_dir: str | Path | None = None) -> World:
    """Load (and cache) the world in ``data_dir`` (default: the shipped one).

    Raises:
        DataError: when files are missing or malformed.
    """
    root = Path(data_dir) if data_dir else DEFAULT_DATA_DIR
    meta = _read_json(root / "world.json")
    entities = {}
    for e in meta["entities"]:
        entities[e["id"]] = Entity(
            id=e["id"], kind=e["kind"], name=e["name"], aliases=tuple(e.get("aliases", ())),
            facts=e.get("facts", {}), image_id=e["image_id"], page_url=e["page_url"],
        )
    images = {i["id"]: WorldImage(**i) for i in meta["images"]}
    pages: dict[str, WorldPage] = {}
    pages_file = root / "pages.jsonl"
    if not pages_file.is_file():
        raise DataError(f"World file {pages_file} is missing.")
    with pages_file.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    p = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{pages_file}:{n} is not valid JSON: {exc}") from exc
                page = _page(p, f"{pages_file}:{n}")
                pages[page.url] = page
    return World(data_dir=root, version=str(meta.get("version", "0")), entities=entities,
                 images=images, pages=pages)

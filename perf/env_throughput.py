"""Tool-step throughput of SearchGenEnv with the local backends, against raw tantivy.

Three layers are timed on the same queries, over the whole shipped world:

1. raw tantivy: the query's indexed terms as one prepared boolean query
   through ``searcher.search`` (the floor);
2. the backend: ``LocalTextSearch.search`` (query building, ranking, snippets);
3. the environment: ``env.step`` with a ``search`` tool call (parsing, the
   backend, formatting the observation), plus ``image_search`` and ``browse``.

Run: python perf/env_throughput.py [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import tantivy

import knowgen  # noqa: F401
from knowgen.envs.searchgen import SearchGenEnv
from knowgen.search.analysis import terms as index_terms
from knowgen.search.index import get_index
from knowgen.search.local import LocalTextSearch
from knowgen.world.data import load_world


def _timed(fn, items) -> list[float]:
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t0)
    return out


def _queries(n: int) -> list[str]:
    world = load_world()
    countries = world.entities_of("country")
    qs = [f"capital {c.facts['capital']}" for c in countries if c.facts.get("capital")]
    qs += [f"flag of {c.name}" for c in countries]
    return (qs * (n // len(qs) + 1))[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    queries = _queries(args.steps)

    index = get_index()
    raw_index: tantivy.Index = index._index  # the floor: tantivy itself
    searcher = raw_index.searcher()
    schema = raw_index.schema
    raw_queries = [
        tantivy.Query.boolean_query([
            (tantivy.Occur.Should, tantivy.Query.term_query(schema, "body", t))
            for t in index_terms(q)])
        for q in queries]
    raw = _timed(lambda q: searcher.search(q, 5), raw_queries)

    backend = LocalTextSearch()
    backend.search(queries[0])
    backend_t = _timed(lambda q: backend.search(q, 5), queries)

    env = SearchGenEnv(split="test", max_tool_calls=10**6, max_turns=10**6)
    env.reset(seed=0)

    def step(action: str) -> None:
        _, _, term, trunc, _ = env.step(action)
        if term or trunc:
            env.reset(seed=0)

    search_actions = [
        '<tool_call>{"name": "search", "arguments": {"queries": [%s]}}</tool_call>' % json.dumps(q)
        for q in queries]
    image_actions = [
        '<tool_call>{"name": "image_search", "arguments": {"query": %s}}</tool_call>' % json.dumps(q)
        for q in queries]
    world = load_world()
    urls = [p.url for p in list(world.pages.values())[: len(queries)]]
    browse_actions = [
        '<tool_call>{"name": "browse", "arguments": {"url": %s, "query": "capital"}}</tool_call>'
        % json.dumps(u) for u in urls]
    env_search = _timed(step, search_actions)
    env_image = _timed(step, image_actions)
    env_browse = _timed(step, browse_actions)

    def ms(xs: list[float]) -> float:
        return round(1000 * statistics.median(xs), 3)

    result = {
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "steps": args.steps,
        "raw_tantivy_p50_ms": ms(raw),
        "backend_search_p50_ms": ms(backend_t),
        "env_search_step_p50_ms": ms(env_search),
        "env_image_search_step_p50_ms": ms(env_image),
        "env_browse_step_p50_ms": ms(env_browse),
        "env_search_steps_per_s": round(len(env_search) / sum(env_search), 1),
        "ratio_env_search_to_raw_tantivy": round(statistics.median(env_search) / statistics.median(raw), 1),
        "ratio_env_search_to_backend": round(statistics.median(env_search) / statistics.median(backend_t), 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""What a fresh ``knowgen eval`` process pays before its first task: the world's index and tasks.

Every evaluation process builds the search index of the offline world and
generates the tasks of its split; ``make demo`` does it six times. Two pieces are
timed, each with the current text normalisation and with the general path
(Unicode decomposition of every string, no stem cache) that it shortcuts for
ASCII text, alternating which goes first, in one process:

1. building :class:`knowgen.search.index.WorldIndex` over the shipped world;
2. ``generate_tasks(world, "test")`` (every family's candidates, re-resolved).

The two variants must give the same result: the script checks that the index
returns the same hits for a few queries and that the task lists are equal.

Run: python perf/world_startup.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
import unicodedata
from collections.abc import Iterator

from knowgen.search import index as index_mod
from knowgen.world import facts as facts_mod
from knowgen.world.data import load_world
from knowgen.world.tasks import generate_tasks

QUERIES = ["capital Ouagadougou flag", "currency cedi", "logo #FF9900", "Curaçao flag"]


def _general_tokens(text: str) -> list[str]:
    decomposed = unicodedata.normalize("NFKD", str(text))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return [index_mod._SPELLING.get(t, t) for t in index_mod._WORD_RE.findall(plain)]


def _general_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", str(text))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.encode("ascii", "ignore").decode("ascii").split())


@contextlib.contextmanager
def general_path() -> Iterator[None]:
    """Swap in the normalisation without the ASCII shortcut and the stem cache."""
    saved = index_mod.tokens, index_mod.stem, facts_mod.fold
    index_mod.tokens, index_mod.stem, facts_mod.fold = (
        _general_tokens, index_mod.stem.__wrapped__, _general_fold)
    try:
        yield
    finally:
        index_mod.tokens, index_mod.stem, facts_mod.fold = saved


def _time(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    world = load_world()
    times: dict[str, list[float]] = {k: [] for k in
                                     ("index current", "index general", "tasks current",
                                      "tasks general")}
    for rep in range(args.repeats):
        order = ["current", "general"] if rep % 2 == 0 else ["general", "current"]
        for variant in order:
            ctx = general_path() if variant == "general" else contextlib.nullcontext()
            with ctx:
                index_mod.stem.cache_clear() if hasattr(index_mod.stem, "cache_clear") else None
                t_index, idx = _time(lambda: index_mod.WorldIndex(world))
                hits = [[p.url for p, _ in idx.search_pages(q, top_k=5)] for q in QUERIES]
                t_tasks, tasks = _time(lambda: generate_tasks(world, "test", seed=0))
            times[f"index {variant}"].append(t_index)
            times[f"tasks {variant}"].append(t_tasks)
            if variant == "current":
                ref_hits, ref_tasks = hits, tasks
            else:
                gen_hits, gen_tasks = hits, tasks
        assert ref_hits == gen_hits, "the two paths must rank the same pages"
        assert ref_tasks == gen_tasks, "the two paths must generate the same tasks"
    result = {"python": platform.python_version(), "machine": platform.machine(),
              "repeats": args.repeats,
              "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()}}
    med = result["median_s"]
    result["ratio_general_over_current"] = {
        "index": round(med["index general"] / med["index current"], 2),
        "tasks": round(med["tasks general"] / med["tasks current"], 2)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()

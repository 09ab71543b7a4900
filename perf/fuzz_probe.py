"""Fuzz probe: random and hostile actions through SearchGenEnv.step, and parse time by length.

1. Sends N random actions (default 10,000; text, dicts, OpenAI messages, hostile
   objects, lone surrogates, unclosed tags, code fences followed by whitespace)
   to a real environment on the offline world and counts exceptions that
   escaped ``step``.
2. Times ``step`` on adversarial turns of 1,000 to 65,536 characters (the
   default ``max_action_chars``) and prints the time per character, which stays
   flat when parsing is linear.

Run: ``python perf/fuzz_probe.py [--actions 10000] [--seed 0]``; results are
recorded in ``perf/RESULTS_hardening.md``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from pathlib import Path

from knowgen.envs.actions import DEFAULT_MAX_ACTION_CHARS
from knowgen.envs.searchgen import SearchGenEnv

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "envs"))
from hostile import EvilStr, Hostile  # shared with tests/envs/test_hardening.py

TAGS = ["<tool_call>", "</tool_call>", "<answer>", "</answer>", "<think>", "</think>", "```",
        "```json", "{", "}", "[", "]", '"', "\\ud800", "\ud800", "\udfff", " ", "\n", "IMG_001"]


def random_text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(TAGS) if rng.random() < 0.3 else chr(rng.randrange(32, 0x2FFF))
                   for _ in range(n))


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, 0, -1, 2**70, 1.5, float("nan")])
    if kind == 2:
        return random_text(rng, rng.randrange(0, 40))
    if kind == 3:
        return rng.choice([Hostile(), EvilStr("x"), b"bytes", object()])
    if kind == 4:
        return "a\ud800b"
    if kind in (5, 6):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {rng.choice(["tool", "name", "arguments", "answer", "queries", "query", "url",
                        "gen_prompt", "reference_images", "think", "role", "content",
                        "tool_calls", "function"]): random_value(rng, depth + 1)
            for _ in range(rng.randrange(0, 4))}


def random_action(rng: random.Random):
    kind = rng.randrange(7)
    if kind == 0:
        return random_text(rng, rng.randrange(0, 400))
    if kind == 1:
        body = json.dumps({"gen_prompt": random_text(rng, 30), "reference_images": []})
        return f"<answer>{body}</answer>" if rng.random() < 0.5 else \
            '<answer>{"gen_prompt": "x \\ud800 y", "reference_images": []}</answer>'
    if kind == 2:
        return {"tool": rng.choice(["search", "image_search", "browse", "fetch_image", "x"]),
                "arguments": random_value(rng)}
    if kind == 3:
        return {"role": "assistant", "content": random_value(rng),
                "tool_calls": [{"type": "function", "function": {
                    "name": rng.choice(["search", "answer"]), "arguments": random_value(rng)}}]}
    if kind == 4:
        return "<tool_call>```" + " " * rng.randrange(0, 3000) + "x"
    if kind == 5:
        return rng.choice(TAGS) * rng.randrange(1, 2000)
    return random_value(rng)


ADVERSARIAL = {
    "fence + spaces": lambda n: "<tool_call>```" + " " * (n - 15) + "x",
    "unclosed <tool_call>": lambda n: "<tool_call>" * (n // 11),
    "unclosed <think>": lambda n: "<think>" * (n // 7),
    "<answer> + </answer> pairs": lambda n: "<answer>x</answer>" * (n // 18),
    "nested JSON": lambda n: "<tool_call>" + "[" * ((n - 30) // 2) + "]" * ((n - 30) // 2)
                             + "</tool_call>",
    "surrogates": lambda n: '<answer>{"gen_prompt": "' + "\\ud800" * ((n - 50) // 6) + '"}</answer>',
}


def probe(n_actions: int, seed: int) -> None:
    env = SearchGenEnv(max_turns=6)
    rng = random.Random(seed)
    env.reset(seed=seed)
    escaped, kinds, worst = 0, {}, 0.0
    start = time.perf_counter()
    for _ in range(n_actions):
        action = random_action(rng)
        t = time.perf_counter()
        try:
            _, _, term, trunc, info = env.step(action)
            kinds[info["last_action"]["kind"]] = kinds.get(info["last_action"]["kind"], 0) + 1
            if term or trunc:
                env.reset(seed=rng.randrange(1000))
        except Exception:  # noqa: BLE001 - counting what escapes is the point
            escaped += 1
            traceback.print_exc()
            env.reset(seed=rng.randrange(1000))
        worst = max(worst, time.perf_counter() - t)
    total = time.perf_counter() - start
    print(f"{n_actions} random actions (seed {seed}): {escaped} exceptions escaped step; "
          f"kinds {dict(sorted(kinds.items()))}; {total:.1f} s in all, worst step {worst:.3f} s")

    print("\nstep time on adversarial turns (the turn is read, refused as invalid or run):")
    print(f"{'pattern':30} " + " ".join(f"{n:>10}" for n in (1000, 4000, 16384, 65536)))
    overall = 0.0
    for name, make in ADVERSARIAL.items():
        cells = []
        for n in (1000, 4000, 16384, DEFAULT_MAX_ACTION_CHARS):
            action = make(n)[:DEFAULT_MAX_ACTION_CHARS]
            env.reset(seed=0)
            best = float("inf")
            for _ in range(3):
                env.reset(seed=0)
                t = time.perf_counter()
                env.step(action)
                best = min(best, time.perf_counter() - t)
            if n == DEFAULT_MAX_ACTION_CHARS:
                overall = max(overall, best)
            cells.append(f"{best * 1000:8.2f}ms")
        print(f"{name:30} " + " ".join(cells))
    print(f"\nworst step time at {DEFAULT_MAX_ACTION_CHARS} characters: {overall * 1000:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    probe(args.actions, args.seed)


if __name__ == "__main__":
    main()

"""The request grammar: varied wording, and phrasings held out of training for test-ood."""

from __future__ import annotations

import random
import re

import pytest

from knowgen.world.data import load_world
from knowgen.world.phrasing import FRAME, Phraser, held_out_ids, slot
from knowgen.world.tasks import build_task, candidate_pools, generate_tasks
from knowgen.world.templates import ALL_SLOTS, TEMPLATES, WorldFacts


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def facts(world):
    return WorldFacts(world)


@pytest.fixture(scope="module")
def splits(world):
    return {s: generate_tasks(world, s, seed=0) for s in ("train", "test", "test-ood")}


def _skeleton(task) -> str:
    """The request with its clue values and quoted text blanked: what the grammar chose."""
    text = re.sub(r'"[^"]*"', '"…"', task.prompt)
    values = [v for v in re.findall(r"'value': '([^']*)'", str(task.extra["clue"]))]
    values += [e.name for e in task.facts.entities]
    for key in ("language", "area"):
        if key in task.extra["clue"]:
            values.append(task.extra["clue"][key])
    for v in sorted(values, key=len, reverse=True):
        text = text.replace(v, "…")
    return text


def test_every_family_reaches_at_least_40_phrasings(world, facts):
    pools = candidate_pools(world, "train", 0, facts)
    for name, template in TEMPLATES.items():
        assert pools[name], f"family {name} has no train candidate"
        cand = pools[name][0]
        seen = {_skeleton(build_task(template, facts, cand, seed, mode))
                for seed in range(150) for mode in ("seen", "ood")}
        assert len(seen) >= 40, (name, len(seen))


def test_no_train_or_test_request_uses_a_held_out_option(splits):
    held = held_out_ids(ALL_SLOTS)
    assert held
    for split in ("train", "test"):
        for task in splits[split]:
            assert not set(task.extra["phrasing"]) & held, (split, task.id, task.extra["phrasing"])


def test_held_out_wording_never_appears_in_train(splits):
    """Beyond ids: the fixed words of each held-out option are absent from every train request."""
    train_text = "\n".join(t.prompt for t in splits["train"])
    for s in ALL_SLOTS:
        for opt in s.held_out():
            fixed = max(re.split(r"\{[^}]*\}", opt.text), key=len).strip(" .,;:")
            if len(fixed) >= 12:
                assert fixed not in train_text, (opt.id, fixed)


def test_every_test_ood_request_uses_held_out_framing_and_relation(splits):
    held = held_out_ids(ALL_SLOTS)
    key_slots = {s.name for s in ALL_SLOTS if s.key}
    for task in splits["test-ood"]:
        used = task.extra["phrasing"]
        assert any(u.startswith("frame.") and u in held for u in used), task.id
        keys = [u for u in used if u.rsplit(".", 1)[0] in key_slots]
        assert keys and all(u in held for u in keys), (task.id, used)


def test_test_ood_differs_in_wording_from_test(splits):
    frames = {u for t in splits["test"] for u in t.extra["phrasing"] if u.startswith("frame.")}
    ood_frames = {u for t in splits["test-ood"] for u in t.extra["phrasing"] if u.startswith("frame.")}
    assert frames and ood_frames and not frames & ood_frames


def test_phraser_modes():
    s = slot("demo", ["a", "b"], ["x"], key=True)
    seen = {Phraser(random.Random(i), "seen").say(s) for i in range(50)}
    ood = {Phraser(random.Random(i), "ood").say(s) for i in range(50)}
    assert seen == {"a", "b"} and ood == {"x"}
    loose = slot("loose", ["a"], ["x"])
    assert {Phraser(random.Random(i), "ood").say(loose) for i in range(50)} == {"a", "x"}
    assert FRAME.key and FRAME.held_out()

"""Tests of the world task generator and of ground-truth rendering."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from knowgen.errors import DataError, UnknownNameError
from knowgen.generators.compositor import Compositor
from knowgen.types import KNOWGEN_GROUPS, Task
from knowgen.world.data import load_world
from knowgen.world.render import oracle_prompt, reference_files, render_gt
from knowgen.world.tasks import (
    TEST_SIZE,
    TRAIN_PER_TEMPLATE,
    _even_quotas,
    entity_split,
    generate_tasks,
    resolve_clue,
    split_entities,
)
from knowgen.world.templates import TEMPLATES, WorldFacts, caption, readable


@pytest.fixture(scope="module")
def world():
    return load_world()


@pytest.fixture(scope="module")
def facts(world):
    return WorldFacts(world)


@pytest.fixture(scope="module")
def test_tasks(world):
    return generate_tasks(world, "test", seed=0)


@pytest.fixture(scope="module")
def train_tasks(world):
    return generate_tasks(world, "train", seed=0)


def _one_per_template(tasks: list[Task]) -> list[Task]:
    seen: dict[str, Task] = {}
    for t in tasks:
        seen.setdefault(t.facts.template, t)
    return list(seen.values())


@pytest.fixture(scope="module")
def ood_tasks(world):
    return generate_tasks(world, "test-ood", seed=0)


def test_held_out_splits_size_and_spread(test_tasks, ood_tasks):
    for tasks in (test_tasks, ood_tasks):
        counts = Counter(t.facts.template for t in tasks)
        assert 0.85 * TEST_SIZE <= len(tasks) <= TEST_SIZE
        assert len(counts) >= len(TEMPLATES) - 1
        big = [n for n in counts.values() if n > 5]
        assert max(big) - min(big) <= len(tasks) // len(TEMPLATES)


def test_train_split_caps_each_family(train_tasks):
    counts = Counter(t.facts.template for t in train_tasks)
    assert len(counts) >= len(TEMPLATES) - 1
    assert max(counts.values()) <= TRAIN_PER_TEMPLATE
    assert len(train_tasks) > 1200


def test_ids_are_unique_and_readable(test_tasks, ood_tasks, train_tasks):
    ids = [t.id for t in test_tasks + ood_tasks + train_tasks]
    assert len(ids) == len(set(ids))
    for t in test_tasks + ood_tasks + train_tasks:
        suffixes = [e.entity_id.split("/", 1)[1] for e in t.facts.entities]
        assert t.id == "-".join([t.facts.template, *suffixes])
        assert re.fullmatch(r"[a-z_]+(-[a-z0-9_]+)+", t.id), t.id
        assert t.gt_image == ""


def test_every_clue_resolves_to_exactly_its_entities(world, facts, test_tasks, ood_tasks,
                                                     train_tasks):
    for t in test_tasks + ood_tasks + train_tasks:
        expected = tuple(e.entity_id for e in t.facts.entities)
        assert resolve_clue(world, t.facts.template, t.extra["clue"], facts) == [expected], t.id


def test_resolvers_see_ambiguity(world, facts):
    capitals = Counter(c.facts.get("capital") for c in world.entities_of("country"))
    shared = [cap for cap, n in capitals.items() if cap and n > 1]
    if shared:
        clue = {"fact": "capital", "value": shared[0]}
        assert len(resolve_clue(world, "flag_by_capital", clue, facts)) > 1
    assert resolve_clue(world, "flag_by_capital", {"fact": "capital", "value": "Atlantis City"},
                        facts) == []
    codes = Counter(c["code"] for e in world.entities_of("country") for c in e.facts["currencies"])
    common = {"fact": "currency_code", "value": codes.most_common(1)[0][0]}
    assert len(resolve_clue(world, "flag_by_currency", common, facts)) > 1
    # accents and case do not matter
    assert resolve_clue(world, "flag_named", {"fact": "name", "value": "CURACAO"}, facts) == \
        resolve_clue(world, "flag_named", {"fact": "name", "value": "Curaçao"}, facts)
    with pytest.raises(UnknownNameError):
        resolve_clue(world, "flag_by_nothing", {}, facts)


def test_required_entities_have_official_image_files(world, test_tasks, ood_tasks, train_tasks):
    for t in test_tasks + ood_tasks + train_tasks:
        assert t.facts.entities
        for e in t.facts.entities:
            entity = world.entities[e.entity_id]
            image = world.images[e.image_id]
            assert e.image_id == entity.image_id and e.name == entity.name
            assert image.official and image.entity_id == e.entity_id
            assert world.image_path(e.image_id).is_file()


def test_splits_are_disjoint_by_entity(test_tasks, ood_tasks, train_tasks):
    test_ents, train_ents = split_entities(test_tasks), split_entities(train_tasks)
    ood_ents = split_entities(ood_tasks)
    assert test_ents and train_ents and ood_ents
    assert not test_ents & train_ents and not ood_ents & train_ents
    assert all(entity_split(e, 0) == "test" for e in test_ents | ood_ents)
    assert all(entity_split(e, 0) == "train" for e in train_ents)
    assert not {t.id for t in test_tasks} & {t.id for t in ood_tasks}


def test_entity_split_share_is_about_a_third(world):
    ids = list(world.entities)
    share = sum(entity_split(e, 0) == "test" for e in ids) / len(ids)
    assert 0.28 < share < 0.42


def test_generation_is_deterministic_per_seed(world, test_tasks):
    again = generate_tasks(world, "test", seed=0)
    assert [t.to_record() for t in again] == [t.to_record() for t in test_tasks]
    other = generate_tasks(world, "test", seed=1)
    assert {t.id for t in other} != {t.id for t in test_tasks}
    assert split_entities(other) != split_entities(test_tasks)


def test_categories_cover_both_knowgen_groups(test_tasks, ood_tasks):
    for tasks in (test_tasks, ood_tasks):
        groups = {g for t in tasks for g, cats in KNOWGEN_GROUPS.items() if t.category in cats}
        assert groups == set(KNOWGEN_GROUPS)
    known = {c for cats in KNOWGEN_GROUPS.values() for c in cats}
    assert all(t.category in known and t.difficulty in {"easy", "medium", "hard"}
               for t in test_tasks + ood_tasks)


def test_required_text_is_quoted_only_when_literal(world, test_tasks, ood_tasks):
    for t in test_tasks + ood_tasks:
        names = [caption(world.entities[e.entity_id].name) for e in t.facts.entities]
        if t.facts.template == "flag_plain":
            assert t.facts.required_text == () and '"' not in t.prompt
            continue
        (text,) = t.facts.required_text
        assert text.isascii() and readable(text), t.id
        quoted = f'"{text}"' in t.prompt
        literal = t.facts.template in {"flag_named", "logo_named", "two_logos", "three_flags",
                                       "flag_trap", "logo_trap"}
        assert quoted == literal, t.id
        if t.facts.text_case == "upper":
            assert text == text.upper(), t.id
        if t.facts.template == "two_flags":
            assert caption(text) == " VS ".join(names)
            assert all(n not in caption(t.prompt) for n in names), t.id
        if not literal and t.facts.template not in {"flag_with_capital", "capital_of_city"}:
            assert caption(text) in {" VS ".join(names), names[0]}, t.id


def test_case_instructions_are_followed_by_the_required_text(test_tasks, ood_tasks):
    derived = [t for t in test_tasks + ood_tasks if t.facts.required_text
               and f'"{t.facts.required_text[0]}"' not in t.prompt]
    upper = [t for t in derived if t.facts.text_case == "upper"]
    assert upper and len(upper) < len(derived)  # with and without a case instruction
    for t in derived:
        asks = re.search(r"capital letters|upper ?case|caps|block capitals", t.prompt, re.IGNORECASE)
        assert bool(asks) == (t.facts.text_case == "upper"), t.id


def test_hops_name_the_chain(test_tasks, ood_tasks):
    for t in test_tasks + ood_tasks:
        for e in t.facts.entities:
            assert e.entity_id in t.facts.hops and e.image_id in t.facts.hops
        assert ":" in t.facts.hops[0]


def _stated(world, task: Task) -> list[tuple[str, str]]:
    """(answer page url, a string that page must state) for every clue value of ``task``."""
    clue = task.extra["clue"]
    ents = [world.entities[e.entity_id] for e in task.facts.entities]
    if "neighbours_of" in clue:
        return [(ents[0].page_url, world.entities[n].name) for n in clue["neighbours_of"]]
    if "language" in clue:
        return [(ents[0].page_url, clue["language"]), (ents[0].page_url, clue["area"])]
    refs = clue.get("subjects") or [clue]
    return [(e.page_url, r["value"]) for e, r in zip(ents, refs)]


def test_every_task_is_answerable_from_the_world(world, test_tasks, ood_tasks, train_tasks):
    for t in test_tasks + ood_tasks + train_tasks:
        for url, fact in _stated(world, t):
            assert caption(fact) in caption(world.pages[url].text), (t.id, fact, url)


def test_unknown_split_is_refused(world):
    with pytest.raises(UnknownNameError, match="Available: test, test-ood, train"):
        generate_tasks(world, "validation")


def test_caption_folds_accents_and_case():
    assert caption("Curaçao") == "CURACAO"
    assert caption("São Tomé and  Príncipe") == "SAO TOME AND PRINCIPE"
    assert caption("Côte d'Ivoire") == "COTE D'IVOIRE"


def test_even_quotas_fill_small_pools_first():
    quotas = _even_quotas({"a": 5, "b": 100, "c": 100, "d": 0}, 101)
    assert quotas == {"a": 5, "b": 48, "c": 48, "d": 0}
    assert sum(_even_quotas({"a": 3, "b": 4}, 50).values()) == 7


def test_gt_equals_compositor_output_for_oracle_prompt(world, test_tasks):
    gen = Compositor(size=512)
    for t in _one_per_template(test_tasks):
        gt = render_gt(t, world)
        out = gen.generate(oracle_prompt(t), reference_files(t, world))
        assert gt.size == (512, 512)
        assert gt.tobytes() == out.tobytes(), t.id


def test_gt_differs_from_a_wrong_answer(world, test_tasks):
    task = next(t for t in test_tasks if t.facts.template == "flag_by_capital")
    gen = Compositor()
    other = next(e for e in world.entities_of("country") if e.id != task.facts.entities[0].entity_id)
    wrong = gen.generate(oracle_prompt(task), [world.image_path(other.image_id)])
    assert wrong.tobytes() != render_gt(task, world).tobytes()


def test_render_needs_facts(world):
    with pytest.raises(DataError, match="no facts"):
        render_gt(Task(id="x", prompt="p", category="geography"), world)

"""Entity-name augmentation: consistent pseudo-names across a whole expert episode."""

import json
import re

import pytest

from knowgen.agents.augment import (
    PieceWords,
    augment_records,
    make_replacer,
    real_names,
    task_surfaces,
)
from knowgen.agents.expert_data import play_episode, turns_to_messages
from knowgen.errors import ConfigError
from knowgen.world.data import load_world

TEMPLATES = ("flag_named", "flag_by_capital", "flag_by_currency", "flag_by_neighbours",
             "flag_by_language", "logo_named", "two_flags")


@pytest.fixture(scope="module")
def records(shared_backends):
    """Real scripted episodes, one task of each template of the world's train split."""
    from knowgen.config import EnvConfig
    from knowgen.envs.searchgen import SearchGenEnv
    from knowgen.reference_policies.scripted import ScriptedPolicy

    env = SearchGenEnv(EnvConfig(split="train", top_k=3), **shared_backends)
    out = []
    for template in TEMPLATES:
        for task in [t for t in env.tasks if t.facts.template == template][:4]:
            episode = play_episode(env, ScriptedPolicy(), task.id)
            if episode["reward"] >= 0.75:  # as the expert data keeps only paid episodes
                out.append({"messages": turns_to_messages(episode["request"], episode["turns"]),
                            "tools": "[]", "task_id": task.id})
                break
    assert len(out) >= len(TEMPLATES) - 1
    return out, {t.id: t for t in env.tasks}


def _text(record):
    parts = []
    for m in record["messages"]:
        parts.append(str(m.get("content") or ""))
        parts.extend(c["function"]["arguments"] for c in m.get("tool_calls") or [])
    return "\n".join(parts)


def _count(word, text, longer=()):
    """Whole-word occurrences of ``word`` in ``text``, outside any of the ``longer`` names."""
    for name in sorted(longer, key=len, reverse=True):
        if word in name and word != name:
            text = text.replace(name, "\0").replace(name.replace(" ", "_"), "\0")
    return len(re.findall(r"(?<![^\W_])" + re.escape(word) + r"(?![^\W_])", text))


def _image_queries(record):
    return [json.loads(c["function"]["arguments"])["query"]
            for m in record["messages"] for c in m.get("tool_calls") or []
            if c["function"]["name"] == "image_search"]


@pytest.mark.slow
def test_names_are_replaced_consistently_everywhere(records):
    recs, tasks = records
    world = load_world()
    real = real_names(world)
    augmented = augment_records(recs, copies=2, seed=7)
    assert len(augmented) == 3 * len(recs) and augmented[: len(recs)] == recs
    for n, aug in enumerate(augmented[len(recs):]):
        original = recs[n % len(recs)]
        task = tasks[original["task_id"]]
        assert [m["role"] for m in aug["messages"]] == [m["role"] for m in original["messages"]]
        before, after = _text(original), _text(aug)
        mapping = aug["pseudo_names"]
        surfaces = {s.text for s in task_surfaces(task, world)}
        assert {e.name for e in task.facts.entities} <= surfaces <= set(mapping)
        for surface in surfaces:
            pseudo = mapping[surface]
            assert pseudo.casefold() not in real and pseudo != surface
            assert _count(surface, after) == 0, surface
            # A name inside a longer one ("Andorra" in "Andorra la Vella") goes with the longer.
            assert _count(pseudo, after, {mapping[s] for s in surfaces}) \
                == _count(surface, before, surfaces)
            if surface.upper() != surface:
                assert mapping[surface.upper()] == pseudo.upper()
                assert _count(pseudo.upper(), after, {mapping[s].upper() for s in surfaces}) \
                    == _count(surface.upper(), before, {s.upper() for s in surfaces})
        for entity in task.facts.entities:
            pseudo = mapping[entity.name]
            assert _count(pseudo, after) > 2
            if entity.name in original["messages"][1]["content"]:
                assert pseudo in aug["messages"][1]["content"]
            tool_text = "".join(m["content"] for m in aug["messages"] if m["role"] == "tool")
            assert pseudo in tool_text
            if entity.name.upper() in original["messages"][-1]["content"]:
                assert pseudo.upper() in aug["messages"][-1]["content"]
            queries = " ".join(_image_queries(original))
            if entity.name in queries:
                assert pseudo in " ".join(_image_queries(aug))


@pytest.mark.slow
def test_augmentation_is_deterministic_under_a_seed(records):
    recs, _ = records
    first = augment_records(recs, copies=1, seed=3)
    assert first == augment_records(recs, copies=1, seed=3)
    assert first != augment_records(recs, copies=1, seed=4)
    assert augment_records(recs, copies=0) == recs


def test_replacer_matches_whole_words_only():
    world = load_world()
    names = {e.name for e in world.entities.values()}
    assert {"Niger", "Nigeria"} <= names
    replace = make_replacer({"Niger": "Zobaru", "NIGER": "ZOBARU"})
    text = "Niger borders Nigeria; NIGER vs NIGERIA; wiki/Niger_logo"
    assert replace(text) == "Zobaru borders Nigeria; ZOBARU vs NIGERIA; wiki/Zobaru_logo"


def test_bad_inputs_raise_config_errors():
    record = {"messages": [{"role": "user", "content": "Flag of Peru"}], "task_id": "nope"}
    with pytest.raises(ConfigError, match="no world task"):
        augment_records([record], copies=1)
    with pytest.raises(ConfigError, match=">= 0"):
        augment_records([record], copies=-1)


@pytest.fixture(scope="module")
def page_tokenizer():
    """A byte-level BPE trained here on the world's pages (as ``tokenizer.world_pages`` does)."""
    from knowgen.agents.tiny import train_tokenizer
    from knowgen.agents.train.sft import world_page_texts

    return train_tokenizer(world_page_texts()[:400], vocab_size=1200)


def test_piece_words_split_back_into_the_pieces_they_were_made_of(page_tokenizer):
    import random

    words = PieceWords(page_tokenizer)
    assert words.starts and words.continuations
    for i in words.starts[:50]:
        text = page_tokenizer.decode([i])
        assert text[0] == " " and text[1].isupper() and text[1:].isalpha()
    rng = random.Random(0)
    made = [words(rng) for _ in range(300)]
    covered = set()
    for word in made:
        ids = page_tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        assert 1 <= len(ids) <= 3 and ids[0] in words.starts, word
        assert all(i in words.continuations for i in ids[1:]), word
        covered.update(ids)
    # pieces are drawn evenly: 300 words already use a few hundred distinct pieces
    assert len(covered) > 250
    assert made == [PieceWords(page_tokenizer)(r) for r in [random.Random(0)] for _ in range(300)]


@pytest.mark.slow
def test_piece_names_cover_pieces_and_are_never_real_names(records, page_tokenizer):
    recs, _ = records
    real = real_names(load_world())
    words = PieceWords(page_tokenizer)
    augmented = augment_records(recs, copies=3, seed=1, word=words)[len(recs):]
    targets = set()
    for aug in augmented:
        for surface, pseudo in aug["pseudo_names"].items():
            assert pseudo.casefold() not in real and pseudo != surface
            if surface.isupper() or "_" in pseudo or not pseudo[:1].isalpha():
                continue
            for word in pseudo.split():
                targets.update(page_tokenizer(" " + word, add_special_tokens=False)["input_ids"])
        assistant = " ".join(str(m.get("content") or "") for m in aug["messages"]
                             if m["role"] == "assistant")
        assert any(p in assistant for p in aug["pseudo_names"].values())
    assert targets <= set(words.starts) | set(words.continuations)
    assert len(targets) > 20

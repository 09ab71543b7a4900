"""Request rewording: other words for the same task, and expert turns that still answer it."""

import dataclasses
import random

import pytest

from knowgen.agents.expert_data import play_episode, turns_to_messages
from knowgen.agents.reword import (
    EXTRA_WORDINGS,
    Rewording,
    Rewriter,
    fields_of,
    reword_records,
)
from knowgen.errors import ConfigError
from knowgen.world.tasks import build_task, wording_rng
from knowgen.world.templates import ALL_SLOTS

TEMPLATES = ("flag_named", "flag_by_capital", "flag_with_capital", "flag_by_neighbours",
             "logo_by_colour", "two_flags", "three_flags", "flag_trap")


@pytest.fixture(scope="module")
def rewriter():
    return Rewriter()


@pytest.fixture(scope="module")
def picked(shared_backends):
    """One train task of each of :data:`TEMPLATES`, from the environment's own task list."""
    from knowgen.config import EnvConfig
    from knowgen.envs.searchgen import SearchGenEnv

    env = SearchGenEnv(EnvConfig(split="train", top_k=3), **shared_backends)
    tasks = [next(t for t in env.tasks if t.facts.template == name) for name in TEMPLATES]
    return env, tasks


@pytest.fixture(scope="module")
def records(picked):
    """Real guided-expert records of the picked tasks."""
    from knowgen.reference_policies.guided import GuidedPolicy

    env, tasks = picked
    out = []
    for task in tasks:
        episode = play_episode(env, GuidedPolicy(), task.id)
        assert episode["reward"] >= 0.75, (task.id, episode["reward"])
        out.append({"messages": turns_to_messages(episode["request"], episode["turns"]),
                    "tools": "[]", "task_id": task.id, "expert": "guided",
                    "turns": episode["turns"]})
    return out


def _request(record):
    return next(m for m in record["messages"] if m["role"] == "user")["content"]


def test_extra_wordings_fit_their_slots_and_are_no_world_option():
    slots = {s.name: s for s in ALL_SLOTS}
    assert set(EXTRA_WORDINGS) <= set(slots)
    for name, wordings in EXTRA_WORDINGS.items():
        world = {o.text for o in slots[name].options}  # seen and held out alike
        shapes = {fields_of(t) for t in world}
        for text in wordings:
            assert text not in world, (name, text)
            assert fields_of(text) in shapes, (name, text, shapes)


def test_rate_zero_rebuilds_every_original_request(rewriter):
    rng = random.Random(0)
    for task_id, task in rewriter.tasks.items():
        assert rewriter.reword(task_id, 0.0, rng) == task.prompt


def test_rate_one_swaps_every_slot_that_has_extra_wordings(rewriter):
    task_id = next(t for t in rewriter.tasks if t.startswith("flag_by_capital-"))
    template, cand = rewriter.candidates[task_id]
    ph = Rewording(wording_rng(0, "seen", task_id), "seen", extra=EXTRA_WORDINGS,
                   rate=1.0, swap_rng=random.Random(3))
    task = build_task(template, rewriter.facts, cand, 0, "seen", phraser=ph)
    used = task.extra["phrasing"]
    assert used and all(".r" in i for i in used if i.split(".r")[0] in EXTRA_WORDINGS), used
    assert task.facts == rewriter.tasks[task_id].facts
    assert task.prompt != rewriter.tasks[task_id].prompt


def test_reworded_records_change_only_the_request(records):
    before = [dict(r, messages=[dict(m) for m in r["messages"]]) for r in records]
    out = reword_records(records, rate=0.6, seed=1)
    assert records == before  # the inputs are not changed
    changed = [(r, o) for r, o in zip(records, out) if "reworded" in o]
    assert len(changed) >= len(records) - 1
    for record, new in changed:
        old_user, new_user = _request(record), _request(new)
        assert new["reworded"] == old_user and new_user != old_user
        assert [m for m in new["messages"] if m["role"] != "user"] == \
            [m for m in record["messages"] if m["role"] != "user"]
    assert reword_records(records, rate=0.6, seed=1) == out
    assert reword_records(records, rate=0.6, seed=2) != out
    assert reword_records(records, rate=0.0) == records


def test_the_guided_expert_answers_a_reworded_request_with_the_same_turns(picked, records,
                                                                         shared_backends):
    """The point of rewording: the recorded turns are what the expert does when asked so."""
    from knowgen.config import EnvConfig
    from knowgen.envs.searchgen import SearchGenEnv
    from knowgen.reference_policies.guided import GuidedPolicy

    _, tasks = picked
    new = {r["task_id"]: _request(r) for r in reword_records(records, rate=1.0, seed=5)}
    reworded = [dataclasses.replace(t, prompt=new[t.id]) for t in tasks]
    assert all(r.prompt != t.prompt for r, t in zip(reworded, tasks))

    class Served:
        """The reworded tasks as a one-split benchmark over the same world."""

        world = shared_backends["benchmark"].world

        def splits(self):
            return ["train"]

        def tasks(self, split):
            return list(reworded)

    backends = {k: v for k, v in shared_backends.items() if k != "benchmark"}
    other = SearchGenEnv(EnvConfig(split="train", top_k=3), benchmark=Served(), **backends)
    for task, record in zip(reworded, records):
        episode = play_episode(other, GuidedPolicy(), task.id)
        assert episode["request"] == task.prompt
        assert episode["reward"] >= 0.75, (task.id, episode["reward"])
        assert [a for a, _ in episode["turns"]] == [a for a, _ in record["turns"]], task.id


def test_bad_inputs_raise_config_errors(records):
    with pytest.raises(ConfigError, match="between 0 and 1"):
        reword_records(records, rate=1.5)
    scripted = [dict(records[0], expert="scripted")]
    with pytest.raises(ConfigError, match="guided"):
        reword_records(scripted, rate=0.5)
    with pytest.raises(ConfigError, match="no train task"):
        reword_records([dict(records[0], task_id="flag_named-nowhere")], rate=0.5)


def test_sft_rewords_its_records_when_the_config_asks(records):
    from knowgen.agents.train.config import load_train_config, parse_set_options
    from knowgen.agents.train.sft_data import reworded

    plain = load_train_config("smollm2")
    assert plain.sft.reword == 0.0 and reworded(plain, records) is records
    cfg = load_train_config("smollm2", parse_set_options(["sft.reword=0.5", "sft.reword_seed=3"]))
    assert reworded(cfg, records) == reword_records(records, 0.5, seed=3) != records

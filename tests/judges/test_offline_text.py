"""The offline text judge's rule, case by case."""

import pytest

from knowgen.errors import DataError
from knowgen.judges.base import TextJudge
from knowgen.judges.offline_text import OfflineTextJudge, quoted_strings
from knowgen.registry import TEXT_JUDGES
from knowgen.types import Answer, RequiredEntity, ResolvedReference, Task, TaskFacts
from knowgen.world.data import load_world


@pytest.fixture(scope="module")
def world():
    return load_world()


def ref(world, image_id, n=1):
    img = world.images[image_id]
    return ResolvedReference(img_id=f"IMG_{n:03d}", note="", title=img.title, url=img.url,
                             local_path=str(world.image_path(image_id)), image_id=image_id)


def task(world, entity_ids, texts):
    ents = tuple(RequiredEntity(e, world.entities[e].name, world.entities[e].image_id)
                 for e in entity_ids)
    return Task(id="t", prompt="p", category="geography",
                facts=TaskFacts(entities=ents, required_text=tuple(texts)))


def test_registered_and_protocol():
    assert isinstance(TEXT_JUDGES.create("offline"), TextJudge)


def test_complete_answer_scores_one(world):
    t = task(world, ["country/bf"], ["BURKINA FASO"])
    answer = Answer('The flag of Burkina Faso from the first reference image, with a banner '
                    'reading "BURKINA FASO" below it.')
    verdict = OfflineTextJudge().score(t, answer, [ref(world, "flag/bf")])
    assert verdict.score == 1.0, verdict.rationale
    assert verdict.evidence["passed"] == verdict.evidence["total"] == 3


def test_lookalike_reference_does_not_count(world):
    t = task(world, ["country/bf"], ["BURKINA FASO"])
    answer = Answer('Burkina Faso flag with the caption "Burkina Faso".')
    verdict = OfflineTextJudge().score(t, answer, [ref(world, "lookalike/flag/bf")])
    assert verdict.score == 0.5  # 2 of 3 checks, rounded down
    assert "official picture of country/bf" in verdict.rationale


def test_unquoted_or_misspelled_text_fails(world):
    t = task(world, ["country/bf"], ["BURKINA FASO"])
    judge = OfflineTextJudge()
    unquoted = judge.score(t, Answer("Burkina Faso flag, caption BURKINA FASO"),
                           [ref(world, "flag/bf")])
    typo = judge.score(t, Answer('Burkina Faso flag, caption "BURKIMA FASO"'),
                       [ref(world, "flag/bf")])
    assert unquoted.score == typo.score == 0.5


def test_scores_round_down_to_quarters(world):
    t = task(world, ["country/de", "country/fr"], ["EUROPE"])
    judge = OfflineTextJudge()
    refs = [ref(world, "flag/de"), ref(world, "flag/fr", 2)]
    full = judge.score(t, Answer("Germany and France side by side, banner 'Europe'"), refs)
    assert full.score == 1.0
    four_of_five = judge.score(t, Answer("Germany and France side by side"), refs)
    assert four_of_five.score == 0.75
    none = judge.score(t, Answer("a poster"), [])
    assert none.score == 0.0


def test_a_caption_asked_in_capitals_must_be_drawn_in_capitals(world):
    ents = (RequiredEntity("country/mk", world.entities["country/mk"].name, "flag/mk"),)
    upper = Task(id="t", prompt="p", category="geography", facts=TaskFacts(
        entities=ents, required_text=("NORTH MACEDONIA",), text_case="upper"))
    judge, refs = OfflineTextJudge(), [ref(world, "flag/mk")]
    flag = "The flag of North Macedonia from the first reference image, with the text "
    for drawn_in_capitals in ('"NORTH MACEDONIA" on a banner below.',
                              '"North Macedonia" in capital letters on a banner below.',
                              "'North Macedonia', written in upper case, below."):
        verdict = judge.score(upper, Answer(flag + drawn_in_capitals), refs)
        assert verdict.score == 1.0, (drawn_in_capitals, verdict.rationale)
    # Quoted as the sources spell it, with no word of capitals: a generator draws it in the
    # wrong case, which the image judge reads as half right.
    verdict = judge.score(upper, Answer(flag + '"North Macedonia" on a banner below.'), refs)
    assert verdict.score == 0.5
    assert "quoted text 'NORTH MACEDONIA' in capital letters" in verdict.rationale
    assert verdict.evidence["checks"][1] == {"check": "quoted_text", "text": "NORTH MACEDONIA",
                                             "upper": True, "passed": False}
    # The same words pass where the request did not ask for capitals.
    plain = Task(id="t", prompt="p", category="geography", facts=TaskFacts(
        entities=ents, required_text=("North Macedonia",)))
    assert judge.score(plain, Answer(flag + '"North Macedonia" on a banner below.'),
                       refs).score == 1.0


def test_aliases_count_as_names(world):
    ent = next(e for e in world.entities_of("country") if e.aliases and e.aliases[0] != e.name)
    t = task(world, [ent.id], [])
    verdict = OfflineTextJudge().score(t, Answer(f"The flag of {ent.aliases[0]}."),
                                       [ref(world, ent.image_id)])
    assert verdict.score == 1.0


def test_needs_world_tasks():
    with pytest.raises(DataError, match="world tasks"):
        OfflineTextJudge().score(Task(id="k", prompt="p", category="film"), Answer("x"), [])


@pytest.mark.parametrize("text, expected", [
    ('say "Hello" and "World"', ["Hello", "World"]),
    ("banner “CÔTE D'IVOIRE” here", ["CÔTE D'IVOIRE"]),
    ("banner 'Côte d'Ivoire' here", ["Côte d'Ivoire"]),
    ("the country's flag, 'PARIS'", ["PARIS"]),
    ("«Bonjour» and 「東京」", ["Bonjour", "東京"]),
    ("no quotes at all", []),
])
def test_quoted_strings(text, expected):
    assert sorted(quoted_strings(text)) == sorted(expected)

"""The task families of the offline world, by name.

A family (also called a template: task ids and ``TaskFacts.template`` carry
its name) proposes clues over the world, re-resolves each against the whole
world, and words requests with the compositional grammar of
:mod:`knowgen.world.phrasing`. The base class is in :mod:`knowgen.world.family`;
the families themselves in :mod:`~knowgen.world.families_countries`,
:mod:`~knowgen.world.families_brands` and :mod:`~knowgen.world.families_multi`.
"""

from __future__ import annotations

from knowgen.world.facts import MAX_TEXT, WorldFacts, caption, fold, readable
from knowgen.world.families_brands import BRAND_SLOTS, brand_families
from knowgen.world.families_countries import COUNTRY_SLOTS, country_families
from knowgen.world.families_multi import MULTI_SLOTS, multi_families
from knowgen.world.family import Answer, Candidate, Clue, Template, TextPlan
from knowgen.world.phrasing import SHARED_SLOTS

#: Every family, in the order tasks are listed.
TEMPLATES: dict[str, Template] = {
    t.name: t for t in (*country_families(), *brand_families(), *multi_families())
}

#: Every grammar slot of every family (shared ones included).
ALL_SLOTS = (*SHARED_SLOTS, *COUNTRY_SLOTS, *BRAND_SLOTS, *MULTI_SLOTS)

__all__ = [
    "ALL_SLOTS", "MAX_TEXT", "TEMPLATES", "Answer", "Candidate", "Clue", "Template", "TextPlan",
    "WorldFacts", "caption", "fold", "readable",
]

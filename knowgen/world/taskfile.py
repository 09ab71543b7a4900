"""Task files: requests a user writes over the offline world.

A task file is a JSON array, or JSON Lines, of KnowGen records plus the
hidden facts the offline judges and the oracle need::

    {"id": "my-1",
     "prompt": "A stamp with the flag of the country whose people are Chadians ...",
     "meta": {"category": "geography", "difficulty": "medium"},
     "facts": {"entities": ["country/td"],            # world entity ids, in layout order
               "required_text": ["CHAD"],              # [] when the picture needs no text
               "text_case": "upper"},                  # optional: the request asks for capitals
     "split": "test",                                  # optional (default "test")
     "template": "flag_by_demonym",                    # optional: a family, and
     "clue": {"fact": "demonym", "value": "Chadian"}}  # its clue, re-resolved against the world

Every record is validated before anything runs; all problems of a file are
reported at once, with their record numbers: an unknown entity id gets "Did
you mean ...", a clue that does not resolve to exactly the record's entities
is refused, as is text that OCR could not read back or that would not fit a
banner.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

from knowgen.errors import DataError
from knowgen.fileio import read_json_items
from knowgen.types import KNOWGEN_GROUPS, RequiredEntity, Task, TaskFacts
from knowgen.world.data import World
from knowgen.world.templates import TEMPLATES, WorldFacts, readable

logger = logging.getLogger(__name__)

#: Largest task file read, in bytes.
MAX_FILE_BYTES = 20 * 1024 * 1024
_CATEGORIES = {c for cats in KNOWGEN_GROUPS.values() for c in cats}


def _records(path: Path) -> list[Any]:
    return read_json_items(path, what="Task file", max_bytes=MAX_FILE_BYTES)


def _entity_ids(raw: Any) -> list[str]:
    ids = []
    for item in raw if isinstance(raw, list) else []:
        ids.append(str(item.get("entity_id", "")) if isinstance(item, dict) else str(item))
    return ids


def _suggest(entity_id: str, world: World) -> list[str]:
    """Entities a mistyped id probably meant: by name first ("country/peru"), then by id."""
    kind, _, rest = entity_id.partition("/")
    wanted = rest.replace("_", " ").replace("-", " ").casefold()
    by_name = [e.id for e in world.entities.values()
               if e.name.casefold() == wanted and (not kind or e.kind == kind)]
    close = by_name + [i for i in difflib.get_close_matches(entity_id, list(world.entities), n=3)
                       if i not in by_name]
    return [f"{i!r} ({world.entities[i].name})" for i in close[:3]]


def _check(rec: Any, n: int, world: World, facts: WorldFacts, seen: set[str]
           ) -> tuple[Task | None, str, list[str]]:
    """The task of one record, its split, and the problems found (task None if any)."""
    if not isinstance(rec, dict):
        return None, "", [f"record {n}: not a JSON object"]
    problems = []
    task_id = str(rec.get("id", "")).strip()
    if not task_id or "/" in task_id or task_id.startswith("."):
        problems.append(f"record {n}: 'id' must be a non-empty name without '/'")
    elif task_id in seen:
        problems.append(f"record {n}: id {task_id!r} is used twice")
    seen.add(task_id)
    prompt = rec.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append(f"record {n} ({task_id}): 'prompt' must be a non-empty string")
    meta = rec.get("meta") if isinstance(rec.get("meta"), dict) else {}
    category = str(meta.get("category", "")).strip().lower()
    if category not in _CATEGORIES:
        close = difflib.get_close_matches(category, sorted(_CATEGORIES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        problems.append(f"record {n} ({task_id}): meta.category {category!r} is in no KnowGen "
                        f"group.{hint}")
    raw_facts = rec.get("facts") if isinstance(rec.get("facts"), dict) else None
    if raw_facts is None:
        missing = f"record {n} ({task_id}): 'facts' (entities, required_text) is missing"
        return None, "", [*problems, missing]
    ids = _entity_ids(raw_facts.get("entities"))
    if not ids:
        problems.append(f"record {n} ({task_id}): facts.entities must list world entity ids")
    for eid in ids:
        if eid not in world.entities:
            close = _suggest(eid, world)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            problems.append(f"record {n} ({task_id}): unknown entity {eid!r}.{hint}")
        elif not facts.usable(eid):
            problems.append(f"record {n} ({task_id}): entity {eid!r} has no official picture "
                            "or page in this world")
    texts = raw_facts.get("required_text", [])
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        problems.append(f"record {n} ({task_id}): facts.required_text must be a list of strings")
        texts = []
    for text in texts:
        if not readable(text):
            problems.append(f"record {n} ({task_id}): required text {text!r} is too long or "
                            "has characters OCR cannot read back (use A-Z, digits, spaces, "
                            "and ,.'()&+-; at most 36 characters)")
    case = str(raw_facts.get("text_case", "") or "")
    if case not in ("", "upper"):
        problems.append(f"record {n} ({task_id}): facts.text_case must be 'upper' or absent")
    elif case == "upper" and any(t != t.upper() for t in texts):
        problems.append(f"record {n} ({task_id}): text_case 'upper' needs its texts in capitals")
    template, clue = rec.get("template"), rec.get("clue")
    if template is not None or clue is not None:
        if template not in TEMPLATES:
            close = difflib.get_close_matches(str(template), list(TEMPLATES), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(f"record {n} ({task_id}): unknown family {template!r}.{hint}")
        elif not isinstance(clue, dict):
            problems.append(f"record {n} ({task_id}): 'clue' must be an object")
        elif not problems:
            answers = TEMPLATES[template].resolve(facts, clue)
            if answers != [tuple(ids)]:
                said = "nothing" if not answers else ", ".join("+".join(a) for a in answers[:4])
                problems.append(f"record {n} ({task_id}): its clue resolves to {said}, not to "
                                f"exactly {'+'.join(ids)}")
    split = str(rec.get("split", "test"))
    if problems:
        return None, split, problems
    entities = tuple(RequiredEntity(e, world.entities[e].name, world.entities[e].image_id)
                     for e in ids)
    known = {"id", "prompt", "meta", "facts", "split", "gt_image"}
    task = Task(id=task_id, prompt=prompt.strip(), category=category,
                difficulty=str(meta.get("difficulty", "")),
                facts=TaskFacts(entities=entities, required_text=tuple(texts),
                                template=str(template or "custom"), text_case=case),
                extra={k: v for k, v in rec.items() if k not in known})
    return task, split, []


def load_task_file(path: str | Path, world: World) -> dict[str, list[Task]]:
    """Read and validate a task file; tasks by split, in file order.

    Raises:
        DataError: listing every problem of the file (record numbers from 1).
    """
    path = Path(path).expanduser()
    records = _records(path)
    if not records:
        raise DataError(f"Task file {path} holds no records.")
    facts = WorldFacts(world)
    seen: set[str] = set()
    by_split: dict[str, list[Task]] = {}
    problems: list[str] = []
    for n, rec in enumerate(records, 1):
        task, split, found = _check(rec, n, world, facts, seen)
        problems.extend(found)
        if task is not None:
            by_split.setdefault(split, []).append(task)
    if problems:
        shown = "\n  ".join(problems[:30])
        more = f"\n  ... and {len(problems) - 30} more" if len(problems) > 30 else ""
        raise DataError(f"Task file {path} has {len(problems)} problem(s):\n  {shown}{more}")
    logger.info("read %d tasks from %s", sum(map(len, by_split.values())), path)
    return by_split

"""The records SFT trains on, in order: read or generated, in the run's context view,
those an earlier stage took left out (``sft.exclude_stride``, ``sft.exclude_per_template``),
those of chosen task families (``sft.templates``), at most so many of each family
(``sft.per_template``), several-picture transcripts balanced against single ones
(``sft.singles_per_several``), at an even stride (``sft.max_records``), several-picture
transcripts repeated (``sft.several_copies``) and requests reworded (``sft.reword``);
then the replayed records of ``sft.replay``, as they are.

:func:`training_records` gives them; the name augmentation that needs the run's tokenizer
stays with the trainer in :mod:`knowgen.agents.train.sft`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from knowgen.agents.expert_data import generate_expert_data, read_jsonl, write_jsonl
from knowgen.agents.train.config import TrainConfig
from knowgen.agents.turn_rules import shown_image_ids
from knowgen.envs.protocol import parse_action
from knowgen.envs.trl_env import adapter_class, tool_schemas
from knowgen.envs.views import apply_view, uses_browse
from knowgen.errors import ConfigError, UnknownNameError
from knowgen.fileio import atomic_write_text
from knowgen.types import task_family

logger = logging.getLogger(__name__)


def training_records(cfg: TrainConfig) -> list[dict[str, Any]]:
    """The records of ``cfg``'s SFT run, before any name augmentation (module docstring)."""
    records = reworded(cfg, with_several_copied(sft_records(cfg), cfg.sft.several_copies))
    return records + replay_records(cfg)


def sft_records(cfg: TrainConfig) -> list[dict[str, Any]]:
    """The SFT records in the run's context view (see :func:`expert_records`): those an
    earlier stage took left out (``sft.exclude_stride``, ``sft.exclude_per_template``),
    those of ``sft.templates``, at most ``sft.per_template`` of each family, several-picture
    ones balanced
    (``sft.singles_per_several``), then at most ``sft.max_records`` at an even stride."""
    records = in_view(expert_records(cfg), cfg)
    unseen = not_kept_per_template(not_taken_by(records, cfg.sft.exclude_stride),
                                   cfg.sft.exclude_per_template, among=records)
    records = of_templates(unseen, cfg.sft.templates, among=records)
    records = per_template(records, cfg.sft.per_template)
    records = balanced(records, cfg.sft.singles_per_several)
    return spread(records, cfg.sft.max_records, cfg.sft.stride_offset)


def in_view(records: list[dict[str, Any]], cfg: TrainConfig) -> list[dict[str, Any]]:
    """``records`` in the run's context view (``cfg.view``); in the ``compact`` view those
    that browse are left out, since it has no browse tool."""
    if cfg.view == "full":
        return records
    kept = [r for r in records if not uses_browse(r)]
    if len(kept) < len(records):
        logger.info("The %s view has no browse tool: %d of %d records that browse are left "
                    "out", cfg.view, len(records) - len(kept), len(records))
    tools = json.dumps(tool_schemas(adapter_class(cfg.view)), ensure_ascii=False)
    viewed = [apply_view(r, cfg.view, cfg.system_prompt) for r in kept]
    for record in viewed:
        record["tools"] = tools
    return viewed


def replay_records(cfg: TrainConfig) -> list[dict[str, Any]]:
    """The records of ``sft.replay`` in the run's view (none when unset).

    Raises:
        DataError: for an unreadable file, or one in which no record could be used.
    """
    if not cfg.sft.replay:
        return []
    from knowgen.agents.upstream_data import read_sft_file, write_rejected

    records, rejected = read_sft_file(cfg.sft.replay, cfg.system_prompt)
    write_rejected(rejected, Path(cfg.output_dir) / "sft_replay.rejected.jsonl",
                   "replayed records")
    records = in_view(records, cfg)
    logger.info("Replaying %d records of %s beside the selected ones", len(records),
                cfg.sft.replay)
    return records


def not_taken_by(records: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """``records`` without those :func:`spread` takes for ``limit`` (offset 0); all when unset.

    Raises:
        ConfigError: for a limit below 1.
    """
    if limit is None:
        return records
    if limit < 1:
        raise ConfigError(f"sft.exclude_stride must be at least 1 (or unset), got {limit}.")
    taken = set(stride_indices(len(records), limit))
    out = [r for i, r in enumerate(records) if i not in taken]
    logger.info("Left out the %d records a %d-record stride took: %d remain", len(taken),
                limit, len(out))
    return out


def not_kept_per_template(records: list[dict[str, Any]], cap: int | None,
                          among: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` without those :func:`per_template` keeps of ``among`` (the whole data) for
    ``cap``; all when unset.

    Raises:
        ConfigError: for a cap below 1, or records that carry no world task id.
    """
    if cap is None:
        return records
    if cap < 1:
        raise ConfigError(f"sft.exclude_per_template must be at least 1 (or unset), got {cap}.")
    taken = {id(r) for r in per_template(among, cap)}
    out = [r for r in records if id(r) not in taken]
    logger.info("Left out the %d records a per-family cap of %d took: %d remain",
                len(records) - len(out), cap, len(out))
    return out


def template_names(value: list[str] | str) -> list[str]:
    """Template names from a list or from names joined by commas (``--set x=a,b``)."""
    if isinstance(value, str):
        value = value.split(",")
    return [name.strip() for name in value if name.strip()]


def record_template(record: dict[str, Any]) -> str | None:
    """The world template of a record: its ``task_id`` up to the first ``-``
    (``two_flags-fr-es`` -> ``two_flags``); None for a record without a task id."""
    return task_family(str(record.get("task_id") or "")) or None


def of_templates(records: list[dict[str, Any]], templates: list[str] | str | None,
                 among: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The records of the world templates ``templates``, order kept; all when unset.

    Args:
        records: the records to filter.
        templates: template names, a list or joined by commas.
        among: the records whose templates the names are checked against (the whole data,
            before an earlier stage's stride took some); ``records`` when None.

    Raises:
        ConfigError: for records that carry no world task id (upstream transcripts).
        UnknownNameError: for a template no record has.
    """
    if not templates:
        return records
    wanted = template_names(templates)
    present = {record_template(r) for r in (records if among is None else among)} - {None}
    if not present:
        raise ConfigError("These SFT records carry no world task id (upstream transcripts?), "
                          "so sft.templates cannot pick among them; unset it.")
    for name in wanted:
        if name not in present:
            raise UnknownNameError("template of the SFT records", name, present)
    chosen = set(wanted)
    kept = [r for r in records if record_template(r) in chosen]
    logger.info("Kept the %d of %d records of templates %s", len(kept), len(records),
                ", ".join(sorted(chosen)))
    return kept


def per_template(records: list[dict[str, Any]], cap: int | None) -> list[dict[str, Any]]:
    """At most ``cap`` records of each world template, at an even stride within each, order
    kept; all when unset.

    Raises:
        ConfigError: for a cap below 1, or records that carry no world task id.
    """
    if cap is None:
        return records
    if cap < 1:
        raise ConfigError(f"sft.per_template must be at least 1 (or unset), got {cap}.")
    families: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        name = record_template(record)
        if name is None:
            raise ConfigError("sft.per_template needs records with a world task id; these "
                              "(upstream transcripts?) have none, so unset it.")
        families.setdefault(name, []).append(i)
    keep = {i for indices in families.values() for i in spread(indices, cap)}
    logger.info("Kept %d of %d records, at most %d of each of %d families (%s)", len(keep),
                len(records), cap, len(families), ", ".join(
                    f"{name} {min(cap, len(ix))}" for name, ix in sorted(families.items())))
    return [r for i, r in enumerate(records) if i in keep]


def balanced(records: list[dict[str, Any]], singles_per_several: float | None
             ) -> list[dict[str, Any]]:
    """Every record that cites several pictures and ``singles_per_several`` single-picture
    records for each, those taken at an even stride, order kept; all when unset.

    Raises:
        ConfigError: for a negative ratio, or data with no several-picture record.
    """
    if singles_per_several is None:
        return records
    if singles_per_several < 0:
        raise ConfigError("sft.singles_per_several must be 0 or more (or unset), got "
                          f"{singles_per_several}.")
    several = [i for i, r in enumerate(records) if cited_pictures(r) > 1]
    if not several:
        raise ConfigError("sft.singles_per_several needs records that cite several pictures; "
                          "this data has none.")
    singles = [i for i, r in enumerate(records) if cited_pictures(r) <= 1]
    wanted = round(len(several) * singles_per_several)
    picked = spread(singles, wanted) if wanted else []
    keep = set(several) | set(picked)
    logger.info("Kept %d records that cite several pictures and %d of %d single-picture ones",
                len(several), len(picked), len(singles))
    return [r for i, r in enumerate(records) if i in keep]


def spread(records: list[dict[str, Any]], limit: int | None,
           offset: int = 0) -> list[dict[str, Any]]:
    """At most ``limit`` of ``records`` at an even stride from ``offset``, order kept.

    Raises:
        ConfigError: for a limit below 1 or a negative offset.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"sft.max_records must be at least 1 (or unset), got {limit}.")
    if offset < 0:
        raise ConfigError(f"sft.stride_offset must be 0 or more, got {offset}.")
    return [records[i] for i in stride_indices(len(records), limit, offset)]


def stride_indices(n: int, limit: int | None, offset: int = 0) -> list[int]:
    """Indices of the at most ``limit`` of ``n`` records :func:`spread` takes (all of them
    when ``limit`` is unset or not below ``n``)."""
    if limit is None or limit >= n:
        return list(range(n))
    return [(i * n // limit + offset) % n for i in range(limit)]


def expert_records(cfg: TrainConfig) -> list[dict[str, Any]]:
    """The expert records: read from ``cfg.sft.data`` or generated (and saved) from the expert."""
    if cfg.sft.data:
        from knowgen.agents.upstream_data import read_sft_file, write_rejected

        records, rejected = read_sft_file(cfg.sft.data, cfg.system_prompt)
        write_rejected(rejected, Path(cfg.output_dir) / "sft_data.rejected.jsonl",
                       "SFT transcripts")
        return records
    path = Path(cfg.output_dir) / "sft_data.jsonl"
    if path.is_file():
        logger.info("Reusing expert data in %s", path)
        return read_jsonl(path)
    data_cfg = cfg.data
    data_cfg.system_prompt = cfg.system_prompt
    records, stats = generate_expert_data(data_cfg)
    write_jsonl(records, path)
    atomic_write_text(path.with_suffix(".stats.json"), json.dumps(stats, indent=2) + "\n")
    return records


def cited_pictures(record: dict[str, Any]) -> int:
    """How many pictures the answer at the end of an SFT record cites (0 without one)."""
    messages = record.get("messages", [])
    last = next((m.get("content") for m in reversed(messages) if m.get("role") == "assistant"), "")
    action = parse_action(last, shown_image_ids(messages))
    return len(action.answer.reference_images) if action.answer is not None else 0


def with_several_copied(records: list[dict[str, Any]], copies: int) -> list[dict[str, Any]]:
    """``records`` with each one that cites several pictures ``copies`` times in all.

    Raises:
        ConfigError: for ``copies`` below 1.
    """
    if copies < 1:
        raise ConfigError(f"sft.several_copies must be at least 1, got {copies}.")
    if copies == 1:
        return records
    out: list[dict[str, Any]] = []
    several = 0
    for record in records:
        times = copies if cited_pictures(record) > 1 else 1
        several += times > 1
        out.extend([record] * times)
    logger.info("%d of %d records cite several pictures and are trained on %d times",
                several, len(records), copies)
    return out


def reworded(cfg: TrainConfig, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with their requests reworded at rate ``sft.reword`` (unchanged at 0)."""
    if not cfg.sft.reword:
        return records
    from knowgen.agents.reword import reword_records

    return reword_records(records, cfg.sft.reword, cfg.sft.reword_seed)

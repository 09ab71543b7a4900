"""Supervised fine-tuning on expert transcripts with TRL's ``SFTTrainer``.

Only the assistant turns are trained (``assistant_only_loss=True``: TRL renders
with its training variant of the Qwen3 template, whose ``{% generation %}``
marks leave the system prompt, the request and every tool result out of the
loss). The run writes resumable checkpoints and TensorBoard logs under
``<output_dir>/sft/`` and the final model, tokenizer and ``knowgen_agent.json``
in ``<output_dir>/sft/final``.

Example:
    >>> final_dir = run_sft(load_train_config("smoke"))
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Any

from knowgen.agents.checkpoint_format import (
    AGENT_FILE,
    is_adapter_folder,
    name_base_in_adapter_config,
)
from knowgen.agents.tiny import (
    build_tiny_model,
    count_parameters,
    load_tokenizer,
    qwen3_chat_template,
)
from knowgen.agents.train.config import GenerationSettings, TrainConfig
from knowgen.agents.train.hub import no_usage_report, without_hub_lookup
from knowgen.agents.train.models import adapter_base, load_trainable
from knowgen.agents.train.resume import keep_schedule_on_resume, last_checkpoint
from knowgen.agents.train.sft_data import training_records
from knowgen.envs.trl_env import adapter_class, tool_schemas
from knowgen.errors import ConfigError
from knowgen.fileio import atomic_write_text

logger = logging.getLogger(__name__)



def save_agent(model: Any, tokenizer: Any, out_dir: str | Path, system_prompt: str,
               generation: GenerationSettings, view: str = "full",
               base: str | None = None) -> Path:
    """Write a checkpoint folder that inference renders exactly as training did.

    The folder holds the Hugging Face model and tokenizer (with the Qwen3 chat
    template) and ``knowgen_agent.json``:
    ``{"system_prompt", "tools", "view", "generation": {max_new_tokens, temperature, top_p,
    do_sample, format_retries, grammar, cite_pictures, finish_count, fresh_calls,
    resample_repeats, drop_invalid_turns}}`` (``view``: the context view of tool results,
    :mod:`knowgen.envs.views`). A peft model is saved as its adapter alone; ``base`` (the
    model it adapts, as ``sft.init`` named it) is then recorded for inference to load.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not tokenizer.chat_template:
        tokenizer.chat_template = qwen3_chat_template()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_agent_file(out, agent_meta(model, tokenizer, system_prompt, generation, view, base))
    logger.info("Saved the agent to %s", out)
    return out


def agent_meta(model: Any, tokenizer: Any, system_prompt: str, generation: GenerationSettings,
               view: str = "full", base: str | None = None) -> dict[str, Any]:
    """The content of ``knowgen_agent.json`` for ``model`` (see :func:`save_agent`)."""
    meta: dict[str, Any] = {
        "system_prompt": system_prompt,
        "tools": tool_schemas(adapter_class(view)),
        "view": view,
        "generation": {"max_new_tokens": generation.max_new_tokens,
                       "temperature": generation.temperature, "top_p": generation.top_p,
                       "do_sample": generation.do_sample,
                       "format_retries": generation.format_retries,
                       "grammar": generation.grammar,
                       "cite_pictures": generation.cite_pictures,
                       "finish_count": generation.finish_count,
                       "fresh_calls": generation.fresh_calls,
                       "resample_repeats": generation.resample_repeats,
                       "drop_invalid_turns": generation.drop_invalid_turns},
        "stop": tokenizer.eos_token,
        "parameters": count_parameters(model),
    }
    if base:
        meta["base"] = base
    if hasattr(model, "peft_config"):
        meta["adapter"] = "lora"
        meta["trainable_parameters"] = sum(p.numel() for p in model.parameters()
                                           if p.requires_grad)
    return meta


def write_agent_file(folder: str | Path, meta: dict[str, Any]) -> None:
    """Write ``knowgen_agent.json`` into ``folder``, and its base into the adapter's config."""
    if meta.get("base"):
        name_base_in_adapter_config(folder, meta["base"])
    atomic_write_text(Path(folder) / AGENT_FILE,
                      json.dumps(meta, indent=2, ensure_ascii=False) + "\n")


def with_agent_file(trainer: Any, system_prompt: str, generation: GenerationSettings,
                    view: str = "full", base: str | None = None) -> Any:
    """Make ``trainer`` write ``knowgen_agent.json`` into each ``checkpoint-N`` it saves.

    A mid-run checkpoint then loads as a policy (``--policy transformers:path=.../
    checkpoint-N``) over the same base as the final folder, and resuming is unchanged.
    """
    from transformers import TrainerCallback

    class AgentFileOnSave(TrainerCallback):
        """Writes the agent file beside the weights the Trainer has just saved."""

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                write_agent_file(folder, agent_meta(trainer.model, trainer.processing_class,
                                                    system_prompt, generation, view, base))

    trainer.add_callback(AgentFileOnSave())
    return trainer


def tokenizer_texts(records: list[dict[str, Any]]) -> list[str]:
    """Plain text of records (contents, tool calls and tool schemas) to train a tokenizer on."""
    texts = []
    for record in records:
        parts = [record.get("tools") or ""]
        for message in record["messages"]:
            parts.append(str(message.get("content") or ""))
            for call in message.get("tool_calls") or []:
                fn = call.get("function", call)
                parts.append(f'{{"name": "{fn.get("name")}", "arguments": {fn.get("arguments")}}}')
        texts.append("\n".join(parts))
    return texts


def world_page_texts() -> list[str]:
    """Title and text of every page of the offline world."""
    from knowgen.world.data import load_world

    return [f"{page.title}\n{page.text}" for page in load_world().pages.values()]


def render(tokenizer: Any, record: dict[str, Any]) -> str:
    """A record rendered by the tokenizer's (inference) chat template."""
    tools = record.get("tools")
    tools = json.loads(tools) if isinstance(tools, str) else tools
    return tokenizer.apply_chat_template(record["messages"], tools=tools, tokenize=False)


def token_lengths(tokenizer: Any, records: list[dict[str, Any]]) -> list[int]:
    """Tokens of each rendered record."""
    return [len(tokenizer(render(tokenizer, r), add_special_tokens=False)["input_ids"])
            for r in records]


def length_stats(lengths: list[int]) -> dict[str, float]:
    """Mean, median, 95th percentile and maximum of token lengths."""
    if not lengths:
        return {"count": 0}
    ordered = sorted(lengths)
    return {"count": len(ordered), "mean": round(statistics.fmean(ordered), 1),
            "median": ordered[len(ordered) // 2], "p95": ordered[int(0.95 * (len(ordered) - 1))],
            "max": ordered[-1], "total": sum(ordered)}


def obtain_tokenizer(cfg: TrainConfig, records: list[dict[str, Any]]) -> Any:
    """Load the configured tokenizer (or the init model's), else train one on ``records``."""
    from knowgen.agents.tiny import PROTOCOL_PHRASES, train_tokenizer

    if cfg.tokenizer.path:
        return load_tokenizer(cfg.tokenizer.path)
    if init_adapter(cfg):
        return load_tokenizer(cfg.sft.init)
    if cfg.sft.init:
        from knowgen.agents.base_models import load_base_tokenizer

        return load_base_tokenizer(cfg.sft.init)
    settings = cfg.tokenizer
    extra = world_page_texts() if settings.world_pages else []
    options = {"vocab_size": settings.vocab_size, "min_frequency": settings.min_frequency,
               "phrases": PROTOCOL_PHRASES if settings.protocol_phrases else ()}
    draft = train_tokenizer(tokenizer_texts(records) + extra, **options)
    # Trained again on the transcripts as the chat template renders them, so that the
    # template's own words (the tools preamble) get tokens of their own too.
    tokenizer = train_tokenizer([render(draft, r) for r in records] + extra, **options)
    tokenizer.save_pretrained(str(Path(cfg.output_dir) / "tokenizer"))
    return tokenizer


AUGMENT_NAMES = ("syllables", "pieces")
"""Styles of invented names (``sft.augment_names``)."""


def augmented_records(cfg: TrainConfig,
                      records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    """The records with ``sft.augment_copies`` pseudo-named copies, and the run's tokenizer.

    With ``syllables`` names the tokenizer is trained on the augmented records; with
    ``pieces`` it is obtained first and the names are made of its word pieces.

    Raises:
        ConfigError: for an unknown ``sft.augment_names``.
    """
    from knowgen.agents.augment import PieceWords, augment_records

    s = cfg.sft
    if s.augment_names not in AUGMENT_NAMES:
        raise ConfigError(f"sft.augment_names must be one of {', '.join(AUGMENT_NAMES)}, "
                          f"got {s.augment_names!r}.")
    if not s.augment_copies:
        return records, obtain_tokenizer(cfg, records)
    if s.augment_names == "syllables":
        records = augment_records(records, s.augment_copies, s.augment_seed)
        return records, obtain_tokenizer(cfg, records)
    tokenizer = obtain_tokenizer(cfg, records)
    return augment_records(records, s.augment_copies, s.augment_seed,
                           word=PieceWords(tokenizer)), tokenizer


def obtain_model(cfg: TrainConfig, tokenizer: Any) -> Any:
    """Load the model ``cfg.sft.init`` names or build a tiny model from ``cfg.model``.

    An earlier run's LoRA agent folder comes back with its adapter trainable.
    """
    if init_adapter(cfg):
        return load_trainable(cfg.sft.init)
    if cfg.sft.init:
        from knowgen.agents.base_models import load_base_model

        return load_base_model(cfg.sft.init)
    m = cfg.model
    return build_tiny_model(tokenizer, hidden=m.hidden, layers=m.layers, heads=m.heads,
                            kv_heads=m.kv_heads, intermediate=m.intermediate,
                            max_positions=m.max_positions, seed=m.seed)


def with_lora(cfg: TrainConfig, model: Any) -> Any:
    """``model`` with LoRA adapters on ``sft.lora.target_modules`` (``sft.lora.r`` > 0), else as is.

    Raises:
        ConfigError: for LoRA without a pretrained ``sft.init`` (a model built from
            scratch has nothing to adapt).
    """
    if hasattr(model, "peft_config"):
        logger.info("Training on the LoRA adapter of %s", cfg.sft.init)
        return model
    peft_config = cfg.sft.lora.peft_config()
    if peft_config is None:
        return model
    if not cfg.sft.init:
        raise ConfigError("sft.lora.r > 0 adapts a pretrained model: set sft.init (e.g. "
                          "sft.init=smollm2-135m), or sft.lora.r=0 to train a tiny model whole.")
    from peft import get_peft_model

    model = without_hub_lookup(get_peft_model(model, peft_config))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("LoRA r=%d: %d trainable parameters of %d", cfg.sft.lora.r, trainable,
                sum(p.numel() for p in model.parameters()))
    return model


def init_adapter(cfg: TrainConfig) -> bool:
    """Whether ``sft.init`` is a saved LoRA agent folder (a second SFT stage)."""
    return bool(cfg.sft.init) and is_adapter_folder(Path(cfg.sft.init))


def saved_base(cfg: TrainConfig) -> str | None:
    """The base model the saved agent names: the one its adapter adapts (None if whole)."""
    if init_adapter(cfg):
        return adapter_base(cfg.sft.init)
    return cfg.sft.init if cfg.sft.lora.r > 0 else None


def sft_arguments(cfg: TrainConfig, out_dir: Path, lm_warmup: bool = False) -> Any:
    """TRL ``SFTConfig`` for the run (``lm_warmup``: the every-token warm-up stage).

    The trainer built with it reports nothing to the hub (:func:`no_usage_report`).
    """
    from trl import SFTConfig

    no_usage_report()
    s = cfg.sft
    return SFTConfig(
        output_dir=str(out_dir), assistant_only_loss=not lm_warmup, max_length=s.max_length,
        num_train_epochs=s.lm_warmup_epochs if lm_warmup else s.epochs,
        max_steps=-1 if lm_warmup else s.max_steps, learning_rate=s.learning_rate,
        lr_scheduler_type=s.lr_scheduler, warmup_steps=s.warmup_ratio,
        weight_decay=s.weight_decay, per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=s.grad_accum, logging_steps=s.logging_steps,
        save_steps=s.save_steps, save_total_limit=s.save_total_limit, seed=s.seed,
        report_to=["tensorboard"], train_sampling_strategy="group_by_length",
        dataloader_num_workers=0, bf16=use_bf16(cfg.precision), fp16=False, use_cpu=not _has_cuda(),
        packing=False, disable_tqdm=False, dataset_num_proc=None,
        gradient_checkpointing=s.gradient_checkpointing)


def resume_point(cfg: TrainConfig, out_dir: Path) -> str | None:
    """The checkpoint to resume from (``sft.resume``), else None.

    Raises:
        ConfigError: when ``sft.resume`` is set and ``out_dir`` holds no checkpoint.
    """
    if not cfg.sft.resume:
        return None
    resume = last_checkpoint(out_dir)
    if resume is None:
        raise ConfigError(f"sft.resume is set but {out_dir} holds no checkpoint; unset it.")
    return resume


def copy_pretrain(cfg: TrainConfig, model: Any, tokenizer: Any) -> dict[str, Any]:
    """Run the copy pre-training stage on ``model`` (in place) and return its statistics."""
    from knowgen.agents.copy_pretrain import CopyTask, ordinary_token_ids, pretrain_copying

    s = cfg.sft
    if _has_cuda():
        model.to("cuda")
    return pretrain_copying(model, ordinary_token_ids(tokenizer), steps=s.copy_steps,
                            batch=s.copy_batch_size, task=CopyTask(length=s.copy_length),
                            learning_rate=s.copy_learning_rate, seed=s.seed,
                            eval_every=max(1, s.copy_steps // 5))


PRECISIONS = ("auto", "bf16", "fp32")
"""Values of ``precision`` (see :class:`~knowgen.agents.train.config.TrainConfig`)."""


def use_bf16(precision: str) -> bool:
    """Whether a run in ``precision`` trains in bf16 mixed precision.

    ``auto`` is bf16 on a GPU that supports it and on a CPU that computes in bf16
    natively (:func:`cpu_has_bf16`), float32 elsewhere; ``bf16`` asks for it wherever
    the run is (a CPU emulates it slowly without AVX512-BF16 or AMX).

    Raises:
        ConfigError: for a value not in :data:`PRECISIONS`, or ``bf16`` on a GPU
            without bf16 support.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if precision == "fp32":
        return False
    if not _has_cuda():
        native = cpu_has_bf16()
        if precision == "bf16" and native is False:
            logger.warning("precision=bf16 on a CPU without AVX512-BF16 or AMX: its bf16 "
                           "arithmetic is emulated and far slower than float32; add "
                           "`--set precision=fp32` (or `auto`).")
        return precision == "bf16" or native is True
    import torch

    supported = bool(torch.cuda.is_bf16_supported())
    if precision == "bf16" and not supported:
        raise ConfigError("precision=bf16: this GPU has no bf16 support; use precision=fp32 "
                          "(or auto).")
    return supported


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool | None:
    """Whether the CPU computes in bf16 natively (AVX512-BF16, AMX-BF16 or Arm BF16).

    Args:
        cpuinfo: The kernel's CPU description (Linux's ``/proc/cpuinfo`` format).

    Returns:
        True or False from the ``flags`` lines, None where the file cannot be read
        (another system) or lists no flags.
    """
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    flags = {f for line in text.splitlines() if line.startswith(("flags", "Features"))
             for f in line.split(":", 1)[-1].split()}
    if not flags:
        return None
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})  # bf16: an Arm core's name


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def run_sft(cfg: TrainConfig) -> Path:
    """Train (or continue) the SFT stage and return the final checkpoint folder.

    Raises:
        ConfigError: when no record fits ``sft.max_length`` or resuming finds no checkpoint.
    """
    from datasets import Dataset
    from trl import SFTTrainer

    from knowgen.agents.train.progress import use_stage_progress

    if use_bf16(cfg.precision):  # an unknown precision fails here, before the data is read
        logger.info("SFT in bf16 mixed precision (precision=%s)", cfg.precision)
    out_dir = Path(cfg.output_dir) / "sft"
    records, tokenizer = augmented_records(cfg, training_records(cfg))
    lengths = token_lengths(tokenizer, records)
    kept = [r for r, n in zip(records, lengths) if n <= cfg.sft.max_length]
    stats = {"all": length_stats(lengths),
             "kept": length_stats([n for n in lengths if n <= cfg.sft.max_length])}
    logger.info("SFT token lengths: %s", stats)
    if not kept:
        raise ConfigError(f"No SFT record fits sft.max_length={cfg.sft.max_length} tokens "
                          f"(shortest: {min(lengths, default=0)}); raise sft.max_length.")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "token_stats.json", json.dumps(stats, indent=2) + "\n")
    resume = resume_point(cfg, out_dir)
    model = with_lora(cfg, obtain_model(cfg, tokenizer))
    if cfg.sft.copy_steps > 0 and resume is None and not cfg.sft.init:
        copy_stats = copy_pretrain(cfg, model, tokenizer)
        atomic_write_text(out_dir / "copy_pretrain.json", json.dumps(copy_stats, indent=2) + "\n")
    dataset = Dataset.from_list([{"messages": r["messages"], "tools": r["tools"]} for r in kept])
    if cfg.sft.lm_warmup_epochs > 0 and resume is None:
        warmup = SFTTrainer(model=model, args=sft_arguments(cfg, out_dir / "lm_warmup", True),
                            train_dataset=dataset, processing_class=tokenizer)
        use_stage_progress(warmup, "SFT warm-up")
        warmup.train()
        model = warmup.model
    trainer = SFTTrainer(model=model, args=sft_arguments(cfg, out_dir), train_dataset=dataset,
                         processing_class=tokenizer)
    keep_schedule_on_resume(use_stage_progress(trainer, "SFT"))
    with_agent_file(trainer, cfg.system_prompt, cfg.generation, cfg.view, base=saved_base(cfg))
    trainer.train(resume_from_checkpoint=resume)
    return save_agent(trainer.model, tokenizer, out_dir / "final", cfg.system_prompt,
                      cfg.generation, cfg.view,
                      base=saved_base(cfg))

"""GRPO with the environment's dual reward, through TRL's ``GRPOTrainer``.

Each prompt is a task (of the world's split, or of upstream's ``rl_data.json`` with
``grpo.data``): the dataset row holds the system prompt, an empty
user turn and the ``task_id``; :class:`~knowgen.envs.trl_env.SearchGenToolEnv`
fills the request in on ``reset``, runs the tool calls the model writes and,
through :func:`~knowgen.envs.trl_env.searchgen_reward`, draws and judges the
final answer. Tool results are masked out of the loss by TRL (``tool_mask``).
Starts from the SFT checkpoint; writes ``<output_dir>/grpo/final``.

Example:
    >>> final_dir = run_grpo(load_train_config("tiny"))
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from knowgen.agents.checkpoint_format import is_adapter_folder
from knowgen.agents.tiny import load_tokenizer
from knowgen.agents.train.config import TrainConfig
from knowgen.agents.train.hub import no_usage_report
from knowgen.agents.train.models import adapter_base, load_trainable
from knowgen.agents.train.resume import keep_schedule_on_resume, last_checkpoint
from knowgen.agents.train.sft import _has_cuda, save_agent, use_bf16, with_agent_file
from knowgen.agents.train.sft_data import template_names
from knowgen.config import EnvConfig
from knowgen.envs.trl_env import make_env_factory, searchgen_reward
from knowgen.errors import ConfigError, UnknownNameError
from knowgen.fileio import atomic_write_text

logger = logging.getLogger(__name__)

ROLLOUT_KINDS = ("tools", "agent")
"""Values of ``grpo.rollouts``: TRL's tool loop, or the bundled agent's decoding."""


def grpo_init_dir(cfg: TrainConfig) -> Path:
    """The model folder GRPO starts from.

    Raises:
        ConfigError: when it does not exist.
    """
    path = Path(cfg.grpo.init) if cfg.grpo.init else Path(cfg.output_dir) / "sft" / "final"
    if not (path / "config.json").is_file() and not is_adapter_folder(path):
        raise ConfigError(f"GRPO starts from a trained model but {str(path)!r} holds none; run "
                          "`knowgen train sft` first or set grpo.init to a model folder.")
    return path


def prompt_source(cfg: TrainConfig) -> tuple[str, str]:
    """``(benchmark spec, split)`` of the GRPO prompts.

    With ``grpo.data`` the upstream RL prompts are converted into a KnowGen records file
    ``<output_dir>/grpo/rl_tasks.json`` (unusable items go to ``rl_data.rejected.jsonl``
    beside it) and served by the ``knowgen`` benchmark; otherwise the configured benchmark
    and ``grpo.split``.
    """
    g = cfg.grpo
    if not g.data:
        return cfg.data.benchmark, g.split
    from knowgen.agents.upstream_data import read_rl_file, write_rejected

    records, rejected = read_rl_file(g.data)
    folder = Path(cfg.output_dir) / "grpo"
    write_rejected(rejected, folder / "rl_data.rejected.jsonl", "RL prompts")
    tasks_file = folder / "rl_tasks.json"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(tasks_file, json.dumps(records, indent=1, ensure_ascii=False) + "\n")
    return f"knowgen:path={tasks_file.resolve()}", "test"


def env_config(cfg: TrainConfig, source: tuple[str, str] | None = None) -> EnvConfig:
    """Environment settings of the rollouts (``grpo.env_overrides`` applied).

    ``source`` is the ``(benchmark, split)`` of :func:`prompt_source`, read when not given.

    Raises:
        ConfigError: for an override that is not an environment setting.
    """
    from dataclasses import fields

    g = cfg.grpo
    benchmark, split = source or prompt_source(cfg)
    known = {f.name for f in fields(EnvConfig)}
    unknown = sorted(set(g.env_overrides) - known)
    if unknown:
        raise UnknownNameError("environment setting", unknown[0], sorted(known))
    settings = {"benchmark": benchmark, "split": split, "alpha": g.alpha, "top_k": g.top_k,
                "max_turns": g.max_turns, "max_tool_calls": g.max_tool_calls}
    return EnvConfig(**{**settings, **g.env_overrides})


def grpo_dataset(cfg: TrainConfig, task_ids: list[str],
                 requests: dict[str, str] | None = None, agent: bool = False) -> Any:
    """Rows ``{"prompt": [system, user ""], "task_id"}``; reset() supplies the request.

    With ``requests`` (task id to request, :func:`reworded_requests`) every row also
    carries ``"request"``, the words reset() hands the model instead of the task's own.
    With ``agent`` (agent rollouts) the user message itself holds the request (from
    ``requests``, else empty: the task's own) and its task id
    (:func:`~knowgen.agents.train.agent_rollouts.request_message`).
    """
    from datasets import Dataset

    if agent:
        from knowgen.agents.train.agent_rollouts import request_message

        system = {"role": "system", "content": cfg.system_prompt, "task_id": None}
        return Dataset.from_list([
            {"prompt": [system, request_message((requests or {}).get(t, ""), t)], "task_id": t}
            for t in task_ids])
    prompt = [{"role": "system", "content": cfg.system_prompt}, {"role": "user", "content": ""}]
    rows: list[dict[str, Any]] = [{"prompt": prompt, "task_id": t} for t in task_ids]
    if requests is not None:
        for row in rows:
            row["request"] = requests[row["task_id"]]
    return Dataset.from_list(rows)


def reworded_requests(cfg: TrainConfig, tasks: list[Any], split: str) -> dict[str, str] | None:
    """Each prompt task's request, said in the trainer's own words at rate ``grpo.reword``.

    The rewording (:class:`~knowgen.agents.reword.Rewriter`) rebuilds a world ``train``
    task's request by its family and keeps it only when it asks for the same subjects,
    clue, caption and case; a task it cannot rebuild keeps its own request. The task's
    facts, ground truth and judging do not change.

    Returns:
        Task id to request, or None when ``grpo.reword`` is 0.

    Raises:
        ConfigError: for a rate outside [0, 1], or prompts that are not the world's
            generated ``train`` tasks (upstream RL prompts, another benchmark or split).
    """
    import random

    g = cfg.grpo
    if not g.reword:
        return None
    from knowgen.agents.reword import Rewriter, check_rate

    check_rate(g.reword, "grpo.reword")
    if g.data or split != "train" or any(t.facts is None for t in tasks):
        raise ConfigError("grpo.reword rewords the world benchmark's own train tasks; set "
                          "grpo.split=train without grpo.data, or set grpo.reword to 0.")
    from knowgen.registry import BENCHMARKS

    bench = BENCHMARKS.create(cfg.data.benchmark)
    rewriter = Rewriter(getattr(bench, "world", None), getattr(bench, "seed", 0))
    rng = random.Random(g.reword_seed)
    out: dict[str, str] = {}
    for task in tasks:
        own = rewriter.tasks.get(task.id)
        # A task file may reuse a generated id for another request; keep such a task's own.
        new = rewriter.reword(task.id, g.reword, rng) if own and own.prompt == task.prompt else None
        out[task.id] = new or task.prompt
    changed = sum(out[t.id] != t.prompt for t in tasks)
    logger.info("GRPO prompts: %d of %d requests reworded (rate %.2f)", changed, len(tasks),
                g.reword)
    return out


def grpo_arguments(cfg: TrainConfig, out_dir: Path) -> Any:
    """TRL ``GRPOConfig`` for the run; the trainer built with it reports nothing to the hub
    (:func:`~knowgen.agents.train.hub.no_usage_report`).

    Raises:
        ConfigError: when the batch is not a multiple of the group size.
    """
    from trl import GRPOConfig

    no_usage_report()
    g = cfg.grpo
    if (g.batch_size * g.grad_accum) % g.num_generations:
        raise ConfigError(f"grpo.batch_size x grpo.grad_accum ({g.batch_size * g.grad_accum}) must "
                          f"be a multiple of grpo.num_generations ({g.num_generations}).")
    return GRPOConfig(
        output_dir=str(out_dir), num_generations=g.num_generations,
        per_device_train_batch_size=g.batch_size, gradient_accumulation_steps=g.grad_accum,
        learning_rate=g.learning_rate, beta=g.beta, epsilon=g.epsilon, epsilon_high=g.epsilon_high,
        temperature=g.temperature, top_p=g.top_p, num_train_epochs=g.epochs, max_steps=g.max_steps,
        max_completion_length=g.max_completion_length,
        max_tool_calling_iterations=max(1, g.max_turns - 1),
        mask_truncated_completions=g.mask_truncated_completions, logging_steps=g.logging_steps,
        save_steps=g.save_steps, save_total_limit=g.save_total_limit, seed=g.seed,
        report_to=["tensorboard"], bf16=use_bf16(cfg.precision), fp16=False,
        use_cpu=not _has_cuda(),
        disable_tqdm=False, dataloader_num_workers=0,
        gradient_checkpointing=g.gradient_checkpointing, **_vllm_arguments(g))


def _vllm_arguments(g: Any) -> dict[str, Any]:
    """GRPOConfig's vLLM fields, set only when vLLM is asked for."""
    if not g.use_vllm:
        return {}
    if g.vllm_mode not in ("server", "colocate"):
        raise ConfigError(f"grpo.vllm_mode must be 'server' or 'colocate', not {g.vllm_mode!r}.")
    out: dict[str, Any] = {"use_vllm": True, "vllm_mode": g.vllm_mode}
    if g.vllm_mode == "server" and g.vllm_server_base_url:
        out["vllm_server_base_url"] = g.vllm_server_base_url
    return out


def task_ids_of(cfg: TrainConfig, source: tuple[str, str] | None = None) -> list[str]:
    """Task ids of the GRPO prompts (those of :func:`prompt_tasks`)."""
    return [t.id for t in prompt_tasks(cfg, source)]


def prompt_tasks(cfg: TrainConfig, source: tuple[str, str] | None = None) -> list[Any]:
    """The tasks of the GRPO prompts.

    The tasks of :func:`prompt_source` that have an id, kept to ``grpo.templates`` when
    set, then the first ``grpo.limit`` of them.

    Raises:
        ConfigError: for a split with no tasks, or templates asked of tasks that have none.
        UnknownNameError: for a template no task of the split has.
    """
    from knowgen.registry import BENCHMARKS

    benchmark, split = source or prompt_source(cfg)
    tasks = list(BENCHMARKS.create(benchmark).tasks(split))
    if not tasks:
        raise ConfigError(f"Split {split!r} has no tasks; pick another grpo.split.")
    if cfg.grpo.templates:
        tasks = _of_templates(tasks, cfg.grpo.templates, split)
    tasks = [t for t in tasks if t.id]
    return tasks[: cfg.grpo.limit] if cfg.grpo.limit else tasks


def _of_templates(tasks: list[Any], templates: list[str] | str, split: str) -> list[Any]:
    """The tasks whose world template is one of ``templates`` (a list, or names joined by commas)."""
    templates = template_names(templates)

    def template(task: Any) -> str | None:
        return task.facts.template if task.facts is not None else None

    present = {template(t) for t in tasks} - {None}
    if not present:
        raise ConfigError(f"The tasks of split {split!r} carry no world template; unset "
                          "grpo.templates.")
    for name in templates:
        if name not in present:
            raise UnknownNameError(f"template of split {split!r}", name, present)
    wanted = set(templates)
    kept = [t for t in tasks if template(t) in wanted]
    logger.info("GRPO prompts: %d of the %d tasks of split %r (templates %s)", len(kept),
                len(tasks), split, ", ".join(sorted(wanted)))
    return kept


def build_grpo_trainer(cfg: TrainConfig, out_dir: Path | None = None,
                       backends: dict[str, Any] | None = None) -> Any:
    """A ready ``GRPOTrainer`` (model from :func:`grpo_init_dir`, environments from the world).

    ``backends``: ready environment backends (``benchmark``, judges...) for the agent
    rollouts' environment to share instead of building its own. ``grpo.rollouts`` picks
    TRL's tool loop or the agent's (:func:`rollout_kind`).
    """
    import warnings

    from trl import GRPOTrainer

    init = grpo_init_dir(cfg)
    out_dir = out_dir or Path(cfg.output_dir) / "grpo"
    tokenizer = load_tokenizer(init)
    model = load_trainable(init)
    source = prompt_source(cfg)
    tasks = prompt_tasks(cfg, source)
    requests = reworded_requests(cfg, tasks, source[1])
    ids = [t.id for t in tasks]
    with warnings.catch_warnings():
        # environment_factory and rollout_func are experimental in TRL 1.16; the version is
        # pinned for that reason.
        warnings.filterwarnings("ignore", message=".*'(environment_factory|rollout_func)'.*")
        if rollout_kind(cfg) == "agent":
            from knowgen.agents.train.agent_rollouts import AgentRollouts, episode_reward

            g = cfg.grpo
            rollouts = AgentRollouts(init, env_config(cfg, source), temperature=g.temperature,
                                     top_p=g.top_p, seed=g.seed, backends=backends)
            return GRPOTrainer(
                model=model, processing_class=tokenizer, reward_funcs=[episode_reward],
                train_dataset=grpo_dataset(cfg, ids, requests, agent=True),
                args=grpo_arguments(cfg, out_dir), rollout_func=rollouts)
        return GRPOTrainer(
            model=model, processing_class=tokenizer, reward_funcs=[searchgen_reward],
            train_dataset=grpo_dataset(cfg, ids, requests),
            args=grpo_arguments(cfg, out_dir),
            environment_factory=make_env_factory(env_config(cfg, source), view=cfg.view))


def rollout_kind(cfg: TrainConfig) -> str:
    """``grpo.rollouts``, checked: ``"tools"`` or ``"agent"``.

    Raises:
        UnknownNameError: for another value.
    """
    kind = str(cfg.grpo.rollouts)
    if kind not in ROLLOUT_KINDS:
        raise UnknownNameError("grpo.rollouts", kind, ROLLOUT_KINDS)
    return kind


def run_grpo(cfg: TrainConfig) -> Path:
    """Train (or continue) the GRPO stage and return the final checkpoint folder.

    Raises:
        ConfigError: for a missing start model, a bad batch size, or resuming without a checkpoint.
    """
    from knowgen.agents.train.progress import use_stage_progress

    out_dir = Path(cfg.output_dir) / "grpo"
    trainer = keep_schedule_on_resume(use_stage_progress(build_grpo_trainer(cfg, out_dir), "GRPO"))
    resume = None
    if cfg.grpo.resume:
        resume = last_checkpoint(out_dir)
        if resume is None:
            raise ConfigError(f"grpo.resume is set but {out_dir} holds no checkpoint; unset it.")
    init = grpo_init_dir(cfg)
    base = adapter_base(init) if is_adapter_folder(init) else None
    with_agent_file(trainer, cfg.system_prompt, cfg.generation, cfg.view, base=base)
    trainer.train(resume_from_checkpoint=resume)
    return save_agent(trainer.model, trainer.processing_class, out_dir / "final",
                      cfg.system_prompt, cfg.generation, cfg.view, base=base)

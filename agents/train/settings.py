"""The settings of each part of a training run: tokenizer, model, LoRA, SFT, GRPO, decoding.

Each is a dataclass with a docstring per field; :class:`~knowgen.agents.train.config.TrainConfig`
holds one of each (and the expert data settings), and a preset's YAML sections fill them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from knowgen.errors import ConfigError, MissingDependencyError


@dataclass
class TokenizerSettings:
    """How the tokenizer is obtained."""

    path: str | None = None
    """Folder of a saved tokenizer; when unset one is trained on the SFT data."""

    vocab_size: int = 4096
    """Vocabulary size of a newly trained byte-level BPE tokenizer."""

    min_frequency: int = 2
    """Least count for a BPE merge."""

    protocol_phrases: bool = True
    """Keep the JSON skeleton of tool calls and answers as single tokens
    (``knowgen.agents.tiny.PROTOCOL_PHRASES``)."""

    world_pages: bool = False
    """Also learn merges from the offline world's page texts (the agent's search
    corpus, every split's entities included), so the names it reads in results
    and must copy take few tokens. Only the vocabulary sees the pages; the model
    learns nothing about an entity from it."""


@dataclass
class ModelSettings:
    """Shape of a model built from scratch (ignored when ``sft.init`` names a model)."""

    hidden: int = 192
    """Width of the residual stream."""

    layers: int = 4
    """Transformer blocks."""

    heads: int = 4
    """Attention heads."""

    kv_heads: int | None = None
    """Key/value heads (grouped-query attention); equal to ``heads`` when unset."""

    intermediate: int | None = None
    """MLP width; about 8/3 of ``hidden`` when unset."""

    max_positions: int = 4096
    """Longest sequence the model is set up for."""

    seed: int = 0
    """Seed of the weight initialisation."""


@dataclass
class LoraSettings:
    """Low-rank adapters (peft) instead of training every weight of a pretrained model."""

    r: int = 0
    """Rank of the adapters; 0 trains every weight (full fine-tuning)."""

    alpha: int = 32
    """Scale of the adapters' update (``lora_alpha``; the update is scaled by alpha / r)."""

    dropout: float = 0.05
    """Dropout on the adapters' input during training."""

    target_modules: str = "all-linear"
    """Layers that get an adapter: ``all-linear`` (every linear layer but the output head) or
    a comma-separated list of module names (``q_proj,v_proj``)."""

    def peft_config(self) -> Any:
        """The peft ``LoraConfig`` of these settings, or None when ``r`` is 0.

        Raises:
            ConfigError: for a negative rank.
            MissingDependencyError: when peft is not installed.
        """
        if self.r < 0:
            raise ConfigError(f"lora.r must be 0 (off) or a positive rank, got {self.r}.")
        if self.r == 0:
            return None
        try:
            from peft import LoraConfig
        except ImportError as exc:
            raise MissingDependencyError("peft", "train", "LoRA training") from exc
        targets = self.target_modules.strip()
        modules: str | list[str] = targets if targets == "all-linear" else \
            [m.strip() for m in targets.split(",") if m.strip()]
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=modules, task_type="CAUSAL_LM")


@dataclass
class SFTSettings:
    """Supervised fine-tuning on expert transcripts (TRL ``SFTTrainer``)."""

    data: str | None = None
    """File of SFT records: knowgen's chat records (JSONL, as ``knowgen train data`` writes)
    or upstream Gen-Searcher's ``sft_data.json`` (LLaMA-Factory sharegpt transcripts,
    converted by :mod:`knowgen.agents.upstream_data`; items that cannot be used go to
    ``<output_dir>/sft_data.rejected.jsonl``). Generated into ``<output_dir>/sft_data.jsonl``
    when unset."""

    init: str | None = None
    """Pretrained model to start from: a preset (``smollm2-135m``), a ``.gguf`` file, a model
    folder or a hub id (:mod:`knowgen.agents.base_models`); its tokenizer and chat template
    come with it. A tiny model is built from ``model`` when unset. The folder of a LoRA
    agent an earlier SFT run saved (``<output_dir>/sft/final``) continues that run as a
    second stage: its adapter trains on over the base it names, with its tokenizer."""

    max_records: int | None = None
    """Train on at most this many records, taken at an even stride through the data file
    (which the expert writes task by task, family by family), so that a short run still
    sees every kind of task. All records when unset."""

    stride_offset: int = 0
    """Start that even stride this many records in. A second stage (``init`` = the first
    stage's adapter) with offset 1 trains on records the first stage did not see, as long
    as the stride is at least 2 (``max_records`` at most half the records)."""

    exclude_stride: int | None = None
    """Leave out the records a ``max_records`` of this many took (stride offset 0) before
    anything else: a second stage (``init`` = the first stage's adapter) trains only on
    transcripts the first did not see. Unset keeps them all."""

    exclude_per_template: int | None = None
    """Leave out the records a ``per_template`` of this many took from the whole data,
    beside ``exclude_stride`` and before anything else: the second stage of a first stage
    that weighed every family alike trains only on transcripts that stage did not see.
    Unset keeps them all."""

    templates: list[str] | None = None
    """Keep only the records of these world templates (task families such as
    ``capital_of_city`` or ``two_flags``, the part of a world task id before its first
    ``-``), after ``exclude_stride`` and before everything else: a stage spent on the
    families the earlier adapter still fails. ``--set sft.templates=a,b`` names several;
    an unknown name is refused with the data's templates listed. All when unset."""

    per_template: int | None = None
    """Keep at most this many records of each world template (task family), taken at an
    even stride within it, after ``sft.templates`` and before everything else: the expert's
    data follows the sizes of the families' candidate pools (a family of rare facts, such as
    countries with exactly one land neighbour, has a tenth of another's records), and a
    stage with a cap weighs every family alike. Records with no world task id are refused.
    All when unset."""

    singles_per_several: float | None = None
    """Keep every record whose answer cites several pictures and this many single-picture
    records for each (at an even stride), before ``max_records``: a stage that weighs the
    several-picture decision without forgetting the single ones. Unset keeps all."""

    several_copies: int = 1
    """Times each record whose answer cites more than one picture is trained on, counted
    after ``max_records`` took its stride (1: once, like every other record). Requests for
    two or three pictures are a small share of the data, and the model decides in its first
    call whether it looks up one subject or all of them; more copies weigh that decision."""

    reword: float = 0.0
    """Chance that each phrasing slot of a record's request takes one of the trainer's own
    wordings instead of the world's (:mod:`knowgen.agents.reword`): the request is rebuilt
    from the same task in other words, asking for the same subjects and caption, so that
    the model learns to read requests rather than the train split's phrasings. Needs
    records of the ``guided`` or ``oracle`` expert; 0 keeps the requests as they are."""

    reword_seed: int = 0
    """Seed of the rewording."""

    replay: str | None = None
    """JSONL of records trained on beside the selected ones, as they are: the agent's own
    well-paid episodes (``knowgen train data --from-run``), so that a stage that learns
    new families keeps doing what the agent already did right. The selections above,
    ``sft.reword`` and ``sft.several_copies`` leave them alone; the context view applies.
    None when unset."""

    lora: LoraSettings = field(default_factory=LoraSettings)
    """LoRA adapters (``sft.lora.r`` > 0) instead of full fine-tuning; the checkpoint then
    holds the adapter, loaded over the base model ``init`` and merged for inference."""

    epochs: float = 3.0
    """Passes over the data with the assistant-only loss."""

    augment_copies: int = 0
    """Pseudo-named copies of each record added to the data (:mod:`knowgen.agents.augment`):
    the task's entity names, capitals and clue values replaced by invented names, so that
    the loss falls only by copying names from the context. 0 trains on the records as they are."""

    augment_seed: int = 0
    """Seed of the invented names."""

    augment_names: str = "syllables"
    """How invented names are made: ``syllables`` (random syllables; the tokenizer is
    trained on the augmented data) or ``pieces`` (the tokenizer's own word pieces; the
    tokenizer is trained first, on the records as they are), which makes every piece a
    name can be made of a target somewhere in the data."""

    copy_steps: int = 0
    """Optimiser steps of copy pre-training before SFT (:mod:`knowgen.agents.copy_pretrain`):
    synthetic sequences whose random token spans recur, on which only copying lowers the loss.
    A model built from scratch forms the attention circuit that copies names from its context
    there in about a thousand short steps, far sooner than from agent transcripts. 0 skips it;
    ignored with ``init`` (a pretrained model copies already)."""

    copy_length: int = 48
    """Tokens per copy pre-training sequence."""

    copy_batch_size: int = 32
    """Sequences per copy pre-training step."""

    copy_learning_rate: float = 2e-3
    """Peak learning rate of copy pre-training."""

    lm_warmup_epochs: float = 0.0
    """Passes over the same transcripts first with the loss on every token (requests and
    tool results included). A model trained from scratch learns to read and copy from its
    context far sooner this way; then the assistant-only stage teaches the agent's turns."""

    max_steps: int = -1
    """Stop after this many optimiser steps (-1: run all epochs)."""

    learning_rate: float = 1e-3
    """Peak learning rate (1e-3 suits a model trained from scratch; 1e-5 a pretrained one)."""

    lr_scheduler: str = "cosine"
    """Learning-rate schedule (a transformers scheduler name)."""

    warmup_ratio: float = 0.03
    """Fraction of the steps spent warming the learning rate up."""

    weight_decay: float = 0.01
    """AdamW weight decay."""

    batch_size: int = 8
    """Sequences per device per step."""

    grad_accum: int = 1
    """Steps whose gradients are accumulated before an update."""

    max_length: int = 2048
    """Longest tokenized transcript; longer records are dropped, never cut."""

    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass instead of keeping them: far less
    memory for about a third more compute. Turn it off for short sequences on a machine
    with memory to spare."""

    logging_steps: int = 10
    """Log (console and TensorBoard) every N steps."""

    save_steps: int = 200
    """Write a resumable checkpoint every N steps."""

    save_total_limit: int = 2
    """Checkpoints kept on disk."""

    resume: bool = False
    """Continue from the last checkpoint in the output folder."""

    seed: int = 0
    """Seed of data order and dropout."""


@dataclass
class GRPOSettings:
    """Reinforcement learning with the environment's dual reward (TRL ``GRPOTrainer``)."""

    init: str | None = None
    """Model folder to start from; the SFT result in ``<output_dir>/sft/final`` when unset."""

    split: str = "train"
    """World split whose tasks are the prompts."""

    data: str | None = None
    """JSON file of RL prompts in upstream Gen-Searcher's ``rl_data.json`` form (``{"id",
    "prompt", "gt_image"}`` items, :mod:`knowgen.agents.upstream_data`); they become the
    tasks instead of ``split``. Such tasks carry no world facts, so the environment needs
    judges that compare against the ground-truth image (``env_overrides``)."""

    env_overrides: dict[str, Any] = field(default_factory=dict)
    """Further :class:`~knowgen.config.EnvConfig` fields of the rollouts' environment, e.g.
    ``{"image_judge": "openai", "text_judge": "openai", "generator": "diffusers"}``."""

    limit: int | None = None
    """Use only the first N tasks of the split (after ``templates``)."""

    templates: list[str] | None = None
    """Keep only tasks of these world templates (task families such as
    ``capital_of_city`` or ``two_flags``), to spend the rollouts where the starting model
    still fails; all templates when unset. ``--set grpo.templates=a,b`` names several.
    An unknown name is refused with the split's templates listed."""

    reword: float = 0.0
    """Chance per grammar slot that a prompt's request is said in one of the trainer's own
    wordings (:mod:`knowgen.agents.reword`, as ``sft.reword``) instead of the world's: the
    rollouts then read requests in words SFT never showed, while the task, its facts and
    its judging stay the same. Only the world's ``train`` tasks can be reworded; 0 keeps
    the world's requests."""

    reword_seed: int = 0
    """Seed of the rewording."""

    alpha: float = 0.5
    """Text reward weight: 0 pays the image judge only, 1 the text judge only."""

    rollouts: str = "tools"
    """Who plays the episodes. ``tools``: TRL's own tool loop samples each turn from the
    bare model. ``agent``: the bundled agent plays them on the model being trained, with
    the start checkpoint's decoding rules (grammar, ``cite_pictures``, ``finish_count``,
    ``fresh_calls``, retries) at ``temperature``, so the rollouts are the episodes the
    shipped agent could play (:mod:`knowgen.agents.train.agent_rollouts`)."""

    num_generations: int = 6
    """Group size: rollouts per prompt."""

    batch_size: int = 6
    """Rollouts per device per step (a multiple of ``num_generations`` across devices)."""

    grad_accum: int = 1
    """Steps whose gradients are accumulated before an update."""

    learning_rate: float = 1e-6
    """Learning rate."""

    beta: float = 0.001
    """KL penalty weight against the reference model (0 drops the reference model)."""

    epsilon: float = 0.2
    """Lower clip ratio."""

    epsilon_high: float = 0.28
    """Upper clip ratio."""

    temperature: float = 0.7
    """Sampling temperature of rollouts."""

    top_p: float = 0.95
    """Nucleus sampling of rollouts."""

    epochs: float = 5.0
    """Passes over the prompts."""

    max_steps: int = -1
    """Stop after this many steps (-1: run all epochs)."""

    max_completion_length: int = 1536
    """Token budget of a whole episode after the prompt (tool results included)."""

    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass instead of keeping them: far less
    memory for about a third more compute. Turn it off for short sequences on a machine
    with memory to spare."""

    max_tool_calls: int = 8
    """Tool calls per episode (the environment's budget)."""

    max_turns: int = 10
    """Model calls per episode, the forced final answer included."""

    top_k: int = 3
    """Results per search in the environment (as in the SFT data)."""

    mask_truncated_completions: bool = True
    """Leave episodes cut at ``max_completion_length`` out of the loss."""

    use_vllm: bool = False
    """Generate rollouts with vLLM (GPU only; ``pip install vllm``)."""

    vllm_mode: str = "server"
    """``server``: a separate ``trl vllm-serve`` process; ``colocate``: inside the trainer."""

    vllm_server_base_url: str | None = None
    """Address of the ``trl vllm-serve`` server (server mode), e.g. ``http://10.0.0.2:8000``."""

    logging_steps: int = 1
    """Log every N steps."""

    save_steps: int = 50
    """Write a resumable checkpoint every N steps."""

    save_total_limit: int = 2
    """Checkpoints kept on disk."""

    resume: bool = False
    """Continue from the last checkpoint in the output folder."""

    seed: int = 0
    """Seed of sampling and data order."""


@dataclass
class GenerationSettings:
    """Decoding defaults saved with the checkpoint for inference."""

    max_new_tokens: int = 256
    """Most tokens per assistant turn."""

    temperature: float = 0.6
    """Sampling temperature (0 with ``do_sample`` false decodes greedily)."""

    top_p: float = 0.9
    """Nucleus sampling."""

    do_sample: bool = False
    """Sample (true) or decode greedily (false)."""

    format_retries: int = 0
    """Sampled replies the agent asks for when a reply breaks the protocol (no parsable
    tool call or answer) before handing it over (``GenSearcherAgent(format_retries=)``)."""

    grammar: bool = False
    """Constrained decoding: the model may only write tokens that keep its turn a
    well-formed tool call or answer (:mod:`knowgen.agents.grammar`)."""

    cite_pictures: bool = False
    """With ``grammar``: an answer must cite a picture a tool result showed, and a turn
    before any was shown must call a tool (unless the environment has closed the tools;
    :func:`knowgen.agents.turn_rules.reply_rules`)."""

    finish_count: bool = False
    """With ``cite_pictures``: once the model has numbered the picture it looks for
    ("flag 1 of 2:"), it may not answer before it has looked for all it counted, and the
    answer cites as many (unless the environment has closed the tools)."""

    fresh_calls: bool = False
    """With ``grammar``: a reply that would make a tool call a third time word for word
    (case and spacing aside) is decoded again with that tool closed for the turn
    (:func:`knowgen.agents.turn_rules.reply_rules`)."""

    resample_repeats: bool = False
    """Resample (up to ``format_retries`` times) a tool call that repeats an earlier call
    of the episode word for word (``GenSearcherAgent(resample_repeats=)``)."""

    drop_invalid_turns: bool = False
    """Leave turns that broke the protocol, and the errors they drew, out of the
    context the model sees next (``GenSearcherAgent(drop_invalid_turns=)``)."""

"""A tiny Qwen3 agent built from scratch: a byte-level BPE tokenizer and a small model.

Nothing is downloaded: the tokenizer is trained with ``tokenizers`` on local text
and the model is a :class:`transformers.Qwen3ForCausalLM` built from a config.
The chat template is the Qwen3 template shipped inside the installed ``trl``
package, read at run time, so that TRL recognises it for tool calling and swaps
in its training variant for assistant-only losses.

Example:
    >>> tok = train_tokenizer(["hello world"] * 10, vocab_size=300)
    >>> model = build_tiny_model(tok, hidden=64, layers=2, heads=2)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from knowgen.errors import ConfigError, MissingDependencyError

logger = logging.getLogger(__name__)

BOS_TOKEN = "<|endoftext|>"
"""Padding / end-of-text token (Qwen3 uses it as the pad token)."""
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
"""End of a chat message; the tokenizer's end-of-sequence token."""
SPECIAL_TOKENS: tuple[str, ...] = (BOS_TOKEN, IM_START, IM_END)
"""Control tokens, skipped when decoding with ``skip_special_tokens``."""
MARKUP_TOKENS: tuple[str, ...] = (
    "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
    "<think>", "</think>", "<answer>", "</answer>",
)
"""Protocol tags kept as single tokens that decoding keeps (as Qwen3 does)."""
PROTOCOL_PHRASES: tuple[str, ...] = (
    '{"name": "search", "arguments": {"queries": ["',
    '{"name": "image_search", "arguments": {"query": "',
    '{"name": "browse", "arguments": {"url": "',
    '{"name": "fetch_image", "arguments": {"url": "',
    '", "query": "', '"]}}', '"}}',
    '{"gen_prompt": "', '", "reference_images": [{"img_id": "',
    '", "note": "', '"}, {"img_id": "', '"}]}',
)
"""JSON skeleton of tool calls and answers, as the chat template renders them.

Each phrase is one token, so a small model spends its capacity on the values it
has to fill in (queries, names, image ids) rather than on spelling the protocol.
"""
TEMPLATE_NAME = "qwen3.jinja"
"""File name of the chat template inside ``trl/chat_templates``."""


def _require_train_extra() -> None:
    try:
        import tokenizers  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "transformers", "train", "Training") from exc


def qwen3_chat_template() -> str:
    """The Qwen3 chat template text shipped inside the installed ``trl`` package.

    Raises:
        MissingDependencyError: when ``trl`` is not installed.
        ConfigError: when the installed ``trl`` has no such template file.
    """
    _require_train_extra()
    import trl

    path = Path(trl.__file__).parent / "chat_templates" / TEMPLATE_NAME
    if not path.is_file():
        raise ConfigError(f"The installed trl {trl.__version__} has no {path}; install trl 1.16.*.")
    return path.read_text(encoding="utf-8")


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096,
                    min_frequency: int = 2, phrases: Sequence[str] = ()) -> Any:
    """Train a byte-level BPE tokenizer carrying the Qwen3 chat tokens and template.

    Args:
        texts: Training text (e.g. rendered chat transcripts of the SFT data).
        vocab_size: Vocabulary size, special and markup tokens included.
        min_frequency: Least count for a merge to be learnt.
        phrases: Multi-character strings kept as single (decodable) tokens, such
            as :data:`PROTOCOL_PHRASES`.

    Returns:
        A ``transformers.PreTrainedTokenizerFast`` with ``eos_token="<|im_end|>"``,
        ``pad_token="<|endoftext|>"`` and the Qwen3 chat template.

    Raises:
        ConfigError: for a vocabulary too small to hold the byte alphabet.
    """
    _require_train_extra()
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    kept = list(MARKUP_TOKENS) + [p for p in phrases if p not in MARKUP_TOKENS]
    reserved = len(SPECIAL_TOKENS) + len(kept)
    if vocab_size < 256 + reserved + 16:
        raise ConfigError(f"vocab_size {vocab_size} is too small; use at least {256 + reserved + 16}.")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
        special_tokens=list(SPECIAL_TOKENS) + kept,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_strip_reserved(texts, SPECIAL_TOKENS + tuple(kept)), trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in kept])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=BOS_TOKEN, unk_token=None,
        model_max_length=32768, clean_up_tokenization_spaces=False)
    fast.chat_template = qwen3_chat_template()
    logger.info("Trained a byte-level BPE tokenizer with %d tokens", len(fast))
    return fast


def _strip_reserved(texts: Iterable[str], reserved: Sequence[str]) -> Iterable[str]:
    """Texts with the reserved tokens removed, so merges never swallow them."""
    ordered = sorted(reserved, key=len, reverse=True)
    for text in texts:
        for token in ordered:
            text = text.replace(token, " ")
        yield text


def load_tokenizer(path: str | Path) -> Any:
    """Load a tokenizer saved by :func:`train_tokenizer` (as ``PreTrainedTokenizerFast``)."""
    _require_train_extra()
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(path))


def build_tiny_model(tokenizer: Any, hidden: int = 192, layers: int = 4, heads: int = 4,
                     kv_heads: int | None = None, intermediate: int | None = None,
                     max_positions: int = 4096, seed: int = 0) -> Any:
    """A randomly initialised ``Qwen3ForCausalLM`` sized for CPU training.

    Four layers of four heads give the model the induction heads it needs to copy
    entity names from tool results into its next query and its answer.

    Args:
        tokenizer: The tokenizer (its size, pad, eos and bos ids go in the config).
        hidden: Width of the residual stream.
        layers: Transformer blocks.
        heads: Attention heads (``hidden`` must divide evenly).
        kv_heads: Key/value heads (grouped-query attention); ``heads`` when None.
        intermediate: MLP width; ``8/3 * hidden`` rounded to 32 when None.
        max_positions: Longest sequence the rotary embedding is set up for.
        seed: Seed of the weight initialisation.

    Raises:
        ConfigError: when ``hidden`` is not divisible by ``heads`` or ``heads`` by ``kv_heads``.
    """
    _require_train_extra()
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    kv_heads = kv_heads or heads
    if hidden % heads or heads % kv_heads:
        raise ConfigError(f"hidden ({hidden}) must divide by heads ({heads}) and heads by "
                          f"kv_heads ({kv_heads}).")
    intermediate = intermediate or max(32, round(hidden * 8 / 3 / 32) * 32)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        head_dim=hidden // heads, max_position_embeddings=max_positions, tie_word_embeddings=True,
        rope_theta=10000.0, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.pad_token_id,
        use_cache=True)
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    logger.info("Built a Qwen3 model with %.2fM parameters", count_parameters(model) / 1e6)
    return model


def count_parameters(model: Any) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    seen = {id(p): p.numel() for p in model.parameters()}
    return sum(seen.values())

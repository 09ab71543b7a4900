"""Tiny diffusers pipelines with random weights, built from configs (no download).

``build_tiny_sd(folder)`` saves a StableDiffusion pipeline of about 20 MB that
draws a 256 px image in a fraction of a second on a CPU: a UNet with channels
(32, 64), an f8 VAE, a two-layer CLIP text encoder and a byte-level CLIP
tokenizer whose vocabulary is made here. ``build_tiny_ip_adapter(folder)``
saves random IP-Adapter weights for that UNet plus a tiny CLIP image encoder in
the folder layout ``load_ip_adapter`` expects.
"""

from __future__ import annotations

from pathlib import Path

CROSS_DIM = 32
IMAGE_EMBED_DIM = 32


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0..255."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
            *range(ord("\u00ae"), ord("\u00ff") + 1)]
    codes, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def build_tokenizer():
    """A CLIP tokenizer over single bytes plus a few merges, padded to 77 tokens."""
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    vocab: dict[str, int] = {}
    for s in symbols + [s + "</w>" for s in symbols]:
        vocab[s] = len(vocab)
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("an", "d</w>"), ("o", "f</w>")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def build_tiny_sd(folder: str | Path, seed: int = 0, edit: bool = False) -> Path:
    """Save a tiny random StableDiffusion pipeline into ``folder``.

    Args:
        folder: Where to save it.
        seed: Seed of the random weights.
        edit: Save an InstructPix2Pix pipeline (one input image, no ``strength``)
            instead of text-to-image.
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionInstructPix2PixPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32,
        in_channels=8 if edit else 4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=CROSS_DIM,
        attention_head_dim=8, norm_num_groups=16)
    vae = AutoencoderKL(
        block_out_channels=(16, 16, 32, 32), in_channels=3, out_channels=3, latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=16, sample_size=256)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=CROSS_DIM, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    cls = StableDiffusionInstructPix2PixPipeline if edit else StableDiffusionPipeline
    pipe = cls(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, image_encoder=None,
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    folder = Path(folder)
    pipe.save_pretrained(folder)
    return folder


def build_tiny_ip_adapter(folder: str | Path, unet_folder: str | Path, seed: int = 0) -> Path:
    """Save random IP-Adapter weights for the tiny UNet, with a tiny CLIP image encoder.

    Returns the weight file; the encoder lies in ``image_encoder/`` beside it.
    """
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=8, projection_dim=IMAGE_EMBED_DIM))
    encoder.save_pretrained(folder / "image_encoder")
    unet = UNet2DConditionModel.from_pretrained(unet_folder, subfolder="unet")
    tensors = {
        "image_proj.proj.weight": torch.randn(CROSS_DIM * 4, IMAGE_EMBED_DIM) * 0.05,
        "image_proj.proj.bias": torch.zeros(CROSS_DIM * 4),
        "image_proj.norm.weight": torch.ones(CROSS_DIM),
        "image_proj.norm.bias": torch.zeros(CROSS_DIM),
    }
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        tensors[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(_hidden(unet, name), CROSS_DIM) * 0.05
        tensors[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(_hidden(unet, name), CROSS_DIM) * 0.05
        key += 2
    path = folder / "ip-adapter_tiny.safetensors"
    save_file(tensors, str(path))
    return path


def _hidden(unet, name: str) -> int:
    channels = list(unet.config.block_out_channels)
    if name.startswith("mid_block"):
        return channels[-1]
    block = int(name.split(".")[1])
    return list(reversed(channels))[block] if name.startswith("up_blocks") else channels[block]

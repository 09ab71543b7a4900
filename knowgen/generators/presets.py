"""Named settings of the ``diffusers`` generator for well-known pipelines.

A preset fills the settings a user leaves unset; an explicit argument always
wins. The Qwen presets follow the settings published with Gen-Searcher's
generation step: 40 denoising steps, true classifier-free guidance 4.0 (which
Qwen pipelines switch on only when a negative prompt is given, so the preset
gives a blank one), seed 0 for every image, and at most the first three
reference images.

Example:
    >>> get_preset("qwen-image-edit").steps
    40
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from knowgen.errors import UnknownNameError


@dataclass(frozen=True)
class Preset:
    """Generation settings for one family of pipelines; ``None`` leaves the pipeline default."""

    description: str
    """One line saying what the preset is for."""
    steps: int | None = None
    """Denoising steps (``num_inference_steps``)."""
    guidance: float | None = None
    """``guidance_scale`` (distilled guidance for Qwen/FLUX, classic CFG for Stable Diffusion)."""
    true_cfg: float | None = None
    """``true_cfg_scale`` of pipelines that run a real negative branch (Qwen-Image)."""
    negative_prompt: str | None = None
    """Negative prompt sent with every image."""
    seed: int | None = None
    """When set, every image uses this seed whatever the caller asks."""
    max_references: int | None = None
    """Use at most this many reference images (the first ones)."""
    size: int | tuple[int, int] | None = None
    """Output size: a side in pixels or ``(width, height)``."""

    def settings(self) -> dict[str, Any]:
        """The preset's non-``None`` settings, description left out."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "description" and getattr(self, f.name) is not None}


PRESETS: dict[str, Preset] = {
    "qwen-image": Preset(
        description="Qwen-Image text-to-image, 40 steps, true CFG 4.0, seed 0",
        steps=40, true_cfg=4.0, negative_prompt=" ", seed=0, max_references=3),
    "qwen-image-edit": Preset(
        description="Qwen-Image-Edit-2509 (Plus) with up to 3 references, 40 steps, "
                    "true CFG 4.0, seed 0",
        steps=40, true_cfg=4.0, guidance=1.0, negative_prompt=" ", seed=0, max_references=3),
    "flux-kontext": Preset(
        description="FLUX.1 Kontext single-image editing, 28 steps, guidance 2.5",
        steps=28, guidance=2.5, max_references=3),
    "sd-fast": Preset(
        description="Stable Diffusion style pipelines, quick drafts: 20 steps, guidance 7.5",
        steps=20, guidance=7.5),
}


def get_preset(name: str) -> Preset:
    """Return the preset called ``name``.

    Raises:
        UnknownNameError: with the available names.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownNameError("diffusers preset", name, PRESETS) from None

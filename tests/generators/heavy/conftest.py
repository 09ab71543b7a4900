"""Fixtures of the heavy generator tests: tiny diffusers pipelines, reference images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

WORLD_IMAGES = Path(__file__).resolve().parents[3] / "knowgen" / "world" / "data" / "images"


def _need(*modules: str) -> None:
    for name in modules:
        pytest.importorskip(name, reason=f"needs {name} (pip install 'knowgen[diffusers,serve]')")


@pytest.fixture(scope="session")
def flags(tmp_path_factory) -> list[Path]:
    """Three real flag images of the shipped world, copied to a temporary folder."""
    folder = tmp_path_factory.mktemp("flags")
    out = []
    for code in ("fr", "jp", "br"):
        target = folder / f"flag-{code}.png"
        shutil.copyfile(WORLD_IMAGES / f"flag-{code}.png", target)
        out.append(target)
    return out


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    """A tiny random text-to-image StableDiffusion pipeline folder (built once)."""
    _need("torch", "diffusers", "transformers")
    import torch
    from tiny_pipeline import build_tiny_sd

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: extra threads only fight over shared cores
    yield build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_edit(tmp_path_factory) -> Path:
    """A tiny random InstructPix2Pix pipeline folder (one input image, no strength)."""
    _need("torch", "diffusers", "transformers")
    from tiny_pipeline import build_tiny_sd

    return build_tiny_sd(tmp_path_factory.mktemp("tiny-edit"), edit=True)


@pytest.fixture(scope="session")
def tiny_ip_adapter(tmp_path_factory, tiny_sd) -> Path:
    """Random IP-Adapter weights for the tiny UNet, with a tiny CLIP image encoder."""
    from tiny_pipeline import build_tiny_ip_adapter

    return build_tiny_ip_adapter(tmp_path_factory.mktemp("tiny-ipa"), tiny_sd)


@pytest.fixture(scope="session")
def tiny_gen(tiny_sd):
    """A DiffusersGenerator on the tiny pipeline: 2 steps, 64 px (shared, read-only)."""
    from knowgen.generators.diffusers_gen import DiffusersGenerator

    return DiffusersGenerator(tiny_sd, steps=2, size=64)

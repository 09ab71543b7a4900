"""DiffusersGenerator on tiny pipelines built from configs: text, img2img, edit, IP-Adapter."""

from __future__ import annotations

import inspect
import json
import sys

import numpy as np
import pytest
from PIL import Image

from knowgen.errors import ConfigError, MissingDependencyError, ToolError, UnknownNameError
from knowgen.generators.diffusers_gen import (
    DiffusersGenerator,
    choose_reference_mode,
    montage,
    parse_size,
)
from knowgen.generators.presets import PRESETS

diffusers = pytest.importorskip("diffusers")


def _px(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_text_to_image_is_seeded(tiny_gen):
    a = tiny_gen.generate("a flag on a pole", [], seed=3)
    b = tiny_gen.generate("a flag on a pole", [], seed=3)
    c = tiny_gen.generate("a flag on a pole", [], seed=4)
    assert a.mode == "RGB" and a.size == (64, 64)
    assert np.array_equal(_px(a), _px(b))
    assert np.abs(_px(a) - _px(c)).mean() > 1.0


def test_text_to_image_pipeline_gets_an_img2img_sibling(tiny_gen, flags):
    assert type(tiny_gen.pipe).__name__ == "StableDiffusionPipeline"
    assert tiny_gen.reference_mode == "img2img"
    plain = tiny_gen.generate("the first reference image", [], seed=0)
    france = tiny_gen.generate("the first reference image", flags[:1], seed=0)
    japan = tiny_gen.generate("the first reference image", flags[1:2], seed=0)
    assert france.size == (64, 64)
    assert np.abs(_px(france) - _px(plain)).mean() > 1.0
    assert np.abs(_px(france) - _px(japan)).mean() > 1.0
    # the image starts from the reference, so it stays closer to it than to another flag
    ref_fr = _px(montage([Image.open(flags[0])], (64, 64)))
    ref_jp = _px(montage([Image.open(flags[1])], (64, 64)))
    assert np.abs(_px(france) - ref_fr).mean() < np.abs(_px(france) - ref_jp).mean()


def test_only_the_first_max_references_are_used(tiny_sd, flags):
    gen = DiffusersGenerator(tiny_sd, steps=2, size=64, max_references=1)
    one = gen.generate("x", flags[:1], seed=0)
    three = gen.generate("x", flags, seed=0)
    assert np.array_equal(_px(one), _px(three))


def test_single_image_edit_pipeline_takes_the_montage(tiny_edit, flags):
    gen = DiffusersGenerator(tiny_edit, steps=2, size=64)
    assert type(gen.pipe).__name__ == "StableDiffusionInstructPix2PixPipeline"
    assert gen.reference_mode == "single"
    a = gen.generate("make it wave", flags[:2], seed=1)
    b = gen.generate("make it wave", flags[1:3], seed=1)
    assert a.size == (64, 64)
    assert np.abs(_px(a) - _px(b)).mean() > 0.5


def test_ip_adapter_takes_every_reference(tiny_sd, tiny_ip_adapter, flags):
    gen = DiffusersGenerator(tiny_sd, steps=2, size=64, ip_adapter=tiny_ip_adapter,
                             ip_adapter_scale=1.0)
    assert gen.reference_mode == "ip_adapter"
    plain = gen.generate("a flag", [], seed=2)
    one = gen.generate("a flag", flags[:1], seed=2)
    two = gen.generate("a flag", flags[:2], seed=2)
    assert one.size == (64, 64)
    assert not np.array_equal(_px(plain), _px(one))
    assert not np.array_equal(_px(one), _px(two))
    # a folder holding the one weight file works as well
    again = DiffusersGenerator(tiny_sd, steps=2, size=64, ip_adapter=tiny_ip_adapter.parent,
                               ip_adapter_scale=1.0)
    assert np.array_equal(_px(again.generate("a flag", flags[:1], seed=2)), _px(one))


def test_per_call_size_and_fixed_seed(tiny_sd):
    gen = DiffusersGenerator(tiny_sd, steps=2, size=64, seed=7)
    assert gen.generate("x", [], seed=0, size="96x64").size == (96, 64)
    assert np.array_equal(_px(gen.generate("x", [], seed=1)), _px(gen.generate("x", [], seed=2)))


def test_preset_fills_unset_settings_and_arguments_win(tiny_sd):
    gen = DiffusersGenerator(tiny_sd, preset="qwen-image-edit", steps=2, size=64)
    preset = PRESETS["qwen-image-edit"]
    assert (gen.steps, gen.true_cfg, gen.seed, gen.max_references) == (2, 4.0, 0, 3)
    assert gen.negative_prompt == preset.negative_prompt == " "
    _, kwargs = gen._call_arguments("x", [], (64, 64))
    # Stable Diffusion has no true_cfg_scale: the setting is left out, not forced in
    assert "true_cfg_scale" not in kwargs and kwargs["num_inference_steps"] == 2
    assert kwargs["negative_prompt"] == " " and kwargs["guidance_scale"] == 1.0
    with pytest.raises(UnknownNameError, match="qwen-image"):
        DiffusersGenerator(tiny_sd, preset="qwen-imag")


@pytest.mark.parametrize(("cls", "mode"), [
    ("QwenImageEditPlusPipeline", "multi"), ("Flux2Pipeline", "multi"),
    ("FluxKontextPipeline", "single"), ("QwenImageEditPipeline", "single"),
    ("StableDiffusionImg2ImgPipeline", "img2img"), ("QwenImageImg2ImgPipeline", "img2img"),
    ("StableDiffusionPipeline", "from_pipe"), ("QwenImagePipeline", "from_pipe"),
    ("StableDiffusionInpaintPipeline", "none"), ("StableDiffusionControlNetPipeline", "none"),
])
def test_reference_mode_is_read_from_the_real_call_signature(cls, mode):
    params = set(inspect.signature(getattr(diffusers, cls).__call__).parameters)
    assert choose_reference_mode(cls, params) == mode


def test_impossible_reference_modes_are_refused():
    sd = set(inspect.signature(diffusers.StableDiffusionPipeline.__call__).parameters)
    kontext = set(inspect.signature(diffusers.FluxKontextPipeline.__call__).parameters)
    with pytest.raises(ConfigError, match="needs ip_adapter= weights"):
        choose_reference_mode("StableDiffusionPipeline", sd, "ip_adapter", ip_adapter=False)
    with pytest.raises(ConfigError, match="Qwen-Image-Edit"):
        choose_reference_mode("StableDiffusionPipeline", sd, "multi")
    with pytest.raises(ConfigError, match="reference_mode=single"):
        choose_reference_mode("FluxKontextPipeline", kontext, "img2img")


def test_references_refused_when_the_pipeline_cannot_take_them(tiny_sd, flags):
    gen = DiffusersGenerator(tiny_sd, steps=2, size=64, reference_mode="none")
    assert gen.generate("text only", [], seed=0).size == (64, 64)
    with pytest.raises(ConfigError, match="cannot take reference images.*img2img"):
        gen.generate("x", flags[:1])


def test_bad_reference_file_is_a_tool_error(tiny_gen, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ToolError, match="cannot be read as an image"):
        tiny_gen.generate("x", [broken])
    with pytest.raises(ToolError, match="does not exist"):
        tiny_gen.generate("x", [tmp_path / "missing.png"])


def test_folder_errors_say_what_to_do(tmp_path, tiny_sd):
    with pytest.raises(ConfigError, match="does not exist.*model_index.json"):
        DiffusersGenerator(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="not a diffusers pipeline folder"):
        DiffusersGenerator(tmp_path)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "NoSuchPipeline"}))
    with pytest.raises(ConfigError, match="Cannot load the diffusers pipeline"):
        DiffusersGenerator(tmp_path)
    with pytest.raises(ConfigError, match="reference_mode"):
        DiffusersGenerator(tiny_sd, reference_mode="sideways")
    with pytest.raises(ConfigError, match="dtype"):
        DiffusersGenerator(tiny_sd, dtype="int3")
    with pytest.raises(ConfigError, match="max_references must be an integer >= 1"):
        DiffusersGenerator(tiny_sd, max_references=0)
    with pytest.raises(ConfigError, match="strength"):
        DiffusersGenerator(tiny_sd, strength=1.5)
    with pytest.raises(ConfigError, match="IP-Adapter weights"):
        DiffusersGenerator(tiny_sd, ip_adapter=tmp_path / "none.safetensors")


def test_missing_diffusers_names_the_extra(monkeypatch, tiny_sd):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # makes "import diffusers" fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'knowgen\[diffusers\]'"):
        DiffusersGenerator(tiny_sd)


def test_parse_size_and_montage():
    assert parse_size(512) == (512, 512) and parse_size("768x512") == (768, 512)
    assert parse_size([640, 480]) == (640, 480) and parse_size(None) is None
    for bad in ("big", 8, [1, 2, 3]):
        with pytest.raises(ConfigError):
            parse_size(bad)
    red, blue = Image.new("RGB", (40, 20), "red"), Image.new("RGB", (20, 40), "blue")
    sheet = montage([red, blue], (100, 50))
    assert sheet.getpixel((25, 25)) == (255, 0, 0) and sheet.getpixel((75, 25)) == (0, 0, 255)
    assert sheet.getpixel((25, 2)) == (255, 255, 255)

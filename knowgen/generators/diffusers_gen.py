"""The ``diffusers`` generator: any local diffusers pipeline, with reference images.

The pipeline is loaded from a local folder (``model_index.json`` plus one
sub-folder per component) with ``DiffusionPipeline.from_pretrained``; nothing
is downloaded unless ``local_files_only=False``. torch and diffusers are
imported here only, when a generator is built.

How references reach the model is read from the signature of the pipeline's
``__call__`` (``reference_mode="auto"``), in this order:

* ``ip_adapter``: when ``ip_adapter=`` names adapter weights, they are loaded
  and the references go to ``ip_adapter_image`` (every reference, one adapter);
* ``multi``: multi-image edit pipelines whose ``image`` takes several pictures
  (:data:`MULTI_IMAGE_PIPELINES`: Qwen-Image-Edit-Plus / 2509, FLUX.2) get
  ``image=[ref1, ref2, ...]``;
* ``img2img``: pipelines with ``image`` and ``strength`` (SD/SDXL/FLUX/Qwen
  img2img) start from the references laid side by side (:func:`montage`);
* ``single``: other pipelines with an ``image`` input (FLUX.1 Kontext,
  Qwen-Image-Edit) get the side-by-side montage as their one input image;
* a text-to-image pipeline is turned into its img2img sibling with
  ``AutoPipelineForImage2Image.from_pipe`` (shared weights, no extra memory).

Inpainting and ControlNet pipelines take an ``image`` that means something
else (a canvas to fill, a control map), so they are used for text only. Without
references every pipeline draws from the prompt alone. Settings a pipeline does
not accept (``true_cfg_scale`` on Stable Diffusion, say) are left out.

Example:
    >>> gen = DiffusersGenerator("/models/Qwen-Image-Edit-2509", preset="qwen-image-edit")
    >>> gen.generate("the first reference image on a banner", [Path("flag.png")]).size
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from knowgen.errors import ConfigError, MissingDependencyError
from knowgen.generators.compositor import load_image
from knowgen.generators.presets import get_preset

logger = logging.getLogger(__name__)

#: Pipelines whose ``image`` argument takes several reference pictures at once.
MULTI_IMAGE_PIPELINES = frozenset({
    "QwenImageEditPlusPipeline", "Flux2Pipeline", "Flux2KleinPipeline", "Flux2KleinKVPipeline",
})
#: Values of ``reference_mode``.
REFERENCE_MODES = ("auto", "multi", "single", "img2img", "ip_adapter", "none")
_IMAGE_MEANS_OTHER = ("mask_image", "control_image", "controlnet_conditioning_scale")
_CAN_TAKE_REFERENCES = (
    "multi-image edit pipelines (Qwen-Image-Edit-2509/Plus, FLUX.2), single-image edit "
    "pipelines (FLUX.1 Kontext, Qwen-Image-Edit), img2img pipelines and text-to-image "
    "pipelines that have an img2img sibling (Stable Diffusion, SDXL, FLUX, Qwen-Image), or "
    "any pipeline with ip_adapter_image when ip_adapter= is given"
)


def _import_backend() -> tuple[Any, Any]:
    """Import torch and diffusers, or say which extra to install."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "diffusers", "The diffusers generator") from None
    try:
        import diffusers
    except ImportError:
        raise MissingDependencyError("diffusers", "diffusers", "The diffusers generator") from None
    return torch, diffusers


def _dtype_argument(dtype: Any) -> dict[str, Any]:
    """Newer diffusers call the loading dtype ``dtype``; older ones ``torch_dtype``."""
    from diffusers.pipelines import pipeline_utils

    return {"dtype" if hasattr(pipeline_utils, "_resolve_dtype") else "torch_dtype": dtype}


def pick_device(torch: Any, device: str) -> str:
    """``"auto"`` means cuda when a GPU is visible, else mps, else cpu."""
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(torch: Any, dtype: str, device: str) -> Any:
    """``"auto"`` means bfloat16 on a GPU that has it, float16 on other GPUs, float32 on CPU."""
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype != "auto":
        if dtype not in names:
            raise ConfigError(f"Unknown dtype {dtype!r}; use auto, {', '.join(names)}.")
        return names[dtype]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device == "mps" else torch.float32


def parse_size(size: Any) -> tuple[int, int] | None:
    """``512``, ``"512"``, ``"768x512"`` or ``[768, 512]`` -> ``(width, height)``.

    Raises:
        ConfigError: for anything else, or a side under 16 pixels.
    """
    if size is None:
        return None
    if isinstance(size, str) and "x" in size.lower():
        size = size.lower().split("x", 1)
    if isinstance(size, str) and size.strip().isdigit():
        size = int(size)
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    try:
        width, height = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ConfigError(f"Cannot read size {size!r}: give 512, '768x512' or [768, 512].") from None
    if width < 16 or height < 16:
        raise ConfigError(f"size must be at least 16 pixels a side, got {width}x{height}.")
    return width, height


def montage(images: Sequence[Image.Image], size: tuple[int, int]) -> Image.Image:
    """The images side by side on white, each fitted into an equal column, centred."""
    canvas = Image.new("RGB", size, "white")
    width, height = size
    cell = width // max(len(images), 1)
    for i, img in enumerate(images):
        fit = img.convert("RGB")
        fit.thumbnail((cell, height), Image.Resampling.LANCZOS)
        canvas.paste(fit, (i * cell + (cell - fit.width) // 2, (height - fit.height) // 2))
    return canvas


def choose_reference_mode(pipeline: str, params: set[str], requested: str = "auto",
                          ip_adapter: bool = False) -> str:
    """How a pipeline class takes references, read from its ``__call__`` parameters.

    Args:
        pipeline: The pipeline's class name.
        params: Names of its ``__call__`` parameters.
        requested: ``"auto"`` or a mode from :data:`REFERENCE_MODES` to check.
        ip_adapter: Whether IP-Adapter weights are loaded.

    Returns:
        One of ``"multi"``, ``"single"``, ``"img2img"``, ``"ip_adapter"``, ``"none"``,
        or ``"from_pipe"`` (a text-to-image pipeline whose img2img sibling is needed).

    Raises:
        ConfigError: when a requested mode is impossible for this pipeline.
    """
    edit_input = ("image" in params and not any(p in params for p in _IMAGE_MEANS_OTHER)
                  and "ControlNet" not in pipeline)
    if requested == "auto":
        if ip_adapter:
            requested = "ip_adapter"
        elif edit_input and pipeline in MULTI_IMAGE_PIPELINES:
            return "multi"
        elif edit_input:
            return "img2img" if "strength" in params else "single"
        else:
            return "from_pipe" if "image" not in params else "none"
    if requested == "ip_adapter" and ("ip_adapter_image" not in params or not ip_adapter):
        raise ConfigError(f"reference_mode=ip_adapter needs ip_adapter= weights and a pipeline "
                          f"with ip_adapter_image; {pipeline} "
                          f"{'has it' if 'ip_adapter_image' in params else 'has none'}.")
    if requested == "img2img" and "strength" not in params:
        if "image" in params:
            raise ConfigError(f"{pipeline} has an image input but no strength; use "
                              "reference_mode=single.")
        return "from_pipe"
    if requested in ("multi", "single") and "image" not in params:
        raise ConfigError(f"reference_mode={requested} needs a pipeline with an image input; "
                          f"{pipeline} has none. Pipelines that take references: "
                          f"{_CAN_TAKE_REFERENCES}.")
    return requested


def check_pipeline_folder(path: Path) -> None:
    """Fail early, in words, when ``path`` is not a saved diffusers pipeline.

    Raises:
        ConfigError: when the folder is missing or has no ``model_index.json``.
    """
    if not path.exists():
        raise ConfigError(
            f"Pipeline folder {path} does not exist. Pass path= a local diffusers pipeline "
            "folder (one holding model_index.json), e.g. one made by "
            "'hf download Qwen/Qwen-Image-Edit-2509 --local-dir DIR'.")
    if not path.is_dir() or not (path / "model_index.json").is_file():
        raise ConfigError(
            f"{path} is not a diffusers pipeline folder: it has no model_index.json. Point "
            "path= at the folder that holds model_index.json and the component sub-folders.")


class DiffusersGenerator:
    """Generator ``"diffusers"``: a local diffusers pipeline, with reference images.

    Args:
        path: Folder of a saved diffusers pipeline (a hub id only with
            ``local_files_only=False``).
        device: ``"auto"`` (cuda, mps, then cpu) or a torch device string.
        dtype: ``"auto"`` (bf16 or fp16 on GPU, fp32 on CPU), ``"bf16"``, ``"fp16"``, ``"fp32"``.
        steps: Denoising steps; ``None`` keeps the preset's or pipeline's default.
        guidance: ``guidance_scale``.
        true_cfg: ``true_cfg_scale`` (Qwen-Image); a blank negative prompt switches it on.
        size: Output size, ``512``, ``"768x512"`` or ``[768, 512]``.
        preset: A name from :data:`knowgen.generators.presets.PRESETS`; fills unset settings.
        max_references: Use at most this many references (the first ones).
        ip_adapter: IP-Adapter weight file (its CLIP image encoder in ``image_encoder/``
            beside it), or a folder holding exactly one such file.
        local_files_only: Never download anything.
        reference_mode: ``"auto"`` or a forced mode from :data:`REFERENCE_MODES`.
        strength: img2img strength (how far from the references the image may drift).
        ip_adapter_scale: Weight of the IP-Adapter image tokens.
        seed: When set, every image uses this seed whatever the caller asks.
        negative_prompt: Sent with every image where the pipeline takes one.
        cpu_offload: Keep weights on the CPU and move each model to the GPU when used.
        cpu_threads: Set torch's CPU thread count (process-wide); on a busy shared CPU,
            1 is often much faster than the default.

    Raises:
        ConfigError: for a missing or non-pipeline folder, a bad setting, or a
            reference mode the pipeline cannot run.
        MissingDependencyError: when torch or diffusers is not installed.
    """

    def __init__(self, path: str | Path, device: str = "auto", dtype: str = "auto",
                 steps: int | None = None, guidance: float | None = None,
                 true_cfg: float | None = None, size: Any = None, preset: str | None = None,
                 max_references: int | None = 3, ip_adapter: str | Path | None = None,
                 local_files_only: bool = True, reference_mode: str = "auto",
                 strength: float = 0.75, ip_adapter_scale: float = 0.6,
                 seed: int | None = None, negative_prompt: str | None = None,
                 cpu_offload: bool = False, cpu_threads: int | None = None):
        torch, diffusers = _import_backend()
        self._torch = torch
        if cpu_threads:
            torch.set_num_threads(int(cpu_threads))
        self._apply_settings(preset, {
            "steps": steps, "guidance": guidance, "true_cfg": true_cfg, "size": size,
            "seed": seed, "negative_prompt": negative_prompt, "max_references": max_references})
        if reference_mode not in REFERENCE_MODES:
            raise ConfigError(f"reference_mode must be one of {', '.join(REFERENCE_MODES)}; "
                              f"got {reference_mode!r}.")
        if not 0.0 < float(strength) <= 1.0:
            raise ConfigError(f"strength must be in (0, 1], got {strength!r}.")
        self.strength, self.preset, self.path = float(strength), preset, str(path)
        self.device = pick_device(torch, device)
        self.dtype = pick_dtype(torch, dtype, self.device)
        self.pipe = self._load(diffusers, Path(path).expanduser(), local_files_only, cpu_offload)
        self.ip_adapter = str(ip_adapter) if ip_adapter else None
        if ip_adapter:
            self._load_ip_adapter(Path(ip_adapter).expanduser(), local_files_only,
                                  ip_adapter_scale)
        self._ref_pipe: Any = None
        self.reference_mode = self._resolve_mode(diffusers, reference_mode)
        self._lock = threading.Lock()
        logger.info("diffusers generator: %s on %s (%s), references: %s",
                    type(self.pipe).__name__, self.device, self.dtype, self.reference_mode)

    # ------------------------------------------------------------------ loading
    def _apply_settings(self, preset: str | None, given: dict[str, Any]) -> None:
        """Preset values first, then every argument that is not ``None``."""
        settings = get_preset(preset).settings() if preset else {}
        settings.update({k: v for k, v in given.items() if v is not None})
        self.steps, self.guidance = settings.get("steps"), settings.get("guidance")
        self.true_cfg, self.seed = settings.get("true_cfg"), settings.get("seed")
        self.negative_prompt = settings.get("negative_prompt")
        self.size = parse_size(settings.get("size"))
        self.max_references = settings.get("max_references", 3)
        if isinstance(self.max_references, bool) or not isinstance(self.max_references, int) \
                or self.max_references < 1:
            raise ConfigError(f"max_references must be an integer >= 1, got "
                              f"{self.max_references!r}.")

    def _load(self, diffusers: Any, path: Path, local_only: bool, offload: bool) -> Any:
        source: str | Path = path
        if local_only or path.exists():
            check_pipeline_folder(path)
        else:
            source = self.path
        try:
            pipe = diffusers.DiffusionPipeline.from_pretrained(
                source, local_files_only=local_only, **_dtype_argument(self.dtype))
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as exc:
            raise ConfigError(f"Cannot load the diffusers pipeline at {source}: {exc}. Check "
                              "that the folder is complete and that the installed diffusers "
                              "knows its pipeline class.") from exc
        if offload and self.device.startswith("cuda"):
            pipe.enable_model_cpu_offload()
        else:
            pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def _load_ip_adapter(self, target: Path, local_only: bool, scale: float) -> None:
        if not hasattr(self.pipe, "load_ip_adapter"):
            raise ConfigError(f"{type(self.pipe).__name__} cannot load an IP-Adapter; drop "
                              "ip_adapter= or use a pipeline that supports one (SD, SDXL, FLUX).")
        if target.is_dir():
            found = sorted(p for p in target.iterdir() if p.suffix in (".safetensors", ".bin"))
            if len(found) != 1:
                raise ConfigError(f"ip_adapter folder {target} must hold exactly one .safetensors "
                                  f"or .bin file; it holds {len(found)}. Name the file instead.")
            target = found[0]
        if not target.is_file():
            raise ConfigError(f"IP-Adapter weights {target} do not exist; pass the weight file "
                              "(with its CLIP image encoder in image_encoder/ beside it).")
        try:
            self.pipe.load_ip_adapter(str(target.parent), subfolder="", weight_name=target.name,
                                      image_encoder_folder="image_encoder",
                                      local_files_only=local_only)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ConfigError(f"Cannot load the IP-Adapter {target}: {exc}. It needs its CLIP "
                              "image encoder in image_encoder/ beside the weight file.") from exc
        self.ip_adapter_scale = float(scale)
        self.pipe.set_ip_adapter_scale(self.ip_adapter_scale)

    def _resolve_mode(self, diffusers: Any, requested: str) -> str:
        mode = choose_reference_mode(type(self.pipe).__name__, self.call_parameters(self.pipe),
                                     requested, bool(self.ip_adapter))
        if mode == "from_pipe":
            return "img2img" if self._make_img2img(diffusers, strict=requested != "auto") \
                else "none"
        return mode

    def _make_img2img(self, diffusers: Any, strict: bool) -> bool:
        try:
            self._ref_pipe = diffusers.AutoPipelineForImage2Image.from_pipe(self.pipe)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if strict:
                raise ConfigError(f"{type(self.pipe).__name__} has no img2img sibling ({exc}). "
                                  f"Pipelines that take references: {_CAN_TAKE_REFERENCES}.") from exc
            logger.info("%s has no img2img sibling; it will draw from text only",
                        type(self.pipe).__name__)
            return False
        self._ref_pipe.set_progress_bar_config(disable=True)
        return True

    @staticmethod
    def call_parameters(pipe: Any) -> set[str]:
        """Names of the keyword arguments the pipeline's ``__call__`` accepts."""
        return set(inspect.signature(pipe.__call__).parameters)

    # --------------------------------------------------------------- generation
    def describe(self) -> dict[str, Any]:
        """The settings that decide the pixels (used in cache keys and ``/health``)."""
        return {"generator": "diffusers", "path": self.path,
                "pipeline": type(self.pipe).__name__, "reference_mode": self.reference_mode,
                "steps": self.steps, "guidance": self.guidance, "true_cfg": self.true_cfg,
                "size": list(self.size) if self.size else None, "seed": self.seed,
                "negative_prompt": self.negative_prompt, "strength": self.strength,
                "max_references": self.max_references, "ip_adapter": self.ip_adapter,
                "dtype": str(self.dtype).replace("torch.", "")}

    def generate(self, prompt: str, references: Sequence[str | Path], seed: int = 0,
                 size: Any = None) -> Image.Image:
        """Draw one image for ``prompt``, guided by the first ``max_references`` references.

        Args:
            prompt: Generation prompt.
            references: Reference image files, in order.
            seed: Seed of the sampling noise (ignored when the generator has a fixed seed).
            size: Override of the output size for this image.

        Returns:
            An RGB image.

        Raises:
            ConfigError: when references are given but the pipeline cannot take them.
            knowgen.errors.ToolError: when a reference file is missing or unreadable.
        """
        refs = [load_image(p).convert("RGB") for p in list(references)[: self.max_references]]
        if len(references) > self.max_references:
            logger.debug("using the first %d of %d references", self.max_references,
                         len(references))
        if refs and self.reference_mode == "none":
            raise ConfigError(
                f"{type(self.pipe).__name__} cannot take reference images. Use one of: "
                f"{_CAN_TAKE_REFERENCES}; or pass no references.")
        out_size = parse_size(size) or self.size
        pipe, kwargs = self._call_arguments(prompt, refs, out_size)
        kwargs["generator"] = self._torch.Generator("cpu").manual_seed(
            int(self.seed if self.seed is not None else seed))
        with self._lock, self._torch.inference_mode():
            if self.ip_adapter and not refs:
                # a loaded adapter needs an image on every call: a blank one, weighted 0
                kwargs["ip_adapter_image"] = [[Image.new("RGB", (64, 64), "white")]]
                pipe.set_ip_adapter_scale(0.0)
                try:
                    result = pipe(**kwargs)
                finally:
                    pipe.set_ip_adapter_scale(self.ip_adapter_scale)
            else:
                result = pipe(**kwargs)
        image = result.images[0]
        if not isinstance(image, Image.Image):
            image = Image.fromarray((image * 255).round().clip(0, 255).astype("uint8"))
        return image.convert("RGB")

    def _call_arguments(self, prompt: str, refs: list[Image.Image],
                        size: tuple[int, int] | None) -> tuple[Any, dict[str, Any]]:
        pipe, mode = self.pipe, self.reference_mode if refs else "text"
        kwargs: dict[str, Any] = {"prompt": prompt}
        if mode == "multi":
            kwargs["image"] = refs
        elif mode == "single":
            kwargs["image"] = montage(refs, size or self.default_size())
        elif mode == "img2img":
            pipe = self._ref_pipe or self.pipe
            kwargs.update(image=montage(refs, size or self.default_size()),
                          strength=self.strength)
        elif mode == "ip_adapter":
            kwargs["ip_adapter_image"] = [refs]
        negative = self.negative_prompt
        if self.true_cfg is not None and negative is None:
            negative = " "
        wanted = {"num_inference_steps": self.steps, "guidance_scale": self.guidance,
                  "true_cfg_scale": self.true_cfg, "negative_prompt": negative,
                  "width": size[0] if size else None, "height": size[1] if size else None}
        params = self.call_parameters(pipe)
        for key, value in wanted.items():
            if value is None:
                continue
            if key in params:
                kwargs[key] = value
            else:
                logger.debug("%s takes no %s; left out", type(pipe).__name__, key)
        return pipe, kwargs

    def default_size(self) -> tuple[int, int]:
        """The pipeline's native output size (used for montages when no size is set)."""
        scale = int(getattr(self.pipe, "vae_scale_factor", 8) or 8)
        sample = getattr(self.pipe, "default_sample_size", None)
        unet = getattr(self.pipe, "unet", None)
        if sample is None and unet is not None:
            sample = unet.config.sample_size
        side = int(sample) * scale if isinstance(sample, int) else 1024
        return side, side

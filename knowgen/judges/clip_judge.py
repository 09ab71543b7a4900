"""The clip image judge: learned similarity plus OCR, for images of any generator.

The offline judge finds an entity by matching its official picture pixel for
pixel, which is exact for the compositor (it pastes the pictures) and blind
for a diffusion model (it redraws them). This judge compares embeddings of an
``open_clip`` model instead, on the same four KnowGen dimensions and the same
{0, 0.5, 1} scale:

* **visual_correctness**: the mean cosine similarity between the generated
  image and each required entity's reference picture (world tasks: the
  entity's official picture; other tasks: the ground-truth image), put on the
  scale by fitted cut points.
* **faithfulness**: the cosine similarity between the generated image and the
  request's text, put on the scale by fitted cut points.
* **text_accuracy**: OCR, exactly as the offline judge reads texts. The
  required texts are the task's hidden ones (world tasks) or the strings the
  request puts in double quotes; with none the dimension is N/A (0.5).
* **aesthetics**: the offline judge's no-reference proxy against the GT's.

The cut points come from a thresholds file written by ``knowgen judge
calibrate`` for this very model and weights: similarities of different models
are not comparable, so the judge refuses to guess them.

Embeddings of reference pictures and request texts are cached per judge (a
task's references are embedded once however many images are judged against
them); the model runs on CUDA when there is one.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from knowgen.errors import ConfigError, DataError, MissingDependencyError, UnknownNameError
from knowgen.judges.clip_thresholds import CALIBRATED, Thresholds, to_level
from knowgen.judges.offline_image import (
    AESTHETICS_RATIO,
    UNIFORM_STD,
    aesthetics_level,
    aesthetics_proxy,
    blank_judgement,
    describe_texts,
    read_required_texts,
    text_level,
)
from knowgen.quoting import quoted_texts
from knowgen.types import ImageJudgement, Task

logger = logging.getLogger(__name__)

#: Reference and text embeddings kept per judge.
_CACHE_SIZE = 4096


def default_thresholds_dir() -> Path:
    """``~/.cache/knowgen/clip``: where ``knowgen judge calibrate`` writes by default."""
    return Path.home() / ".cache" / "knowgen" / "clip"


def weights_key(pretrained: str | None) -> str:
    """What identifies the weights in a thresholds file.

    An open_clip tag stays itself, a weights file becomes ``file:<name>:<size>``,
    and no weights (a random initialisation from the config) ``random``.
    """
    if pretrained in (None, "", "none", "random"):
        return "random"
    path = Path(str(pretrained)).expanduser()
    if path.is_file():
        return f"file:{path.name}:{path.stat().st_size}"
    return str(pretrained)


def thresholds_path(model: str, pretrained: str | None, folder: str | Path | None = None) -> Path:
    """Default thresholds file of ``model`` with ``pretrained`` weights."""
    key = f"{model}|{weights_key(pretrained)}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)
    return Path(folder or default_thresholds_dir()) / f"{safe}-{digest}.json"


def required_texts(task: Task) -> list[str]:
    """Texts the image must show: the task's hidden ones, else those the request quotes."""
    if task.facts is not None:
        return [t for t in task.facts.required_text if t.strip()]
    return quoted_texts(task.prompt)


@functools.lru_cache(maxsize=8)
def _load_open_clip(model: str, pretrained: str, config: str, device: str,
                    precision: str) -> tuple[Any, Any, Any]:
    """``(model, preprocess, tokenizer)``, built once per process and setting."""
    try:
        import open_clip
        import torch
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "open_clip_torch", "clip",
                                     "The clip judge") from None
    if config:
        open_clip.add_model_config(config)
    if model not in open_clip.list_models():
        raise UnknownNameError("open_clip model", model, open_clip.list_models())
    weights = None if weights_key(pretrained) == "random" else pretrained
    if weights and Path(weights).expanduser().is_file():
        weights = str(Path(weights).expanduser())
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # a random initialisation is the same on every run
            net, _, preprocess = open_clip.create_model_and_transforms(
                model, pretrained=weights, device=device, precision=precision)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ConfigError(
            f"Cannot load open_clip model {model!r} with pretrained={pretrained!r}: {exc}. "
            "Offline, pass pretrained=/path/to/weights (an open_clip checkpoint file)."
        ) from exc
    net.eval()
    return net, preprocess, open_clip.get_tokenizer(model)


class ClipImageJudge:
    """Scores an image on the KnowGen rubric from open_clip similarities, OCR and statistics.

    Args:
        model: An open_clip model name (``open_clip.list_models()``), e.g. ``ViT-B-32``.
        pretrained: An open_clip weights tag (downloaded by open_clip when online), a
            local weights file, or ``none`` for a random initialisation from the
            config (for tests: its scores mean nothing).
        config: A model config JSON file to register first (its file name, without
            ``.json``, is then a model name).
        thresholds: Thresholds file from ``knowgen judge calibrate`` (default: the one
            calibrate writes for this model and weights under ``~/.cache/knowgen/clip``).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:N]``.
        ocr: OCR engine for text accuracy (as the offline judge's).
        data_dir: World folder holding the official pictures (default: the shipped world).
        aesthetics_ratio: Share of the GT's aesthetics proxy from which aesthetics is 1.
        batch_size: Most images embedded in one forward pass.
        require_thresholds: When false, the judge may be built without thresholds to
            compute raw similarities only (what calibration does); :meth:`score` then fails.
    """

    def __init__(self, model: str = "ViT-B-32", pretrained: str = "openai", config: str = "",
                 thresholds: str = "", device: str = "auto", ocr: str = "auto",
                 data_dir: str | None = None, aesthetics_ratio: float = AESTHETICS_RATIO,
                 batch_size: int = 16, require_thresholds: bool = True):
        self.model_name, self.pretrained = str(model), str(pretrained)
        self.config = str(Path(config).expanduser()) if config else ""
        if self.config and not Path(self.config).is_file():
            raise ConfigError(f"Model config {self.config} does not exist.")
        if self.config:
            self.model_name = model if model != "ViT-B-32" else Path(self.config).stem
        self.device = device
        self.ocr_name, self.data_dir = ocr, data_dir
        self.aesthetics_ratio = float(aesthetics_ratio)
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be at least 1, not {batch_size}.")
        self.batch_size = int(batch_size)
        self.weights = weights_key(self.pretrained)
        self.thresholds_file = Path(thresholds).expanduser() if thresholds else thresholds_path(
            self.model_name, self.pretrained)
        self.thresholds: Thresholds | None = None
        if require_thresholds:
            self.thresholds = self._read_thresholds(explicit=bool(thresholds))
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()

    def _read_thresholds(self, explicit: bool) -> Thresholds:
        if not explicit and not self.thresholds_file.is_file():
            raise ConfigError(
                f"No thresholds fitted for clip model {self.model_name} with weights "
                f"{self.weights}: run 'knowgen judge calibrate --judge "
                f"clip:model={self.model_name},pretrained={self.pretrained}' once (it writes "
                f"{self.thresholds_file}), or pass thresholds=FILE."
            )
        found = Thresholds.load(self.thresholds_file)
        found.check_model(self.model_name, self.weights, self.thresholds_file)
        return found

    # -- the model -------------------------------------------------------------------------

    def _resolved_device(self) -> tuple[str, str]:
        if self.device != "auto":
            return self.device, "fp16" if self.device.startswith("cuda") else "fp32"
        try:
            import torch
        except ImportError:
            raise MissingDependencyError("torch", "clip", "The clip judge") from None
        return ("cuda", "fp16") if torch.cuda.is_available() else ("cpu", "fp32")

    def _model(self) -> tuple[Any, Any, Any]:
        device, precision = self._resolved_device()
        return _load_open_clip(self.model_name, self.pretrained, self.config, device, precision)

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """Unit-length image embeddings, one row per image, in batches of ``batch_size``."""
        import torch

        net, preprocess, _ = self._model()
        device = next(net.parameters()).device
        rows = []
        for start in range(0, len(images), self.batch_size):
            batch = torch.stack([preprocess(im.convert("RGB"))
                                 for im in images[start:start + self.batch_size]])
            with self._lock, torch.inference_mode():
                feats = net.encode_image(batch.to(device, dtype=next(net.parameters()).dtype))
            rows.append(_unit(feats.float().cpu().numpy()))
        return np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Unit-length text embeddings, one row per text (the model's own tokenizer)."""
        import torch

        net, _, tokenizer = self._model()
        device = next(net.parameters()).device
        with self._lock, torch.inference_mode():
            feats = net.encode_text(tokenizer(texts).to(device))
        return _unit(feats.float().cpu().numpy())

    # -- cached references -----------------------------------------------------------------

    def _cached(self, key: tuple[str, ...], make: Any) -> np.ndarray:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        value = make()
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return value

    def clear_cache(self) -> None:
        """Forget every cached reference and request embedding."""
        with self._lock:
            self._cache.clear()

    @staticmethod
    def _picture_key(path: Path) -> tuple[str, ...]:
        if not path.is_file():
            raise DataError(f"Reference image {path} does not exist.")
        return ("image", str(path), str(path.stat().st_mtime_ns))

    def _uncached_pictures(self, paths: list[Path]) -> list[Path]:
        keys = {path: self._picture_key(path) for path in paths}
        with self._lock:
            return list(dict.fromkeys(p for p, k in keys.items() if k not in self._cache))

    def _picture_embedding(self, path: Path) -> np.ndarray:
        return self._cached(self._picture_key(path),
                            lambda: self.embed_images([_open_rgb(path)])[0])

    def _text_embedding(self, text: str) -> np.ndarray:
        return self._cached(("text", text), lambda: self.embed_texts([text])[0])

    def references(self, task: Task) -> list[tuple[str, Path]]:
        """``(name, picture)`` of each reference the image is compared with.

        World tasks: each required entity's official picture. Other tasks: the GT image.

        Raises:
            DataError: when a task has neither entities nor a ground-truth image.
        """
        if task.facts is not None and task.facts.entities:
            from knowgen.world.data import load_world

            world = load_world(self.data_dir)
            out = []
            for ent in task.facts.entities:
                if ent.image_id not in world.images:
                    raise DataError(f"Task {task.id!r} names image {ent.image_id!r}, which the "
                                    f"world in {world.data_dir} does not hold.")
                out.append((ent.name, world.image_path(ent.image_id)))
            return out
        if not task.gt_image:
            raise DataError(f"Task {task.id!r} has no gt_image and no required entities: the "
                            "clip judge compares the image with a reference.")
        return [("ground truth", Path(task.gt_image))]

    # -- judging ---------------------------------------------------------------------------

    def similarities(self, task: Task, image: Image.Image) -> dict[str, Any]:
        """Raw similarities of ``image`` for ``task``, before any thresholds.

        Returns:
            ``visual_correctness`` (mean similarity to the references),
            ``faithfulness`` (similarity to the request) and ``references``
            (each reference's name and similarity).
        """
        refs_wanted = self.references(task)
        new = self._uncached_pictures([path for _, path in refs_wanted])
        rows = self.embed_images([image, *(_open_rgb(p) for p in new)])  # one batch
        for path, row in zip(new, rows[1:]):
            self._cached(self._picture_key(path), lambda row=row: row)
        emb = rows[0]
        refs = [(name, float(emb @ self._picture_embedding(path))) for name, path in refs_wanted]
        request = float(emb @ self._text_embedding(task.prompt))
        return {"visual_correctness": round(float(np.mean([s for _, s in refs])), 6),
                "faithfulness": round(request, 6),
                "references": [{"name": n, "similarity": round(s, 6)} for n, s in refs]}

    def score(self, task: Task, image: Image.Image) -> ImageJudgement:
        """Judge ``image`` for ``task`` on the four KnowGen dimensions.

        Raises:
            ConfigError: when the judge was built without thresholds.
            DataError: when the task has no reference to compare with, or a picture
                it names cannot be read.
        """
        if self.thresholds is None:
            self.thresholds = self._read_thresholds(explicit=True)
        rgb = image.convert("RGB")
        proxy = aesthetics_proxy(rgb)
        texts = required_texts(task)
        if proxy["uniform_std"] < UNIFORM_STD:
            return blank_judgement(proxy, bool(texts))
        sims = self.similarities(task, rgb)
        cuts = self.thresholds.cut_points
        visual = to_level(sims["visual_correctness"], cuts["visual_correctness"])
        faith = to_level(sims["faithfulness"], cuts["faithfulness"])
        evidence: dict[str, Any] = {"blank": False, "similarities": sims,
                                    "cut_points": cuts, "model": self.model_name,
                                    "weights": self.weights}
        upper = task.facts is not None and task.facts.text_case == "upper"
        readings = read_required_texts(rgb, texts, upper, self.ocr_name, evidence)
        aesthetics, aes_evidence = aesthetics_level(task, proxy, self.aesthetics_ratio)
        evidence["aesthetics"] = aes_evidence
        listed = ", ".join(f"{r['name']} {r['similarity']:.3f}" for r in sims["references"])
        reasons = [f"reference similarity {sims['visual_correctness']:.3f} ({listed})",
                   f"request similarity {sims['faithfulness']:.3f}",
                   describe_texts(texts, readings),
                   f"aesthetics proxy {proxy['proxy']:.2f} vs GT {aes_evidence['gt_proxy']:.2f}"]
        return ImageJudgement(
            faithfulness=faith, visual_correctness=visual,
            text_accuracy=text_level(texts, readings), text_accuracy_na=not texts,
            aesthetics=aesthetics, rationale="; ".join(reasons) + ".",
            evidence=evidence,
        )


def _unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return (rows / np.maximum(norms, 1e-12)).astype(np.float32)


def _open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"Cannot read image {path}: {exc}") from exc


__all__ = ["CALIBRATED", "ClipImageJudge", "required_texts", "thresholds_path", "weights_key"]

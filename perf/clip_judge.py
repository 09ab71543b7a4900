"""clip image-judge throughput (images per second) on the world's test split.

The model is ViT-B-32 built from open_clip's config with random weights: the
arithmetic of the pretrained model, which cannot be downloaded here. Thresholds
are fitted first on the committed calibration set (``--fit-cases`` of its
cases; their values do not change the speed).

Judged images are the ground truths of ``--n`` test tasks drawn evenly over the
families, each judged once, in one process, in this order:

1. ``similarities``, cold: every task's references are new to the judge (what
   ``knowgen eval`` pays on a task whose entities it has not seen);
2. ``similarities``, warm: the same images again (references cached, one image
   forward pass and the cached request text per image);
3. ``embed_images`` in batches of 16 (the model's raw image throughput);
4. ``score``: the whole verdict, with OCR of the required texts, split by tasks
   with and without required text.

Run: python perf/clip_judge.py [--n 40] [--model ViT-B-32]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from knowgen.benchmarks.world import WorldBenchmark
from knowgen.eval.clip_calibration import calibrate, case_samples, gt_folder
from knowgen.eval.runner import select_tasks as select_evenly
from knowgen.judges.clip_judge import ClipImageJudge


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 2) if seconds else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--fit-cases", type=int, default=30)
    parser.add_argument("--ocr", default="rapidocr")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        judge = ClipImageJudge(model=args.model, pretrained="none", ocr=args.ocr,
                               require_thresholds=False)
        judge.embed_texts(["warm up"])
        build_s = time.perf_counter() - t0
        with gt_folder() as folder:
            samples = list(case_samples(
                Path(__file__).resolve().parents[1] / "knowgen/eval/calibration/world_cases.jsonl",
                folder))[:args.fit_cases]
            judge.thresholds = calibrate(judge, samples, {"source": "perf"},
                                         all_dimensions=False, progress=False)
        judge.clear_cache()  # the tasks below start cold
        tasks = select_evenly(WorldBenchmark(cache_dir=tmp).tasks("test"), args.n)
        images = []
        for task in tasks:
            with Image.open(task.gt_image) as img:
                images.append(img.convert("RGB"))
        t = time.perf_counter()
        for task, image in zip(tasks, images):
            judge.similarities(task, image)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        for task, image in zip(tasks, images):
            judge.similarities(task, image)
        warm = time.perf_counter() - t
        judge.batch_size = 16
        t = time.perf_counter()
        judge.embed_images(images)
        batched = time.perf_counter() - t
        with_text, without_text = [], []
        for task, image in zip(tasks, images):
            t = time.perf_counter()
            judge.score(task, image)
            (with_text if task.facts.required_text else without_text).append(
                time.perf_counter() - t)
    scored = sum(with_text) + sum(without_text)
    print(json.dumps({
        "model": args.model, "weights": "random (same arithmetic as pretrained)",
        "n_images": len(tasks), "torch_threads": torch.get_num_threads(),
        "model_build_s": round(build_s, 2),
        "similarities_cold_images_per_s": _rate(len(tasks), cold),
        "similarities_warm_images_per_s": _rate(len(tasks), warm),
        "embed_batched_16_images_per_s": _rate(len(tasks), batched),
        "score_images_per_s": _rate(len(tasks), scored),
        "score_s_per_image_with_text": round(sum(with_text) / max(len(with_text), 1), 3),
        "score_s_per_image_without_text": round(sum(without_text) / max(len(without_text), 1), 3),
        "n_with_text": len(with_text), "n_without_text": len(without_text),
        "python": platform.python_version(), "machine": platform.machine(),
    }, indent=2))


if __name__ == "__main__":
    main()

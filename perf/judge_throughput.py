"""Offline image-judge throughput (images per second) on the world's test split.

Judges the ground-truth images (the worst case: every required text is OCRed
and every entity matched) and reports the split with and without required text.

Run: python perf/judge_throughput.py [--n 40]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

from PIL import Image

from knowgen.benchmarks.world import WorldBenchmark
from knowgen.judges.offline_image import OfflineImageJudge
from knowgen.eval.runner import select_tasks as select_evenly


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--ocr", default="auto", help="OCR engine: auto, rapidocr, tesseract")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        tasks = select_evenly(WorldBenchmark(cache_dir=cache).tasks("test"), args.n)
        judge = OfflineImageJudge(ocr=args.ocr)
        images = [Image.open(t.gt_image).convert("RGB") for t in tasks]
        judge.score(tasks[0], images[0])  # load models once
        judge_times = {"text": [], "no_text": []}
        for task, image in zip(tasks, images):
            # a copy with one changed pixel defeats the OCR cache: measure real work
            image = image.copy()
            image.putpixel((0, 0), (1, 2, 3))
            t0 = time.perf_counter()
            judge.score(task, image)
            key = "text" if task.facts.required_text else "no_text"
            judge_times[key].append(time.perf_counter() - t0)
    total = judge_times["text"] + judge_times["no_text"]
    print(json.dumps({
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "ocr": args.ocr,
        "images": len(total),
        "images_per_s": round(len(total) / sum(total), 2),
        "with_text_s_per_image": round(sum(judge_times["text"]) / max(1, len(judge_times["text"])), 3),
        "without_text_s_per_image": round(sum(judge_times["no_text"]) / max(1, len(judge_times["no_text"])), 3),
    }, indent=2))


if __name__ == "__main__":
    main()

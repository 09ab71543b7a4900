"""Throughput and latency of ``knowgen serve generator`` with 1 and 4 concurrent callers.

By default it builds the tiny random StableDiffusion pipeline of the tests
(256 px, 4 steps), serves it with uvicorn on 127.0.0.1 and drives it with the
``http`` client from several threads; it also times the generator called
directly, so the server's own cost shows. Give ``--pipeline DIR`` for a real
diffusers pipeline or ``--generator SPEC`` for any registered generator.

    python perf/generator_server.py --requests 24 --out perf/RESULTS_generators.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_generator(args: argparse.Namespace, workdir: Path):
    """The generator to serve, and a one-line description of it."""
    if args.generator:
        from knowgen.registry import GENERATORS

        return GENERATORS.create(args.generator), args.generator
    from knowgen.generators.diffusers_gen import DiffusersGenerator

    path = args.pipeline
    label = f"diffusers:path={path}"
    if path is None:
        sys.path.insert(0, str(ROOT / "tests" / "generators" / "heavy"))
        from tiny_pipeline import build_tiny_sd

        path = build_tiny_sd(workdir / "tiny-sd")
        label = "tiny random StableDiffusion (UNet 32/64, f8 VAE, 2-layer CLIP)"
    gen = DiffusersGenerator(path, steps=args.steps, size=args.size, device=args.device,
                             cpu_threads=args.threads)
    return gen, f"{label}, {args.size} px, {args.steps} steps, {gen.device}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def drive(url: str, callers: int, requests: int) -> dict[str, float]:
    """Send ``requests`` generations from ``callers`` threads; time each and the whole."""
    from knowgen.generators.http_client import HttpGenerator

    client = HttpGenerator(url, timeout=600, max_retries=0)
    latencies: list[float] = []
    lock = threading.Lock()
    seeds = iter(range(requests))

    def worker() -> None:
        while True:
            with lock:
                seed = next(seeds, None)
            if seed is None:
                return
            start = time.perf_counter()
            client.generate("a flag waving on a pole", [], seed=seed)
            with lock:
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"callers": callers, "requests": requests, "wall": wall,
            "images_per_s": requests / wall, "p50": statistics.median(latencies),
            "p90": percentile(latencies, 0.9)}


def direct(gen, requests: int) -> dict[str, float]:
    times = []
    for seed in range(requests):
        start = time.perf_counter()
        gen.generate("a flag waving on a pole", [], seed=seed)
        times.append(time.perf_counter() - start)
    return {"images_per_s": requests / sum(times), "p50": statistics.median(times),
            "p90": percentile(times, 0.9)}


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    try:
        import torch

        extra = f", torch {torch.__version__}, {torch.get_num_threads()} torch threads"
    except ImportError:
        extra = ""
    return (f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}{extra}, load average {load:.1f} at start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, help="a local diffusers pipeline folder")
    parser.add_argument("--generator", help="any generator spec instead (e.g. compositor)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--requests", type=int, default=16, help="requests per setting")
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args()

    from knowgen.generators.server import BackgroundServer, create_app

    with tempfile.TemporaryDirectory() as tmp:
        gen, label = build_generator(args, Path(tmp))
        gen.generate("warm-up", [], seed=0)
        base = direct(gen, args.requests)
        rows = []
        with BackgroundServer(create_app(gen, max_queue=64)) as server:
            drive(server.url, 1, 2)  # warm-up through the server
            for callers in args.callers:
                rows.append(drive(server.url, callers, args.requests))
    lines = [f"Generator: {label}", f"Machine: {machine()}", "",
             "| setting | images/s | p50 latency (s) | p90 latency (s) |",
             "| --- | ---: | ---: | ---: |",
             (f"| direct call, no server | {base['images_per_s']:.2f} | {base['p50']:.3f} | "
              f"{base['p90']:.3f} |")]
    for row in rows:
        lines.append(f"| server, {row['callers']} concurrent caller(s), {row['requests']} "
                     f"requests | {row['images_per_s']:.2f} | {row['p50']:.3f} | "
                     f"{row['p90']:.3f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""SFT speed of the bundled agent's recipe in float32 against bf16 mixed precision.

The ``smollm2`` preset (SmolLM2-135M-Instruct with LoRA r=16 on every linear layer)
trains with TRL's ``SFTTrainer`` on the same expert records for ``--steps`` optimiser
steps in each precision (``precision=fp32`` and ``precision=bf16``), twice each,
alternating, in one process, so that the ratio is measured under the same load.
Tokens/s counts every token of the batches (the trainer's ``num_tokens``); the first
step of each run is excluded. The mean loss of each run is reported to show that the
two precisions train the same way (same records, same seed).

Run: python perf/train_precision.py --data runs/smollm2g/guided_train.jsonl
        [--steps 6] [--rounds 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from train_throughput import StepClock  # perf/ is on the path when this script runs

from knowgen.agents.train.config import load_train_config


def measure(data: str, precision: str, steps: int, out: Path) -> dict:
    """Tokens per second of ``steps`` SFT steps (the first excluded) in ``precision``."""
    from datasets import Dataset
    from trl import SFTTrainer

    from knowgen.agents.train.sft import (
        obtain_model,
        obtain_tokenizer,
        sft_arguments,
        use_bf16,
        with_lora,
    )
    from knowgen.agents.train.sft_data import sft_records

    cfg = load_train_config("smollm2", {
        "output_dir": str(out), "sft.data": data, "precision": precision,
        "sft.max_steps": steps, "sft.grad_accum": 1, "sft.save_steps": 10_000,
        "sft.logging_steps": 1, "sft.max_records": steps * 2 * 4})
    records = sft_records(cfg)
    tokenizer = obtain_tokenizer(cfg, records)
    model = with_lora(cfg, obtain_model(cfg, tokenizer))
    dataset = Dataset.from_list([{"messages": r["messages"], "tools": r["tools"]} for r in records])
    clock = StepClock()
    trainer = SFTTrainer(model=model, args=sft_arguments(cfg, out / precision),
                         train_dataset=dataset, processing_class=tokenizer, callbacks=[clock])
    trainer.train()
    logs = trainer.state.log_history
    tokens = [e["num_tokens"] for e in logs if "num_tokens" in e]
    losses = [e["loss"] for e in logs if "loss" in e]
    seconds = clock.times[-1] - clock.times[0]
    return {"precision": precision, "bf16": use_bf16(precision), "steps_timed": steps - 1,
            "seconds": round(seconds, 2),
            "tokens_per_s": round((tokens[-1] - tokens[0]) / seconds, 1),
            "mean_loss": round(sum(losses) / len(losses), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="SFT records (knowgen train data --out)")
    parser.add_argument("--steps", type=int, default=6, help="optimiser steps per run (batch 2)")
    parser.add_argument("--rounds", type=int, default=2, help="fp32/bf16 pairs to run")
    parser.add_argument("--json", default=None, help="write the results here too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for precision in ("fp32", "bf16"):
                runs.append(measure(args.data, precision, args.steps, Path(tmp) / str(i)))
    mean = {p: round(sum(r["tokens_per_s"] for r in runs if r["precision"] == p)
                     / args.rounds, 1) for p in ("fp32", "bf16")}
    results = {"runs": runs, "tokens_per_s": mean,
               "bf16_over_fp32": round(mean["bf16"] / mean["fp32"], 2)}
    text = json.dumps(results, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

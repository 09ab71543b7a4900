"""LoRA SFT over a pretrained base: the checkpoint is the adapter, merged for inference."""

import json
import warnings

import pytest

from knowgen.agents.train.config import load_train_config
from knowgen.errors import ConfigError

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


#: A ChatML template that writes turns only, as small instruct models ship (no tools).
PLAIN_CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
                "{% endif %}")


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory, expert_records, write_gguf):
    """A small Llama built from a config, as a GGUF file whose chat template renders no tools
    (the form the smollm2-135m preset takes), beside the same model as a folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from knowgen.agents.tiny import train_tokenizer
    from knowgen.agents.train.sft import tokenizer_texts

    tokenizer = train_tokenizer(tokenizer_texts(expert_records), vocab_size=600, min_frequency=2)
    tokenizer.chat_template = PLAIN_CHATML
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    folder = tmp_path_factory.mktemp("llama-base")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_gguf(model, tokenizer, folder / "base.gguf")
    return folder


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, expert_records, base_folder):
    from knowgen.agents.expert_data import write_jsonl
    from knowgen.agents.train.sft import run_sft

    out = tmp_path_factory.mktemp("lora_run")
    data = write_jsonl(expert_records, out / "data.jsonl")
    cfg = load_train_config("smoke", {
        "output_dir": str(out), "sft.data": str(data), "sft.init": str(base_folder / "base.gguf"),
        "sft.lora.r": 4, "sft.lora.alpha": 8, "sft.lm_warmup_epochs": 0,
        "sft.augment_copies": 0, "sft.max_steps": 2, "sft.learning_rate": 5e-3})
    return cfg, run_sft(cfg)


@pytest.mark.slow
def test_lora_sft_saves_the_adapter_and_names_its_base(lora_run, base_folder):
    _, final = lora_run
    assert (final / "adapter_config.json").is_file()
    assert (final / "adapter_model.safetensors").is_file()
    assert not (final / "model.safetensors").exists()  # the base weights are not copied
    meta = json.loads((final / "knowgen_agent.json").read_text())
    assert meta["base"] == str(base_folder / "base.gguf") and meta["adapter"] == "lora"
    assert 0 < meta["trainable_parameters"] < meta["parameters"]
    adapter = json.loads((final / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["lora_alpha"] == 8
    # every linear layer but the output head got an adapter
    assert {m.rsplit(".", 1)[-1] for m in adapter["target_modules"]} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.mark.slow
def test_the_merged_agent_computes_what_base_plus_adapter_compute(lora_run, base_folder):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from knowgen.agents.transformers_backend import TransformersBackend

    _, final = lora_run
    backend = TransformersBackend(str(final), device="cpu", dtype="float32")
    assert not hasattr(backend.model, "peft_config")  # merged into plain weights
    reference = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(base_folder)), str(final)).eval()
    base = AutoModelForCausalLM.from_pretrained(str(base_folder)).eval()
    ids = backend.tokenizer("Flag of Peru", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        merged, want, before = (m(ids).logits for m in (backend.model, reference, base))
    assert torch.allclose(merged, want, atol=1e-4)
    assert not torch.allclose(merged, before, atol=1e-4)  # training moved the adapters


@pytest.mark.slow
def test_a_lora_agent_plays_an_episode(lora_run, shared_backends):
    from knowgen.agents.policy import transformers_policy
    from knowgen.config import EnvConfig
    from knowgen.envs.searchgen import SearchGenEnv

    _, final = lora_run
    env = SearchGenEnv(EnvConfig(split="test"), **shared_backends)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = transformers_policy(str(final), device="cpu", max_new_tokens=32)
    # loading says nothing a user of the checkpoint cannot act on
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
    obs, info = env.reset(options={"task_id": env.tasks[0].id})
    policy.reset(obs, info)
    done, turns = False, 0
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.act(obs, info))
        done, turns = terminated or truncated, turns + 1
    assert turns >= 1 and "last_action" in info


@pytest.mark.slow
def test_a_mid_run_checkpoint_loads_as_an_agent_over_its_base(lora_run, base_folder,
                                                              shared_backends):
    from knowgen.agents.policy import transformers_policy
    from knowgen.config import EnvConfig
    from knowgen.envs.searchgen import SearchGenEnv

    _, final = lora_run
    checkpoint = final.parent / "checkpoint-2"  # the last step: the final weights
    meta = json.loads((checkpoint / "knowgen_agent.json").read_text())
    assert meta == json.loads((final / "knowgen_agent.json").read_text())
    assert meta["base"] == str(base_folder / "base.gguf")
    config = json.loads((checkpoint / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == meta["base"]
    assert (checkpoint / "optimizer.pt").is_file()  # still a checkpoint a run resumes from
    env = SearchGenEnv(EnvConfig(split="test"), **shared_backends)
    obs, info = env.reset(options={"task_id": env.tasks[0].id})
    actions = []
    for folder in (checkpoint, final):
        policy = transformers_policy(str(folder), device="cpu", max_new_tokens=32)
        policy.reset(obs, info)
        actions.append(policy.act(obs, info))
    assert actions[0] == actions[1]


@pytest.mark.slow
def test_grpo_goes_on_training_the_adapter(lora_run, base_folder, tmp_path):
    import copy

    from safetensors.torch import load_file

    from knowgen.agents.train.grpo import build_grpo_trainer, run_grpo

    cfg, sft_final = lora_run
    cfg = copy.deepcopy(cfg)
    cfg.output_dir = str(tmp_path)
    cfg.grpo.init = str(sft_final)
    cfg.grpo.max_steps, cfg.grpo.learning_rate, cfg.grpo.save_steps = 1, 1e-2, 1
    final = run_grpo(cfg)
    assert (final / "adapter_config.json").is_file() and not (final / "model.safetensors").exists()
    meta = json.loads((final / "knowgen_agent.json").read_text())
    assert meta["base"] == str(base_folder / "base.gguf") and meta["adapter"] == "lora"
    # the mid-run checkpoint names the same base, so it loads as a policy too
    assert json.loads((final.parent / "checkpoint-1" / "knowgen_agent.json").read_text()) == meta
    before = load_file(str(sft_final / "adapter_model.safetensors"))
    assert load_file(str(final / "adapter_model.safetensors")).keys() == before.keys()
    # what GRPO optimises: the adapters only, the base frozen (one step of an untrained
    # model may see equal rewards in its group, hence no update, so look at the trainer)
    trainer = build_grpo_trainer(cfg, tmp_path / "grpo")
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


@pytest.mark.slow
def test_a_second_sft_stage_trains_the_saved_adapter_on(lora_run, base_folder, tmp_path):
    import copy

    from safetensors.torch import load_file

    from knowgen.agents.train.sft import run_sft

    cfg, first = lora_run
    cfg = copy.deepcopy(cfg)
    cfg.output_dir = str(tmp_path)
    cfg.sft.init, cfg.sft.stride_offset, cfg.sft.max_records = str(first), 1, 4
    cfg.sft.lora.r = 8  # the saved adapter's own rank (4) is what trains on
    final = run_sft(cfg)
    meta = json.loads((final / "knowgen_agent.json").read_text())
    # the second stage names the first stage's base, not the folder it started from
    assert meta["base"] == str(base_folder / "base.gguf") and meta["adapter"] == "lora"
    assert json.loads((final / "adapter_config.json").read_text())["r"] == 4
    before = load_file(str(first / "adapter_model.safetensors"))
    after = load_file(str(final / "adapter_model.safetensors"))
    assert after.keys() == before.keys()
    assert any(not torch.equal(after[k], before[k]) for k in before)  # it trained on


@pytest.mark.slow
def test_a_stage_from_a_shipped_folder_asks_no_server_about_its_base(lora_run, base_folder,
                                                                     tmp_path, monkeypatch):
    """A shipped folder names its base by preset ("smollm2-135m"), which reads as a hub id:
    saving the next stage's adapter must not look that name up on the Hugging Face Hub, and
    building the trainer must not report to it (the suite's ``loopback_only`` rule fails a
    test whose process tries either)."""
    import copy

    from knowgen.agents.checkpoint_format import pack_checkpoint
    from knowgen.agents.train.sft import run_sft

    cfg, first = lora_run
    shipped = pack_checkpoint(first, tmp_path / "shipped")
    adapter = json.loads((shipped / "adapter_config.json").read_text())
    adapter["base_model_name_or_path"] = "smollm2-135m"  # as the bundled agent's file says
    (shipped / "adapter_config.json").write_text(json.dumps(adapter))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("CI", raising=False)  # TRL does not report from CI runs
    cfg = copy.deepcopy(cfg)
    cfg.output_dir = str(tmp_path / "stage2")
    cfg.sft.init, cfg.sft.stride_offset, cfg.sft.max_records = str(shipped), 1, 4
    final = run_sft(cfg)
    # the saved adapter names the base its knowgen_agent.json records, as a packed one does
    saved = json.loads((final / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == str(base_folder / "base.gguf")


def test_lora_needs_a_pretrained_base(tmp_path):
    from knowgen.agents.train.sft import with_lora

    cfg = load_train_config("smoke", {"sft.lora.r": 4})
    with pytest.raises(ConfigError, match="sft.init"):
        with_lora(cfg, object())
    with pytest.raises(ConfigError, match="lora.r"):
        load_train_config("smoke", {"sft.lora.r": -1}).sft.lora.peft_config()


def test_an_adapter_without_its_base_is_refused(tmp_path):
    from knowgen.agents.transformers_backend import load_checkpoint_model
    from knowgen.errors import DataError

    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(DataError, match="names no base model"):
        load_checkpoint_model(tmp_path, {}, torch.float32)


@pytest.fixture(scope="module")
def llama_cpp():
    return pytest.importorskip("llama_cpp")


def _llama_cpp_logits(llama_cpp, model_path, ids, lora_path=None):
    import numpy as np

    llm = llama_cpp.Llama(model_path=str(model_path), lora_path=lora_path and str(lora_path),
                          n_ctx=256, n_threads=1, logits_all=True, verbose=False)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)])


@pytest.mark.slow
def test_llama_cpp_runs_the_gguf_base_and_the_converted_adapter(llama_cpp, lora_run,
                                                                base_folder, tmp_path):
    from knowgen.agents.llamacpp_backend import write_lora_gguf
    from knowgen.agents.transformers_backend import TransformersBackend

    _, final = lora_run
    merged = TransformersBackend(str(final), device="cpu", dtype="float32")
    ids = merged.tokenizer("Flag of Peru, then the logo of GitHub", add_special_tokens=False)[
        "input_ids"]
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(base_folder)).eval()
    with torch.no_grad():
        want_base = base(torch.tensor([ids])).logits[0].numpy()
        want_merged = merged.model(torch.tensor([ids])).logits[0].numpy()
    got_base = _llama_cpp_logits(llama_cpp, base_folder / "base.gguf", ids)
    assert abs(got_base - want_base).max() < 1e-3
    lora = write_lora_gguf(final, base_folder / "base.gguf", tmp_path / "lora.gguf")
    got_merged = _llama_cpp_logits(llama_cpp, base_folder / "base.gguf", ids, lora)
    assert abs(got_merged - want_merged).max() < 1e-3
    assert abs(want_merged - want_base).max() > 1e-3  # the adapter does change the model


@pytest.mark.slow
def test_a_llama_cpp_agent_plays_under_the_gbnf_grammar(llama_cpp, lora_run, shared_backends,
                                                        tmp_path):
    from knowgen.agents.policy import llamacpp_policy
    from knowgen.config import EnvConfig
    from knowgen.envs.searchgen import SearchGenEnv

    _, final = lora_run
    env = SearchGenEnv(EnvConfig(split="test", max_turns=4), **shared_backends)
    policy = llamacpp_policy(str(final), threads=1, context=2048, max_new_tokens=64,
                             grammar=True, format_retries=0, cache_dir=str(tmp_path / "lora-gguf"))
    assert list((tmp_path / "lora-gguf").glob("*.gguf"))  # converted once, cached
    obs, info = env.reset(options={"task_id": env.tasks[0].id})
    policy.reset(obs, info)
    done, actions = False, []
    while not done:
        action = policy.act(obs, info)
        actions.append(action)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    # an untrained model under the grammar writes only what can begin a well-formed turn
    # (the Python grammar of the transformers backend agrees, character by character)
    from knowgen.agents.grammar import ReplyGrammar

    assert actions and all(a.startswith(("<think>", "<tool_call>", "<answer>")) for a in actions)
    assert all(ReplyGrammar(policy.backend.tools, [f"IMG_{i:03d}" for i in range(1, 99)])
               .feed(a) for a in actions)


@pytest.mark.slow
def test_llama_cpp_takes_the_cite_pictures_rules_into_its_gbnf(llama_cpp, lora_run,
                                                              shared_backends, tmp_path,
                                                              play_under_rules):
    """With ``cite_pictures`` no turn answers before a picture is shown, and the turn after
    the tools close is the answer: the GBNF of every call follows the messages it saw."""
    from knowgen.agents.policy import llamacpp_policy
    from knowgen.config import EnvConfig
    from knowgen.envs.searchgen import SearchGenEnv

    _, final = lora_run
    env = SearchGenEnv(EnvConfig(split="test", max_turns=4, max_tool_calls=1), **shared_backends)
    policy = llamacpp_policy(str(final), threads=1, context=2048, max_new_tokens=64,
                             grammar=True, cite_pictures=True, format_retries=0,
                             cache_dir=str(tmp_path / "lora-gguf"))
    assert policy.backend.cite_pictures
    turns = [turn for task in env.tasks[:2] for turn in play_under_rules(env, policy, task.id)]
    held = [action for rules, action in turns if not rules["answer"]]
    closed = [action for rules, action in turns if not rules["tools"]]
    assert held and not any("<answer>" in action for action in held)
    assert closed and not any("<tool_call>" in action for action in closed)


@pytest.mark.slow
def test_llama_cpp_holds_the_answer_until_the_counted_pictures_were_looked_for(
        llama_cpp, lora_run, shared_backends, tmp_path):
    """``finish_count``: after the agent's own "flag 1 of 2" the GBNF lets no answer through."""
    from knowgen.agents.policy import llamacpp_policy
    from knowgen.config import EnvConfig
    from knowgen.envs.protocol import format_tool_call
    from knowgen.envs.searchgen import SearchGenEnv

    _, final = lora_run
    env = SearchGenEnv(EnvConfig(split="test", max_tool_calls=3), **shared_backends)
    task = next(t for t in env.tasks if t.id.startswith("two_flags"))
    env.reset(options={"task_id": task.id})
    env.step(format_tool_call("image_search", {"query": "Flag of Peru"},
                              think="Next, flag 1 of 2: the official flag of Peru."))
    backend = llamacpp_policy(str(final), threads=1, context=2048, max_new_tokens=64,
                              grammar=True, cite_pictures=True, finish_count=True,
                              cache_dir=str(tmp_path / "lora-gguf")).backend
    assert backend.reply_rules(env.messages(), None)["answer"] is False
    replies = []
    for seed in range(3):
        backend.reseed(seed)
        replies.append(backend.resample(env.messages())["content"])
    assert not any("<answer>" in reply for reply in replies)
    assert any("<tool_call>" in reply for reply in replies)


def test_llama_cpp_refuses_checkpoints_it_cannot_run(tmp_path, base_folder):
    from knowgen.agents.llamacpp_backend import base_gguf_of

    with pytest.raises(ConfigError, match="whole transformers weights"):
        base_gguf_of(base_folder, {})
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a GGUF file"):
        base_gguf_of(tmp_path, {"base": str(base_folder)})


@pytest.mark.slow
def test_a_packed_checkpoint_holds_half_precision_adapters_that_load_alike(lora_run, base_folder,
                                                                          tmp_path):
    from safetensors.numpy import load_file

    from knowgen.agents.checkpoint_format import pack_checkpoint
    from knowgen.agents.transformers_backend import TransformersBackend

    _, final = lora_run
    packed = pack_checkpoint(final, tmp_path / "packed")
    assert {p.name for p in packed.iterdir()} <= {p.name for p in final.iterdir()}
    assert {v.dtype.name for v in load_file(str(packed / "adapter_model.safetensors")).values()} \
        == {"float16"}
    size = (packed / "adapter_model.safetensors").stat().st_size
    assert size < 0.6 * (final / "adapter_model.safetensors").stat().st_size
    config = json.loads((packed / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["base_model_name_or_path"] == str(base_folder / "base.gguf")
    a = TransformersBackend(str(final), device="cpu", dtype="float32")
    b = TransformersBackend(str(packed), device="cpu", dtype="float32")
    ids = a.tokenizer("Flag of Peru", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(a.model(ids).logits, b.model(ids).logits, atol=1e-3)

"""SFT: a smoke run writes a loadable agent; only assistant tokens are trained."""

import copy
import json
import shutil

import pytest
import torch

from knowgen.agents.expert_data import read_jsonl
from knowgen.agents.train.config import load_train_config
from knowgen.agents.train.sft import AGENT_FILE, run_sft, sft_arguments
from knowgen.envs.trl_env import CompactSearchGenToolEnv, tool_schemas
from knowgen.errors import ConfigError


@pytest.mark.slow
def test_smoke_sft_writes_a_complete_checkpoint(smoke_run):
    cfg, final = smoke_run
    for name in ("config.json", "model.safetensors", "tokenizer.json", AGENT_FILE):
        assert (final / name).is_file(), name
    meta = json.loads((final / AGENT_FILE).read_text())
    assert meta["system_prompt"] == cfg.system_prompt and meta["view"] == "compact"
    assert meta["tools"] == tool_schemas(CompactSearchGenToolEnv)
    copied = json.loads((final.parent / "copy_pretrain.json").read_text())
    assert copied["steps"] == cfg.sft.copy_steps and copied["curve"][-1][0] == cfg.sft.copy_steps
    assert 0 <= copied["copy_accuracy_after"] <= 1
    assert meta["generation"]["max_new_tokens"] == cfg.generation.max_new_tokens
    assert sorted(p.name for p in (final.parent).glob("checkpoint-*")) == [
        "checkpoint-2", "checkpoint-4"]
    assert list((final.parent / "runs").rglob("events.out.tfevents.*"))
    # the every-token warm-up stage ran first and logged its own run
    assert list((final.parent / "lm_warmup" / "runs").rglob("events.out.tfevents.*"))
    stats = json.loads((final.parent / "token_stats.json").read_text())
    assert stats["kept"]["count"] >= 1 and stats["kept"]["max"] <= cfg.sft.max_length


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(smoke_run, tmp_path):
    """A finished run extended by a step goes on from its last checkpoint, and that extra
    step learns at the extended schedule's rate, not at the 0 the run ended on. (It runs
    on a copy, so the other tests still see the smoke run as it ended.)"""
    cfg = copy.deepcopy(smoke_run[0])
    ended = _weights(smoke_run[1])
    cfg.output_dir = str(shutil.copytree(cfg.output_dir, tmp_path / "run"))
    cfg.sft.resume, cfg.sft.max_steps = True, 5
    final = run_sft(cfg)
    state = json.loads((final.parent / "checkpoint-5" / "trainer_state.json").read_text())
    assert state["global_step"] == 5
    after = _weights(final)
    assert after.keys() == ended.keys() and ended
    assert any(not torch.equal(ended[k], after[k]) for k in ended)


def _weights(folder):
    """The trainable weights a checkpoint folder holds (adapter or whole model)."""
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    assert files, sorted(p.name for p in folder.iterdir())
    return {f"{f.name}:{k}": v for f in files for k, v in load_file(str(f)).items()}


@pytest.mark.slow
def test_resume_without_checkpoint_is_refused(tmp_path, expert_records):
    from knowgen.agents.expert_data import write_jsonl

    data = write_jsonl(expert_records[:2], tmp_path / "d.jsonl")
    cfg = load_train_config("smoke", {"output_dir": str(tmp_path), "sft.data": str(data),
                                      "sft.resume": True})
    with pytest.raises(ConfigError, match="no checkpoint"):
        run_sft(cfg)


def _trainer_batch(smoke_run):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    from knowgen.agents.tiny import load_tokenizer

    cfg, final = smoke_run
    records = read_jsonl(cfg.sft.data)
    record = max(records, key=lambda r: len(r["messages"]))  # one with tool results
    model = AutoModelForCausalLM.from_pretrained(str(final))
    tokenizer = load_tokenizer(final)
    trainer = SFTTrainer(model=model, args=sft_arguments(cfg, final.parent / "probe"),
                         train_dataset=Dataset.from_list([{"messages": record["messages"],
                                                           "tools": record["tools"]}]),
                         processing_class=tokenizer)
    batch = trainer.data_collator([trainer.train_dataset[0]])
    return model, tokenizer, batch["input_ids"][0], batch["labels"][0]


def _loss_up_to(model, input_ids, labels, pos, new_token=None):
    ids, lab = input_ids[: pos + 1].clone(), labels[: pos + 1].clone()
    if new_token is not None:
        ids[pos] = new_token
        if lab[pos] != -100:
            lab[pos] = new_token
    with torch.no_grad():
        return model(input_ids=ids[None], labels=lab[None]).loss.item()


@pytest.mark.slow
def test_tool_tokens_are_not_trained_and_assistant_tokens_are(smoke_run):
    model, tokenizer, input_ids, labels = _trainer_batch(smoke_run)
    ids = input_ids.tolist()
    open_id, close_id = (tokenizer.convert_tokens_to_ids(t)
                         for t in ("<tool_response>", "</tool_response>"))
    start, end = ids.index(open_id), ids.index(close_id)
    tool_pos = (start + end) // 2
    first_turn = ids.index(tokenizer.convert_tokens_to_ids("<think>"))  # the first assistant turn
    call_pos = ids.index(tokenizer.convert_tokens_to_ids("<tool_call>"), first_turn) + 3
    assert labels[tool_pos] == -100 and labels[call_pos] != -100
    other = (ids[tool_pos] + 7) % len(tokenizer)
    # Flipping a tool-response token leaves the loss up to it unchanged ...
    assert _loss_up_to(model, input_ids, labels, tool_pos, other) == _loss_up_to(
        model, input_ids, labels, tool_pos)
    # ... flipping an assistant token changes it.
    other = (ids[call_pos] + 7) % len(tokenizer)
    assert _loss_up_to(model, input_ids, labels, call_pos, other) != pytest.approx(
        _loss_up_to(model, input_ids, labels, call_pos), abs=1e-6)
    trained = tokenizer.decode([t for t, lab in zip(ids, labels.tolist()) if lab != -100])
    untrained = tokenizer.decode([t for t, lab in zip(ids, labels.tolist()) if lab == -100])
    assert "<answer>" in trained and "<tool_call>" in trained and "<|im_end|>" in trained
    assert "--- end of" not in trained and "<tool_response>" not in trained
    assert "<tool_response>" in untrained and '"name": "search"' in untrained  # schemas


def test_warmup_stage_trains_every_token(tmp_path):
    cfg = load_train_config("tiny", {"sft.lm_warmup_epochs": 0.5, "sft.max_steps": 9})
    warm, main = sft_arguments(cfg, tmp_path, True), sft_arguments(cfg, tmp_path)
    assert not warm.assistant_only_loss and warm.num_train_epochs == 0.5 and warm.max_steps == -1
    assert main.assistant_only_loss and main.num_train_epochs == 4 and main.max_steps == 9


def test_unknown_setting_is_refused_with_a_hint():
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        load_train_config("smoke", {"sft.epoch": 2})
    with pytest.raises(ConfigError, match="preset"):
        load_train_config("huge")


def test_compact_records_show_what_the_agent_shows_its_model(tmp_path, expert_records,
                                                             shared_backends):
    """Train/inference consistency of the compact view: replaying an SFT record's turns
    through the agent gives the same system prompt, request and tool messages."""
    from knowgen.agents.agent import GenSearcherAgent
    from knowgen.agents.expert_data import write_jsonl
    from knowgen.agents.train.sft_data import sft_records
    from knowgen.config import EnvConfig
    from knowgen.envs.searchgen import SearchGenEnv
    from knowgen.envs.trl_env import CompactSearchGenToolEnv

    data = write_jsonl(expert_records, tmp_path / "d.jsonl")
    cfg = load_train_config("smoke", {"output_dir": str(tmp_path), "sft.data": str(data),
                                      "view": "compact"})
    records = sft_records(cfg)
    schemas = tool_schemas(CompactSearchGenToolEnv)
    assert records and all(json.loads(r["tools"]) == schemas for r in records)
    record = max(records, key=lambda r: len(r["messages"]))
    replies = iter(m for m in record["messages"] if m["role"] == "assistant")
    prompts = []

    class Replay:
        fmt, view, tools, system_prompt = "hf", "compact", schemas, cfg.system_prompt

        def complete(self, messages, tools):
            prompts.append(messages)
            return dict(next(replies))

    env = SearchGenEnv(EnvConfig(split="train", top_k=3), **shared_backends)
    agent = GenSearcherAgent(Replay())
    obs, info = env.reset(options={"task_id": record["task_id"]})
    done = False
    while not done:
        obs, _, term, trunc, info = env.step(agent.act(obs, info))
        done = term or trunc
    assert info["answer"] is not None and agent.tools == schemas
    want = [(m["role"], m.get("content")) for m in record["messages"][:-1]
            if m["role"] != "assistant"]
    assert [(m["role"], m.get("content")) for m in prompts[-1] if m["role"] != "assistant"] == want
    assert "IMG_001" in want[-1][1] and "local_path" not in want[-1][1]


def test_world_pages_give_names_fewer_tokens(tmp_path, expert_records):
    """With tokenizer.world_pages the vocabulary also learns from the search corpus, so a
    test-split name the agent must copy from a result takes fewer tokens."""
    from knowgen.agents.train.sft import obtain_tokenizer

    names = [" Argentina", " Ouagadougou", " Kazakhstan", " Saudi Arabia"]
    sizes = {}
    for pages in (False, True):
        cfg = load_train_config("smoke", {"output_dir": str(tmp_path / str(pages)),
                                          "tokenizer.vocab_size": 1200,
                                          "tokenizer.world_pages": pages})
        tokenizer = obtain_tokenizer(cfg, sft_records_of(cfg, expert_records, tmp_path))
        sizes[pages] = sum(len(tokenizer(n, add_special_tokens=False)["input_ids"])
                           for n in names)
        assert (tmp_path / str(pages) / "tokenizer" / "tokenizer.json").is_file()
    assert sizes[True] < sizes[False]


def sft_records_of(cfg, records, tmp_path):
    from knowgen.agents.expert_data import write_jsonl
    from knowgen.agents.train.sft_data import sft_records

    cfg.sft.data = str(write_jsonl(records, tmp_path / "records.jsonl"))
    return sft_records(cfg)


def test_piece_names_are_made_after_the_tokenizer(tmp_path, expert_records):
    """With sft.augment_names=pieces the tokenizer is trained on the records as they are,
    then each renamed copy's names are made of that tokenizer's word pieces."""
    from knowgen.agents.augment import PieceWords
    from knowgen.agents.train.sft import augmented_records, obtain_tokenizer

    cfg = load_train_config("smoke", {"output_dir": str(tmp_path / "a"),
                                      "sft.augment_copies": 2, "sft.augment_names": "pieces"})
    records = sft_records_of(cfg, expert_records[:4], tmp_path)
    out, tokenizer = augmented_records(cfg, records)
    assert len(out) == 3 * len(records) and out[:len(records)] == records
    plain = copy.deepcopy(cfg)
    plain.output_dir = str(tmp_path / "b")
    assert tokenizer.get_vocab() == obtain_tokenizer(plain, records).get_vocab()
    pieces = PieceWords(tokenizer)
    words = [w for r in out[len(records):] for s, p in r["pseudo_names"].items()
             if s.istitle() for w in p.split()]
    splits = [tokenizer(" " + w, add_special_tokens=False)["input_ids"] for w in words]
    made = [ids for ids in splits if len(ids) <= 3 and ids[0] in pieces.starts
            and set(ids[1:]) <= set(pieces.continuations)]
    assert len(words) >= 8 and len(made) >= 0.8 * len(words)
    cfg.sft.augment_names = "letters"
    with pytest.raises(ConfigError, match="augment_names must be one of syllables, pieces"):
        augmented_records(cfg, records)


def test_max_records_takes_an_even_stride_through_the_data():
    from knowgen.agents.train.sft_data import spread

    records = [{"i": i} for i in range(10)]
    assert [r["i"] for r in spread(records, 4)] == [0, 2, 5, 7]
    assert spread(records, None) == records and spread(records, 50) == records
    with pytest.raises(ConfigError, match="max_records"):
        spread(records, 0)


def test_a_stride_offset_takes_records_the_first_stride_left_out():
    from knowgen.agents.train.sft_data import spread

    records = [{"i": i} for i in range(2456)]
    first = {r["i"] for r in spread(records, 900)}
    second = [r["i"] for r in spread(records, 900, offset=1)]
    assert len(set(second)) == 900 and not first & set(second)
    assert second == sorted(second)  # order kept: family by family, as the data is written
    assert [r["i"] for r in spread(records[:10], 4, offset=1)] == [1, 3, 6, 8]
    with pytest.raises(ConfigError, match="stride_offset must be 0 or more"):
        spread(records, 900, offset=-1)


@pytest.fixture(scope="module")
def pictures_records(shared_backends):
    """Guided transcripts of tasks for 1, 2, 3 and 1 pictures, in order (raw records)."""
    from knowgen.agents.expert_data import ExpertDataConfig, turns_to_messages
    from knowgen.agents.expert_workers import ExpertWorker

    expert = ExpertDataConfig(expert="guided", caps=False, env_overrides=shared_backends)
    worker = ExpertWorker(expert)
    wanted = {}
    for task in worker.env.tasks:
        wanted.setdefault(len(task.facts.entities), task.id)
    assert {1, 2, 3} <= set(wanted)
    records = []
    for n in (1, 2, 3, 1):
        episode = worker.run(wanted[n])
        assert episode["reward"] >= expert.min_reward, wanted[n]
        records.append({"messages": turns_to_messages(episode["request"], episode["turns"],
                                                      expert.system_prompt),
                        "tools": json.dumps(tool_schemas()), "task_id": wanted[n]})
    return records


def test_records_citing_several_pictures_are_trained_on_several_times(tmp_path, pictures_records):
    """sft.several_copies repeats the transcripts whose answer cites more than one picture
    (read from the answer itself, in the view SFT trains on); one-picture ones stay single."""
    from knowgen.agents.train.sft_data import cited_pictures, with_several_copied

    cfg = load_train_config("smoke", {"output_dir": str(tmp_path)})
    compact = sft_records_of(cfg, pictures_records, tmp_path)
    assert [cited_pictures(r) for r in compact] == [1, 2, 3, 1]
    copied = with_several_copied(compact, 3)
    assert [cited_pictures(r) for r in copied] == [1, 2, 2, 2, 3, 3, 3, 1]
    assert with_several_copied(compact, 1) == compact
    assert cited_pictures({"messages": [{"role": "assistant", "content": "no answer"}]}) == 0
    with pytest.raises(ConfigError, match="several_copies must be at least 1"):
        with_several_copied(compact, 0)


def test_a_second_stage_takes_unseen_records_with_several_pictures_balanced(tmp_path,
                                                                             pictures_records):
    """sft.exclude_stride leaves out what a first stage's stride took; sft.singles_per_several
    keeps every several-picture record and that many single ones for each."""
    from knowgen.agents.train.sft_data import balanced, cited_pictures, not_taken_by, spread

    records = [dict(pictures_records[i % 4], i=i) for i in range(40)]
    first = {r["i"] for r in spread(records, 10)}
    unseen = not_taken_by(records, 10)
    assert len(unseen) == 30 and not first & {r["i"] for r in unseen}
    assert not_taken_by(records, None) == records
    assert not_taken_by(records, 50) == []  # a stride longer than the data took it all
    kept = balanced(unseen, 0.5)
    several = [r for r in unseen if cited_pictures(r) > 1]
    assert [r for r in kept if cited_pictures(r) > 1] == several
    assert sum(cited_pictures(r) == 1 for r in kept) == round(len(several) * 0.5)
    assert [r["i"] for r in kept] == sorted(r["i"] for r in kept)
    assert balanced(unseen, None) == unseen
    assert all(cited_pictures(r) > 1 for r in balanced(unseen, 0))
    cfg = load_train_config("smoke", {"output_dir": str(tmp_path), "sft.exclude_stride": 2,
                                      "sft.singles_per_several": 1.0})
    staged = sft_records_of(cfg, pictures_records, tmp_path)
    assert [cited_pictures(r) for r in staged] == [2, 1]  # the stride of 2 took the 1st and 3rd
    with pytest.raises(ConfigError, match="exclude_stride must be at least 1"):
        not_taken_by(records, 0)
    with pytest.raises(ConfigError, match="singles_per_several must be 0 or more"):
        balanced(records, -1)
    with pytest.raises(ConfigError, match="has none"):
        balanced([pictures_records[0]], 1.0)


def test_a_stage_can_keep_to_chosen_task_families(tmp_path, pictures_records):
    """sft.templates keeps the records whose world task id starts with one of the named
    templates (after exclude_stride); a misspelt name gets a hint, records with no world
    task id (upstream transcripts) a ConfigError that says to unset it."""
    from knowgen.agents.train.sft_data import of_templates, record_template
    from knowgen.errors import UnknownNameError

    families = [record_template(r) for r in pictures_records]
    assert all(families) and families[0] != families[1]
    assert record_template({"task_id": "two_flags-fr-es"}) == "two_flags"
    cfg = load_train_config("smoke", {"output_dir": str(tmp_path),
                                      "sft.templates": f"{families[1]}, {families[2]}"})
    kept = sft_records_of(cfg, pictures_records, tmp_path)
    assert [record_template(r) for r in kept] == families[1:3]
    cfg = load_train_config("smoke", {"output_dir": str(tmp_path), "sft.exclude_stride": 2,
                                      "sft.templates": [families[0], families[2]]})
    staged = sft_records_of(cfg, pictures_records, tmp_path)
    # the stride of 2 took the 1st and 3rd records, then the filter kept the 4th (the 1st's task)
    assert [record_template(r) for r in staged] == [families[3]] == [families[0]]
    assert of_templates(pictures_records, None) == pictures_records
    with pytest.raises(UnknownNameError, match=f"Did you mean '{families[1]}'"):
        of_templates(pictures_records, [families[1][:-1]])
    with pytest.raises(ConfigError, match="unset it"):
        of_templates([{"messages": []}], ["two_flags"])


def test_a_stage_can_weigh_every_family_alike(tmp_path, pictures_records):
    """sft.per_template keeps at most that many records of each task family, at an even
    stride within it and in the data's order, so that a family with a small candidate pool
    weighs as much as the others; records without a world task id are refused."""
    from knowgen.agents.train.sft_data import (
        not_kept_per_template,
        per_template,
        record_template,
    )

    # 12 records of pictures_records[0]'s family, 3 of pictures_records[1]'s, interleaved
    big = [dict(pictures_records[0], i=i) for i in range(12)]
    small = [dict(pictures_records[1], i=100 + i) for i in range(3)]
    records = big[:6] + small + big[6:]
    kept = per_template(records, 4)
    by_family = {}
    for record in kept:
        by_family.setdefault(record_template(record), []).append(record["i"])
    assert by_family == {record_template(big[0]): [0, 3, 6, 9],
                         record_template(small[0]): [100, 101, 102]}
    assert [r["i"] for r in kept] == [0, 3, 100, 101, 102, 6, 9]  # the data's order
    assert per_template(records, None) == records
    assert per_template(records, 50) == records
    cfg = load_train_config("smoke", {"output_dir": str(tmp_path), "sft.per_template": 1})
    staged = sft_records_of(cfg, pictures_records, tmp_path)
    assert len(staged) == len({record_template(r) for r in pictures_records})
    with pytest.raises(ConfigError, match="per_template must be at least 1"):
        per_template(records, 0)
    with pytest.raises(ConfigError, match="unset it"):
        per_template([{"messages": []}], 2)
    # a second stage trains on what a first stage with that cap left out
    second = load_train_config("smoke", {"output_dir": str(tmp_path),
                                         "sft.exclude_per_template": 1})
    assert len(sft_records_of(second, pictures_records, tmp_path)) == len(
        pictures_records) - len(staged)
    left = not_kept_per_template(records[1:], 4, among=records)
    assert [r["i"] for r in left] == [1, 2, 4, 5, 7, 8, 10, 11]  # of what remains
    with pytest.raises(ConfigError, match="exclude_per_template must be at least 1"):
        sft_records_of(load_train_config("smoke", {"output_dir": str(tmp_path),
                                                   "sft.exclude_per_template": 0}),
                       pictures_records, tmp_path)


def test_gradient_checkpointing_reaches_the_trainers(tmp_path):
    from knowgen.agents.train.grpo import grpo_arguments
    from knowgen.agents.train.sft import sft_arguments

    cfg = load_train_config("smollm2", {"output_dir": str(tmp_path)})
    assert cfg.sft.gradient_checkpointing is False and cfg.sft.lora.r == 16
    assert sft_arguments(cfg, tmp_path).gradient_checkpointing is False
    assert grpo_arguments(cfg, tmp_path).gradient_checkpointing is True  # 4 rollouts at once
    assert sft_arguments(load_train_config("smoke"), tmp_path).gradient_checkpointing is True
    assert cfg.precision == "auto"  # bf16 where the CPU computes in it (test below)


def test_precision_reaches_the_trainers(tmp_path):
    from knowgen.agents.train.grpo import grpo_arguments
    from knowgen.agents.train.sft import cpu_has_bf16

    native = (torch.cuda.is_bf16_supported() if torch.cuda.is_available()
              else cpu_has_bf16() is True)
    for precision, bf16 in (("auto", native), ("fp32", False), ("bf16", True)):
        cfg = load_train_config("smollm2", {"output_dir": str(tmp_path), "precision": precision})
        assert sft_arguments(cfg, tmp_path).bf16 is bf16
        assert grpo_arguments(cfg, tmp_path).bf16 is bf16
    cfg = load_train_config("smollm2", {"output_dir": str(tmp_path), "precision": "half"})
    with pytest.raises(ConfigError, match="precision must be one of auto, bf16, fp32"):
        sft_arguments(cfg, tmp_path)
    with pytest.raises(ConfigError, match="precision must be one of"):
        run_sft(cfg)  # refused before any data is read or generated
    assert not (tmp_path / "sft_data.jsonl").exists()


def test_bf16_on_a_cpu_without_it_warns_and_names_fp32(tmp_path, monkeypatch, caplog):
    from knowgen.agents.train import sft

    intel = tmp_path / "intel"
    intel.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16\n")
    amd = tmp_path / "amd"
    amd.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2\n\nprocessor\t: 1\n"
                   "flags\t\t: fpu sse2 avx2\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    assert sft.cpu_has_bf16(intel) is True and sft.cpu_has_bf16(arm) is True
    assert sft.cpu_has_bf16(amd) is False
    assert sft.cpu_has_bf16(tmp_path / "none") is None  # no such file: say nothing
    monkeypatch.setattr(sft, "_has_cuda", lambda: False)
    monkeypatch.setattr(sft, "cpu_has_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="knowgen.agents.train.sft"):
        assert sft.use_bf16("bf16") is True  # asked for: kept, with the warning
        assert sft.use_bf16("fp32") is False and sft.use_bf16("auto") is False
    assert caplog.text.count("--set precision=fp32") == 1
    monkeypatch.setattr(sft, "cpu_has_bf16", lambda: True)
    caplog.clear()
    assert sft.use_bf16("bf16") is True and "precision=fp32" not in caplog.text
    assert sft.use_bf16("auto") is True and sft.use_bf16("fp32") is False  # native: auto picks it
    monkeypatch.setattr(sft, "cpu_has_bf16", lambda: None)  # flags unknown: auto stays float32
    assert sft.use_bf16("auto") is False


@pytest.mark.slow
def test_bf16_run_trains_and_keeps_float32_weights(tmp_path, expert_records):
    from safetensors.torch import load_file

    from knowgen.agents.expert_data import write_jsonl

    data = write_jsonl(expert_records, tmp_path / "d.jsonl")
    cfg = load_train_config("smoke", {
        "output_dir": str(tmp_path), "sft.data": str(data), "precision": "bf16",
        "sft.copy_steps": 0, "sft.lm_warmup_epochs": 0, "sft.augment_copies": 0,
        "sft.max_steps": 2})
    final = run_sft(cfg)
    state = json.loads((final.parent / "checkpoint-2" / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert state["global_step"] == 2 and losses and all(0 < x < 100 for x in losses)
    weights = load_file(str(final / "model.safetensors"))
    assert weights and {t.dtype for t in weights.values()} == {torch.float32}

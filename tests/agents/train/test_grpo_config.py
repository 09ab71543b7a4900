"""GRPO settings: vLLM rollouts and precision (GPU only), and which tasks are the prompts."""

import pytest

from knowgen.agents.train.config import load_train_config
from knowgen.agents.train.grpo import _vllm_arguments, grpo_arguments, task_ids_of
from knowgen.config import CLEAR
from knowgen.errors import ConfigError, UnknownNameError
from knowgen.registry import BENCHMARKS


def test_vllm_fields_reach_grpo_config_only_when_asked(tmp_path, monkeypatch):
    from knowgen.agents.train import sft

    cfg = load_train_config("smoke", {})
    assert _vllm_arguments(cfg.grpo) == {}
    monkeypatch.setattr(sft, "_has_cuda", lambda: False)
    monkeypatch.setattr(sft, "cpu_has_bf16", lambda: False)
    args = grpo_arguments(cfg, tmp_path)
    assert args.use_vllm is False and args.bf16 is False  # CPU without bf16: float32, no vLLM
    monkeypatch.setattr(sft, "cpu_has_bf16", lambda: True)
    assert grpo_arguments(cfg, tmp_path).bf16 is (cfg.precision in ("auto", "bf16"))
    cfg = load_train_config("paper", {"grpo.use_vllm": True,
                                      "grpo.vllm_server_base_url": "http://10.0.0.2:8000"})
    assert _vllm_arguments(cfg.grpo) == {"use_vllm": True, "vllm_mode": "server",
                                         "vllm_server_base_url": "http://10.0.0.2:8000"}
    cfg = load_train_config("paper", {"grpo.use_vllm": True, "grpo.vllm_mode": "colocate"})
    assert _vllm_arguments(cfg.grpo) == {"use_vllm": True, "vllm_mode": "colocate"}


def test_unknown_vllm_mode_is_refused():
    cfg = load_train_config("paper", {"grpo.use_vllm": True, "grpo.vllm_mode": "remote"})
    with pytest.raises(ConfigError, match="vllm_mode"):
        _vllm_arguments(cfg.grpo)


def test_grpo_templates_keep_only_those_families_of_the_world_split(caplog):
    cfg = load_train_config("smoke", {"grpo.templates": "capital_of_city, two_flags",
                                      "grpo.split": "test", "grpo.limit": CLEAR})
    with caplog.at_level("INFO", logger="knowgen.agents.train.grpo"):
        ids = task_ids_of(cfg)
    assert f"GRPO prompts: {len(ids)} of the" in caplog.text
    tasks = {t.id: t for t in BENCHMARKS.create("world").tasks("test")}
    assert ids and {tasks[i].facts.template for i in ids} == {"capital_of_city", "two_flags"}
    wanted = [t.id for t in tasks.values()
              if t.facts.template in ("capital_of_city", "two_flags")]
    assert ids == wanted  # the split's order, nothing else dropped
    cfg = load_train_config("smoke", {"grpo.templates": ["two_flags"], "grpo.split": "test",
                                      "grpo.limit": 2})
    assert task_ids_of(cfg) == [i for i in wanted if i.startswith("two_flags")][:2]


def test_an_unknown_grpo_template_is_named_with_a_suggestion():
    cfg = load_train_config("smoke", {"grpo.templates": ["capital_of_cities"], "grpo.split": "test"})
    with pytest.raises(UnknownNameError, match="Did you mean 'capital_of_city'"):
        task_ids_of(cfg)


def test_grpo_reword_says_train_prompts_otherwise_and_keeps_each_task(caplog):
    from knowgen.agents.train.grpo import grpo_dataset, prompt_tasks, reworded_requests

    cfg = load_train_config("smoke", {"grpo.split": "train", "grpo.limit": 40,
                                      "grpo.reword": 1.0})
    tasks = prompt_tasks(cfg)
    with caplog.at_level("INFO", logger="knowgen.agents.train.grpo"):
        requests = reworded_requests(cfg, tasks, "train")
    assert set(requests) == {t.id for t in tasks}
    changed = [t for t in tasks if requests[t.id] != t.prompt]
    assert len(changed) >= len(tasks) // 2
    assert f"GRPO prompts: {len(changed)} of {len(tasks)} requests reworded" in caplog.text
    for task in changed:  # a quoted caption is still asked for, in its own case
        for quoted in task.prompt.split('"')[1::2]:
            assert f'"{quoted}"' in requests[task.id]
    assert requests == reworded_requests(cfg, tasks, "train")  # one seed, one wording
    rows = grpo_dataset(cfg, [t.id for t in tasks], requests)
    assert [r["request"] for r in rows] == [requests[t.id] for t in tasks]
    assert "request" not in grpo_dataset(cfg, [t.id for t in tasks]).column_names
    assert reworded_requests(load_train_config("smoke", {}), tasks, "train") is None


def test_grpo_reword_is_refused_where_it_cannot_apply():
    cfg = load_train_config("smoke", {"grpo.split": "test", "grpo.limit": 4, "grpo.reword": 0.5})
    from knowgen.agents.train.grpo import prompt_tasks, reworded_requests

    tasks = prompt_tasks(cfg)
    with pytest.raises(ConfigError, match="grpo.split=train"):
        reworded_requests(cfg, tasks, "test")
    cfg = load_train_config("smoke", {"grpo.limit": 4, "grpo.reword": 1.5})
    with pytest.raises(ConfigError, match="between 0 and 1"):
        reworded_requests(cfg, tasks, "train")

"""GRPO settings that only matter on GPUs: vLLM rollouts and precision."""

import pytest

from knowgen.agents.train.config import load_train_config
from knowgen.agents.train.grpo import _vllm_arguments, grpo_arguments
from knowgen.errors import ConfigError


def test_vllm_fields_reach_grpo_config_only_when_asked(tmp_path):
    cfg = load_train_config("smoke", {})
    assert _vllm_arguments(cfg.grpo) == {}
    args = grpo_arguments(cfg, tmp_path)
    assert args.use_vllm is False and args.bf16 is False  # CPU: full precision, no vLLM
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

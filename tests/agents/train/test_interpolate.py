"""Interpolating two LoRA adapters of one small Llama built from a config."""

import json

import pytest

from knowgen.errors import ConfigError, DataError

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """A small Llama folder and two LoRA adapters of it with other ranks, alphas and random
    weights (B not zero, so each changes the model)."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("interpolate")
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))
    base.save_pretrained(root / "base")
    folders = []
    for name, r, alpha in (("first", 4, 8), ("second", 2, 16)):
        model = get_peft_model(
            LlamaForCausalLM.from_pretrained(root / "base"),
            LoraConfig(r=r, lora_alpha=alpha, target_modules=["q_proj", "v_proj", "up_proj"],
                       init_lora_weights=False))
        model.save_pretrained(root / name)
        (root / name / "knowgen_agent.json").write_text(json.dumps({"base": "tiny"}))
        folders.append(root / name)
    return root, folders


def _merged(root, adapter):
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    model = PeftModel.from_pretrained(LlamaForCausalLM.from_pretrained(root / "base"), adapter)
    return {k: v.detach().clone() for k, v in model.merge_and_unload().state_dict().items()}


def test_the_interpolated_adapter_changes_each_weight_by_the_weighted_changes(adapters):
    from knowgen.agents.interpolate import interpolate_adapters

    root, (first, second) = adapters
    out = interpolate_adapters(first, second, 0.3, root / "mix")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 6
    assert json.loads((out / "knowgen_agent.json").read_text())["interpolated"]["weight"] == 0.3
    w1, w2, mix = _merged(root, first), _merged(root, second), _merged(root, out)
    changed = 0
    for key, value in mix.items():
        expected = 0.7 * w1[key] + 0.3 * w2[key]  # base + 0.7 d1 + 0.3 d2
        assert torch.allclose(value, expected, atol=1e-5), key
        changed += not torch.allclose(w1[key], w2[key])
    assert changed >= 6  # q, v and up of two layers moved
    ends = [_merged(root, interpolate_adapters(first, second, w, root / f"w{w}")) for w in (0, 1)]
    for key in mix:
        assert torch.allclose(ends[0][key], w1[key], atol=1e-5)
        assert torch.allclose(ends[1][key], w2[key], atol=1e-5)


def test_a_weight_above_one_extrapolates_past_the_second_adapter(adapters):
    from knowgen.agents.interpolate import interpolate_adapters

    root, (first, second) = adapters
    out = interpolate_adapters(first, second, 2.5, root / "past")
    assert json.loads((out / "knowgen_agent.json").read_text())["interpolated"]["weight"] == 2.5
    w1, w2, past = _merged(root, first), _merged(root, second), _merged(root, out)
    for key, value in past.items():
        expected = w1[key] + 2.5 * (w2[key] - w1[key])  # base + d1 + 2.5 (d2 - d1)
        assert torch.allclose(value, expected, atol=1e-4), key


def test_bad_inputs_are_refused_with_what_to_do(adapters, tmp_path):
    from knowgen.agents.interpolate import interpolate_adapters

    root, (first, second) = adapters
    with pytest.raises(ConfigError, match="finite number"):
        interpolate_adapters(first, second, float("nan"), tmp_path / "a")
    with pytest.raises(ConfigError, match="exists"):
        interpolate_adapters(first, second, 0.5, root)
    with pytest.raises(DataError, match="not a LoRA adapter folder"):
        interpolate_adapters(first, root / "base", 0.5, tmp_path / "b")
    other = tmp_path / "other"
    other.mkdir()
    for path in second.iterdir():
        (other / path.name).write_bytes(path.read_bytes())
    config = json.loads((other / "adapter_config.json").read_text())
    config["target_modules"] = ["k_proj"]
    (other / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="differ in target_modules"):
        interpolate_adapters(first, other, 0.5, tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_the_cli_writes_the_folder(adapters, capsys):
    from knowgen.cli import main

    root, (first, second) = adapters
    assert main(["train", "interpolate", str(first), str(second), "--weight", "0.25",
                 "--out", str(root / "cli")]) == 0
    assert "Interpolation done" in capsys.readouterr().out
    assert (root / "cli" / "adapter_model.safetensors").is_file()

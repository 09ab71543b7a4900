"""Registries, configs and the light import."""

import subprocess
import sys

import pytest

from knowgen.config import EnvConfig, EvalConfig, field_docs, load_config
from knowgen.errors import ConfigError, UnknownNameError
from knowgen.registry import GENERATORS, POLICIES, Registry, parse_spec


def test_parse_spec_types_values():
    name, kw = parse_spec("diffusers:path=/m/q,steps=4,fast=true,scale=1.5,ids=[1,2]")
    assert name == "diffusers"
    assert kw == {"path": "/m/q", "steps": 4, "fast": True, "scale": 1.5, "ids": [1, 2]}


def test_parse_spec_rejects_bare_words():
    with pytest.raises(ConfigError, match="key=value"):
        parse_spec("compositor:oops")


def test_unknown_name_suggests():
    with pytest.raises(UnknownNameError) as exc:
        POLICIES.get("scriptd")
    assert "Did you mean 'scripted'?" in str(exc.value)
    assert "oracle" in str(exc.value)


def test_registry_lazy_and_callable_entries():
    reg = Registry("thing", {"od": "collections:OrderedDict"})
    reg.register("lst", list)
    assert reg.create("lst") == []
    assert reg.get("od").__name__ == "OrderedDict"
    assert reg.names() == ["lst", "od"]


def test_bad_constructor_arguments_are_config_errors():
    reg = Registry("thing", {"od": "collections:OrderedDict"})
    reg.register("int", int)
    with pytest.raises(ConfigError, match="Cannot build"):
        reg.create("int:nope=1")


def test_plugin_entry_points_are_read(monkeypatch):
    from importlib import metadata

    ep = metadata.EntryPoint(name="generator.plugged", value="collections:Counter",
                             group="knowgen.plugins")
    monkeypatch.setattr(metadata, "entry_points", lambda group: [ep] if group == "knowgen.plugins" else [])
    reg = Registry("generator", {})
    assert "plugged" in reg.names()
    assert reg.create("plugged") == {}


def test_every_config_field_has_a_docstring():
    for cls in (EnvConfig, EvalConfig):
        docs = field_docs(cls)
        missing = [f for f in cls.__dataclass_fields__ if not docs.get(f)]
        assert not missing, f"{cls.__name__} fields without docstring: {missing}"


def test_yaml_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("policy: oracle\nlimit: 3\nenv:\n  alpha: 0.3\n  split: train\n")
    cfg = load_config(EvalConfig, path, {"limit": 5, "env.split": None})
    assert (cfg.policy, cfg.limit, cfg.env.alpha, cfg.env.split) == ("oracle", 5, 0.3, "train")


def test_yaml_unknown_key_is_a_clear_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("env:\n  alhpa: 0.3\n")
    with pytest.raises(ConfigError, match="Did you mean 'alpha'"):
        load_config(EvalConfig, path)


def test_a_yaml_list_for_a_text_setting_is_refused_not_turned_into_text(tmp_path):
    """A list where one string is expected used to become "['a', 'b']" silently."""
    path = tmp_path / "c.yaml"
    path.write_text("tasks:\n  - flag_by_neighbours-*\n  - two_flags-*\n")
    with pytest.raises(ConfigError, match="tasks must be one str, got a list .*comma-separated"):
        load_config(EvalConfig, path)
    path.write_text("tasks: flag_by_neighbours-*,two_flags-*\nlimit: [3]\n")
    with pytest.raises(ConfigError, match="limit must be one int, got a list"):
        load_config(EvalConfig, path)
    path.write_text("tasks: flag_by_neighbours-*,two_flags-*\n")
    assert load_config(EvalConfig, path).tasks == "flag_by_neighbours-*,two_flags-*"


def test_import_knowgen_does_not_import_torch():
    code = ("import sys, knowgen, knowgen.envs, knowgen.registry, knowgen.cli;"
            "GENERATORS = knowgen.registry.GENERATORS;"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_generators_registry_has_the_cpu_default():
    assert "compositor" in GENERATORS.names()


def test_read_json_items_reads_arrays_and_lines_and_names_what_is_wrong(tmp_path):
    from knowgen.errors import DataError
    from knowgen.fileio import read_json_items

    (tmp_path / "a.json").write_text('  [{"id": 1}, 2]', encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"id": 1}\n\n"two"\n', encoding="utf-8")
    assert read_json_items(tmp_path / "a.json") == [{"id": 1}, 2]
    assert read_json_items(tmp_path / "b.jsonl") == [{"id": 1}, "two"]
    cases = {
        "missing.json": (None, "Task file .*missing.json does not exist"),
        "broken.json": ('[{"id": 1},\n oops]', r"broken.json is not valid JSON \(line 2"),
        "broken.jsonl": ('{"id": 1}\n{oops\n', "broken.jsonl:2 is not valid JSON"),
        "latin1.jsonl": ("caf\xe9".encode("latin-1"), "not UTF-8 text"),
        "deep.json": ("[" * 100000 + "]" * 100000, "deep.json nests too deeply"),
        "deep.jsonl": ("{}\n" + "[" * 100000 + "]" * 100000, r"deep.jsonl:2 is not valid JSON \(nests"),
        "big.jsonl": ("{}\n" * 1000, "larger than"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content, encoding="utf-8")
        limit = 2**20 if name != "big.jsonl" else 100
        with pytest.raises(DataError, match=message):
            read_json_items(path, what="Task file", max_bytes=limit)

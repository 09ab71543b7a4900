"""Executor specs, the missing-Ray message and GPU placement rules (no cluster needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from knowgen.errors import ConfigError, UnknownNameError
from knowgen.eval.executors import LocalExecutor, gpu_reasons, parse_executor


def test_executor_specs_are_read_with_the_spec_parser_and_bad_ones_say_what_to_do():
    name, opts = parse_executor("ray:address=auto,num_cpus=1,num_gpus=0,actors=3")
    assert name == "ray" and (opts.address, opts.actors, opts.num_cpus, opts.num_gpus) == (
        "auto", 3, 1, 0)
    assert parse_executor("local") == ("local", None)
    with pytest.raises(ConfigError, match="Did you mean 'actors'"):
        parse_executor("ray:actor=2")
    with pytest.raises(UnknownNameError, match="Did you mean 'ray'"):
        parse_executor("rey")
    with pytest.raises(ConfigError, match="--workers"):
        parse_executor("local:workers=2")
    with pytest.raises(ConfigError, match="actors must be at least 1"):
        parse_executor("ray:actors=0")
    with pytest.raises(ConfigError, match="must be int"):
        parse_executor("ray:actors=two")


def test_a_bad_executor_fails_before_the_run_folder_exists(tmp_path, capsys):
    from knowgen.cli import main

    run = tmp_path / "run"
    assert main(["eval", "--limit", "1", "--executor", "ray:max_retry=1", "--run-dir", str(run),
                 "--no-progress"]) == 2
    assert "Did you mean 'max_retries'" in capsys.readouterr().err
    assert not run.exists()


def test_without_ray_the_executor_names_the_extra_and_knowgen_never_imports_ray(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"  # as if Ray were not installed
            "import knowgen, knowgen.cli, knowgen.eval.runner, knowgen.eval.executors\n"
            "from knowgen.cli import main\n"
            f"a = main(['eval', '--limit', '1', '--executor', 'ray', '--run-dir', "
            f"{str(tmp_path / 'run')!r}])\n"
            f"b = main(['train', 'data', '--limit', '1', '--executor', 'ray:actors=2', '--out', "
            f"{str(tmp_path / 'data.jsonl')!r}])\n"
            "sys.exit(10 * a + b)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 22, out.stderr
    assert out.stderr.count("pip install 'knowgen[ray]'") == 2
    assert not (tmp_path / "run").exists() and not (tmp_path / "data.jsonl").exists()
    probe = ("import sys, knowgen, knowgen.cli, knowgen.eval.runner, knowgen.eval.executors, "
             "knowgen.eval.episodes; print(sorted(m for m in ('ray', 'torch') if m in "
             "sys.modules))")
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              timeout=120, check=True)
    assert imported.stdout.strip() == "[]"


def test_local_model_backends_ask_for_gpus():
    assert gpu_reasons("transformers:path=/m", "compositor") == ["policy transformers"]
    assert gpu_reasons("transformers:path=/m,device=cpu", "diffusers:path=/g") == [
        "generator diffusers"]
    assert gpu_reasons("gen-searcher", "http:url=http://127.0.0.1:8100") == []
    assert gpu_reasons("scripted", "compositor") == []


class _Doubler:
    """A worker factory whose workers double numbers and fail on 13."""

    def __init__(self):
        self.built = []

    def wants_gpu(self):
        return []

    def build(self, worker_id, bound=None):
        self.built.append(worker_id)
        return self

    def run(self, item):
        if item == 13:
            raise ValueError("thirteen")
        return 2 * item


@pytest.mark.parametrize("threads", [1, 3])
def test_the_local_executor_hands_every_result_back_once(threads):
    factory = _Doubler()
    got = dict(LocalExecutor(threads).map(factory, list(range(10))))
    assert got == {i: 2 * i for i in range(10)}
    assert sorted(factory.built) == list(range(threads))


def test_a_worker_error_reaches_the_caller_of_the_local_executor():
    with pytest.raises(ValueError, match="thirteen"):
        list(LocalExecutor(2).map(_Doubler(), [1, 13, 2, 3]))

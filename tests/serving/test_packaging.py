"""Packaging of the environment server: the OpenEnv manifest, the Dockerfile, the extras.

The manifest goes through OpenEnv's own validator; the Dockerfile must copy
every source folder of the distribution, expose the manifest's port and run a
command line the ``knowgen`` parser accepts; ``import knowgen`` stays light and
a missing extra is named in the error.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_manifest_passes_openenv_static_validation(tmp_path):
    pytest.importorskip("openenv")
    for name in ("openenv.yaml", "Dockerfile", ".dockerignore"):
        shutil.copy(ROOT / name, tmp_path / name)
    done = subprocess.run([sys.executable, "-m", "openenv.cli", "validate", str(tmp_path),
                           "--level", "static", "--skip-build", "--json"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["verdict"] == "pass"
    assert [r["check_id"] for r in report["results"]] == ["static.manifest"]


def dockerfile_command(token_set: bool) -> list[str]:
    """The ``knowgen ...`` words the Dockerfile's CMD runs, with or without the token variable.

    ``${VAR:+WORDS}`` gives WORDS when the token is set; other expansions are empty.
    """
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.MULTILINE).group(1))
    assert cmd[:2] == ["sh", "-c"]
    line = re.sub(r"\$\{KNOWGEN_ENV_TOKEN:\+([^}]*)\}", r"\1" if token_set else "", cmd[2])
    words = shlex.split(re.sub(r"\$\{[^}]*\}", "", line))
    assert words[0] == "exec"
    return words[1:]


def test_dockerfile_agrees_with_the_manifest_and_the_package():
    from knowgen.cli import build_parser

    tomllib = pytest.importorskip("tomllib")
    manifest = yaml.safe_load((ROOT / "openenv.yaml").read_text(encoding="utf-8"))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for token_set in (False, True):
        words = dockerfile_command(token_set)
        assert words[0] == "knowgen"
        args = build_parser().parse_args(words[1:])
        assert (args.command, args.service, args.host) == ("serve", "env", "0.0.0.0")
        assert args.port == manifest["port"]
        assert args.token_env == ("KNOWGEN_ENV_TOKEN" if token_set else None)
    assert re.search(rf"^EXPOSE {manifest['port']}$", dockerfile, re.MULTILINE)
    assert manifest["version"] == pyproject["project"]["version"]
    assert manifest["name"] == "knowgen-searchgen"
    # every source folder of the distribution is copied, and the extra it installs exists
    copied = set(re.findall(r"^COPY (\S+) \./", dockerfile, re.MULTILINE))
    sources = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    assert sources <= copied
    assert {"pyproject.toml", "README.md", "LICENSE"} <= set(
        re.search(r"^COPY (.+) \./$", dockerfile, re.MULTILINE).group(1).split())
    assert 'pip install --no-cache-dir ".[openenv]"' in dockerfile
    assert "openenv" in pyproject["project"]["optional-dependencies"]
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not ignored & (copied | {"pyproject.toml", "README.md", "LICENSE"})


LIGHT = """
import sys
import knowgen, knowgen.envs
from knowgen.cli import build_parser
build_parser()
heavy = ("openenv", "verifiers", "skyrl_gym", "torch", "gradio", "fastapi")
print(sorted({m.split(".")[0] for m in sys.modules} & set(heavy)))
"""


def test_import_knowgen_and_its_cli_stay_light():
    done = subprocess.run([sys.executable, "-c", LIGHT], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"


BLOCKED = """
import importlib.abc, sys

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("openenv", "verifiers", "skyrl_gym"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Blocker())
from knowgen.cli import main
from knowgen.errors import MissingDependencyError
print("serve exit", main(["serve", "env", "--port", "0"]))
for module in ("knowgen.envs.verifiers_env", "knowgen.envs.skyrl_env",
               "knowgen.envs.openenv_client"):
    try:
        __import__(module)
    except MissingDependencyError as exc:
        print(module, "->", exc)
    except ImportError as exc:
        print(module, "-> plain ImportError", exc)
"""


def test_missing_extras_are_named():
    done = subprocess.run([sys.executable, "-c", BLOCKED], capture_output=True, text=True,
                          timeout=120, check=False)
    out = done.stdout + done.stderr
    assert "serve exit 2" in out
    assert "pip install 'knowgen[openenv]'" in out
    assert "knowgen.envs.verifiers_env -> " in out and "knowgen[verifiers]" in out
    assert "knowgen.envs.skyrl_env -> " in out and "knowgen[skyrl]" in out
    assert "plain ImportError" not in out, out

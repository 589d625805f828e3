# The two commands a new user needs (see README.md):
#   make demo   set up the base install (no torch, no llama.cpp), then run the demo on embedded
#               defaults
#   make test   set up everything (every extra and the test tools), then lint, type-check and
#               run the whole test suite
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BASE   := $(VENV)/.installed-base
PORT   ?= 8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=

.PHONY: setup setup-base demo test check lint typecheck bench reranker clean

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh

$(BASE): pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh --base

setup: $(STAMP)

setup-base: $(BASE)

demo: setup-base
	$(BIN)/ragstack demo --serve --port $(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

check: lint typecheck

test: check
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m evals.bench_indexes

# The offline reranker (about 30 minutes on 2 cores): a 6-layer MiniLM cross-encoder trained on
# SciFact train, then the 3-layer, 128-token one distilled from it (RAGSTACK_RERANKER_PATH).
TEACHER := .cache/reranker/scifact-minilm-l6-ce
reranker: setup
	$(BIN)/python -m evals.train_reranker --layers 6 --max-length 192 --epochs 1 --out $(TEACHER)
	$(BIN)/python -m evals.train_reranker --init $(TEACHER) --teacher $(TEACHER)

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache

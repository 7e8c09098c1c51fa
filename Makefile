# Domain-adaptation pipeline. Two commands on a fresh machine:
#   make recipe=legal     install into .venv, then run the legal recipe end to end (offline)
#   make test             run the test suite (offline, tiny models)
# More: make plan recipe=legal | make recipe=legal stage=cpt | make recipe=legal set="cpt.replay_ratio=0.5"
#       make report recipe=legal | make explain recipe=legal | make lint | make recipe=legal verbose=1 (library logs too)
# Your own documents: .venv/bin/python -m pipeline new NAME --domain PATH [--instructions F] [--evals F]

recipe ?= legal
stage ?=
set ?=
verbose ?=
PY := .venv/bin/python
STAMP := .venv/.installed
ARGS = $(recipe) $(foreach s,$(stage),--stage $(s)) $(if $(set),--set "$(set)") $(if $(verbose),--verbose)

# Nothing is fetched from a model or dataset hub at run time, unless the caller says so for the *-gpu
# recipes: HF_HUB_OFFLINE=0 HF_DATASETS_OFFLINE=0 make recipe=legal-gpu (make test always runs offline).
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run plan explain report test lint install install-gpu bench bench-attention bench-corpus bench-first-run sources
.DEFAULT_GOAL := run

run: install sources
	$(PY) -m pipeline run $(ARGS)

plan: install sources
	$(PY) -m pipeline plan $(ARGS)

explain: install sources
	$(PY) -m pipeline explain $(ARGS)

report: install
	$(PY) -m pipeline report $(recipe)

test: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q tests

lint: install
	$(PY) -m ruff check .

# CPT throughput of the cpt stage against a plain unpacked Trainer, same process (bench/README.md).
bench: install sources
	$(PY) bench/cpt_throughput.py --recipe $(recipe)

# Packed rows on CPU: transformers' masked SDPA against SDPA once per document, cpt blocks and sft rows.
bench-attention: install sources
	$(PY) bench/attention_throughput.py --recipe $(recipe) --out bench/results/attention_$(recipe).json

# Corpus stage: datatrove passes against a plain Python loop, memory at 1x/4x/16x, packing, dedup quality.
bench-corpus: install sources
	$(PY) bench/corpus_throughput.py --recipe $(recipe) --out bench/results/corpus_$(recipe).json

# The README's first command on a fresh clone of HEAD, timed per stage (bench/README.md); baseline=COMMIT times
# that commit first, one run after the other.
bench-first-run:
	python3 bench/first_run.py --recipe $(recipe) --out bench/results/first_run_$(recipe).json $(if $(baseline),--baseline $(baseline))

install-gpu: install
	$(PY) -m pip install -r requirements-gpu.txt

install: $(STAMP)

# torch is pinned to the CPU build on this machine's disk; see requirements.txt for each pin's reason.
# --no-compile: byte-compiling every installed file took half the install (150 s -> 69 s on 2 cores);
# Python compiles the modules a run imports on first use instead.
$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -r requirements.txt
	$(PY) -m pip install -q --no-compile --no-deps -r requirements-nodeps.txt
	touch $@

# Text sources that come from Debian packages: Python's docs (general replay), GCIDE (dictionary entries),
# the WEB and Reina-Valera SWORD Bibles (translation). Installed once, when one is missing.
DEBIAN_SOURCES := python3.11-doc dict-gcide sword-text-web sword-text-sparv
sources:
	@test -d /usr/share/doc/python3.11/html/_sources -a -f /usr/share/dictd/gcide.index \
	  -a -d /usr/share/sword/modules/texts/ztext/engWEB2015eb -a -d /usr/share/sword/modules/texts/ztext/spaRV1909eb || { \
	  echo "installing Debian text sources: $(DEBIAN_SOURCES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_SOURCES); }

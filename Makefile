# npegen — the two commands (`make demo`, `make test`) and friends.
# Everything runs from a local virtual environment built from pyproject.toml.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.npegen-installed
# 2 workers fit the 2-core reference machine; override with `make test JOBS=1`.
JOBS   ?= 2

.PHONY: demo test bench lint hw venv clean help

help:
	@echo "make demo   - set up .venv, generate the default design and show what it does"
	@echo "make test   - set up .venv and run the whole test suite (Verilator + Icarus)"
	@echo "make bench  - run the benchmarks; JSON and tables land in bench/results/"
	@echo "make lint   - lint the generated Verilog (verilator --lint-only -Wall, with waivers)"
	@echo "make hw     - regenerate the committed hw/<config>/ trees of the shipped configs"

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "npegen needs Python >= 3.10")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/npegen demo

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup --durations=15 $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/npegen lint

# Every shipped config (configs/*.yaml); each tree is rebuilt from scratch so that no stale
# file survives. The default design takes minutes (its Verilog conversion is the slow step).
HW_CONFIGS := $(sort $(basename $(notdir $(wildcard configs/*.yaml))))

hw: $(STAMP)
	@set -e; for c in $(HW_CONFIGS); do \
	  rm -rf hw/$$c; $(BIN)/npegen generate $$c --compress -o hw/$$c; \
	done

clean:
	rm -rf build bench/results/*.json .pytest_cache

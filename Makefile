# mlffbench: two commands for a newcomer on a fresh machine (Python 3.11 and make):
#   make demo   set up .venv and run the quick benchmark end to end on CPU
#   make test   set up .venv and run the test suite
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_FLAGS ?=

.PHONY: demo test test-slow venv reference bench report-screenshot mace-demo clean help

help:
	@echo "make demo       set up .venv, run 'mlffbench run --mode quick' (a few minutes on CPU)"
	@echo "make test       set up .venv and run the fast test suite"
	@echo "make test-slow  paper-scale checks (pytest -m slow)"
	@echo "make reference  regenerate reference_data/ (never run by CI)"
	@echo "make bench      every benchmark as its own process (bench/run_all.py): JSON + summary.md in bench/results/ (BENCH_FLAGS=--quick: tiny sizes)"
	@echo "make report-screenshot RUN=demo-out   HTML report rendered in headless Chromium -> RUN/report.png"
	@echo "make mace-demo  train a tiny MACE in its own venv and benchmark it (slow; needs ~2 GB disk)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (install Python 3.11 or pass PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/mlffbench run -c configs/run-quick.yaml -o demo-out --mode quick --overwrite
	$(BIN)/mlffbench report demo-out --format md
	$(BIN)/mlffbench report demo-out --format html

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_FLAGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_FLAGS)

reference: $(STAMP)
	$(BIN)/python scripts/make_reference.py

bench: $(STAMP)
	$(BIN)/python bench/run_all.py $(if $(MODEL),--model $(MODEL)) $(BENCH_FLAGS)

RUN ?= demo-out
report-screenshot: $(STAMP)
	$(BIN)/mlffbench report $(RUN) --format html -o $(RUN)/report.html
	bash scripts/screenshot_report.sh $(RUN)/report.html $(RUN)/report.png

mace-demo: $(STAMP)
	bash scripts/mace_client.sh

clean:
	rm -rf $(VENV) demo-out .pytest_cache

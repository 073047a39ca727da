# The two commands of the README:
#   make run    install into .venv, then run the workflow on the embedded default
#   make test   install into .venv (with test tools), then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= all

.PHONY: install install-test run test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and exactly: Pyserini requires torch, and an unpinned resolve pulls a CUDA build.
install: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[cpu]'

install-test: install
	$(BIN)/pip install --quiet -e '.[cpu,test]'
	bash .ci/install-chromium

run: install
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)
	@echo "beirflow: the leaderboard is in $(CURDIR)/results/leaderboard/leaderboard.{md,csv,html}"
	@echo "beirflow: the report is $(CURDIR)/results/report/report.html (and report.md, plots/)"

test: install-test
	$(BIN)/python -m pytest tests -n 4 --dist loadscope --no-loadscope-reorder --durations=25

bench: install
	$(BIN)/pip install --quiet -e '.[cpu,bench]'
	$(BIN)/python bench/rerank_throughput.py
	$(BIN)/python bench/bm25_throughput.py
	$(BIN)/python bench/dag_planning.py

clean:
	rm -rf results logs .snakemake

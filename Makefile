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

# uv installs the versions pip would (both resolve from PyPI), in a fraction of the time: pip spent
# about 100 s of the test install unpacking wheels one at a time. uv reads no pip configuration, so
# the wheels a machine keeps on disk for pip (its find-links: this one keeps torch's CPU build) are
# passed on; without them torch==2.13.0 would come from PyPI, a CUDA build of several GB.
# --compile-bytecode: pip writes .pyc files at install and uv does not; where PYTHONDONTWRITEBYTECODE
# is set (this machine sets it) every process then compiles its imports from source, every time:
# `snakemake --version` took 4.8 s instead of 1.5 s, and the suite starts hundreds of processes.
$(BIN)/uv: $(BIN)/python
	$(BIN)/pip install --quiet uv==0.13.9

FIND_LINKS = $(shell $(BIN)/pip config get global.find-links 2>/dev/null)
UV_INSTALL = $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python $(addprefix --find-links ,$(FIND_LINKS))

# torch first and exactly: Pyserini requires torch, and an unpinned resolve pulls a CUDA build.
install: $(BIN)/uv
	$(UV_INSTALL) torch==2.13.0
	$(UV_INSTALL) -e '.[cpu]'

install-test: install
	$(UV_INSTALL) -e '.[cpu,test]'
	bash .ci/install-chromium
	bash .ci/install-pyodide

run: install
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)
	@echo "beirflow: the leaderboard is in $(CURDIR)/results/leaderboard/leaderboard.{md,csv,html}"
	@echo "beirflow: the report is $(CURDIR)/results/report/report.html (and report.md, plots/)"

test: install-test
	$(BIN)/python -m pytest tests -n 4 --dist loadscope --no-loadscope-reorder --durations=25

bench: install
	$(UV_INSTALL) -e '.[cpu,bench]'
	$(BIN)/python bench/rerank_throughput.py
	$(BIN)/python bench/bm25_throughput.py
	$(BIN)/python bench/dag_planning.py
	$(BIN)/python bench/allocator.py
	$(BIN)/python bench/run_writing.py
	$(BIN)/python bench/tables.py

clean:
	rm -rf results logs .snakemake

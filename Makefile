# Set-up and checks for mpirl. On a fresh machine: `make run`, then `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PYTHON ?= python3
NP ?= 4
JOB ?= jobs/frozenlake_q.toml
# pytest under mpirun: no cache (ranks would race on it), quiet, only the MPI-marked tests.
MPI_PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider --with-mpi -m mpi tests/mpi

.PHONY: run test test-phases install install-test bench clean shellcheck

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The MPI runtime comes from the `mpich` wheel on PyPI; torch is pinned to the CPU build in constraints.txt.
# bench (matplotlib) and tensorboard: what the README's tour uses after `make run`.
$(VENV)/.installed: $(BIN)/python setup.py constraints.txt
	$(PIP) install -q -c constraints.txt -e ".[mpich,bench,tensorboard]"
	touch $@

# The tests also run the pixel workloads (MinAtar, Atari).
$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -c constraints.txt -e ".[mpich,bench,tensorboard,test,minatar,atari,mujoco]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" mpirun -n $(NP) mpirl train $(JOB)

# tests/slurm starts a one-node SLURM cluster, then an emulated two-node one (network namespaces), itself
# (root: installs slurm-wlm and munge with apt-get) and is skipped with its reason otherwise; -rs prints
# the reasons of skipped tests.
test: $(VENV)/.installed-test shellcheck
	@$(MAKE) --no-print-directory test-phases

# Every phase runs even when an earlier one failed (one failure must not hide the others); the target
# fails if any phase did, and its last line names the phases that failed. PYTEST and MPIRUN can be
# overridden (tests/unit/test_makefile.py checks this logic with stand-ins).
PYTEST ?= $(BIN)/python -m pytest -q -rs -p no:cacheprovider tests
MPIRUN ?= MPIEXEC_TIMEOUT=600 mpirun
test-phases:
	@export PATH="$(abspath $(BIN)):$$PATH"; failed=""; \
	$(PYTEST) || failed="$$failed pytest"; \
	$(MPIRUN) -n 2 $(MPI_PYTEST) || failed="$$failed mpi-n2"; \
	$(MPIRUN) -n 4 $(MPI_PYTEST) || failed="$$failed mpi-n4"; \
	if [ -n "$$failed" ]; then echo "make test: failed phases:$$failed"; exit 1; fi; \
	echo "make test: all phases passed (pytest, mpi-n2, mpi-n4)"

# shellcheck lints the slurm/ templates (tests/unit/test_slurm_templates.py); installed with apt-get as root.
shellcheck:
	@command -v shellcheck >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q shellcheck >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q shellcheck >/dev/null 2>&1; }; }; } || \
	  echo "make test: shellcheck not installed (not root or apt-get failed): the template lint test will skip"

clean:
	rm -rf $(VENV) build *.egg-info

# Regenerate docs/configuration.md from the config dataclasses (a test checks it is current).
docs/configuration.md: mpirl/config.py mpirl/algos/*.py mpirl/algos/*/config.py docs/configuration.head.md
	(cat docs/configuration.head.md; $(BIN)/python -m mpirl.config) > $@

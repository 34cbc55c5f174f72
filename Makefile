# Set-up and checks for mpirl. On a fresh machine: `make run`, then `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PYTHON ?= python3
NP ?= 4
JOB ?= jobs/frozenlake_q.toml
# pytest under mpirun: no cache (ranks would race on it), quiet, only the MPI-marked tests.
MPI_PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider --with-mpi -m mpi tests/mpi

.PHONY: run test install install-test bench clean shellcheck

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The MPI runtime comes from the `mpich` wheel on PyPI; torch is pinned to the CPU build in constraints.txt.
$(VENV)/.installed: $(BIN)/python setup.py constraints.txt
	$(PIP) install -q -c constraints.txt -e ".[mpich]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -q -c constraints.txt -e ".[mpich,test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" mpirun -n $(NP) mpirl train $(JOB)

# tests/slurm starts a one-node SLURM cluster, then an emulated two-node one (network namespaces), itself
# (root: installs slurm-wlm and munge with apt-get) and is skipped with its reason otherwise; -rs prints
# the reasons of skipped tests.
test: $(VENV)/.installed-test shellcheck
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q -rs -p no:cacheprovider tests
	PATH="$(abspath $(BIN)):$$PATH" MPIEXEC_TIMEOUT=600 mpirun -n 2 $(MPI_PYTEST)
	PATH="$(abspath $(BIN)):$$PATH" MPIEXEC_TIMEOUT=600 mpirun -n 4 $(MPI_PYTEST)

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

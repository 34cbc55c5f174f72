"""`make test` runs every phase even when one fails, and fails if any did (checked with stand-in commands)."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def phases(pytest_cmd: str, mpirun_cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", ROOT, "test-phases", f"PYTEST={pytest_cmd}", f"MPIRUN={mpirun_cmd}"],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_failing_first_phase_does_not_hide_the_mpi_phases():
    p = phases("false", "echo mpi-phase")
    assert p.returncode != 0
    assert p.stdout.count("mpi-phase -n") == 2, p.stdout  # both MPI phases still ran
    assert "make test: failed phases: pytest" in p.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_failing_mpi_phase_fails_the_target_and_is_named(tmp_path):
    fake = tmp_path / "fake-mpirun"  # fails at -n 2 only
    fake.write_text('#!/bin/sh\necho "fake-mpirun $*"\n[ "$2" != 2 ]\n')
    fake.chmod(0o755)
    p = phases("true", str(fake))
    assert p.returncode != 0
    assert "make test: failed phases: mpi-n2" in p.stdout and "fake-mpirun -n 4" in p.stdout, p.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_all_phases_passing_passes():
    p = phases("true", "true")
    assert p.returncode == 0 and "all phases passed" in p.stdout, p.stdout + p.stderr

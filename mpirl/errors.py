"""Errors reported in one line without a traceback.

Usage errors mean "the user asked for something wrong" (exit code 2); fault
errors mean the run met a fault it cannot continue through (exit code 4).
"""


class UsageError(Exception):
    """Bad input (job file, key, value, rank count, checkpoint): reported in one line, exit 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A job file or ``--set`` override that does not fit the config schema.

    ``key`` names the config key at fault when the message does not say where
    it came from (environment errors), so the caller can add the source.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


class CheckpointError(UsageError):
    """A checkpoint that is missing, truncated, corrupted or of another run."""


class FaultError(Exception):
    """A fault detected while training (see docs/cluster.md): one line, then the whole job aborts with exit 4."""

    exit_code = 4


class SilentRankError(FaultError):
    """Rank 0 waited longer than ``fault.actor_timeout_s`` for ranks that send nothing (stopped or hung)."""


class NonFiniteError(FaultError):
    """``fault.max_nonfinite`` updates in a row had a non-finite loss or gradient."""

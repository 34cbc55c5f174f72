"""Errors that mean "the user asked for something wrong": exit code 2, no traceback."""


class UsageError(Exception):
    """Bad input (job file, key, value, rank count, checkpoint): reported in one line, exit 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A job file or ``--set`` override that does not fit the config schema."""


class CheckpointError(UsageError):
    """A checkpoint that is missing, truncated, corrupted or of another run."""

"""Error hierarchy: every message says what to fix, and the CLI prints it on one line."""
from __future__ import annotations


class SparkDriftError(Exception):
    """Base of every error sparkdrift raises on purpose (exit code 2 in the CLI)."""


class ConfigError(SparkDriftError):
    """The monitor definition is invalid; the message names the file and key path."""


class TableError(SparkDriftError):
    """A table is missing, empty, or lacks a column; the message names the table."""


class ConcurrentRunError(TableError):
    """Another run of the monitor kept committing to the same table: this run's write gave up, whole."""


class BaselineError(SparkDriftError):
    """No usable baseline profile (missing, or not matching the config)."""


class ActionError(SparkDriftError):
    """A configured action (alert, retrain trigger) failed."""


class ActionFailed(Exception):
    """One alert or retrain trigger failed: recorded as ``failed``, never a crash of the detect job.

    ``run_id`` is set when a retrain run exists anyway (it started, then failed).
    """

    def __init__(self, message: str, run_id: str | None = None):
        super().__init__(message)
        self.run_id = run_id

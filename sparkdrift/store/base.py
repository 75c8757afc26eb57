"""The monitor's own tables behind one interface: profiles, histograms, metrics, actions.

Jobs read the store, run the pure core, and write the store. `DeltaStore` keeps
the tables in Delta (SQL MERGE, so every write is one atomic, rerun-safe
commit); `MemoryStore` keeps the same rows in dicts, for tests and notebooks
that exercise planning, policy and reports without Spark. The rules both
share (a stored profile is never rewritten unless asked, which profile is
"the latest", the errors a missing one gives) live here once.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sparkdrift.core.planning import ActionRecord
from sparkdrift.core.profile import BaselineProfile
from sparkdrift.core.results import DriftResult
from sparkdrift.core.windows import WindowHistograms
from sparkdrift.errors import BaselineError

log = logging.getLogger("sparkdrift.store")

TABLES = ("profiles", "histograms", "metrics", "actions")


@dataclass(frozen=True)
class Progress:
    """Where the metrics table stands: the ``first`` and ``last`` checked window starts, and the last logged to MLflow.

    Windows after ``last_tracked`` were written while MLflow was off or failing
    (their ``mlflow_run_id`` is null); a later run with MLflow on logs them again.
    """

    first: datetime | None = None
    last: datetime | None = None
    last_tracked: datetime | None = None


@dataclass(frozen=True)
class Written:
    """When a column's overall histograms were last written, and the newest source version they were counted at.

    Equal source versions say exactly that production has not changed since;
    the time serves where there is no version (a label table, a non-Delta source).
    """

    at: datetime
    source_version: int | None = None


class MonitorStore(ABC):
    """One monitor's tables. ``where(table)`` names a table in messages."""

    monitor: str

    @abstractmethod
    def where(self, table: str) -> str:
        """Where ``table`` (one of `TABLES`) lives, for messages."""

    # ----------------------------------------------------------------- profiles

    @abstractmethod
    def has_profile(self, baseline_id: str) -> bool:
        """Whether the profile ``baseline_id`` is stored for this monitor."""

    @abstractmethod
    def _put_profile(self, profile: BaselineProfile) -> int:
        """Write (or overwrite) one profile; returns the rows written."""

    @abstractmethod
    def _get_profile(self, baseline_id: str | None) -> BaselineProfile | None:
        """The stored profile ``baseline_id``, else the newest by ``created_at`` (ties: the larger id); or None."""

    def save_profile(self, profile: BaselineProfile, *, replace: bool = False) -> bool:
        """Store a profile unless its id is already there (its first ``created_at`` stays).

        ``replace=True`` rewrites it. Returns whether anything was written.
        """
        if not replace and self.has_profile(profile.baseline_id):
            log.info(
                "baseline %s: profile %s (source %s version %s) is already in %s: nothing written",
                profile.monitor, profile.baseline_id, profile.source_table, profile.source_version,
                self.where("profiles"),
            )
            return False
        rows = self._put_profile(profile)
        log.info("baseline %s: wrote profile %s (%d columns) to %s", profile.monitor, profile.baseline_id, rows,
                 self.where("profiles"))
        return True

    def load_profile(self, baseline_id: str | None = None) -> BaselineProfile:
        """The profile ``baseline_id``, else the monitor's latest; `BaselineError` when there is none."""
        profile = self._get_profile(baseline_id or None)
        if profile is None and not baseline_id:
            raise BaselineError(
                f"no baseline for monitor {self.monitor} in {self.where('profiles')}: "
                "run `sparkdrift baseline --config <monitor config>` first"
            )
        if profile is None:
            raise BaselineError(
                f"baseline {baseline_id} of monitor {self.monitor} is not in {self.where('profiles')} "
                "(check baseline_id, or run `sparkdrift baseline --config <monitor config>`)"
            )
        return profile

    # ----------------------------------------------------------------- histograms

    @abstractmethod
    def write_histograms(self, baseline_id: str, windows: Sequence[WindowHistograms],
                         source_version: int | None) -> int:
        """Upsert on (baseline id, window, slice, slice value, feature) in one commit: a recomputed window replaces,
        and within ``windows`` a later entry for the same key wins. Returns rows."""

    @abstractmethod
    def last_written(self, baseline_id: str, feature: str) -> Written | None:
        """When a histogram of ``feature`` (overall) was last written, and from which source version."""

    @abstractmethod
    def load_histograms(self, baseline_id: str, *, before: datetime | None = None,
                        last: int | None = None) -> list[WindowHistograms]:
        """Stored overall windows, oldest first; optionally only the ``last`` N starting before ``before``.

        A window's ``rows`` are its columns' row count: the performance slot,
        written later from labelled rows only, never stands for the window.
        """

    # ----------------------------------------------------------------- metrics

    @abstractmethod
    def write_metrics(self, results: Sequence[DriftResult], run_id: str | None) -> None:
        """Upsert on (baseline id, window, slice, slice value, feature, statistic, reference).

        ``run_id`` None: not (fully) logged to MLflow, see `Progress`."""

    @abstractmethod
    def progress(self, baseline_id: str) -> Progress:
        """The detect job's progress marker: the newest window with metrics, and the newest logged to MLflow."""

    # ----------------------------------------------------------------- actions

    @abstractmethod
    def read_actions(self) -> list[ActionRecord]:
        """The monitor's action records (empty before the first write)."""

    @abstractmethod
    def write_actions(self, records: Sequence[ActionRecord]) -> None:
        """Upsert on ``dedup_key`` (the last record of a key wins), in one commit."""

    @abstractmethod
    def claim_actions(self, records: Sequence[ActionRecord],
                      seen: Mapping[str, ActionRecord]) -> list[ActionRecord]:
        """Write each record only if its key's stored row is still what ``seen`` says (absent if not in it),
        in one commit; returns the records this call wrote.

        Two runs of one monitor deciding the same action both try; one wins, the
        other finds the row changed and leaves the action to the winner, so an
        alert or retrain is never started twice by concurrent runs.
        """

"""`MonitorStore` in dicts: the same keys and upserts as the Delta tables, no Spark.

For tests of planning, policy and reports, and for notebooks that try a
monitor's rules on histograms they already have. Nothing survives the process.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone

from sparkdrift.core.performance import SLOT
from sparkdrift.core.planning import ActionRecord
from sparkdrift.core.profile import BaselineProfile
from sparkdrift.core.results import DriftResult
from sparkdrift.core.slices import is_overall
from sparkdrift.core.windows import WindowHistograms, as_utc
from sparkdrift.store.base import MonitorStore, Progress, Written


class MemoryStore(MonitorStore):
    """One monitor's tables as dicts keyed like the Delta tables' MERGE keys."""

    def __init__(self, monitor: str):
        self.monitor = monitor
        self.profiles: dict[str, BaselineProfile] = {}
        self.histograms: dict[tuple, WindowHistograms] = {}  # (baseline id, window start, slice, slice value)
        self.metrics: dict[tuple, tuple[DriftResult, str | None]] = {}
        self.actions: dict[str, ActionRecord] = {}
        self.written: dict[tuple[str, str], Written] = {}  # (baseline id, feature) -> last histogram write

    def where(self, table: str) -> str:
        return f"memory:{self.monitor}/{table}"

    def has_profile(self, baseline_id: str) -> bool:
        return baseline_id in self.profiles

    def _put_profile(self, profile: BaselineProfile) -> int:
        self.profiles[profile.baseline_id] = profile
        return len(profile.features) + (profile.performance is not None)

    def _get_profile(self, baseline_id: str | None) -> BaselineProfile | None:
        if baseline_id is not None or not self.profiles:
            return self.profiles.get(baseline_id)
        return max(self.profiles.values(), key=lambda p: (as_utc(datetime.fromisoformat(p.created_at)), p.baseline_id))

    def write_histograms(self, baseline_id: str, windows: Sequence[WindowHistograms],
                         source_version: int | None) -> int:
        rows = 0
        for w in windows:
            key = (baseline_id, as_utc(w.window_start), w.slice, w.slice_value)
            old = self.histograms.get(key)
            merged = {**old.histograms, **w.histograms} if old else dict(w.histograms)  # per-feature upsert
            window_rows = w.rows if old is None or set(w.histograms) - {SLOT} else old.rows  # see MonitorStore
            self.histograms[key] = replace(w, window_start=as_utc(w.window_start), window_end=as_utc(w.window_end),
                                           rows=window_rows, histograms=merged)
            rows += len(w.histograms)
            if is_overall(w.slice):
                for feature in w.histograms:
                    self.written[(baseline_id, feature)] = Written(datetime.now(timezone.utc), source_version)
        return rows

    def last_written(self, baseline_id: str, feature: str) -> Written | None:
        return self.written.get((baseline_id, feature))

    def load_histograms(self, baseline_id: str, *, before: datetime | None = None,
                        last: int | None = None) -> list[WindowHistograms]:
        windows = sorted((w for (b, _, s, _), w in self.histograms.items() if b == baseline_id and is_overall(s)),
                         key=lambda w: w.window_start)
        if before is not None:
            windows = [w for w in windows if w.window_start < as_utc(before)]
        return windows if last is None else windows[max(len(windows) - last, 0):]

    def write_metrics(self, results: Sequence[DriftResult], run_id: str | None) -> None:
        for r in results:
            key = (r.baseline_id, as_utc(r.window_start), r.slice, r.slice_value, r.feature, r.statistic, r.reference)
            self.metrics[key] = (r, run_id)

    def progress(self, baseline_id: str) -> Progress:
        mine = [(k[1], run_id) for k, (_, run_id) in self.metrics.items() if k[0] == baseline_id]
        return Progress(min((t for t, _ in mine), default=None), max((t for t, _ in mine), default=None),
                        max((t for t, run_id in mine if run_id is not None), default=None))

    def read_actions(self) -> list[ActionRecord]:
        return list(self.actions.values())

    def write_actions(self, records: Sequence[ActionRecord]) -> None:
        for r in records:
            self.actions[r.dedup_key] = r

    def claim_actions(self, records: Sequence[ActionRecord],
                      seen: Mapping[str, ActionRecord]) -> list[ActionRecord]:
        won = [r for r in {r.dedup_key: r for r in records}.values()
               if self.actions.get(r.dedup_key) == seen.get(r.dedup_key)]
        self.write_actions(won)
        return won

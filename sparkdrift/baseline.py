"""The `sparkdrift baseline` job: profile the reference table (`spark.profiling`) into the store."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sparkdrift.core.profile import BaselineProfile
from sparkdrift.spark.profiling import baseline_identity, build_baseline
from sparkdrift.store import DeltaStore, MonitorStore

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from sparkdrift.core.config import MonitorConfig

log = logging.getLogger("sparkdrift.baseline")


def run_baseline(spark: "SparkSession", cfg: "MonitorConfig", *, force: bool = False,
                 store: MonitorStore | None = None) -> tuple[BaselineProfile, bool]:
    """Build and store a profile unless this id is already stored (default store: ``cfg.output``'s Delta tables).

    Returns the profile and whether it was (re)built and written. An unchanged
    source and config skip both scans (the stored profile is returned).
    """
    store = store or DeltaStore.of(spark, cfg)
    if not force:
        baseline_id, version, _ = baseline_identity(spark, cfg)
        if store.has_profile(baseline_id):
            log.info(
                "baseline %s: profile %s of %s version %s is already stored: skipping both scans "
                "(use force to rebuild)",
                cfg.monitor, baseline_id, cfg.baseline.table, version,
            )
            return store.load_profile(baseline_id), False
    profile = build_baseline(spark, cfg)
    return profile, store.save_profile(profile, replace=force)

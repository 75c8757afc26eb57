"""Test helpers: build profiles from numpy samples with the same rules the Spark jobs use."""
from __future__ import annotations

from collections import Counter

import numpy as np

from sparkdrift.core.binning import coarse_starts, count_categorical, count_numeric, make_edges, quantile_probabilities
from sparkdrift.core.profile import FeatureProfile


def numeric_profile(name: str, sample: np.ndarray, fine_bins: int = 1000, coarse_bins: int = 10, role="feature") -> FeatureProfile:
    """A numeric profile whose edges are the exact (inverted-CDF) quantiles of ``sample``."""
    finite = sample[~np.isnan(sample)]
    q = np.quantile(finite, quantile_probabilities(fine_bins), method="inverted_cdf")
    edges = make_edges(q, float(finite.min()), float(finite.max()))
    return FeatureProfile(
        name=name,
        kind="numeric",
        role=role,
        edges=edges,
        coarse=coarse_starts(edges, coarse_bins, q),
        baseline=count_numeric(sample, edges),
    )


def categorical_profile(name: str, sample: list, top_k: int = 20) -> FeatureProfile:
    counts = Counter(v for v in sample if v is not None)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    categories = tuple(c for c, _ in ranked[:top_k])
    tracked = tuple(sorted(c for c, _ in ranked[top_k:]))
    return FeatureProfile(
        name=name,
        kind="categorical",
        dtype="string",
        categories=categories,
        tracked=tracked,
        baseline=count_categorical(sample, categories, tracked),
    )


def baseline_with_scan_rows(spark, cfg, monkeypatch) -> tuple:
    """``build_baseline(spark, cfg)``, and the rows its scan 2 brought to the driver (what must stay bounded)."""
    from sparkdrift.spark import profiling

    collected: list = []
    real = profiling._scan_counts

    def spy(*args, **kwargs):
        rows = real(*args, **kwargs)
        collected.extend(rows)
        return rows

    monkeypatch.setattr(profiling, "_scan_counts", spy)
    return profiling.build_baseline(spark, cfg), collected

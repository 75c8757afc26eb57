"""Pure binning rules: quantiles -> cut points, coarse bins, and numpy reference counting.

The Spark jobs compute quantiles and counts at scale; these functions decide
what the bins are, so the rule lives in one place and tests can use it on
numpy samples to get exactly the layout the jobs produce.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sparkdrift.core.profile import Histogram


def quantile_probabilities(fine_bins: int) -> list[float]:
    """Probabilities for the fine grid: 0, 1/n, ..., 1 (n + 1 points)."""
    return [i / fine_bins for i in range(fine_bins + 1)]


def make_edges(quantiles: Sequence[float], minimum: float, maximum: float) -> tuple[float, ...]:
    """Strictly increasing cut points from (possibly duplicated) quantiles.

    Duplicates (discrete, constant or zero-heavy features) collapse into one
    cut, and the baseline min and max are always cuts, so every bin is valid.
    Each repeated value also gets the cut just above it, so an atom never
    shares a bin with the values above it (KS and Wasserstein stay exact there).
    """
    q = np.asarray([v for v in quantiles if v is not None], dtype=float)
    q = q[np.isfinite(q)]
    q = np.clip(q, minimum, maximum)
    values, repeats = np.unique(q, return_counts=True)
    # A value repeated across quantiles is an atom (a discrete value, the zeros of a
    # zero-heavy feature): close its bin one float above it so it is a bin of its own.
    atoms = values[(repeats > 1) & (values < maximum)]
    cuts = np.concatenate([[minimum], values, np.nextafter(atoms, np.inf), [maximum]])
    return tuple(float(v) for v in np.unique(np.clip(cuts, minimum, maximum)))


def coarse_starts(edges: Sequence[float], coarse_bins: int, fine_quantiles: Sequence[float]) -> tuple[int, ...]:
    """Start indices (into the fine bins) of the coarse PSI bins.

    Coarse bin j spans the fine quantiles between probabilities j/c and
    (j+1)/c, so coarse bins are unions of fine bins and one production pass
    over the fine grid serves both. Collapsed quantiles give fewer coarse bins;
    a value that repeats across quantiles (an atom) is kept as its own bin.
    """
    fine_bins = len(fine_quantiles) - 1
    e = np.asarray(edges, dtype=float)
    q = np.asarray(fine_quantiles, dtype=float)
    starts = {0}
    for j in range(1, coarse_bins):
        value = float(q[int(round(j * fine_bins / coarse_bins))])
        idx = int(np.searchsorted(e, value, side="left"))
        starts.add(idx)
        if np.count_nonzero(q == value) > 1:  # an atom (e.g. 90% zeros) gets a bin of its own
            starts.add(idx + 1)
    return tuple(sorted(s for s in starts if 0 <= s < len(e)))


def bin_splits(edges: Sequence[float]) -> list[float]:
    """Splits giving key 0 = underflow, 1..k = fine bins, k+1 = overflow for k edges (see `counting`)."""
    e = list(edges)
    return [-np.inf, *e, float(np.nextafter(e[-1], np.inf)), np.inf]


def count_numeric(values: np.ndarray, edges: Sequence[float]) -> Histogram:
    """Reference (numpy) histogram of raw values on a profile's fine bins.

    ``values`` is a float array where NaN means NaN; pass nulls separately via
    a masked array (masked entries count as nulls).
    """
    data = np.ma.asarray(values, dtype=float)
    nulls = int(np.ma.count_masked(data))
    v = data.compressed()
    nans = int(np.isnan(v).sum())
    v = v[~np.isnan(v)]
    e = np.asarray(edges, dtype=float)
    under = int((v < e[0]).sum())
    over = int((v > e[-1]).sum())
    inside = v[(v >= e[0]) & (v <= e[-1])]
    idx = np.searchsorted(e, inside, side="right") - 1
    counts = np.bincount(idx, minlength=len(e)).astype(np.int64)
    return Histogram(
        counts=counts,
        bin_sums=np.bincount(idx, weights=inside, minlength=len(e)),
        nulls=nulls,
        nans=nans,
        underflow=under,
        overflow=over,
        value_sum=float(v.sum()),
        value_sum_sq=float((v * v).sum()),
        min=float(v.min()) if v.size else float("nan"),
        max=float(v.max()) if v.size else float("nan"),
    )


def count_categorical(
    values: Sequence[str | None],
    categories: Sequence[str],
    tracked: Sequence[str] | None,
) -> Histogram:
    """Reference histogram of raw category values on a profile's top-K slots.

    Values in ``tracked`` (baseline categories outside the top K) go to the
    ``other`` slot; values the baseline never had go to ``unseen``. When the
    baseline had too many categories to track (``tracked is None``) every
    value outside the top K counts as ``other``.
    """
    index = {c: i for i, c in enumerate(categories)}
    known = set(tracked) if tracked is not None else None
    counts = np.zeros(len(categories) + 1, dtype=np.int64)
    nulls = unseen = 0
    for v in values:
        if v is None:
            nulls += 1
        elif v in index:
            counts[index[v]] += 1
        elif known is None or v in known:
            counts[-1] += 1
        else:
            unseen += 1
    return Histogram(counts=counts, nulls=nulls, unseen=unseen)

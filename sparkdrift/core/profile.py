"""Pure value types shared by every step: the mergeable `Histogram` and the baseline profile.

No Spark here: statistics, policies and reports work on these values alone.

Numeric bin layout (one convention used everywhere): a profile holds strictly
increasing cut points ``edges = c_0 < c_1 < ... < c_k`` with ``c_0`` the
baseline minimum and ``c_k`` its maximum. There are ``k + 1`` fine bins:
``[c_i, c_{i+1})`` for ``i < k`` and the closed atom ``[c_k, c_k]`` for the
maximum itself. Values below ``c_0`` count as underflow, above ``c_k`` as
overflow. Duplicate quantiles (discrete or constant features) collapse into
one cut, so no bin ever has negative width and a boolean gets two bins.

Categorical layout: ``counts`` has one slot per baseline top-K category, plus a
last slot ``other`` for baseline categories outside the top K. Values never
seen in the baseline are counted in ``unseen``, never dropped. The baseline's
other categories are listed (``tracked``) when few enough, and otherwise
sketched (``members``, a `membership.Membership` Bloom filter).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from sparkdrift.core.membership import Membership

Kind = Literal["numeric", "categorical"]
Role = Literal["feature", "prediction"]


def _nan_min(a: float, b: float) -> float:
    """min that ignores a NaN side (an empty histogram's min is NaN)."""
    return float(np.fmin(a, b))


def _nan_max(a: float, b: float) -> float:
    return float(np.fmax(a, b))


def _sums(h: "Histogram") -> np.ndarray | None:
    """A histogram's bin sums; an empty histogram's are zeros (the identity of merge)."""
    if h.bin_sums is None and not h.counts.any():
        return np.zeros(h.counts.shape)
    return h.bin_sums


def _add_sums(a: "Histogram", b: "Histogram") -> np.ndarray | None:
    sa, sb = _sums(a), _sums(b)
    return None if sa is None or sb is None else sa + sb


@dataclass(frozen=True, eq=False)
class Histogram:
    """Counts of one feature over one window (or the baseline): a commutative monoid.

    ``merge`` adds counts, so a day is the sum of its hours and a rolling
    reference is the sum of recent windows, without rescanning any table.
    ``value_sum``/``value_sum_sq``/``min``/``max`` cover finite numeric values
    (including under/overflow) and give exact means and ranges.
    """

    counts: np.ndarray
    nulls: int = 0
    nans: int = 0
    underflow: int = 0
    overflow: int = 0
    unseen: int = 0
    invalid: int = 0
    value_sum: float = 0.0
    value_sum_sq: float = 0.0
    min: float = math.nan
    max: float = math.nan
    bin_sums: np.ndarray | None = None  # numeric: sum of the values in each fine bin (None: not kept)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", np.asarray(self.counts, dtype=np.int64))
        if self.bin_sums is not None:
            sums = np.asarray(self.bin_sums, dtype=float)
            if sums.shape != self.counts.shape:
                raise ValueError(f"bin_sums has {sums.size} bins but counts has {self.counts.size}")
            object.__setattr__(self, "bin_sums", sums)

    @classmethod
    def empty(cls, n_bins: int) -> "Histogram":
        return cls(counts=np.zeros(n_bins, dtype=np.int64))

    @property
    def n_valid(self) -> int:
        """Rows with a usable value: binned, under/overflow, or an unseen category."""
        return int(self.counts.sum()) + self.underflow + self.overflow + self.unseen

    @property
    def n_rows(self) -> int:
        return self.n_valid + self.nulls + self.nans + self.invalid

    @property
    def mean(self) -> float:
        n = int(self.counts.sum()) + self.underflow + self.overflow
        return self.value_sum / n if n else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation of the finite numeric values."""
        n = int(self.counts.sum()) + self.underflow + self.overflow
        if n == 0:
            return math.nan
        var = self.value_sum_sq / n - (self.value_sum / n) ** 2
        return math.sqrt(max(var, 0.0))

    def merge(self, other: "Histogram") -> "Histogram":
        if self.counts.shape != other.counts.shape:
            raise ValueError(
                f"cannot merge histograms with {self.counts.size} and {other.counts.size} bins"
            )
        return Histogram(
            counts=self.counts + other.counts,
            nulls=self.nulls + other.nulls,
            nans=self.nans + other.nans,
            underflow=self.underflow + other.underflow,
            overflow=self.overflow + other.overflow,
            unseen=self.unseen + other.unseen,
            invalid=self.invalid + other.invalid,
            value_sum=self.value_sum + other.value_sum,
            value_sum_sq=self.value_sum_sq + other.value_sum_sq,
            min=_nan_min(self.min, other.min),
            max=_nan_max(self.max, other.max),
            bin_sums=_add_sums(self, other),
        )

    __add__ = merge

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        scalars = ("nulls", "nans", "underflow", "overflow", "unseen", "invalid")
        floats = ("value_sum", "value_sum_sq", "min", "max")
        mine, theirs = _sums(self), _sums(other)
        sums = (mine is None) == (theirs is None) and (
            mine is None or np.allclose(mine, theirs, rtol=1e-9, atol=1e-9)
        )
        return (
            np.array_equal(self.counts, other.counts)
            and sums
            and all(getattr(self, s) == getattr(other, s) for s in scalars)
            and all(
                (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
                for a, b in ((getattr(self, f), getattr(other, f)) for f in floats)
            )
        )

    def to_dict(self) -> dict:
        return {
            "counts": [int(c) for c in self.counts],
            "nulls": int(self.nulls),
            "nans": int(self.nans),
            "underflow": int(self.underflow),
            "overflow": int(self.overflow),
            "unseen": int(self.unseen),
            "invalid": int(self.invalid),
            "value_sum": float(self.value_sum),
            "value_sum_sq": float(self.value_sum_sq),
            "min": None if math.isnan(self.min) else float(self.min),
            "max": None if math.isnan(self.max) else float(self.max),
            "bin_sums": None if self.bin_sums is None else [float(x) for x in self.bin_sums],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Histogram":
        return cls(
            counts=np.asarray(d["counts"], dtype=np.int64),
            nulls=int(d.get("nulls") or 0),
            nans=int(d.get("nans") or 0),
            underflow=int(d.get("underflow") or 0),
            overflow=int(d.get("overflow") or 0),
            unseen=int(d.get("unseen") or 0),
            invalid=int(d.get("invalid") or 0),
            value_sum=float(d.get("value_sum") or 0.0),
            value_sum_sq=float(d.get("value_sum_sq") or 0.0),
            min=math.nan if d.get("min") is None else float(d["min"]),
            max=math.nan if d.get("max") is None else float(d["max"]),
            bin_sums=None if d.get("bin_sums") is None else np.asarray(d["bin_sums"], dtype=float),
        )


def merge_all(histograms: list[Histogram], n_bins: int) -> Histogram:
    """Sum of any number of histograms (the empty sum is the empty histogram)."""
    out = Histogram.empty(n_bins)
    for h in histograms:
        out = out.merge(h)
    return out


@dataclass(frozen=True, eq=False)
class FeatureProfile:
    """What the baseline says about one column: its bins and its own histogram."""

    name: str
    kind: Kind
    baseline: Histogram
    role: Role = "feature"
    dtype: str = "double"
    edges: tuple[float, ...] = ()
    coarse: tuple[int, ...] = ()
    categories: tuple[str, ...] = ()
    tracked: tuple[str, ...] | None = None
    members: Membership | None = None  # when tracked is None: every baseline category, sketched
    mean: float | None = None  # exact baseline mean (Spark's avg); None: derive from the histogram
    std: float | None = None  # exact baseline std (Spark's stddev_pop); None: derive from the histogram

    @property
    def n_bins(self) -> int:
        """Fine bins (numeric) or category slots incl. `other` (categorical)."""
        if self.kind == "numeric":
            return len(self.edges)
        return len(self.categories) + 1

    def mean_std(self) -> tuple[float, float]:
        """Mean and population std of the finite baseline values (NaN if undefined or categorical).

        The exact scan values where the profile has them: ``Histogram.std``
        derives the std from sums of squares, which loses precision when
        |mean| >> std (e.g. epoch seconds).
        """
        if self.kind != "numeric":
            return math.nan, math.nan
        mean = self.baseline.mean if self.mean is None else self.mean
        std = self.baseline.std if self.std is None else self.std
        return mean, std

    @property
    def all_null(self) -> bool:
        return self.baseline.n_valid == 0

    def coarse_counts(self, hist: Histogram) -> np.ndarray:
        """Counts on the coarse (PSI) bins: [underflow, coarse bins..., overflow].

        Numeric only. Coarse bin j is the union of fine bins coarse[j]..coarse[j+1]-1.
        """
        if self.kind != "numeric":
            raise ValueError(f"{self.name}: coarse bins exist only for numeric features")
        inner = np.add.reduceat(hist.counts, np.asarray(self.coarse, dtype=np.intp)) if len(
            self.coarse
        ) else np.zeros(0, dtype=np.int64)
        return np.concatenate([[hist.underflow], inner, [hist.overflow]]).astype(np.int64)

    def bin_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper value bound of each fine bin (the last bin is the atom at max)."""
        e = np.asarray(self.edges, dtype=float)
        return e, np.append(e[1:], e[-1:])


@dataclass(frozen=True, eq=False)
class BaselineProfile:
    """A versioned baseline: where it came from, and one FeatureProfile per column."""

    monitor: str
    baseline_id: str
    created_at: str
    source_table: str
    source_version: int | None
    config_hash: str
    row_count: int
    features: dict[str, FeatureProfile] = field(default_factory=dict)
    performance: Histogram | None = None  # label x prediction counts (see performance.py), if labelled
    #: (slice, slice value) -> column -> histogram on the overall profile's bins (see core.slices)
    slices: dict[tuple[str, str], dict[str, Histogram]] = field(default_factory=dict)

    def slice_top(self) -> dict[str, tuple[str, ...]]:
        """Each slice dimension's top values (its other and null values aside), in stored order."""
        from sparkdrift.core.slices import MISSING, OTHER

        out: dict[str, list[str]] = {}
        for name, value in self.slices:
            out.setdefault(name, [])
            if value not in (OTHER, MISSING):
                out[name].append(value)
        return {k: tuple(v) for k, v in out.items()}

    def with_features(self, features: dict[str, FeatureProfile]) -> "BaselineProfile":
        return replace(self, features=features)

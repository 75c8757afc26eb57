"""Drift statistics computed from bin counts only: pure numpy/scipy, no Spark, no raw rows.

Every statistic takes ``(profile, reference, window, params)`` and returns a
`StatResult`. ``reference`` is usually ``profile.baseline`` but may be any
histogram in the same bin layout (the previous window, a rolling sum of
windows), so the same code serves "vs training data" and "vs last week".

Bin vectors used here (see `sparkdrift.core.profile` for the layout):

* numeric fine:   ``[underflow, counts[0..k], overflow]`` (k + 3 cells)
* numeric coarse: ``profile.coarse_counts(h)`` = ``[underflow, coarse..., overflow]``
* categorical:    ``[counts (top-K slots + other), unseen]``

Nulls and NaNs never enter a distribution; they are measured by
``null_rate_delta``. Degenerate input (empty or all-null window, all-null or
constant baseline) never raises and never yields ``inf``: the value is either a
well-defined number (identical distributions give 0) or NaN with a ``reason``.
Only programming errors raise ``ValueError``: histograms whose bin counts do
not match each other or the profile, a statistic applied to the wrong kind of
column, or an unknown statistic name.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sparkdrift.core.distances import (
    chi2_from_table,
    hellinger_distance,
    js_distance,
    ks_critical_value,
    ks_estimate,
    ks_pvalue,
    linf_rows,
    psi_from_counts,
    tv_rows,
)
from sparkdrift.core.profile import FeatureProfile, Histogram

Direction = Literal["above", "below"]

NUMERIC = frozenset({"numeric"})
CATEGORICAL = frozenset({"categorical"})
BOTH = NUMERIC | CATEGORICAL



@dataclass(frozen=True)
class StatResult:
    """One statistic for one (feature, window): the value, its bounds, and why it may be NaN."""

    statistic: str
    value: float  # float('nan') when undefined, never inf
    lower: float | None = None  # bounds where the bins only bracket the exact value (KS, Wasserstein)
    upper: float | None = None
    p_value: float | None = None
    reason: str | None = None  # set when value is NaN: why (e.g. "empty window")

    @property
    def defined(self) -> bool:
        return not math.isnan(self.value)


@dataclass(frozen=True)
class StatParams:
    """Tuning knobs shared by the statistics.

    ``epsilon`` replaces zero proportions in PSI (then the vector is
    renormalised); ``ks_alpha`` is the level of the robust KS critical value.
    ``divergence_bins`` picks the numeric bins for JS and Hellinger: "coarse"
    (the PSI bins, default) keeps their no-drift noise floor far below the
    thresholds at ordinary window sizes; "fine" (the 1000-quantile grid) is
    more sensitive to shape but its noise floor is about
    sqrt(k / (8 ln 2) * (1/n + 1/m)) for k bins, i.e. ~0.1 at 20k-row windows.
    """

    epsilon: float = 1e-4
    ks_alpha: float = 0.05
    divergence_bins: Literal["coarse", "fine"] = "coarse"

    def __post_init__(self) -> None:
        if not 0.0 < self.epsilon < 0.5:
            raise ValueError(f"epsilon must be in (0, 0.5), got {self.epsilon!r}")
        if not 0.0 < self.ks_alpha < 1.0:
            raise ValueError(f"ks_alpha must be in (0, 1), got {self.ks_alpha!r}")
        if self.divergence_bins not in ("coarse", "fine"):
            raise ValueError(f"divergence_bins must be 'coarse' or 'fine', got {self.divergence_bins!r}")


# --------------------------------------------------------------------------- helpers


class _Undefined(Exception):
    """Raised inside a statistic to return NaN with a reason (never escapes this module)."""


def _nan(name: str, reason: str) -> StatResult:
    return StatResult(statistic=name, value=math.nan, reason=reason)


def _finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _result(name: str, value: float, **kw: float | None) -> StatResult:
    """Build a result, turning any non-finite value into NaN-with-reason (never inf)."""
    value = float(value)
    if not math.isfinite(value):
        return _nan(name, "non-finite result")
    return StatResult(statistic=name, value=value, **{k: _finite_or_none(v) for k, v in kw.items()})


def _check_layout(profile: FeatureProfile, reference: Histogram, window: Histogram) -> None:
    """Mismatched bins are a programming error (histogram of another profile), not drift."""
    r, w = reference.counts.size, window.counts.size
    if r != w:
        raise ValueError(f"{profile.name}: reference has {r} bins but window has {w}")
    if r != profile.n_bins:
        raise ValueError(f"{profile.name}: histograms have {r} bins but the profile defines {profile.n_bins}")


def _check_kind(name: str, kinds: frozenset[str], profile: FeatureProfile) -> None:
    if profile.kind not in kinds:
        allowed = " or ".join(sorted(kinds))
        raise ValueError(f"{name} applies to {allowed} features, not {profile.kind} feature {profile.name!r}")


def _numeric_total(h: Histogram) -> int:
    return int(h.counts.sum()) + int(h.underflow) + int(h.overflow)


def valid_total(profile: FeatureProfile, h: Histogram) -> int:
    """Rows with a value the distribution statistics use (numeric: binned + under/overflow; categorical: + unseen)."""
    return _numeric_total(h) if profile.kind == "numeric" else int(h.counts.sum()) + int(h.unseen)


def _require_mass(profile: FeatureProfile, reference: Histogram, window: Histogram) -> None:
    """Why a distribution comparison is undefined, checked in a fixed order."""
    if profile.all_null:
        raise _Undefined("all-null baseline")
    if valid_total(profile, reference) == 0:
        raise _Undefined("empty reference" if reference.n_rows == 0 else "all-null reference")
    if valid_total(profile, window) == 0:
        raise _Undefined("empty window" if window.n_rows == 0 else "all-null window")


def _fine_vector(h: Histogram) -> np.ndarray:
    return np.concatenate([[h.underflow], h.counts, [h.overflow]]).astype(np.int64)


def _categorical_vector(h: Histogram) -> np.ndarray:
    return np.concatenate([h.counts, [h.unseen]]).astype(np.int64)


def _distribution_vector(profile: FeatureProfile, h: Histogram, numeric_bins: str) -> np.ndarray:
    if profile.kind == "categorical":
        return _categorical_vector(h)
    return profile.coarse_counts(h) if numeric_bins == "coarse" else _fine_vector(h)


def _categorical_pair(reference: Histogram, window: Histogram) -> tuple[np.ndarray, np.ndarray]:
    return _categorical_vector(reference)[None, :], _categorical_vector(window)[None, :]


def _statistic(name: str, kinds: frozenset[str]):
    """Decorator: kind and layout checks up front, `_Undefined` turned into NaN-with-reason."""

    def wrap(fn):
        def run(
            profile: FeatureProfile, reference: Histogram, window: Histogram, params: StatParams = StatParams()
        ) -> StatResult:
            _check_kind(name, kinds, profile)
            _check_layout(profile, reference, window)
            try:
                return fn(profile, reference, window, params)
            except _Undefined as e:
                return _nan(name, str(e))

        run.__name__ = fn.__name__
        run.__qualname__ = fn.__qualname__
        run.__doc__ = fn.__doc__
        return run

    return wrap


_INTEGRAL_TYPES = frozenset(
    {"boolean", "bool", "tinyint", "smallint", "int", "integer", "bigint", "long", "short", "byte"}
    | {f"{p}int{b}" for p in ("", "u") for b in (8, 16, 32, 64)}
)


def is_integral_dtype(dtype: str) -> bool:
    """True for integer/boolean column types, whose bins narrower than 2 hold a single value."""
    d = (dtype or "").strip().lower()
    return d in _INTEGRAL_TYPES or re.fullmatch(r"decimal\(\s*\d+\s*,\s*0\s*\)", d) is not None


def _atom_bins(profile: FeatureProfile) -> tuple[np.ndarray, np.ndarray]:
    """Which fine bins hold a single possible value, and that value.

    A bin whose CDF is a single step is known exactly at every point, so KS
    gains nothing inside it and Wasserstein treats it as a point mass:

    * the last bin, the closed atom ``[c_k, c_k]`` at the maximum;
    * a bin one float wide, ``c_{i+1} == nextafter(c_i, inf)`` (holds only ``c_i``);
    * for integral dtypes, a bin ``[c_i, c_{i+1})`` holding at most one integer
      (``ceil(c_{i+1}) - ceil(c_i) <= 1``), an atom at ``ceil(c_i)``: this makes
      KS and Wasserstein exact for counts, flags and booleans.
    """
    e = np.asarray(profile.edges, dtype=float)
    atoms = np.zeros(e.size, dtype=bool)
    where = e.copy()
    if e.size:
        atoms[-1] = True
    if e.size > 1:
        one_float = e[1:] <= np.nextafter(e[:-1], np.inf)
        atoms[:-1] = one_float
        if is_integral_dtype(profile.dtype):
            one_int = ~one_float & ((np.ceil(e[1:]) - np.ceil(e[:-1])) <= 1)
            atoms[:-1] |= one_int
            where[:-1] = np.where(one_int, np.minimum(np.ceil(e[:-1]), e[1:]), e[:-1])
    return atoms, where


# --------------------------------------------------------------------------- PSI


@_statistic("psi", BOTH)
def psi(
    profile: FeatureProfile, reference: Histogram, window: Histogram, params: StatParams = StatParams()
) -> StatResult:
    """Population Stability Index on the coarse bins (numeric) or slots + unseen (categorical).

    The industry-standard drift score with well-known bands (< 0.1 stable,
    0.1-0.2 moderate, > 0.2 significant); coarse bins keep it stable at any n.
    """
    _require_mass(profile, reference, window)
    a = _distribution_vector(profile, reference, "coarse")
    b = _distribution_vector(profile, window, "coarse")
    return _result("psi", psi_from_counts(a, b, params.epsilon))


# --------------------------------------------------------------------------- KS


def _ks_cdf(profile: FeatureProfile, h: Histogram) -> tuple[np.ndarray, float, int]:
    """Exact CDF values the bins give: G[i] = P(X < c_i) for every cut, and H = P(X <= c_k)."""
    n = _numeric_total(h)
    below = int(h.underflow) + np.concatenate([[0], np.cumsum(h.counts)[:-1]])
    return below / n, (n - int(h.overflow)) / n, n


def ks_bounds(profile: FeatureProfile, reference: Histogram, window: Histogram) -> tuple[float, float, int, int]:
    """Lower and upper bound of the two-sample KS statistic from fine-bin counts.

    Lower: max |F_ref - F_win| at the points where both empirical CDFs are known
    exactly (P(X < c_i) at every cut, P(X <= c_k) at the maximum); each is a
    value the true difference takes, so their max cannot exceed the sup.
    Upper: inside an interval where F_ref runs monotonically from s_r to e_r
    and F_win from s_w to e_w, |F_ref - F_win| <= max(e_r - s_w, e_w - s_r);
    the intervals are the underflow (-inf, c_0), each non-atom fine bin, and
    the overflow (c_k, inf). Atom bins add nothing (their CDF is known).
    Returns (lower, upper, n_ref, n_win).
    """
    g_r, h_r, n = _ks_cdf(profile, reference)
    g_w, h_w, m = _ks_cdf(profile, window)
    lower = max(float(np.max(np.abs(g_r - g_w))), abs(h_r - h_w))
    # interval (start, end) of each CDF: underflow, fine bins 0..k-1, overflow
    atoms, _ = _atom_bins(profile)
    s_r = np.concatenate([[0.0], g_r[:-1][~atoms[:-1]], [h_r]])
    e_r = np.concatenate([[g_r[0]], g_r[1:][~atoms[:-1]], [1.0]])
    s_w = np.concatenate([[0.0], g_w[:-1][~atoms[:-1]], [h_w]])
    e_w = np.concatenate([[g_w[0]], g_w[1:][~atoms[:-1]], [1.0]])
    upper = max(lower, float(np.max(np.maximum(e_r - s_w, e_w - s_r))))
    return lower, min(upper, 1.0), n, m


@_statistic("ks", NUMERIC)
def ks(
    profile: FeatureProfile, reference: Histogram, window: Histogram, params: StatParams = StatParams()
) -> StatResult:
    """Two-sample Kolmogorov-Smirnov statistic bracketed by the fine grid.

    value = lower bound (exact CDF points; equals the exact KS on discrete data
    whose values are all cuts), [lower, upper] contains the exact statistic.
    Under/overflow count as mass below the minimum / above the maximum.
    The p-value is taken at `ks_estimate` (at the lower bound it was biased up
    by as much as 0.05 at n >= 1e5); the exact statistic's p-value lies in
    [ks_pvalue(upper), ks_pvalue(lower)] (`ks_pvalue_range`).
    """
    _require_mass(profile, reference, window)
    lower, upper, n, m = ks_bounds(profile, reference, window)
    point = ks_estimate(lower, upper, n, m, profile.n_bins)
    return _result("ks", lower, lower=lower, upper=upper, p_value=ks_pvalue(point, n, m))


@_statistic("ks_robust", NUMERIC)
def ks_robust(
    profile: FeatureProfile, reference: Histogram, window: Histogram, params: StatParams = StatParams()
) -> StatResult:
    """KS statistic minus its critical value at ``ks_alpha`` (Deequ-style).

    > 0 means the difference is both statistically real and measured in the
    same units as KS, so it can decide at any n without p-value inflation.
    """
    _require_mass(profile, reference, window)
    lower, upper, n, m = ks_bounds(profile, reference, window)
    crit = ks_critical_value(n, m, params.ks_alpha)
    return _result(
        "ks_robust", lower - crit, lower=lower - crit, upper=upper - crit, p_value=ks_pvalue(lower, n, m)
    )


# --------------------------------------------------------------------------- JS, Hellinger, TV, L-inf


def _divergence_pair(
    profile: FeatureProfile, reference: Histogram, window: Histogram, params: StatParams
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and window shares on the JS/Hellinger bins (both must have rows)."""
    _require_mass(profile, reference, window)
    return (_distribution_vector(profile, reference, params.divergence_bins),
            _distribution_vector(profile, window, params.divergence_bins))


@_statistic("js", BOTH)
def js(
    profile: FeatureProfile, reference: Histogram, window: Histogram, params: StatParams = StatParams()
) -> StatResult:
    """Jensen-Shannon distance (base 2): bounded, symmetric, and needs no epsilon.

    Numeric bins: ``params.divergence_bins`` (coarse by default, or the fine
    grid), both with underflow/overflow; categorical: slots + unseen.
    """
    a, b = _divergence_pair(profile, reference, window, params)
    return _result("js", js_distance(a, b))


@_statistic("hellinger", BOTH)
def hellinger(
    profile: FeatureProfile, reference: Histogram, window: Histogram, params: StatParams = StatParams()
) -> StatResult:
    """Hellinger distance on the same bins as JS; bounded in [0, 1], no epsilon needed."""
    a, b = _divergence_pair(profile, reference, window, params)
    return _result("hellinger", hellinger_distance(a, b))


@_statistic("tv", CATEGORICAL)
def tv(
    profile: FeatureProfile, reference: Histogram, window: Histogram, params: StatParams = StatParams()
) -> StatResult:
    """Total variation 1/2 sum |p - q| over slots + unseen: the share of rows that moved category."""
    _require_mass(profile, reference, window)
    return _result("tv", tv_rows(*_categorical_pair(reference, window))[0])


@_statistic("linf", CATEGORICAL)
def linf(
    profile: FeatureProfile, reference: Histogram, window: Histogram, params: StatParams = StatParams()
) -> StatResult:
    """L-infinity max |p - q| over slots + unseen: the largest single-category shift."""
    _require_mass(profile, reference, window)
    return _result("linf", linf_rows(*_categorical_pair(reference, window))[0])


# --------------------------------------------------------------------------- chi-square


@_statistic("chi2", CATEGORICAL)
def chi2(
    profile: FeatureProfile, reference: Histogram, window: Histogram, params: StatParams = StatParams()
) -> StatResult:
    """Chi-square test of homogeneity on the 2 x k table (reference, window) x (slots, other, unseen).

    Reported for its p-value; at large n it is always "significant", so it
    never decides on its own (default threshold None).
    """
    _require_mass(profile, reference, window)
    stat, p = chi2_from_table(np.vstack([_categorical_vector(reference), _categorical_vector(window)]))
    return _result("chi2", stat, p_value=p)


# --------------------------------------------------------------------------- Wasserstein, mean shift


def _pieces(profile: FeatureProfile, h: Histogram) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The bin model used for Wasserstein: (lo, hi, probability, bin width) per piece, in value order.

    Where the histogram keeps per-bin sums, each fine bin's mass is a point at
    its own mean (exact placement; this matters in wide tail bins); otherwise
    it is spread uniformly over [c_i, c_{i+1}]. Atom bins (the maximum, and
    single-integer bins of integral dtypes) are point masses. Underflow mass is
    spread uniformly over [h.min, c_0], overflow over [c_k, h.max]: the
    histogram's own extremes bound where that mass can be. The bin width
    bounds the model's error either way (a bin's mass never leaves its bin).
    """
    e = np.asarray(profile.edges, dtype=float)
    n = _numeric_total(h)
    atoms, lo = _atom_bins(profile)
    hi = np.where(atoms, lo, np.append(e[1:], e[-1]))
    width = hi - lo
    if h.bin_sums is not None:
        filled = ~atoms & (h.counts > 0)
        mean = np.divide(h.bin_sums, h.counts, out=lo.copy(), where=filled)
        mean = np.clip(mean, lo, hi)
        lo, hi = np.where(filled, mean, lo), np.where(filled, mean, hi)
    mass = h.counts.astype(float)
    u_lo = h.min if math.isfinite(h.min) and h.min < e[0] else e[0]
    o_hi = h.max if math.isfinite(h.max) and h.max > e[-1] else e[-1]
    lo = np.concatenate([[u_lo], lo, [e[-1]]])
    hi = np.concatenate([[e[0]], hi, [o_hi]])
    width = np.concatenate([[e[0] - u_lo], width, [o_hi - e[-1]]])
    mass = np.concatenate([[h.underflow], mass, [h.overflow]]) / n
    keep = mass > 0
    return lo[keep], hi[keep], mass[keep], width[keep]


def _cdf_knots(lo: np.ndarray, hi: np.ndarray, mass: np.ndarray, *_: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots (x, F) of the piecewise-linear CDF; a point mass is two knots at the same x."""
    cum = np.concatenate([[0.0], np.cumsum(mass)])
    cum[-1] = 1.0
    xs = np.empty(2 * lo.size)
    fs = np.empty(2 * lo.size)
    xs[0::2], xs[1::2] = lo, hi
    fs[0::2], fs[1::2] = cum[:-1], cum[1:]
    return xs, fs


def _cdf_eval(xs: np.ndarray, fs: np.ndarray, t: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
    """F(t) (right-continuous) or its left limit F(t-) from the knots."""
    if side == "right":
        i = np.searchsorted(xs, t, side="right") - 1  # last knot <= t
        j = np.minimum(i + 1, xs.size - 1)
    else:
        j = np.searchsorted(xs, t, side="left")  # first knot >= t
        i = j - 1
        j = np.minimum(j, xs.size - 1)
    i_c = np.clip(i, 0, xs.size - 1)
    x0, x1, f0, f1 = xs[i_c], xs[j], fs[i_c], fs[j]
    width = x1 - x0
    frac = np.divide(t - x0, width, out=np.zeros_like(t), where=width > 0)
    out = f0 + (f1 - f0) * np.clip(frac, 0.0, 1.0)
    out = np.where(i < 0, 0.0, out)
    return np.where(i >= xs.size - 1, 1.0, out)  # past the last knot


def wasserstein_from_pieces(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> float:
    """Exact W1 = integral |F_a - F_b| between two piecewise-uniform-plus-atoms distributions."""
    xa, fa = _cdf_knots(*a)
    xb, fb = _cdf_knots(*b)
    t = np.unique(np.concatenate([xa, xb]))
    if t.size < 2:
        return 0.0
    d0 = _cdf_eval(xa, fa, t[:-1], "right") - _cdf_eval(xb, fb, t[:-1], "right")
    d1 = _cdf_eval(xa, fa, t[1:], "left") - _cdf_eval(xb, fb, t[1:], "left")
    length = np.diff(t)
    same_sign = d0 * d1 >= 0
    abs_sum = np.abs(d0) + np.abs(d1)
    crossing = np.divide(d0 * d0 + d1 * d1, 2.0 * abs_sum, out=np.zeros_like(abs_sum), where=abs_sum > 0)
    area = np.where(same_sign, 0.5 * abs_sum, crossing) * length
    return float(area.sum())


def _model_error(pieces: tuple[np.ndarray, ...]) -> float:
    """W1 between a histogram's true values and its bin model: at most sum p_i * width_i / 2."""
    _, _, mass, width = pieces
    return float(np.sum(mass * width) / 2.0)


def baseline_std(profile: FeatureProfile) -> float:
    """Baseline std, exactly 0 when the baseline is constant (one cut: min == max).

    ``Histogram.std`` comes from sums of squares and can leave a tiny non-zero
    residue for a constant column; dividing by it would give absurd values.
    """
    b = profile.baseline
    if len(profile.edges) <= 1 or b.min == b.max:
        return 0.0
    if profile.std is not None and math.isfinite(profile.std):
        return profile.std  # exact: sums of squares cancel badly when |mean| >> std
    return b.std


def _baseline_scale(profile: FeatureProfile, raw: float) -> float:
    """Divide by the baseline std; 0/0 (identical constant) is 0, x/0 is undefined."""
    sd = baseline_std(profile)
    if sd == 0.0:
        if raw == 0.0:
            return 0.0
        raise _Undefined("constant baseline (std 0)")
    return raw / sd


@_statistic("wasserstein", NUMERIC)
def wasserstein(
    profile: FeatureProfile, reference: Histogram, window: Histogram, params: StatParams = StatParams()
) -> StatResult:
    """Wasserstein-1 between reference and window, divided by the baseline std.

    Scale-free ("how many baseline standard deviations did the mass move").
    The bins give [lower, upper] around the estimate: the bin model is at
    W1-distance <= sum p_i w_i / 2 from each true distribution (w_i = bin width),
    so |estimate - exact| <= that sum over both, at most the widest bin.
    """
    _require_mass(profile, reference, window)
    pa, pb = _pieces(profile, reference), _pieces(profile, window)
    w = wasserstein_from_pieces(pa, pb)
    err = _model_error(pa) + _model_error(pb)
    value = _baseline_scale(profile, w)
    sd = baseline_std(profile)
    if sd == 0.0:  # only reached when w == 0: identical distributions
        return _result("wasserstein", 0.0, lower=0.0, upper=0.0 if err == 0.0 else None)
    return _result("wasserstein", value, lower=max(w - err, 0.0) / sd, upper=(w + err) / sd)


@_statistic("mean_shift", NUMERIC)
def mean_shift(
    profile: FeatureProfile, reference: Histogram, window: Histogram, params: StatParams = StatParams()
) -> StatResult:
    """|mean_window - mean_reference| / baseline std, from exact sums (no binning error)."""
    _require_mass(profile, reference, window)
    return _result("mean_shift", _baseline_scale(profile, abs(window.mean - reference.mean)))


# --------------------------------------------------------------------------- null rate


def _null_rate(h: Histogram) -> float:
    return (int(h.nulls) + int(h.nans)) / h.n_rows


@_statistic("null_rate_delta", BOTH)
def null_rate_delta(
    profile: FeatureProfile, reference: Histogram, window: Histogram, params: StatParams = StatParams()
) -> StatResult:
    """(nulls + NaNs) / rows in the window minus the same in the reference.

    Signed: a rise in missing values is the failure mode (a broken upstream
    join), so only increases breach. Defined for all-null data, too.
    """
    if reference.n_rows == 0:
        return _nan("null_rate_delta", "empty reference")
    if window.n_rows == 0:
        return _nan("null_rate_delta", "empty window")
    return _result("null_rate_delta", _null_rate(window) - _null_rate(reference))


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Statistic:
    """A registered statistic: where it applies, which side breaches, and its default threshold."""

    name: str
    kinds: frozenset[str]
    direction: Direction  # "above": breach when value > threshold; "below": value < threshold
    default_threshold: float | None  # None = reported only, never decides
    compute: Callable[[FeatureProfile, Histogram, Histogram, StatParams], StatResult]
    description: str = ""


STATISTICS: dict[str, Statistic] = {
    s.name: s
    for s in (
        Statistic("psi", BOTH, "above", 0.2, psi, "population stability index"),
        Statistic("ks", NUMERIC, "above", 0.1, ks, "Kolmogorov-Smirnov statistic"),
        Statistic("ks_robust", NUMERIC, "above", 0.05, ks_robust, "KS minus its critical value"),
        Statistic("js", BOTH, "above", 0.1, js, "Jensen-Shannon distance (base 2)"),
        Statistic("wasserstein", NUMERIC, "above", 0.1, wasserstein, "Wasserstein-1 / baseline std"),
        Statistic("hellinger", BOTH, "above", 0.1, hellinger, "Hellinger distance"),
        Statistic("mean_shift", NUMERIC, "above", 0.25, mean_shift, "|mean shift| / baseline std"),
        Statistic("null_rate_delta", BOTH, "above", 0.05, null_rate_delta, "rise in null + NaN rate"),
        Statistic("chi2", CATEGORICAL, "above", None, chi2, "chi-square statistic (p-value reported)"),
        Statistic("tv", CATEGORICAL, "above", 0.1, tv, "total variation distance"),
        Statistic("linf", CATEGORICAL, "above", None, linf, "largest single-category shift"),
    )
}

#: Statistics computed on a numeric column's coarse bins; JS and Hellinger on ``params.divergence_bins``.
COARSE_STATISTICS = frozenset({"psi", "tv", "linf", "chi2"})
DIVERGENCES = frozenset({"js", "hellinger"})


def cells_read(name: str, kind: str, params: StatParams) -> str:
    """The bins statistic ``name`` reads of a column of ``kind``: "coarse" or "fine" (a categorical has one layout)."""
    if kind == "categorical" or name in COARSE_STATISTICS:
        return "coarse"
    return params.divergence_bins if name in DIVERGENCES else "fine"


DEFAULT_STATISTICS: dict[str, tuple[str, ...]] = {
    "numeric": ("psi", "ks", "ks_robust", "js", "wasserstein", "mean_shift", "null_rate_delta"),
    "categorical": ("psi", "chi2", "js", "tv", "linf", "null_rate_delta"),
}

#: Thresholds for prediction columns (the playbook: prediction drift PSI > 0.15).
DEFAULT_PREDICTION_THRESHOLDS: dict[str, float] = {"psi": 0.15}


def compute(
    name: str,
    profile: FeatureProfile,
    reference: Histogram,
    window: Histogram,
    params: StatParams = StatParams(),
) -> StatResult:
    """Run the registered statistic ``name``; ValueError for unknown names or wrong column kinds."""
    stat = STATISTICS.get(name)
    if stat is None:
        raise ValueError(f"unknown statistic {name!r} (known: {', '.join(STATISTICS)})")
    return stat.compute(profile, reference, window, params)


def breached(stat: Statistic, value: float, threshold: float | None) -> bool:
    """Whether ``value`` crosses ``threshold`` in the statistic's direction (strictly).

    NaN (undefined) and a missing threshold never breach: an empty window is a
    data-quality finding, not drift.
    """
    if threshold is None or value is None or math.isnan(value) or math.isnan(threshold):
        return False
    return value > threshold if stat.direction == "above" else value < threshold


__all__ = [
    "BOTH",
    "CATEGORICAL",
    "COARSE_STATISTICS",
    "DIVERGENCES",
    "DEFAULT_PREDICTION_THRESHOLDS",
    "DEFAULT_STATISTICS",
    "NUMERIC",
    "STATISTICS",
    "StatParams",
    "StatResult",
    "Statistic",
    "breached",
    "cells_read",
    "chi2",
    "compute",
    "hellinger",
    "is_integral_dtype",
    "js",
    "ks",
    "ks_bounds",
    "ks_robust",
    "baseline_std",
    "linf",
    "mean_shift",
    "null_rate_delta",
    "psi",
    "tv",
    "valid_total",
    "wasserstein",
    "wasserstein_from_pieces",
]

"""False-alarm and power study of the noise floors (issue 14), pure numpy: no Spark.

    python bench/false_alarms.py                       # ~5-10 min on 2 cores
    python bench/false_alarms.py --windows 400 --sizes 100,1000 --no-power

What it does:

1. **Baseline.** 23 features of mixed kinds (continuous: normal, lognormal,
   uniform, Student-t, exponential; discrete counts stored as ``bigint``:
   Poisson, negative binomial, a 0/1 flag; zero-heavy: zero-inflated
   lognormal, gamma and Poisson; categorical: Zipf mixes with 5 to 5 000
   categories, i.e. a long tail beyond the top-K and beyond what the baseline
   saw), each profiled from ``--baseline-rows`` seeded draws exactly as the
   Spark baseline job does (tests/helpers.py's rules: 1000 fine quantile
   bins, 10 coarse bins, top-20 categories). A few features have 1 % nulls.
2. **Drift-free windows.** ``--windows`` windows per size n drawn from the
   *generating* distributions (not from the baseline's histogram: the
   baseline's own sampling error is part of what a user sees). n <= 10 000:
   raw draws counted with ``binning.count_numeric`` / ``count_categorical``.
   n > 10 000: the *multinomial shortcut*: the window's fine-bin counts
   (underflow, every fine bin, the atom at the max, overflow; or top-K slots,
   other, unseen) are one multinomial draw with the true probabilities of
   those cells (CDF differences at the profile's edges for continuous
   distributions, pmf sums for counts, category probabilities summed per slot
   for categoricals). That is exactly the law of the counts of n iid raw
   draws. The moments that mean_shift needs are drawn from the normal
   approximation of the window sum (true mean and variance, drawn independently
   of the counts; at n >= 1e5 the CLT error is negligible, but the correlation
   between the sum and the bin counts is lost); min and max are exact draws of
   the extreme of the under/overflow values when there are any (inverse CDF of
   the tail), else the edges of the outermost non-empty bin.
3. Each size is run through ``drift.drift_results`` and ``policy.evaluate``
   as ONE ordered series of windows (one per day), so the CUSUM persistence
   rule sees a realistic sequence, with noise floors ON (the default config)
   and OFF (``policy.noise_floor: false``: today's fixed thresholds). Reported:
   the share of windows at each severity, which rules raised them (score,
   drifted-feature count, persistence) and which statistics breached.
4. **Power.** The same baseline, windows drawn from shifted distributions:
   mean shifts of ``--shifts`` baseline standard deviations on five numeric
   features (normal and uniform: location shift; lognormal: every value
   times a factor, so the support stays positive; Poisson counts:
   lambda + d*sqrt(lambda); zero-heavy: fewer zeros, same mean change) and
   category-mix changes moving ``--mixes`` of the probability mass from the
   top category to the others (proportionally) on two categorical features.
   Detection = share of windows at >= minor, and per shifted feature the
   share of windows where it is marked drifted, floors on and off.
5. **Slow drift.** One normal feature with a constant small shift and a ramp
   over ``--slow-windows`` windows: when the per-window rules and the CUSUM
   persistence rule first fire.

Results: a markdown section appended to bench/RESULTS.md and the raw numbers
in bench/results/<time>-false-alarms.json (``--out`` to change the folder,
``--no-write`` to only print).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from scipy import stats as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sparkdrift.core.binning import count_categorical, count_numeric  # noqa: E402
from sparkdrift.core.config import MonitorConfig, parse_config  # noqa: E402
from sparkdrift.core import drift as _drift  # noqa: E402
from sparkdrift.core.drift import drift_results  # noqa: E402
from sparkdrift.core.windows import WindowHistograms  # noqa: E402
from sparkdrift.core.policy import LEVELS, above_noise, evaluate, score_statistic, severity_rank  # noqa: E402
from sparkdrift.core.profile import BaselineProfile, FeatureProfile, Histogram  # noqa: E402
from tests.helpers import categorical_profile, numeric_profile  # noqa: E402

SEVERITIES = ("none", *LEVELS)
# the per-test arithmetic's names (renamed once already): whichever this checkout has
tests_per_window = getattr(_drift, "n_tests", None) or getattr(_drift, "tests_per_window")
test_level = getattr(_drift, "alpha_per_test", None) or getattr(_drift, "test_level")
#: Above this many rows per window the counts are drawn as one multinomial (see the module doc).
RAW_MAX = 10_000
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
#: Whether this checkout's Histogram keeps per-fine-bin value sums (Wasserstein places each bin's mass at its mean).
BIN_SUMS = "bin_sums" in {f.name for f in fields(Histogram)}


# --------------------------------------------------------------------------- distributions


class Continuous:
    """A scipy continuous distribution, optionally moved by ``shift``."""

    discrete = False

    def __init__(self, dist, shift: float = 0.0, scale: float = 1.0, how: str = "location"):
        self.dist, self.shift, self.scale, self.how = dist, shift, scale, how

    def sample(self, rng, n):
        return self.scale * self.dist.rvs(size=n, random_state=rng) + self.shift

    def _u(self, x):
        return (np.asarray(x) - self.shift) / self.scale

    def lt(self, x):  # P(X < x)
        return self.dist.cdf(self._u(x))

    le = lt

    def gt(self, x):  # P(X > x)
        return self.dist.sf(self._u(x))

    def ppf(self, q):
        return self.scale * self.dist.ppf(q) + self.shift

    def isf(self, q):
        return self.scale * self.dist.isf(q) + self.shift

    @property
    def mean(self):
        return self.scale * float(self.dist.mean()) + self.shift

    @property
    def var(self):
        return self.scale**2 * float(self.dist.var())

    def bin_means(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """E[X | a <= X < b] per bin: the mean of the quantile function over the bin (8-point Gauss-Legendre)."""
        ua, ub = self.lt(a), self.lt(b)
        x, w = np.polynomial.legendre.leggauss(8)
        u = ua[:, None] + (ub - ua)[:, None] * (x[None, :] + 1) / 2
        with np.errstate(all="ignore"):
            m = (self.ppf(np.clip(u, 1e-300, 1 - 1e-16)) * w[None, :]).sum(axis=1) / 2
        ok = (ub - ua > 1e-15) & np.isfinite(m)
        return np.clip(np.where(ok, m, (a + b) / 2), a, b)

    def shifted(self, d_sd: float):
        """Mean + d sd: a location shift, or (``how="scale"``, positive data) every value times a factor."""
        if self.how == "scale":
            return Continuous(self.dist, self.shift, self.scale * (1 + d_sd * math.sqrt(self.var) / self.mean), "scale")
        return Continuous(self.dist, self.shift + d_sd * math.sqrt(self.var), self.scale)


class Discrete:
    """A scipy integer distribution (values stored as bigint)."""

    discrete = True

    def __init__(self, dist, make=None, args=()):
        self.dist, self.make, self.args = dist, make, args

    def sample(self, rng, n):
        return self.dist.rvs(size=n, random_state=rng).astype(float)

    def lt(self, x):
        return self.dist.cdf(np.ceil(np.asarray(x, dtype=float)) - 1)

    def le(self, x):
        return self.dist.cdf(np.floor(np.asarray(x, dtype=float)))

    def gt(self, x):
        return self.dist.sf(np.floor(np.asarray(x, dtype=float)))

    def ppf(self, q):
        return self.dist.ppf(q)

    def isf(self, q):
        return self.dist.isf(q)

    @property
    def mean(self):
        return float(self.dist.mean())

    @property
    def var(self):
        return float(self.dist.var())

    def bin_means(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """E[X | a <= X < b] exactly: the integers ceil(a)..ceil(b)-1 weighted by the pmf."""
        top = int(np.ceil(np.max(b))) + 1
        k = np.arange(0, top + 1, dtype=float)
        pmf = self.dist.pmf(k)
        cum_p, cum_x = np.concatenate([[0], np.cumsum(pmf)]), np.concatenate([[0], np.cumsum(k * pmf)])
        lo = np.clip(np.ceil(a).astype(int), 0, top + 1)
        hi = np.clip(np.ceil(b).astype(int), 0, top + 1)
        mass, total = cum_p[hi] - cum_p[lo], cum_x[hi] - cum_x[lo]
        return np.where(mass > 0, total / np.where(mass > 0, mass, 1), np.ceil(a))

    def shifted(self, d_sd: float):
        """Poisson: lambda + d * sqrt(lambda) (a mean shift of d standard deviations)."""
        lam = self.args[0]
        return Discrete(st.poisson(lam + d_sd * math.sqrt(lam)), self.make, (lam + d_sd * math.sqrt(lam),))


class ZeroInflated:
    """0 with probability w0, else a draw of ``inner`` (positive support: the tails are inner's)."""

    def __init__(self, w0: float, inner):
        self.w0, self.inner = w0, inner
        self.discrete = inner.discrete

    def sample(self, rng, n):
        v = self.inner.sample(rng, n)
        v[rng.random(n) < self.w0] = 0.0
        return v

    def lt(self, x):
        x = np.asarray(x, dtype=float)
        return self.w0 * (x > 0) + (1 - self.w0) * self.inner.lt(x)

    def le(self, x):
        x = np.asarray(x, dtype=float)
        return self.w0 * (x >= 0) + (1 - self.w0) * self.inner.le(x)

    def gt(self, x):
        x = np.asarray(x, dtype=float)
        return self.w0 * (x < 0) + (1 - self.w0) * self.inner.gt(x)

    def ppf(self, q):  # only used below the baseline's min (never reached: min is 0)
        return np.minimum(0.0, self.inner.ppf(np.asarray(q) / (1 - self.w0)))

    def isf(self, q):
        return self.inner.isf(np.asarray(q) / (1 - self.w0))

    @property
    def mean(self):
        return (1 - self.w0) * self.inner.mean

    @property
    def var(self):
        m2 = (1 - self.w0) * (self.inner.var + self.inner.mean**2)
        return m2 - self.mean**2

    def bin_means(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Zeros and inner draws in the same bin: weighted by their mass."""
        z = self.w0 * ((a <= 0) & (b > 0))
        inner = (1 - self.w0) * (self.inner.lt(b) - self.inner.lt(a))
        m = self.inner.bin_means(a, b)
        tot = z + inner
        return np.where(tot > 0, inner * m / np.where(tot > 0, tot, 1), 0.0)

    def shifted(self, d_sd: float):
        """Fewer zeros, so that the mean moves by d standard deviations."""
        w0 = self.w0 - d_sd * math.sqrt(self.var) / self.inner.mean
        if not 0.0 <= w0 < 1.0:
            raise ValueError(f"shift {d_sd} leaves no valid zero share ({w0:.3f})")
        return ZeroInflated(w0, self.inner)


class Categorical:
    def __init__(self, names: list[str], probs: np.ndarray):
        self.names, self.probs = names, np.asarray(probs, dtype=float) / np.sum(probs)

    def sample(self, rng, n):
        idx = rng.choice(len(self.names), size=n, p=self.probs)
        return [self.names[i] for i in idx]

    def moved(self, mass: float):
        """Move ``mass`` of probability from the top category to the others, proportionally."""
        p = self.probs.copy()
        top = int(np.argmax(p))
        if mass > p[top]:
            raise ValueError(f"cannot move {mass} from a top category of {p[top]:.3f}")
        rest = np.arange(p.size) != top
        p[rest] += mass * p[rest] / p[rest].sum()
        p[top] -= mass
        return Categorical(self.names, p)


def zipf(k: int, s: float, prefix: str) -> Categorical:
    r = np.arange(1, k + 1, dtype=float)
    return Categorical([f"{prefix}{i}" for i in range(k)], r**-s)


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    family: str  # continuous | discrete | zero-heavy | categorical
    dist: object
    null_rate: float = 0.0
    shift: str = ""  # "mean" or "mix": shifted in the power study

    @property
    def kind(self) -> str:
        return "categorical" if self.family == "categorical" else "numeric"


def feature_specs() -> list[FeatureSpec]:
    C, D, Z = Continuous, Discrete, ZeroInflated
    pois = lambda lam: D(st.poisson(lam), st.poisson, (lam,))  # noqa: E731
    return [
        FeatureSpec("normal_std", "continuous", C(st.norm(0, 1)), shift="mean"),
        FeatureSpec("normal_wide", "continuous", C(st.norm(100, 15)), null_rate=0.01),
        FeatureSpec("normal_offset", "continuous", C(st.norm(1000, 1))),
        FeatureSpec("lognormal_05", "continuous", C(st.lognorm(0.5))),
        FeatureSpec("lognormal_10", "continuous", C(st.lognorm(1.0), how="scale"), null_rate=0.01, shift="mean"),
        FeatureSpec("lognormal_15", "continuous", C(st.lognorm(1.5, scale=math.e**2))),
        FeatureSpec("uniform_01", "continuous", C(st.uniform(0, 1)), shift="mean"),
        FeatureSpec("uniform_wide", "continuous", C(st.uniform(-50, 100))),
        FeatureSpec("student_t3", "continuous", C(st.t(3))),
        FeatureSpec("exponential", "continuous", C(st.expon(scale=2.0))),
        FeatureSpec("poisson_05", "discrete", pois(0.5)),
        FeatureSpec("poisson_3", "discrete", pois(3.0), null_rate=0.01, shift="mean"),
        FeatureSpec("poisson_20", "discrete", pois(20.0)),
        FeatureSpec("negbin", "discrete", D(st.nbinom(2, 0.1))),
        FeatureSpec("flag", "discrete", D(st.bernoulli(0.1))),
        FeatureSpec("zero_lognormal", "zero-heavy", Z(0.9, C(st.lognorm(1.0))), shift="mean"),
        FeatureSpec("zero_gamma", "zero-heavy", Z(0.7, C(st.gamma(2.0, scale=50.0)))),
        FeatureSpec("zero_poisson", "zero-heavy", Z(0.8, pois(4.0))),
        FeatureSpec("cat_zipf10", "categorical", zipf(10, 1.0, "a"), shift="mix"),
        FeatureSpec("cat_zipf50", "categorical", zipf(50, 1.1, "b"), null_rate=0.01, shift="mix"),
        FeatureSpec("cat_longtail", "categorical", zipf(5000, 1.0, "c")),
        FeatureSpec("cat_uniform5", "categorical", Categorical([f"u{i}" for i in range(5)], np.ones(5))),
        FeatureSpec("cat_binary", "categorical", Categorical(["yes", "no"], [0.95, 0.05])),
    ]


def pick_features(n: int | None) -> list[FeatureSpec]:
    """All features, or a small mixed subset (for the smoke test) that keeps every shifted one's kind."""
    specs = feature_specs()
    if n is None or n >= len(specs):
        return specs
    order = ["normal_std", "poisson_3", "cat_zipf10", "lognormal_10", "zero_lognormal", "cat_zipf50",
             "uniform_01", "flag", "cat_longtail", "normal_wide"]
    by_name = {s.name: s for s in specs}
    return [by_name[k] for k in order[:n]]


# --------------------------------------------------------------------------- baseline


def _seed(*parts) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(str(p).encode()) for p in parts])


def build_baseline(specs: list[FeatureSpec], rows: int, seed: int) -> BaselineProfile:
    features = {}
    for spec in specs:
        rng = _seed(seed, "baseline", spec.name)
        nulls = int(rng.binomial(rows, spec.null_rate)) if spec.null_rate else 0
        if spec.kind == "categorical":
            sample = spec.dist.sample(rng, rows - nulls) + [None] * nulls
            profile = categorical_profile(spec.name, sample, top_k=20)
        else:
            sample = spec.dist.sample(rng, rows - nulls)
            profile = numeric_profile(spec.name, sample)
            profile = replace(
                profile,
                baseline=replace(profile.baseline, nulls=nulls),
                std=float(np.std(sample)),
                dtype="bigint" if spec.dist.discrete else "double",
            )
        features[spec.name] = profile
    return BaselineProfile(
        monitor="false_alarms", baseline_id=f"seed{seed}", created_at=START.isoformat(),
        source_table="bench/false_alarms.py", source_version=None, config_hash="", row_count=rows,
        features=features,
    )


def config(specs: list[FeatureSpec], noise_floor: bool, persistence: bool = True) -> MonitorConfig:
    return parse_config({
        "monitor": "false_alarms",
        "baseline": {"table": "bench/false_alarms"},
        "production": {"table": "bench/false_alarms", "timestamp_column": "ts"},
        "features": {
            "numeric": [s.name for s in specs if s.kind == "numeric"],
            "categorical": [s.name for s in specs if s.kind == "categorical"],
        },
        "policy": {"noise_floor": noise_floor, "persistence": {"enabled": persistence}},
    }, "bench/false_alarms.py")


# --------------------------------------------------------------------------- windows


def numeric_cells(dist, edges: np.ndarray) -> np.ndarray:
    """True probabilities of [underflow, fine bins [c_i, c_i+1), atom [c_k], overflow]."""
    lt = np.asarray(dist.lt(edges), dtype=float)
    le_last = float(dist.le(edges[-1]))
    p = np.concatenate([[lt[0]], np.diff(lt), [le_last - lt[-1]], [float(dist.gt(edges[-1]))]])
    p = np.clip(p, 0.0, None)
    return p / p.sum()


def categorical_cells(dist: Categorical, profile: FeatureProfile) -> np.ndarray:
    """True probabilities of [top-K slots..., other, unseen]."""
    index = {c: i for i, c in enumerate(dist.names)}
    top = np.array([dist.probs[index[c]] if c in index else 0.0 for c in profile.categories])
    tracked = set(profile.tracked or ())
    other = sum(dist.probs[i] for c, i in index.items() if c in tracked)
    p = np.concatenate([top, [other, max(0.0, 1.0 - top.sum() - other)]])
    return p / p.sum()


def _tail_extreme(rng, dist, edge: float, k: int, side: str) -> float:
    """The extreme of k iid draws beyond ``edge`` (inverse CDF of the tail)."""
    v = rng.random(k)
    if side == "over":
        return float(np.max(dist.isf(float(dist.gt(edge)) * v)))
    return float(np.min(dist.ppf(float(dist.lt(edge)) * v)))


class WindowSampler:
    """Draws one window's histograms for a set of (possibly shifted) distributions."""

    def __init__(self, specs: list[FeatureSpec], baseline: BaselineProfile, dists: dict[str, object]):
        self.specs, self.baseline, self.dists = specs, baseline, dists
        self._cells: dict[str, np.ndarray] = {}

    def cells(self, spec: FeatureSpec) -> np.ndarray:
        if spec.name not in self._cells:
            profile, dist = self.baseline.features[spec.name], self.dists[spec.name]
            if spec.kind == "categorical":
                self._cells[spec.name] = categorical_cells(dist, profile)
            else:
                self._cells[spec.name] = numeric_cells(dist, np.asarray(profile.edges, dtype=float))
        return self._cells[spec.name]

    def histogram(self, rng, spec: FeatureSpec, n: int) -> Histogram:
        profile, dist = self.baseline.features[spec.name], self.dists[spec.name]
        nulls = int(rng.binomial(n, spec.null_rate)) if spec.null_rate else 0
        valid = n - nulls
        if n <= RAW_MAX:
            if spec.kind == "categorical":
                return count_categorical(dist.sample(rng, valid) + [None] * nulls, profile.categories, profile.tracked)
            return replace(count_numeric(dist.sample(rng, valid), profile.edges), nulls=nulls)
        counts = rng.multinomial(valid, self.cells(spec))
        if spec.kind == "categorical":
            return Histogram(counts=counts[:-1], unseen=int(counts[-1]), nulls=nulls)
        return self._numeric_moments(rng, dist, np.asarray(profile.edges, dtype=float), counts, nulls)

    def _numeric_moments(self, rng, dist, e: np.ndarray, counts: np.ndarray, nulls: int) -> Histogram:
        under, fine, over = int(counts[0]), counts[1:-1], int(counts[-1])
        valid = int(counts.sum())
        total = rng.normal(valid * dist.mean, math.sqrt(valid * dist.var))
        mean = total / valid
        nonzero = np.flatnonzero(fine)
        upper = np.append(e[1:], e[-1])
        extra = {}
        if BIN_SUMS:  # the checkout keeps per-fine-bin sums: each bin's count times its true conditional mean
            if not hasattr(self, "_means"):
                self._means = {}
            key = id(dist)
            if key not in self._means:
                self._means[key] = np.append(dist.bin_means(e[:-1], e[1:]), e[-1])
            extra["bin_sums"] = fine * self._means[key]
        lo = _tail_extreme(rng, dist, e[0], under, "under") if under else float(e[nonzero[0]])
        hi = _tail_extreme(rng, dist, e[-1], over, "over") if over else float(upper[nonzero[-1]])
        return Histogram(
            counts=fine, nulls=nulls, underflow=under, overflow=over,
            value_sum=float(total), value_sum_sq=float(valid * (dist.var + mean * mean)), min=lo, max=hi, **extra,
        )

    def window(self, rng, n: int, index: int) -> WindowHistograms:
        start = START + timedelta(days=index)
        hists = {s.name: self.histogram(rng, s, n) for s in self.specs}
        return WindowHistograms(start, start + timedelta(days=1), n, hists)


# --------------------------------------------------------------------------- evaluation


def _rule_kind(rule: str) -> str:
    if rule.startswith("score"):
        return "score"
    if "drifted features" in rule:
        return "drifted_features"
    if rule.startswith("persistence"):
        return "persistence"
    return rule.split(" ")[0].rstrip(":")


def summarize(cfg: MonitorConfig, results, decisions, n_windows: int, shifted: tuple[str, ...] = ()) -> dict:
    """Severity shares, the rules and statistics behind alarms, per-feature drifted shares."""
    sev = Counter(d.severity for d in decisions)
    alarmed = [d for d in decisions if severity_rank(d.severity) >= 1]
    rules = Counter()
    for d in alarmed:
        for kind in {_rule_kind(r) for r in d.rules}:
            rules[kind] += 1
    persistence = sum(1 for d in decisions if any(r.startswith("persistence") for r in d.rules))
    only_persistence = sum(1 for d in alarmed if all(r.startswith("persistence") for r in d.rules))
    base = [r for r in results if r.reference == "baseline"]
    breaches = Counter(r.statistic for r in base if r.drifted)
    pairs = Counter(f"{r.feature} {r.statistic}" for r in base if r.drifted)
    floored = Counter(r.statistic for r in base if r.noise_floor is not None and math.isfinite(r.value))
    above = Counter(r.statistic for r in base if r.noise_floor is not None and math.isfinite(r.value)
                    and r.value > r.noise_floor)
    feature_drifted = Counter(f for _, f in {(r.window_start, r.feature) for r in base if r.drifted})
    # the feature behind each score alarm: the largest score statistic above its floor
    stat = score_statistic(cfg.policy.score)
    by_window: dict = {}
    for r in base:
        if r.statistic == stat and above_noise(r) and r.signal == "feature":
            best = by_window.get(r.window_start)
            if best is None or r.value > best.value:
                by_window[r.window_start] = r
    score_features = Counter()
    examples = []
    for d in alarmed:
        top = by_window.get(d.window_start)
        if any(r.startswith("score") for r in d.rules) and top is not None:
            score_features[top.feature] += 1
        if len(examples) < 5:
            examples.append({
                "window": d.window_start.date().isoformat(), "severity": d.severity, "rules": list(d.rules),
                "drifted": {f: {k: round(v, 4) for k, v in stats.items()} for f, stats in d.drifted.items()},
                "top_score": None if top is None else {
                    "feature": top.feature, "value": round(top.value, 4),
                    "noise_floor": None if top.noise_floor is None else round(top.noise_floor, 4)},
            })
    out = {
        "windows": n_windows,
        "severity": {s: sev.get(s, 0) / n_windows for s in SEVERITIES},
        "severity_counts": {s: sev.get(s, 0) for s in SEVERITIES},
        "alarm_share": len(alarmed) / n_windows,
        "alarms": len(alarmed),
        "alarm_rules": dict(rules),
        "score_alarm_features": dict(score_features.most_common()),
        "persistence_windows": persistence,
        "alarms_only_persistence": only_persistence,
        "breaches_by_statistic": dict(breaches.most_common()),
        "breaches_by_feature_statistic": dict(pairs.most_common()),
        "above_floor": {k: {"tests": floored[k], "above": above.get(k, 0)} for k in sorted(floored)},
        "above_floor_by_feature_statistic": dict(Counter(
            f"{r.feature} {r.statistic}" for r in base
            if r.noise_floor is not None and math.isfinite(r.value) and r.value > r.noise_floor).most_common()),
        "feature_drifted_share": {f: c / n_windows for f, c in sorted(feature_drifted.items())},
        "errors": sum(1 for r in base if r.failed),
        "examples": examples,
    }
    if shifted:
        out["shifted_feature_detection"] = {f: feature_drifted.get(f, 0) / n_windows for f in shifted}
    return out


def run_cell(cfgs: dict[str, MonitorConfig], baseline, sampler: WindowSampler, n: int, windows: int,
             rng, shifted: tuple[str, ...] = (), ramp=None) -> dict:
    """Draw ``windows`` windows of n rows; evaluate them as one series under each config."""
    if ramp is None:
        wins = [sampler.window(rng, n, i) for i in range(windows)]
    else:
        wins = [ramp(i).window(rng, n, i) for i in range(windows)]
    out = {}
    for label, cfg in cfgs.items():
        results = drift_results(cfg, baseline, wins)
        decisions = evaluate(cfg.policy, results)
        out[label] = summarize(cfg, results, decisions, len(wins), shifted)
        # the same windows without the persistence rule (per-window rules only)
        per_window = evaluate(replace(cfg.policy, persistence=replace(cfg.policy.persistence, enabled=False)), results)
        # the CUSUM on its own (score and drifted-feature rules out of reach): it is hidden
        # in windows another rule already raised to >= its severity
        alone = replace(cfg.policy, drifted_features=10**9, levels=replace(cfg.policy.levels, minor=math.inf,
                        moderate=math.inf, severe=math.inf))
        out[label]["persistence_alone_windows"] = sum(
            1 for d in evaluate(alone, results) if any(r.startswith("persistence") for r in d.rules))
        out[label]["per_window_only"] = {
            "alarm_share": sum(1 for d in per_window if severity_rank(d.severity) >= 1) / len(wins),
            "severity": {s: sum(1 for d in per_window if d.severity == s) / len(wins) for s in SEVERITIES},
        }
        if ramp is not None:
            out[label]["series"] = _series(results, decisions, per_window, shifted)
    return out


def _series(results, decisions, per_window, shifted) -> dict:
    """For the slow-drift cells: per window the shifted feature's PSI, floor, verdicts and first firings."""
    feature = shifted[0]
    psi = {r.window_start: r for r in results if r.feature == feature and r.statistic == "psi" and r.reference == "baseline"}
    drifted = {}
    for r in results:
        if r.feature == feature and r.reference == "baseline" and r.drifted:
            drifted.setdefault(r.window_start, []).append(r.statistic)
    rows = []
    for i, (d, p) in enumerate(zip(decisions, per_window)):
        r = psi[d.window_start]
        rows.append({
            "window": i + 1, "psi": r.value, "noise_floor": r.noise_floor, "severity": d.severity,
            "per_window_severity": p.severity, "persistence": any(x.startswith("persistence") for x in d.rules),
            "drifted_statistics": drifted.get(d.window_start, []),
        })

    def first(pred):
        return next((row["window"] for row in rows if pred(row)), None)

    return {
        "rows": rows,
        "first_persistence": first(lambda r: r["persistence"]),
        "first_per_window_alarm": first(lambda r: r["per_window_severity"] != "none"),
        "first_feature_drifted": first(lambda r: bool(r["drifted_statistics"])),
        "first_alarm": first(lambda r: r["severity"] != "none"),
    }


# --------------------------------------------------------------------------- the study


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(st.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(st.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


_STATE: dict = {}


def _setup(specs_n: int | None, baseline_rows: int, seed: int) -> None:
    """Per process: the baseline and both configs (built once; workers inherit or rebuild them)."""
    key = (specs_n, baseline_rows, seed)
    if _STATE.get("key") == key:
        return
    specs = pick_features(specs_n)
    baseline = build_baseline(specs, baseline_rows, seed)
    _STATE.update(key=key, specs=specs, baseline=baseline,
                  cfgs={"on": config(specs, True), "off": config(specs, False)})


def _task(task: tuple) -> tuple[tuple, dict]:
    """One cell of the study (run in a worker): ("null", n, windows) | ("power", what, size, n, windows)
    | ("slow", shape, n, windows, shift)."""
    specs, baseline, cfgs = _STATE["specs"], _STATE["baseline"], _STATE["cfgs"]
    seed = _STATE["key"][2]
    base = {s.name: s.dist for s in specs}
    t = time.perf_counter()
    kind = task[0]
    if kind == "floor_check":
        _, n, draws = task
        cell = floor_check(specs, baseline, cfgs["on"], n, draws, _seed(seed, "floor_check", n))
    elif kind == "null":
        _, n, windows = task
        cell = run_cell(cfgs, baseline, WindowSampler(specs, baseline, base), n, windows, _seed(seed, "null", n))
        for label in cfgs:
            cell[label]["alarm_ci95"] = clopper_pearson(cell[label]["alarms"], windows)
        cell["method"] = "raw draws" if n <= RAW_MAX else "multinomial"
    elif kind == "power":
        _, what, size, n, windows = task
        dists = dict(base)
        for s in specs:
            if s.shift == what:
                dists[s.name] = s.dist.shifted(size) if what == "mean" else s.dist.moved(size)
        shifted = tuple(s.name for s in specs if s.shift == what)
        cell = run_cell(cfgs, baseline, WindowSampler(specs, baseline, dists), n, windows,
                        _seed(seed, "power", what, size, n), shifted)
        cell = {"shift": what, "size": size, "n": n, **cell}
    else:
        _, shape, n, windows, shift = task
        target = next(s for s in specs if s.shift == "mean" and s.family == "continuous")
        delta = (lambda i: shift) if shape == "constant" else (lambda i: shift * i / max(1, windows - 1))

        def ramp(i):
            return WindowSampler(specs, baseline, {**base, target.name: target.dist.shifted(delta(i))})

        cell = run_cell(cfgs, baseline, None, n, windows, _seed(seed, "slow", shape, n), (target.name,), ramp=ramp)
        desc = f"{shift} sd from window 1" if shape == "constant" else f"0 → {shift} sd linearly"
        cell = {"shape": shape, "description": desc, "n": n, "feature": target.name, **cell}
    cell["seconds"] = round(time.perf_counter() - t, 1)
    return task, cell


def floor_check(specs, baseline, cfg, n: int, draws: int, rng) -> dict:
    """P(statistic > its noise floor) for drift-free windows of n rows, per feature, by brute force.

    The window's coarse-bin (or slot) counts are ``draws`` multinomial draws from the true distribution,
    the reference is the baseline's fixed histogram (as in the study), the statistic is the production
    code's vectorised form (``psi_rows``/``js_rows``). The floor is built to make this at most the per-test
    level; the sum over features is about the chance that some PSI is above its floor in a window (which,
    at n where every floor exceeds policy.levels.minor, is the score rule's false-alarm rate).
    """
    from sparkdrift.core.drift import params_for
    from sparkdrift.core.noise import noise_floor
    from sparkdrift.core.distances import js_rows, psi_rows

    alpha = test_level(cfg, baseline)
    params = params_for(cfg)
    sampler = WindowSampler(specs, baseline, {s.name: s.dist for s in specs})
    out: dict = {"n": n, "draws": draws, "alpha": alpha, "features": {}}
    for spec in specs:
        profile = baseline.features[spec.name]
        cells = sampler.cells(spec)
        if spec.kind == "numeric":
            inner = np.add.reduceat(cells[1:-1], np.asarray(profile.coarse, dtype=np.intp))
            p = np.concatenate([[cells[0]], inner, [cells[-1]]])
            ref = profile.coarse_counts(profile.baseline)
            window = Histogram(counts=np.zeros(profile.n_bins, dtype=np.int64), overflow=n)
        else:
            p, ref = cells, np.append(profile.baseline.counts, profile.baseline.unseen)
            window = Histogram(counts=np.zeros(profile.n_bins, dtype=np.int64), unseen=n)
        row = {}
        for name, fn in (("psi", lambda a, b: psi_rows(a, b, params.epsilon)), ("js", js_rows)):
            floor = noise_floor(name, profile, window, profile.baseline, alpha, params)
            hits = 0
            for start in range(0, draws, 100_000):
                k = min(100_000, draws - start)
                win = rng.multinomial(n, p, size=k)
                hits += int(np.count_nonzero(fn(np.broadcast_to(ref, win.shape), win) > floor))
            row[name] = {"floor": floor, "p_above": hits / draws, "ratio": hits / draws / alpha}
        out["features"][spec.name] = row
    for name in ("psi", "js"):
        out[f"sum_{name}"] = sum(r[name]["p_above"] for r in out["features"].values())
    return out


def _line(task: tuple, cell: dict) -> str:
    if task[0] == "floor_check":
        worst = max(cell["features"].items(), key=lambda kv: kv[1]["psi"]["ratio"])
        return (f"floor check n={task[1]:>9,}: P(PSI > floor) summed over features {cell['sum_psi']:.2e}, "
                f"worst {worst[0]} {worst[1]['psi']['ratio']:.1f}x the per-test level  {cell['seconds']} s")
    if task[0] == "null":
        return (f"drift-free n={task[1]:>9,}: >= minor on {cell['on']['alarm_share']:.3f} off "
                f"{cell['off']['alarm_share']:.3f} (persistence windows on {cell['on']['persistence_windows']}, "
                f"off {cell['off']['persistence_windows']})  {cell['seconds']} s")
    if task[0] == "power":
        return (f"power {task[1]} {task[2]:<5} n={task[3]:>9,}: detected on {cell['on']['alarm_share']:.2f} "
                f"off {cell['off']['alarm_share']:.2f}  {cell['seconds']} s")
    s = cell["on"]["series"]
    return (f"slow {task[1]:<8} n={task[2]:>9,}: floors on: first persistence {s['first_persistence']}, "
            f"first per-window alarm {s['first_per_window_alarm']}  {cell['seconds']} s")


def run_study(
    windows: int = 200,
    sizes: tuple[int, ...] = (100, 1_000, 10_000, 1_000_000),
    seed: int = 14,
    features: int | None = None,
    baseline_rows: int = 200_000,
    power_windows: int = 50,
    power_sizes: tuple[int, ...] | None = None,
    shifts: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5),
    mixes: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2),
    slow_sizes: tuple[int, ...] = (10_000, 100_000),
    slow_windows: int = 30,
    slow_shift: float = 0.3,
    slow_ramp: float = 0.4,
    floor_check_sizes: tuple[int, ...] = (100, 1_000),
    floor_check_draws: int = 400_000,
    jobs: int = 1,
    progress=print,
) -> dict:
    """The whole study; ``jobs`` > 1 runs the cells in that many processes (same numbers: one seed per cell)."""
    t0, c0, checkout = time.perf_counter(), _cpu(), _checkout()  # at the start: what is measured
    _setup(features, baseline_rows, seed)
    specs, baseline, cfgs = _STATE["specs"], _STATE["baseline"], _STATE["cfgs"]
    n_tests = tests_per_window(cfgs["on"], baseline)
    study: dict = {
        "seed": seed, "baseline_rows": baseline_rows, "sizes": list(sizes), "windows": windows,
        "features": [{"name": s.name, "family": s.family, "null_rate": s.null_rate, "shift": s.shift,
                      "dtype": baseline.features[s.name].dtype,
                      "bins": baseline.features[s.name].n_bins} for s in specs],
        "budget": cfgs["on"].policy.false_alarm_rate, "tests_per_window": n_tests,
        "per_test_level": test_level(cfgs["on"], baseline),
        "raw_max": RAW_MAX, "baseline_seconds": round(time.perf_counter() - t0, 1), "jobs": jobs,
        "false_alarms": {}, "floor_check": {}, "power": {}, "slow": {},
    }
    progress(f"baseline: {len(specs)} features x {baseline_rows:,} rows, {n_tests} tests/window, "
             f"per-test level {study['per_test_level']:.3g} ({study['baseline_seconds']} s)")
    tasks = [("null", n, windows) for n in sizes] + [("floor_check", n, floor_check_draws) for n in floor_check_sizes]
    has = {s.shift for s in specs}
    for n in power_sizes or sizes:
        tasks += [("power", "mean", d, n, power_windows) for d in shifts if "mean" in has]
        tasks += [("power", "mix", m, n, power_windows) for m in mixes if "mix" in has]
    if any(s.shift == "mean" and s.family == "continuous" for s in specs):
        for n in slow_sizes:
            tasks += [("slow", "constant", n, slow_windows, slow_shift), ("slow", "ramp", n, slow_windows, slow_ramp)]
    done: dict[tuple, dict] = {}
    if jobs > 1 and len(tasks) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
        with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_setup,
                                 initargs=(features, baseline_rows, seed)) as pool:
            for fut in as_completed([pool.submit(_task, t) for t in tasks]):
                task, cell = fut.result()
                done[task] = cell
                progress(_line(task, cell))
    else:
        for t in tasks:
            task, cell = _task(t)
            done[task] = cell
            progress(_line(task, cell))
    for task in tasks:  # in a fixed order, whatever finished first
        cell = done[task]
        if task[0] == "null":
            study["false_alarms"][str(task[1])] = cell
        elif task[0] == "floor_check":
            study["floor_check"][str(task[1])] = cell
        elif task[0] == "power":
            study["power"][f"{task[1]}:{task[2]}:{task[3]}"] = cell
        else:
            study["slow"][f"{task[1]}:{task[2]}"] = cell
    study["wall_seconds"] = round(time.perf_counter() - t0, 1)
    study["cpu_seconds"] = round(_cpu() - c0, 1)
    study["checkout"] = checkout
    study["load_average"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return study


def _checkout() -> dict:
    """The commit measured, and which sparkdrift files differed from it (a shared checkout moves)."""
    import subprocess

    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        except Exception:
            return ""
    return {"head": git("rev-parse", "--short", "HEAD").strip(),
            "modified": [x[3:] for x in git("status", "--porcelain", "sparkdrift").splitlines()],
            "bin_sums": BIN_SUMS}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the pool's workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# --------------------------------------------------------------------------- report


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _n(n: int | str) -> str:
    return f"{int(n):,}"


def markdown(study: dict, stamp: str, argv: str) -> str:
    budget = study["budget"]
    L = []
    L.append(f"## {stamp} — false-alarm study (noise floors, issue 14)\n")
    L.append(f"`{argv}` — {len(study['features'])} features, baseline {study['baseline_rows']:,} rows each, "
             f"seed {study['seed']}, wall time {study['wall_seconds']:.0f} s, CPU {study.get('cpu_seconds', 0):.0f} s, "
             f"{study.get('jobs', 1)} processes on {os.cpu_count()} cores, load average at the end "
             f"{', '.join(f'{x:.1f}' for x in study.get('load_average') or [])} "
             f"(python {platform.python_version()}, numpy {np.__version__}). Checkout "
             f"{study.get('checkout', {}).get('head', '?')}"
             + (f" with uncommitted changes to {', '.join(study['checkout']['modified'])}"
                if study.get("checkout", {}).get("modified") else "")
             + (" (histograms keep per-fine-bin sums)" if study.get("checkout", {}).get("bin_sums") else "") + ".\n")
    fam = Counter(f["family"] for f in study["features"])
    L.append("**Method.** Baseline profiles built from seeded draws with the Spark jobs' binning rules "
             f"({', '.join(f'{v} {k}' for k, v in fam.items())}; counts as `bigint`; 1 % nulls on four). "
             "Windows are drawn from the *generating* distributions, not from the baseline histogram. "
             f"n ≤ {study['raw_max']:,}: raw draws binned with `count_numeric`/`count_categorical`; larger n: "
             "the fine-bin (or slot) counts are one multinomial draw with the true cell probabilities "
             "(CDF differences at the profile's edges, pmf for counts, summed category probabilities) — the "
             "exact law of the counts of n iid draws; the window sum (for mean_shift) is a normal draw from the "
             "true mean and variance, independent of the counts; min/max are exact extremes of the "
             "under/overflow draws, else the outermost non-empty bin's edges. Each n is one series of daily "
             "windows through `drift_results` + `policy.evaluate` (so the CUSUM sees a sequence), with the "
             "default config (**on**) and `policy.noise_floor: false` (**off**, today's fixed thresholds; the "
             "persistence rule stays enabled in both). "
             f"Budget `false_alarm_rate` {budget:g} over {study['tests_per_window']} tests/window → per-test "
             f"level {study['per_test_level']:.3g} (Bonferroni).\n")

    L.append("### Drift-free windows: share at each severity\n")
    L.append("| n | windows | floors | none | minor | moderate | severe | ≥ minor (95 % CI) | target ≤ budget | "
             "per-window rules only | raised by persistence | persistence alone |")
    L.append("|---:|---:|---|---:|---:|---:|---:|---|---|---:|---:|---:|")
    for n, cell in study["false_alarms"].items():
        for label in ("on", "off"):
            c = cell[label]
            lo, hi = c["alarm_ci95"]
            ok = ("**met**" if c["alarm_share"] <= budget else "**missed**") if label == "on" else "–"
            L.append(f"| {_n(n)} | {c['windows']} | {label} | " + " | ".join(_pct(c["severity"][s]) for s in SEVERITIES)
                     + f" | {_pct(c['alarm_share'])} ({_pct(lo)}–{_pct(hi)}) | {ok} | "
                     f"{_pct(c['per_window_only']['alarm_share'])} | {c['persistence_windows']} | "
                     f"{c['persistence_alone_windows']} |")
    L.append("")
    L.append("*per-window rules only*: the same windows evaluated with the persistence rule disabled. "
             "*raised by persistence*: windows whose rules include the CUSUM's (it only shows where no other rule "
             "already reached its severity, minor). *persistence alone*: windows where the CUSUM would fire if "
             "the score and drifted-feature rules could not (its own false-alarm count on the series).\n")
    L.append("Rules behind the alarms (windows at ≥ minor in which each rule fired) and statistics that "
             "breached (feature × window pairs marked drifted, by statistic):\n")
    L.append("| n | floors | rules | score alarms by feature | breaches by statistic | features most often drifted |")
    L.append("|---:|---|---|---|---|---|")
    for n, cell in study["false_alarms"].items():
        for label in ("on", "off"):
            c = cell[label]
            rules = ", ".join(f"{k} {v}" for k, v in sorted(c["alarm_rules"].items())) or "–"
            br = ", ".join(f"{k} {v}" for k, v in c["breaches_by_statistic"].items()) or "–"
            if label == "on" and c["breaches_by_feature_statistic"]:
                br += " (" + ", ".join(f"{k} {v}" for k, v in list(c["breaches_by_feature_statistic"].items())[:6]) + ")"
            top = sorted(c["feature_drifted_share"].items(), key=lambda kv: -kv[1])[:4]
            feats = ", ".join(f"{k} {_pct(v)}" for k, v in top) or "–"
            sf = ", ".join(f"{k} {v}" for k, v in c["score_alarm_features"].items()) or "–"
            L.append(f"| {_n(n)} | {label} | {rules} | {sf} | {br} | {feats} |")
    L.append("")
    alpha = study["per_test_level"]
    stats_ = sorted({k for cell in study["false_alarms"].values() for k in cell["on"]["above_floor"]})
    if stats_:
        L.append(f"Values above their noise floor with floors on, observed / expected at the per-test level "
                 f"{alpha:.3g} (expected = tests × level; the floor is meant to make observed ≤ expected):\n")
        L.append("| n | " + " | ".join(stats_) + " |")
        L.append("|---:|" + "---:|" * len(stats_))
        for n, cell in study["false_alarms"].items():
            af = cell["on"]["above_floor"]
            L.append(f"| {_n(n)} | " + " | ".join(
                f"{af[k]['above']} / {af[k]['tests'] * alpha:.2f}" if k in af else "–" for k in stats_) + " |")
        L.append("")
        for n, cell in study["false_alarms"].items():
            top = list(cell["on"]["above_floor_by_feature_statistic"].items())[:8]
            if top:
                L.append(f"- n={_n(n)}, above the floor most often: " + ", ".join(f"{k} {v}" for k, v in top))
        L.append("")
    if study.get("floor_check"):
        L.append("Brute-force check of the PSI and JS floors: P(value > floor) for drift-free windows, "
                 f"from {next(iter(study['floor_check'].values()))['draws']:,} multinomial windows per feature "
                 "against the fixed baseline (ratio to the per-test level; ≤ 1 is what the floor promises). "
                 "The sum over features approximates the chance that some PSI is above its floor in a window:\n")
        L.append("| n | Σ P(PSI > floor) | Σ P(JS > floor) | PSI ratio: median, max (feature) | JS ratio: median, max (feature) |")
        L.append("|---:|---:|---:|---|---|")
        for n, fc in study["floor_check"].items():
            cols = []
            for name in ("psi", "js"):
                r = {f: v[name]["ratio"] for f, v in fc["features"].items()}
                worst = max(r, key=r.get)
                cols.append(f"{np.median(list(r.values())):.1f}×, {r[worst]:.1f}× ({worst})")
            L.append(f"| {_n(n)} | {_pct(fc['sum_psi'])} | {_pct(fc['sum_js'])} | {cols[0]} | {cols[1]} |")
        L.append("")
    ex = [(n, e) for n, cell in study["false_alarms"].items() for e in cell["on"]["examples"]]
    if ex:
        L.append("Alarms with floors on (first few per n):\n")
        for n, e in ex[:12]:
            top = e["top_score"]
            why = f" (largest PSI above its floor: {top['feature']} {top['value']} vs floor {top['noise_floor']})" if top else ""
            L.append(f"- n={_n(n)}, {e['window']}: {e['severity']} — " + "; ".join(e["rules"]) + why)
        L.append("")

    if study["power"]:
        L.append("### Power: detection rate on shifted windows\n")
        cells = list(study["power"].values())
        L.append(f"{cells[0]['on']['windows']} windows per cell. *Window* = share of windows at ≥ minor; "
                 "*features* = share of windows in which each shifted feature is marked drifted (any statistic), "
                 "in the order given below. Mean shifts move "
                 + ", ".join(f["name"] for f in study["features"] if f["shift"] == "mean")
                 + " by d baseline standard deviations (Poisson: λ + d√λ; zero-heavy: fewer zeros); mix shifts move "
                 "that share of all mass from the top category to the others on "
                 + ", ".join(f["name"] for f in study["features"] if f["shift"] == "mix") + ".\n")
        L.append("Each cell is one series of consecutive windows, so the CUSUM persistence rule accumulates "
                 "over it; *per-window rules* is the share at ≥ minor with the persistence rule disabled.\n")
        L.append("| shift | n | window on | window off | on, per-window rules | off, per-window rules | "
                 "features on | features off |")
        L.append("|---|---:|---:|---:|---:|---:|---|---|")
        for c in cells:
            label = f"mean {c['size']} sd" if c["shift"] == "mean" else f"mix {_pct(c['size'])}"
            det = lambda k: " / ".join(f"{100 * v:.0f}" for v in c[k]["shifted_feature_detection"].values())  # noqa: E731
            L.append(f"| {label} | {_n(c['n'])} | {_pct(c['on']['alarm_share'])} | {_pct(c['off']['alarm_share'])} "
                     f"| {_pct(c['on']['per_window_only']['alarm_share'])} "
                     f"| {_pct(c['off']['per_window_only']['alarm_share'])} | {det('on')} % | {det('off')} % |")
        L.append("")

    if study["slow"]:
        L.append("### Slow drift: when the persistence (CUSUM) rule fires\n")
        L.append("One normal feature shifted, all other features drift-free; window numbers are 1-based. "
                 "*per-window alarm* = first window at ≥ minor from the score / drifted-feature rules alone; "
                 "*feature drifted* = first window where the feature breaches any statistic (not an alarm on "
                 "its own).\n")
        L.append("| case | n | floors | PSI first → last | feature drifted | per-window alarm | persistence | "
                 "windows with persistence | windows ≥ minor |")
        L.append("|---|---:|---|---|---:|---:|---:|---:|---:|")
        for c in study["slow"].values():
            for label in ("on", "off"):
                s = c[label]["series"]
                psis = [r["psi"] for r in s["rows"]]
                L.append(f"| {c['shape']} ({c['description']}) | {_n(c['n'])} | {label} | {psis[0]:.3f} → {psis[-1]:.3f} | "
                         f"{s['first_feature_drifted'] or '–'} | {s['first_per_window_alarm'] or '–'} | "
                         f"{s['first_persistence'] or '–'} | {c[label]['persistence_windows']} | {c[label]['alarms']} |")
        L.append("")
    return "\n".join(L)


# --------------------------------------------------------------------------- CLI


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(float(x.replace("_", ""))) for x in text.split(",") if x)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--windows", type=int, default=200, help="drift-free windows per n (default 200)")
    ap.add_argument("--sizes", type=_ints, default=(100, 1_000, 10_000, 1_000_000), help="rows per window")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--features", type=int, default=None, help="use a subset of this many features")
    ap.add_argument("--baseline-rows", type=int, default=200_000)
    ap.add_argument("--power-windows", type=int, default=50, help="windows per shifted cell")
    ap.add_argument("--power-sizes", type=_ints, default=None, help="rows per window for power (default --sizes)")
    ap.add_argument("--shifts", type=_floats, default=(0.05, 0.1, 0.2, 0.5), help="mean shifts in baseline sds")
    ap.add_argument("--mixes", type=_floats, default=(0.02, 0.05, 0.1, 0.2), help="mass moved off the top category")
    ap.add_argument("--slow-sizes", type=_ints, default=(10_000, 100_000))
    ap.add_argument("--slow-windows", type=int, default=30)
    ap.add_argument("--slow-shift", type=float, default=0.3, help="constant slow shift (sd)")
    ap.add_argument("--slow-ramp", type=float, default=0.4, help="ramp's final shift (sd)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes (default 2)")
    ap.add_argument("--floor-check-sizes", type=_ints, default=(100, 1_000), help="brute-force floor check sizes")
    ap.add_argument("--floor-check-draws", type=int, default=400_000)
    ap.add_argument("--no-power", action="store_true", help="skip the power and slow-drift cells")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"), help="folder for the raw JSON")
    ap.add_argument("--results-md", default=str(ROOT / "bench" / "RESULTS.md"))
    ap.add_argument("--no-write", action="store_true", help="print the markdown, write nothing")
    ap.add_argument("--render", metavar="JSON", help="only render the markdown of a saved run (printed)")
    args = ap.parse_args(argv)
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        stamp = datetime.fromisoformat(saved["time"]).strftime("%Y-%m-%d %H:%M UTC")
        print(markdown(saved, stamp, saved["command"]) + f"\nRaw numbers: `{Path(args.render).resolve().relative_to(ROOT) if Path(args.render).resolve().is_relative_to(ROOT) else args.render}`.")
        return 0

    study = run_study(
        windows=args.windows, sizes=args.sizes, seed=args.seed, features=args.features,
        baseline_rows=args.baseline_rows, power_windows=args.power_windows, power_sizes=args.power_sizes,
        shifts=() if args.no_power else args.shifts, mixes=() if args.no_power else args.mixes,
        slow_sizes=() if args.no_power else args.slow_sizes, slow_windows=args.slow_windows,
        slow_shift=args.slow_shift, slow_ramp=args.slow_ramp, floor_check_sizes=args.floor_check_sizes, floor_check_draws=args.floor_check_draws,
        jobs=args.jobs, progress=lambda s: print(s, flush=True),
    )
    now = datetime.now(timezone.utc)
    stamp = now.strftime("%Y-%m-%d %H:%M UTC")
    cmd = "python bench/false_alarms.py" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(argv or sys.argv[1:]))
    text = markdown(study, stamp, cmd)
    print(text)
    if args.no_write:
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{now.strftime('%Y%m%dT%H%M%S')}-false-alarms.json"
    path.write_text(json.dumps({"command": cmd, "time": now.isoformat(), **study}, indent=1, default=str))
    with open(args.results_md, "a") as f:
        f.write("\n" + text + f"\nRaw numbers: `{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}`.\n")
    print(f"wrote {path} and appended to {args.results_md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

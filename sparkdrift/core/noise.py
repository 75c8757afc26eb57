"""Noise floors: the value a statistic reaches by chance when nothing has drifted.

Pure numpy/scipy, computed from the baseline's histograms alone (no raw rows).
The null model: the window's n rows and the reference's m rows are both drawn
from the baseline's distribution. ``noise_floor`` is the (1 - alpha) quantile
of the statistic under that model, so a value above it happens by chance with
probability at most about alpha.

How each statistic gets its quantile (docs/statistics.md gives the reasons):

* psi, js, hellinger, chi2, tv, linf (coarse bins or category slots): a
  parametric bootstrap, multinomial draws of both histograms (one set of
  draws serves all the column's statistics; 4 000, or 20 000 where a cell
  expects < 30 rows). Where two or more cells expect >= `LIMIT_COUNT` rows in both
  histograms (most windows of 10 000+ rows, so most slice tests), those are
  taken at their limit and only the rest drawn (`method`, `_limit_draws`).
  Why: a floor by multinomial draws cost ~15-25 ms on a loaded 2-core machine
  (4 000 x 12 cells: ~5 ms of draws, ~8 ms for the six statistics, ~2 ms of
  scipy.stats quantile calls; categorical windows of 1 000 rows 100-180 ms
  at 20 000 draws; 1 000 fine bins 1-10 s), the limit ~2 ms and closer to
  the truth there (no 10-sample tail). One window's 1 100 slice tests
  (bench/noise_floors.py): 18-25 ms -> 3-5 ms each. Levels beyond what the
  draws resolve are reached by scaling the simulated quantile at 10 / draws
  with the tail of the statistic's limiting distribution (chi-square for
  psi/js/hellinger/chi2, normal for tv/linf). PSI also clears the jump an
  empty bin gives it (`psi_jump_floor`), which the chi-square tail does not know.
* ks, ks_robust: the two-sample Kolmogorov distribution (exact for continuous
  data, conservative for discrete data, whose KS is smaller).
* wasserstein: the limit sqrt(nm/(n+m)) W1 -> integral |B(F(x))| dx, its
  exact mean plus z(1 - alpha) times the largest variance of the process
  (Var X, Gaussian concentration): a closed form, conservative by 1.2-1.5x.
* mean_shift: the normal limit of the mean difference; null_rate_delta: the
  exact binomial quantile of the window's null count plus the baseline rate's
  own sampling error.

Values outside the baseline's range and never-seen categories are given the
chance a new draw has of landing there, 1/(m+1) each, so the floor does not
pretend they are impossible.
"""
from __future__ import annotations

import functools
import math
import zlib

import numpy as np
from scipy import special
from scipy import stats as st

from sparkdrift.core.profile import FeatureProfile, Histogram
from sparkdrift.core.distances import (
    KS_EXACT_N_MAX,
    chi2_rows,
    hellinger_rows,
    js_rows,
    ks_critical_value,
    linf_rows,
    psi_rows,
    tv_rows,
)
from sparkdrift.core.stats import STATISTICS, StatParams, baseline_std, cells_read, valid_total

#: Draws per (feature, window-size bucket): ~10 beyond the 1 - 10/4000 quantile, where the tail is scaled from.
SIMULATIONS = 4000
#: Where some baseline cell expects fewer than `SPARSE_COUNT` rows, the draws
#: are multiplied by `SPARSE_FACTOR`: the small-n tail is lumpy.
SPARSE_COUNT = 30
SPARSE_FACTOR = 5
#: Window sizes are rounded down to a geometric grid of this ratio, so the
#: floors of windows of similar size are computed once and are never too low.
BUCKET_RATIO = 2 ** 0.125

_ROWS = {"psi": None, "js": js_rows, "hellinger": hellinger_rows, "chi2": chi2_rows, "tv": tv_rows, "linf": linf_rows}


def bucket(n: int) -> int:
    """The largest grid size <= n (grid: round(BUCKET_RATIO ** k)); exact below 16."""
    if n < 16:
        return int(n)
    k = math.ceil(math.log(n + 0.5) / math.log(BUCKET_RATIO)) - 1  # the largest k with round(ratio^k) <= n
    return int(round(BUCKET_RATIO**k))


def per_test_level(false_alarm_rate: float, n_tests: int) -> float:
    """Bonferroni: each of ``n_tests`` tests gets ``rate / n_tests``, so P(any false breach) <= rate."""
    return false_alarm_rate / max(1, n_tests)


def null_cells(profile: FeatureProfile, bins: str) -> np.ndarray:
    """Cell probabilities of the null model in the statistic's vector layout.

    Numeric: [underflow, coarse or fine bins, overflow]; categorical: [slots, unseen].
    The cells outside the baseline get 1/(m+1) each (the chance a new draw falls beyond m draws).
    """
    b = profile.baseline
    if profile.kind == "categorical":
        counts = np.concatenate([b.counts, [0]]).astype(float)
        outside = [counts.size - 1]
    else:
        inner = profile.coarse_counts(b)[1:-1] if bins == "coarse" else b.counts
        counts = np.concatenate([[0], inner, [0]]).astype(float)
        outside = [0, counts.size - 1]
    m = counts.sum()
    if m <= 0:
        return counts
    p = counts / m
    p[outside] = 1.0 / (m + 1.0)
    return p / p.sum()


def _shape(name: str, alpha: float, cells: int) -> float:
    """Quantile of the limiting distribution, up to scale: only ratios of it are used.

    scipy.special, not scipy.stats: the same values at ~1 us instead of ~150 us, twice per statistic and floor.
    """
    if name in ("psi", "chi2"):
        return float(special.chdtri(max(cells - 1, 1), alpha))
    if name in ("js", "hellinger"):
        return math.sqrt(special.chdtri(max(cells - 1, 1), alpha))
    if name == "linf":
        return float(-special.ndtri(alpha / (2 * cells)))
    return float(-special.ndtri(alpha / 2))  # tv


#: Rows a cell must expect, in the window and in the reference, to be drawn at its limit (`method`): at 100
#: the limits of all six statistics are within 3 % of 10^6 multinomial draws at the 1 - 5e-5 quantile
#: (10 equal bins, 20 Zipf categories); at 10-30 rows PSI's falls 5-15 % short.
LIMIT_COUNT = 100


def method(probs: np.ndarray, n: int, m: int) -> str:
    """How `_simulated` draws the statistics for these cells and sizes.

    "limit" when at least two cells expect >= `LIMIT_COUNT` rows in both
    histograms: those are taken at their limit, the others (always the cells
    outside the baseline's range) drawn exactly; else "bootstrap" (multinomial
    draws of every cell). "sparse ..." when a cell inside the range expects
    < `SPARSE_COUNT` rows: `SPARSE_FACTOR` times the draws, its tail is lumpy.
    """
    inside = probs[probs > 2.0 / (m + 1)]
    expected = min(n, m) * inside
    how = "limit" if np.count_nonzero(expected >= LIMIT_COUNT) >= 2 else "bootstrap"
    return f"sparse {how}" if inside.size and expected.min() < SPARSE_COUNT else how


def psi_jump_floor(probs: np.ndarray, n: int, m: int, alpha: float, epsilon: float, typical: float) -> float:
    """The PSI level that empty bins alone push a window past with probability > alpha / 2.

    A bin of share p left empty (chance (1 - p)^n) adds about p (ln(p / eps) - ln(1 - p))
    to PSI whatever else happens: a jump the chi-square tail does not know and a
    few thousand draws cannot see at levels like 1e-4. Bins are taken from the
    largest jump down until their chances add up past alpha / 2; the floor must
    clear that jump (plus the ``typical`` chance PSI of the rest). 0 when none is that likely.
    """
    p = probs[probs > 2.0 / (m + 1)]
    if p.size < 2:
        return 0.0
    jump = p * (np.log(p / epsilon) - np.log1p(-p))
    chance = np.exp(n * np.log1p(-p)) + np.exp(m * np.log1p(-p))
    order = np.argsort(-jump)
    over = np.flatnonzero(np.cumsum(chance[order]) > alpha / 2.0)
    return float(jump[order][over[0]] + typical) if over.size else 0.0


#: Simulations kept: one window's tests must fit (slice values x columns: 3 slices of ~40 values over 26
#: columns are ~1100), else detect walks the windows in order and each evicts the next one's floors.
SIMULATION_CACHE = 4096


def _statistic_rows(names: tuple[str, ...], ref: np.ndarray, win: np.ndarray, epsilon: float) -> dict[str, np.ndarray]:
    return {name: psi_rows(ref, win, epsilon) if name == "psi" else _ROWS[name](ref, win) for name in names}


def _bootstrap_draws(probs: np.ndarray, n: int, m: int, names: tuple[str, ...], epsilon: float, draws: int,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Multinomial draws of both histograms (~5 ms per 4 000 x 12 cells, then ~1.5 ms per statistic)."""
    win = rng.multinomial(n, probs, size=draws)
    ref = rng.multinomial(m, probs, size=draws)
    return _statistic_rows(names, ref, win, epsilon)


#: Scale of each chi-square-family statistic in Pearson's X^2 = n_eff sum (p - q)^2 / p, to second order
#: (n_eff = nm / (n + m)): psi ~ X^2 / n_eff, js^2 (bits) ~ X^2 / (8 ln 2 n_eff), hellinger^2 ~ X^2 / (8 n_eff).
_PER_X2 = {"psi": 1.0, "js": 1.0 / (8.0 * math.log(2.0)), "hellinger": 0.125}


def _limit_draws(probs: np.ndarray, n: int, m: int, names: tuple[str, ...], epsilon: float, draws: int,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The statistics with the large cells at their limit and the others drawn exactly (~1-2 ms).

    Pearson's X^2 splits into the X^2 of [small cells, large cells lumped]
    plus the X^2 within the large cells, asymptotically independent; the
    latter is chi-square with (large cells - 1) degrees of freedom and, to
    second order, adds X^2 times `_PER_X2` to psi, js^2 and hellinger^2
    whatever the lumped share. One chi-square draw per row therefore serves
    psi, js, hellinger and chi2, and the small table (with the outside cells
    and PSI's epsilon jumps) is scored by the statistics themselves. tv and
    linf have no such form: the difference of the large cells' shares is drawn
    normal, with covariance (1/n + 1/m)(diag(share) - share share^T) / lumped share.
    """
    large = min(n, m) * probs >= LIMIT_COUNT
    lumped = float(probs[large].sum())
    share = probs[large] / lumped
    small = [rng.multinomial(size, np.append(probs[~large], lumped), size=draws) for size in (m, n)]
    out = {}
    family = [name for name in names if name in _PER_X2 or name == "chi2"]
    if family:
        x2 = rng.chisquare(share.size - 1, draws)
        en = n * m / (n + m)
        for name, rows in _statistic_rows(tuple(family), *small, epsilon).items():
            if name == "chi2":
                out[name] = x2 + rows
            elif name == "psi":
                out[name] = x2 / en + rows
            else:
                out[name] = np.sqrt(x2 * _PER_X2[name] / en + rows**2)
    spread = [name for name in names if name not in out]
    if spread:
        y = rng.standard_normal((draws, share.size))
        root = np.sqrt(share)
        d = (y * root - np.outer(y @ root, share)) * math.sqrt((1.0 / n + 1.0 / m) / lumped)  # @: row sums are slow
        shares = [np.column_stack([c[:, :-1] / size, (c[:, -1] / size)[:, None] * inner])
                  for c, size, inner in ((small[0], m, share[None, :]), (small[1], n, share + d))]
        out.update(_statistic_rows(tuple(spread), *shares, epsilon))
    return out


@functools.lru_cache(maxsize=SIMULATION_CACHE)
def _simulated(p: tuple[float, ...], n: int, m: int, alpha: float, epsilon: float, seed: int,
               names: tuple[str, ...]) -> dict[str, float]:
    """The (1 - alpha) quantile of each statistic in ``names``, from one set of draws (`method` says which)."""
    probs = np.asarray(p)
    how = method(probs, n, m)
    draws = SIMULATIONS * SPARSE_FACTOR if how.startswith("sparse") else SIMULATIONS
    simulate = _limit_draws if how.endswith("limit") else _bootstrap_draws
    drawn = simulate(probs, n, m, names, epsilon, draws, np.random.default_rng(seed))
    reach = 10.0 / draws
    cells = int(np.count_nonzero(probs))
    out = {}
    for name, values in drawn.items():
        if alpha >= reach:
            out[name] = float(np.quantile(values, 1.0 - alpha, method="higher"))
        else:
            q = float(np.quantile(values, 1.0 - reach, method="higher"))
            out[name] = q * _shape(name, alpha, cells) / _shape(name, reach, cells)
        if name == "psi":
            jump = psi_jump_floor(probs, n, m, alpha, epsilon, float(np.median(values)))
            out[name] = max(out[name], jump)
    return out


def _bins(name: str, profile: FeatureProfile, params: StatParams) -> str:
    """The cells a simulated statistic is taken on (`stats.cells_read`)."""
    return cells_read(name, profile.kind, params)


def _seed(profile: FeatureProfile, bins: str, n: int) -> int:
    return zlib.crc32(f"{profile.name}\0{bins}\0{n}".encode())


def _effective_n(n: int, m: int) -> float:
    return n * m / (n + m)


@functools.lru_cache(maxsize=4096)
def _ks_floor(n: int, m: int, alpha: float) -> float:
    from scipy.stats import kstwo, kstwobign

    en = _effective_n(n, m)
    if en <= KS_EXACT_N_MAX:
        return float(kstwo.isf(alpha, max(1, int(round(en)))))
    return float(kstwobign.isf(alpha)) / math.sqrt(en)


def _bridge_mean(profile: FeatureProfile) -> float:
    """E integral |B(F(x))| dx = sqrt(2/pi) integral sqrt(F(1-F)) dx over the baseline's bin model."""
    b = profile.baseline
    e = np.asarray(profile.edges, dtype=float)
    if e.size < 2:
        return 0.0
    n = int(b.counts.sum())
    cum = np.cumsum(b.counts)[:-1] / n  # F at the right end of fine bins 0..k-1
    left = np.concatenate([[0.0], cum[:-1]])
    width = np.diff(e)
    # F runs linearly from `left` to `cum` over each bin: Simpson's rule on sqrt(F(1-F))
    g = lambda f: np.sqrt(np.clip(f * (1.0 - f), 0.0, None))  # noqa: E731
    integral = np.sum(width * (g(left) + 4.0 * g(0.5 * (left + cum)) + g(cum)) / 6.0)
    return math.sqrt(2.0 / math.pi) * float(integral)


def noise_floor(
    name: str,
    profile: FeatureProfile,
    window: Histogram,
    reference: Histogram,
    alpha: float,
    params: StatParams = StatParams(),
    siblings: bool = True,
) -> float | None:
    """The (1 - alpha) null quantile of statistic ``name`` for a window of this size; None when undefined.

    Only the sizes of ``window`` and ``reference`` are used, never their
    values: the floor says what chance alone would give, whatever was observed.
    ``siblings``: the column's other statistics on the same cells are scored on
    the same draws (and cached), for a caller that will ask for them next.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if name == "null_rate_delta":
        return _null_rate_floor(profile, window, alpha)
    if profile.all_null:
        return None
    n, m = valid_total(profile, window), valid_total(profile, reference)
    if n == 0 or m == 0:
        return None
    nb, mb = bucket(n), bucket(m)
    if name in _ROWS:
        bins = _bins(name, profile, params)
        p = null_cells(profile, bins)
        # only the statistics this column has on these cells (numeric: no tv/linf/chi2; fine cells: js/hellinger)
        names = tuple(s for s in _ROWS if _bins(s, profile, params) == bins
                      and (s == name or (siblings and profile.kind in STATISTICS[s].kinds)))
        return _simulated(tuple(p.tolist()), nb, mb, alpha, params.epsilon, _seed(profile, bins, nb), names)[name]
    if name == "ks":
        return _ks_floor(nb, mb, alpha)
    if name == "ks_robust":
        return _ks_floor(nb, mb, alpha) - ks_critical_value(n, m, params.ks_alpha)
    sd = baseline_std(profile)
    if not (sd > 0):
        return None
    scale = math.sqrt(1.0 / n + 1.0 / m)
    if name == "wasserstein":
        return scale * (_bridge_mean(profile) / sd + float(st.norm.isf(alpha)))
    if name == "mean_shift":
        return scale * float(st.norm.isf(alpha / 2.0))
    return None


def _null_rate_floor(profile: FeatureProfile, window: Histogram, alpha: float) -> float | None:
    """The window's null share exceeds the floor with probability <= alpha.

    Exact binomial for the window's own draw, plus the baseline rate's
    sampling error (which dominates when the window is larger than the baseline).
    """
    b = profile.baseline
    if b.n_rows == 0 or window.n_rows == 0:
        return None
    observed = (b.nulls + b.nans) / b.n_rows
    rate = max(observed, 1.0 / (b.n_rows + 1))
    k = float(st.binom.isf(alpha / 2.0, window.n_rows, rate))
    baseline_error = float(st.norm.isf(alpha / 2.0)) * math.sqrt(rate * (1.0 - rate) / b.n_rows)
    return k / window.n_rows - observed + baseline_error

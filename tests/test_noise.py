"""Noise floors against brute force: windows drawn from the baseline's own distribution, statistics computed as the job does."""
from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest
from scipy import stats as st

from helpers import categorical_profile, numeric_profile
from sparkdrift.core import distances, noise, stats
from sparkdrift.core.binning import count_categorical, count_numeric
from sparkdrift.core.config import parse_config
from sparkdrift.core.drift import drift_results, alpha_per_test, n_tests
from sparkdrift.core.windows import WindowHistograms
from sparkdrift.core.policy import evaluate
from sparkdrift.core.profile import BaselineProfile, Histogram
from sparkdrift.core.results import DriftResult

M = 50_000  # baseline rows
N = 200  # window rows
REPS = 500
ALPHA = 0.05

DISTRIBUTIONS = {
    "normal": lambda rng, k: rng.normal(10.0, 2.0, k),
    "lognormal": lambda rng, k: rng.lognormal(0.0, 1.0, k),
    "poisson": lambda rng, k: rng.poisson(3.0, k).astype(float),
}

#: Stated tolerance of floor / brute-force quantile. Bootstrap floors are
#: estimates of the same quantile (500 draws: ~±10 %); KS is exact for
#: continuous data and conservative for discrete data (whose KS is smaller);
#: the Wasserstein floor is a concentration bound, conservative by design.
TOLERANCE = {"psi": (0.85, 1.2), "js": (0.85, 1.2), "ks": (0.85, 1.4), "wasserstein": (1.0, 2.0)}


@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
def test_floor_matches_brute_force(dist):
    rng = np.random.default_rng(7)
    draw = DISTRIBUTIONS[dist]
    profile = numeric_profile(dist, draw(rng, M))
    if dist == "poisson":
        profile = replace(profile, dtype="bigint")
    values = {name: [] for name in TOLERANCE}
    for _ in range(REPS):
        window = count_numeric(draw(rng, N), profile.edges)
        for name in values:
            values[name].append(stats.compute(name, profile, profile.baseline, window).value)
    window = count_numeric(draw(rng, N), profile.edges)
    for name, (lo, hi) in TOLERANCE.items():
        brute = float(np.quantile(values[name], 1 - ALPHA))
        floor = noise.noise_floor(name, profile, window, profile.baseline, ALPHA)
        assert lo <= floor / brute <= hi, (dist, name, floor, brute)


def test_categorical_floor_matches_brute_force():
    rng = np.random.default_rng(3)
    cats = [f"c{i}" for i in range(30)]
    p = 1.0 / np.arange(1, 31) ** 1.1
    p /= p.sum()
    draw = lambda k: list(rng.choice(cats, size=k, p=p))  # noqa: E731
    profile = categorical_profile("cat", draw(M), top_k=20)
    values = {name: [] for name in ("psi", "js", "tv")}
    for _ in range(REPS):
        window = count_categorical(draw(N), profile.categories, profile.tracked)
        for name in values:
            values[name].append(stats.compute(name, profile, profile.baseline, window).value)
    for name, vals in values.items():
        brute = float(np.quantile(vals, 1 - ALPHA))
        floor = noise.noise_floor(name, profile, window, profile.baseline, ALPHA)
        assert 0.85 <= floor / brute <= 1.2, (name, floor, brute)


# --------------------------------------------------------------------------- the limit path (large cells)

LIMIT_REPS = 2000  # windows of 3 000 raw rows: ~20 beyond the 99 % quantile, ~±8 %


@pytest.mark.parametrize("dist", ["normal", "lognormal"])
def test_limit_floor_matches_brute_force(dist):
    """Every coarse bin expects ~300 window rows: the floors come from the limit, checked against raw windows."""
    rng = np.random.default_rng(8)
    draw = DISTRIBUTIONS[dist]
    profile = numeric_profile(dist, draw(rng, 200_000))
    n = noise.bucket(3000)  # on the grid: the floor is taken at this very size
    assert noise.method(noise.null_cells(profile, "coarse"), n, noise.bucket(200_000)) == "limit"
    values = {name: [] for name in ("psi", "js", "hellinger")}
    for _ in range(LIMIT_REPS):
        window = count_numeric(draw(rng, n), profile.edges)
        for name in values:
            values[name].append(stats.compute(name, profile, profile.baseline, window).value)
    for name, vals in values.items():
        brute = float(np.quantile(vals, 0.99))
        floor = noise.noise_floor(name, profile, window, profile.baseline, 0.01)
        # the null model also draws the reference (1/n + 1/m, not 1/n): psi ~2 % above
        assert 0.85 <= floor / brute <= 1.2, (dist, name, floor, brute)


@pytest.mark.parametrize("rows,how", [(20_000, "limit"), (2_000, "sparse limit")])
def test_limit_tail_matches_multinomial_draws(rows, how):
    """Deep in the tail (1e-3, scaled from 10 / draws): 20 Zipf categories, 200 000 brute-force draws of both histograms.

    At 20 000 rows every category expects >= 210; at 2 000 the 5 largest are at their limit and the
    other 15 (23-85 rows) are drawn exactly.
    """
    rng = np.random.default_rng(9)
    cats = [f"c{i}" for i in range(20)]
    p = 1.0 / np.arange(1, 21) ** 1.1
    p /= p.sum()
    profile = categorical_profile("cat", list(rng.choice(cats, size=100_000, p=p)), top_k=20)
    n, m = noise.bucket(rows), noise.bucket(profile.baseline.n_valid)
    cells = noise.null_cells(profile, "coarse")
    assert noise.method(cells, n, m) == how
    win, ref = rng.multinomial(n, cells, size=200_000), rng.multinomial(m, cells, size=200_000)
    brute = {
        "psi": distances.psi_rows(ref, win, 1e-4), "js": distances.js_rows(ref, win),
        "hellinger": distances.hellinger_rows(ref, win), "chi2": distances.chi2_rows(ref, win),
        "tv": distances.tv_rows(ref, win), "linf": distances.linf_rows(ref, win),
    }
    window = Histogram(counts=np.r_[rng.multinomial(n, p), 0])
    for name, vals in brute.items():
        floor = noise.noise_floor(name, profile, window, profile.baseline, 1e-3)
        assert 0.85 <= floor / float(np.quantile(vals, 1 - 1e-3)) <= 1.15, (name, floor)


def test_limit_path_is_taken_where_cells_are_large(monkeypatch):
    """The speed of slice floors rests on this: multinomial draws only where some cell expects < `LIMIT_COUNT` rows."""
    rng = np.random.default_rng(4)
    profile = numeric_profile("x", rng.normal(size=M))
    cells = noise.null_cells(profile, "coarse")  # 10 coarse bins of ~10 %, 2 outside cells of 1/(m+1)
    assert noise.method(cells, 1100, M) == "limit"  # ~110 rows per bin
    assert noise.method(cells, 900, M) == "bootstrap"
    assert noise.method(cells, 200, M) == "sparse bootstrap"
    assert noise.method(cells, 10**6, 500) == "bootstrap"  # the reference's rows count too

    def refuse(*args):
        raise AssertionError("multinomial draws where every cell expects >= LIMIT_COUNT rows")

    monkeypatch.setattr(noise, "_bootstrap_draws", refuse)
    noise._simulated.cache_clear()
    window = count_numeric(rng.normal(size=20_000), profile.edges)
    for name in ("psi", "js", "hellinger"):
        assert noise.noise_floor(name, profile, window, profile.baseline, 1e-4) > 0


def test_floor_shrinks_like_one_over_root_n_and_is_reproducible():
    rng = np.random.default_rng(1)
    profile = numeric_profile("x", rng.normal(size=M))
    small = count_numeric(rng.normal(size=400), profile.edges)
    large = count_numeric(rng.normal(size=40_000), profile.edges)
    for name in ("ks", "wasserstein", "mean_shift"):
        a = noise.noise_floor(name, profile, small, profile.baseline, 1e-3)
        b = noise.noise_floor(name, profile, large, profile.baseline, 1e-3)
        # sqrt(1/n + 1/m) scaling: 400 vs 40 000 rows against 50 000
        # (KS is taken at sizes rounded down to a 9 %-grid: within 5 %)
        assert a / b == pytest.approx(math.sqrt((1 / 400 + 1 / M) / (1 / 40_000 + 1 / M)), rel=0.05), name
    # PSI ~ chi2 / n_eff: a hundred times the rows, about a hundredth of the floor
    a = noise.noise_floor("psi", profile, small, profile.baseline, 1e-3)
    b = noise.noise_floor("psi", profile, large, profile.baseline, 1e-3)
    assert 40 < a / b < 120
    assert a == noise.noise_floor("psi", profile, small, profile.baseline, 1e-3)


def test_closed_forms_by_hand():
    rng = np.random.default_rng(2)
    profile = numeric_profile("x", rng.normal(size=10_000))
    window = count_numeric(rng.normal(size=900), profile.edges)
    n, m = window.n_valid, profile.baseline.n_valid
    nb, mb = noise.bucket(n), noise.bucket(m)  # KS floors are taken at the sizes rounded down: never too low
    en = nb * mb / (nb + mb)
    assert noise.noise_floor("ks", profile, window, profile.baseline, 0.01) == pytest.approx(
        st.kstwo.isf(0.01, round(en)))
    assert noise.noise_floor("mean_shift", profile, window, profile.baseline, 0.01) == pytest.approx(
        st.norm.isf(0.005) * math.sqrt(1 / n + 1 / m))
    crit = distances.ks_critical_value(n, m, 0.05)
    assert noise.noise_floor("ks_robust", profile, window, profile.baseline, 0.01) == pytest.approx(
        st.kstwo.isf(0.01, round(en)) - crit)
    assert noise.noise_floor("ks", profile, window, profile.baseline, 0.01) >= st.kstwo.isf(0.01, round(n * m / (n + m)))


def test_null_rate_floor_is_the_binomial_quantile_plus_the_baselines_own_error():
    base = Histogram(counts=np.array([900]), nulls=100)  # 10 % nulls in 1 000 rows
    profile = replace(numeric_profile("x", np.arange(10.0)), baseline=base, edges=(0.0,), coarse=(0,))
    window = Histogram(counts=np.array([180]), nulls=20)  # 200 rows
    floor = noise.noise_floor("null_rate_delta", profile, window, profile.baseline, 0.01)
    k = st.binom.isf(0.005, 200, 0.1)
    assert st.binom.sf(k, 200, 0.1) <= 0.005 < st.binom.sf(k - 1, 200, 0.1)
    assert floor == pytest.approx(k / 200 - 0.1 + st.norm.isf(0.005) * math.sqrt(0.1 * 0.9 / 1000))


def test_psi_floor_clears_the_jump_of_an_empty_bin():
    """10 bins of 10 %: at 100 rows one is empty with chance ~2.7e-4, and PSI then jumps by ~0.7."""
    p = np.array([0.1] * 10)
    jump = 0.1 * (math.log(0.1 / 1e-4) - math.log(0.9))
    assert noise.psi_jump_floor(p, 100, 10**6, 1e-4, 1e-4, 0.0) == pytest.approx(jump)
    assert noise.psi_jump_floor(p, 100, 10**6, 1e-2, 1e-4, 0.0) == 0.0  # 2.7e-4 is within a 1e-2 level
    assert noise.psi_jump_floor(p, 1000, 10**6, 1e-4, 1e-4, 0.0) == 0.0  # 0.9^1000: never
    # brute force: empty bins at 100 rows, and the floor above their PSI
    rng = np.random.default_rng(0)
    counts = rng.multinomial(100, p, size=200_000)
    empty = (counts == 0).any(axis=1).mean()
    assert empty == pytest.approx(10 * 0.9**100, rel=0.25)


def test_bucket_rounds_down_on_a_fixed_grid():
    assert noise.bucket(10) == 10
    for n in (100, 1234, 10**6):
        b = noise.bucket(n)
        assert b <= n and n / b < noise.BUCKET_RATIO + 1e-9
    assert noise.bucket(1234) == noise.bucket(noise.bucket(1234))
    # a grid size is its own bucket (round(ratio^k) can fall below ratio^k: 2 896 once went to 2 656)
    assert all(noise.bucket(noise.bucket(n)) == noise.bucket(n) for n in range(16, 200_000))


def test_undefined_floors():
    rng = np.random.default_rng(0)
    profile = numeric_profile("x", rng.normal(size=1000))
    empty = Histogram.empty(profile.n_bins)
    assert noise.noise_floor("psi", profile, empty, profile.baseline, 0.01) is None
    with pytest.raises(ValueError):
        noise.noise_floor("psi", profile, profile.baseline, profile.baseline, 0.0)


# --------------------------------------------------------------------------- budget and verdicts

CFG = {
    "monitor": "m",
    "baseline": {"table": "b"},
    "production": {"table": "p", "timestamp_column": "ts", "granularity": "day"},
    "features": {"numeric": ["x", "y"], "categorical": ["c"]},
}


def _baseline(rng) -> BaselineProfile:
    feats = {
        "x": numeric_profile("x", rng.normal(size=M)),
        "y": numeric_profile("y", rng.lognormal(size=M)),
        "c": categorical_profile("c", list(rng.choice(list("abcde"), size=M))),
    }
    return BaselineProfile("m", "b1", "now", "b", 1, "h", M, feats)


def test_budget_is_split_over_thresholded_tests():
    rng = np.random.default_rng(0)
    base = _baseline(rng)
    cfg = parse_config(CFG)
    # numeric: psi ks ks_robust js wasserstein mean_shift null_rate_delta (all thresholded) = 7;
    # categorical: psi js tv null_rate_delta thresholded, chi2 and linf reported only = 4
    assert n_tests(cfg, base) == 7 + 7 + 4
    assert alpha_per_test(cfg, base) == pytest.approx(0.01 / 18)
    assert alpha_per_test(parse_config({**CFG, "policy": {"noise_floor": False}}), base) is None
    assert noise.per_test_level(0.05, 10) == pytest.approx(0.005)


def _windows(rng, base, n, k, shift=0.0):
    t0 = datetime(2026, 1, 1)
    out = []
    for i in range(k):
        x = count_numeric(rng.normal(shift, 1.0, n), base.features["x"].edges)
        y = count_numeric(rng.lognormal(size=n), base.features["y"].edges)
        c = count_categorical(list(rng.choice(list("abcde"), size=n)), base.features["c"].categories, ())
        out.append(WindowHistograms(t0 + timedelta(days=i), t0 + timedelta(days=i + 1), n, {"x": x, "y": y, "c": c}))
    return out


def test_small_windows_stop_crying_wolf_and_real_drift_still_fires():
    rng = np.random.default_rng(11)
    base = _baseline(rng)
    on, off = parse_config(CFG), parse_config({**CFG, "policy": {"noise_floor": False}})
    clean = _windows(rng, base, 200, 40)
    results_on, results_off = drift_results(on, base, clean), drift_results(off, base, clean)
    # fixed thresholds: JS and Wasserstein breach on noise alone at 200 rows
    assert sum(r.drifted for r in results_off) >= 20
    assert sum(r.drifted for r in results_on) <= 1
    assert sum(d.severity != "none" for d in evaluate(on.policy, results_on)) <= 1  # budget: 1 % of windows
    shifted = _windows(rng, base, 200, 10, shift=1.0)
    decisions = evaluate(on.policy, drift_results(on, base, shifted))
    assert all(d.severity != "none" and "x" in d.drifted for d in decisions)


def _row(i: int, value: float, floor: float | None, threshold: float = 0.2) -> DriftResult:
    t = datetime(2026, 1, 1) + timedelta(days=i)
    return DriftResult("m", "b", t, t + timedelta(days=1), "x", "psi", value, threshold, False,
                       noise_floor=floor, excess=None if floor is None else value - floor)


def test_cusum_catches_slow_drift_by_hand():
    policy = parse_config(CFG).policy  # allowance 0.25 x 0.2 = 0.05, limit 1.0 x 0.2 = 0.2
    # PSI 0.07 every window, floor 0.01: +0.02 a window, the sum reaches 0.2 at the 10th window
    decisions = evaluate(policy, [_row(i, 0.07, 0.01) for i in range(12)])
    assert [d.severity for d in decisions] == ["none"] * 9 + ["minor"] * 3
    assert decisions[9].rules[-1].startswith("persistence: x psi CUSUM 0.2 >= 0.2 over 10 windows")
    # values within their noise floor never accumulate, whatever the allowance
    quiet = evaluate(policy, [_row(i, 0.15, 0.16) for i in range(30)])
    assert all(d.severity == "none" for d in quiet)
    off = parse_config({**CFG, "policy": {"persistence": {"enabled": False}}}).policy
    assert all(d.severity == "none" for d in evaluate(off, [_row(i, 0.07, 0.01) for i in range(12)]))


def test_score_counts_only_values_above_their_floor():
    policy = parse_config({**CFG, "policy": {"persistence": {"enabled": False}}}).policy
    within = evaluate(policy, [_row(0, 0.15, 0.18)])[0]
    above = evaluate(policy, [_row(0, 0.15, 0.05)])[0]
    assert (within.score, within.severity) == (0.0, "none")
    assert (above.score, above.severity) == (0.15, "minor")


def test_a_failing_statistic_is_an_error_never_no_drift(monkeypatch):
    rng = np.random.default_rng(5)
    base = _baseline(rng)
    cfg = parse_config(CFG)

    def broken(profile, reference, window, params):
        raise RuntimeError("bins out of order")

    monkeypatch.setitem(stats.STATISTICS, "js", replace(stats.STATISTICS["js"], compute=broken))
    results = drift_results(cfg, base, _windows(rng, base, 500, 1))
    failed = [r for r in results if r.failed]
    assert {(r.feature, r.statistic) for r in failed} == {("x", "js"), ("y", "js"), ("c", "js")}
    assert failed[0].reason == "error: RuntimeError: bins out of order" and math.isnan(failed[0].value)
    decision = evaluate(cfg.policy, results)[0]
    assert decision.errors == ("c js: error: RuntimeError: bins out of order",
                               "x js: error: RuntimeError: bins out of order",
                               "y js: error: RuntimeError: bins out of order")

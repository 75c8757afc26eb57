"""Smoke test of bench/false_alarms.py (issue 14's false-alarm study) at a tiny size: 6 features, 2 sizes."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import false_alarms as fa  # noqa: E402

WINDOWS = 30


@pytest.fixture(scope="module")
def study():
    return fa.run_study(
        windows=WINDOWS, sizes=(100, 1_000), seed=14, features=6, baseline_rows=50_000,
        power_windows=10, power_sizes=(1_000,), shifts=(0.5,), mixes=(0.2,), slow_sizes=(),
        floor_check_sizes=(100,), floor_check_draws=20_000, progress=lambda s: None,
    )


def test_structure(study):
    assert [f["family"] for f in study["features"]].count("categorical") == 2
    assert {f["dtype"] for f in study["features"] if f["family"] == "discrete"} == {"bigint"}
    assert set(study["false_alarms"]) == {"100", "1000"}
    assert study["tests_per_window"] > 0
    assert math.isclose(study["per_test_level"], study["budget"] / study["tests_per_window"])
    for cell in study["false_alarms"].values():
        for label in ("on", "off"):
            c = cell[label]
            assert c["windows"] == WINDOWS and c["errors"] == 0
            assert math.isclose(sum(c["severity"].values()), 1.0)
            assert c["alarms"] == round(WINDOWS * c["alarm_share"])
    assert set(study["power"]) == {"mean:0.5:1000", "mix:0.2:1000"}
    text = fa.markdown(study, "now", "python bench/false_alarms.py --test")
    assert "### Drift-free windows" in text and "### Power" in text


def test_floors_keep_drift_free_alarms_within_budget_at_n_100(study):
    on = study["false_alarms"]["100"]["on"]
    # at most the budget, plus what a binomial(30, budget) reaches with probability 0.001
    allowed = int(st.binom.isf(0.001, WINDOWS, study["budget"]))
    assert on["alarms"] <= allowed, on["examples"]


def test_fixed_thresholds_alarm_on_most_drift_free_windows_at_n_100(study):
    """Today's problem, issue 14: without floors, sampling noise at 100 rows breaches JS/Wasserstein/KS."""
    off = study["false_alarms"]["100"]["off"]
    assert off["alarm_share"] >= 0.5
    assert off["alarm_share"] > study["false_alarms"]["100"]["on"]["alarm_share"] + 0.4


def test_a_large_shift_is_detected_with_floors_on(study):
    for key in ("mean:0.5:1000", "mix:0.2:1000"):
        cell = study["power"][key]
        assert cell["on"]["alarm_share"] >= 0.9, key
        assert min(cell["on"]["shifted_feature_detection"].values()) >= 0.9, key


def test_multinomial_cells_are_the_law_of_raw_counts():
    """The n > 10 000 shortcut: cell probabilities from the CDF match raw draws' bin shares."""
    rng = np.random.default_rng(0)
    specs = fa.pick_features(6)
    baseline = fa.build_baseline(specs, 20_000, 1)
    sampler = fa.WindowSampler(specs, baseline, {s.name: s.dist for s in specs})
    for spec in specs:
        p = sampler.cells(spec)
        assert math.isclose(p.sum(), 1.0) and (p >= 0).all()
        h = sampler.histogram(rng, spec, 200_000)  # multinomial path
        assert h.n_rows == 200_000
        raw = sampler.histogram(rng, spec, 10_000)  # raw path, same layout
        assert raw.counts.shape == h.counts.shape
        if spec.kind == "numeric":
            got = np.concatenate([[raw.underflow], raw.counts, [raw.overflow]])
        else:
            got = np.concatenate([raw.counts, [raw.unseen]])
        valid = got.sum()
        # chi-square goodness of fit of 10k raw draws against the shortcut's probabilities
        keep = p * valid >= 5
        expected = np.append(p[keep] * valid, p[~keep].sum() * valid)
        observed = np.append(got[keep], got[~keep].sum())
        if expected[-1] == 0:
            expected, observed = expected[:-1], observed[:-1]
        stat = float(((observed - expected) ** 2 / expected).sum())
        assert st.chi2.sf(stat, max(1, expected.size - 1)) > 1e-4, spec.name


def test_floor_check_reports_every_feature(study):
    fc = study["floor_check"]["100"]
    assert set(fc["features"]) == {f["name"] for f in study["features"]}
    for row in fc["features"].values():
        assert row["psi"]["floor"] > 0 and 0.0 <= row["psi"]["p_above"] <= 1.0
    assert math.isclose(fc["sum_psi"], sum(r["psi"]["p_above"] for r in fc["features"].values()))

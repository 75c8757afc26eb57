"""Smoke test of the benchmark: the seeded generator and the harness pieces at 20k rows."""
from __future__ import annotations

import json
import math
import sys
from datetime import timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

pytestmark = [pytest.mark.slow, pytest.mark.spark]


def test_layout_needs_the_drifted_columns():
    from bench.generate import Layout

    with pytest.raises(ValueError, match="at least 6 features"):
        Layout.for_features(5)
    layout = Layout.for_features(25)
    assert layout.numeric[:4] == ("f0", "f1", "f2", "f3") and len(layout.numeric) == 20
    assert layout.categorical == ("c0", "c1", "c2", "c3", "c4")
    assert [layout.shape(f"f{i}") for i in range(4)] == ["normal", "lognormal", "uniform", "discrete"]


def test_generator_and_harness(spark, tmp_path):
    from pyspark.sql import functions as F

    from bench import collect_way
    from bench.generate import DAYS, T0, Generated, append_day, generate
    from bench.run import accuracy, floor_query, make_config, render
    from sparkdrift.spark.profiling import build_baseline
    from sparkdrift.store import DeltaStore
    from sparkdrift.detect import run_detect

    g = generate(spark, tmp_path / "data", rows=20_000, features=6, seed=3)
    assert Generated.load(g.out) == g
    prod = spark.read.format("delta").load(g.production)
    assert prod.count() == 20_000
    assert spark.read.format("delta").load(g.baseline).count() == 20_000
    assert dict(prod.dtypes)["f3"] == "int" and dict(prod.dtypes)["c1"] == "string"

    # drift where it was injected: f0 moves by ~0.5 std from day 20, f1 does not
    day = F.floor((F.unix_seconds("ts") - F.lit(int(T0.timestamp()))) / 86400)
    means = {
        r["late"]: r for r in prod.groupBy((day >= g.drift_day).alias("late")).agg(
            F.avg(F.when(~F.isnan("f0"), F.col("f0"))).alias("f0"),
            F.avg("f1").alias("f1"),
            F.avg(F.col("f0").isNull().cast("int")).alias("nulls"),
        ).collect()
    }
    assert 0.4 < means[True]["f0"] - means[False]["f0"] < 0.6
    assert abs(means[True]["f1"] - means[False]["f1"]) < 0.1
    assert 0.005 < means[False]["nulls"] < 0.02
    # the same seed gives the same rows, with segment columns for --slices or without
    again = generate(spark, tmp_path / "again", rows=20_000, features=6, seed=3, slices=3)
    assert Generated.load(again.out) == again and again.slices == ("s0", "s1", "s2")
    sliced = spark.read.format("delta").load(again.production)
    a = sliced.agg(F.sum("f1"), F.count("c0"), F.sum("score")).first()
    b = prod.agg(F.sum("f1"), F.count("c0"), F.sum("score")).first()
    assert a[0] == pytest.approx(b[0]) and a[1] == b[1] and a[2] == pytest.approx(b[2])
    assert sliced.columns == [*prod.columns, "s0", "s1", "s2"]
    distinct = sliced.agg(*[F.countDistinct(s).alias(s) for s in again.slices]).first()
    assert [distinct[s] for s in again.slices] == [5, 12, 20]

    # the jobs the benchmark times
    cfg = make_config(g, tmp_path / "out", "off", None)
    profile = build_baseline(spark, cfg)
    DeltaStore.of(spark, cfg).save_profile(profile)
    as_of = T0 + timedelta(days=DAYS, hours=1)
    cold = run_detect(spark, cfg, as_of=as_of)
    assert len(cold.windows) == DAYS

    cols = [*g.numeric, *g.categorical, g.prediction]
    kinds = {c: "string" if c in g.categorical else "double" for c in cols} | {"ts": "timestamp"}
    assert floor_query(spark, g.production, cols, kinds)[0][0] == 20_000

    # the pass's variants: the previous Spark-only pass gives the same histograms; the Arrow no-op sees every row
    from bench.variants import arrow_noop, count_windows_stack, same_windows
    from sparkdrift.core.windows import Windows
    from sparkdrift.spark.histograms import count_windows

    features = list(profile.features.values())
    daily = Windows(seconds=86400)
    ours = count_windows(prod, features, "ts", daily)
    assert same_windows(ours, count_windows_stack(prod, features, "ts", daily))
    assert sum(w.rows for w in ours.windows) == 20_000 == arrow_noop(prod, features, "ts")

    # the collect way, in process, and the accuracy check against it
    timings, results, kept = collect_way.run_once(spark, g, top_k=20, epsilon=1e-4, t0=None, days=DAYS)
    assert timings["total_s"] > 0
    rule = collect_way.rule_psi(kept, g, fine_bins=1000, coarse_bins=10, epsilon=1e-4, days=DAYS)
    collected = json.loads(json.dumps({"results": results, "rule_psi": rule}))
    acc = accuracy(g, cold.results, collected)
    for name in [*g.numeric, g.prediction]:
        for part in ("stable", "drifted"):
            x = acc["columns"][name].get(part)
            if x:
                assert x["ks_inside"] == x["ks_total"] > 0, (name, part, x)
                assert x["max_abs_psi_diff_same_rule"] < 0.05, (name, part, x)
    assert acc["columns"]["f0"]["drifted"]["psi_exact_mean"] > 0.15
    assert acc["columns"]["c1"]["drifted"]["psi_exact_mean"] > 0.15
    assert acc["columns"]["c1"]["stable"]["max_abs_psi_diff"] < 1e-9  # same slots: identical counts

    # one more day, and the incremental run reads only it
    append_day(spark, g)
    assert spark.read.format("delta").load(g.production).count() == 20_000 + g.rows_per_day
    inc = run_detect(spark, cfg, as_of=as_of + timedelta(days=1))
    assert len(inc.windows) == 1 and inc.windows[0].rows == g.rows_per_day

    text = render(_record(g, cold, inc), "results/x.json")
    assert "| detect cold, 30 days, MLflow off |" in text and "floor" in text
    assert "slices" not in text  # as before --slices

    # with --slices: the same runs with the segment columns as slices, against those without
    cfg = make_config(again, tmp_path / "sliced", "off", None, slices=True)
    assert [sl.expr for sl in cfg.slices] == ["s0", "s1", "s2"]
    rec = _record(g, cold, inc)
    rec["slices"] = {"columns": ["s0", "s1", "s2"], "values": 43, "mode": "off"}
    rec["phases"] |= {"baseline": _phase(4.0), "baseline.slices": _phase(5.0),
                      "detect.cold.slices": _phase(3.0, cold.cost, python=150.0)}
    text = render(rec, "results/x.json")
    assert "| baseline job with 3 slices (43 slice values) | 5.00 | 5.00 | 1.25× without |" in text
    assert "| detect cold, 30 days, 3 slices, MLflow off | 3.00 | 3.00 | 1.50× without | ≤ 1.5× | **met** |" in text
    assert "driver peak 650 MiB, 1.08× of the 600 MiB without slices" in text


def _phase(s: float, extra: dict | None = None, python: float = 100.0) -> dict:
    return {"seconds": [s], "min": s, "median": s, "python_peak_mib": python, "jvm_peak_mib": 500.0,
            "extra": [extra or {}]}


def _record(g, cold, inc) -> dict:
    """A minimal run record for `render`."""
    return {
        "started": "2026-01-01T00:00:00", "machine": {"commit": "abc", "nproc": 2, "cpu": "x", "memory_gib": 1, "kernel": "k",
                                                      "spark": "3.5", "delta": "3.3", "java": "17", "python": "3.11",
                                                      "mlflow": "3", "numpy": "2", "scipy": "1", "pyarrow": "1"},
        "load_start": [0.1, 0, 0], "load_end": [0.2, 0, 0],
        "args": {"driver_memory": "8g", "shuffle_partitions": 4, "repeat": 1, "note": "", "profile_repeat": 1},
        "data": {"rows": g.rows, "baseline_rows": g.baseline_rows, "rows_per_day": g.rows_per_day, "numeric": 4,
                 "categorical": 2, "baseline_mib": 1.0, "production_mib": 1.0, "drifted": g.drifted, "drift_day": 20},
        "collect_repeat": 1, "warmup_s": 1.0, "idle_rss": {"python_rss_mib": 1.0, "jvm_rss_mib": 1.0},
        "peak_reset": True,
        "phases": {"floor.production": _phase(1.0), "detect.cold.mlflow_off": _phase(2.0, cold.cost),
                   "detect.incremental.mlflow_off": _phase(0.5, inc.cost)},
        "collect": {}, "collect_note": "skipped", "collect_estimate": {"total": 1}, "accuracy": None,
        "fix_identical": None, "jfr": None,
    } | {"_": math.nan}


def test_small_monitor_section_reports_min_median_max_and_the_verdict_on_the_median():
    from bench.small import render

    runs = [{"floor": 17.0, "baseline": 19.0, "first detect": 50.0, "new window": 30.0, "no-op": 9.0},
            {"floor": 19.0, "baseline": 25.0, "first detect": 52.0, "new window": 10.0, "no-op": 12.0},
            {"floor": 18.0, "baseline": 18.0, "first detect": 51.0, "new window": 12.0, "no-op": 11.0}]
    text = render(50_000, 25, runs, (0.5, 0.4, 0.3), {"nproc": 2, "memory_gib": 23.5}, "")
    lines = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert lines["baseline"] == "| baseline | 18.0 | 19.0 | 25.0 | ≤ 20 s: met |"
    assert lines["new window"] == "| new window | 10.0 | 12.0 | 30.0 | ≤ 20 s: met |"
    assert lines["no-op"] == "| no-op | 9.0 | 11.0 | 12.0 | ≤ 10 s: missed |"
    assert lines["floor"] == "| floor | 17.0 | 18.0 | 19.0 |  |"

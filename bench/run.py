"""Benchmark sparkdrift against the raw-scan floor and the collect-to-driver way, with accuracy.

    python bench/run.py --rows 10_000_000 --features 25

In one run (one SparkSession for everything sparkdrift does; session start
excluded from every timing):

1. floor: one plain aggregation reading the same columns (count, sum of each
   numeric, min of each string/timestamp): over the baseline table, over the
   30 production days, over the appended day;
2. the baseline job: ``build_baseline`` (``save_baseline`` timed apart);
3. the detect job cold over 30 days, MLflow off and/or a local SQLite MLflow;
4. an incremental detect after appending one day (``as_of`` one day later);
5. the collect way (``bench/collect_way.py``, in a subprocess so its driver
   memory is its own), where its estimated driver bytes fit ``--collect-max-gib``;
6. with ``--slices k``: the data get k segment columns (≤ 20 values each), and
   each repeat also times the baseline job and the cold detect (first MLflow
   mode) with those k slices, against the same runs without them.

Then accuracy (sparkdrift's PSI and KS bounds against the exact values from the
collected data), a profile of the production pass (plan + ablations), and a
section appended to ``bench/RESULTS.md`` (raw numbers in ``bench/results/``).
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import DAYS, Generated, append_day  # noqa: E402
from bench.session import bench_session, jvm_pid, peak_rss_mib, python_maxrss_mib, reset_peak, rss_mib  # noqa: E402

BENCH = Path(__file__).resolve().parent
LATENESS = timedelta(hours=1)
log = logging.getLogger("bench")

TARGETS = {  # issue 17's (2026-12): detect ≤ 2x and baseline ≤ 3x the raw scan, an appended day ≤ 1/10 of cold
    "detect_vs_floor": 2.0,
    "baseline_vs_floor": 3.0,
    "incremental_vs_cold": 1 / 10,
    "memory_vs_collect": 1 / 10,
    "slices_vs_plain": 1.5,
}


def _int(s: str) -> int:
    return int(s.replace("_", "").replace(",", ""))


# --------------------------------------------------------------------------- machine


def machine_info() -> dict:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    import delta  # noqa: F401
    import pyspark
    from importlib.metadata import version

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    repo = BENCH.parent
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, capture_output=True, text=True).stdout.strip()  # noqa: E731
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "sparkdrift_dirty": bool(git("status", "--porcelain", "--", "sparkdrift")),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1024**2, 1),
        "python": platform.python_version(),
        "spark": pyspark.__version__,
        "delta": version("delta-spark"),
        "mlflow": version("mlflow"),
        "numpy": version("numpy"),
        "scipy": version("scipy"),
        "pyarrow": version("pyarrow"),
        "java": java[0] if java else "?",
        "kernel": platform.release(),
    }


def load_average() -> float:
    return os.getloadavg()[0]


def wait_for_load(max_load: float, minutes: float) -> float:
    """Wait (up to ``minutes``) until the 1-minute load average is below ``max_load``."""
    deadline = time.time() + minutes * 60
    load = load_average()
    while load >= max_load and time.time() < deadline:
        print(f"load average {load:.2f} >= {max_load}: waiting ...", flush=True)
        time.sleep(60)
        load = load_average()
    return load


def dir_bytes(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*.parquet"))


# --------------------------------------------------------------------------- measurement


@dataclass
class Phase:
    """Timings and driver memory of one measured configuration over its repeats."""

    name: str
    seconds: list[float] = field(default_factory=list)
    python_peak_mib: float = 0.0
    jvm_peak_mib: float = 0.0
    extra: list[dict] = field(default_factory=list)

    @property
    def min(self) -> float:
        return min(self.seconds) if self.seconds else float("nan")

    @property
    def median(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    def to_dict(self) -> dict:
        return {"name": self.name, "seconds": self.seconds, "min": self.min, "median": self.median,
                "python_peak_mib": self.python_peak_mib, "jvm_peak_mib": self.jvm_peak_mib, "extra": self.extra}


class Meter:
    """Times calls and tracks the peak RSS of this Python process and the JVM, per phase."""

    def __init__(self, spark):
        self.spark = spark
        self.jpid = jvm_pid(spark)
        self.phases: dict[str, Phase] = {}
        self.resettable = reset_peak() and reset_peak(self.jpid)

    def phase(self, name: str) -> Phase:
        return self.phases.setdefault(name, Phase(name))

    def measure(self, name: str, fn, *args, **kwargs):
        p = self.phase(name)
        # a full GC lets G1 hand back heap it no longer needs, so one phase's peak
        # is not simply the high-water mark left by the one before
        self.spark.sparkContext._jvm.java.lang.System.gc()
        gc.collect()
        if self.resettable:
            reset_peak()
            reset_peak(self.jpid)
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds = time.perf_counter() - t
        p.seconds.append(seconds)
        py = peak_rss_mib() if self.resettable else python_maxrss_mib()
        jvm = peak_rss_mib(self.jpid) or 0.0
        p.python_peak_mib = max(p.python_peak_mib, py or 0.0)
        p.jvm_peak_mib = max(p.jvm_peak_mib, jvm)
        print(f"  {name:<28} {seconds:8.2f} s   rss python {py:7.0f} MiB  jvm {jvm:7.0f} MiB", flush=True)
        return out


def floor_query(spark, table: str, columns: list[str], kinds: dict[str, str], ts_range=None) -> list:
    """The floor: one aggregation that reads every value of ``columns`` once (count, sum/min)."""
    from pyspark.sql import functions as F

    df = spark.read.format("delta").load(table)
    if ts_range is not None:
        lo, hi = ts_range
        df = df.filter((F.col("ts") >= F.lit(lo)) & (F.col("ts") < F.lit(hi)))
    aggs = [F.count(F.lit(1))]
    for c in columns:
        aggs.append(F.min(c) if kinds[c] in ("string", "timestamp") else F.sum(c))
    return df.agg(*aggs).collect()


def make_config(g: Generated, location: Path, mlflow: str, tracking_uri: str | None, slices: bool = False):
    """The benchmark's monitor; with ``slices``, the generated segment columns are its slices."""
    from sparkdrift.core.config import parse_config

    return parse_config(monitor_dict(g, location, mlflow, tracking_uri, slices), "bench")


def monitor_dict(g: Generated, location: Path, mlflow: str, tracking_uri: str | None, slices: bool = False) -> dict:
    """The benchmark's monitor config as YAML would give it (``bench/small.py`` writes it to a file)."""
    tracking = {"enabled": False} if mlflow == "off" else {"tracking_uri": tracking_uri, "experiment": "sparkdrift-bench"}
    segments = {"slices": list(g.slices)} if slices else {}
    return {
        "monitor": "bench",
        "baseline": {"table": g.baseline},
        "production": {"table": g.production, "timestamp_column": "ts", "granularity": "day", "lateness": "1h"},
        "features": {"numeric": list(g.numeric), "categorical": list(g.categorical)},
        "prediction": {"columns": [g.prediction], "kind": "score"},
        "output": {"location": str(location / "tables")},
        "mlflow": tracking,
        **segments,
    }


def restore_production(spark, g: Generated) -> None:
    """Bring production back to its 30 generated days (version 0) if an earlier run appended a day."""
    from delta.tables import DeltaTable

    rows = spark.read.format("delta").load(g.production).count()
    if rows != g.rows:
        print(f"production has {rows:,} rows (an earlier run appended a day): restoring version 0", flush=True)
        DeltaTable.forPath(spark, g.production).restoreToVersion(0)


# --------------------------------------------------------------------------- accuracy


def accuracy(g: Generated, results, collected: dict) -> dict:
    """Per column: max |PSI_sparkdrift - PSI_exact| over days, and KS bounds vs ks_2samp."""
    t0 = datetime.fromisoformat(g.t0)
    ours: dict[str, dict[int, dict]] = {}
    for r in results:
        if r.reference != "baseline" or r.statistic not in ("psi", "ks"):
            continue
        d = (r.window_start - t0).days
        ours.setdefault(r.feature, {}).setdefault(d, {})[r.statistic] = r
    drifted = set(g.drifted)
    out = {}
    for name, days in collected["results"].items():
        rows = {"kind": "categorical" if name in g.categorical else g.layout.shape(name) if name != g.prediction else "score",
                "drifted": name in drifted}
        for part, selected in (("stable", lambda d: name not in drifted or d < g.drift_day),
                               ("drifted", lambda d: name in drifted and d >= g.drift_day)):
            psi_diff, rule_diff, inside, total, excess, psi_exact = [], [], 0, 0, 0.0, []
            for d_str, exact in days.items():
                d = int(d_str)
                if not selected(d) or d not in ours.get(name, {}):
                    continue
                mine = ours[name][d]
                if "psi" in mine:
                    psi_diff.append(abs(mine["psi"].value - exact["psi"]))
                    psi_exact.append(exact["psi"])
                    rule = (collected.get("rule_psi") or {}).get(name, {}).get(d_str)
                    if rule is not None:
                        rule_diff.append(abs(mine["psi"].value - rule))
                if "ks" in exact and "ks" in mine:
                    k = mine["ks"]
                    lo = k.lower if k.lower is not None else k.value
                    hi = k.upper if k.upper is not None else k.value
                    total += 1
                    tol = 1e-9
                    if lo - tol <= exact["ks"] <= hi + tol:
                        inside += 1
                    else:
                        excess = max(excess, lo - exact["ks"], exact["ks"] - hi)
            if not psi_diff and not total:
                continue
            rows[part] = {
                "days": len(psi_diff),
                "psi_exact_mean": sum(psi_exact) / len(psi_exact) if psi_exact else None,
                "max_abs_psi_diff": max(psi_diff) if psi_diff else None,
                "max_abs_psi_diff_same_rule": max(rule_diff) if rule_diff else None,
                "ks_inside": inside,
                "ks_total": total,
                "ks_max_excess": excess,
            }
        out[name] = rows
    # KS bound width, for context
    widths = [r.upper - r.lower for f in ours.values() for d in f.values() for s, r in d.items()
              if s == "ks" and r.upper is not None and r.lower is not None]
    return {"columns": out, "ks_bound_width_max": max(widths) if widths else None,
            "ks_bound_width_mean": sum(widths) / len(widths) if widths else None}


# --------------------------------------------------------------------------- profile of the production pass


def explain_string(df, mode: str = "formatted") -> str:
    return df._sc._jvm.PythonSQLUtils.explainString(df._jdf.queryExecution(), mode)


def profile_pass(spark, g: Generated, profile, meter: Meter, repeat: int, cfg) -> dict:
    """Where the production pass spends its time.

    Production pass (30 days), each timed like the jobs:

    * ``pass.count_windows``: sparkdrift's production pass as detect runs it;
    * ``pass.stack``: the previous pass, one entry per row and column through
      a Spark hash aggregate (`bench/variants.py`), checked identical;
    * ``pass.arrow_noop``: the projection shipped to Python as Arrow and dropped;
    * ``pass.projection_noop``: only reading the columns.

    With a JDK at hand, JFR CPU profiles of one production pass and one baseline build.
    """
    from pyspark.sql import functions as F

    from bench import jfr
    from bench.variants import arrow_noop, count_windows_stack, same_windows
    from sparkdrift.spark.profiling import build_baseline
    from sparkdrift.spark.histograms import count_windows, partial_counts, time_range_filter
    from sparkdrift.core.windows import Windows

    daily = Windows(seconds=86400)

    t0 = datetime.fromisoformat(g.t0)
    prod = spark.read.format("delta").load(g.production).filter(time_range_filter("ts", None, t0 + timedelta(days=DAYS)))
    profiles = list(profile.features.values())
    plan = explain_string(partial_counts(prod, profiles, "ts", daily))
    identical = {}
    for _ in range(repeat):
        ref = meter.measure("pass.count_windows", count_windows, prod, profiles, "ts", daily)
        out = meter.measure("pass.stack", count_windows_stack, prod, profiles, "ts", daily)
        identical["stack"] = identical.get("stack", True) and same_windows(ref, out)
        meter.measure("pass.arrow_noop", arrow_noop, prod, profiles, "ts")
        staged = prod.select(*[F.col(p.name) for p in profiles], F.col("ts"))
        meter.measure("pass.projection_noop", lambda: staged.write.format("noop").mode("overwrite").save())
    profiles_jfr = {}
    if jfr.available():
        for label, fn in (("count_windows", lambda: count_windows(prod, profiles, "ts", daily)),
                          ("build_baseline", lambda: build_baseline(spark, cfg))):
            try:
                with jfr.recording(meter.jpid, label) as rec:
                    fn()
                profiles_jfr[label] = {"samples": len(rec.samples), "interpreted_share": rec.interpreted_share(),
                                       "top": rec.top(8)}
            except Exception as exc:  # noqa: BLE001 - the profile is a bonus
                profiles_jfr[label] = {"error": f"{type(exc).__name__}: {exc}"}
    return {"plan": plan, "identical": identical, "jfr": profiles_jfr}


def sliced_runs(spark, g: Generated, loc: Path, mode: str, tracking_uri: str | None, meter: Meter, as_of) -> dict:
    """The baseline job and the cold detect with ``g.slices`` as slices (phases ``*.slices``); what they counted."""
    from sparkdrift.detect import run_detect
    from sparkdrift.spark.profiling import build_baseline
    from sparkdrift.store import DeltaStore

    cfg = make_config(g, loc, mode, tracking_uri, slices=True)
    profile = meter.measure("baseline.slices", build_baseline, spark, cfg)
    DeltaStore.of(spark, cfg).save_profile(profile)
    with ReportTimer() as rt:
        outcome = meter.measure("detect.cold.slices", run_detect, spark, cfg, as_of=as_of)
    if len(outcome.windows) != DAYS:
        raise RuntimeError(f"cold detect with slices counted {len(outcome.windows)} windows: {outcome.message}")
    meter.phase("detect.cold.slices").extra.append({**outcome.cost, "report_s": rt.seconds})
    return {"columns": list(g.slices), "values": len(profile.slices), "mode": mode}


class ScanLog(logging.Handler):
    """Captures build_baseline's "scan N of 2 done in X s" log lines (not printed) to split its time."""

    PATTERN = re.compile(r"scan (\d) of 2 done in ([\d.]+)s")

    def __init__(self):
        super().__init__(logging.INFO)
        self.scans: dict[str, float] = {}
        self.logger = logging.getLogger("sparkdrift.baseline")

    def emit(self, record):
        m = self.PATTERN.search(record.getMessage())
        if m:
            self.scans[f"scan{m.group(1)}_s"] = float(m.group(2))

    def __enter__(self):
        self._level, self._propagate = self.logger.level, self.logger.propagate
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self._level)
        self.logger.propagate = self._propagate
        return False


class ReportTimer:
    """Times `sparkdrift.sinks.report.write_report` inside detect runs (instrumentation only)."""

    def __init__(self):
        self.seconds = 0.0

    def __enter__(self):
        from sparkdrift.sinks import report

        self._orig = report.write_report

        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return self._orig(*a, **k)
            finally:
                self.seconds += time.perf_counter() - t

        report.write_report = timed
        return self

    def __exit__(self, *exc):
        from sparkdrift.sinks import report

        report.write_report = self._orig
        return False


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=_int, required=True, help="production rows over 30 days (also the baseline size)")
    ap.add_argument("--baseline-rows", type=_int, default=None)
    ap.add_argument("--features", type=int, default=25)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--collect-repeat", type=int, default=None,
                    help="repeats of the collect way (default: --repeat up to 2M rows, else 1)")
    ap.add_argument("--collect-max-gib", type=float, default=10.0,
                    help="skip the collect way when its estimated driver bytes exceed this")
    ap.add_argument("--no-collect", action="store_true")
    ap.add_argument("--mlflow", choices=["off", "sqlite", "both"], default="both")
    ap.add_argument("--no-profile", action="store_true", help="skip the ablations of the production pass")
    ap.add_argument("--profile-repeat", type=int, default=1, help="repeats of each ablation")
    ap.add_argument("--data-dir", default=str(BENCH / "data"))
    ap.add_argument("--work-dir", default=None, help="output tables + MLflow (default: /tmp/sparkdrift-bench-<rows>)")
    ap.add_argument("--driver-memory", default="8g")
    ap.add_argument("--shuffle-partitions", type=int, default=4)
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--max-load", type=float, default=None, help="wait until the load average is below this")
    ap.add_argument("--wait-minutes", type=float, default=30.0)
    ap.add_argument("--results", default=str(BENCH / "RESULTS.md"), help="markdown file to append to ('' = none)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--note", default="", help="free text for the results section")
    ap.add_argument("--small", action="store_true",
                    help="then also time small monitors from process start (bench/small.py, its own section)")
    ap.add_argument("--slices", type=int, default=0,
                    help="also time baseline and cold detect with this many slice columns (≤ 20 values each)")
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("sparkdrift").setLevel(logging.ERROR)  # per-window policy lines would drown the output
    started = datetime.now(timezone.utc)
    info = machine_info()
    if args.max_load is not None:
        wait_for_load(args.max_load, args.wait_minutes)
    load_start = os.getloadavg()
    print(f"machine: {info['nproc']} cores {info['cpu']}, {info['memory_gib']} GiB; load {load_start}", flush=True)

    # ---- data (a subprocess: its JVM is not the one measured)
    base_rows = args.baseline_rows or args.rows
    data = Path(args.data_dir) / (f"{args.rows}x{args.features}-b{base_rows}-s{args.seed}"
                                  + (f"-slices{args.slices}" if args.slices else ""))
    fresh = args.regenerate or not (data / "meta.json").exists()
    if fresh:
        shutil.rmtree(data, ignore_errors=True)
        print(f"generating {data} ...", flush=True)
        subprocess.run([sys.executable, str(BENCH / "generate.py"), "--rows", str(args.rows), "--baseline-rows",
                        str(base_rows), "--features", str(args.features), "--seed", str(args.seed), "--out", str(data),
                        "--driver-memory", args.driver_memory, "--slices", str(args.slices)], check=True)
    g = Generated.load(data)
    work = Path(args.work_dir or f"/tmp/sparkdrift-bench-{args.rows}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    # ---- the collect way, first, alone on the machine's memory
    from bench.collect_way import estimate_bytes

    est = estimate_bytes(g)
    collect_repeat = args.collect_repeat or (args.repeat if args.rows <= 2_000_000 else 1)
    collected, collect_note = None, ""
    if args.no_collect:
        collect_note = "skipped (--no-collect)"
    elif est["total"] > args.collect_max_gib * 2**30:
        collect_note = (f"skipped: estimated driver bytes {est['total'] / 2**30:.1f} GiB > --collect-max-gib "
                        f"{args.collect_max_gib:g}")
    else:
        print(f"collect way: estimated {est['total'] / 2**30:.2f} GiB on the driver, {collect_repeat} repeat(s) ...", flush=True)
        out = work / "collect.json"
        proc = subprocess.run([sys.executable, str(BENCH / "collect_way.py"), "--data", str(data), "--out", str(out),
                               "--repeat", str(collect_repeat), "--driver-memory", args.driver_memory])
        if proc.returncode == 0 and out.exists():
            collected = json.loads(out.read_text())
        else:
            collect_note = f"failed (exit {proc.returncode})"
    print(f"collect way: {collect_note or 'done'}", flush=True)

    # ---- sparkdrift, one session
    from sparkdrift.spark.profiling import build_baseline
    from sparkdrift.store import DeltaStore
    from sparkdrift.detect import run_detect

    spark = bench_session("sparkdrift-bench", driver_memory=args.driver_memory,
                          shuffle_partitions=args.shuffle_partitions, warehouse_dir=str(work / "warehouse"))
    meter = Meter(spark)
    idle = {"python_rss_mib": rss_mib(), "jvm_rss_mib": rss_mib(meter.jpid)}
    restore_production(spark, g)
    layout = g.layout
    cols = [*layout.numeric, *layout.categorical, layout.prediction]
    kinds = {c: ("double" if c == layout.prediction else layout.spark_type(c)) for c in cols} | {"ts": "timestamp"}
    t0 = datetime.fromisoformat(g.t0)
    naive = lambda d: d.replace(tzinfo=None)  # noqa: E731
    prod_range = (naive(t0), naive(t0 + timedelta(days=DAYS)))
    day_range = (naive(t0 + timedelta(days=DAYS)), naive(t0 + timedelta(days=DAYS + 1)))
    modes = ["off", "sqlite"] if args.mlflow == "both" else [args.mlflow]
    tracking_uri = f"sqlite:///{work}/mlflow.db"
    as_of_cold = t0 + timedelta(days=DAYS) + LATENESS
    as_of_next = as_of_cold + timedelta(days=1)

    # warm-up (untimed): Delta log, codegen and JIT of the reads, in this JVM
    t = time.perf_counter()
    floor_query(spark, g.baseline, cols, kinds)
    floor_query(spark, g.production, [*cols, "ts"], kinds, prod_range)
    warmup_s = time.perf_counter() - t
    print(f"warm-up {warmup_s:.1f} s", flush=True)

    from sparkdrift.spark.cost import CostMeter

    def metered(label, fn):
        m = CostMeter(spark, label)
        try:
            out = fn()
        finally:
            m.close()
        return out, m.summary()

    profile = None
    cold_outcomes: dict[str, list] = {m: [] for m in modes}
    for r in range(args.repeat):
        print(f"repeat {r + 1}/{args.repeat}", flush=True)
        _, cost = meter.measure("floor.baseline", metered, "floor-baseline", lambda: floor_query(spark, g.baseline, cols, kinds))
        meter.phase("floor.baseline").extra.append(cost)
        with ScanLog() as scans:
            prof, cost = meter.measure("baseline", metered, "baseline",
                                       lambda: build_baseline(spark, make_config(g, work, "off", None)))
        meter.phase("baseline").extra.append({**cost, **scans.scans})
        profile = profile or prof
        _, cost = meter.measure("floor.production", metered, "floor-production",
                                lambda: floor_query(spark, g.production, [*cols, "ts"], kinds, prod_range))
        meter.phase("floor.production").extra.append(cost)
        for mode in modes:
            loc = work / f"rep{r}-{mode}"
            cfg = make_config(g, loc, mode, tracking_uri)
            meter.measure("save_baseline", DeltaStore.of(spark, cfg).save_profile, profile)
            with ReportTimer() as rt:
                outcome = meter.measure(f"detect.cold.mlflow_{mode}", run_detect, spark, cfg, as_of=as_of_cold)
            if len(outcome.windows) != DAYS:
                raise RuntimeError(f"cold detect counted {len(outcome.windows)} windows, expected {DAYS}: {outcome.message}")
            meter.phase(f"detect.cold.mlflow_{mode}").extra.append({**outcome.cost, "report_s": rt.seconds})
            if not cold_outcomes[mode]:  # keep one (for accuracy): holding all would inflate the Python RSS
                cold_outcomes[mode].append(outcome)
            del outcome
        if g.slices:
            sliced = sliced_runs(spark, g, work / f"rep{r}-slices", modes[0], tracking_uri, meter, as_of_cold)

    t = time.perf_counter()
    version = append_day(spark, g)
    append_s = time.perf_counter() - t
    print(f"appended day {DAYS} ({g.rows_per_day} rows) as version {version} in {append_s:.1f} s", flush=True)
    for r in range(args.repeat):
        _, cost = meter.measure("floor.day", metered, "floor-day",
                                lambda: floor_query(spark, g.production, [*cols, "ts"], kinds, day_range))
        meter.phase("floor.day").extra.append(cost)
        for mode in modes:
            cfg = make_config(g, work / f"rep{r}-{mode}", mode, tracking_uri)
            with ReportTimer() as rt:
                outcome = meter.measure(f"detect.incremental.mlflow_{mode}", run_detect, spark, cfg, as_of=as_of_next)
            if len(outcome.windows) != 1:
                raise RuntimeError(f"incremental detect counted {len(outcome.windows)} windows: {outcome.message}")
            meter.phase(f"detect.incremental.mlflow_{mode}").extra.append({**outcome.cost, "report_s": rt.seconds})

    prof_out = {}
    if not args.no_profile:
        print("profile of the production pass and the baseline job", flush=True)
        try:
            prof_out = profile_pass(spark, g, profile, meter, args.profile_repeat, make_config(g, work, "off", None))
        except Exception as exc:  # noqa: BLE001 - keep the measurements already made
            log.exception("profile failed")
            prof_out = {"error": f"{type(exc).__name__}: {exc}"}
    peaks = {"python_maxrss_mib": python_maxrss_mib(), "jvm_now_mib": rss_mib(meter.jpid)}

    acc = accuracy(g, cold_outcomes[modes[0]][0].results, collected) if collected else None
    finished = datetime.now(timezone.utc)
    record = {
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "machine": info,
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "args": vars(args),
        "data": {
            "path": str(data),
            "rows": g.rows,
            "baseline_rows": g.baseline_rows,
            "rows_per_day": g.rows_per_day,
            "numeric": len(g.numeric),
            "categorical": len(g.categorical),
            "baseline_mib": dir_bytes(g.baseline) / 2**20,
            "production_mib": dir_bytes(g.production) / 2**20,
            "generated_s": g.seconds if fresh else None,
            "drifted": g.drifted,
            "drift_day": g.drift_day,
        },
        "warmup_s": warmup_s,
        "append_s": append_s,
        "idle_rss": idle,
        "peak_reset": meter.resettable,
        "phases": {k: v.to_dict() for k, v in meter.phases.items()},
        "peaks": peaks,
        "collect": {k: v for k, v in (collected or {}).items() if k not in ("results", "rule_psi")},
        "collect_note": collect_note,
        "collect_repeat": collect_repeat,
        "collect_estimate": est,
        "accuracy": acc,
        "plan": prof_out.get("plan"),
        "fix_identical": prof_out.get("identical"),
        "jfr": prof_out.get("jfr"),
        "profile_error": prof_out.get("error"),
        "slices": sliced if g.slices else None,
    }
    spark.stop()
    results_dir = BENCH / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%S")
    raw = results_dir / f"{stamp}-{args.rows}x{args.features}.json"
    raw.write_text(json.dumps(record, indent=1, default=str))
    text = render(record, raw.relative_to(BENCH))
    print(text)
    if args.results:
        with open(args.results, "a") as fh:
            fh.write("\n" + text)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    if args.small:  # the small monitors' wall times from process start, right after, in their own processes
        subprocess.run([sys.executable, str(BENCH / "small.py"), "--repeat", str(max(args.repeat, 3)),
                        "--results", args.results, "--note", f"Same command as the {args.rows:,}-row section above."],
                       check=True)
    return 0


# --------------------------------------------------------------------------- report


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b and b == b and a == a else "-"


def _met(value: float, target: float) -> str:
    if value != value:
        return "-"
    return "**met**" if value <= target else "**missed**"


def render(rec: dict, raw_path) -> str:
    m, d, ph = rec["machine"], rec["data"], rec["phases"]

    def t(name):
        p = ph.get(name)
        return (p["min"], p["median"]) if p else (float("nan"), float("nan"))

    fb, fp = t("floor.baseline"), t("floor.production")
    lines = [
        f"## {rec['started'][:16].replace('T', ' ')} UTC — {d['rows']:,} rows × "
        f"{d['numeric'] + d['categorical']} features (+ score)",
        "",
        f"- machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gib']} GiB; Linux {m['kernel']}; "
        f"load average at start {rec['load_start'][0]:.2f}, at end {rec['load_end'][0]:.2f}",
        f"- Spark {m['spark']} (local[*], driver memory {rec['args']['driver_memory']}, "
        f"{rec['args']['shuffle_partitions']} shuffle partitions), delta-spark {m['delta']}, {m['java']}, "
        f"Python {m['python']}, MLflow {m['mlflow']}, numpy {m['numpy']}, scipy {m['scipy']}, pyarrow {m['pyarrow']}",
        f"- sparkdrift at commit {m.get('commit', '?')}" + (" (with uncommitted changes in sparkdrift/)" if m.get("sparkdrift_dirty") else ""),
        f"- data: baseline {d['baseline_rows']:,} rows ({d['baseline_mib']:.0f} MiB Parquet), production "
        f"{d['rows']:,} rows over 30 days ({d['production_mib']:.0f} MiB), appended day {d['rows_per_day']:,} rows; "
        f"{d['numeric']} numeric + {d['categorical']} categorical features + score; drift in "
        f"{', '.join(d['drifted'])} from day {d['drift_day']}",
        f"- repeats: {rec['args']['repeat']} (collect way: {rec['collect_repeat']}); times in seconds, min / median; "
        f"warm-up (untimed) {rec['warmup_s']:.1f} s; raw numbers: `bench/{raw_path}`",
    ]
    if rec["args"].get("note"):
        lines.append(f"- note: {rec['args']['note']}")
    lines += ["", "| measurement | min | median | ratio (min) | target | |", "|---|---:|---:|---|---|---|"]

    def row(label, name, ref=None, ref_label="", target=None):
        mn, md = t(name)
        if mn != mn:
            return
        ratio = _ratio(mn, ref) + f" {ref_label}" if ref else ""
        tgt, met = "", ""
        if target is not None and ref:
            tgt = f"≤ {target:g}×" if target >= 1 else f"≤ 1/{round(1 / target)}"
            met = _met(mn / ref, target)
        lines.append(f"| {label} | {mn:.2f} | {md:.2f} | {ratio} | {tgt} | {met} |")

    row("floor: baseline table", "floor.baseline")
    row("baseline job (`build_baseline`)", "baseline", fb[0], "floor", TARGETS["baseline_vs_floor"])
    row("`save_baseline` (per output location)", "save_baseline")
    row("floor: production, 30 days", "floor.production")
    for mode in ("off", "sqlite"):
        row(f"detect cold, 30 days, MLflow {mode}", f"detect.cold.mlflow_{mode}", fp[0], "floor", TARGETS["detect_vs_floor"])
    sl = rec.get("slices")
    if sl:
        plain = f"detect.cold.mlflow_{sl['mode']}"
        row(f"baseline job with {len(sl['columns'])} slices ({sl['values']} slice values)", "baseline.slices",
            t("baseline")[0], "without")
        row(f"detect cold, 30 days, {len(sl['columns'])} slices, MLflow {sl['mode']}", "detect.cold.slices",
            t(plain)[0], "without", TARGETS["slices_vs_plain"])
    row("floor: the appended day", "floor.day")
    for mode in ("off", "sqlite"):
        cold = t(f"detect.cold.mlflow_{mode}")[0]
        row(f"detect incremental, 1 day, MLflow {mode}", f"detect.incremental.mlflow_{mode}", cold, "cold",
            TARGETS["incremental_vs_cold"])
    c = rec.get("collect") or {}
    ours = t("baseline")[0] + t("detect.cold.mlflow_off")[0]
    if c.get("runs"):
        runs = c["runs"]
        tot = sorted(r["total_s"] for r in runs)
        col = min(r["collect_s"] for r in runs)
        cmp_ = min(r["compute_s"] for r in runs)
        lines.append(
            f"| collect way (collect {col:.1f} + numpy/scipy {cmp_:.1f}) | {tot[0]:.2f} | {statistics.median(tot):.2f} "
            f"| sparkdrift (baseline + cold detect, MLflow off: {ours:.1f} s) is {_ratio(tot[0], ours)} faster | "
            f"faster | {'**met**' if ours < tot[0] else '**missed**'} |"
        )
    else:
        lines.append(f"| collect way | - | - | {rec['collect_note']} | | |")

    # memory
    lines += ["", "Driver peak RSS (MiB; Python driver process + the JVM, which in local mode also runs the tasks; "
              "peaks reset before each measurement" + ("" if rec["peak_reset"] else " — NOT resettable here: cumulative")
              + f"; idle after session start: Python {rec['idle_rss']['python_rss_mib']:.0f}, JVM {rec['idle_rss']['jvm_rss_mib']:.0f}):", "",
              "| phase | Python | JVM | sum |", "|---|---:|---:|---:|"]
    ours_peak = 0.0
    for name, p in ph.items():
        if name.startswith("pass."):
            continue
        s = p["python_peak_mib"] + p["jvm_peak_mib"]
        if not name.startswith("floor"):
            ours_peak = max(ours_peak, s)
        lines.append(f"| {name} | {p['python_peak_mib']:.0f} | {p['jvm_peak_mib']:.0f} | {s:.0f} |")
    if c.get("rss"):
        r = c["rss"]
        cs = r["python_peak_mib"] + (r["jvm_peak_mib"] or 0)
        lines.append(f"| collect way (own process) | {r['python_peak_mib']:.0f} | {r['jvm_peak_mib']:.0f} | {cs:.0f} |")
        lines.append("")
        lines.append(
            f"sparkdrift's largest driver peak (baseline/detect phases) {ours_peak:.0f} MiB = {_ratio(ours_peak, cs)} of "
            f"the collect way's {cs:.0f} MiB (target ≤ 0.1×: {_met(ours_peak / cs, TARGETS['memory_vs_collect'])}); "
            f"Arrow bytes collected: {sum((c.get('arrow_bytes') or {}).values()) / 2**20:.0f} MiB "
            f"(estimated beforehand {rec['collect_estimate']['total'] / 2**20:.0f} MiB with working copies)."
        )

    if sl and "detect.cold.slices" in ph:
        with_, without = (ph[n]["python_peak_mib"] + ph[n]["jvm_peak_mib"] for n in ("detect.cold.slices", plain))
        lines += ["", f"Cold detect with {len(sl['columns'])} slices: driver peak {with_:.0f} MiB, "
                  f"{_ratio(with_, without)} of the {without:.0f} MiB without slices."]

    # where the time goes
    def spark_cols(cost):
        return (f"{cost.get('rows_read', 0):,.0f} | {cost.get('bytes_read', 0) / 2**20:,.0f} | "
                f"{cost.get('task_time_s', 0):.1f} | {cost.get('cpu_time_s', 0):.1f}")

    stage_rows = []
    for name, label in (("floor.baseline", "floor, baseline"), ("baseline", "baseline job"),
                        ("floor.production", "floor, production")):
        p = ph.get(name)
        if p and p["extra"]:
            i = p["seconds"].index(p["min"])
            x = p["extra"][i]
            split = ", ".join(f"scan {k[4]} {x[k]:.2f}" for k in ("scan1_s", "scan2_s") if k in x) or "-"
            stage_rows.append(f"| {label} | {p['min']:.2f} | {split} | {spark_cols(x)} |")
    detects = [(f"detect.{kind}.mlflow_{mode}", f"detect {kind}, MLflow {mode}")
               for mode in ("off", "sqlite") for kind in ("cold", "incremental")]
    if sl:
        detects.append(("detect.cold.slices", f"detect cold, {len(sl['columns'])} slices, MLflow {sl['mode']}"))
    for name, label in detects:
        p = ph.get(name)
        if not p or not p["extra"]:
            continue
        i = p["seconds"].index(p["min"])
        cost, wall = p["extra"][i], p["min"]
        stages = {k[len("stage."):-2]: v for k, v in cost.items() if k.startswith("stage.")}
        report_s = cost.get("report_s", 0.0)
        rest = wall - sum(stages.values()) - report_s
        parts = ", ".join(f"{k} {v:.2f}" for k, v in stages.items() if v >= 0.005)
        stage_rows.append(
            f"| {label} | {wall:.2f} | {parts}, report {report_s:.2f}, rest {rest:.2f} | "
            f"{spark_cols(cost)} |"
        )
    if stage_rows:
        lines += ["", "Where the time goes (fastest repeat; detect's CostMeter stages in seconds, `report` = "
                  "`report.write_report` (HTML + PNGs), `rest` = the run's remaining wall time (tracking, "
                  "tags, artifacts, setup); Spark input rows/bytes, task time and task CPU time of the run's jobs):", "",
                  "| run | wall s | stages | rows read | MiB read | task s | CPU s |", "|---|---:|---|---:|---:|---:|---:|",
                  *stage_rows]
    names = ["pass.count_windows", "pass.stack", "pass.arrow_noop", "pass.projection_noop"]
    passes = [(n, ph[n]) for n in names if n in ph]
    if passes:
        ident = rec.get("fix_identical") or {}
        lines += ["", f"Production pass alone, 30 days ({rec['args']['profile_repeat']} run each; floor {fp[0]:.2f} s); "
                  "`stack` = the previous pass (one entry per row and column through a hash aggregate), "
                  "histograms checked identical:", "",
                  "| pass | s | vs floor | identical |", "|---|---:|---:|---|"]
        for n, p in passes:
            same = ident.get(n[len("pass."):], "")
            lines.append(f"| `{n[5:]}` | {p['min']:.2f} | {_ratio(p['min'], fp[0])} | {same} |")
    prof = rec.get("jfr") or {}
    for label, r in prof.items():
        if "top" not in r:
            continue
        top = "; ".join(f"{x['frame'].split('.')[-2].split('$')[0]}.{x['frame'].split('.')[-1]} [{x['mode']}] "
                        f"{x['share']:.0%}" for x in r["top"][:5])
        lines.append(f"\nJFR `{label}`: {r['samples']} samples, {r['interpreted_share']:.0%} in interpreted code; top: {top}.")

    acc = rec.get("accuracy")
    if acc:
        lines += ["", "Accuracy vs the collected data (cold detect, every day): max |PSI − exact| with exact decile edges "
                  "(numpy's rule) and with sparkdrift's binning rule on exact quantiles; KS: ks_2samp's statistic inside "
                  f"sparkdrift's [lower, upper] (bound width max {acc['ks_bound_width_max'] or 0:.4f}, "
                  f"mean {acc['ks_bound_width_mean'] or 0:.4f}):", "",
                  "| column | kind | days | mean exact PSI | max Δ PSI (deciles) | max Δ PSI (same rule) | KS inside |",
                  "|---|---|---|---:|---:|---:|---|"]
        for name, r in acc["columns"].items():
            for part in ("stable", "drifted"):
                x = r.get(part)
                if not x:
                    continue
                same = x["max_abs_psi_diff_same_rule"]
                ks = f"{x['ks_inside']}/{x['ks_total']}" if x["ks_total"] else "-"
                if x["ks_total"] and x["ks_inside"] < x["ks_total"]:
                    ks += f" (max excess {x['ks_max_excess']:.2g})"
                lines.append(
                    f"| {name} | {r['kind']} | {part} ({x['days']}) | {x['psi_exact_mean']:.4f} | "
                    f"{x['max_abs_psi_diff']:.2e} | {'-' if same is None else f'{same:.2e}'} | {ks} |"
                )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

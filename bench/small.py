"""Small monitors: wall time from process start of each job, as a scheduler runs them.

    python bench/small.py                      # ~6 min on 2 idle cores

A monitor that runs every hour pays its fixed cost every hour, so here each
job is a new ``python -m sparkdrift ...`` process, timed from its start to its
exit (JVM, imports, Delta, MLflow and report included). One repeat, in order,
on a fresh output location and a fresh SQLite MLflow store:

1. ``floor``: a process that starts the same local Spark session and counts
   the production table (the least any Spark job on it can take);
2. ``baseline`` of a 50k-row table (25 features by default);
3. ``first detect``: 30 daily windows, 50k rows in all;
4. one day of 50k rows is appended (untimed), then ``new window``: the detect
   that checks it, as the next scheduled run would;
5. ``no-op``: the detect again, with nothing new to do.

Appends a section to ``bench/RESULTS.md`` (min / median / max of the repeats).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import DAYS, Generated, append_day, generate  # noqa: E402
from bench.run import LATENESS, machine_info, monitor_dict  # noqa: E402
from bench.session import bench_session  # noqa: E402

BENCH = Path(__file__).resolve().parent
TARGETS = {"no-op": 10.0, "new window": 20.0, "baseline": 20.0}
STEPS = ("floor", "baseline", "first detect", "new window", "no-op")

FLOOR = """
import sys
from sparkdrift.spark.session import get_session
get_session("floor").read.format("delta").load(sys.argv[1]).count()
"""


def timed(cmd: list[str], log: Path) -> float:
    """Wall seconds of one process from start to exit; its output goes to ``log``; a failure stops the bench."""
    t = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - t
    if code != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... exited {code}: see {log}")
    return seconds


def one_repeat(spark, g: Generated, work: Path, log: Path) -> dict[str, float]:
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, g.production).restoreToVersion(0)  # the 30 generated days, as first written
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config = work / "monitor.yaml"
    config.write_text(yaml.safe_dump(monitor_dict(g, work, "sqlite", f"sqlite:///{work}/mlflow.db")))
    t0 = datetime.fromisoformat(g.t0)
    first_as_of = (t0 + timedelta(days=DAYS) + LATENESS).isoformat()
    next_as_of = (t0 + timedelta(days=DAYS + 1) + LATENESS).isoformat()
    py = [sys.executable, "-m", "sparkdrift"]
    out = {"floor": timed([sys.executable, "-c", FLOOR, g.production], log)}
    out["baseline"] = timed([*py, "baseline", "--config", str(config)], log)
    out["first detect"] = timed([*py, "detect", "--config", str(config), "--as-of", first_as_of], log)
    append_day(spark, g, rows=g.baseline_rows)
    out["new window"] = timed([*py, "detect", "--config", str(config), "--as-of", next_as_of], log)
    out["no-op"] = timed([*py, "detect", "--config", str(config), "--as-of", next_as_of], log)
    return out


def render(rows: int, features: int, runs: list[dict[str, float]], load: tuple, info: dict, note: str) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {now} — small monitor: {rows:,}-row baseline, {features} features, wall from process start",
        "",
        f"{info['nproc']} cores, {info['memory_gib']} GiB; load average {load[0]:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end; {len(runs)} repeats, each a fresh output location and MLflow store."
        + (f" {note}" if note else ""),
        "",
        "| step | min s | median s | max s | target |",
        "|---|---:|---:|---:|---|",
    ]
    for step in STEPS:
        values = [r[step] for r in runs]
        target = TARGETS.get(step)
        verdict = "" if target is None else f"≤ {target:g} s: {'met' if statistics.median(values) <= target else 'missed'}"
        lines.append(f"| {step} | {min(values):.1f} | {statistics.median(values):.1f} | {max(values):.1f} | {verdict} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=50_000, help="baseline rows, and rows of the new window")
    ap.add_argument("--features", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work-dir", default="/tmp/sparkdrift-small")
    ap.add_argument("--results", default=str(BENCH / "RESULTS.md"), help="markdown file to append to ('' = none)")
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)

    load = os.getloadavg()
    work = Path(args.work_dir)
    data = work / "data"
    spark = bench_session("sparkdrift-bench-small", driver_memory="2g")  # setup only: generation and the appends
    g = Generated.load(data) if (data / "meta.json").exists() else None
    if g is None or (g.baseline_rows, g.features) != (args.rows, args.features):
        shutil.rmtree(data, ignore_errors=True)
        g = generate(spark, data, rows=args.rows, features=args.features)
    log = work / "jobs.log"
    log.unlink(missing_ok=True)
    runs = []
    for r in range(args.repeat):
        runs.append(one_repeat(spark, g, work / "run", log))
        print(f"repeat {r + 1}/{args.repeat}: " + ", ".join(f"{k} {v:.1f} s" for k, v in runs[-1].items()), flush=True)
    spark.stop()
    section = render(args.rows, args.features, runs, load, machine_info(), args.note)
    print(section)
    if args.results:
        with open(args.results, "a") as fh:
            fh.write("\n" + section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

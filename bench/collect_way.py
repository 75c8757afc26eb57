"""The way teams check drift today: collect the columns to the driver, then numpy/scipy per feature and day.

Run by ``bench/run.py`` in a subprocess of its own, so that its driver memory
(this Python process + its JVM) is measured apart from sparkdrift's.

What it does, per repeat (timed):

1. collect: ``df.select(cols)._collect_as_arrow()`` of the baseline table and of
   the production rows of the 30 days (Arrow record batches, not ``collect()``
   of Rows and not ``toPandas``: the leanest collect pyspark 3.5 offers;
   Row objects would take ~5x the memory);
2. per numeric column (features and the score): the finite baseline values,
   sorted once; decile edges ``np.unique(np.quantile(b, [.1, ..., .9]))``
   (numpy's default linear interpolation); then for every day: PSI on those
   bins (``[e_i, e_i+1)``, open ends) and ``scipy.stats.ks_2samp(b, w)``;
3. per categorical column: the baseline's top-K categories (count desc, value
   asc) + ``other`` + ``unseen`` slots, and per day PSI on those slots
   (``pyarrow.compute.index_in`` + ``np.bincount``; pandas ``value_counts``
   per day would be slower).

PSI here is ``sum (p - q) ln(p / q)``, zero proportions replaced by epsilon
(the rule sparkdrift documents; with deciles it never triggers).

Not timed, first repeat only (for the accuracy section): the PSI with
sparkdrift's own binning rule (`sparkdrift.core.binning.make_edges`/`coarse_starts`)
on *exact* inverted-CDF quantiles of the fine grid, which isolates the error of
``percentile_approx`` from the difference between the two binning rules.
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import Generated  # noqa: E402
from bench.session import bench_session, jvm_pid, peak_rss_mib, python_maxrss_mib, reset_peak, rss_mib  # noqa: E402

DAY_US = 86_400_000_000


def psi_np(a: np.ndarray, b: np.ndarray, epsilon: float) -> float:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    keep = (a > 0) | (b > 0)
    p, q = a[keep] / a.sum(), b[keep] / b.sum()
    if (p == 0).any():
        p = np.where(p == 0, epsilon, p)
        p = p / p.sum()
    if (q == 0).any():
        q = np.where(q == 0, epsilon, q)
        q = q / q.sum()
    return float(np.sum((p - q) * np.log(p / q)))


def estimate_bytes(g: Generated) -> dict[str, int]:
    """Driver bytes the collect way needs: Arrow tables + numpy working copies (an estimate, before collecting)."""
    layout = g.layout
    per_row = 0
    for name in [*layout.numeric, *layout.categorical, layout.prediction]:
        t = "double" if name == layout.prediction else layout.spark_type(name)
        per_row += {"double": 8, "int": 4, "string": 4 + 5}[t]
    per_row += 1 + (len(layout.numeric) + len(layout.categorical) + 1) // 8  # validity bitmaps
    arrow_base = g.baseline_rows * per_row
    arrow_prod = g.rows * (per_row + 8)  # + ts
    # working copies: day + order (int64) per production row; one baseline column (2 copies,
    # raw + sorted) and one production column (raw + reordered) at a time; ks_2samp's
    # concatenation and search results (3 x 8 bytes x (n + m))
    working = 16 * g.rows + 2 * 8 * g.baseline_rows + 2 * 8 * g.rows + 24 * (g.rows // g.days + g.baseline_rows)
    return {"arrow_baseline": arrow_base, "arrow_production": arrow_prod, "working": working,
            "total": arrow_base + arrow_prod + working}


def _numeric(col) -> np.ndarray:
    """A column as float64, nulls as NaN."""
    return np.asarray(col.to_numpy(), dtype=np.float64)


def run_once(spark, g: Generated, *, top_k: int, epsilon: float, t0: datetime, days: int) -> tuple[dict, dict, dict]:
    """One timed pass; returns (timings, per-column per-day results, kept arrays for the accuracy extras)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyspark.sql import functions as F
    from scipy.stats import ks_2samp

    layout = g.layout
    numeric = [*layout.numeric, layout.prediction]
    cols = [*layout.numeric, *layout.categorical, layout.prediction]
    start = datetime.fromisoformat(g.t0) if t0 is None else t0
    end = start + timedelta(days=days)

    t_start = time.perf_counter()
    base_df = spark.read.format("delta").load(g.baseline).select(*cols)
    base = pa.Table.from_batches(base_df._collect_as_arrow())
    prod_df = (
        spark.read.format("delta").load(g.production)
        .filter((F.col("ts") >= F.lit(start.replace(tzinfo=None))) & (F.col("ts") < F.lit(end.replace(tzinfo=None))))
        .select("ts", *cols)
    )
    prod = pa.Table.from_batches(prod_df._collect_as_arrow())
    t_collect = time.perf_counter()
    arrow_bytes = {"baseline": int(base.nbytes), "production": int(prod.nbytes)}

    ts = prod.column("ts").to_numpy().astype("datetime64[us]").astype(np.int64)
    day = (ts - int(start.timestamp()) * 1_000_000) // DAY_US
    del ts
    order = np.argsort(day, kind="stable")
    bounds = np.searchsorted(day[order], np.arange(days + 1))
    del day

    out: dict[str, dict[int, dict]] = {}
    for name in numeric:
        b = _numeric(base.column(name))
        b = np.sort(b[~np.isnan(b)])
        edges = np.unique(np.quantile(b, np.arange(1, 10) / 10.0))
        b_counts = np.bincount(np.searchsorted(edges, b, side="right"), minlength=edges.size + 1)
        p = _numeric(prod.column(name))[order]
        res = {}
        for d in range(days):
            w = p[bounds[d]:bounds[d + 1]]
            w = w[~np.isnan(w)]
            if w.size == 0:
                continue
            w_counts = np.bincount(np.searchsorted(edges, w, side="right"), minlength=edges.size + 1)
            ks = ks_2samp(b, w)
            res[d] = {"psi": psi_np(b_counts, w_counts, epsilon), "ks": float(ks.statistic), "ks_p": float(ks.pvalue)}
        out[name] = res
        del b, p
    for name in layout.categorical:
        vc = pc.value_counts(base.column(name).drop_null())
        values = vc.field("values").to_pylist()
        counts = vc.field("counts").to_numpy()
        ranked = sorted(zip(values, counts), key=lambda kv: (-kv[1], kv[0]))
        known = pa.array([v for v, _ in ranked])
        slot_of = np.array([min(i, top_k) for i in range(len(ranked))] + [top_k + 1])  # index -> slot; last: unseen
        b_counts = np.bincount(slot_of[:-1], weights=[c for _, c in ranked], minlength=top_k + 2)
        col = prod.column(name)
        idx = pc.index_in(col, value_set=known)
        idx = pc.if_else(pc.and_(pc.is_null(idx), pc.is_valid(col)), len(ranked), idx)  # unseen
        codes = idx.to_numpy(zero_copy_only=False)  # float, NaN for nulls
        codes = codes[order]
        res = {}
        for d in range(days):
            w = codes[bounds[d]:bounds[d + 1]]
            w = w[~np.isnan(w)].astype(np.int64)
            if w.size == 0:
                continue
            w_counts = np.bincount(slot_of[w], minlength=top_k + 2)
            res[d] = {"psi": psi_np(b_counts, w_counts, epsilon)}
        out[name] = res
        del codes
    t_done = time.perf_counter()
    timings = {"collect_s": t_collect - t_start, "compute_s": t_done - t_collect, "total_s": t_done - t_start}
    return timings, out, {"base": base, "prod": prod, "order": order, "bounds": bounds, "arrow_bytes": arrow_bytes}


def rule_psi(kept: dict, g: Generated, *, fine_bins: int, coarse_bins: int, epsilon: float, days: int) -> dict:
    """PSI with sparkdrift's binning rule on exact quantiles (not timed): isolates percentile_approx's error."""
    from sparkdrift.core.binning import coarse_starts, make_edges, quantile_probabilities

    probs = quantile_probabilities(fine_bins)
    out: dict[str, dict[int, float]] = {}
    for name in [*g.layout.numeric, g.layout.prediction]:
        b = _numeric(kept["base"].column(name))
        b = np.sort(b[~np.isnan(b)])
        q = np.quantile(b, probs, method="inverted_cdf")
        edges = np.asarray(make_edges(q, float(b[0]), float(b[-1])))
        starts = np.asarray(coarse_starts(tuple(edges), coarse_bins, q), dtype=np.intp)

        def coarse(v: np.ndarray) -> np.ndarray:
            under = int((v < edges[0]).sum())
            over = int((v > edges[-1]).sum())
            inside = v[(v >= edges[0]) & (v <= edges[-1])]
            fine = np.bincount(np.searchsorted(edges, inside, side="right") - 1, minlength=edges.size)
            return np.concatenate([[under], np.add.reduceat(fine, starts), [over]])

        bc = coarse(b)
        p = _numeric(kept["prod"].column(name))[kept["order"]]
        res = {}
        for d in range(days):
            w = p[kept["bounds"][d]:kept["bounds"][d + 1]]
            w = w[~np.isnan(w)]
            if w.size:
                res[d] = psi_np(bc, coarse(w), epsilon)
        out[name] = res
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder written by bench/generate.py")
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--epsilon", type=float, default=1e-4)
    ap.add_argument("--fine-bins", type=int, default=1000)
    ap.add_argument("--coarse-bins", type=int, default=10)
    ap.add_argument("--driver-memory", default="8g")
    ap.add_argument("--no-accuracy", action="store_true")
    args = ap.parse_args(argv)

    g = Generated.load(args.data)
    spark = bench_session("sparkdrift-bench-collect", driver_memory=args.driver_memory)
    jpid = jvm_pid(spark)
    start = datetime.fromisoformat(g.t0)
    # session start is excluded: peaks count from here (resettable on Linux >= 4.0)
    idle = {"python_rss_mib": rss_mib(), "jvm_rss_mib": rss_mib(jpid)}
    # warm-up (untimed), as for sparkdrift: Delta log, codegen and JIT of the reads
    for table in (g.baseline, g.production):
        spark.read.format("delta").load(table).limit(1000)._collect_as_arrow()
    resettable = reset_peak() and reset_peak(jpid)
    runs, results, accuracy, arrow_bytes = [], None, None, None
    for r in range(args.repeat):
        timings, res, kept = run_once(spark, g, top_k=args.top_k, epsilon=args.epsilon, t0=start, days=g.days)
        runs.append(timings)
        print(json.dumps({"repeat": r, **{k: round(v, 2) for k, v in timings.items()}}), flush=True)
        if results is None:
            results = res
            arrow_bytes = kept["arrow_bytes"]
            if not args.no_accuracy:
                accuracy = rule_psi(kept, g, fine_bins=args.fine_bins, coarse_bins=args.coarse_bins,
                                    epsilon=args.epsilon, days=g.days)
        del kept, res
        gc.collect()
    out = {
        "method": "df.select(cols)._collect_as_arrow() -> numpy; scipy.stats.ks_2samp + numpy decile PSI per column and day",
        "runs": runs,
        "rss": {
            "python_peak_mib": peak_rss_mib() if resettable else python_maxrss_mib(),
            "python_maxrss_mib": python_maxrss_mib(),
            "jvm_peak_mib": peak_rss_mib(jpid),
            "idle": idle,
            "peaks_reset_after_session_start": resettable,
        },
        "arrow_bytes": arrow_bytes,
        "estimate": estimate_bytes(g),
        "results": results,
        "rule_psi": accuracy,
    }
    Path(args.out).write_text(json.dumps(out))
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

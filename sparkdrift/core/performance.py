"""Model performance from aggregates: the same mergeable Histogram, keyed by (label, prediction).

The keys are computed in Spark (`spark.performance.key_and_value`); this module
turns the counts into metrics, their noise and their verdicts.

One extra slot in the production pass (no extra scan when labels live in the
production table) counts, per window:

* ``score`` predictions (binary, probability in [0, 1]): key = label * G + bin,
  with G = 1000 equal-width score bins. Confusion counts at the configured
  threshold are exact (the threshold is rounded to the grid); ROC AUC counts
  pairs in different bins exactly and the pairs sharing a bin as ties, so the
  exact AUC lies within ``[auc_lower, auc_upper]`` = estimate -+ half the
  share of same-bin pairs.
* ``class`` predictions: key = 2 * (label is positive) + (prediction is positive).
* ``regression``: key 0, value = |error| (sum -> MAE) with sum of squares (-> RMSE).
"""
from __future__ import annotations

import math
import numpy as np

from sparkdrift.core.profile import Histogram

SCORE_BINS = 1000
SLOT = "__performance__"


def slot_size(kind: str) -> int:
    return {"score": 2 * SCORE_BINS, "class": 4, "regression": 1}[kind]


def _safe(num: float, den: float) -> float:
    return num / den if den else math.nan


def metrics(kind: str, h: Histogram, threshold: float = 0.5) -> dict[str, tuple[float, float | None, float | None]]:
    """name -> (value, lower, upper) from one performance histogram; NaN when undefined."""
    if kind == "regression":
        n = int(h.counts.sum())
        return {
            "mae": (_safe(h.value_sum, n), None, None),
            "rmse": (math.sqrt(h.value_sum_sq / n) if n else math.nan, None, None),
        }
    tn, fp, fn, tp = _confusion(kind, h, threshold)
    n = tp + tn + fp + fn
    precision = _safe(tp, tp + fp)
    recall = _safe(tp, tp + fn)
    f1 = _safe(2 * precision * recall, precision + recall) if not math.isnan(precision + recall) else math.nan
    out = {
        "accuracy": (_safe(tp + tn, n), None, None),
        "precision": (precision, None, None),
        "recall": (recall, None, None),
        "f1": (f1, None, None),
    }
    if kind == "score":
        out["auc"] = auc_with_bounds(h.counts[:SCORE_BINS].astype(float), h.counts[SCORE_BINS:].astype(float))
    return out


def _confusion(kind: str, h: Histogram, threshold: float) -> tuple[int, int, int, int]:
    """(tn, fp, fn, tp) of a class or score performance histogram (scores at or above ``threshold`` are positive)."""
    if kind == "class":
        tn, fp, fn, tp = (int(c) for c in h.counts)
        return tn, fp, fn, tp
    neg, pos = h.counts[:SCORE_BINS], h.counts[SCORE_BINS:]
    k = int(round(threshold * SCORE_BINS))
    return int(neg[:k].sum()), int(neg[k:].sum()), int(pos[:k].sum()), int(pos[k:].sum())


def auc_with_bounds(neg: np.ndarray, pos: np.ndarray) -> tuple[float, float | None, float | None]:
    """ROC AUC from per-class score histograms: pairs in one bin are the only unknowns."""
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos == 0 or n_neg == 0:
        return (math.nan, None, None)
    neg_below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
    wins = float((pos * neg_below).sum())
    same = float((pos * neg).sum())
    pairs = float(n_pos * n_neg)
    return ((wins + 0.5 * same) / pairs, wins / pairs, (wins + same) / pairs)


_HIGHER_IS_BETTER = {"accuracy", "precision", "recall", "f1", "auc"}


def sample_sizes(kind: str, h: Histogram, threshold: float = 0.5) -> dict[str, tuple[int, ...]]:
    """The counts each metric is a share of (its sampling noise): rows, predicted and actual positives, classes."""
    if kind == "regression":
        return {}
    tn, fp, fn, tp = _confusion(kind, h, threshold)
    return {
        "accuracy": (tp + tn + fp + fn,),
        "precision": (tp + fp,),
        "recall": (tp + fn,),
        "f1": (min(tp + fp, tp + fn),),
        "auc": (tp + fn, tn + fp),
    }


def metric_noise(name: str, at: float, sizes: tuple[int, ...]) -> float:
    """Standard error of a share-like metric at value ``at`` (binomial; AUC: Hanley & McNeil 1982)."""
    if name == "auc":
        n1, n2 = sizes
        if n1 == 0 or n2 == 0:
            return math.nan
        q1, q2 = at / (2 - at), 2 * at * at / (1 + at)
        var = (at * (1 - at) + (n1 - 1) * (q1 - at * at) + (n2 - 1) * (q2 - at * at)) / (n1 * n2)
        return math.sqrt(max(var, 0.0))
    (n,) = sizes
    return math.sqrt(at * (1 - at) / n) if n else math.nan


def baseline_metrics(cfg, baseline_hist: Histogram | None) -> dict[str, float]:
    """The model's own performance on the baseline (labels in the baseline table): what windows are held to."""
    if baseline_hist is None or not baseline_hist.counts.sum() or not cfg.prediction.columns:
        return {}
    return {name: v for name, (v, _, _) in metrics(cfg.prediction.kind, baseline_hist, cfg.label.threshold).items()}


def performance_results(
    cfg, baseline_id: str, windows, baseline_hist: Histogram | None, alpha: float | None = None
) -> list:
    """DriftResults (signal ``performance``) per window: absolute floors and share of baseline.

    A metric breaches when it is below its absolute floor (accuracy, AUC from
    the playbook) or below ``performance.relative`` x the baseline's value
    (for errors, MAE/RMSE above baseline / relative). With ``alpha`` (noise
    floors on) it must also be below its noise floor, threshold - z(1 - alpha)
    x the metric's standard error at the threshold on this window's counts:
    a 300-label window's precision moves by chance more than a 30 000-label one's.
    """
    from scipy.stats import norm

    from sparkdrift.core.results import DriftResult

    kind, column = cfg.prediction.kind, cfg.prediction.columns[0]
    floors = {"accuracy": cfg.performance.accuracy, "auc": cfg.performance.auc}
    base = baseline_metrics(cfg, baseline_hist)
    out = []
    for w in windows:
        h = w.histograms.get(SLOT)
        if h is None or int(h.counts.sum()) == 0:
            continue
        sizes = sample_sizes(kind, h, cfg.label.threshold)
        for name, (value, lower, upper) in metrics(kind, h, cfg.label.threshold).items():
            ref = base.get(name, math.nan)
            rel = cfg.performance.relative
            floor = None
            if name in _HIGHER_IS_BETTER:
                limits = [v for v in (floors.get(name), ref * rel if not math.isnan(ref) else None) if v is not None]
                threshold = max(limits) if limits else None
                drifted = threshold is not None and not math.isnan(value) and value < threshold
                if alpha is not None and threshold is not None and name in sizes:
                    noise = metric_noise(name, min(max(threshold, 0.0), 1.0), sizes[name])
                    floor = threshold - float(norm.isf(alpha)) * noise if math.isfinite(noise) else None
                    drifted = drifted and floor is not None and value < floor
            else:
                threshold = ref / rel if not math.isnan(ref) else None
                drifted = threshold is not None and not math.isnan(value) and value > threshold
            out.append(DriftResult(
                monitor=cfg.monitor, baseline_id=baseline_id, window_start=w.window_start, window_end=w.window_end,
                feature=column, statistic=name, value=value, threshold=threshold, drifted=drifted,
                signal="performance", kind="numeric", lower=lower, upper=upper,
                reference_rows=int(baseline_hist.counts.sum()) if baseline_hist is not None else 0,
                window_rows=int(h.counts.sum()),
                reason=None if not math.isnan(value) else "undefined on this window (e.g. one class only)",
                noise_floor=floor,
                excess=floor - value if floor is not None and not math.isnan(value) else None,
            ))
    return out

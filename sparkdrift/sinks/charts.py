"""The report's charts (matplotlib, Agg, no display): a statistic's trend over windows, and a
baseline-vs-window histogram overlay. Each returns PNG bytes."""
from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from sparkdrift.core.profile import FeatureProfile, Histogram
from sparkdrift.core.results import DriftResult
from sparkdrift.core.windows import Windows, as_utc, naive_utc
from sparkdrift.sinks.format import as_float, num

_BASELINE_COLOR = "#5b7fb0"
_WINDOW_COLOR = "#e8743b"
_VALUE_COLOR = "#34495e"
_DRIFT_COLOR = "#d62728"
_THRESHOLD_COLOR = "#c0392b"


@dataclass
class Chart:
    section: str  # "trend" or "overlay"
    group: str  # feature the chart belongs to
    file: str  # path relative to the report folder
    title: str
    caption: str
    png: bytes


def _figure(width: float, height: float, constrained: bool = True):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained" if constrained else None)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _date_axis(ax, x: list[datetime], width: timedelta, windows: Windows | None) -> None:
    """Ticks at the windows (few) or auto (many); day labels for daily+ windows, else time too.

    Calendar windows are ticked at every k-th window start and named by
    `Windows.label` (``2026-01``, ``2026-Q1``): date ticks would fall mid-month.
    """
    import matplotlib.dates as mdates
    from matplotlib.ticker import FixedFormatter

    if windows is not None and windows.months:
        ticks = x[:: (len(x) + 6) // 7]  # at most 7
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(FixedFormatter([windows.label(t) for t in ticks]))
    else:
        daily = width >= timedelta(days=1) and all(t.time() == datetime.min.time() for t in x)
        if len(x) <= 7:
            ax.set_xticks(x)
        else:
            ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=7))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d" if daily else "%b %d\n%H:%M"))
    ax.set_xlim(x[0] - width / 2, x[-1] + width / 2)


def trend_png(rows: list[DriftResult], title: str, windows: Windows | None = None) -> bytes:
    rows = sorted(rows, key=lambda r: as_utc(r.window_start))
    x = [naive_utc(r.window_start) for r in rows]
    y = np.array([as_float(r.value) for r in rows])
    thr = np.array([as_float(r.threshold) for r in rows])
    drifted = np.array([bool(r.drifted) for r in rows])
    width = min((naive_utc(r.window_end) - naive_utc(r.window_start) for r in rows), default=timedelta(days=1))
    if width <= timedelta(0):
        width = timedelta(days=1)

    # fixed margins instead of a layout engine: these charts are many and alike
    fig = _figure(4.0, 2.6, constrained=False)
    fig.subplots_adjust(left=0.16, right=0.96, top=0.89, bottom=0.28)
    ax = fig.add_subplot()
    ax.plot(x, y, color=_VALUE_COLOR, marker="o", markersize=3.5, linewidth=1.4, label="value")
    finite_thr = thr[np.isfinite(thr)]
    if finite_thr.size and np.allclose(finite_thr, finite_thr[0]):
        ax.axhline(finite_thr[0], color=_THRESHOLD_COLOR, linestyle="--", linewidth=1.1, label="threshold")
    elif finite_thr.size:
        ax.plot(x, thr, color=_THRESHOLD_COLOR, linestyle="--", linewidth=1.1, drawstyle="steps-mid",
                label="threshold")
    if drifted.any():
        ax.scatter([xi for xi, d in zip(x, drifted) if d], y[drifted], color=_DRIFT_COLOR, s=40, zorder=3,
                   label="drifted", edgecolors="white", linewidths=0.6)
    if np.isfinite(y[-1]):  # the latest value, written next to its point
        ax.annotate(num(float(y[-1]), 3), (x[-1], y[-1]), xytext=(-5, 6), textcoords="offset points",
                    ha="right", fontsize=7, color=_DRIFT_COLOR if drifted[-1] else _VALUE_COLOR)
    _date_axis(ax, x, width, windows)
    finite = np.concatenate([y[np.isfinite(y)], finite_thr])
    if finite.size:
        lo, hi = float(finite.min()), float(finite.max())
        pad = (hi - lo) * 0.15 or max(abs(hi) * 0.1, 0.01)
        bottom = 0.0 if 0 <= lo < 0.35 * hi else lo - pad
        ax.set_ylim(bottom, hi + pad)
        for xi in (xi for xi, v in zip(x, y) if not np.isfinite(v)):  # undefined: say so
            ax.annotate("n/a", (xi, bottom), xytext=(0, 3), textcoords="offset points", ha="center",
                        fontsize=7, color="#888888")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("window start (UTC)", fontsize=8)
    ax.set_ylabel(rows[0].statistic, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.25, linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.legend(loc="lower center", ncol=3, fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.0))
    return _png(fig)


def _coarse_labels(profile: FeatureProfile) -> list[str]:
    """Value ranges of [underflow, coarse bins..., overflow], e.g. '< 0', '= 0', '(0, 2)', '[2, 5]', '> 5'.

    An atom bin ``[v, nextafter(v))`` (a repeated baseline value) reads '= v',
    and the bin just above it '(v, ...'.
    """
    edges = np.asarray(profile.edges, dtype=float)
    starts = list(profile.coarse)
    labels = [f"< {num(edges[0])}"]
    for j, s in enumerate(starts):
        lo = edges[s]
        last = j + 1 == len(starts)
        hi = edges[-1] if last else edges[starts[j + 1]]
        if (last and s == len(edges) - 1) or (not last and hi <= np.nextafter(lo, np.inf)):
            labels.append(f"= {num(lo)}")
            continue
        left = f"({num(edges[s - 1])}" if s > 0 and lo <= np.nextafter(edges[s - 1], np.inf) else f"[{num(lo)}"
        labels.append(f"{left}, {num(hi)}{']' if last else ')'}")
    labels.append(f"> {num(edges[-1])}")
    return labels


def _share(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts, dtype=float)


def _short(text: str, n: int = 28) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def overlay_png(profile: FeatureProfile, ref: Histogram, win: Histogram, title: str, subtitle: str) -> bytes:
    if profile.kind == "numeric":
        labels = _coarse_labels(profile)
        p_ref = _share(profile.coarse_counts(ref).astype(float))
        p_win = _share(profile.coarse_counts(win).astype(float))
        fig = _figure(max(6.0, 0.55 * len(labels) + 1.5), 3.6)
        ax = fig.add_subplot()
        pos = np.arange(len(labels))
        w = 0.4
        ax.bar(pos - w / 2, p_ref, w, color=_BASELINE_COLOR, label="baseline")
        ax.bar(pos + w / 2, p_win, w, color=_WINDOW_COLOR, label="window")
        ax.set_xticks(pos, labels, rotation=35, ha="right", fontsize=7)
        ax.set_xlabel(f"{profile.name} (PSI bins)", fontsize=8)
        ax.set_ylabel("share of rows", fontsize=8)
        ax.yaxis.set_major_formatter(_percent_formatter())
        ax.grid(True, axis="y", alpha=0.25, linewidth=0.6)
    else:
        labels = [_short(c) for c in profile.categories] + ["(other)", "(unseen)"]
        p_ref = _share(np.append(ref.counts, ref.unseen).astype(float))
        p_win = _share(np.append(win.counts, win.unseen).astype(float))
        fig = _figure(6.5, max(2.6, 0.26 * len(labels) + 1.2))
        ax = fig.add_subplot()
        pos = np.arange(len(labels))
        h = 0.4
        ax.barh(pos - h / 2, p_ref, h, color=_BASELINE_COLOR, label="baseline")
        ax.barh(pos + h / 2, p_win, h, color=_WINDOW_COLOR, label="window")
        ax.set_yticks(pos, labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("share of rows", fontsize=8)
        ax.xaxis.set_major_formatter(_percent_formatter())
        ax.grid(True, axis="x", alpha=0.25, linewidth=0.6)
    ax.tick_params(labelsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize=7, frameon=False)
    ax.set_title(f"{title}\n{subtitle}" if subtitle else title, fontsize=9.5)
    return _png(fig)


def _percent_formatter():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax=1.0, decimals=0)

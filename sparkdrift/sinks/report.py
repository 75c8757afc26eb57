"""The drift report: a JSON file for machines, a self-contained HTML page and PNGs for people.

Written into one folder, which the jobs log as MLflow run artifacts (the
MLflow UI previews the HTML and each PNG) and optionally copy to
``output.report_dir``::

    drift_report.json    every DriftResult row, the policy decisions, the cost
    drift_report.html    summary, latest window, statistics over time, overlays, cost
    plots/*.png          each chart of the HTML, also as a file

The HTML has no external CSS, JS, fonts or links: charts are embedded as
base64 PNG. Plain values in, no Spark; numpy, matplotlib (Agg, no pyplot
state) and the standard library only.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import re
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from sparkdrift.core.config import SEVERITIES
from sparkdrift.core.planning import ActionRecord, shown_status
from sparkdrift.core.profile import FeatureProfile, Histogram
from sparkdrift.core.results import DriftResult
from sparkdrift.core.slices import SliceFinding
from sparkdrift.core.windows import Windows, as_utc, naive_utc
from sparkdrift.sinks.charts import Chart, overlay_png, trend_png
from sparkdrift.sinks.format import as_float, num

__all__ = ["write_report", "read_report_results", "SEVERITY_ORDER"]

JSON_NAME = "drift_report.json"
HTML_NAME = "drift_report.html"
PLOTS_DIR = "plots"
SEVERITY_ORDER = tuple(reversed(SEVERITIES))  # most severe first
MAX_SUMMARY_ROWS = 60  # most severe first; the rest are counted, and all are in the JSON

_SIGNAL_LABEL = {"feature": "drift", "prediction": "prediction drift", "quality": "quality", "performance": "performance"}


# --------------------------------------------------------------------------- small helpers


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _window_text(start: datetime, end: datetime | None = None, windows: Windows | None = None) -> str:
    """'2026-01-14' for a day, '2026-01-05–2026-01-11' for a week, '2026-01-14 06:00–07:00' for an hour,
    '2026-01' / '2026-Q1' for calendar months and quarters (as the charts' axis names them)."""
    if windows is not None and windows.months:
        return windows.label(start)
    s = naive_utc(start)
    midnight = s.time() == datetime.min.time()
    if end is None:
        return s.strftime("%Y-%m-%d") if midnight else s.strftime("%Y-%m-%d %H:%M")
    e = naive_utc(end)
    days, rest = divmod((e - s).total_seconds(), 86400)
    if midnight and rest == 0 and days >= 1:
        last = e - timedelta(days=1)
        return s.strftime("%Y-%m-%d") if days == 1 else f"{s:%Y-%m-%d}–{last:%Y-%m-%d}"
    if e - s <= timedelta(days=1) and (e.date() == s.date() or e.time() == datetime.min.time()):
        return f"{s:%Y-%m-%d %H:%M}–{e:%H:%M}"
    return f"{s:%Y-%m-%d %H:%M}–{e:%Y-%m-%d %H:%M}"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "plot"


def _plain(obj: Any) -> Any:
    """JSON-ready: datetimes as ISO text, NaN/inf as null, numpy as Python, tuples as lists."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=str) if isinstance(obj, (set, frozenset)) else obj
        return [_plain(v) for v in items]
    if isinstance(obj, np.ndarray):
        return [_plain(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj))
    if isinstance(obj, Histogram):
        return obj.to_dict()
    return obj


def _severity_rank(severity: Any) -> int:
    """Most severe first (0), an unknown value last: the report's sort order."""
    s = str(severity).lower() if severity is not None else "none"
    return SEVERITY_ORDER.index(s) if s in SEVERITY_ORDER else len(SEVERITY_ORDER)


def _score(x: Any) -> str:
    f = as_float(x)
    return f"{f:.3f}" if math.isfinite(f) else "—"


def _rules_text(rules: Any) -> str:
    if rules is None:
        return ""
    if isinstance(rules, str):
        return rules
    if isinstance(rules, dict):
        return "; ".join(f"{k}: {v}" for k, v in rules.items())
    parts = []
    for r in rules:
        if isinstance(r, dict):
            parts.append(", ".join(f"{k}={v}" for k, v in r.items()))
        else:
            parts.append(str(r))
    return "; ".join(parts)


# --------------------------------------------------------------------------- grouping


def _series_key(r: DriftResult) -> tuple[str, str, str, str]:
    return (r.feature, r.signal, r.statistic, r.reference)


def _feature_order(results: list[DriftResult], latest: datetime | None) -> list[str]:
    """Features drifted in the latest window first, then ever drifted, then the rest; by name."""
    now, ever, seen = set(), set(), []
    for r in results:
        if r.feature not in seen:
            seen.append(r.feature)
        if r.drifted:
            ever.add(r.feature)
            if latest is not None and as_utc(r.window_start) == latest:
                now.add(r.feature)
    return sorted(seen, key=lambda f: (f not in now, f not in ever, f))


def _drift_chips(rows: Iterable[DriftResult]) -> str:
    """'<b>age</b> psi 0.31, ks 0.12' per feature, values highlighted."""
    by_feature: dict[str, list[DriftResult]] = defaultdict(list)
    for r in rows:
        by_feature[r.feature].append(r)
    parts = []
    for feat in sorted(by_feature):
        stats = ", ".join(
            f'{_esc(_stat_label(r))} <span class="drift" title="threshold {_esc(num(r.threshold))}">'
            f"{_esc(num(r.value, 3))}</span>"
            for r in sorted(by_feature[feat], key=lambda r: (r.signal, r.statistic, r.reference))
        )
        parts.append(f'<span class="feat">{_esc(feat)}</span> {stats}')
    return "<br>".join(parts) if parts else '<span class="muted">none</span>'


def _stat_label(r: DriftResult) -> str:
    label = r.statistic
    if r.signal in ("quality", "performance"):
        label = f"{r.signal}:{label}"
    if r.reference != "baseline":
        label += f" vs {r.reference}"
    return label


# --------------------------------------------------------------------------- HTML pieces

_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
  margin:24px auto;max-width:1280px;padding:0 16px;color:#222;font-size:14px;line-height:1.4}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.meta{color:#555;margin:0 0 8px} code{background:#f3f3f3;padding:1px 4px;border-radius:3px}
table{border-collapse:collapse;margin:6px 0} th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f6f6;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}
.sev{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px;color:#fff}
.sev-severe{background:#c0392b} .sev-moderate{background:#e67e22} .sev-minor{background:#d4ac0d}
.sev-none{background:#27ae60} .sev-unknown{background:#7f8c8d}
.drift{color:#c0392b;font-weight:700} td.drift{background:#fdecea}
.feat{font-weight:600} .muted{color:#888}
.grid{display:flex;flex-wrap:wrap;gap:10px} figure{margin:0}
figure img{border:1px solid #eee;max-width:100%;height:auto} figcaption{font-size:12px;color:#555;max-width:400px;padding:2px 4px}
.cost{background:#f7f7f7;padding:8px 12px;border-radius:4px}
"""


def _img(chart: Chart) -> str:
    data = base64.b64encode(chart.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(chart.title)}" '
        f'title="{_esc(chart.file)}"><figcaption>{_esc(chart.caption)}</figcaption></figure>'
    )


def _severity_badge(severity: Any) -> str:
    s = str(severity).lower() if severity is not None else "none"
    cls = s if s in SEVERITY_ORDER else "unknown"
    return f'<span class="sev sev-{cls}">{_esc(s)}</span>'


def _summary_table(decisions: list[dict], drifted_by_window: dict[datetime, list[DriftResult]],
                   windows: Windows | None = None) -> str:
    if not decisions:
        return '<p class="muted">No policy decisions in this run.</p>'
    rows = sorted(
        decisions,
        key=lambda d: (
            _severity_rank(d.get("severity")),
            -(as_float(d.get("score")) if math.isfinite(as_float(d.get("score"))) else -math.inf),
            -as_utc(d["window_start"]).timestamp(),
        ),
    )
    hidden = rows[MAX_SUMMARY_ROWS:]
    rows = rows[:MAX_SUMMARY_ROWS]
    out = [
        '<table id="summary"><thead><tr><th>window</th><th>severity</th><th>score</th>'
        "<th>n drifted</th><th>rules fired</th><th>drifted features (value)</th></tr></thead><tbody>"
    ]
    for d in rows:
        start = d["window_start"]
        sev = d.get("severity")
        n = d.get("n_drifted")
        out.append(
            f'<tr class="sev-row" data-severity="{_esc(str(sev).lower() if sev is not None else "none")}">'
            f"<td>{_esc(_window_text(start, d.get('window_end'), windows))}</td>"
            f"<td>{_severity_badge(sev)}</td>"
            f'<td class="num">{_esc(_score(d.get("score")))}</td>'
            f'<td class="num">{_esc("—" if n is None else num(int(n)))}</td>'
            f"<td>{_esc(_rules_text(d.get('rules'))) or '<span class=muted>—</span>'}</td>"
            f"<td>{_drift_chips(drifted_by_window.get(as_utc(start), []))}</td></tr>"
        )
    out.append("</tbody></table>")
    if hidden:
        worst = min(hidden, key=lambda d: _severity_rank(d.get("severity"))).get("severity")
        out.append(
            f'<p class="muted">{len(hidden)} more windows, none worse than {_esc(worst)}: '
            f"see {JSON_NAME}.</p>"
        )
    return "".join(out)


def _latest_table(results: list[DriftResult], latest: datetime, features: list[str]) -> str:
    rows = [r for r in results if as_utc(r.window_start) == latest]
    if not rows:
        return ""
    columns: list[str] = []
    cells: dict[tuple[str, str], DriftResult] = {}
    for r in sorted(rows, key=lambda r: (r.signal not in ("feature", "prediction"), r.signal, r.reference != "baseline")):
        col = _stat_label(r)
        if col not in columns:
            columns.append(col)
        cells[(r.feature, col)] = r
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = []
    for feat in features:
        if not any((feat, c) in cells for c in columns):
            continue
        tds = []
        for c in columns:
            r = cells.get((feat, c))
            if r is None:
                tds.append("<td></td>")
                continue
            within = r.noise_floor is not None and not r.drifted and not as_float(r.value) > r.noise_floor
            cls = "num drift" if r.drifted else ("num muted" if within else "num")
            tip = f"threshold {num(r.threshold)}" + (f"; {r.reason}" if r.reason else "")
            if r.noise_floor is not None:
                tip += f"; noise floor {num(r.noise_floor, 3)} (excess {num(r.excess, 3)})"
            if r.p_value is not None:
                tip += f"; p={num(r.p_value, 3)}"
            tds.append(f'<td class="{cls}" title="{_esc(tip)}">{_esc(num(as_float(r.value), 3))}</td>')
        body.append(f'<tr><th>{_esc(feat)}</th>{"".join(tds)}</tr>')
    return (
        f'<div class="scroll"><table id="latest"><thead><tr><th>feature</th>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div>'
    )


def _cost_text(cost: dict[str, float]) -> str:
    if not cost:
        return "not measured"
    parts = []
    for key, value in cost.items():
        name = key[5:] if key.startswith("cost.") else key
        v = as_float(value)
        if not math.isfinite(v):
            text = "—"
        elif name.startswith("bytes"):
            text = _bytes(v)
        elif name.endswith("_s"):
            name = name[:-2]
            text = f"{v:,.1f} s" if v >= 1 else f"{v * 1000:,.0f} ms"
        elif name.startswith("rows") or float(v).is_integer():
            text = f"{int(v):,}"
        else:
            text = num(v)
        parts.append(f"{name.replace('_', ' ')}: {text}")
    return " · ".join(parts)


def _bytes(v: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(v) < 1024 or unit == "TB":
            return f"{v:,.0f} {unit}" if unit == "B" else f"{v:,.1f} {unit}"
        v /= 1024
    return f"{v:,.1f} TB"  # pragma: no cover


# --------------------------------------------------------------------------- entry point


def write_report(
    folder: Path,
    *,
    monitor: str,
    run_id: str | None,
    results: list[DriftResult],
    decisions: list[dict],
    overlays: dict[str, tuple[FeatureProfile, Histogram, Histogram]],
    cost: dict[str, float],
    noise: str = "",
    windows: Windows | None = None,
    where: dict[str, list[SliceFinding]] | None = None,
    actions: Sequence[ActionRecord] = (),
    retrain_synchronous: bool = False,
    baseline_performance: dict[str, float] | None = None,
) -> dict[str, Path]:
    """Write drift_report.json, drift_report.html and plots/*.png into ``folder``.

    ``decisions``: one dict per window with window_start, window_end, severity,
    score, rules, n_drifted (the policy's output). ``overlays``: feature ->
    (profile, reference histogram, latest-window histogram), usually for the
    drifted features. Returns every written file by its path relative to
    ``folder`` (``drift_report.json``, ``drift_report.html``, ``plots/<name>.png``).
    ``windows``: the run's windows, for the charts' date axis (calendar months
    and quarters are named, not dated). ``where``: per drifted feature, its
    slice values ranked by contribution (`core.slices.where_drift`).
    ``actions``: the run's action records (decided, sent, started, skipped).
    ``baseline_performance``: the model's metrics on the baseline, which the
    latest window's performance is shown against.
    """
    folder = Path(folder)
    plots = folder / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    results = list(results)
    latest = max((as_utc(r.window_start) for r in results), default=None)
    features = _feature_order(results, latest)
    used: set[str] = set()

    def filename(stem: str) -> str:
        name, i = _safe_name(stem), 2
        candidate = name
        while candidate.lower() in used:
            candidate, i = f"{name}_{i}", i + 1
        used.add(candidate.lower())
        return f"{PLOTS_DIR}/{candidate}.png"

    charts: list[Chart] = []

    # statistic over the windows, per feature and statistic that has a threshold
    series: dict[tuple[str, str, str, str], list[DriftResult]] = defaultdict(list)
    for r in results:
        series[_series_key(r)].append(r)
    order = {f: i for i, f in enumerate(features)}
    signal_order = {"prediction": 0, "feature": 1, "quality": 2, "performance": 3}
    for key in sorted(series, key=lambda k: (order[k[0]], signal_order.get(k[1], 9), k[2], k[3] != "baseline", k[3])):
        rows = series[key]
        if all(r.threshold is None for r in rows):
            continue
        feat, signal, stat, ref = key
        # Every column's PSI and all performance metrics are charted; any other series
        # only where it breached somewhere (the rest is in the tables and in MLflow).
        headline = (stat == "psi" and signal in ("feature", "prediction")) or signal == "performance"
        if not headline and not any(r.drifted for r in rows):
            continue
        title = f"{feat} · {stat}" + ("" if signal == "feature" else f" ({signal})")
        if ref != "baseline":
            title += f" vs {ref}"
        n_drifted = sum(r.drifted for r in rows)
        caption = f"{rows[0].metric_name}: {n_drifted} of {len(rows)} windows beyond the threshold"
        stem = f"trend_{feat}_{stat}" + ("" if signal == "feature" else f"_{signal}")
        stem += "" if ref == "baseline" else f"_vs_{ref}"
        charts.append(Chart("trend", feat, filename(stem), title, caption, trend_png(rows, title, windows)))

    # baseline vs latest window, for the given (drifted) features
    overlay_order = sorted(overlays, key=lambda f: (order.get(f, len(order)), f))
    for feat in overlay_order:
        profile, ref_hist, win_hist = overlays[feat]
        if profile.kind == "numeric" and not len(profile.edges):
            continue  # an all-null baseline has no bins to compare
        feat_rows = [r for r in results if r.feature == feat] or results
        win_start = max((as_utc(r.window_start) for r in feat_rows), default=None)
        last = [r for r in feat_rows if win_start is not None and as_utc(r.window_start) == win_start]
        win_label = f"window {_window_text(last[0].window_start, last[0].window_end, windows)}" if last else "latest window"
        last = [r for r in last if r.feature == feat]
        drifted = [r for r in last if r.drifted and r.reference == "baseline"]
        subtitle = ", ".join(
            f"{_stat_label(r)} {num(as_float(r.value), 3)} {'>' if as_float(r.value) > as_float(r.threshold) else '<'} "
            f"{num(r.threshold, 3)}"
            for r in drifted[:4]
        )
        title = f"{feat}: baseline vs {win_label}"
        caption = (
            f"{profile.kind}; baseline {ref_hist.n_rows:,} rows, window {win_hist.n_rows:,} rows; "
            f"nulls {_pct(ref_hist.nulls + ref_hist.nans, ref_hist.n_rows)} vs "
            f"{_pct(win_hist.nulls + win_hist.nans, win_hist.n_rows)}"
        )
        if profile.kind == "categorical":
            caption += f"; unseen categories {_pct(win_hist.unseen, win_hist.n_valid)} of the window"
        png = overlay_png(profile, ref_hist, win_hist, title, subtitle)
        charts.append(Chart("overlay", feat, filename(f"overlay_{feat}"), title, caption, png))

    written: dict[str, Path] = {}
    for chart in charts:
        path = folder / chart.file
        path.write_bytes(chart.png)
        written[chart.file] = path

    generated = datetime.now(timezone.utc).replace(microsecond=0)
    doc = {
        "monitor": monitor,
        "run_id": run_id,
        "generated_at": generated.isoformat(),
        "results": [_plain(r.to_dict()) for r in results],
        "decisions": _plain(list(decisions)),
        "noise_floor": noise,
        "cost": _plain(dict(cost)),
        "plots": [c.file for c in charts],
        "slices": {f: [_plain(dataclasses.asdict(x)) for x in found] for f, found in (where or {}).items()},
        "actions": [{**_plain(dataclasses.asdict(a)), "shown_status": shown_status(a, retrain_synchronous)}
                    for a in actions],
        "baseline_performance": _plain(dict(baseline_performance or {})),
    }
    json_path = folder / JSON_NAME
    json_path.write_text(json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False) + "\n", encoding="utf-8")
    written[JSON_NAME] = json_path

    html_path = folder / HTML_NAME
    html_path.write_text(
        _html(monitor, run_id, generated, results, decisions, charts, features, latest, cost, noise, where or {},
              _actions_section(actions, retrain_synchronous, windows)
              + _performance_section(results, baseline_performance or {}, windows), windows),
        encoding="utf-8"
    )
    written[HTML_NAME] = html_path
    return written


_STATUS_NOTE = {
    "succeeded": "done", "launched": "started; it runs on its own (see its run)", "failed": "failed",
    "pending": "recorded before sending; not yet completed", "dry_run": "decided only (dry run)",
    "skipped_cooldown": "skipped: within the cooldown", "superseded": "skipped: a later window decides",
}


def _actions_section(actions: Sequence[ActionRecord], synchronous: bool, windows: Windows | None) -> str:
    """What the policy's verdicts led to: each alert and retrain, its status and why."""
    rows = ['<h2>Actions</h2>']
    if not actions:
        rows.append('<p class="muted">No action configured, or no window reached the severity that triggers one.</p>')
        return "\n".join(rows)
    rows.append('<table id="actions"><tr><th>window</th><th>action</th><th>via</th><th>target</th><th>status</th>'
                "<th>run</th><th>detail</th></tr>")
    for a in sorted(actions, key=lambda a: (-as_utc(a.window_start).timestamp(), a.action)):  # newest first
        status = shown_status(a, synchronous)
        cls = ' class="drift"' if status == "failed" else ""
        rows.append(
            f"<tr{cls}><td>{_esc(_window_text(a.window_start, a.window_end, windows))}</td><td>{_esc(a.action)} "
            f"({_esc(a.severity)})</td><td>{_esc(a.kind)}</td><td><code>{_esc(a.target)}</code></td>"
            f"<td>{_esc(status)}</td><td>{_esc(a.retrain_run_id or '')}</td>"
            f"<td>{_esc(a.error or _STATUS_NOTE.get(status, ''))}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _performance_section(results: list[DriftResult], baseline: dict[str, float], windows: Windows | None) -> str:
    """The latest labelled window's model metrics next to the model's own on the baseline, and the line they must hold.

    Labels arrive late, so the newest window with performance results is
    shown, named; empty when the monitor has no labels at all.
    """
    perf = [r for r in results if r.signal == "performance"]
    if not perf and not baseline:
        return ""
    rows = ["\n<h2>Model performance against the baseline</h2>"]
    if not perf:
        rows.append('<p class="muted">No window has labels yet; on the baseline: '
                    + ", ".join(f"{_esc(k)} {num(v, 3)}" for k, v in baseline.items()) + ".</p>")
        return "\n".join(rows)
    last = max(as_utc(r.window_start) for r in perf)
    rows.append(f'<table id="performance"><tr><th>metric</th><th>baseline</th>'
                f"<th>{_esc(_window_text(last, windows=windows))}</th><th>threshold</th><th>labelled rows</th></tr>")
    for r in sorted((r for r in perf if as_utc(r.window_start) == last), key=lambda r: r.statistic):
        cls = ' class="drift"' if r.drifted else ""
        rows.append(f"<tr{cls}><td>{_esc(r.statistic)}</td><td>{num(baseline.get(r.statistic, math.nan), 3)}</td>"
                    f"<td>{num(r.value, 3)}</td><td>{num(r.threshold, 3)}</td><td>{r.window_rows:,}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _slices_section(where: dict[str, list[SliceFinding]], most: int = 5) -> str:
    """Where is the drift: per drifted feature, its slice values ranked by their excess over the noise floor."""
    rows = ['<h2 class="drift">Where is the drift: slices</h2>',
            '<p class="meta">Per drifted column (latest window it drifted in), its slice values ranked by how far '
            "the statistic lies past its noise floor; breaches with too few rows are ranked after the others.</p>",
            '<table id="slices"><tr><th>column</th><th>rank</th><th>slice</th><th>statistic</th><th>noise floor</th>'
            "<th>past the floor</th><th>rows</th><th>share of rows</th></tr>"]
    for feature, found in where.items():
        for i, f in enumerate(found[:most], 1):
            cls = ' class="drift"' if f.counted else ""
            rows.append(
                f"<tr{cls}><td>{_esc(feature)}</td><td>{i}</td><td>{_esc(f.label)}</td>"
                f"<td>{_esc(f.statistic)}={num(f.value, 3)}</td><td>{num(f.noise_floor, 3)}</td>"
                f"<td>{num(f.contribution, 3)}</td><td>{f.rows:,}</td><td>{_pct(f.share, 1)}</td></tr>"
            )
    rows.append("</table>")
    return "\n".join(rows)


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.2g}%" if whole else "—"


def _html(
    monitor: str,
    run_id: str | None,
    generated: datetime,
    results: list[DriftResult],
    decisions: list[dict],
    charts: list[Chart],
    features: list[str],
    latest: datetime | None,
    cost: dict[str, float],
    noise: str = "",
    where: dict[str, list[SliceFinding]] | None = None,
    actions_html: str = "",
    windows: Windows | None = None,
) -> str:
    drifted_by_window: dict[datetime, list[DriftResult]] = defaultdict(list)
    for r in results:
        if r.drifted:
            drifted_by_window[as_utc(r.window_start)].append(r)
    starts = sorted({as_utc(r.window_start) for r in results} | {as_utc(d["window_start"]) for d in decisions})
    baselines = sorted({r.baseline_id for r in results})
    meta = [f"run <code>{_esc(run_id)}</code>" if run_id else "no MLflow run"]
    if starts:
        span = (_window_text(starts[0], windows=windows) if len(starts) == 1
                else f"{_window_text(starts[0], windows=windows)} → {_window_text(starts[-1], windows=windows)}")
        meta.append(f"{len(starts)} window{'s' if len(starts) != 1 else ''}: {_esc(span)}")
    if baselines:
        meta.append("baseline " + ", ".join(f"<code>{_esc(b)}</code>" for b in baselines))
    meta.append(f"generated {_esc(generated.strftime('%Y-%m-%d %H:%M UTC'))}")

    worst = min(decisions, key=lambda d: _severity_rank(d.get("severity")), default=None)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(f'Drift report: {monitor}')}</title><style>{_CSS}</style></head><body>",
        f"<h1>Drift report: {_esc(monitor)} "
        + (_severity_badge(worst.get("severity")) if worst is not None else "")
        + "</h1>",
        f'<p class="meta">{" · ".join(meta)}</p>',
        "<h2>Summary by window, most severe first</h2>",
        _summary_table(decisions, drifted_by_window, windows),
    ]
    if noise:
        parts.append(f'<p class="meta" id="noise">Noise floors {_esc(noise)}.</p>')
    if where:
        parts.append(_slices_section(where))
    if actions_html:
        parts.append(actions_html)
    errors = [f"{_window_text(as_utc(d['window_start']), windows=windows)}: {e}" for d in decisions for e in d.get("errors") or ()]
    if errors:
        parts.append('<h2 class="drift">Statistics that could not be computed</h2><ul id="errors">')
        parts.extend(f"<li>{_esc(e)}</li>" for e in errors)
        parts.append("</ul>")
    if latest is not None:
        parts.append(f"<h2>Latest window ({_esc(_window_text(latest, windows=windows))}): every statistic</h2>")
        parts.append(
            '<p class="meta">Values beyond their threshold (and their noise floor) are red; values within '
            "the noise floor, what chance alone gives at this window's size, are grey; hover a cell for "
            "the threshold, the noise floor and the excess over it.</p>"
        )
        parts.append(_latest_table(results, latest, features))

    trends: dict[str, list[Chart]] = defaultdict(list)
    for c in charts:
        if c.section == "trend":
            trends[c.group].append(c)
    parts.append("<h2>Statistics over time against their thresholds</h2>")
    if not trends:
        parts.append('<p class="muted">No statistic with a threshold.</p>')
    for feat in features:
        if feat in trends:
            mark = ' <span class="drift">drifted</span>' if any(r.drifted for r in results if r.feature == feat) else ""
            parts.append(f"<h3>{_esc(feat)}{mark}</h3><div class=\"grid\">")
            parts.extend(_img(c) for c in trends[feat])
            parts.append("</div>")

    overlays = [c for c in charts if c.section == "overlay"]
    parts.append("<h2>Baseline vs latest window</h2>")
    if overlays:
        parts.append('<div class="grid">')
        parts.extend(_img(c) for c in overlays)
        parts.append("</div>")
    else:
        parts.append('<p class="muted">No drifted features to compare.</p>')

    parts.append("<h2>Cost</h2>")
    parts.append(f'<p class="cost">{_esc(_cost_text(cost))}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- reading back


def read_report_results(path: str | Path) -> list[DriftResult]:
    """The DriftResult rows of a drift_report.json (a folder or the file); null values read as NaN."""
    p = Path(path)
    if p.is_dir():
        p = p / JSON_NAME
    doc = json.loads(p.read_text(encoding="utf-8"))
    fields = {f.name for f in dataclasses.fields(DriftResult)}
    out = []
    for row in doc["results"]:
        d = {k: v for k, v in row.items() if k in fields}
        d["window_start"] = datetime.fromisoformat(d["window_start"])
        d["window_end"] = datetime.fromisoformat(d["window_end"])
        d["value"] = math.nan if d.get("value") is None else float(d["value"])
        out.append(DriftResult(**d))
    return out

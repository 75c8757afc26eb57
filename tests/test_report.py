"""The drift report: JSON for machines, self-contained HTML + PNGs for people (no Spark)."""
from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from sparkdrift.core.profile import FeatureProfile, Histogram
from sparkdrift.sinks.report import read_report_results, write_report
from sparkdrift.core.results import DriftResult

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DAY0 = datetime(2026, 1, 8)
MONITOR = "churn_model"


def _numeric_profile(rng: np.random.Generator) -> tuple[FeatureProfile, Histogram, Histogram]:
    """age: 40 fine quantile bins, 8 coarse bins; the window shifts right and overflows."""
    base = rng.normal(40, 10, 4000)
    edges = np.unique(np.quantile(base, np.linspace(0, 1, 40)))

    def hist(values: np.ndarray, nulls: int) -> Histogram:
        idx = np.searchsorted(edges, values, side="right") - 1
        inside = (values >= edges[0]) & (values <= edges[-1])
        counts = np.bincount(idx[inside], minlength=len(edges))  # last bin: the atom at max
        return Histogram(
            counts=counts,
            nulls=nulls,
            underflow=int(np.sum(values < edges[0])),
            overflow=int(np.sum(values > edges[-1])),
            value_sum=float(values.sum()),
            value_sum_sq=float((values**2).sum()),
            min=float(values.min()),
            max=float(values.max()),
        )

    profile = FeatureProfile(
        name="age", kind="numeric", baseline=hist(base, 10), edges=tuple(float(e) for e in edges),
        coarse=tuple(range(0, len(edges), 5)),
    )
    window = rng.normal(48, 12, 1500)
    return profile, profile.baseline, hist(window, 60)


def _categorical_profile() -> tuple[FeatureProfile, Histogram, Histogram]:
    cats = ("month-to-month", "one_year", "two_year <script>")
    ref = Histogram(counts=np.array([500, 300, 180, 20]))
    win = Histogram(counts=np.array([700, 150, 90, 10]), unseen=50, nulls=5)
    return FeatureProfile(name="contract", kind="categorical", baseline=ref, categories=cats), ref, win


def _results() -> list[DriftResult]:
    rows = []
    psi_age = [0.05, 0.18, 0.41]
    psi_contract = [0.02, 0.25, float("nan")]
    for i in range(3):
        start, end = DAY0 + timedelta(days=i), DAY0 + timedelta(days=i + 1)
        common = dict(monitor=MONITOR, baseline_id="b-001", window_start=start, window_end=end,
                      reference_rows=4000, window_rows=1500)
        rows.append(DriftResult(feature="age", statistic="psi", value=psi_age[i], threshold=0.2,
                                drifted=psi_age[i] > 0.2, **common))
        rows.append(DriftResult(feature="age", statistic="ks", value=0.03 * (i + 1), threshold=0.1,
                                drifted=False, p_value=1e-4, **common))
        reason = "no rows" if math.isnan(psi_contract[i]) else None
        rows.append(DriftResult(feature="contract", statistic="psi", value=psi_contract[i], threshold=0.2,
                                drifted=psi_contract[i] > 0.2, kind="categorical", reason=reason, **common))
        rows.append(DriftResult(feature="contract", statistic="chi2", value=12.5 * i, threshold=None,
                                drifted=False, kind="categorical", **common))
        rows.append(DriftResult(feature="age", statistic="completeness", value=0.999 - 0.02 * i,
                                threshold=0.99, drifted=0.999 - 0.02 * i < 0.99, signal="quality", **common))
    return rows


def _decisions() -> list[dict]:
    d = [
        dict(severity="none", score=0.05, rules=[], n_drifted=0),
        dict(severity="moderate", score=0.25, rules=["score>=0.2"], n_drifted=1),
        dict(severity="severe", score=0.41, rules=["score>=0.3", "quality:age.completeness"], n_drifted=2),
    ]
    for i, x in enumerate(d):
        x["window_start"], x["window_end"] = DAY0 + timedelta(days=i), DAY0 + timedelta(days=i + 1)
    return d


def make_sample(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(7)
    return write_report(
        folder,
        monitor=MONITOR,
        run_id="0123abcd",
        results=_results(),
        decisions=_decisions(),
        overlays={"age": _numeric_profile(rng), "contract": _categorical_profile()},
        cost={"rows_read": 5500, "bytes_read": 3.5e6, "task_time_s": 12.25, "wall_time_s": 4.5,
              "stage.histograms_wall_s": 0.35},
    )


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """One report for the module: charts take ~0.1 s each to draw."""
    folder = tmp_path_factory.mktemp("report")
    return folder, make_sample(folder)


class _Page(HTMLParser):
    """Collects summary rows (severity per row), img sources, script/link/href attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.summary_severities: list[str] = []
        self.summary_cells: list[list[str]] = []
        self.imgs: list[str] = []
        self.external: list[tuple[str, dict]] = []
        self._in_summary = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "summary":
            self._in_summary = True
        if self._in_summary and tag == "tr" and "data-severity" in a:
            self.summary_severities.append(a["data-severity"])
            self._row = []
        if self._row is not None and tag == "td":
            self._cell = []
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag == "script" and a.get("src"):
            self.external.append((tag, a))
        if tag == "link" or (a.get("href") or "").startswith(("http", "//")):
            self.external.append((tag, a))
        if any((v or "").startswith(("http:", "https:", "//")) for k, v in attrs if k in ("src", "href")):
            self.external.append((tag, a))

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_summary = False
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._row is not None:
            self.summary_cells.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def test_html_is_self_contained_with_summary_in_severity_order(sample):
    tmp_path, written = sample
    page = _Page()
    text = (tmp_path / "drift_report.html").read_text(encoding="utf-8")
    page.feed(text)

    assert page.summary_severities == ["severe", "moderate", "none"]
    windows = [row[0] for row in page.summary_cells]
    assert windows == ["2026-01-10", "2026-01-09", "2026-01-08"]
    severe_row = page.summary_cells[0]
    assert severe_row[2] == "0.410" and severe_row[3] == "2"
    assert "age" in severe_row[5] and "0.41" in severe_row[5]

    # one <img> per plot file, each a valid PNG identical to the file on disk
    pngs = sorted(p for p in written if p.startswith("plots/"))
    assert len(page.imgs) == len(pngs)
    on_disk = {(tmp_path / p).read_bytes() for p in pngs}
    embedded = set()
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_SIGNATURE)
        embedded.add(data)
    assert embedded == on_disk

    assert page.external == []
    assert "<script" not in text.lower()
    # user text is escaped, never markup
    assert "two_year <script>" not in text


def test_plots_cover_thresholded_statistics_and_overlays(sample):
    tmp_path, written = sample
    pngs = sorted(p for p in written if p.startswith("plots/"))
    # every PSI; other thresholded series only where they breached (age ks never did; chi2 has no threshold)
    assert pngs == [
        "plots/overlay_age.png",
        "plots/overlay_contract.png",
        "plots/trend_age_completeness_quality.png",
        "plots/trend_age_psi.png",
        "plots/trend_contract_psi.png",
    ]
    for p in pngs:
        path = tmp_path / p
        assert path.is_file() and path.read_bytes().startswith(PNG_SIGNATURE)
    assert written["drift_report.html"] == tmp_path / "drift_report.html"


def test_json_round_trips_the_rows(sample):
    tmp_path, _ = sample
    raw = (tmp_path / "drift_report.json").read_text(encoding="utf-8")
    assert "NaN" not in raw and "Infinity" not in raw
    doc = json.loads(raw)

    results = _results()
    expected = []
    for r in results:
        d = r.to_dict()
        d["window_start"] = d["window_start"].isoformat()
        d["window_end"] = d["window_end"].isoformat()
        expected.append(d)
    assert doc["results"] == expected
    assert doc["monitor"] == MONITOR and doc["run_id"] == "0123abcd"
    assert [d["severity"] for d in doc["decisions"]] == ["none", "moderate", "severe"]
    assert doc["decisions"][2]["window_start"] == "2026-01-10T00:00:00"
    assert doc["cost"]["rows_read"] == 5500

    back = read_report_results(tmp_path)
    assert len(back) == len(results)
    for a, b in zip(back, results):
        if math.isnan(b.value):
            assert math.isnan(a.value) and a.reason == b.reason
        else:
            assert a == b


def test_empty_inputs_still_write_a_valid_report(tmp_path):
    written = write_report(tmp_path, monitor="m", run_id=None, results=[], decisions=[], overlays={}, cost={})
    assert set(written) == {"drift_report.json", "drift_report.html"}
    doc = json.loads((tmp_path / "drift_report.json").read_text())
    assert doc["results"] == [] and doc["decisions"] == []
    page = _Page()
    page.feed((tmp_path / "drift_report.html").read_text())
    assert page.imgs == [] and page.summary_severities == []


def test_coarse_bin_labels_name_atoms_and_ranges():
    from sparkdrift.sinks.charts import _coarse_labels

    zero_plus = float(np.nextafter(0.0, np.inf))
    profile = FeatureProfile(
        name="support_calls", kind="numeric", baseline=Histogram.empty(5),
        edges=(0.0, zero_plus, 1.0, 2.0, 25000.0), coarse=(0, 1, 3),
    )
    assert _coarse_labels(profile) == ["< 0", "= 0", "(0, 2)", "[2, 25,000]", "> 25,000"]


def test_actions_section_says_what_was_sent_started_and_skipped(tmp_path):
    from sparkdrift.core.planning import ActionRecord

    t0 = datetime(2026, 1, 14, tzinfo=timezone.utc)
    day = timedelta(days=1)
    records = [
        ActionRecord("m", t0, t0 + day, "severe", "r", "alert", "webhook", "https://hooks.example/***", "succeeded",
                     "alert-1"),
        ActionRecord("m", t0, t0 + day, "severe", "r", "retrain", "mlflow_project", "examples/retrain#main",
                     "succeeded", "retrain-1", retrain_run_id="abc123"),
        ActionRecord("m", t0 - day, t0, "moderate", "r", "retrain", "mlflow_project", "examples/retrain#main",
                     "superseded", "retrain-0", error="a later window (2026-01-14T00:00:00Z) decides retraining"),
    ]
    write_report(tmp_path, monitor="m", run_id="r1", results=[], decisions=[], overlays={}, cost={}, actions=records)
    html = (tmp_path / "drift_report.html").read_text()
    section = html[html.index('<table id="actions">'):]
    section = section[:section.index("</table>")]
    rows = [r for r in section.split("<tr") if "<td>" in r]
    # newest window first (alert, then retrain); an asynchronous retrain is "launched", never "succeeded"
    assert "webhook" in rows[0] and "<td>succeeded</td>" in rows[0]
    assert "<td>launched</td>" in rows[1] and "succeeded" not in rows[1]
    assert "abc123" in section and "hooks.example/***" in section
    assert "superseded" in rows[2] and "a later window (2026-01-14T00:00:00Z) decides retraining" in rows[2]
    doc = json.loads((tmp_path / "drift_report.json").read_text())
    assert [a["shown_status"] for a in doc["actions"]] == ["succeeded", "launched", "superseded"]


def test_performance_section_shows_the_latest_labelled_window_against_the_baseline(tmp_path):
    t0 = datetime(2026, 1, 12, tzinfo=timezone.utc)
    day = timedelta(days=1)

    def perf(start, stat, value, threshold, drifted, n):
        return DriftResult("m", "b", start, start + day, "score", stat, value, threshold, drifted,
                           signal="performance", window_rows=n)

    results = [perf(t0, "accuracy", 0.81, 0.779, False, 900),  # an older window: not the one shown
               perf(t0 + day, "accuracy", 0.70, 0.779, True, 1200), perf(t0 + day, "auc", 0.74, 0.70, False, 1200)]
    # baseline 820 of 1000 right: 0.82; the threshold 0.779 is 0.95 x 0.82
    write_report(tmp_path, monitor="m", run_id=None, results=results, decisions=[], overlays={}, cost={},
                 baseline_performance={"accuracy": 820 / 1000, "auc": 0.76})
    html = (tmp_path / "drift_report.html").read_text()
    assert "<h2>Model performance against the baseline</h2>" in html
    table = html[html.index('<table id="performance">'):]
    table = table[:table.index("</table>")]
    assert "<th>2026-01-13</th>" in table
    rows = [r.strip() for r in table.split("<tr") if "<td>" in r]
    assert rows[0] == ('class="drift"><td>accuracy</td><td>0.82</td><td>0.7</td><td>0.779</td>'
                       "<td>1,200</td></tr>")
    assert rows[1] == "><td>auc</td><td>0.76</td><td>0.74</td><td>0.7</td><td>1,200</td></tr>"
    assert json.loads((tmp_path / "drift_report.json").read_text())["baseline_performance"] == {
        "accuracy": 0.82, "auc": 0.76}
    write_report(tmp_path / "none", monitor="m", run_id=None, results=[], decisions=[], overlays={}, cost={})
    assert "Model performance" not in (tmp_path / "none" / "drift_report.html").read_text()  # no labels: no section


def test_calendar_windows_are_named_as_the_charts_name_them(tmp_path):
    from sparkdrift.core.windows import Windows

    jan, feb = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 2, 1, tzinfo=timezone.utc)
    decision = {"window_start": jan, "window_end": feb, "severity": "none", "score": 0.0, "rules": [],
                "n_drifted": 0, "drifted": {}, "errors": []}
    row = DriftResult("m", "b", jan, feb, "age", "psi", 0.01, 0.2, False)
    write_report(tmp_path, monitor="m", run_id=None, results=[row], decisions=[decision], overlays={}, cost={},
                 windows=Windows(months=1))
    html = (tmp_path / "drift_report.html").read_text()
    assert "<td>2026-01</td>" in html and "Latest window (2026-01)" in html and "2026-01-01" not in html

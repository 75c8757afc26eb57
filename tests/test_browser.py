"""What a reviewer sees, in a real headless Chromium: the demo's HTML report and its MLflow run page.

The demo's detect run (shared with tests/test_demo.py) writes the report and
the MLflow run; Chromium (tests/browser.py: on PATH, else installed from
Debian) renders them. The oracles are the demo's known drift (14 daily
windows, drift injected in three features from day 8) and the order in which
MLflow 3 sections its charts (``ui_sections``), read off the rendered page.
"""
from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests import browser
from tests.test_demo import DRIFTED_FEATURES, STABLE_FEATURES, shared_demo
from sparkdrift.sinks.tracking import run_url
from tests.test_tracking import ui_sections

pytestmark = [pytest.mark.slow, pytest.mark.spark]

WIDTH = 1400
SEVERE_RED = (0xC0, 0x39, 0x2B)  # the report's severity badge for "severe"

#: Runs after the page loaded: what the layout came to, written into the DOM for --dump-dom to carry out.
PROBE = """<script>
addEventListener("load", () => {
  const rows = t => [...t.rows].filter(r => r.querySelector("td")).length;
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    viewport: innerWidth,
    scroll_width: document.documentElement.scrollWidth,
    rows: Object.fromEntries([...document.querySelectorAll("table[id]")].map(t => [t.id, rows(t)])),
    right: Object.fromEntries([...document.querySelectorAll("table[id]")].map(
      t => [t.id, (t.closest(".scroll") || t).getBoundingClientRect().right])),
    images: [...document.images].map(i => i.naturalWidth),
  });
  document.body.append(probe);
});
</script>"""


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return browser.chromium()
    except browser.BrowserUnavailable as exc:
        pytest.fail(f"no headless browser to check the report with: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory) -> dict:
    return shared_demo(spark, tmp_path_factory)


@pytest.fixture(scope="module")
def report(demo) -> Path:
    pages = sorted(Path(demo["folder"]).glob("reports/churn_demo/*/drift_report.html"), key=lambda p: p.stat().st_mtime)
    assert pages, f"the demo wrote no report under {demo['folder']}/reports"
    return pages[-1]


class _Text(HTMLParser):
    """Text of the elements a predicate picks (h2s, h3s, MLflow's section headers), in document order."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, pick) -> None:
        super().__init__()
        self.pick = pick
        self.found: list[str] = []
        self._depth = 0
        self._open: list[tuple[int, list[str]]] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        self._depth += 1
        if self.pick(tag, dict(attrs)):
            self._open.append((self._depth, []))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if self._open and self._open[-1][0] == self._depth:
            self.found.append(" ".join("".join(self._open.pop()[1]).split()))
        self._depth -= 1

    def handle_data(self, data):
        for _, text in self._open:
            text.append(data)


def _texts(dom: str, pick) -> list[str]:
    parser = _Text(pick)
    parser.feed(dom)
    return parser.found


def test_report_renders_every_section_and_fits_1400px(chromium, report, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dom = browser.dump_dom(page.as_uri(), width=WIDTH, height=900, wait_ms=3000)

    h2 = _texts(dom, lambda tag, a: tag == "h2")
    expected = ["Summary by window, most severe first", "Actions", "Model performance against the baseline",
                "Latest window (2026-01-14): every statistic",
                "Statistics over time against their thresholds", "Baseline vs latest window", "Cost"]
    assert [h for h in h2 if h in expected] == expected, h2
    drifted = {h.removesuffix(" drifted") for h in _texts(dom, lambda tag, a: tag == "h3") if h.endswith(" drifted")}
    assert DRIFTED_FEATURES <= drifted and not drifted & STABLE_FEATURES, drifted

    probe = json.loads(unescape(re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S).group(1)))
    assert probe["viewport"] == WIDTH
    assert probe["rows"]["summary"] == 14  # one row per daily window
    assert probe["rows"]["latest"] >= len(DRIFTED_FEATURES | STABLE_FEATURES)
    assert probe["rows"]["actions"] >= 1
    assert probe["images"] and min(probe["images"]) > 0, "a chart did not decode"
    # every table fits the window (a wide one scrolls inside its own box), and so does the page
    assert max(probe["right"].values()) <= WIDTH and probe["scroll_width"] <= WIDTH, probe


def test_report_screenshot_shows_the_page(chromium, report, tmp_path):
    from PIL import Image

    png = browser.screenshot(report.as_uri(), tmp_path / "report.png", width=WIDTH, height=900, wait_ms=3000)
    with Image.open(png) as image:
        assert image.size == (WIDTH, 900)
        pixels = image.convert("RGB")
    colors = pixels.getcolors(maxcolors=WIDTH * 900)
    assert len(colors) > 200, "the screenshot is (nearly) blank"
    badge = sum(n for n, c in colors if all(abs(a - b) <= 6 for a, b in zip(c, SEVERE_RED)))
    assert badge > 100, "the severe badge is not on the first screen"


def test_mlflow_run_page_opens_on_the_drift(chromium, demo, tmp_path):
    from mlflow import MlflowClient

    cfg = demo["cfg"]
    client = MlflowClient(cfg.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.experiment_name)
    run = client.search_runs([experiment.experiment_id], "tags.`sparkdrift.job` = 'detect'",
                             order_by=["attributes.start_time ASC"])[0]
    with browser.mlflow_server(cfg.mlflow.tracking_uri, tmp_path / "mlflow-server.log") as base:
        url = run_url(base, experiment.experiment_id, run.info.run_id)  # the link detect prints
        dom = browser.dump_dom(url, width=WIDTH, height=4000, wait_ms=20000)

    headers = _texts(dom, lambda tag, a: a.get("data-testid") == "experiment-view-compare-runs-section-header")
    counted = [re.match(r"(.+?)\s*\((\d+)\)", h).groups() for h in headers]  # "drift(7)Add chart"
    sections = [name for name, charts in counted if int(charts)]  # MLflow also draws an empty "Model metrics (0)"
    assert sections == ui_sections(run.data.metrics), headers
    assert sections[0] == "drift" and sections[-1] == "run_cost", sections
    assert {f"feature.{f}" for f in DRIFTED_FEATURES} <= set(sections)

"""The README's screenshots: the demo's MLflow run page (Model metrics) and its HTML report.

    python3 docs/screenshots.py [--folder sparkdrift-demo] [--reuse]

Runs ``sparkdrift demo`` in the folder (``--reuse``: takes the demo already there), serves
its SQLite store with ``mlflow server`` on 127.0.0.1 and photographs both
pages in headless Chromium (``tests/browser.py``, which installs Debian's
chromium if there is none), writing ``docs/mlflow-run.png`` and
``docs/report.png`` as 256-colour PNGs (a few hundred KB).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

from sparkdrift.sinks.tracking import run_url  # noqa: E402 - the repository's root is on the path only now
from tests import browser  # noqa: E402

WIDTH = 1400
#: The SPA fetches and draws its charts lazily and slowly: 30 s of virtual time leave spinners, 180 s do not.
MLFLOW_WAIT_MS = 180000
#: MLflow 3 opens its assistant panel on a third of the page when the host is localhost; another name skips it.
HOST = "mlflow.sparkdrift.test"


def _small_png(png: Path) -> None:
    """Re-encode as a 256-colour PNG: screenshots of pages are mostly flat colour."""
    from PIL import Image

    with Image.open(png) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(png, optimize=True)


def _demo_run(folder: Path) -> tuple[str, str, str, Path]:
    """(tracking URI, experiment id, run id, report) of the demo's first detect run."""
    from mlflow import MlflowClient

    from sparkdrift.demo import demo_config

    cfg = demo_config(folder)
    client = MlflowClient(cfg.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.experiment_name)
    runs = client.search_runs([experiment.experiment_id], "tags.`sparkdrift.job` = 'detect'",
                              order_by=["attributes.start_time DESC"])
    run = next(r for r in runs if "drift/score" in r.data.metrics)  # the newest that had windows to detect
    report = max(folder.glob(f"reports/{cfg.monitor}/*/drift_report.html"), key=lambda p: p.stat().st_mtime)
    return cfg.mlflow.tracking_uri, experiment.experiment_id, run.info.run_id, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("sparkdrift-demo"), help="the demo's folder")
    parser.add_argument("--reuse", action="store_true", help="photograph the demo already in the folder")
    args = parser.parse_args(argv)
    folder = args.folder.resolve()
    if not args.reuse:
        subprocess.run([sys.executable, "-m", "sparkdrift", "demo", "--folder", str(folder)], check=True)
    uri, experiment_id, run_id, report = _demo_run(folder)

    with tempfile.TemporaryDirectory() as tmp:
        with browser.mlflow_server(uri, Path(tmp) / "mlflow-server.log", allowed_hosts=HOST) as base:
            page = run_url(base.replace("127.0.0.1", HOST), experiment_id, run_id)
            browser.screenshot(page, DOCS / "mlflow-run.png", width=WIDTH, height=1700, wait_ms=MLFLOW_WAIT_MS,
                               extra=(f"--host-resolver-rules=MAP {HOST} 127.0.0.1",))
    browser.screenshot(report.as_uri(), DOCS / "report.png", width=WIDTH, height=1700)
    for png in (DOCS / "mlflow-run.png", DOCS / "report.png"):
        _small_png(png)
        print(f"{png}: {png.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

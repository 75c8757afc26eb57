"""Headless Chromium for the browser tests and ``docs/screenshots.py``.

Found on PATH, else installed once from Debian (``apt-get install chromium``:
CI is a fresh Debian machine where the tests run as root). Playwright and
puppeteer download their browsers from hosts CI cannot reach; Debian's
package needs nothing but the Debian mirror. When there is no browser and no
way to install one, `chromium` raises `BrowserUnavailable`, and the tests
fail with its message instead of passing without having looked.
"""
from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

NAMES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")


class BrowserUnavailable(RuntimeError):
    """No headless Chromium here, and installing one failed."""


def _find() -> str | None:
    return next((path for path in map(shutil.which, NAMES) if path), None)


@functools.cache
def chromium() -> str:
    """The path of a Chromium binary, installing Debian's package the first time (once per process)."""
    found = _find()
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise BrowserUnavailable(
            "no Chromium on PATH (looked for " + ", ".join(NAMES) + ") and apt-get cannot install one here "
            "(needs Debian/Ubuntu as root): install it, e.g. `apt-get install chromium`")
    started = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            raise BrowserUnavailable(f"`{' '.join(command)}` did not finish in 15 minutes") from None
        if done.returncode != 0:
            raise BrowserUnavailable(f"`{' '.join(command)}` failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
    found = _find()
    if not found:
        raise BrowserUnavailable("apt-get installed chromium but no Chromium binary is on PATH")
    print(f"installed {found} in {time.monotonic() - started:.0f}s")
    return found


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Chromium headless with a throwaway profile (root needs --no-sandbox; CI has no GPU or /dev/shm to spare)."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                   "--hide-scrollbars", "--no-first-run", "--mute-audio", f"--user-data-dir={profile}", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr.strip()[-1500:]}")
    return done


def dump_dom(url: str, *, width: int = 1400, height: int = 900, wait_ms: int = 5000, timeout: float = 120) -> str:
    """The DOM after the page's scripts ran (``--dump-dom``), rendered in a ``width`` × ``height`` window."""
    return _run([f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}", "--dump-dom", url],
                timeout).stdout


def screenshot(url: str, png: Path, *, width: int = 1400, height: int = 900, wait_ms: int = 5000,
               timeout: float = 180, extra: tuple[str, ...] = ()) -> Path:
    """A PNG of the first ``width`` × ``height`` pixels of the page, after ``wait_ms`` of (virtual) time.

    ``extra``: more Chromium switches (e.g. ``--host-resolver-rules``).
    """
    png = Path(png).resolve()
    _run([f"--window-size={width},{height}", f"--virtual-time-budget={wait_ms}", f"--screenshot={png}", *extra, url],
         timeout)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_server(tracking_uri: str, log: Path, *, allowed_hosts: str | None = None,
                  timeout: float = 120) -> Iterator[str]:
    """A real ``mlflow server`` on 127.0.0.1 over ``tracking_uri``; yields its base URL, stops it (its process group) after.

    ``allowed_hosts``: one more host name the server answers to (besides 127.0.0.1).
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    hosts = ["--allowed-hosts", f"127.0.0.1:{port},{allowed_hosts}:{port}"] if allowed_hosts else []
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracking_uri,
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1", *hosts],
            stdout=out, stderr=subprocess.STDOUT, cwd=log.parent, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:
                        if resp.status == 200:
                            break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.5)
            yield base
        finally:
            os.killpg(server.pid, signal.SIGTERM)  # mlflow server runs its web workers as children
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)

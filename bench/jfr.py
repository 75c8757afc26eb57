"""CPU profile of the Spark JVM with Java Flight Recorder (``jcmd`` / ``jfr`` from the JDK).

``with recording(pid) as rec: ...`` samples the JVM while the block runs; then
``rec.top()`` lists the hottest frames with how HotSpot ran them ("Interpreted",
"JIT compiled", "Inlined"): that is how the benchmark found that the production
pass runs in the bytecode interpreter.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator


def available() -> bool:
    return shutil.which("jcmd") is not None and shutil.which("jfr") is not None


@dataclass
class Recording:
    path: Path
    samples: list[tuple[str, str]] = field(default_factory=list)  # (frame, how it ran)

    def load(self) -> None:
        out = subprocess.run(
            ["jfr", "print", "--json", "--events", "jdk.ExecutionSample", "--stack-depth", "1", str(self.path)],
            capture_output=True, text=True, check=True,
        ).stdout
        for e in json.loads(out)["recording"]["events"]:
            frames = e["values"]["stackTrace"]["frames"]
            if not frames:
                continue
            f = frames[0]
            m = f["method"]
            cls = m["type"]["name"].split("/")[-1]
            cls = cls.split("$GeneratedIteratorForCodegenStage")[0] + ("$GeneratedIterator" if "GeneratedIterator" in cls else "")
            self.samples.append((f"{cls}.{m['name']}", f["type"]))

    def top(self, n: int = 12) -> list[dict]:
        total = len(self.samples) or 1
        c = Counter(self.samples)
        return [{"frame": k[0], "mode": k[1], "samples": v, "share": v / total} for k, v in c.most_common(n)]

    def interpreted_share(self) -> float:
        return sum(1 for _, t in self.samples if t == "Interpreted") / (len(self.samples) or 1)


@contextlib.contextmanager
def recording(pid: int, name: str = "bench") -> Iterator[Recording]:
    folder = Path(tempfile.mkdtemp(prefix="sparkdrift-jfr-"))
    rec = Recording(folder / f"{name}.jfr")
    subprocess.run(["jcmd", str(pid), "JFR.start", f"name={name}", "settings=profile", f"filename={rec.path}"],
                   check=True, capture_output=True)
    try:
        yield rec
    finally:
        subprocess.run(["jcmd", str(pid), "JFR.stop", f"name={name}"], check=True, capture_output=True)
        try:
            rec.load()
        finally:
            shutil.rmtree(folder, ignore_errors=True)

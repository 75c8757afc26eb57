"""The README is the manual: its commands are the CI's, and its config reference is current."""
from __future__ import annotations

import re
from pathlib import Path

from sparkdrift.core.config import reference_markdown

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_config_reference_is_generated_and_current():
    assert reference_markdown() in README


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    test_cmd = "python3 -m pip install -e '.[local,test]' && python3 -m pytest"
    assert test_cmd in blocks
    assert "python3 -m pip install -e '.[local]' && sparkdrift demo" in blocks
    assert test_cmd in (ROOT / ".ci" / "run").read_text().splitlines()

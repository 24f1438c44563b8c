"""The README's quick start tells a new user what `make test` needs beyond Python: each tool `.ci/run`
installs from Debian for the suite is named there, so a machine without it is not a surprise."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# Debian package .ci/run installs -> the word the README uses for it.
NAMED_AS = {"chromium": "Chromium", "postgresql": "PostgreSQL", "openjdk-17-jre-headless": "Java"}


def test_the_quick_start_names_every_tool_ci_installs_for_the_suite():
    installed = re.findall(r"missing\+=\(([\w.+-]+)\)", (REPO_ROOT / ".ci" / "run").read_text())
    assert sorted(installed) == sorted(NAMED_AS), "a new tool in .ci/run: name it in the README and here"
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert [package for package, word in NAMED_AS.items() if word not in quick_start] == []

"""Where a model came from: the code revision and the library versions it was trained with.

Recorded in every registry row, so `make reproduce` can say whether it refits with the same code.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

REVISION_ENV = "FRAUD_CODE_REVISION"
PACKAGES = ("scikit-learn", "numpy", "scipy", "skops", "pandas", "duckdb")
_REPO = Path(__file__).resolve().parents[2]


@functools.cache
def code_revision() -> str:
    """`$FRAUD_CODE_REVISION` (set by a deployment's image build), else the checkout's git commit with
    `+dirty` when tracked files differ from it, else `unknown` (no git, no setting)."""
    configured = os.environ.get(REVISION_ENV, "").strip()
    if configured:
        return configured
    if not (_REPO / ".git").exists():
        return "unknown"
    try:
        head = subprocess.run(
            ["git", "-C", str(_REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


@functools.cache
def training_environment() -> dict[str, str]:
    """Python and the versions of the libraries that decide what a fit produces."""
    env = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            env[name] = package_version(name)
        except PackageNotFoundError:
            env[name] = "absent"
    return env

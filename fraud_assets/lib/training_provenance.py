"""Where a model came from: the code revision, a digest of the package's source and the library versions
it was trained with.

Recorded in every registry row, so `make reproduce` can say whether it refits with the same code: the
source digest decides (a commit that only touched docs, tests or benchmarks leaves it unchanged); the
revision says which commit to check out when it differs.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

REVISION_ENV = "FRAUD_CODE_REVISION"
PACKAGES = ("scikit-learn", "numpy", "scipy", "skops", "pandas", "duckdb")
_REPO = Path(__file__).resolve().parents[2]
_PACKAGE = Path(__file__).resolve().parents[1]
SOURCE_SUFFIXES = (".py", ".sql")
SOURCE_DIGEST = "source_sha256"


def source_digest(package: Path = _PACKAGE) -> str:
    """SHA-256 over the package's source files (.py, .sql), each by its path in the package and its bytes:
    the code a refit runs, whatever else a commit changed."""
    digest = hashlib.sha256()
    files = sorted(p for p in package.rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file())
    for path in files:
        content = path.read_bytes()
        digest.update(f"{path.relative_to(package).as_posix()}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def same_code(recorded: dict[str, str], running: dict[str, str]) -> bool:
    """The refit runs the code of training: the same source digest, code version and libraries (the
    revision may differ); a record older than the digest has only its revision to compare."""
    if SOURCE_DIGEST not in recorded:
        return recorded == running
    return {k: v for k, v in recorded.items() if k != "revision"} == {
        k: v for k, v in running.items() if k != "revision"
    }


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
    """Python, the package's source digest and the versions of the libraries that decide what a fit
    produces."""
    env = {"python": platform.python_version(), SOURCE_DIGEST: source_digest()}
    for name in PACKAGES:
        try:
            env[name] = package_version(name)
        except PackageNotFoundError:
            env[name] = "absent"
    return env

"""A `make` target given a wrong argument says what is wrong in one line and fails, with no traceback.

The real Makefile targets (`setup` taken as done, `RUN` without uv so the test's own environment is used) on
an empty scratch data directory; make's own closing `make: *** [...] Error N` line is make's, not counted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fraud_assets_tests.platform import REPO_ROOT

MAKE_ERROR = re.compile(r"make(\[\d+\])?: \*\*\* ")


def _make(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    # As a user's shell runs it: not as a sub-make of `make test` (whose MAKELEVEL makes make say `make[1]`).
    inherited = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    env = {
        **inherited,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
        "FRAUD_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),  # a generated local key, if any, stays in the test
    }
    return subprocess.run(
        ["make", "-s", "-o", "setup", "RUN=scripts/with-env", f"PYTHON={sys.executable}", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _said(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if not MAKE_ERROR.match(line)]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["seed", "DEMO_DAYS=abc"], "make seed: DEMO_DAYS=abc is not a number of days (1 or more)"),
        (["run", "DEMO_DAYS=4x"], "make seed: DEMO_DAYS=4x is not a number of days (1 or more)"),
        (["reproduce"], "usage: make reproduce MODEL=<model_version>"),
    ],
    ids=["seed-days", "run-days", "reproduce-no-model"],
)
def test_a_wrong_argument_is_one_line_and_a_failure(tmp_path, args, line):
    done = _make(tmp_path, *args)
    assert done.returncode != 0
    assert _said(done) == [line]


def test_reproduce_on_a_data_directory_without_a_warehouse_is_one_line(tmp_path):
    done = _make(tmp_path, "reproduce", "MODEL=some-version")
    assert done.returncode != 0
    assert _said(done) == [
        f"refused: no warehouse.duckdb in {tmp_path / 'data'} (FRAUD_DATA_DIR or --data-dir): "
        "no model was registered there"
    ]


def test_pipeline_with_a_bad_business_date_is_one_line(tmp_path):
    done = _make(tmp_path, "pipeline", "FRAUD_FIRST_BUSINESS_DATE=2026-13-01")
    assert done.returncode != 0
    assert _said(done) == ["make pipeline: FRAUD_FIRST_BUSINESS_DATE='2026-13-01' is not a date (YYYY-MM-DD)"]

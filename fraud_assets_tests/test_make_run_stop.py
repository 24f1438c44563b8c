"""`make run` stopped as an operator stops it leaves no process of the platform behind: once make has
returned, no webserver, daemon, code server or run worker of its instance runs.

The real Makefile target (its `setup` and `seed` prerequisites taken as done, `RUN` on the test's own
environment: `uv run --no-sync` where uv is installed, as make runs it, else without uv) on an empty
landing zone, in a session of its own like a terminal's."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from fraud_assets_tests.platform import REPO_ROOT, free_port

pytestmark = pytest.mark.e2e
START_TIMEOUT = 240
STOP_TIMEOUT = 120


def _platform_processes(dagster_home: Path) -> list[psutil.Process]:
    """Every live process started for this instance: they all carry its DAGSTER_HOME (a zombie, exited and
    not yet reaped, runs nothing and counts as gone)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get("DAGSTER_HOME") == str(
                dagster_home
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _daemon_running(dagster_home: Path) -> bool:
    for proc in _platform_processes(dagster_home):
        if "dagster._daemon" in (proc.info["cmdline"] or []):
            return True
    return False


def _serves(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
            return True
    except OSError:
        return False


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "FRAUD_DATA_DIR": str(tmp_path / "data"),
        # `uv run --no-sync` on the environment running this test, never a sync of another one.
        "UV_PROJECT_ENVIRONMENT": sys.prefix,
    }


def _run_variable() -> str:
    """make's RUN: through `uv run` as the Makefile has it (uv passes the terminal's Ctrl-C on to the
    launcher, which got it too) where uv is installed."""
    uv = shutil.which("uv")
    return f"RUN={uv} run --frozen --no-sync scripts/with-env" if uv else "RUN=scripts/with-env"


def _start_make_run(tmp_path: Path) -> tuple[subprocess.Popen, Path, int]:
    dagster_home = tmp_path / "dagster_home"
    port = free_port()
    make = subprocess.Popen(
        ["make", "-o", "setup", "-o", "seed", _run_variable(), f"PORT={port}", "run"],
        cwd=REPO_ROOT,
        env=_env(tmp_path),
        stdout=(tmp_path / "make.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not (_serves(port) and _daemon_running(dagster_home)):
        if make.poll() is not None or time.monotonic() > deadline:
            _kill_all(make, dagster_home)
            raise AssertionError(f"make run did not start:\n{(tmp_path / 'make.log').read_text()[-3000:]}")
        time.sleep(1)
    return make, dagster_home, port


def _kill_all(make: subprocess.Popen, dagster_home: Path) -> None:
    """Cleanup only: what a failed test left running."""
    if make.poll() is None:
        make.kill()
        make.wait()
    for proc in _platform_processes(dagster_home):
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue


def _stop_and_list_leftovers(make: subprocess.Popen, dagster_home: Path, stop) -> list[str]:
    try:
        stop()
        make.wait(timeout=STOP_TIMEOUT)
        return [" ".join(p.info["cmdline"][:4]) for p in _platform_processes(dagster_home)]
    finally:
        _kill_all(make, dagster_home)


def test_make_run_killed_leaves_no_platform_process_running(tmp_path):
    """`kill <make pid>` (a supervisor, `timeout`, `kill %1`): SIGTERM to make alone."""
    make, home, _ = _start_make_run(tmp_path)
    leftovers = _stop_and_list_leftovers(make, home, lambda: os.kill(make.pid, signal.SIGTERM))
    assert leftovers == []


def test_make_run_interrupted_returns_only_once_every_platform_process_stopped(tmp_path):
    """Ctrl-C: SIGINT to the terminal's foreground process group. Before it, a second `make run` on the
    same instance is refused at once. The stop is said in one line, with no error from make or click:
    make ends of the SIGINT it got (130 in a shell), not with its child's failure."""
    make, home, port = _start_make_run(tmp_path)
    second = subprocess.run(
        ["make", "-o", "setup", "-o", "seed", "RUN=scripts/with-env", f"PORT={free_port()}", "run"],
        cwd=REPO_ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=STOP_TIMEOUT,
        check=False,
    )
    assert "the platform already runs on" in second.stderr
    leftovers = _stop_and_list_leftovers(make, home, lambda: os.killpg(make.pid, signal.SIGINT))
    assert leftovers == []
    assert not _serves(port)
    log = (tmp_path / "make.log").read_text()
    assert "make run: stopped" in log
    assert "Aborted!" not in log
    assert "make: ***" not in log  # make's "Error 1" or "Interrupt"
    assert make.returncode in (0, -signal.SIGINT)

"""`make run`'s launcher (fraud_assets/cli/serve.py): a HOST or PORT it cannot listen on is one line and
status 2 before anything starts; stopped with Ctrl-C behind `uv run`, which passes on the terminal's
Ctrl-C that the launcher got too, it stops `dg dev` once and cleanly, says so, and exits 0.

A stand-in `dg dev` records the signals it gets and, like click, answers SIGTERM with "Aborted!" and
status 1; a stand-in `uv run` passes on every SIGINT and SIGTERM it gets to the launcher."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fraud_assets.cli.serve import main
from fraud_assets_tests.platform import REPO_ROOT

START_TIMEOUT = 60
STOP_TIMEOUT = 60

FAKE_DG_DEV = """
import pathlib, signal, sys, time

log = pathlib.Path(sys.argv[1])
echoes = int(sys.argv[2])  # stop requests the stand-in uv passes on before this one ends its shutdown
stopping = False


def on_signal(sig, _frame):
    global stopping
    with log.open("a") as f:
        f.write(signal.Signals(sig).name + "\\n")
    if sig == signal.SIGTERM:
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    stopping = True


signal.signal(signal.SIGINT, on_signal)
signal.signal(signal.SIGTERM, on_signal)
log.open("a").write("ready\\n")
while not stopping or log.read_text().count("forwarded") < echoes:
    time.sleep(0.05)
time.sleep(1)  # the rest of a clean shutdown: a signal sent during it reaches a running process
"""

FAKE_UV_RUN = """
import os, signal, subprocess, sys

child = subprocess.Popen(sys.argv[2:])


def forward(sig, _frame):
    os.kill(child.pid, sig)
    with open(sys.argv[1], "a") as f:
        f.write("forwarded\\n")


signal.signal(signal.SIGINT, forward)
signal.signal(signal.SIGTERM, forward)
sys.exit(child.wait())
"""


def _start(tmp_path: Path, echoes: int) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "signals.log"
    (tmp_path / "dg_dev.py").write_text(FAKE_DG_DEV)
    (tmp_path / "uv_run.py").write_text(FAKE_UV_RUN)
    launcher = (
        "import sys; from pathlib import Path; from fraud_assets.cli.serve import serve; "
        f"sys.exit(serve(Path({str(tmp_path / 'home')!r}), "
        f"[sys.executable, {str(tmp_path / 'dg_dev.py')!r}, {str(log)!r}, '{echoes}'], 30))"
    )
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "uv_run.py"), str(log), sys.executable, "-c", launcher],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    _wait_for(proc, log, "ready")
    return proc, log


def _wait_for(proc: subprocess.Popen, log: Path, line: str, count: int = 1) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not (log.exists() and log.read_text().splitlines().count(line) >= count):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {line!r} in {log}: {proc.communicate()}")
        time.sleep(0.05)


def test_ctrl_c_passed_on_by_uv_stops_dg_dev_once_and_cleanly(tmp_path):
    proc, log = _start(tmp_path, echoes=1)
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: to the whole foreground group
    out, err = proc.communicate(timeout=STOP_TIMEOUT)
    assert sorted(log.read_text().split()) == ["SIGINT", "forwarded", "ready"]
    assert "Aborted!" not in err
    assert "make run: stopped" in out
    assert proc.returncode == 0


def test_a_second_ctrl_c_still_insists_with_sigterm(tmp_path):
    proc, log = _start(tmp_path, echoes=2)
    os.killpg(proc.pid, signal.SIGINT)
    _wait_for(proc, log, "forwarded")
    _wait_for(proc, log, "SIGINT")
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=STOP_TIMEOUT)
    assert log.read_text().split().count("SIGTERM") == 1
    assert "make run: stopped" in out
    assert proc.returncode == 0


def _refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    return err


def test_a_port_that_is_not_a_number_is_one_line_before_anything_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert _refused(capsys, ["--port", "30oo"]) == "make run: PORT=30oo is not a port number (1-65535)"
    assert not (tmp_path / "home").exists()


def test_a_port_another_process_listens_on_is_one_line_before_anything_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = _refused(capsys, ["--host", "127.0.0.1", "--port", str(port)])
    assert err.startswith(f"make run: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert not (tmp_path / "home").exists()

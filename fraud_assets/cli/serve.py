"""`make run`'s last step: `dg dev` (webserver, daemon, code server) on this instance, and nothing of it left
running once it stops, however it is stopped.

A shell or `flock` between make and `dg dev` dies of SIGTERM without passing it on: `kill` of `make run`
(a supervisor, `timeout`, `kill %1`) would return at once and leave the whole platform running, daemon
included, still launching runs. So make's recipe execs this process (through `uv run` and
`scripts/with-env`, which both pass SIGTERM on), and it:

- holds `$DAGSTER_HOME/.run.lock` (one platform per instance; the descriptor is inherited by every process
  of `dg dev`, so the lock is held while any of them runs) and exits 75 when another platform holds it;
- starts `dg dev` in a process group of its own and passes each stop request (SIGINT, SIGTERM or SIGHUP) to
  that whole group, as a terminal's Ctrl-C does (run workers end their runs themselves): the first as
  SIGINT, a repeated one as SIGTERM. `uv run` passes on the signals it gets, the terminal's Ctrl-C
  included, which this process got too: that echo from the parent is the same request, not a second one
  (a second would make `dg dev` abort its clean shutdown: click's "Aborted!", exit 1, make's "Error 1");
- once `dg dev` has exited, waits up to `--grace` seconds for the rest of its group (a daemon, a code
  server, a run worker that outlived it), then kills what is left, and says so;
- exits only then, so `make run` returning means the platform is gone: 0 after a stop request, with a
  line that says so (make then prints no error; make itself ends as its signal says, 130 for Ctrl-C),
  `dg dev`'s own status when it stopped unasked. If this process is killed, `dg dev` gets SIGTERM from
  the kernel (Linux) and shuts its services down itself.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fraud_assets.cli.dagster_home import show_pools

LOCK_BUSY_EXIT = 75
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1


def _dg() -> str:
    beside = Path(sys.executable).with_name("dg")
    return str(beside) if beside.exists() else (shutil.which("dg") or "dg")


def _in_child() -> None:
    """Before exec: default signal handling (started in the background, SIGINT is inherited ignored, and
    Dagster maps SIGTERM to its SIGINT handler, so `dg dev` would ignore both), and SIGTERM if this
    launcher dies without stopping it."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_DFL)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def listen_problem(host: str, port: str) -> str | None:
    """Why the webserver could not listen on host:port, or None. Asked before `dg dev` starts: when its
    webserver cannot bind, `dg dev` prints a traceback and keeps its daemon running, with no UI."""
    if not port.isdigit() or not 0 < int(port) < 65536:
        return f"PORT={port} is not a port number (1-65535)"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        return f"HOST={host} is not an address or a name this machine resolves ({exc})"
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the webserver binds
        try:
            probe.bind(address)
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror} (set HOST= / PORT=)"
    return None


def serve(dagster_home: Path, argv: list[str], grace_seconds: float) -> int:
    dagster_home.mkdir(parents=True, exist_ok=True)
    lock = (dagster_home / ".run.lock").open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(
            f"make run: the platform already runs on {dagster_home} (its processes hold "
            f"{dagster_home}/.run.lock): stop it first",
            file=sys.stderr,
        )
        return LOCK_BUSY_EXIT

    # Blocked and read with sigtimedwait: its siginfo names the sender, which tells an echo from a request.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
    child = subprocess.Popen(  # noqa: S603 - dg dev with the operator's host, port and workspace
        argv,
        process_group=0,
        # Its own group is not the terminal's foreground one: a read of the terminal would stop it.
        stdin=subprocess.DEVNULL,
        pass_fds=[lock.fileno()],
        preexec_fn=_in_child,
    )
    pgid = child.pid
    requests = 0
    previous: int | None = None
    while child.poll() is None:
        info = signal.sigtimedwait(FORWARDED, 0.2)
        if info is None:
            continue
        echo = previous == info.si_signo and info.si_pid == os.getppid()
        previous = info.si_signo
        if echo:
            continue
        # The first stop request is a Ctrl-C to the whole group; a repeated one insists (SIGTERM).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGINT if requests == 0 else signal.SIGTERM)
        requests += 1

    deadline = time.monotonic() + grace_seconds
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _group_alive(pgid):
        print(
            f"make run: dg dev stopped but processes of its group {pgid} were still running "
            f"{grace_seconds:g} s later: killed",
            file=sys.stderr,
        )
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    if requests:
        print("make run: stopped; no process of the platform is left running", flush=True)
        return 0
    return child.returncode if child.returncode >= 0 else 128 - child.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="3000")
    parser.add_argument("--workspace", default="workspace.yaml")
    parser.add_argument("--grace", type=float, default=30.0, help="seconds left to dg dev's processes")
    args = parser.parse_args(argv)
    problem = listen_problem(args.host, str(args.port))
    if problem:
        print(f"make run: {problem}", file=sys.stderr)
        return 2
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home")
    dg_dev = [_dg(), "dev", "-h", args.host, "-p", str(args.port), "-w", args.workspace]
    show_pools(home)
    return serve(home, dg_dev, args.grace)


if __name__ == "__main__":
    sys.exit(main())

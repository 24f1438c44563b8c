"""A private PostgreSQL server for tests, from the machine's own PostgreSQL binaries.

    with PostgresServer(user="dagster", database="dagster") as pg:
        env = pg.env()        # DAGSTER_PG_HOST / _PORT / _USER / _PASSWORD / _DB for fraud_assets' instance

A fresh cluster (`initdb`) in its own temporary directory on a free loopback port, so it works the same on a
CI machine where nothing runs and on a dev machine whose own cluster may already listen on 5432, and it
never touches that cluster's data. As root the server runs as the `postgres` user (PostgreSQL refuses root).
Durability is off (fsync): the cluster is thrown away with the test.

Binaries: `$PG_BIN`, else the newest /usr/lib/postgresql/<version>/bin, else `initdb` on PATH. When none
is found or the server does not start, `start()` raises: a test that needs Postgres fails, never skips.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
from psycopg2 import sql

from fraud_assets_tests.platform import free_port

SUPERUSER = "postgres"


def postgres_bin_dir() -> Path:
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates += sorted(versions, key=lambda p: int(p.parent.name), reverse=True)
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).parent)
    for bin_dir in candidates:
        if (bin_dir / "initdb").exists() and (bin_dir / "postgres").exists():
            return bin_dir
    raise RuntimeError(
        "PostgreSQL server binaries not found (set PG_BIN, or install postgresql: initdb and postgres)"
    )


def _run_as() -> dict:
    """Popen arguments that drop root to the postgres user; nothing for anyone else."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError as exc:
        raise RuntimeError("running as root needs the 'postgres' user to own the test cluster") from exc
    return {"user": SUPERUSER, "group": SUPERUSER, "extra_groups": []}


def _stop_with_parent() -> None:
    """In the server process, before exec: a fast shutdown if the test process dies without cleaning up."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG


class PostgresServer:
    def __init__(self, user: str = "dagster", database: str = "dagster", password: str | None = None) -> None:
        self.user = user
        self.database = database
        self.password = password or secrets.token_urlsafe(24)
        self.host = "127.0.0.1"
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path | None:
        return self._dir / "server.log" if self._dir else None

    def env(self) -> dict[str, str]:
        """The settings fraud_assets' instance reads (fraud_assets/cli/dagster_home.py)."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.database,
        }

    def connect(self, database: str | None = None):
        """A connection over TCP with the password, as the platform connects."""
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.database,
            connect_timeout=5,
        )

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self, timeout: float = 60, attempts: int = 3) -> PostgresServer:
        bin_dir = postgres_bin_dir()
        run_as = _run_as()
        # /tmp, not pytest's tmp_path: the postgres user must reach the directory, root's 0700 tree is closed.
        self._dir = Path(tempfile.mkdtemp(prefix="fraud-pg-"))
        if run_as:
            shutil.chown(self._dir, run_as["user"], run_as["group"])
        data = self._dir / "data"
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-E", "UTF8", "--no-sync",
             "--auth-local=trust", "--auth-host=scram-sha-256"],
            check=True, capture_output=True, timeout=120, **run_as,
        )  # fmt: skip
        for attempt in range(attempts):
            self.port = free_port()
            try:
                self._start_server(bin_dir, data, run_as, timeout)
                break
            except RuntimeError:
                self._stop_server()
                if attempt == attempts - 1:
                    raise
        self._create_role_and_database()
        return self

    def _start_server(self, bin_dir: Path, data: Path, run_as: dict, timeout: float) -> None:
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self._dir),
             "-c", f"listen_addresses={self.host}", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_stop_with_parent,  # noqa: PLW1509 - only calls prctl
            **run_as,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self._proc.returncode}:\n{self.log_tail()}")
            try:
                psycopg2.connect(
                    host=str(self._dir), port=self.port, user=SUPERUSER, dbname="postgres"
                ).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres not ready after {timeout:.0f}s:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.2)

    def _create_role_and_database(self) -> None:
        conn = psycopg2.connect(host=str(self._dir), port=self.port, user=SUPERUSER, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(self.user)), [self.password]
            )
            cur.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(self.database), sql.Identifier(self.user)
                )
            )
        conn.close()

    def _stop_server(self, grace: float = 30) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # fast shutdown: disconnects clients, then stops
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop(self) -> None:
        self._stop_server()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, chars: int = 3000) -> str:
        path = self.log_path
        return path.read_text(errors="replace")[-chars:] if path and path.exists() else ""

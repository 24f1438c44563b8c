"""A real fraud_assets platform for tests and benchmarks: `dg dev` (webserver + daemon + code server)
on a free loopback port, with its own DAGSTER_HOME and FRAUD_DATA_DIR, driven and observed over GraphQL;
or the separate processes of a deployment (`processes=`, e.g. deploy/compose.yaml's services through
fraud_assets_tests/compose.py), each restartable on its own.

    from fraud_assets_tests.platform import Platform

    with Platform(tmp_path) as p:                 # starts, waits until the code location is loaded
        p.wait_for(lambda: p.materialized_partitions("scoring/transaction_scores") >= {"2018-04-02"},
                   timeout=300, what="day scored")
        runs = p.runs(tags={"fraud_assets/trigger": "training"})
    # leaving the block stops every process it started (SIGTERM, then SIGKILL after a grace period)

API (kept small on purpose; the browser tests reuse it):
- `Platform(root, module=..., env=..., port=None)`: `root/data` is FRAUD_DATA_DIR, `root/dagster_home`
  DAGSTER_HOME (its dagster.yaml written by `fraud_assets.cli.dagster_home.write_dagster_yaml`).
- `Platform(root, processes={name: Process(argv, env, cwd, ready)}, port=<webserver port>, env=...)`:
  those processes instead, started in order (each after the previous one's `ready` command passes), `env`
  added to each; they bring their own DAGSTER_HOME and FRAUD_DATA_DIR (`root/data` by convention).
- `start(timeout)`, `stop()`, context manager; `restart(name, timeout)` stops and starts one process;
  `url` (for a browser), `data_dir`, `log_path` (every process's output).
- `graphql(query, variables)` -> the `data` dict (raises on GraphQL errors).
- `runs(tags=None, statuses=None)` -> [{runId, status, jobName, tags: {k: v}}].
- `materializations(key)` -> [{partition, runId, timestamp}], newest first.
- `materialized_partitions(key)` -> set of partition keys (None for unpartitioned) materialised so far.
- `check_executions(key, check_name)` -> [{runId, status, partition, severity}].
- `wait_for(predicate, timeout, what, interval)` -> the predicate's first truthy value, else TimeoutError
  carrying the tail of the platform's log.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fraud_assets.cli.dagster_home import write_dagster_yaml

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[1]
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
IN_FLIGHT = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the test process dies without cleaning up (Linux), so a
    killed test run cannot leave a platform behind. SIGINT back to its default: a test run started in the
    background (CI, nohup) ignores it, the child inherits that, and Dagster maps SIGTERM to the SIGINT
    handler, so `dg dev` ignored SIGTERM and every stop waited out its 30 s grace."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _key_input(key: str) -> dict:
    return {"path": key.split("/")}


@dataclass(frozen=True)
class Process:
    """One long-running process of the platform. `ready`: a command that exits 0 once it serves."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    ready: list[str] | None = None


class Platform:
    def __init__(
        self,
        root: Path,
        module: str = "fraud_assets.definitions",
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        processes: Mapping[str, Process] | None = None,
    ) -> None:
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.dagster_home = self.root / "dagster_home"
        self.module = module
        self.extra_env = dict(env or {})
        if processes and port is None:
            raise ValueError("processes= needs port= (where their webserver listens)")
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.root / "platform.log"
        self.processes = dict(processes or {})
        self._procs: dict[str, subprocess.Popen] = {}
        self._log = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self, timeout: float = 180) -> Platform:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        try:
            if not self.processes:
                self.processes = {"dagster-dev": self._dagster_dev()}
            for name in self.processes:
                self._launch(name, timeout)
            self.wait_for(self._loaded, timeout=timeout, what="code location loaded", interval=1.0)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, name: str, timeout: float = 180) -> None:
        """Stops one process (its whole group) and starts it again, as an operator restarts a service."""
        self._stop_process(name)
        self._launch(name, timeout)
        self.wait_for(self._loaded, timeout=timeout, what=f"{name} back, code location loaded", interval=1.0)

    def _dagster_dev(self) -> Process:
        write_dagster_yaml(self.dagster_home)
        workspace = self.root / "workspace.yaml"
        workspace.write_text(
            "load_from:\n"
            "  - python_module:\n"
            f"      module_name: {self.module}\n"
            "      location_name: fraud_assets\n"
            f"      working_directory: {REPO_ROOT}\n"
        )
        env = {
            **os.environ,
            "FRAUD_DATA_DIR": str(self.data_dir),
            "DAGSTER_HOME": str(self.dagster_home),
            "FRAUD_PAN_KEY": os.environ.get("FRAUD_PAN_KEY", "platform-test-key-not-a-secret"),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        dg = Path(sys.executable).with_name("dg")
        argv = [str(dg), "dev", "-h", "127.0.0.1", "-p", str(self.port), "-w", str(workspace)]
        return Process(argv=argv, env=env, cwd=REPO_ROOT)

    def _launch(self, name: str, timeout: float) -> None:
        spec = self.processes[name]
        env = {**spec.env, "PYTHONUNBUFFERED": "1", **self.extra_env}
        # Own session: stopping signals exactly this process group (the process and the children it spawned).
        self._procs[name] = subprocess.Popen(
            spec.argv,
            cwd=spec.cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl; no threads in use yet
        )
        if spec.ready:
            self.wait_for(lambda: self._ready(name, env), timeout=timeout, what=f"{name} ready", interval=1.0)

    def _ready(self, name: str, env: Mapping[str, str]) -> bool:
        self._check_alive()
        spec = self.processes[name]
        check = subprocess.run(
            spec.ready, cwd=spec.cwd, env=env, capture_output=True, timeout=60, check=False
        )
        return check.returncode == 0

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail()}")

    def _stop_process(self, name: str, grace: float = 30) -> None:
        proc = self._procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # Children that outlived their parent (a run worker) are still in the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop(self, grace: float = 30) -> None:
        for name in reversed(list(self._procs)):
            self._stop_process(name, grace)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Platform:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    # -- GraphQL ---------------------------------------------------------------------------------------
    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        req = urllib.request.Request(  # noqa: S310 - http to our own loopback server
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - our loopback server
            payload = json.loads(resp.read())
        if payload.get("errors"):
            raise RuntimeError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def _loaded(self) -> bool:
        self._check_alive()
        try:
            data = self.graphql(
                """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
                     locationOrLoadError { __typename ... on PythonError { message } } } } } }""",
                timeout=5,
            )
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False
        entries = data["workspaceOrError"].get("locationEntries") or []
        for entry in entries:
            err = entry.get("locationOrLoadError") or {}
            if err.get("__typename") == "PythonError":
                raise RuntimeError(f"code location failed to load: {err.get('message')}")
        return bool(entries) and all(
            e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries
        )

    def runs(self, tags: Mapping[str, str] | None = None, statuses: list[str] | None = None) -> list[dict]:
        flt: dict[str, Any] = {}
        if tags:
            flt["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        if statuses:
            flt["statuses"] = statuses
        data = self.graphql(
            """query($f: RunsFilter) { runsOrError(filter: $f) { __typename
                 ... on Runs { results { runId status jobName tags { key value } } } } }""",
            {"f": flt},
        )
        runs = data["runsOrError"]["results"]
        for run in runs:
            run["tags"] = {t["key"]: t["value"] for t in run["tags"]}
        return runs

    def materializations(self, key: str, limit: int = 1000) -> list[dict]:
        """Newest first: [{partition, runId, timestamp}]."""
        data = self.graphql(
            """query($k: AssetKeyInput!, $n: Int) { assetOrError(assetKey: $k) { __typename
                 ... on Asset { assetMaterializations(limit: $n) { partition runId timestamp } } } }""",
            {"k": _key_input(key), "n": limit},
        )
        asset = data["assetOrError"]
        return asset["assetMaterializations"] if asset["__typename"] == "Asset" else []

    def materialized_partitions(self, key: str, limit: int = 1000) -> set[str | None]:
        return {m["partition"] for m in self.materializations(key, limit)}

    def check_executions(self, key: str, check_name: str, limit: int = 100) -> list[dict]:
        data = self.graphql(
            """query($k: AssetKeyInput!, $c: String!, $n: Int!) {
                 assetCheckExecutions(assetKey: $k, checkName: $c, limit: $n) {
                   runId status partition evaluation { severity } } }""",
            {"k": _key_input(key), "c": check_name, "n": limit},
        )
        return [
            {**e, "severity": (e.get("evaluation") or {}).get("severity")}
            for e in data["assetCheckExecutions"]
        ]

    def check_names(self, key: str) -> list[str]:
        data = self.graphql(
            """query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { __typename
                 ... on AssetNode { assetChecksOrError { ... on AssetChecks { checks { name } } } } } }""",
            {"k": _key_input(key)},
        )
        node = data["assetNodeOrError"]
        if node["__typename"] != "AssetNode":
            return []
        return [c["name"] for c in (node["assetChecksOrError"].get("checks") or [])]

    # -- waiting ---------------------------------------------------------------------------------------
    def wait_for(
        self, predicate: Callable[[], T], timeout: float, what: str = "condition", interval: float = 2.0
    ) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"timed out after {timeout:.0f}s waiting for {what}\n"
                    f"runs in flight: {self._runs_in_flight_summary()}\n{self.log_tail()}"
                )
            time.sleep(interval)

    def _runs_in_flight_summary(self) -> str:
        """What was still queued or running when a wait timed out (id, status, job, trigger, partition)."""
        try:
            runs = self.runs(statuses=IN_FLIGHT)
        except Exception as exc:  # noqa: BLE001 - a diagnostic must not hide the timeout
            return f"(could not list: {exc!r})"
        keep = (
            "fraud_assets/trigger",
            "dagster/partition",
            "dagster/asset_partition_range_start",
            "dagster/backfill",
        )
        lines = []
        for r in runs:
            tags = {k: v for k, v in r["tags"].items() if k in keep}
            lines.append(f"{r['runId'][:8]} {r['status']} {r['jobName']} {tags}")
        return "; ".join(lines) or "none"

"""A real fraud_assets platform for tests and benchmarks: `dagster dev` (webserver + daemon + code server)
on a free loopback port, with its own DAGSTER_HOME and FRAUD_DATA_DIR, driven and observed over GraphQL.

    from fraud_assets_tests.platform import Platform

    with Platform(tmp_path) as p:                 # starts, waits until the code location is loaded
        p.wait_for(lambda: p.materialized_partitions("scoring/transaction_scores") >= {"2018-04-02"},
                   timeout=300, what="day scored")
        runs = p.runs(tags={"fraud_assets/trigger": "training"})
    # leaving the block stops every process it started (SIGTERM, then SIGKILL after a grace period)

API (kept small on purpose; the browser tests reuse it):
- `Platform(root, module=..., env=..., port=None)`: `root/data` is FRAUD_DATA_DIR, `root/dagster_home`
  DAGSTER_HOME (its dagster.yaml written by `fraud_assets.cli.dagster_home.write_dagster_yaml`).
- `start(timeout)`, `stop()`, context manager; `url` (for a browser), `data_dir`, `log_path`.
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
from pathlib import Path
from typing import Any, TypeVar

from fraud_assets.cli.dagster_home import write_dagster_yaml

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[1]
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
IN_FLIGHT = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the test process dies without cleaning up (Linux), so a
    killed test run cannot leave a platform behind."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _key_input(key: str) -> dict:
    return {"path": key.split("/")}


class Platform:
    def __init__(
        self,
        root: Path,
        module: str = "fraud_assets.definitions",
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.dagster_home = self.root / "dagster_home"
        self.module = module
        self.extra_env = dict(env or {})
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.root / "platform.log"
        self._proc: subprocess.Popen | None = None
        self._log = None

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self, timeout: float = 180) -> Platform:
        self.data_dir.mkdir(parents=True, exist_ok=True)
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
        dagster = Path(sys.executable).with_name("dagster")
        self._log = self.log_path.open("ab")
        # Own session: stop() signals exactly this process group (dagster dev and the children it spawned).
        self._proc = subprocess.Popen(
            [str(dagster), "dev", "-h", "127.0.0.1", "-p", str(self.port), "-w", str(workspace)],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl; no threads in use yet
        )
        try:
            self.wait_for(self._loaded, timeout=timeout, what="code location loaded", interval=1.0)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, grace: float = 30) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # Children that outlived dagster dev (a run worker) are still in the group.
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
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
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {self._proc.returncode}:\n{self.log_tail()}")
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

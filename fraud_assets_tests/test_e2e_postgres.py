"""The deployment of deploy/compose.yaml, run: its code server, webserver and daemon as separate local
processes (their own commands, environment and mounts, fraud_assets_tests/compose.py) on a real private
PostgreSQL server standing in for its postgres service. A seeded world is trained and scored without a
click, the webserver is restarted mid-way without losing run history, and a landed day is then scored.

Needs the machine's PostgreSQL server binaries (fraud_assets_tests/postgres.py): without them every test
here fails, none is skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fraud_assets_tests.compose import local_services
from fraud_assets_tests.platform import REPO_ROOT, Platform
from fraud_assets_tests.postgres import PostgresServer
from fraud_assets_tests.test_e2e_daemon import SEED_DAYS, WORLD, auth_days, simulate

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

COMPOSE = REPO_ROOT / "deploy" / "compose.yaml"
SECRETS = {"DAGSTER_PG_PASSWORD": "e2e-pg-password-not-a-secret", "FRAUD_PAN_KEY": "e2e-key-not-a-secret"}
DATA_VOLUME = "fraud-data"
SCORES = "scoring/transaction_scores"
BOOTSTRAP_TIMEOUT = 1500
DAY_TIMEOUT = 400
DAILY_CHAIN = ("raw/authorizations", "cleaned/transactions", "features/transaction_features", SCORES)


@pytest.fixture(scope="module")
def postgres():
    """The machine's PostgreSQL, set up as the compose file's postgres service sets up its own."""
    service_env = yaml.safe_load(COMPOSE.read_text())["services"]["postgres"]["environment"]
    with PostgresServer(
        user=service_env["POSTGRES_USER"],
        database=service_env["POSTGRES_DB"],
        password=SECRETS["DAGSTER_PG_PASSWORD"],
    ) as pg:
        yield pg


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, postgres):
    root = tmp_path_factory.mktemp("deployment")
    simulate(root / "data", "--days", str(SEED_DAYS), *WORLD)
    local = local_services(
        COMPOSE, root, SECRETS, stand_ins={"postgres": postgres.port}, volumes={DATA_VOLUME: root / "data"}
    )
    # Test settings for the tiny world (as in test_e2e_daemon.py), on every process like a config map.
    env = {"FRAUD_BOOTSTRAP_MIN_DAYS": str(SEED_DAYS), "FRAUD_BOOTSTRAP_MIN_AUC": "0.55"}
    with Platform(root, processes=local.processes, port=local.port("webserver"), env=env) as platform:
        yield platform


@pytest.fixture(scope="module")
def bootstrapped(deployment):
    seeded = auth_days(deployment.data_dir)
    deployment.wait_for(
        lambda: seeded <= deployment.materialized_partitions(SCORES, limit=5000),
        timeout=BOOTSTRAP_TIMEOUT,
        what="bootstrap: a champion trained and every seeded day scored",
        interval=5,
    )
    return seeded


def history(platform: Platform) -> dict[str, str]:
    return {r["runId"]: r["status"] for r in platform.runs() if r["status"] in {"SUCCESS", "FAILURE"}}


def captured_step_logs(platform: Platform, run_id: str) -> list[str]:
    """What the webserver serves of a run's captured step output (written by the code server's workers)."""
    events = platform.graphql(
        """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { __typename
             ... on LogsCapturedEvent { fileKey } } } } }""",
        {"id": run_id},
    )["logsForRun"]["events"]
    keys = {e["fileKey"] for e in events if e["__typename"] == "LogsCapturedEvent"}
    logs = [
        platform.graphql(
            "query($k: [String!]!) { capturedLogs(logKey: $k) { stdout stderr } }",
            {"k": [run_id, "compute_logs", key]},
        )["capturedLogs"]
        for key in keys
    ]
    return [(log["stdout"] or "") + (log["stderr"] or "") for log in logs]


def test_a_seeded_deployment_trains_a_champion_and_scores_every_day_without_a_click(deployment, bootstrapped):
    assert deployment.materialized_partitions("models/champion") == {None}
    [training, *_] = deployment.runs(tags={"fraud_assets/retrain_reason": "bootstrap"})
    assert training["status"] == "SUCCESS"
    assert len(bootstrapped) == SEED_DAYS


def test_a_webserver_restart_loses_no_run_history(deployment, bootstrapped):
    before = history(deployment)
    scored = deployment.materialized_partitions(SCORES, limit=5000)
    deployment.restart("webserver")
    after = history(deployment)
    assert before
    assert before.items() <= after.items()
    assert scored <= deployment.materialized_partitions(SCORES, limit=5000)


def test_a_landed_day_flows_from_raw_to_scores_after_the_restart(deployment, bootstrapped):
    simulate(deployment.data_dir, "--append-days", "1")
    [day] = auth_days(deployment.data_dir) - bootstrapped
    for key in DAILY_CHAIN:
        deployment.wait_for(
            lambda key=key: day in deployment.materialized_partitions(key, limit=5000),
            timeout=DAY_TIMEOUT,
            what=f"{key} {day}",
        )


def test_the_webserver_serves_step_logs_the_code_servers_run_workers_wrote(deployment, bootstrapped):
    [run, *_] = deployment.runs(tags={"fraud_assets/retrain_reason": "bootstrap"})
    logs = captured_step_logs(deployment, run["runId"])
    assert logs
    assert any("STEP_START" in text or "Started execution" in text for text in logs)


def test_the_daemon_touches_no_file_and_no_secret_lands_in_the_data_volume(deployment, bootstrapped):
    daemon_data = Path(deployment.processes["daemon"].env["FRAUD_DATA_DIR"])
    assert not daemon_data.exists() or not any(daemon_data.iterdir())
    assert not (deployment.data_dir / ".pan_key").exists()
    for home in ("code-server", "webserver", "daemon"):
        text = (Path(deployment.processes[home].env["DAGSTER_HOME"]) / "dagster.yaml").read_text()
        assert SECRETS["DAGSTER_PG_PASSWORD"] not in text

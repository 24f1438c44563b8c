"""End to end with a real daemon, deployed as deploy/compose.yaml deploys it: the instance on PostgreSQL and
the code server, webserver and daemon as separate processes (fraud_assets_tests/deployment.py). A seeded
platform bootstraps itself, the webserver restarts mid-way without losing run history, a landed day flows
to scores with its checks though the webserver restarts while its run is in flight, a re-sent identical
file launches nothing, a drifted day requests retraining;
the webserver serves the step logs the code server's runs wrote, and the daemon touches no file. Then the
model governance cycle runs: the retrained challenger waits for approval, shadow-scores new days, is
refused to its own trainer, approved by a second person, and scores the next day as champion.

One deployment (temporary data volume, a private PostgreSQL server from the machine's binaries) serves the
module's tests in order; every wait is bounded and everything is always shut down. Without PostgreSQL
server binaries the tests fail, they never skip. `dg dev` on SQLite (`make run`) is exercised by
test_e2e_daemon_machinery.py and test_browser.py.
"""

from __future__ import annotations

import getpass
import gzip
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from fraud_assets_tests.deployment import TEST_SECRETS, deployed_platform
from fraud_assets_tests.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]

SEED_DAYS = 21  # the models layer's default protocol needs 7 train + 7 delay + 7 test days
WORLD = ["--customers", "200", "--terminals", "400", "--seed", "11"]
BOOTSTRAP_TIMEOUT = 1500
DAY_TIMEOUT = 400
# A retraining (or a rescoring after a lookback rebuild) may still run when a test lands its day.
QUIET_TIMEOUT = 900
SCORES = "scoring/transaction_scores"
DAILY_CHAIN = ("raw/authorizations", "cleaned/transactions", "features/transaction_features", SCORES)


def simulate(data_dir: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "fraud_assets.simulator", "--data-dir", str(data_dir), "--quiet", *args],
        check=True,
        env={**os.environ, "FRAUD_DATA_DIR": str(data_dir)},
        timeout=300,
    )


def auth_days(data_dir: Path) -> set[str]:
    return {p.name.split("_")[2][:10] for p in (data_dir / "landing" / "authorizations").glob("*/acq_*")}


def landing_runs(platform: Platform) -> list[dict]:
    return platform.runs(tags={"fraud_assets/trigger": "landing"})


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("platform")
    simulate(root / "data", "--days", str(SEED_DAYS), *WORLD)
    env = {
        "FRAUD_BOOTSTRAP_MIN_DAYS": str(SEED_DAYS),
        # 200 cards over 21 days: one small fold, so the first-champion AUC floor is relaxed (the AP
        # lift and CP@100 sanity rules still hold).
        "FRAUD_BOOTSTRAP_MIN_AUC": "0.55",
        "FRAUD_REGISTRY_KEY": "e2e-registry-key-not-a-secret-0123456789",
        # The governance tests need the drift retraining's challenger to pass the gate (on 200 cards its
        # prequential AP is noise) and no decay retraining to replace it while it waits.
        "FRAUD_GATE_AP_MARGIN": "-1",
        "FRAUD_GATE_CP_TOLERANCE": "1",
        "FRAUD_AP_FLOOR": "0",
    }
    with deployed_platform(root, env=env) as p:
        yield p


@pytest.fixture(scope="module")
def bootstrapped(platform):
    seeded = auth_days(platform.data_dir)
    platform.wait_for(
        lambda: seeded <= platform.materialized_partitions(SCORES, limit=5000),
        timeout=BOOTSTRAP_TIMEOUT,
        what="bootstrap: a champion trained and every seeded day scored",
        interval=5,
    )
    return seeded


def test_seeded_platform_trains_a_champion_and_scores_every_day_without_a_click(platform, bootstrapped):
    assert platform.materialized_partitions("models/champion") == {None}
    [training, *_] = platform.runs(tags={"fraud_assets/retrain_reason": "bootstrap"})
    assert training["status"] == "SUCCESS"
    assert len(bootstrapped) == SEED_DAYS


def finished_runs(platform: Platform) -> dict[str, str]:
    return {r["runId"]: r["status"] for r in platform.runs(statuses=["SUCCESS", "FAILURE"])}


def test_a_webserver_restart_mid_way_loses_no_run_history(platform, bootstrapped):
    before = finished_runs(platform)
    scored = platform.materialized_partitions(SCORES, limit=5000)
    platform.restart("webserver")
    assert before
    assert before.items() <= finished_runs(platform).items()
    assert scored <= platform.materialized_partitions(SCORES, limit=5000)


def test_a_landed_day_flows_from_raw_to_scores_and_its_checks_run(platform, bootstrapped):
    before = {r["runId"] for r in landing_runs(platform)}
    simulate(platform.data_dir, "--append-days", "1")
    [day] = auth_days(platform.data_dir) - bootstrapped
    # The webserver restarts while the day's run is in flight: runs belong to the daemon and the code
    # server, so the run goes on and the day still reaches its scores.
    [in_flight] = platform.wait_for(
        lambda: [r for r in landing_runs(platform) if r["runId"] not in before and r["status"] == "STARTED"],
        timeout=DAY_TIMEOUT,
        what=f"the landed run of {day} in flight",
        interval=0.5,
    )
    platform.restart("webserver")
    for key in DAILY_CHAIN:
        platform.wait_for(
            lambda key=key: day in platform.materialized_partitions(key, limit=5000),
            timeout=DAY_TIMEOUT,
            what=f"{key} {day}",
        )
    checks = platform.check_names("raw/authorizations")
    assert checks, "raw/authorizations declares its contract checks"
    ran = [e for name in checks for e in platform.check_executions("raw/authorizations", name)]
    assert any(e["partition"] == day for e in ran)
    status = platform.wait_for(
        lambda: {
            r["runId"]: r["status"] for r in platform.runs(statuses=["SUCCESS", "FAILURE", "CANCELED"])
        }.get(in_flight["runId"]),
        timeout=DAY_TIMEOUT,
        what="the run in flight during the restart to end",
    )
    assert status == "SUCCESS"


def test_a_resent_identical_file_launches_no_run(platform, bootstrapped):
    before = {r["runId"] for r in landing_runs(platform)}
    original = sorted((platform.data_dir / "landing" / "authorizations").glob("*/acq_a_*"))[-1]
    business_date = original.name.split("_")[2][:10]
    target = platform.data_dir / "landing" / "authorizations" / "2099-01-01"
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f".acq_a_{business_date}_resend.csv.gz"
    shutil.copyfile(original, tmp)
    tmp.rename(target / f"acq_a_{business_date}_resend.csv.gz")
    time.sleep(30)  # six landing-sensor intervals
    assert {r["runId"] for r in landing_runs(platform)} == before


def _drift(path: Path, factor: float) -> bytes:
    """The file's authorisations with every amount multiplied: same cards and terminals, new spending."""
    raw = gzip.decompress(path.read_bytes())
    if path.name.endswith(".csv.gz"):
        df = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
        amount = pd.to_numeric(df["amount"].str.replace(",", "."), errors="coerce")
        df["amount"] = (amount * factor).round(2).map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
        return gzip.compress(df.to_csv(index=False).encode())
    df = pd.read_json(io.BytesIO(raw), lines=True, dtype=False)
    df["amount_minor"] = (pd.to_numeric(df["amount_minor"], errors="coerce") * factor).round().astype("Int64")
    return gzip.compress(df.to_json(orient="records", lines=True).encode())


def test_a_drifted_day_requests_a_training_run_with_the_reason(platform, bootstrapped, tmp_path):
    # Simulate the next day in a scratch copy, inflate its amounts, then land it atomically.
    scratch = tmp_path / "scratch"
    shutil.copytree(platform.data_dir / "landing", scratch / "landing")
    for extra in ("simulator_state.json", "ground_truth"):
        src = platform.data_dir / extra
        if src.is_dir():
            shutil.copytree(src, scratch / extra)
        elif src.exists():
            shutil.copy(src, scratch / extra)
    before_days = auth_days(scratch)
    simulate(scratch, "--append-days", "1")
    [day] = auth_days(scratch) - before_days
    # Land it on a quiet platform: a retraining still running for the previous day would read this day's
    # features too, and the trigger rightly does not retrain again for a day the models already saw.
    platform.wait_for(
        lambda: not platform.runs(statuses=["QUEUED", "NOT_STARTED", "STARTING", "STARTED"]),
        timeout=QUIET_TIMEOUT,
        what="no run in flight",
        interval=5,
    )
    # Every file the appended day brought lands (its authorisations inflated), and the simulator's state
    # follows, so later tests append the day after this one.
    for path in sorted((scratch / "landing").glob("*/*/*")):
        dest = platform.data_dir / path.relative_to(scratch)
        if dest.exists():
            continue
        drifted = path.parent.parent.name == "authorizations" and f"_{day}" in path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}")
        tmp.write_bytes(_drift(path, 6.0) if drifted else path.read_bytes())
        tmp.rename(dest)
    for extra in ("simulator_state.json", "ground_truth"):
        src = scratch / extra
        if src.is_dir():
            shutil.copytree(src, platform.data_dir / extra, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy(src, platform.data_dir / extra)

    def drift_training():
        runs = platform.runs(tags={"fraud_assets/retrain_reason": "drift"})
        return [r for r in runs if day in r["tags"].get("fraud_assets/retrain_detail", "")]

    [run, *_] = platform.wait_for(drift_training, timeout=DAY_TIMEOUT, what=f"drift retraining for {day}")
    assert "PSI" in run["tags"]["fraud_assets/retrain_detail"]


def step_logs(platform: Platform, run_id: str) -> list[str]:
    """The captured step output the webserver serves for a run (the code server's run workers wrote it)."""
    events = platform.graphql(
        """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { __typename
             ... on LogsCapturedEvent { fileKey } } } } }""",
        {"id": run_id},
    )["logsForRun"]["events"]
    keys = {e["fileKey"] for e in events if e["__typename"] == "LogsCapturedEvent"}
    query = "query($k: [String!]!) { capturedLogs(logKey: $k) { stdout stderr } }"
    logs = [platform.graphql(query, {"k": [run_id, "compute_logs", key]})["capturedLogs"] for key in keys]
    return [(log["stdout"] or "") + (log["stderr"] or "") for log in logs]


def test_the_webserver_serves_the_step_logs_of_runs_in_the_code_server(platform, bootstrapped):
    [training, *_] = platform.runs(tags={"fraud_assets/retrain_reason": "bootstrap"})
    logs = step_logs(platform, training["runId"])
    assert logs
    assert any(training["runId"] in text for text in logs)


def test_the_daemon_touches_no_file_and_no_secret_is_written_to_disk(platform, bootstrapped):
    daemon_data = Path(platform.processes["daemon"].env["FRAUD_DATA_DIR"])
    assert not daemon_data.exists() or not any(daemon_data.iterdir())
    assert not (platform.data_dir / ".pan_key").exists()
    for name, process in platform.processes.items():
        text = (Path(process.env["DAGSTER_HOME"]) / "dagster.yaml").read_text()
        assert TEST_SECRETS["DAGSTER_PG_PASSWORD"] not in text, name


# ---- model governance: approval request, shadow days, four eyes, approval, the new champion scores ----

APPROVAL_REQUEST = "models/approval_request"
IN_FLIGHT = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED"]


def metadata(platform: Platform, key: str, partition: str | None = None) -> dict:
    """The latest materialisation's metadata of `key` (of one partition), as {label: value}."""
    data = platform.graphql(
        """query($k: AssetKeyInput!, $p: [String!]) { assetOrError(assetKey: $k) { __typename
             ... on Asset { assetMaterializations(limit: 1, partitions: $p) { metadataEntries { label
               ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue }
               ... on FloatMetadataEntry { floatValue } } } } } }""",
        {"k": {"path": key.split("/")}, "p": [partition] if partition else None},
    )
    mats = data["assetOrError"].get("assetMaterializations") or []
    entries = mats[0]["metadataEntries"] if mats else []
    return {e["label"]: e.get("text", e.get("intValue", e.get("floatValue"))) for e in entries}


def launch(platform: Platform, job: str, run_config: dict) -> str:
    data = platform.graphql(
        """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
             ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
             ... on RunConfigValidationInvalid { errors { message } } } }""",
        {
            "p": {
                "selector": {
                    "repositoryLocationName": "fraud_assets",
                    "repositoryName": "__repository__",
                    "jobName": job,
                },
                "runConfigData": run_config,
            }
        },
    )
    result = data["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def finished(platform: Platform, run_id: str) -> str:
    def status():
        [run] = [r for r in platform.runs() if r["runId"] == run_id]
        return run["status"] if run["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None

    return platform.wait_for(status, timeout=DAY_TIMEOUT, what=f"run {run_id} finished")


def decide(platform: Platform, version: str, approver: str, decision: str = "approve") -> str:
    config = {"decision": decision, "model_version": version, "approver": approver, "reason": "e2e review"}
    return finished(
        platform, launch(platform, "model_approval", {"ops": {"models__champion": {"config": config}}})
    )


def quiet(platform: Platform) -> None:
    platform.wait_for(
        lambda: not platform.runs(statuses=IN_FLIGHT),
        timeout=QUIET_TIMEOUT,
        what="no run in flight",
        interval=5,
    )


def land_next_day(platform: Platform) -> str:
    known = auth_days(platform.data_dir)
    simulate(platform.data_dir, "--append-days", "1")
    [day] = auth_days(platform.data_dir) - known
    return day


def pending(platform: Platform) -> str | None:
    value = metadata(platform, APPROVAL_REQUEST).get("pending_version")
    return None if value in (None, "none") else value


@pytest.fixture(scope="module")
def challenger(platform, bootstrapped):
    """The drift retraining's challenger, waiting for approval once the platform is quiet."""
    platform.wait_for(
        lambda: [
            r
            for r in platform.runs(tags={"fraud_assets/retrain_reason": "drift"})
            if r["status"] == "SUCCESS"
        ],
        timeout=QUIET_TIMEOUT,
        what="the drift retraining finished",
        interval=5,
    )
    quiet(platform)
    waiting = pending(platform)
    assert waiting is not None
    return waiting


def test_the_retrained_challenger_waits_while_the_champion_keeps_scoring(platform, challenger):
    champion = metadata(platform, "models/champion")
    assert champion["decision"] == "bootstrap_approved"  # the only champion move so far: the bootstrap
    assert champion["champion"] != challenger
    request = metadata(platform, APPROVAL_REQUEST)
    assert request["training_launched_by"] == getpass.getuser()  # a sensor's run: the daemon's OS user


def test_a_new_day_is_shadow_scored_by_the_challenger_beside_the_champion(platform, challenger):
    day = land_next_day(platform)
    for key in (SCORES, "scoring/shadow_scores", "scoring/fraud_alerts"):
        platform.wait_for(
            lambda key=key: day in platform.materialized_partitions(key, limit=5000),
            timeout=DAY_TIMEOUT,
            what=f"{key} {day}",
        )
    shadow = metadata(platform, "scoring/shadow_scores", day)
    assert shadow["challenger"] == pending(platform)  # the one waiting (a drift retrain may replace it)
    assert shadow["rows_scored"] > 0
    assert metadata(platform, SCORES, day)["model_version"] == shadow["champion"] != shadow["challenger"]


def test_the_trainer_cannot_approve_and_a_second_person_makes_the_challenger_champion(platform, challenger):
    quiet(platform)
    waiting = pending(platform)
    assert decide(platform, waiting, approver=getpass.getuser()) == "FAILURE"  # four eyes
    assert metadata(platform, "models/champion")["champion"] != waiting
    assert decide(platform, waiting, approver="mrm-approver") == "SUCCESS"
    decided = metadata(platform, "models/champion")
    assert (decided["champion"], decided["approver"], decided["decision"]) == (
        waiting,
        "mrm-approver",
        "approved",
    )
    assert decided["evidence_sha256"]


def test_the_next_day_is_scored_by_the_new_champion(platform, challenger):
    quiet(platform)
    approved = metadata(platform, "models/champion")
    assert approved["decision"] == "approved"
    day = land_next_day(platform)
    for key in (SCORES, "scoring/shadow_scores"):
        platform.wait_for(
            lambda key=key: day in platform.materialized_partitions(key, limit=5000),
            timeout=DAY_TIMEOUT,
            what=f"{key} {day}",
        )
    assert metadata(platform, SCORES, day)["model_version"] == approved["champion"]
    # The approved model no longer waits beside itself (a later retraining may have queued another one).
    assert metadata(platform, "scoring/shadow_scores", day)["challenger"] != approved["champion"]

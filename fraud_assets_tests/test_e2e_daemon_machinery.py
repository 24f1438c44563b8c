"""The automation machinery with a real daemon, on the stand-in graph (automation_stubs.py): runs are
cheap, so this checks in minutes what the sensors, the automation policy and alerting do together —
bootstrap, a landed day scored in its own run, re-send vs correction, drift -> retraining, alerts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fraud_assets_tests.automation_stubs import CRASHING_DAYS, FAILING_CONTRACT_DAYS
from fraud_assets_tests.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

SEED = ["2018-04-01", "2018-04-02", "2018-04-03"]
NEW_DAY = "2018-04-04"
SCORES = "scoring/transaction_scores"
WAIT = 900  # generous: run workers start slowly on a loaded 2-core CI machine


def land(data_dir: Path, source: str, landing_date: str, name: str, content: bytes) -> None:
    folder = data_dir / "landing" / source / landing_date
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}"
    tmp.write_bytes(content)
    tmp.rename(folder / name)  # atomic, as the landing contract asks producers to write


def landing_runs(p: Platform, day: str) -> list[dict]:
    return p.runs(tags={"fraud_assets/trigger": "landing", "fraud_assets/business_date": day})


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("machinery")
    data = root / "data"
    for source in ("merchants", "cardholders"):
        land(data, source, SEED[0], f"{source}_{SEED[0]}.parquet", source.encode())
    for day in SEED:
        land(data, "fx_rates", day, f"fx_rates_{day}.csv", f"fx {day}".encode())
        land(data, "authorizations", day, f"acq_a_{day}.csv.gz", f"auth {day}".encode())
        land(data, "chargebacks", day, f"chargebacks_{day}.csv", f"cb {day}".encode())
    env = {"FRAUD_BOOTSTRAP_MIN_DAYS": str(len(SEED))}
    with Platform(root, module="fraud_assets_tests.e2e_stub_definitions", env=env) as p:
        yield p


@pytest.fixture(scope="module")
def bootstrapped(platform):
    platform.wait_for(
        lambda: set(SEED) <= platform.materialized_partitions(SCORES), timeout=WAIT, what="seeded days scored"
    )


def test_a_fresh_platform_trains_first_then_scores_every_seeded_day(platform, bootstrapped):
    [training] = platform.runs(tags={"fraud_assets/retrain_reason": "bootstrap"})
    assert training["status"] == "SUCCESS"
    champion_at = platform.materializations("models/champion")[-1]["timestamp"]
    scored_at = [m["timestamp"] for m in platform.materializations(SCORES) if m["partition"] in SEED]
    assert min(scored_at) > champion_at


def test_a_landed_day_is_scored_by_the_run_its_file_launched(platform, bootstrapped):
    land(platform.data_dir, "authorizations", NEW_DAY, f"acq_a_{NEW_DAY}.csv.gz", b"auth new day")
    platform.wait_for(lambda: NEW_DAY in platform.materialized_partitions(SCORES), WAIT, "new day scored")
    [run] = landing_runs(platform, NEW_DAY)
    scored_by = {m["runId"] for m in platform.materializations(SCORES) if m["partition"] == NEW_DAY}
    assert scored_by == {run["runId"]}


def test_a_resent_identical_file_launches_no_run_and_a_corrected_one_does(platform, bootstrapped):
    platform.wait_for(lambda: landing_runs(platform, NEW_DAY), WAIT, "new day's run")
    land(platform.data_dir, "authorizations", "2018-04-09", f"acq_a_{NEW_DAY}_resend.csv.gz", b"auth new day")
    # A drift the stub monitor will report once the corrected day is scored.
    (platform.data_dir / "stub_psi").write_text(f"0.6 {NEW_DAY}")
    land(platform.data_dir, "authorizations", "2018-04-09", f"acq_a_{NEW_DAY}_002.csv.gz", b"auth corrected")

    def both_runs_done():
        runs = landing_runs(platform, NEW_DAY)
        return len(runs) >= 2 and all(r["status"] == "SUCCESS" for r in runs)

    platform.wait_for(both_runs_done, WAIT, "the corrected file's run")
    time.sleep(15)  # three more landing-sensor intervals: the re-send had every chance to launch
    assert len(landing_runs(platform, NEW_DAY)) == 2  # the original and the correction; the re-send none


def test_drift_at_the_act_threshold_requests_training_with_the_reason(platform, bootstrapped):
    [run, *_] = platform.wait_for(
        lambda: platform.runs(tags={"fraud_assets/retrain_reason": "drift"}), WAIT, "drift retraining"
    )
    assert NEW_DAY in run["tags"]["fraud_assets/retrain_detail"]


def test_a_failing_contract_check_alerts_once_and_a_crashed_run_alerts_as_a_run_failure(
    platform, bootstrapped
):
    bad, crash = next(iter(FAILING_CONTRACT_DAYS)), next(iter(CRASHING_DAYS))
    land(platform.data_dir, "authorizations", "2018-04-10", f"acq_a_{bad}.csv.gz", b"bad day")
    land(platform.data_dir, "authorizations", "2018-04-10", f"acq_a_{crash}.csv.gz", b"crash day")
    outbox = platform.data_dir / "alerts" / "alerts.jsonl"

    def alerts_by_day():
        if not outbox.exists():
            return None
        alerts = [json.loads(line) for line in outbox.read_text().splitlines() if line]
        runs = {r["runId"]: r["tags"].get("fraud_assets/business_date") for r in platform.runs()}
        found = {(a["kind"], a["severity"], runs.get(a["run_id"])) for a in alerts}
        wanted = {("check_failure", "ERROR", bad), ("run_failure", "ERROR", crash)}
        return found if wanted <= found else None

    found = platform.wait_for(alerts_by_day, WAIT, "check failure and run failure alerts")
    time.sleep(15)  # the run-failure sensor had time to (wrongly) report the contract-stopped run too
    found = alerts_by_day()
    # The run the contract stopped is reported once, by its check (with the check's reason).
    assert ("run_failure", "ERROR", bad) not in found

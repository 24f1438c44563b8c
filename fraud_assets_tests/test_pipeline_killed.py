"""`make pipeline` killed by the system in the middle of a DuckDB write, then run again.

The first run is SIGKILLed while it writes cleaned transactions (the INSERT has run, the COMMIT has not;
dead_run_support parks it there). The second run, started as `make pipeline` starts it, finds the dead run,
fails it, frees the `duckdb` pool slot it held and alerts, then rebuilds everything: raw, cleaned and
features end up equal to an uninterrupted run of the same landing zone. Without the start-up check the
second run waits for the dead run's slot for ever (its timeout below fails the test).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from fraud_assets.cli.dagster_home import write_dagster_yaml
from fraud_assets.lib.alerting import AlertSink
from fraud_assets.lib.dagster_compat import claimed_pool_slots
from fraud_assets.simulator import SimConfig, simulate
from fraud_assets_tests import dead_run_support as workers
from fraud_assets_tests.conftest import TEST_PAN_KEY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

WORLD = SimConfig(profile="realistic", days=4, customers=80, terminals=160, seed=5)
PIPELINE = ["-m", "fraud_assets.cli.pipeline"]
# A hang guard, not a performance bound: three pipeline runs on a loaded 2-core machine take minutes.
RUN_TIMEOUT = 1200
LAYERS = ("raw", "cleaned", "features")
# When a run processed a row, not what the row is: differs between any two runs.
# When and where this copy of the world was processed, not what it holds: the two runs read two copies.
PROCESSING_TIME = {"ingested_at", "registered_at", "quarantined_at", "file_inode", "file_ctime_ns"}


@dataclass
class Platform:
    data_dir: Path
    home: Path

    @classmethod
    def at(cls, root: Path) -> Platform:
        platform = cls(root / "data", root / "dagster_home")
        platform.data_dir.mkdir(parents=True)
        write_dagster_yaml(platform.home)  # as scripts/with-env does for `make pipeline`
        return platform

    @property
    def env(self) -> dict[str, str]:
        # Set here: module-scoped, the fixture below runs before conftest's per-test environment.
        return {
            "FRAUD_DATA_DIR": str(self.data_dir),
            "DAGSTER_HOME": str(self.home),
            "FRAUD_PAN_KEY": TEST_PAN_KEY,
        }

    def run(self, log: Path) -> subprocess.CompletedProcess:
        with log.open("ab") as out:
            return subprocess.run(
                [sys.executable, *PIPELINE],
                env={**os.environ, **self.env},
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT,
                check=False,
            )

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def layer_tables(self) -> dict[str, pd.DataFrame]:
        with duckdb.connect(str(self.data_dir / "warehouse.duckdb"), read_only=True) as conn:
            names = conn.execute(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema IN ? ORDER BY 1",
                [list(LAYERS)],
            ).fetchall()
            return {name: _comparable(conn.execute(f"SELECT * FROM {name}").df()) for (name,) in names}


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop(columns=[c for c in frame.columns if c in PROCESSING_TIME])
    return frame.sort_values(list(frame.columns), ignore_index=True) if len(frame.columns) else frame


@dataclass
class Outcome:
    uninterrupted: Platform
    killed: Platform
    reference_exit: int
    rerun: subprocess.CompletedProcess
    dead_run_id: str
    rerun_log: Path


@pytest.fixture(scope="module")
def outcome(tmp_path_factory) -> Outcome:
    root = tmp_path_factory.mktemp("killed_pipeline")
    uninterrupted, killed = Platform.at(root / "uninterrupted"), Platform.at(root / "killed")
    simulate(uninterrupted.data_dir, WORLD)
    # The same files, modification times included (raw.file_register records them).
    shutil.copytree(uninterrupted.data_dir / "landing", killed.data_dir / "landing")

    reference = uninterrupted.run(root / "uninterrupted.log")

    marker, log = root / "mid-write", root / "killed.log"
    parked = workers.start(
        ["-m", "fraud_assets_tests.dead_run_support", "pipeline-mid-write", str(marker)], killed.env, log
    )
    workers.wait_for_marker(parked, marker, RUN_TIMEOUT, log)
    workers.kill(parked)
    with killed.instance() as instance:
        [dead] = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
        assert claimed_pool_slots(instance) == {dead.dagster_run.run_id: 1}, "the killed run held no slot"

    rerun_log = root / "rerun.log"
    rerun = killed.run(rerun_log)
    return Outcome(uninterrupted, killed, reference.returncode, rerun, dead.dagster_run.run_id, rerun_log)


def test_the_rerun_completes_as_an_uninterrupted_run_does(outcome):
    log = outcome.rerun_log.read_text(errors="replace")
    assert outcome.rerun.returncode == outcome.reference_exit, log[-4000:]
    assert "Start-up: 1 dead run(s) failed and alerted" in log


def test_the_killed_run_is_failed_with_its_reason_and_holds_no_slot(outcome):
    with outcome.killed.instance() as instance:
        run = instance.get_run_by_id(outcome.dead_run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE
        assert run.tags["fraud_assets/dead_run"] == run.run_id
        assert claimed_pool_slots(instance) == {}


def test_the_killed_run_is_alerted_once(outcome):
    alerts = AlertSink(data_dir=str(outcome.killed.data_dir)).read_outbox()
    dead = [a for a in alerts if a["kind"] == "dead_run"]
    assert [a["run_id"] for a in dead] == [outcome.dead_run_id]
    assert "the process no longer exists" in dead[0]["message"]


def test_raw_cleaned_and_features_equal_an_uninterrupted_run(outcome):
    expected = outcome.uninterrupted.layer_tables()
    actual = outcome.killed.layer_tables()
    assert sorted(actual) == sorted(expected)
    assert {"cleaned.transactions", "features.transaction_features"} <= set(actual)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(actual[name], frame, obj=name)

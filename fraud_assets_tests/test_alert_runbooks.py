"""Every alert the platform raises tells the engineer paged at night where to start: a runbook section that
exists, in the alert's details (outbox, monitoring.alerts, webhook body) and on its log line."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fraud_assets.defs.monitoring.alerts import check_failure_alerts
from fraud_assets.lib.alerting import Alert, AlertSink
from fraud_assets.lib.contracts import partitioned_asset_check

REPO_ROOT = Path(__file__).resolve().parents[1]
# Every kind of alert the platform's code raises (grep `kind="` under fraud_assets/).
PLATFORM_KINDS = ["run_failure", "dead_run", "check_failure", "missing_business_day"]


def _anchors(doc: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    headings = re.findall(r"^#+ (.+)$", doc.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def _assert_points_at_a_section(runbook: str) -> None:
    path, _, anchor = runbook.partition("#")
    assert (REPO_ROOT / path).is_file(), runbook
    assert anchor in _anchors(REPO_ROOT / path), runbook


@pytest.mark.parametrize("kind", PLATFORM_KINDS)
def test_each_kind_of_alert_names_an_existing_runbook_section_everywhere_it_goes(tmp_path, kind, caplog):
    sink = AlertSink(data_dir=str(tmp_path))
    log = logging.getLogger("test_alert_runbooks")
    with caplog.at_level(logging.WARNING, logger=log.name):
        sink.send([Alert(severity="ERROR", kind=kind, subject="s", message="m", run_id="r")], log=log)
    runbook = json.loads(sink.read_outbox()[0]["details"])["runbook"]
    _assert_points_at_a_section(runbook)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
        stored = conn.execute("SELECT details FROM monitoring.alerts").fetchone()[0]
    assert json.loads(stored)["runbook"] == runbook
    assert f"runbook: {runbook}" in caplog.text


def test_a_failed_blocking_check_alerts_with_its_asset_day_reason_and_runbook():
    daily = dg.DailyPartitionsDefinition(start_date="2018-04-01")

    @dg.asset(partitions_def=daily)
    def t():
        return dg.MaterializeResult()

    @partitioned_asset_check(asset=t, blocking=True, partitions_def=daily)
    def rows_reconcile(context):
        return dg.AssetCheckResult(passed=False, description="3 rows lost", metadata={"lost": 3})

    instance = dg.DagsterInstance.ephemeral()
    dg.materialize([t, rows_reconcile], instance=instance, partition_key="2018-04-02", raise_on_error=False)
    alerts, _ = check_failure_alerts(instance, None)
    assert [(a.subject, a.details["partition"], a.message) for a in alerts] == [
        ("t:rows_reconcile", "2018-04-02", "3 rows lost")
    ]
    _assert_points_at_a_section(alerts[0].details["runbook"])

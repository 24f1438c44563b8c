"""Monitoring per business day: each day's performance figures and check verdicts on its own partition,
and a day recomputed when its labels arrive late (docs/monitoring.md, "Monitoring assets")."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource

from fraud_assets.defs import monitoring
from fraud_assets.defs.cleaned.assets import (
    CHANGED_FIRST_REPORT,
    CHANGED_LABELS,
    CHANGED_LAST_TRANSACTION,
)
from fraud_assets.defs.monitoring.sensors import performance_labels_sensor
from fraud_assets.lib.day_metadata import DAY_ROW_COUNT
from fraud_assets_tests.days_run import days_run
from fraud_assets_tests.test_monitoring import DAYS, _world

ALL_DAYS = [d.date().isoformat() for d in DAYS]
PERFORMANCE = dg.AssetKey(["monitoring", "model_performance"])
DRIFT = dg.AssetKey(["monitoring", "feature_drift"])
FIGURES = ("average_precision", "card_precision_at_100", "alert_precision", "n_frauds")
SUMMARY = (
    "n_matured_days",
    "latest_matured_ap",
    "latest_matured_cp_at_100",
    "mean_ap_last_7_matured_days",
    "mean_cp_at_100_last_7_matured_days",
    "dagster/row_count",
    "range_row_count",
)


def _targets(key: dg.AssetKey) -> list:
    """The monitoring asset and its checks, as the code location declares them."""
    assets = [a for a in monitoring.defs.assets if a.key == key]
    checks = [c for c in monitoring.defs.asset_checks or [] if key in {k.asset_key for k in c.check_keys}]
    return assets + checks


def _run(key, db, days, instance=None, tags=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        _targets(key),
        resources={"duckdb": DuckDBResource(database=str(db))},
        instance=instance,
        **days_run(days, tags),
    )


def _by_day(result, node: str) -> dict[str, dict[str, object]]:
    return {
        m.partition: {k: getattr(v, "value", v) for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node(node)
    }


def _table(db) -> dict[str, dict[str, object]]:
    with duckdb.connect(str(db)) as conn:
        df = conn.execute("SELECT * FROM monitoring.model_performance").df()
    return {r["business_date"].date().isoformat(): r for r in df.to_dict("records")}


def _checks_by_day(result) -> dict[str | None, dg.AssetCheckEvaluation]:
    return {e.partition: e for e in result.get_asset_check_evaluations()}


def test_each_day_of_a_performance_run_carries_its_own_figures(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    result = _run(PERFORMANCE, db, ALL_DAYS)
    md, rows = _by_day(result, "monitoring__model_performance"), _table(db)
    assert sorted(md) == ALL_DAYS  # one materialisation per business day: the UI plots over partitions
    for day in ALL_DAYS:
        for figure in FIGURES:
            assert md[day][figure] == pytest.approx(rows[day][figure], nan_ok=True), (day, figure)
        # Labels reported on 2018-04-11: the first day has 9 days of reports after it, the last one 0.
        assert md[day]["label_maturity_days"] == pytest.approx((DAYS[-1] - DAYS[ALL_DAYS.index(day)]).days)
    assert [md[d]["matured"] for d in ALL_DAYS] == [True] * 3 + [False] * 7
    assert len({md[d]["average_precision"] for d in ALL_DAYS}) > 1  # not one figure copied to every day


def test_a_range_runs_summary_is_on_its_last_day_only_where_the_trigger_reads_it(tmp_path):
    """The retraining trigger's figures span every stored day: copied onto each day of a range run they
    would plot as flat lines beside the days' own AP. They ride on the range's last day, the asset's latest
    materialisation, which the trigger reads."""
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    with duckdb.connect(str(db)) as conn:  # a champion trained before the days: the matured ones count
        conn.execute("DELETE FROM models.training_set WHERE business_date > DATE '2018-03-31'")
    instance = dg.DagsterInstance.ephemeral()
    md = _by_day(_run(PERFORMANCE, db, ALL_DAYS, instance), "monitoring__model_performance")
    own = {DAY_ROW_COUNT, "n_transactions", "label_maturity_days", *FIGURES}
    for day in ALL_DAYS[:-1]:
        numbers = {k for k, v in md[day].items() if isinstance(v, int | float) and not isinstance(v, bool)}
        assert numbers <= own, day
    last, rows = md[ALL_DAYS[-1]], _table(db)
    assert set(SUMMARY) <= set(last)
    matured = [rows[d]["average_precision"] for d in ALL_DAYS[:3]]
    assert last["n_matured_days"] == 3
    assert last["mean_ap_last_7_matured_days"] == pytest.approx(sum(matured) / 3)
    [latest] = instance.fetch_materializations(PERFORMANCE, limit=1).records  # what the trigger reads
    assert latest.asset_materialization.metadata["mean_ap_last_7_matured_days"].value == pytest.approx(
        sum(matured) / 3
    )


def test_the_checks_are_evaluated_for_each_day_not_skipped(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    _world(db, shift_last_day=1.5)
    drift = _checks_by_day(_run(DRIFT, db, ALL_DAYS))
    assert set(ALL_DAYS) <= set(drift)
    # Each day its own verdict: the drifted last day fails, a day after the training set passes.
    assert not drift[ALL_DAYS[-1]].passed
    assert drift[ALL_DAYS[-1]].severity == dg.AssetCheckSeverity.ERROR
    assert drift[ALL_DAYS[-2]].passed
    one_day = _checks_by_day(_run(DRIFT, db, [ALL_DAYS[-2]]))
    assert list(one_day) == [ALL_DAYS[-2]]


def test_the_performance_check_judges_each_matured_day(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    with duckdb.connect(str(db)) as conn:  # a model no better than chance: AP far below the floor
        conn.execute("UPDATE scoring.transaction_scores SET score = hash(transaction_id) % 1000 / 1000.0")
    matured, young = ALL_DAYS[:3], ALL_DAYS[3:]
    # The matured days are inside the champion's training set (through 04-07): in-sample, not judged.
    checks = _checks_by_day(_run(PERFORMANCE, db, ALL_DAYS))
    assert all(checks[d].passed for d in ALL_DAYS)
    assert checks[matured[0]].metadata["note"].value.startswith("not judged: inside the champion's training")
    with duckdb.connect(str(db)) as conn:  # a champion trained before them: each matured day is judged
        conn.execute("DELETE FROM models.training_set WHERE business_date > DATE '2018-03-31'")
    checks = _checks_by_day(_run(PERFORMANCE, db, ALL_DAYS))
    assert set(ALL_DAYS) <= set(checks)
    assert all(not checks[d].passed and checks[d].severity == dg.AssetCheckSeverity.ERROR for d in matured)
    assert all(checks[d].passed for d in young)
    assert checks[young[0]].metadata["note"].value.startswith("not judged: labels not matured")


def test_a_run_that_judges_no_day_because_the_champion_trained_on_them_says_so(tmp_path):
    """The demo's bootstrap champion's training set holds every seeded day: its matured days are not out of
    sample, which the run's own verdict must say, not that no day has matured."""
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    with duckdb.connect(str(db)) as conn:  # the champion trained on every matured day and beyond
        conn.execute("DELETE FROM models.training_set WHERE business_date > DATE '2018-04-05'")
    run = _checks_by_day(_run(PERFORMANCE, db, ALL_DAYS))[None]
    assert run.passed
    assert run.metadata["days_judged"].value == 0
    assert run.metadata["days_in_training_set"].value == 5
    assert run.metadata["note"].value == (
        "no day judged: 5 inside the champion's training set (through 2018-04-05), "
        "5 without matured labels or scores"
    )


def test_a_day_whose_labels_arrive_late_gets_its_figures_recomputed(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    late_day = ALL_DAYS[1]
    with duckdb.connect(str(db)) as conn:  # the frauds of the second day are not reported yet
        conn.execute(
            "CREATE TABLE late AS SELECT * FROM cleaned.labels WHERE transaction_id BETWEEN 10000 AND 19999"
        )
        conn.execute("DELETE FROM cleaned.labels WHERE transaction_id BETWEEN 10000 AND 19999")
        late = conn.execute("SELECT count(*) FROM late").fetchone()[0]
    assert late > 0
    instance = dg.DagsterInstance.ephemeral()
    before = _by_day(_run(PERFORMANCE, db, ALL_DAYS, instance), "monitoring__model_performance")
    assert before[late_day]["n_frauds"] == 0
    # A late chargeback file reports them on 2018-04-12: cleaned/labels is rebuilt and says what changed.
    with duckdb.connect(str(db)) as conn:
        conn.execute(
            "INSERT INTO cleaned.labels "
            "SELECT * REPLACE (TIMESTAMP '2018-04-12 09:00' AS reported_at) FROM late"
        )
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=dg.AssetKey(["cleaned", "labels"]),
            metadata={
                CHANGED_LABELS: late,
                CHANGED_FIRST_REPORT: "2018-04-12",
                "changed_labels_first_transaction_date": late_day,
                CHANGED_LAST_TRANSACTION: late_day,
            },
        )
    )
    tick = dg.build_sensor_context(instance=instance)
    result = performance_labels_sensor(tick)
    requests = [
        r for r in (result if isinstance(result, list) else []) if r.job_name == "performance_rebuild"
    ]
    # The labelled day and every later one (Card Precision carries a day's detections to the next days).
    assert [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in requests
    ] == [(late_day, ALL_DAYS[-1])]
    after = _by_day(
        _run(PERFORMANCE, db, ALL_DAYS[1:], instance, tags=requests[0].tags), "monitoring__model_performance"
    )
    assert after[late_day]["n_frauds"] == late
    assert after[late_day]["average_precision"] == pytest.approx(_table(db)[late_day]["average_precision"])
    # Labels as of 2018-04-12: one more day has 7 full days of reports after it.
    assert not before[ALL_DAYS[3]]["matured"]
    assert after[ALL_DAYS[3]]["matured"]
    # Recomputed since: the next tick asks for nothing.
    assert isinstance(
        performance_labels_sensor(dg.build_sensor_context(instance=instance, cursor=tick.cursor)),
        dg.SkipReason,
    )


def test_a_performance_table_written_before_alert_precision_gets_the_column(tmp_path):
    """A warehouse from before the per-day figures: its whole-history table lacks `alert_precision`; a day's
    run adds the column rather than failing on its insert."""
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    with duckdb.connect(str(db)) as conn:
        conn.execute("CREATE SCHEMA monitoring")
        conn.execute(
            "CREATE TABLE monitoring.model_performance (business_date DATE, model_version VARCHAR, "
            "n_transactions BIGINT, n_frauds BIGINT, average_precision DOUBLE, card_precision_at_100 DOUBLE, "
            "matured BOOLEAN, labels_as_of TIMESTAMP, computed_at TIMESTAMP)"
        )
        conn.execute(
            "INSERT INTO monitoring.model_performance VALUES (DATE '2018-04-01', 'v1', 400, 20, 0.9, 0.1, "
            "true, TIMESTAMP '2018-04-11', TIMESTAMP '2018-04-11')"
        )
    md = _by_day(_run(PERFORMANCE, db, [ALL_DAYS[-1]]), "monitoring__model_performance")
    rows = _table(db)
    assert md[ALL_DAYS[-1]]["alert_precision"] == pytest.approx(rows[ALL_DAYS[-1]]["alert_precision"])
    assert ALL_DAYS[0] in rows  # the other days are kept until they are computed again

"""Shadow challenger: the model awaiting approval scores every new day beside the champion, never reaches
the alert queue, and the two are compared on the same matured days."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from fraud_assets.defs.monitoring.assets import known_compromised_since
from fraud_assets.defs.monitoring.shadow_comparison import shadow_comparison, shadow_summary
from fraud_assets.lib import registry
from fraud_assets.lib.metrics import card_precision_by_day
from fraud_assets.resources import build_resources
from fraud_assets_tests.conftest import TEST_PAN_KEY, TEST_REGISTRY_KEY
from fraud_assets_tests.models_world import (
    connect,
    copy_world,
    decide,
    failure_message,
    run_job,
    shared_pending_world,
    shared_trained_world,
)

# Days that land after the challenger was trained (the synthetic world ends 2018-08-14).
SHIFT_DAYS = 4
DAYS = ["2018-08-15", "2018-08-16"]


def land_days_after_training(data_dir: Path, days: list[str] = DAYS) -> None:
    """New days after the world: the transactions (with their labels) of the days SHIFT_DAYS earlier,
    moved forward under new ids, as days that land while the challenger waits."""
    shift = f"INTERVAL {SHIFT_DAYS} DAY"
    source = f"business_date IN (SELECT unnest(?::DATE[]) - {shift})"
    with connect(data_dir) as conn:
        offset = conn.execute("SELECT max(transaction_id) FROM features.transaction_features").fetchone()[0]
        conn.execute(
            "INSERT INTO features.transaction_features "
            "SELECT * REPLACE (transaction_id + ? AS transaction_id, "
            f"CAST(business_date + {shift} AS DATE) AS business_date, tx_datetime + {shift} AS tx_datetime) "
            f"FROM features.transaction_features WHERE {source}",
            [offset, days],
        )
        conn.execute(
            "INSERT INTO cleaned.labels SELECT l.* REPLACE (l.transaction_id + ? AS transaction_id, "
            f"l.tx_datetime + {shift} AS tx_datetime, l.reported_at + {shift} AS reported_at, "
            "l.chargeback_id || '-shifted' AS chargeback_id) "
            "FROM cleaned.labels l JOIN features.transaction_features f USING (transaction_id) "
            f"WHERE f.{source}",
            [offset, days],
        )
        conn.execute(
            "INSERT INTO cleaned.transactions SELECT transaction_id, business_date, card_token "
            "FROM features.transaction_features WHERE transaction_id > ?",
            [offset],
        )


@pytest.fixture(scope="module")
def shadowed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the pending world whose DAYS landed and were scored while the challenger waited."""
    data_dir = copy_world(shared_pending_world(tmp_path_factory), tmp_path_factory.mktemp("shadow") / "data")
    land_days_after_training(data_dir)
    for day in DAYS:
        assert run_job(data_dir, "scoring_job", partition=day).success
    return data_dir


def _compare(data_dir: Path, days: list[str] = DAYS) -> dg.MaterializeResult:
    """The comparison of `days` in one run (a backfill's single run)."""
    result = dg.materialize(
        [shadow_comparison],
        resources=build_resources(data_dir, TEST_PAN_KEY, TEST_REGISTRY_KEY),
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )
    assert result.success
    return result


def _by_day(result: dg.ExecuteInJobResult) -> dict[str, dict]:
    return {
        e.partition: e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey(["monitoring", "shadow_comparison"])
    }


def test_the_waiting_challenger_scores_every_transaction_of_each_new_day(shadowed: Path):
    with connect(shadowed) as conn:
        pending = registry.pending_version(conn)
        champion = registry.current_alias(conn, registry.CHAMPION)
        for day in DAYS:
            n_tx, n_shadow, versions, champions = conn.execute(
                "SELECT (SELECT count(*) FROM features.transaction_features WHERE business_date = ?::DATE), "
                "count(*), list(DISTINCT model_version), list(DISTINCT champion_version) "
                "FROM scoring.shadow_scores WHERE business_date = ?::DATE",
                [day, day],
            ).fetchone()
            assert n_shadow == n_tx > 0
            assert (versions, champions) == ([pending], [champion])


def test_a_day_the_challenger_was_trained_on_is_not_shadow_scored_again(shadowed: Path, tmp_path: Path):
    """A re-run or backfill scoring history while a challenger waits: its scores on days of its own training
    data are in-sample and would inflate its lead in the approver's evidence."""
    data_dir = copy_world(shadowed, tmp_path / "data")
    with connect(data_dir) as conn:
        test_end = registry.get_version(conn, registry.pending_version(conn)).test_end
    day = test_end.isoformat()
    result = run_job(data_dir, "scoring_job", partition=day)
    assert result.success
    [shadow] = [
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey(["scoring", "shadow_scores"])
    ]
    assert shadow["rows_scored"].value == 0
    assert shadow["days_in_training_data"].value == 1
    with connect(data_dir) as conn:
        shadow_days = conn.execute(
            "SELECT DISTINCT business_date::VARCHAR FROM scoring.shadow_scores"
        ).fetchall()
        scored = conn.execute(
            "SELECT count(*) FROM scoring.transaction_scores WHERE business_date = ?::DATE", [day]
        ).fetchone()[0]
    assert sorted(d for (d,) in shadow_days) == DAYS
    assert scored > 0  # the champion scored the day as usual


def test_a_challenger_row_edited_to_skip_its_shadow_days_is_refused(shadowed: Path, tmp_path: Path):
    """The windows that decide which days are shadowed come from the signed row: pushing `test_end` past
    the live days (to hide a challenger's live record) does not verify."""
    data_dir = copy_world(shadowed, tmp_path / "data")
    with connect(data_dir) as conn:
        conn.execute(
            "UPDATE models.model_versions SET test_end = DATE '2099-01-01' WHERE model_version = ?",
            [registry.pending_version(conn)],
        )
    result = run_job(data_dir, "scoring_job", partition=DAYS[0])
    assert not result.success
    assert "registry integrity" in failure_message(result)


def test_shadow_scores_never_reach_the_alert_queue(shadowed: Path):
    with connect(shadowed) as conn:
        champion = registry.current_alias(conn, registry.CHAMPION)
        versions, not_champion_scores = conn.execute(
            "SELECT list(DISTINCT a.model_version), count(*) FILTER (WHERE a.score <> s.score) "
            "FROM scoring.fraud_alerts a JOIN scoring.transaction_scores s USING (transaction_id)"
        ).fetchone()
    assert versions == [champion]
    assert not_champion_scores == 0


def test_a_day_scored_while_no_challenger_waits_has_an_empty_shadow_partition(tmp_path_factory, tmp_path):
    data_dir = copy_world(shared_trained_world(tmp_path_factory), tmp_path / "data")
    result = run_job(data_dir, "scoring_job", partition=DAYS[0])
    assert result.success
    shadow = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey(["scoring", "shadow_scores"])
    )
    assert shadow["challenger"].value == "none"
    with connect(data_dir) as conn:
        assert conn.execute("SELECT count(*) FROM scoring.shadow_scores").fetchone()[0] == 0


def test_champion_and_challenger_are_compared_on_the_same_matured_days(shadowed: Path):
    by_day = _by_day(_compare(shadowed))
    with connect(shadowed) as conn:
        rows = conn.execute(
            "SELECT business_date, matured, n_transactions, score_psi, champion_ap, challenger_ap, "
            "champion_cp_at_100, challenger_alert_precision FROM monitoring.shadow_comparison "
            "ORDER BY business_date"
        ).fetchall()
        pending = registry.pending_version(conn)
        summary = shadow_summary(conn, pending)
    assert [str(r[0]) for r in rows] == DAYS
    for _, matured, n, psi, champ_ap, chall_ap, champ_cp, chall_precision in rows:
        assert matured
        assert n > 0
        assert psi >= 0
        for value in (champ_ap, chall_ap, champ_cp, chall_precision):
            assert 0 <= value <= 1
    assert (summary["shadow_days"], summary["matured_days"]) == (2, 2)
    # Each day's partition carries that day's figures, which the UI plots per day.
    assert sorted(by_day) == DAYS
    for (*_, champ_ap, chall_ap, champ_cp, chall_precision), md in zip(
        rows, [by_day[d] for d in DAYS], strict=True
    ):
        assert md["challenger_version"].value == pending
        assert md["champion_ap"].value == pytest.approx(champ_ap)
        assert md["challenger_ap"].value == pytest.approx(chall_ap)
        assert md["champion_cp_at_100"].value == pytest.approx(champ_cp)
        assert md["challenger_alert_precision"].value == pytest.approx(chall_precision)
        assert md["challenger"].value == pending  # named on every day
    # The approvers' summary over every stored day is the run's: on its last day, not a flat line.
    assert "matured_days" not in by_day[DAYS[0]]
    assert by_day[DAYS[-1]]["matured_days"].value == 2


def test_a_day_compared_alone_has_the_figures_it_has_in_a_range_run(shadowed: Path, tmp_path: Path):
    """Card Precision follows each model over the challenger's days in order: the second day computed
    alone reads the first day's detections, as a range run over both does."""
    data_dir = copy_world(shadowed, tmp_path / "data")
    alone = _by_day(_compare(data_dir, DAYS[1:]))[DAYS[1]]
    both = _by_day(_compare(data_dir))[DAYS[1]]
    for key in ("champion_cp_at_100", "challenger_cp_at_100", "champion_ap", "score_psi"):
        assert alone[key].value == pytest.approx(both[key].value)


def test_a_day_no_challenger_shadow_scored_is_an_empty_partition(shadowed: Path, tmp_path: Path):
    data_dir = copy_world(shadowed, tmp_path / "data")
    _compare(data_dir)
    result = _compare(data_dir, ["2018-08-05"])  # scored before the challenger waited
    assert "challenger_ap" not in _by_day(result)["2018-08-05"]
    with connect(data_dir) as conn:
        days = [
            str(d)
            for (d,) in conn.execute(
                "SELECT DISTINCT business_date FROM monitoring.shadow_comparison ORDER BY 1"
            ).fetchall()
        ]
    assert days == DAYS


def test_the_comparison_read_in_batches_of_days_is_the_one_of_all_days_at_once(shadowed: Path, monkeypatch):
    """Days are read in batches (memory bounded at a network's volume): one day per batch gives the same
    rows, and Card Precision follows each model over the days as card_precision_by_day does on all."""
    module = importlib.import_module("fraud_assets.defs.monitoring.shadow_comparison")
    with connect(shadowed) as conn:
        whole = module.compute_shadow_comparison(conn).drop(columns="computed_at")
        monkeypatch.setattr(module, "SHADOW_BATCH_ROWS", 1)
        by_day = module.compute_shadow_comparison(conn).drop(columns="computed_at")
        paired = conn.execute(module.PAIRED_SQL, ["2000-01-01", "2100-01-01"] * 2).df()
        known_since = known_compromised_since(conn)
    pd.testing.assert_frame_equal(by_day, whole)
    assert len(whole) == len(DAYS)
    for m in module.MODELS:
        expected = card_precision_by_day(paired, 100, score_col=f"{m}_score", known_since=known_since)
        assert whole[f"{m}_cp_at_100"].tolist() == expected.tolist()


def test_the_approval_evidence_carries_the_shadow_comparison(shadowed: Path, tmp_path: Path):
    data_dir = copy_world(shadowed, tmp_path / "data")
    _compare(data_dir)
    with connect(data_dir) as conn:
        pending = registry.pending_version(conn)
    result = decide(data_dir, "approve", approver="erin", version=pending, reason="two shadow days")
    assert result.success
    evidence = result.get_asset_materialization_events()[0].materialization.metadata["evidence"].value
    assert "Shadow comparison on live days" in evidence
    assert "matured_days" in evidence
    shadow_section = evidence.split("## Shadow comparison on live days")[1].split("## ")[0]
    lead = next(line for line in shadow_section.splitlines() if "challenger_lead_ap" in line)
    assert re.search(r"\| -?\d+\.\d{4} +\|$", lead), lead  # figures to 4 decimals, as the other tables


def test_shadow_average_precision_is_measured_where_the_gate_measures_it():
    """Cards known compromised by the day's start are left out of AP, as the gate's test days leave them
    out: their later frauds, ranked first by either model, would lift both APs alike."""
    from fraud_assets.defs.monitoring.assets import not_known_compromised
    from fraud_assets.defs.monitoring.shadow_comparison import _day_row

    day = pd.Timestamp("2018-08-01")
    part = pd.DataFrame(
        {
            "card_token": ["known", "known", "new_fraud", "genuine"],
            "label": [1, 1, 1, 0],
            "champion_score": [0.9, 0.8, 0.1, 0.7],
            "challenger_score": [0.9, 0.8, 0.1, 0.7],
        }
    )
    known_since = pd.Series({"known": day - pd.Timedelta(days=3)})
    fresh = not_known_compromised(part, known_since, day.date())
    row = _day_row(part, fresh, True, 100, {"champion": 0.0, "challenger": 0.0})
    assert row["champion_ap"] == pytest.approx(0.5)  # 0.92 with the known card's frauds
    assert row["challenger_ap"] == pytest.approx(0.5)

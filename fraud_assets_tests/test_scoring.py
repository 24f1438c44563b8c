"""The scoring layer: every transaction of a day scored by the champion; the top-k card queue."""

from __future__ import annotations

import importlib
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from fraud_assets.defs.scoring.fraud_alerts import fraud_alerts
from fraud_assets.defs.scoring.transaction_scores import transaction_scores
from fraud_assets.lib import registry
from fraud_assets.resources import build_resources
from fraud_assets_tests.conftest import TEST_PAN_KEY
from fraud_assets_tests.days_run import days_run
from fraud_assets_tests.models_world import (
    connect,
    layer_defs,
    make_world,
    schema_mismatches,
    shared_trained_world,
    write_world,
)

DAYS = ["2018-08-13", "2018-08-14"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_trained_world(tmp_path_factory)


def _score(data_dir: Path, day: str, top_k: int = 100, raise_on_error: bool = True):
    instance = dg.DagsterInstance.ephemeral()
    return (
        layer_defs(data_dir)
        .resolve_job_def("scoring_job")
        .execute_in_process(
            partition_key=day,
            instance=instance,
            run_config={"ops": {"scoring__fraud_alerts": {"config": {"top_k": top_k}}}},
            raise_on_error=raise_on_error,
        )
    )


@pytest.fixture(scope="module")
def scored(trained: Path) -> Path:
    for day in DAYS:
        assert _score(trained, day, top_k=50).success
    return trained


def test_every_transaction_of_a_scored_day_has_one_score_from_the_champion(scored: Path):
    with connect(scored) as conn:
        champion = registry.current_alias(conn, registry.CHAMPION)
        for day in DAYS:
            missing, dupes, versions, bad = conn.execute(
                """
                SELECT
                    (SELECT count(*) FROM features.transaction_features f WHERE business_date = ?::DATE
                       AND NOT EXISTS (SELECT 1 FROM scoring.transaction_scores s
                                       WHERE s.transaction_id = f.transaction_id)),
                    (SELECT count(*) - count(DISTINCT transaction_id) FROM scoring.transaction_scores
                       WHERE business_date = ?::DATE),
                    (SELECT list(DISTINCT model_version) FROM scoring.transaction_scores
                       WHERE business_date = ?::DATE),
                    (SELECT count(*) FROM scoring.transaction_scores
                       WHERE business_date = ?::DATE AND NOT (score BETWEEN 0 AND 1))
                """,
                [day] * 4,
            ).fetchone()
            assert (missing, dupes, bad) == (0, 0, 0)
            assert versions == [champion]


def test_rescoring_a_day_replaces_its_scores(scored: Path):
    assert _score(scored, DAYS[1], top_k=50).success
    with connect(scored) as conn:
        n_scores, n_tx, col_type = conn.execute(
            "SELECT (SELECT count(*) FROM scoring.transaction_scores WHERE business_date = ?::DATE), "
            "(SELECT count(*) FROM features.transaction_features WHERE business_date = ?::DATE), "
            "(SELECT data_type FROM information_schema.columns WHERE table_schema = 'scoring' "
            "AND table_name = 'transaction_scores' AND column_name = 'business_date')",
            [DAYS[1], DAYS[1]],
        ).fetchone()
    assert n_scores == n_tx
    assert col_type == "DATE"


# The cards scored on a day that were not known compromised by its start (no fraud reported by then).
UNKNOWN_CARDS = (
    "FROM scoring.transaction_scores s WHERE business_date = ?::DATE AND card_token NOT IN "
    "(SELECT card_token FROM cleaned.labels WHERE reported_at <= CAST(s.business_date AS TIMESTAMP))"
)


def test_each_day_has_k_alerts_one_per_card_ranked_by_score(scored: Path):
    with connect(scored) as conn:
        for day in DAYS:
            alerts = conn.execute(
                "SELECT * FROM scoring.fraud_alerts WHERE business_date = ?::DATE ORDER BY alert_rank", [day]
            ).df()
            assert len(alerts) == 50
            assert alerts["card_token"].is_unique
            assert alerts["score"].is_monotonic_decreasing
            top_card_score = conn.execute(f"SELECT max(score) {UNKNOWN_CARDS}", [day]).fetchone()[0]
            assert alerts["score"].iloc[0] == pytest.approx(top_card_score)


def test_cards_known_compromised_are_left_out_of_the_queue_unless_configured(scored: Path):
    """A card with a fraud reported by the day's start is blocked: a slot on it finds nothing new, and
    Card Precision@k leaves it out too. The switch puts it back."""
    day = DAYS[0]
    with connect(scored) as conn:
        known = {
            t
            for (t,) in conn.execute(
                "SELECT DISTINCT card_token FROM scoring.transaction_scores s WHERE business_date = ?::DATE "
                "AND card_token IN (SELECT card_token FROM cleaned.labels "
                "WHERE reported_at <= CAST(s.business_date AS TIMESTAMP))",
                [day],
            ).fetchall()
        }
        by_score = [
            t
            for (t,) in conn.execute(
                "SELECT card_token FROM scoring.transaction_scores WHERE business_date = ?::DATE "
                "GROUP BY card_token ORDER BY max(score) DESC, card_token LIMIT 50",
                [day],
            ).fetchall()
        ]
    assert known & set(by_score), "the world must put known-compromised cards among the day's top scores"
    left_out = set(_alerts(scored, [day])["card_token"])
    assert not left_out & known
    with_known = _alerts(scored, [day], include_known_compromised=True)
    assert list(with_known["card_token"]) == by_score
    _alerts(scored, [day])  # the module's other tests read the default queue


def test_alerts_name_the_features_that_drove_the_score(scored: Path):
    with connect(scored) as conn:
        drivers = conn.execute("SELECT driver_1, drivers FROM scoring.fraud_alerts").df()
    assert drivers["driver_1"].notna().mean() > 0.9
    # The synthetic world's fraud signal lives in these columns: they should lead the explanations.
    signal = {"tx_amount", "terminal_risk_7d", "prod_amount_ratio"}
    assert drivers["driver_1"].isin(signal).mean() > 0.5


def _alerts(data_dir: Path, days: list[str], top_k: int = 50, include_known_compromised: bool = False):
    """Materialise scoring/fraud_alerts alone for `days` (one run: a single day or a range); its rows."""
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [fraud_alerts],
        instance=instance,
        resources=build_resources(data_dir, TEST_PAN_KEY),
        run_config={
            "ops": {
                "scoring__fraud_alerts": {
                    "config": {"top_k": top_k, "include_known_compromised": include_known_compromised}
                }
            }
        },
        **days_run(days),
    )
    assert result.success
    with connect(data_dir) as conn:
        return conn.execute(
            "SELECT * EXCLUDE (created_at) FROM scoring.fraud_alerts "
            "WHERE CAST(business_date AS VARCHAR) IN (SELECT unnest(?)) ORDER BY business_date, alert_rank",
            [days],
        ).df()


def test_a_range_run_builds_the_same_alerts_and_drivers_as_one_run_per_day(scored: Path):
    together = _alerts(scored, DAYS)
    one_by_one = pd.concat([_alerts(scored, [day]) for day in DAYS], ignore_index=True)
    assert len(together) == 100
    pd.testing.assert_frame_equal(together, one_by_one)


def test_a_range_ranked_in_batches_of_days_builds_the_same_alerts(scored: Path, monkeypatch):
    """A backfill ranks its days in batches (memory bounded by a batch, not the range): same queue."""
    whole = _alerts(scored, DAYS)
    module = importlib.import_module("fraud_assets.defs.scoring.fraud_alerts")  # the package names the asset
    monkeypatch.setattr(module, "ALERT_BATCH_ROWS", 1)  # one day per batch
    pd.testing.assert_frame_equal(_alerts(scored, DAYS), whole)


def test_a_day_with_fewer_cards_than_k_alerts_on_every_card(scored: Path):
    assert _score(scored, DAYS[0], top_k=100_000).success
    with connect(scored) as conn:
        n_alerts, n_cards = conn.execute(
            "SELECT (SELECT count(*) FROM scoring.fraud_alerts WHERE business_date = ?::DATE), "
            f"(SELECT count(DISTINCT card_token) {UNKNOWN_CARDS})",
            [DAYS[0], DAYS[0]],
        ).fetchone()
    assert n_alerts == n_cards


def test_declared_column_schemas_match_the_scoring_tables(scored: Path):
    with connect(scored) as conn:
        problems = schema_mismatches(conn, transaction_scores, "scoring.transaction_scores")
        problems += schema_mismatches(conn, fraud_alerts, "scoring.fraud_alerts")
    assert not problems, problems


def test_scoring_without_a_champion_fails_clearly(tmp_path: Path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_world(data_dir / "warehouse.duckdb", *make_world(days=3, tx_per_day=20))
    result = _score(data_dir, "2018-07-02", raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "no champion model yet" in str(failure.step_failure_data.error)


def test_scoring_job_never_trains(tmp_path: Path):
    job = layer_defs(tmp_path).resolve_job_def("scoring_job")
    keys = job.asset_layer.executable_asset_keys
    assert {dg.AssetKey(["scoring", "transaction_scores"]), dg.AssetKey(["scoring", "fraud_alerts"])} <= keys
    assert not any(k.path[0] == "models" for k in keys)


def test_a_range_run_records_each_days_own_scores_and_alert_figures(scored: Path):
    """What the UI plots per partition after a backfill: each day's figures, not the range's totals."""
    result = dg.materialize(
        [transaction_scores, fraud_alerts],
        instance=dg.DagsterInstance.ephemeral(),
        resources=build_resources(scored, TEST_PAN_KEY),
        run_config={"ops": {"scoring__fraud_alerts": {"config": {"top_k": 30}}}},
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
    )
    assert result.success
    md = {
        (m.asset_key.path[-1], m.partition): {k: getattr(v, "value", v) for k, v in m.metadata.items()}
        for e in result.get_asset_materialization_events()
        for m in [e.event_specific_data.materialization]
    }
    with connect(scored) as conn:
        for day in DAYS:
            n, mean, cards = conn.execute(
                "SELECT count(*), avg(score), count(DISTINCT card_token) FROM scoring.transaction_scores "
                "WHERE business_date = ?::DATE",
                [day],
            ).fetchone()
            top = conn.execute(
                "SELECT max(score) FROM scoring.fraud_alerts WHERE business_date = ?::DATE", [day]
            ).fetchone()[0]
            assert md["transaction_scores", day]["rows_scored"] == n
            assert md["transaction_scores", day]["dagster/partition_row_count"] == n
            assert md["transaction_scores", day]["mean_score"] == pytest.approx(mean)
            assert md["fraud_alerts", day]["alerts"] == 30
            assert md["fraud_alerts", day]["max_alert_score"] == pytest.approx(top)
            alerts = md["fraud_alerts", day]
            assert alerts["cards_scored"] == cards
            assert 0 <= alerts["known_compromised_cards_left_out"] < cards

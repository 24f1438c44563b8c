"""The gate (prequential test days) and monitoring (scored days) report the same Card Precision@100 for the
same scores: one definition, lib/metrics.py."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from fraud_assets.defs.models.training_set import TrainingSetConfig, build_training_set
from fraud_assets.defs.monitoring.assets import compute_performance
from fraud_assets.lib.metrics import card_precision_at_k
from fraud_assets_tests.models_world import make_world, write_world


def test_gate_and_monitoring_report_the_same_card_precision_on_the_same_days(tmp_path: Path):
    db = tmp_path / "w.duckdb"
    feats, labels = make_world()
    write_world(db, feats, labels)
    with duckdb.connect(str(db)) as conn:
        build_training_set(conn, TrainingSetConfig(train_start="2018-07-25", train_days=7, n_folds=1))
        # Every transaction of the test days scored by one model, as the daily scoring would.
        conn.execute("CREATE SCHEMA scoring")
        conn.execute(
            "CREATE TABLE scoring.transaction_scores AS "
            "SELECT transaction_id, business_date, tx_amount / 1000 + terminal_risk_7d AS score, "
            "'v1' AS model_version FROM features.transaction_features "
            "WHERE business_date BETWEEN '2018-08-08' AND '2018-08-14'"
        )
        test = conn.execute(
            "SELECT t.business_date, t.card_token, t.label, s.score FROM models.training_set t "
            "JOIN scoring.transaction_scores s USING (transaction_id) WHERE t.split = 'test'"
        ).df()
        monitored = compute_performance(conn).sort_values("business_date")
    gate_mean, gate_per_day = card_precision_at_k(test, 100)
    assert len(monitored) == 7
    assert monitored["card_precision_at_100"].tolist() == pytest.approx(gate_per_day)
    assert monitored["card_precision_at_100"].mean() == pytest.approx(gate_mean)
    assert gate_mean > 0
    # The test days hold fewer rows than were scored: known-compromised cards really were removed.
    assert len(test) < monitored["n_transactions"].sum()


def test_the_alert_queue_takes_the_cards_card_precision_counts_ties_included():
    """CP@k is the share of frauds among the k cards investigators review: the same cards, whatever the
    ties (here card_b's transaction comes first, card_a's token does), and without the cards known
    compromised by the day's start (card_z, reported the evening before)."""
    from fraud_assets.defs.scoring.fraud_alerts import KNOWN_CARD, TOP_CARDS_SQL

    rows = pd.DataFrame(
        {
            "business_date": pd.to_datetime(["2018-08-08"] * 4),
            "transaction_id": [1, 2, 3, 4],
            "card_token": ["card_b", "card_a", "card_c", "card_z"],
            "score": [0.9, 0.9, 0.5, 0.99],
            "model_version": "v1",
            "label": [0, 1, 0, 1],
        }
    )
    known_since = pd.Series({"card_z": pd.Timestamp("2018-08-07 21:00")})
    with duckdb.connect() as conn:
        conn.execute("CREATE SCHEMA cleaned")
        conn.execute(
            "CREATE TABLE cleaned.labels AS "
            "SELECT 'card_z' AS card_token, TIMESTAMP '2018-08-07 21:00' AS reported_at"
        )
        conn.register("scores", rows)
        queued = conn.execute(TOP_CARDS_SQL.format(scores="scores", where="true", known=KNOWN_CARD), [1]).df()
    assert queued["card_token"].tolist() == ["card_a"]
    assert card_precision_at_k(rows, 1, known_since=known_since)[0] == 1.0

"""Monitoring: PSI drift, performance on matured labels, their checks (docs/monitoring.md)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster_duckdb import DuckDBResource
from sklearn.metrics import average_precision_score

from fraud_assets.defs.monitoring import assets as monitoring_assets
from fraud_assets.defs.monitoring.assets import (
    BASELINE_FEATURES,
    PERFORMANCE_TYPES,
    compute_performance,
    feature_drift,
    known_compromised_since,
    lookback_days,
    model_performance,
)
from fraud_assets.defs.monitoring.checks import matured_ap_above_floor, psi_below_thresholds
from fraud_assets.defs.monitoring.metrics import psi, psi_status
from fraud_assets.lib.metrics import card_precision_by_day
from fraud_assets_tests.days_run import days_run

DAYS = pd.date_range("2018-04-01", periods=10, freq="D")


def test_psi_of_a_sample_against_its_own_distribution_is_near_zero():
    rng = np.random.default_rng(1)
    assert psi(pd.Series(rng.normal(50, 10, 5000)), pd.Series(rng.normal(50, 10, 2000))) < 0.02


def test_psi_of_a_shifted_distribution_reaches_the_act_threshold():
    rng = np.random.default_rng(2)
    value = psi(pd.Series(rng.normal(50, 10, 5000)), pd.Series(rng.normal(65, 10, 2000)))
    assert psi_status(value) == "act"


def test_psi_of_a_flag_compares_its_share_of_ones():
    ref = pd.Series([0] * 700 + [1] * 300)
    assert psi(ref, pd.Series([0] * 70 + [1] * 30)) == pytest.approx(0, abs=1e-9)
    assert psi(ref, pd.Series([0] * 30 + [1] * 70)) > 0.25


def _world(db: Path, shift_last_day: float = 0.0, history_from: str | None = "2018-01-01") -> None:
    """Ten days of features, scores, transactions and labels; fraud = the highest-amount transactions.
    `history_from`: the first day of cleaned transactions (long enough for every window to be full on the
    ten days; None: the history starts with the ten days)."""
    rng = np.random.default_rng(3)
    rows = []
    for i, day in enumerate(DAYS):
        n = 400
        amount = rng.gamma(2.0, 30.0, n) * (1 + (shift_last_day if i == len(DAYS) - 1 else 0))
        frame = pd.DataFrame({f: rng.normal(0, 1, n) for f in BASELINE_FEATURES})
        frame["tx_amount"] = amount
        frame["is_weekend"] = int(day.dayofweek >= 5)
        frame["transaction_id"] = np.arange(n) + i * 10_000
        frame["business_date"] = day.date()
        frame["card_token"] = [f"card{j % 150}" for j in range(n)]
        frame["score"] = 1 - np.exp(-amount / 100)  # monotone in amount, comparable across days
        frame["model_version"] = "v1"
        rows.append(frame)
    df = pd.concat(rows, ignore_index=True)
    labels = df.nlargest(200, "tx_amount")[["transaction_id", "card_token"]].assign(
        reported_at=pd.Timestamp(DAYS[-1]) + pd.Timedelta(days=1)
    )
    with duckdb.connect(str(db)) as conn:
        for schema in ("features", "scoring", "cleaned", "models"):
            conn.execute(f"CREATE SCHEMA {schema}")
        conn.register("df", df)
        conn.register("labels", labels)
        feats = ", ".join(BASELINE_FEATURES)
        conn.execute(
            f"CREATE TABLE features.transaction_features AS "
            f"SELECT transaction_id, business_date, {feats} FROM df"
        )
        conn.execute(
            "CREATE TABLE scoring.transaction_scores AS "
            "SELECT transaction_id, business_date, score, model_version FROM df"
        )
        conn.execute(
            "CREATE TABLE cleaned.transactions AS SELECT transaction_id, business_date, card_token FROM df"
        )
        if history_from:
            conn.execute("INSERT INTO cleaned.transactions VALUES (-1, ?, 'card0')", [history_from])
        conn.execute("CREATE TABLE cleaned.labels AS SELECT * FROM labels")
        conn.execute(
            "CREATE TABLE models.training_set AS SELECT * FROM df WHERE business_date <= DATE '2018-04-07'"
        )


CHECKS = {feature_drift.key: psi_below_thresholds, model_performance.key: matured_ap_above_floor}
ALL_DAYS = [d.date().isoformat() for d in DAYS]


def _materialize(asset, db: Path, days: list[str] | None = None) -> dg.ExecuteInProcessResult:
    """`asset` with its check, for the world's last day or the range `days` (one run)."""
    return dg.materialize(
        [asset, CHECKS[asset.key]],
        resources={"duckdb": DuckDBResource(database=str(db))},
        **days_run(days or ["2018-04-10"]),
    )


def _verdict(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    """The run's own check evaluation (a range run also records one per day)."""
    [check] = [
        e
        for e in result.get_asset_check_evaluations()
        if e.partition is None or "evaluated_over" not in e.metadata
    ]
    return check


def test_drift_of_a_stable_day_passes_its_check(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    result = _materialize(feature_drift, db)
    check = _verdict(result)
    md = result.asset_materializations_for_node("monitoring__feature_drift")[0].metadata
    assert check.passed
    assert md["current_business_date"].value == "2018-04-10"
    assert md["reference_window"].value == "2018-04-01 .. 2018-04-07"
    assert md["max_psi"].value < 0.1


def test_drifted_day_fails_the_drift_check_with_error_severity(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    _world(db, shift_last_day=1.5)
    result = _materialize(feature_drift, db)
    check = _verdict(result)
    md = result.asset_materializations_for_node("monitoring__feature_drift")[0].metadata
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert md["max_psi"].value >= 0.25
    assert md["max_psi_feature"].value in {"tx_amount", "score"}
    # Each figure once: the score's PSI is score_psi, the features' psi_<feature>.
    assert md["score_psi"].value >= 0.25
    assert md["psi_tx_amount"].value >= 0.25
    assert "psi_score" not in md
    # An alert carries the check's description: it names the day and the worst feature on its own.
    assert check.description.startswith(f"2018-04-10: {md['max_psi_feature'].value} PSI ")
    with duckdb.connect(str(db)) as conn:
        statuses = dict(conn.execute("SELECT feature, status FROM monitoring.feature_drift").fetchall())
    assert statuses["tx_amount"] == "act"
    assert statuses["score"] == "act"


def test_a_drifted_value_is_compared_once_its_window_is_full():
    # Card windows (t - n, t]; terminal windows (t - 7d - n, t - 7d]; the score needs every window.
    assert lookback_days("card_nb_tx_30d") == 30
    assert lookback_days("terminal_risk_7d") == 14
    assert lookback_days("tx_amount") == 0
    assert lookback_days("score") == 37
    # A production feature's window is not in its name's number: no guess.
    for feature in ("mcc_risk_30d", "terminal_known_fraud_7d"):
        with pytest.raises(ValueError, match="no lookback rule"):
            lookback_days(feature)


def test_drift_without_features_yet_materialises_and_passes(tmp_path):
    result = _materialize(feature_drift, tmp_path / "warehouse.duckdb")
    assert result.success
    assert _verdict(result).passed


def test_performance_is_computed_per_day_and_only_matured_days_count(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    with duckdb.connect(str(db)) as conn:  # no champion's training set: every day is out-of-sample
        conn.execute("DROP TABLE models.training_set")
    result = _materialize(model_performance, db, ALL_DAYS)
    md = result.asset_materializations_for_node("monitoring__model_performance")[-1].metadata
    with duckdb.connect(str(db)) as conn:
        perf = conn.execute("SELECT * FROM monitoring.model_performance ORDER BY business_date").df()
    assert len(perf) == len(DAYS)
    # Labels as of 2018-04-11: days up to 2018-04-03 have 7 full days of reports after them.
    assert perf["matured"].tolist() == [True] * 3 + [False] * 7
    assert md["latest_matured_business_date"].value == "2018-04-03"
    # The score orders transactions exactly as the fraud rule does: perfect AP.
    assert md["latest_matured_ap"].value == pytest.approx(1.0)
    assert _verdict(result).passed


def test_performance_metadata_names_the_last_day_of_the_champions_training_set(tmp_path):
    """Days up to it are not out-of-sample: a data scientist reading the AP figures must see where."""
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    result = _materialize(model_performance, db, ALL_DAYS)
    for m in result.asset_materializations_for_node("monitoring__model_performance"):
        assert m.metadata["champion_training_set_through"].value == "2018-04-07"


def test_the_retraining_triggers_figures_leave_out_the_champions_training_days(tmp_path):
    """A fitted or validation day's AP flatters the champion: averaged in, it would hide a decay."""
    db = tmp_path / "warehouse.duckdb"
    _world(db)  # training set through 2018-04-07; the matured days are 2018-04-01..03
    result = _materialize(model_performance, db, ALL_DAYS)
    md = result.asset_materializations_for_node("monitoring__model_performance")[-1].metadata
    assert md["n_matured_days"].value == 0
    assert "mean_ap_last_7_matured_days" not in md
    assert "latest_matured_business_date" not in md


def test_the_performance_table_has_the_declared_column_types(tmp_path):
    """The UI shows the materialised types: TIMESTAMP as declared, not pandas' TIMESTAMP_NS."""
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    result = _materialize(model_performance, db)
    schema = result.asset_materializations_for_node("monitoring__model_performance")[0].metadata
    with duckdb.connect(str(db)) as conn:
        types = {n: t for n, t, *_ in conn.execute("DESCRIBE monitoring.model_performance").fetchall()}
    assert types == PERFORMANCE_TYPES
    assert {c.name: c.type for c in schema["dagster/column_schema"].schema.columns} == PERFORMANCE_TYPES


def test_performance_read_in_batches_of_days_is_the_one_of_all_days_at_once(tmp_path, monkeypatch):
    """Scored days are read in batches (memory bounded at a network's volume): one day per batch gives the
    same rows, Card Precision following the version over its days as card_precision_by_day does on all."""
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    with duckdb.connect(str(db)) as conn:
        whole = compute_performance(conn).drop(columns="computed_at")
        monkeypatch.setattr(monitoring_assets, "PERFORMANCE_BATCH_ROWS", 1)
        by_day = compute_performance(conn).drop(columns="computed_at")
        scored = conn.execute(monitoring_assets.BATCH_PERFORMANCE_SQL, ["2000-01-01", "2100-01-01"] * 2).df()
        expected = card_precision_by_day(
            scored, 100, label_col="is_fraud", known_since=known_compromised_since(conn)
        )
    pd.testing.assert_frame_equal(by_day, whole)
    assert whole["card_precision_at_100"].tolist() == expected.tolist()


def test_decayed_model_fails_the_performance_check_with_error_severity(tmp_path, monkeypatch):
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    with duckdb.connect(str(db)) as conn:
        conn.execute("UPDATE scoring.transaction_scores SET score = hash(transaction_id) % 1000 / 1000.0")
        # A champion trained before the matured days: days inside its training set are not judged.
        conn.execute("DELETE FROM models.training_set WHERE business_date > DATE '2018-03-31'")
    result = _materialize(model_performance, db, ALL_DAYS)
    check = _verdict(result)
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR


def test_window_features_are_not_compared_while_their_windows_fill(tmp_path):
    # Ten days of history: a 30-day window on the reference days measures how much history exists, not
    # drift, so comparing it would request a retraining every new day until the windows fill.
    db = tmp_path / "warehouse.duckdb"
    _world(db, history_from=None)
    result = _materialize(feature_drift, db)
    md = result.asset_materializations_for_node("monitoring__feature_drift")[0].metadata
    with duckdb.connect(str(db)) as conn:
        rows = conn.execute("SELECT feature, status, reference_rows FROM monitoring.feature_drift").fetchall()
    status = {f: s for f, s, _ in rows}
    assert status["card_nb_tx_30d"] == status["terminal_risk_7d"] == status["score"] == "warmup"
    assert status["tx_amount"] == "ok"  # no lookback: compared over the whole reference window
    assert status["card_nb_tx_1d"] == "ok"  # complete from the second day of history on
    assert {f: n for f, _, n in rows}["card_nb_tx_1d"] == 6 * 400  # reference days 2..7
    assert md["max_psi_feature"].value not in {"card_nb_tx_30d", "terminal_risk_7d", "score"}


def test_a_burst_of_days_gets_one_drift_row_set_per_day_in_one_run(tmp_path):
    db = tmp_path / "warehouse.duckdb"
    _world(db, shift_last_day=1.5)
    days = [d.date().isoformat() for d in DAYS]
    result = dg.materialize(
        [feature_drift, psi_below_thresholds],
        resources={"duckdb": DuckDBResource(database=str(db))},
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )
    with duckdb.connect(str(db)) as conn:
        measured = [
            str(d)
            for (d,) in conn.execute(
                "SELECT DISTINCT business_date FROM monitoring.feature_drift ORDER BY 1"
            ).fetchall()
        ]
    # Every day that has an earlier day to compare with; the check reports the worst day.
    assert measured == days[1:]
    check = _verdict(result)
    assert check.description.startswith(f"{days[-1]}: ")
    md = result.asset_materializations_for_node("monitoring__feature_drift")[-1].metadata
    assert md["current_business_date"].value == days[-1]


def test_a_training_day_is_not_judged_and_the_check_says_why(tmp_path):
    """A day inside the training set may show a high PSI in the asset's metadata: the passing check says it
    was not judged, rather than that there was nothing to compare."""
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    result = dg.materialize(
        [feature_drift, psi_below_thresholds],
        resources={"duckdb": DuckDBResource(database=str(db))},
        partition_key="2018-04-05",
    )
    check = _verdict(result)
    md = result.asset_materializations_for_node("monitoring__feature_drift")[0].metadata
    assert check.passed
    assert "max_psi" in md
    assert check.metadata["note"].value.startswith("not judged: in the champion's training set")
    assert "(through 2018-04-07)" in check.metadata["note"].value


def test_each_day_of_a_burst_carries_its_own_drift_figures(tmp_path):
    """The plots over partitions and the retraining trigger read each day's own PSI, not the burst's
    latest day's on every day."""
    db = tmp_path / "warehouse.duckdb"
    _world(db, shift_last_day=1.5)
    days = [d.date().isoformat() for d in DAYS]
    result = dg.materialize(
        [feature_drift, psi_below_thresholds],
        resources={"duckdb": DuckDBResource(database=str(db))},
        tags={"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]},
    )
    md = {
        m.partition: {k: getattr(v, "value", v) for k, v in m.metadata.items()}
        for m in result.asset_materializations_for_node("monitoring__feature_drift")
    }
    assert [md[d]["current_business_date"] for d in days[1:]] == days[1:]
    assert md[days[-1]]["max_psi"] >= 0.25
    assert max(md[d]["max_psi"] for d in days[1:-1]) < 0.1
    with duckdb.connect(str(db)) as conn:
        tx_amount = dict(
            conn.execute(
                "SELECT CAST(business_date AS VARCHAR), psi FROM monitoring.feature_drift "
                "WHERE feature = 'tx_amount'"
            ).fetchall()
        )
    assert {d: md[d]["psi_tx_amount"] for d in days[1:]} == pytest.approx(tx_amount)
    # The first day has nothing before it: no drift figure at all rather than another day's.
    assert "max_psi" not in md[days[0]]


@pytest.mark.parametrize(
    ("new_from", "status", "reference_rows"),
    [("2018-04-10", "no_data", 0), ("2018-04-08", "ok", 2 * 400)],
    ids=["first-day", "own-earlier-days"],
)
def test_a_new_champions_scores_are_compared_with_its_own_scores_only(
    tmp_path, new_from, status, reference_rows
):
    # A new champion scoring the same population with another calibration (here the same ranking): its
    # scores against the training window's scores of the former champion would read as drift (PSI > 1.6)
    # and request a retraining. Its own earlier scored days are the reference; with none, nothing is
    # compared.
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    with duckdb.connect(str(db)) as conn:
        conn.execute(
            "UPDATE scoring.transaction_scores SET score = sqrt(score), model_version = 'v2' "
            "WHERE business_date >= CAST(? AS DATE)",
            [new_from],
        )
    result = _materialize(feature_drift, db)
    check = _verdict(result)
    with duckdb.connect(str(db)) as conn:
        psi_value, got_status, got_rows = conn.execute(
            "SELECT psi, status, reference_rows FROM monitoring.feature_drift WHERE feature = 'score'"
        ).fetchone()
    assert (got_status, got_rows) == (status, reference_rows)
    assert psi_value is None or psi_value < 0.1
    assert check.passed


def test_performance_ap_leaves_out_the_cards_known_compromised_like_the_gate(tmp_path):
    # The gate's AP is over the test days' transactions of cards with no fraud reported by the day's start
    # (models/training_set); the decay AP must be the same figure, not one lifted by the frauds of cards
    # already known compromised.
    db = tmp_path / "warehouse.duckdb"
    _world(db)
    with duckdb.connect(str(db)) as conn:
        conn.execute("UPDATE scoring.transaction_scores SET score = hash(transaction_id) % 1000 / 1000.0")
        conn.execute(  # the frauds of the first day reported the next day: their cards known from day 3
            "UPDATE cleaned.labels SET reported_at = TIMESTAMP '2018-04-02 12:00:00' "
            "WHERE transaction_id < 10000"
        )
        known = {
            r[0]
            for r in conn.execute(
                "SELECT card_token FROM cleaned.labels WHERE transaction_id < 10000"
            ).fetchall()
        }
        perf = compute_performance(conn).set_index("business_date")
        scored = conn.execute(monitoring_assets.BATCH_PERFORMANCE_SQL, ["2018-04-03", "2018-04-03"] * 2).df()
    assert known
    fresh = scored[~scored["card_token"].isin(known)]
    assert 0 < fresh["is_fraud"].sum() < scored["is_fraud"].sum()
    expected = average_precision_score(fresh["is_fraud"], fresh["score"])
    assert perf.loc[DAYS[2].date(), "average_precision"] == pytest.approx(expected)


def _register_champion(db: Path) -> None:
    """Champion v1: fitted on 2018-03-01..24, validated through 2018-04-02 (its registry record)."""
    from datetime import date

    from fraud_assets.lib import registry
    from fraud_assets.lib.signing import Signer
    from fraud_assets_tests.conftest import TEST_REGISTRY_KEY

    signer = Signer(TEST_REGISTRY_KEY)
    with duckdb.connect(str(db)) as conn:
        registry.register_version(
            conn,
            registry.ModelVersion(
                model_version="v1", family="logistic_regression", params={}, feature_columns=["a"],
                train_start=date(2018, 3, 1), train_end=date(2018, 3, 24), delay_days=7,
                test_start=date(2018, 3, 26), test_end=date(2018, 4, 2), n_folds=1, data_hash="d" * 64,
                code_version="test", metrics={}, artifact_path="v1.skops", artifact_sha256="0" * 64,
            ),
            signer,
        )  # fmt: skip
        registry.move_alias(conn, registry.CHAMPION, "v1", "test", signer=signer)


def test_the_in_sample_boundary_is_the_champions_training_set_not_a_waiting_challengers(tmp_path):
    """models.training_set holds the latest training run's days: while its challenger awaits approval, the
    champion still scores, and the days after its own training set are out of sample and judged."""
    db = tmp_path / "warehouse.duckdb"
    _world(db)  # its training set (through 04-07) is the waiting challenger's
    _register_champion(db)
    result = _materialize(model_performance, db, ALL_DAYS)
    md = result.asset_materializations_for_node("monitoring__model_performance")[-1].metadata
    assert md["champion_training_set_through"].value == "2018-04-02"
    verdicts = {e.partition: e for e in result.get_asset_check_evaluations()}
    assert "note" not in verdicts["2018-04-03"].metadata  # matured and after the champion's days: judged
    assert verdicts["2018-04-02"].metadata["note"].value.startswith("not judged: inside the champion's")


def test_drift_compares_a_day_with_the_days_the_champion_was_fitted_on(tmp_path):
    """Not with a waiting challenger's training set: the champion is the model that scores the day."""
    from fraud_assets.defs.monitoring.assets import _reference_window

    db = tmp_path / "warehouse.duckdb"
    _world(db)
    with duckdb.connect(str(db)) as conn:
        assert _reference_window(conn, "2018-04-09")[1] == "2018-04-07"  # the training set's, no champion
    _register_champion(db)
    with duckdb.connect(str(db)) as conn:
        assert _reference_window(conn, "2018-04-09") == ("2018-03-01", "2018-03-24")
        assert _reference_window(conn, "2018-03-10") == ("2018-03-01", "2018-03-09")  # never the day itself

"""features/transaction_features on Spark (local[2], through Dagster Pipes) equals the DuckDB engine.

One small realistic world (labels with the long tail of reporting delays: many reported only after the
7-day delay; frauds reported after the world's end not known), with same-instant transactions of a card,
a card missing from cleaned.cards and a day without transactions added, materialised once per engine into
its own warehouse. Spark runs once for the module (a session costs ~15 s). Needs Java 17 and pyspark:
without them this module fails, it never skips.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pyspark  # noqa: F401  (a missing engine fails collection, never a skip)
import pytest

from fraud_assets.defs.features.assets import transaction_features
from fraud_assets.defs.features.checks import FEATURE_CHECKS
from fraud_assets.defs.features.compute import COLUMNS, COUNT_COLUMNS, FEATURES_TABLE
from fraud_assets.defs.features.spark import sql as spark_sql
from fraud_assets.defs.features.spark.launcher import missing_exports
from fraud_assets.lib.pan import Tokenizer
from fraud_assets.lib.warehouse import replace_partition, replace_table
from fraud_assets.resources import FeatureEngine, build_resources
from fraud_assets.simulator import SimConfig, generate_world
from fraud_assets.simulator.warehouse_loader import load_world_into_cleaned
from fraud_assets_tests.conftest import TEST_PAN_KEY, TEST_REGISTRY_KEY

pytestmark = pytest.mark.slow  # a Spark session and two engines' runs: minutes, not seconds

TIES = 25
CONSTANT_CARD_IDS, CONSTANT_AMOUNT = 20_000_000_000, 129438.26
ASSET = "features__transaction_features"
EXACT_COLUMNS = ("business_date", "tx_datetime", "card_token", "terminal_id")


def _cleaned_world(data_dir: Path) -> list[str]:
    """The cleaned layer of the world in `data_dir`, exported as the cleaned assets export it
    (transactions Hive-partitioned by business date); its business dates."""
    world = generate_world(SimConfig(profile="realistic", days=45, customers=150, terminals=300, seed=3))
    data_dir.mkdir(parents=True)
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        load_world_into_cleaned(conn, world, Tokenizer(TEST_PAN_KEY))
        # Ties: a second transaction of the same card at the very same instant, at another terminal.
        conn.execute(f"""
            CREATE TEMP TABLE staged AS SELECT * FROM cleaned.transactions
            UNION ALL
            SELECT * REPLACE (transaction_id + 10000000000 AS transaction_id,
                              (SELECT min(terminal_id) FROM cleaned.terminals) AS terminal_id)
            FROM cleaned.transactions USING SAMPLE reservoir({TIES} ROWS) REPEATABLE (11)""")
        # A card with constant large amounts, then twice the amount: rounding of their sums of squares.
        conn.execute(f"""
            INSERT INTO staged SELECT * EXCLUDE (d) REPLACE (
                {CONSTANT_CARD_IDS} + d AS transaction_id,
                business_date + CAST(d AS INTEGER) AS business_date,
                tx_datetime + to_days(CAST(d AS INTEGER)) AS tx_datetime,
                tx_datetime_local + to_days(CAST(d AS INTEGER)) AS tx_datetime_local,
                repeat('c', 64) AS card_token, {CONSTANT_AMOUNT} * (1 + (d = 4)::INTEGER) AS tx_amount,
                {CONSTANT_AMOUNT} * (1 + (d = 4)::INTEGER) * fx_rate AS amount_original)
            FROM (SELECT * FROM cleaned.transactions ORDER BY transaction_id LIMIT 1), range(5) AS r(d)""")
        # The least active card loses its reference row: its NULL distances stay under the null_rates
        # check's 1 % on every day, which that check now judges day by day.
        conn.execute(
            "CREATE TEMP TABLE cards_kept AS SELECT * FROM cleaned.cards WHERE card_token <> ("
            "SELECT s.card_token FROM staged s JOIN cleaned.cards c USING (card_token) "
            "GROUP BY s.card_token ORDER BY count(*), s.card_token LIMIT 1)"
        )
        replace_table(conn, "cleaned.cards", "SELECT * FROM cards_kept")
        days = [d for (d,) in conn.execute("SELECT DISTINCT business_date FROM staged ORDER BY 1").fetchall()]
        # and a quiet day after the world: cleaned, exported empty, in the feature run's range
        keys = [str(d) for d in [*days, days[-1] + dt.timedelta(days=1)]]
        replace_partition(conn, "cleaned.transactions", "SELECT * FROM staged", "business_date", keys)
    (data_dir / "exports" / "cleaned" / "transactions" / "data.parquet").unlink()
    return keys


def _materialize(
    data_dir: Path, keys: list[str], engine: FeatureEngine, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    resources = build_resources(data_dir, TEST_PAN_KEY, TEST_REGISTRY_KEY) | {"feature_engine": engine}
    return dg.materialize(
        [transaction_features, *FEATURE_CHECKS],
        resources=resources,
        instance=instance,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )


def _table(data_dir: Path) -> pd.DataFrame:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        return (
            conn.execute(f"SELECT * FROM {FEATURES_TABLE} ORDER BY transaction_id")
            .df()
            .set_index("transaction_id")
        )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("engines")
    keys = _cleaned_world(root / "duckdb")
    shutil.copytree(root / "duckdb", root / "spark")
    instance = dg.DagsterInstance.ephemeral()
    by_duckdb = _materialize(root / "duckdb", keys, FeatureEngine(engine="duckdb"), instance)
    spark = FeatureEngine(engine="spark", spark_master="local[2]", spark_shuffle_partitions=2)
    by_spark = _materialize(root / "spark", keys, spark, instance)
    return {
        "root": root,
        "keys": keys,
        "duckdb": _table(root / "duckdb"),
        "spark": _table(root / "spark"),
        "spark_result": by_spark,
        "duckdb_result": by_duckdb,
        "instance": instance,
    }


def test_the_compared_world_has_late_labels_ties_and_a_card_without_reference(runs):
    with duckdb.connect(str(runs["root"] / "duckdb" / "warehouse.duckdb"), read_only=True) as conn:
        late, pending = conn.execute(
            "SELECT count(*) FILTER (WHERE reported_at > tx_datetime + INTERVAL 7 DAY), "
            "count(*) FILTER (WHERE reported_at > (SELECT max(tx_datetime) FROM cleaned.transactions)) "
            "FROM cleaned.labels"
        ).fetchone()
    features = runs["duckdb"]
    assert late > 50  # labels that arrive after the delayed window closed: counted from their report on
    assert pending == 0  # load_world_into_cleaned keeps only the frauds reported by the world's end
    assert features.duplicated(["card_token", "tx_datetime"], keep=False).sum() >= 2 * TIES
    assert features["dist_home_terminal"].isna().any()
    assert (features["terminal_risk_30d"] > 0).sum() > 100
    assert (features["terminal_known_fraud_28d"] > 0).sum() > 100
    assert (features["terminal_known_fraud_60d"] > features["terminal_known_fraud_28d"]).sum() > 100
    assert (features["card_known_fraud_60d"] > 0).sum() > 10
    assert (features["mcc_risk_30d"] > 0).any()
    assert features["is_ecommerce"].any()


def test_spark_and_duckdb_write_the_same_rows(runs):
    spark, by_duckdb = runs["spark"], runs["duckdb"]
    quiet_day = dt.date.fromisoformat(runs["keys"][-1])
    assert not (spark["business_date"].dt.date == quiet_day).any()
    assert len(spark) == len(by_duckdb) > 10_000
    assert spark.index.equals(by_duckdb.index)
    assert list(spark.columns) == list(by_duckdb.columns) == [c for c, _ in COLUMNS[1:]]


def _mismatches(left: pd.Series, right: pd.Series, column: str) -> int:
    """Rows that differ: keys and counts exactly, the rest to 1e-9 relative, NULL only against NULL."""
    if column in EXACT_COLUMNS or column in COUNT_COLUMNS:
        return int((left.astype(str) != right.astype(str)).sum())
    a, b = left.astype("float64").to_numpy(), right.astype("float64").to_numpy()
    same = np.isclose(a, b, rtol=1e-9, atol=0.0) | (np.isnan(a) & np.isnan(b))
    return int((~same).sum())


def test_every_column_is_equal_on_every_row(runs):
    spark, by_duckdb = runs["spark"], runs["duckdb"]
    assert spark.index.equals(by_duckdb.index)
    differing = {c: _mismatches(spark[c], by_duckdb[c], c) for c, _ in COLUMNS[1:]}
    assert {c: n for c, n in differing.items() if n} == {}


def test_both_engines_give_a_zscore_of_0_after_constant_amounts(runs):
    last = CONSTANT_CARD_IDS + 4
    assert runs["duckdb"].loc[last, "tx_amount"] == 2 * CONSTANT_AMOUNT
    assert (
        runs["duckdb"].loc[last, "card_amount_zscore_30d"]
        == runs["spark"].loc[last, "card_amount_zscore_30d"]
        == 0
    )


def test_spark_output_passes_the_feature_checks(runs):
    evaluations = runs["spark_result"].get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} >= {"one_row_per_transaction", "sampled_naive_recompute"}
    assert [e.check_name for e in evaluations if not e.passed] == []


def test_spark_reports_master_rows_and_seconds_through_pipes(runs):
    result, keys = runs["spark_result"], runs["keys"]
    materializations = result.asset_materializations_for_node(ASSET)
    assert len(materializations) == len(keys)
    # The run's figures are on its last day's materialisation (lib/day_metadata.py).
    last = max(materializations, key=lambda m: m.partition)
    metadata = {k: getattr(v, "value", v) for k, v in last.metadata.items()}
    assert metadata["feature_engine"] == "spark"
    assert metadata["spark_master"] == "local[2]"
    # Each day's materialisation carries the day's own rows written (lib/day_metadata.py).
    written = sum(m.metadata["rows_written"].value for m in materializations if "rows_written" in m.metadata)
    assert metadata["spark_rows"] == written == len(runs["spark"])
    assert metadata["spark_compute_seconds"] > 0
    messages = [e.message for e in runs["instance"].all_logs(result.run_id)]
    assert any("session on local[2]" in m for m in messages)  # logged by the Spark job, through Pipes
    assert any(m.startswith(f"Spark wrote {len(runs['spark'])} feature rows") for m in messages)


def test_the_runs_spark_work_directory_is_removed_after_the_load(runs):
    work = runs["root"] / "spark" / "spark_work"
    assert work.is_dir()  # the job ran there
    assert list(work.iterdir()) == []


def test_a_feature_column_without_a_spark_definition_stops_the_spark_engine():
    with pytest.raises(ValueError, match="no Spark SQL definition for feature column"):
        spark_sql.select_features([*COLUMNS, ("card_nb_tx_90d", "BIGINT")])


def test_the_spark_engine_names_the_cleaned_exports_it_is_missing(tmp_path: Path):
    missing = missing_exports(tmp_path, ["2018-05-02", "2018-05-01"])
    assert missing == [
        "cleaned/labels/data.parquet",
        "cleaned/cards/data.parquet",
        "cleaned/terminals/data.parquet",
        "cleaned/transactions/business_date=2018-05-01/data.parquet",
        "cleaned/transactions/business_date=2018-05-02/data.parquet",
    ]

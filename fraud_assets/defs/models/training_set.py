"""`models/training_set`: features joined with labels, point in time, split for prequential validation."""

import dataclasses
from datetime import date, timedelta

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from fraud_assets.defs.features.compute import WINDOW_LOOKBACK_DAYS
from fraud_assets.defs.models.common import (
    CODE_VERSION,
    FEATURES_TABLE,
    LABELS_TABLE,
    OWNERS,
    TRAINING_SET_TABLE,
    feature_columns,
)
from fraud_assets.defs.models.schemas import (
    TRAINING_SET_COLUMNS,
    TRAINING_SET_DESCRIPTIONS,
    TRAINING_SET_LINEAGE,
)
from fraud_assets.defs.models.snapshots import archive_training_set
from fraud_assets.lib.catalog_metadata import COLUMN_LINEAGE_KEY, column_schema_metadata
from fraud_assets.lib.model_selection import Fold, prequential_folds
from fraud_assets.lib.warehouse import replace_table, table_metadata
from fraud_assets.resources import ModelStore

# One row per (fold, split, transaction).
# - train rows: the fold's training days; label = a fraud label REPORTED by the training cut-off (the first
#   test day, 00:00 UTC): frauds reported later were unknown when the model was trained. Every fraud row is
#   kept, and a fixed share of the genuine ones chosen by a hash of the transaction id (the same rows in
#   every fold and run): a long window costs what a short one did, and a model's ranking barely moves.
# - test rows: the fold's test days; label = every label known now (evaluation is retrospective). A card
#   already known to be compromised on a test day is removed from that day: it would be blocked, not
#   scored. Known = a label reported by the start of that day; with known_compromised='handbook' also
#   only frauds that happened in [start, day - delay) count, start = the first day of the handbook's 7-day
#   training window (test_start - delay - 7 days, whatever train_days is): exactly the handbook's
#   get_train_test_set (it assumes every fraud is known `delay` days after it happens), so the test rows
#   of a split do not depend on the training window length.
TRAINING_SET_SQL = """
WITH first_report AS (
    SELECT transaction_id, min(reported_at) AS reported_at FROM {labels} GROUP BY transaction_id
),
feats AS (
    SELECT transaction_id, business_date, tx_datetime, card_token, terminal_id, {feature_select}
    FROM {features}
),
train AS (
    SELECT *, CASE WHEN label = 1 THEN 1.0 ELSE 1000000.0 / {genuine_per_million} END AS weight FROM (
        SELECT f.fold, 'train' AS split, t.*,
               coalesce(r.reported_at <= CAST(f.test_start AS TIMESTAMP), false)::INTEGER AS label
        FROM _fold_days f
        JOIN feats t ON t.business_date = f.business_date
        LEFT JOIN first_report r USING (transaction_id)
        WHERE f.split = 'train'
    )
    WHERE label = 1 OR hash(transaction_id) % 1000000 < {genuine_per_million}
),
test AS (
    SELECT f.fold, 'test' AS split, t.*, (r.reported_at IS NOT NULL)::INTEGER AS label, 1.0 AS weight
    FROM _fold_days f
    JOIN feats t ON t.business_date = f.business_date
    LEFT JOIN first_report r USING (transaction_id)
    WHERE f.split = 'test' AND NOT EXISTS (
        SELECT 1 FROM {labels} l
        WHERE l.card_token = t.card_token
          AND l.reported_at <= CAST(t.business_date AS TIMESTAMP)
          AND (NOT {handbook} OR (l.tx_datetime >= CAST(f.test_start - to_days(f.delay_days + 7) AS TIMESTAMP)
                         AND l.tx_datetime < CAST(t.business_date AS TIMESTAMP) - to_days(f.delay_days)))
    )
)
-- business_date as TIMESTAMP: the declared schema (schemas.py)
SELECT * REPLACE (CAST(business_date AS TIMESTAMP) AS business_date)
FROM (SELECT * FROM train UNION ALL BY NAME SELECT * FROM test)
"""


class TrainingSetConfig(dg.Config):
    """Windows of the evaluation protocol (defaults: the handbook's 7-day train, delay and test)."""

    train_start: str = Field(
        default="",
        description="First training day of fold 0 (YYYY-MM-DD). Empty: the latest split whose test window "
        "ends on the last business date in the feature table.",
    )
    train_days: int = Field(
        default=56,
        description="Days in each training window: the longest the model selection tries (a candidate "
        "trains on the last `train_days` of its own config).",
    )
    genuine_share: float = Field(
        default=0.2,
        description="Share of the genuine training rows kept (every fraud row is kept); 1 keeps all.",
    )
    max_genuine_rows: int = Field(
        default=250_000,
        description="Most genuine rows kept in a fold's training window: where genuine_share would keep "
        "more (a network's daily volume), the share drops to fit, so training costs the same whatever the "
        "volume; the weights follow the share used. 0: no cap.",
    )
    delay_days: int = Field(default=7, description="Label delay: days between training and test windows.")
    test_days: int = Field(default=7, description="Days in each test window.")
    n_folds: int = Field(default=4, description="Prequential folds (fold i is shifted i*step_days back).")
    step_days: int = Field(default=7, description="Shift between consecutive folds.")
    known_compromised: str = Field(
        default="reported",
        description="'reported': a card is removed from a test day once a fraud on it has been reported; "
        "'handbook': also only frauds in [train_start, day - delay) count (the handbook's rule).",
    )


def resolve_folds(config: TrainingSetConfig, last_business_date: date) -> list[Fold]:
    if config.train_start:
        start = date.fromisoformat(config.train_start)
    else:
        span = config.train_days + config.delay_days + config.test_days
        start = last_business_date - timedelta(days=span - 1)
    return prequential_folds(
        start, config.train_days, config.delay_days, config.test_days, config.n_folds, config.step_days
    )


# Training days should be days whose features were full: the first WINDOW_LOOKBACK_DAYS of history have
# short 30-day windows and, for the first 7, no delayed terminal risk at all. The 60-day fraud-episode
# features (EPISODE_DAYS) are not waited for: they only undercount frauds older than the history, as they
# do for any new terminal or card, and waiting 60 days would leave a short world (the 45-day demo) no
# full training day at all.
MIN_FULL_TRAIN_DAYS = 7


def outside_warmup(fold: Fold, first_day: date) -> Fold:
    """`fold` with its training window starting after the features' warm-up (the first
    WINDOW_LOOKBACK_DAYS days from `first_day`, the first day of history) when at least
    MIN_FULL_TRAIN_DAYS of it remain; unchanged otherwise (a bootstrap on a short history trains on what
    there is, and training_set's metadata counts those days: `fold0_train_days_in_warmup`)."""
    full = first_day + timedelta(days=WINDOW_LOOKBACK_DAYS)
    if fold.train_start >= full or (fold.train_end - full).days + 1 < MIN_FULL_TRAIN_DAYS:
        return fold
    return dataclasses.replace(fold, train_start=full)


def train_days_in_warmup(fold: Fold, first_day: date) -> int:
    """Days of `fold`'s training window that hold data (from `first_day`, the first day of history, on)
    and lie in the features' warm-up: the window may start before the history does."""
    full = first_day + timedelta(days=WINDOW_LOOKBACK_DAYS)
    start = max(fold.train_start, first_day)
    return max(0, (min(full, fold.train_end + timedelta(days=1)) - start).days)


def genuine_share_used(conn, config: TrainingSetConfig, fold: Fold) -> float:
    """`genuine_share`, lowered so that a training window keeps at most `max_genuine_rows` genuine rows
    (counted on `fold`'s window: every fold's is as long)."""
    if config.max_genuine_rows <= 0:
        return config.genuine_share
    [(rows,)] = conn.execute(  # fetched to the end: the caller registers a frame on this connection next
        f"SELECT count(*) FROM {FEATURES_TABLE} WHERE business_date BETWEEN ? AND ?",
        [fold.train_start, fold.train_end],
    ).fetchall()
    if rows * config.genuine_share <= config.max_genuine_rows:
        return config.genuine_share
    return max(config.max_genuine_rows / rows, 1e-6)


def build_training_set(conn, config: TrainingSetConfig) -> tuple[list[Fold], list[str], int, float]:
    """Write models.training_set; return the folds, the feature columns, the row count and the genuine
    share used."""
    if config.known_compromised not in ("reported", "handbook"):
        raise ValueError("known_compromised must be 'reported' or 'handbook'")
    if not 0.0 < config.genuine_share <= 1.0:
        raise ValueError("genuine_share must be within (0, 1]")
    first, last = conn.execute(
        f"SELECT min(business_date), max(business_date) FROM {FEATURES_TABLE}"
    ).fetchone()
    if last is None:
        raise dg.Failure(f"{FEATURES_TABLE} is empty: materialise features/transaction_features first")
    folds = [outside_warmup(f, first) for f in resolve_folds(config, last)]
    cols = feature_columns(conn)
    share = genuine_share_used(conn, config, folds[0])
    # One row per (fold, day): the feature table joins it on equality (a hash join streaming the table),
    # where a range join on the fold windows would sort the whole table first (tens of GB at 100M rows).
    fold_days = pd.DataFrame(
        [
            {
                "fold": f.fold,
                "split": split,
                "business_date": first + timedelta(days=i),
                "test_start": f.test_start,
                "delay_days": config.delay_days,
            }
            for f in folds
            for split, first, last in (
                ("train", f.train_start, f.train_end),
                ("test", f.test_start, f.test_end),
            )
            for i in range((last - first).days + 1)
        ]
    )
    conn.register("_fold_days", fold_days)
    feature_select = ", ".join(f'CAST("{c}" AS DOUBLE) AS "{c}"' for c in cols)
    sql = TRAINING_SET_SQL.format(
        labels=LABELS_TABLE,
        features=FEATURES_TABLE,
        feature_select=feature_select,
        genuine_per_million=round(share * 1_000_000),
        handbook=str(config.known_compromised == "handbook").upper(),
    )
    # Written by the engine, never through pandas: at a network's volume the test windows alone are tens
    # of millions of rows. Readers order it (snapshots.READ_SQL).
    n = replace_table(conn, TRAINING_SET_TABLE, sql)
    conn.unregister("_fold_days")
    return folds, cols, n, share


@dg.asset(
    key=["models", "training_set"],
    group_name="models",
    owners=OWNERS,
    kinds={"duckdb", "sql"},
    code_version=CODE_VERSION,
    pool="duckdb",
    deps=[dg.AssetKey(["features", "transaction_features"]), dg.AssetKey(["cleaned", "labels"])],
    metadata=column_schema_metadata(
        TRAINING_SET_COLUMNS, descriptions=TRAINING_SET_DESCRIPTIONS, lineage=TRAINING_SET_LINEAGE
    ),
    description=(
        "Training and test sets for fraud models, for the data scientists who train and compare them. "
        "Per prequential fold: training days joined with the fraud labels known at the training cut-off "
        "(point in time), a delay window equal to the label delay, then test days labelled with every "
        "label known now, minus the cards already known to be compromised on each test day. All numeric "
        "columns of features.transaction_features are carried (cast to DOUBLE). Archived as a signed data "
        "snapshot (models.data_snapshots + Parquet in the model store) for `make reproduce`."
    ),
)
def training_set(
    context: dg.AssetExecutionContext,
    config: TrainingSetConfig,
    duckdb: DuckDBResource,
    model_store: ModelStore,
):
    with duckdb.get_connection() as conn:
        folds, cols, n, share = build_training_set(conn, config)
        first, horizon = conn.execute(
            f"SELECT CAST(min(business_date) AS DATE), CAST(max(business_date) AS DATE) FROM {FEATURES_TABLE}"
        ).fetchone()
        # The windows as resolved today (before the warm-up cut, which the same history reproduces): an
        # empty train_start means "the latest split", which moves.
        resolved = {
            **config.model_dump(),
            "train_start": resolve_folds(config, horizon)[0].train_start.isoformat(),
        }
        snapshot = archive_training_set(
            conn, model_store.path, model_store.signer(), resolved, context.run.run_id
        )
        stats = conn.execute(
            f"SELECT fold, split, count(*) AS n, sum(label) AS fraud, count(DISTINCT card_token) AS cards "
            f"FROM {TRAINING_SET_TABLE} GROUP BY ALL ORDER BY fold, split"
        ).df()
        f0 = stats[stats["fold"] == 0].set_index("split")
        windows = pd.DataFrame([f.__dict__ for f in folds])
        md = table_metadata(
            conn,
            TRAINING_SET_TABLE,
            descriptions=TRAINING_SET_DESCRIPTIONS,
            preview_columns=["fold", "split", "transaction_id", "business_date", "label"],
            extra={
                # The newest business day this training run could see: the retraining trigger does not
                # retrain for drift on a day the current models were already trained with.
                "latest_business_date": str(horizon),
                "data_hash": snapshot["data_hash"],
                "snapshot_path": snapshot["parquet_path"],
                "n_features": len(cols),
                "feature_columns": dg.MetadataValue.json(cols),
                # Below the configured genuine_share when the window holds more than max_genuine_rows.
                "genuine_share_used": share,
                "fold0_train_rows": int(f0.loc["train", "n"]) if "train" in f0.index else 0,
                "fold0_train_fraud": int(f0.loc["train", "fraud"]) if "train" in f0.index else 0,
                "fold0_test_rows": int(f0.loc["test", "n"]) if "test" in f0.index else 0,
                "fold0_test_fraud": int(f0.loc["test", "fraud"]) if "test" in f0.index else 0,
                "fold0_train_days_in_warmup": train_days_in_warmup(folds[0], first),
                "folds": dg.MetadataValue.md(windows.to_markdown(index=False)),
                "rows_per_fold_split": dg.MetadataValue.md(stats.to_markdown(index=False)),
                COLUMN_LINEAGE_KEY: TRAINING_SET_LINEAGE,
            },
        )
    context.log.info(f"training set: {n} rows, {len(folds)} folds, {len(cols)} features")
    return dg.MaterializeResult(metadata=md)

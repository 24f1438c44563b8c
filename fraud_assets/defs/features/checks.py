"""Checks on features.transaction_features: completeness, a sampled naive recomputation, nulls, ranges.

The blocking completeness check is partitioned like the asset: automation gates each day's scores on
that day's result (an unpartitioned check on a partitioned asset only counts if its latest evaluation
targets the latest materialisation of *any* partition, which two day runs interleaving break). The
others read the whole table (every materialised partition): the table is small enough, and a check that
only looked at the last partition would miss a backfill's damage. All open the warehouse, so all take
the `duckdb` pool.
"""

import random
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.features.assets import transaction_features
from fraud_assets.defs.features.compute import COUNT_COLUMNS, FEATURE_COLUMNS, FLAG_COLUMNS, TABLE
from fraud_assets.lib.contracts import partition_filter, partition_span, partitioned_asset_check
from fraud_assets.lib.partitions import business_date_partitions
from fraud_assets.lib.warehouse import table_exists

NAIVE_SQL_PATH = Path(__file__).with_name("naive_recompute.sql")
SAMPLE_ROWS = 200
REL_TOL = 1e-9
# A card missing from cleaned.cards has no home: dist_home_terminal may be null for a few rows.
NULLABLE_SHARE = {"dist_home_terminal": 0.01}


def _no_table() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, metadata={"reason": f"{TABLE} does not exist yet"})


@partitioned_asset_check(
    asset=transaction_features,
    name="one_row_per_transaction",
    blocking=True,
    partitions_def=business_date_partitions,
    pool="duckdb",
    description=(
        "Completeness and uniqueness for the partition(s) just materialised: exactly one feature row per "
        "cleaned transaction of the business date (no transaction_id duplicated anywhere in the table, "
        "none missing, none extra). Blocking, and partitioned like the asset, so each day's scores wait "
        "on that day's result only."
    ),
)
def one_row_per_transaction(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    where, params = partition_filter(context, "business_date")
    with duckdb.get_connection() as conn:
        if not table_exists(conn, TABLE):
            return _no_table()
        duplicates, missing, extra, rows = conn.execute(
            f"""
            WITH f AS (SELECT transaction_id, business_date FROM {TABLE} WHERE {where}),
                 c AS (SELECT transaction_id, business_date FROM cleaned.transactions WHERE {where})
            SELECT (SELECT count(*) FROM {TABLE} WHERE transaction_id IN (SELECT transaction_id FROM f))
                       - (SELECT count(DISTINCT transaction_id) FROM f),
                   (SELECT count(*) FROM c ANTI JOIN f USING (transaction_id, business_date)),
                   (SELECT count(*) FROM f ANTI JOIN c USING (transaction_id, business_date)),
                   (SELECT count(*) FROM f)
            """,
            params + params,
        ).fetchall()[0]
    return dg.AssetCheckResult(
        passed=duplicates == 0 and missing == 0 and extra == 0,
        metadata={
            "business_dates": partition_span(context.partition_keys, "days"),
            "duplicate_rows": int(duplicates),
            "missing_transactions": int(missing),
            "rows_without_cleaned_transaction": int(extra),
            "rows": int(rows),
        },
    )


@dg.asset_check(
    asset=transaction_features,
    name="sampled_naive_recompute",
    pool="duckdb",
    description=(
        f"Leakage and correctness guard: recomputes {SAMPLE_ROWS} random rows the naive way (plain joins on "
        "cleaned.transactions and cleaned.labels, straight from the definitions, no window functions) and "
        f"compares the baseline card/terminal features, the card velocity features and the undelayed "
        "terminal known-fraud counts: counts exactly, "
        f"averages and ratios to {REL_TOL:g} relative. A window off by one row, a frame that leaks the "
        "future or a label used before it was reported shows up as a mismatch."
    ),
)
def sampled_naive_recompute(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    seed = random.randrange(1_000_000)
    with duckdb.get_connection() as conn:
        if not table_exists(conn, TABLE):
            return _no_table()
        naive = conn.execute(NAIVE_SQL_PATH.read_text().format(sample_rows=SAMPLE_ROWS, seed=seed)).df()
        ids = naive["transaction_id"].tolist()
        stored = (
            conn.execute(f"SELECT * FROM {TABLE} WHERE transaction_id IN (SELECT unnest(?))", [ids])
            .df()
            .set_index("transaction_id")
        )
    naive = naive.set_index("transaction_id")
    mismatches: dict[str, int] = {}
    worst = 0.0
    for col in naive.columns:
        a = naive[col].astype("float64")
        b = stored.loc[naive.index, col].astype("float64")
        if col in COUNT_COLUMNS:
            bad = a != b
        else:
            diff = (a - b).abs()
            scale = a.abs().combine(b.abs(), max)
            bad = diff > REL_TOL * scale + 1e-12
            worst = max(worst, float((diff / scale.where(scale > 0, 1.0)).max() or 0.0))
        if int(bad.sum()):
            mismatches[col] = int(bad.sum())
    return dg.AssetCheckResult(
        passed=not mismatches,
        metadata={
            "rows_compared": len(naive),
            "columns_compared": len(naive.columns),
            "mismatched_values": sum(mismatches.values()),
            "mismatched_columns": ", ".join(f"{k} ({v})" for k, v in mismatches.items()) or "none",
            "worst_relative_difference": worst,
            "sample_seed": seed,
        },
    )


@dg.asset_check(
    asset=transaction_features,
    name="null_rates",
    pool="duckdb",
    description=(
        "Completeness of every feature column: no nulls (features have documented defaults), except "
        "dist_home_terminal which may be null for at most 1% of rows (card missing from cleaned.cards)."
    ),
)
def null_rates(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as conn:
        if not table_exists(conn, TABLE):
            return _no_table()
        exprs = ", ".join(f"avg(CAST({c} IS NULL AS DOUBLE)) AS {c}" for c in FEATURE_COLUMNS)
        rates = conn.execute(f"SELECT {exprs} FROM {TABLE}").df().iloc[0].fillna(0.0)
    failing = {c: float(r) for c, r in rates.items() if r > NULLABLE_SHARE.get(c, 0.0)}
    return dg.AssetCheckResult(
        passed=not failing,
        metadata={
            "columns_over_threshold": ", ".join(failing) or "none",
            "max_null_rate": float(rates.max()),
            **{f"null_rate_{c}": float(r) for c, r in rates.items() if r > 0},
        },
    )


# Every rule must hold for every row; the metadata counts the rows breaking each one.
RANGE_RULES: dict[str, str] = {
    "flags_are_0_or_1": " OR ".join(f"{c} NOT IN (0, 1)" for c in FLAG_COLUMNS),
    "counts_non_negative": " OR ".join(f"{c} < 0" for c in COUNT_COLUMNS),
    "card_windows_include_current": "card_nb_tx_1h < 1",
    "card_windows_nested": "card_nb_tx_1h > card_nb_tx_6h OR card_nb_tx_6h > card_nb_tx_1d "
    "OR card_nb_tx_1d > card_nb_tx_7d OR card_nb_tx_7d > card_nb_tx_30d",
    "terminal_windows_nested": "terminal_nb_tx_1d > terminal_nb_tx_7d "
    "OR terminal_nb_tx_7d > terminal_nb_tx_30d",
    "known_fraud_windows_nested": "terminal_known_fraud_7d > terminal_known_fraud_28d",
    "distinct_terminals_bounded": "card_nb_terminals_1d > card_nb_tx_1d "
    "OR card_nb_terminals_7d > card_nb_tx_7d OR card_nb_terminals_1d > card_nb_terminals_7d",
    "risks_are_shares": " OR ".join(
        f"NOT ({c} BETWEEN 0 AND 1)"
        for c in ("terminal_risk_1d", "terminal_risk_7d", "terminal_risk_30d", "mcc_risk_30d")
    ),
    "amounts_non_negative": "tx_amount < 0 OR card_avg_amount_1d < 0 OR card_avg_amount_7d < 0 "
    "OR card_avg_amount_30d < 0 OR card_amount_ratio_30d < 0",
    "zscore_clipped": "abs(card_amount_zscore_30d) > 20",
    "gap_within_30_days": "card_secs_since_prev_tx < 0 OR card_secs_since_prev_tx > 30 * 86400",
    "distances_non_negative": "dist_home_terminal < 0 OR dist_prev_terminal < 0",
}


@dg.asset_check(
    asset=transaction_features,
    name="value_ranges",
    pool="duckdb",
    description=(
        "Validity: flags are 0/1, counts non-negative, the card windows include the current transaction "
        "and nest (1h <= 6h <= 1d <= 7d <= 30d), terminal windows and known-fraud counts nest, distinct "
        "terminals <= transactions, risks are shares in [0, 1], amounts and distances non-negative, "
        "z-score within its clip, gap within 30 days."
    ),
)
def value_ranges(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as conn:
        if not table_exists(conn, TABLE):
            return _no_table()
        exprs = ", ".join(f"count(*) FILTER (WHERE {rule}) AS {name}" for name, rule in RANGE_RULES.items())
        broken = conn.execute(f"SELECT {exprs} FROM {TABLE}").df().iloc[0]
    return dg.AssetCheckResult(
        passed=int(broken.sum()) == 0,
        metadata={"rows_breaking_rules": int(broken.sum()), **{k: int(v) for k, v in broken.items()}},
    )


FEATURE_CHECKS = [one_row_per_transaction, sampled_naive_recompute, null_rates, value_ranges]

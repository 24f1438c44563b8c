"""Checks on features.transaction_features, in two steps.

- `one_row_per_transaction` (blocking) is partitioned like the asset: automation gates each day's scores on
  that day's result (an unpartitioned check on a partitioned asset only counts if its latest evaluation
  targets the latest materialisation of *any* partition, which two day runs interleaving break).
- `sampled_naive_recompute`, `null_rates` and `value_ranges` are one multi-asset check: one step, and one
  scan of the run's partitions for the null and range rules together. They judge what the run wrote (the
  day of a daily run, every day of a backfill), so a day's checks cost the same at day 31 and day 183;
  a run without partitions (a check run by hand) judges the whole table.

All open the warehouse, so all take the `duckdb` pool.
"""

import datetime as dt
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.features.assets import transaction_features
from fraud_assets.defs.features.compute import (
    COUNT_COLUMNS,
    FEATURE_COLUMNS,
    FEATURES_TABLE,
    FLAG_COLUMNS,
    LOOKBACK_DAYS,
)
from fraud_assets.lib.contracts import partition_span, partitioned_asset_check
from fraud_assets.lib.partitions import business_date_partitions, dates_filter, validate_keys
from fraud_assets.lib.reconciliation import transaction_rows
from fraud_assets.lib.warehouse import table_exists

NAIVE_SQL_PATH = Path(__file__).with_name("naive_recompute.sql")
SAMPLE_ROWS = 200
REL_TOL = 1e-9
# A card missing from cleaned.cards has no home: dist_home_terminal may be null for a few rows.
NULLABLE_SHARE = {"dist_home_terminal": 0.01}


def _run_keys(context: dg.AssetCheckExecutionContext) -> list[str]:
    """The business dates of the run (one day, or a backfill's range); [] for a run without partitions.
    A run of these checks alone has no partitioned asset to list its range's keys: then every date
    between the range's ends (the partitions are dates)."""
    op = context.op_execution_context
    if not (op.has_partition_key or op.has_partition_key_range):
        return []
    try:
        return list(op.partition_keys)
    except dg.DagsterInvariantViolationError:
        (first,), (last,) = (
            validate_keys([op.partition_key_range.start]),
            validate_keys([op.partition_key_range.end]),
        )
        return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _no_table() -> dict:
    return {"passed": False, "metadata": {"reason": f"{FEATURES_TABLE} does not exist yet"}}


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
    days = dates_filter(context.partition_keys)
    with duckdb.get_connection() as conn:
        if not table_exists(conn, FEATURES_TABLE):
            return dg.AssetCheckResult(**_no_table())
        duplicates, missing, extra, rows = transaction_rows(conn, FEATURES_TABLE, days)
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


# Every rule must hold for every row; the metadata counts the rows breaking each one.
RANGE_RULES: dict[str, str] = {
    "flags_are_0_or_1": " OR ".join(f"{c} NOT IN (0, 1)" for c in FLAG_COLUMNS),
    "counts_non_negative": " OR ".join(f"{c} < 0" for c in COUNT_COLUMNS),
    "card_windows_include_current": "card_nb_tx_1h < 1",
    "card_windows_nested": "card_nb_tx_1h > card_nb_tx_6h OR card_nb_tx_6h > card_nb_tx_1d "
    "OR card_nb_tx_1d > card_nb_tx_7d OR card_nb_tx_7d > card_nb_tx_30d",
    "terminal_windows_nested": "terminal_nb_tx_1d > terminal_nb_tx_7d "
    "OR terminal_nb_tx_7d > terminal_nb_tx_14d OR terminal_nb_tx_14d > terminal_nb_tx_30d",
    "card_key_windows_bounded": "card_terminal_nb_tx_30d < 1 OR card_terminal_nb_tx_30d > card_nb_tx_30d "
    "OR NOT (card_hour_band_share_30d > 0 AND card_hour_band_share_30d <= 1)",
    "known_fraud_windows_nested": "terminal_known_fraud_7d > terminal_known_fraud_28d "
    "OR terminal_known_fraud_28d > terminal_known_fraud_60d",
    "fraud_episodes_ordered": "terminal_days_since_last_fraud_60d <= 0 "
    "OR terminal_days_since_last_fraud_60d > terminal_days_since_first_fraud_60d "
    "OR terminal_days_since_first_fraud_60d > 60",
    "distinct_terminals_bounded": "card_nb_terminals_1d > card_nb_tx_1d "
    "OR card_nb_terminals_7d > card_nb_tx_7d OR card_nb_terminals_1d > card_nb_terminals_7d",
    "risks_are_shares": " OR ".join(
        f"NOT ({c} BETWEEN 0 AND 1)"
        for c in (*(f"terminal_risk_{w}" for w in ("1d", "7d", "14d", "30d")), "mcc_risk_30d")
    ),
    "amounts_non_negative": "tx_amount < 0 OR card_avg_amount_1d < 0 OR card_avg_amount_7d < 0 "
    "OR card_avg_amount_30d < 0 OR card_amount_ratio_30d < 0 OR card_amount_ratio_max_30d < 0 "
    "OR card_amount_ratio_older_30d < 0",
    "zscore_clipped": "abs(card_amount_zscore_30d) > 20",
    "gap_within_30_days": "card_secs_since_prev_tx < 0 OR card_secs_since_prev_tx > 30 * 86400",
    "distances_non_negative": "dist_home_terminal < 0 OR dist_prev_terminal < 0",
}

SAMPLED_NAIVE_RECOMPUTE = dg.AssetCheckSpec(
    "sampled_naive_recompute",
    asset=transaction_features,
    description=(
        f"Leakage and correctness guard: recomputes {SAMPLE_ROWS} random rows of the run's business "
        "dates the naive way (plain joins on cleaned.transactions and cleaned.labels, straight from the "
        "definitions, no window functions) and compares the baseline card/terminal features, the card "
        "velocity features, the undelayed terminal known-fraud counts and the 60-day fraud episodes: counts "
        f"exactly, averages and ratios to {REL_TOL:g} relative. A window off by one row, a frame that leaks "
        "the future or a label used before it was reported shows up as a mismatch."
    ),
)
NULL_RATES = dg.AssetCheckSpec(
    "null_rates",
    asset=transaction_features,
    description=(
        "Completeness of every feature column of the run's business dates: no nulls (features have "
        "documented defaults), except dist_home_terminal which may be null for at most 1% of rows (card "
        "missing from cleaned.cards)."
    ),
)
VALUE_RANGES = dg.AssetCheckSpec(
    "value_ranges",
    asset=transaction_features,
    description=(
        "Validity of the run's business dates: flags are 0/1, counts non-negative, the card windows "
        "include the current transaction and nest (1h <= 6h <= 1d <= 7d <= 30d), terminal windows and "
        "known-fraud counts nest, distinct terminals <= transactions, risks are shares in [0, 1], amounts "
        "and distances non-negative, z-score within its clip, gap within 30 days, a terminal's last known "
        "fraud after its first, both within 60 days."
    ),
)


def profile_rows(conn, partition_keys: Sequence[str] | None) -> pd.Series:
    """One scan of the partitions: the row count, the non-null count of every feature column
    (`filled_<column>`) and the rows breaking each range rule (`rule_<name>`; a rule that is NULL for a row
    counts as kept, like a WHERE). count(column) reads only the validity masks, and a sum of 0/1 is cheaper
    than a filtered count."""
    exprs = ", ".join(
        ["count(*) AS rows"]
        + [f"count({c}) AS filled_{c}" for c in FEATURE_COLUMNS]
        + [
            f"coalesce(sum(CAST(({rule}) AS INTEGER)), 0) AS rule_{name}"
            for name, rule in RANGE_RULES.items()
        ]
    )
    return (
        conn.execute(f"SELECT {exprs} FROM {FEATURES_TABLE} WHERE {dates_filter(partition_keys)}")
        .df()
        .iloc[0]
    )


def null_rates_result(profile: pd.Series) -> dict:
    rows = max(int(profile["rows"]), 1)
    rates = {c: (int(profile["rows"]) - int(profile[f"filled_{c}"])) / rows for c in FEATURE_COLUMNS}
    failing = [c for c, r in rates.items() if r > NULLABLE_SHARE.get(c, 0.0)]
    return {
        "passed": not failing,
        "metadata": {
            "rows": int(profile["rows"]),
            "columns_over_threshold": ", ".join(failing) or "none",
            "max_null_rate": max(rates.values()),
            **{f"null_rate_{c}": r for c, r in rates.items() if r > 0},
        },
    }


def value_ranges_result(profile: pd.Series) -> dict:
    broken = {name: int(profile[f"rule_{name}"]) for name in RANGE_RULES}
    return {
        "passed": sum(broken.values()) == 0,
        "metadata": {"rows": int(profile["rows"]), "rows_breaking_rules": sum(broken.values()), **broken},
    }


def naive_recompute_result(conn, partition_keys: Sequence[str] | None, seed: int) -> dict:
    """Recompute a sample of the partitions' rows with naive_recompute.sql and compare."""
    if partition_keys:
        dates = validate_keys(partition_keys)
        read_from = (dates[0] - dt.timedelta(days=LOOKBACK_DAYS + 1)).isoformat()
        read_to = (dates[-1] + dt.timedelta(days=1)).isoformat()
    else:
        read_from, read_to = "0001-01-01", "9999-12-31"
    naive = conn.execute(
        NAIVE_SQL_PATH.read_text().format(
            sample_rows=SAMPLE_ROWS,
            seed=seed,
            written=dates_filter(partition_keys),
            read_from=read_from,
            read_to=read_to,
        )
    ).df()
    ids = naive["transaction_id"].tolist()
    stored = (
        conn.execute(f"SELECT * FROM {FEATURES_TABLE} WHERE transaction_id IN (SELECT unnest(?))", [ids])
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
    return {
        "passed": not mismatches,
        "metadata": {
            "rows_compared": len(naive),
            "columns_compared": len(naive.columns),
            "mismatched_values": sum(mismatches.values()),
            "mismatched_columns": ", ".join(f"{k} ({v})" for k, v in mismatches.items()) or "none",
            "worst_relative_difference": worst,
            "sample_seed": seed,
        },
    }


@dg.multi_asset_check(
    specs=[SAMPLED_NAIVE_RECOMPUTE, NULL_RATES, VALUE_RANGES],
    name="transaction_features_quality",
    pool="duckdb",
    description="The sampled naive recomputation, null rates and value ranges of the run's business dates.",
)
def feature_quality(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
) -> Iterator[dg.AssetCheckResult]:
    keys = _run_keys(context)
    span = {"business_dates": partition_span(keys, "days") if keys else "all"}
    with duckdb.get_connection() as conn:
        if not table_exists(conn, FEATURES_TABLE):
            results = {spec.name: _no_table() for spec in (SAMPLED_NAIVE_RECOMPUTE, NULL_RATES, VALUE_RANGES)}
        else:
            profile = profile_rows(conn, keys)
            results = {
                SAMPLED_NAIVE_RECOMPUTE.name: naive_recompute_result(conn, keys, random.randrange(1_000_000)),
                NULL_RATES.name: null_rates_result(profile),
                VALUE_RANGES.name: value_ranges_result(profile),
            }
    for name, result in results.items():
        yield dg.AssetCheckResult(
            asset_key=transaction_features.key,
            check_name=name,
            passed=result["passed"],
            metadata={**span, **result["metadata"]},
        )


FEATURE_CHECKS = [one_row_per_transaction, feature_quality]

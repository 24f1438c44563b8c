"""Checks on features.transaction_features, in two steps, each partitioned like the asset.

- `one_row_per_transaction` (blocking): automation gates each day's scores on that day's result (an
  unpartitioned check on a partitioned asset only counts if its latest evaluation targets the latest
  materialisation of *any* partition, which two day runs interleaving break).
- `sampled_naive_recompute`, `null_rates` and `value_ranges` are one multi-asset check: one step, and one
  grouped scan of the run's partitions for the null and range rules together. They judge what the run wrote
  (the day of a daily run, every day of a backfill), so a day's checks cost the same at day 31 and day 183;
  a run without partitions (a check run by hand) judges the whole table.

Every check judges each business date on its own rows, in a range run too: `per_partition` records each
day's own verdict and figures, so a day's check history reads the same whether the day ran alone or in a
backfill, and a failing day is held back (and shown) without its neighbours. The range's own evaluation,
failed when any day failed, is the one the alert sensor reads. All open the warehouse, so all take the
`duckdb` pool.
"""

import datetime as dt
import math
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import numpy as np
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
from fraud_assets.lib.contracts import partition_span, per_partition
from fraud_assets.lib.partitions import business_date_partitions, dates_filter, validate_keys
from fraud_assets.lib.reconciliation import transaction_rows_by_day
from fraud_assets.lib.table_checks import failing_days_metadata, with_failing_days
from fraud_assets.lib.warehouse import table_exists

NAIVE_SQL_PATH = Path(__file__).with_name("naive_recompute.sql")
SAMPLE_ROWS = 200
# A range run samples at least this many rows of each day (and SAMPLE_ROWS in all): the naive recomputation
# costs ~0.3 ms a row, so 200 rows of each of 183 days would add ~10 s to the bootstrap, and a systematic
# error (a window off by one, a leak) shows in most rows of a day.
MIN_DAY_SAMPLE_ROWS = 20
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


def _rows_result(day_rows: tuple[int, int, int, int], dates: str) -> dg.AssetCheckResult:
    duplicates, missing, extra, rows = day_rows
    return dg.AssetCheckResult(
        passed=duplicates == 0 and missing == 0 and extra == 0,
        metadata={
            "business_dates": dates,
            "duplicate_rows": duplicates,
            "missing_transactions": missing,
            "rows_without_cleaned_transaction": extra,
            "rows": rows,
        },
    )


@dg.asset_check(
    asset=transaction_features,
    name="one_row_per_transaction",
    blocking=True,
    partitions_def=business_date_partitions,
    pool="duckdb",
    description=(
        "Completeness and uniqueness for the partition(s) just materialised: exactly one feature row per "
        "cleaned transaction of the business date (no transaction_id duplicated anywhere in the table, "
        "none missing, none extra). Blocking, partitioned like the asset and judged day by day, so each "
        "day's scores wait on that day's result only."
    ),
)
def one_row_per_transaction(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    keys = list(context.partition_keys)
    with duckdb.get_connection() as conn:
        if not table_exists(conn, FEATURES_TABLE):
            return per_partition(context, dg.AssetCheckResult(**_no_table()))
        by_day = transaction_rows_by_day(conn, FEATURES_TABLE, keys)
    per_day = {day: _rows_result(figures, day) for day, figures in by_day.items()}
    if len(keys) == 1:
        return per_partition(context, per_day[keys[0]])
    totals = tuple(map(sum, zip(*by_day.values(), strict=True)))
    judged = with_failing_days(_rows_result(totals, partition_span(keys, "days")), per_day)
    return per_partition(context, judged.overall, judged.per_day)


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
    partitions_def=business_date_partitions,
    description=(
        "Leakage and correctness guard, for each business date run: recomputes a random sample of its rows "
        f"({SAMPLE_ROWS} in a one-day run; in a range run at least {MIN_DAY_SAMPLE_ROWS} of each day and "
        f"{SAMPLE_ROWS} in all) the naive way (plain joins on cleaned.transactions and cleaned.labels, "
        "straight from the definitions, no window functions) and compares the baseline card/terminal "
        "features, the card velocity features, the undelayed terminal known-fraud counts and the 60-day "
        f"fraud episodes: counts exactly, averages and ratios to {REL_TOL:g} relative, a null against a "
        "value as a mismatch. A window off by one row, a frame that leaks the future or a label used before "
        "it was reported shows up as a mismatch."
    ),
)
NULL_RATES = dg.AssetCheckSpec(
    "null_rates",
    asset=transaction_features,
    partitions_def=business_date_partitions,
    description=(
        "Completeness of every feature column of the run's business dates: no nulls (features have "
        "documented defaults), except dist_home_terminal which may be null for at most 1% of rows (card "
        "missing from cleaned.cards)."
    ),
)
VALUE_RANGES = dg.AssetCheckSpec(
    "value_ranges",
    asset=transaction_features,
    partitions_def=business_date_partitions,
    description=(
        "Validity of the run's business dates: flags are 0/1, counts non-negative, the card windows "
        "include the current transaction and nest (1h <= 6h <= 1d <= 7d <= 30d), terminal windows and "
        "known-fraud counts nest, distinct terminals <= transactions, risks are shares in [0, 1], amounts "
        "and distances non-negative, z-score within its clip, gap within 30 days, a terminal's last known "
        "fraud after its first, both within 60 days."
    ),
)


def _day(value: object) -> str:
    return str(value)[:10]


def profile_days(conn, partition_keys: Sequence[str] | None) -> dict[str, pd.Series]:
    """One grouped scan of the partitions: per business date, the row count, the non-null count of every
    feature column (`filled_<column>`) and the rows breaking each range rule (`rule_<name>`; a rule that is
    NULL for a row counts as kept, like a WHERE). count(column) reads only the validity masks, and a sum of
    0/1 is cheaper than a filtered count. A listed day without rows gets zeros."""
    exprs = ", ".join(
        ["CAST(business_date AS VARCHAR) AS day", "count(*) AS rows"]
        + [f"count({c}) AS filled_{c}" for c in FEATURE_COLUMNS]
        + [
            f"coalesce(sum(CAST(({rule}) AS INTEGER)), 0) AS rule_{name}"
            for name, rule in RANGE_RULES.items()
        ]
    )
    found = conn.execute(
        f"SELECT {exprs} FROM {FEATURES_TABLE} WHERE {dates_filter(partition_keys)} GROUP BY 1 ORDER BY 1"
    ).df()
    profiles = {row["day"]: row.drop("day") for _, row in found.iterrows()}
    return {day: profiles.get(day, _no_rows()) for day in partition_keys} if partition_keys else profiles


def _no_rows() -> pd.Series:
    return pd.Series(
        0, index=["rows", *(f"filled_{c}" for c in FEATURE_COLUMNS), *(f"rule_{n}" for n in RANGE_RULES)]
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


def day_sample_rows(days: int) -> int:
    """Rows sampled from each day of a run over `days` days: SAMPLE_ROWS for one day, in a range at least
    MIN_DAY_SAMPLE_ROWS and SAMPLE_ROWS in all."""
    return max(MIN_DAY_SAMPLE_ROWS, math.ceil(SAMPLE_ROWS / max(days, 1)))


def _sample_filter(partition_keys: Sequence[str] | None, seed: int) -> tuple[str, int]:
    """(filter, rows) selecting the sample: `day_sample_rows` random rows of each business date, so every
    day of a range has rows of its own to be judged on (a sample of the whole range would leave most days of
    a long backfill with none); SAMPLE_ROWS of the whole table without partitions."""
    if not partition_keys:
        return dates_filter(partition_keys), SAMPLE_ROWS
    per_day = day_sample_rows(len(partition_keys))
    sampled = (
        f"SELECT transaction_id FROM {FEATURES_TABLE} WHERE {dates_filter(partition_keys)} "
        f"QUALIFY row_number() OVER (PARTITION BY business_date ORDER BY hash(transaction_id, {seed})) "
        f"<= {per_day}"
    )
    return f"transaction_id IN ({sampled})", per_day * len(partition_keys)


def _naive_summary(mismatched: pd.Series, rows: int, worst: float, seed: int) -> dict:
    """The verdict over `rows` compared rows: `mismatched` values per column, the worst relative gap."""
    mismatches = {col: int(n) for col, n in mismatched.items() if n}
    return {
        "passed": not mismatches,
        "metadata": {
            "rows_compared": rows,
            "columns_compared": len(mismatched),
            "mismatched_values": sum(mismatches.values()),
            "mismatched_columns": ", ".join(f"{k} ({v})" for k, v in mismatches.items()) or "none",
            "worst_relative_difference": 0.0 if worst != worst else worst,
            "sample_seed": seed,
        },
    }


def naive_recompute_days(
    conn, partition_keys: Sequence[str] | None, seed: int
) -> tuple[dict, dict[str, dict]]:
    """Recompute a sample of the partitions' rows with naive_recompute.sql and compare: the verdict over
    every sampled row, and each business date's over its own rows (none without partitions)."""
    if partition_keys:
        dates = validate_keys(partition_keys)
        read_from = (dates[0] - dt.timedelta(days=LOOKBACK_DAYS + 1)).isoformat()
        read_to = (dates[-1] + dt.timedelta(days=1)).isoformat()
    else:
        read_from, read_to = "0001-01-01", "9999-12-31"
    written, sample_rows = _sample_filter(partition_keys, seed)
    naive = conn.execute(
        NAIVE_SQL_PATH.read_text().format(
            sample_rows=sample_rows, seed=seed, written=written, read_from=read_from, read_to=read_to
        )
    ).df()
    ids = naive["transaction_id"].tolist()
    stored = (
        conn.execute(f"SELECT * FROM {FEATURES_TABLE} WHERE transaction_id IN (SELECT unnest(?))", [ids])
        .df()
        .set_index("transaction_id")
        .loc[naive["transaction_id"]]
    )
    columns = [c for c in naive.columns if c != "transaction_id"]
    a = naive[columns].to_numpy("float64")
    b = stored[columns].to_numpy("float64")
    diff, scale = np.abs(a - b), np.fmax(np.abs(a), np.abs(b))
    exact = np.isin(columns, list(COUNT_COLUMNS))
    # Counts exactly; the rest to REL_TOL relative, and a null where a value belongs (or back) is a mismatch.
    bad = np.where(exact, a != b, (diff > REL_TOL * scale + 1e-12) | (np.isnan(a) != np.isnan(b)))
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(exact, 0.0, np.nan_to_num(diff / np.where(scale > 0, scale, 1.0), nan=0.0))
    overall = _naive_summary(
        pd.Series(bad.sum(axis=0), index=columns), len(bad), float(relative.max(initial=0.0)), seed
    )
    if not partition_keys:
        return overall, {}
    day_of_row = stored["business_date"].map(_day).to_numpy()
    by_day = pd.DataFrame(bad, columns=columns).groupby(day_of_row)
    mismatched, rows = by_day.sum(), by_day.size()
    worst = pd.Series(relative.max(axis=1, initial=0.0)).groupby(day_of_row).max()
    per_day = {
        day: _naive_summary(mismatched.loc[day], int(rows[day]), float(worst[day]), seed)
        if day in rows.index
        else _naive_summary(pd.Series(0, index=columns), 0, 0.0, seed)
        for day in partition_keys
    }
    return overall, per_day


def _over_days(overall: dict, per_day: dict[str, dict]) -> dict:
    """The range's verdict: its figures over every row, failed when any day failed (a day's null rate can
    break its threshold while the range's does not), naming the failing days."""
    failing = sorted(day for day, r in per_day.items() if not r["passed"])
    return {
        "passed": overall["passed"] and not failing,
        "metadata": {**overall["metadata"], **failing_days_metadata(failing)},
    }


def _verdicts(
    results: dict[str, tuple[dict, dict[str, dict]]], keys: list[str] | None
) -> dict[str, tuple[dict, dict[str, dict]]]:
    """check name -> (the run's verdict, each business date's verdict): a one-day run's is its day's, a
    range's fails when any day fails, a run without partitions has no days."""
    if not keys:
        return {name: (overall, {}) for name, (overall, _) in results.items()}
    if len(keys) == 1:
        return {name: (days[keys[0]], days) for name, (_, days) in results.items()}
    return {name: (_over_days(overall, days), days) for name, (overall, days) in results.items()}


def rule_results(conn, keys: list[str] | None) -> dict[str, tuple[dict, dict[str, dict]]]:
    """The null-rate and range verdicts, from one grouped scan of every day."""
    profiles = profile_days(conn, keys)
    total = sum(profiles.values(), _no_rows())
    return _verdicts(
        {
            NULL_RATES.name: (
                null_rates_result(total),
                {d: null_rates_result(p) for d, p in profiles.items()},
            ),
            VALUE_RANGES.name: (
                value_ranges_result(total),
                {d: value_ranges_result(p) for d, p in profiles.items()},
            ),
        },
        keys,
    )


def naive_results(conn, keys: list[str] | None, seed: int) -> dict[str, tuple[dict, dict[str, dict]]]:
    """The naive recomputation's verdicts, from every day's sample."""
    return _verdicts({SAMPLED_NAIVE_RECOMPUTE.name: naive_recompute_days(conn, keys, seed)}, keys)


QUALITY_SPECS = (SAMPLED_NAIVE_RECOMPUTE, NULL_RATES, VALUE_RANGES)


@dg.multi_asset_check(
    specs=list(QUALITY_SPECS),
    name="transaction_features_quality",
    pool="duckdb",
    description="The sampled naive recomputation, null rates and value ranges of each business date run.",
)
def feature_quality(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
) -> Iterator[dg.AssetCheckResult]:
    keys = _run_keys(context) or None
    span = {"business_dates": partition_span(keys, "days") if keys else "all"}

    def recorded(results: dict[str, tuple[dict, dict[str, dict]]]) -> Iterator[dg.AssetCheckResult]:
        for name, (overall, days) in results.items():
            result = dg.AssetCheckResult(
                asset_key=transaction_features.key,
                check_name=name,
                passed=overall["passed"],
                metadata={**span, **overall["metadata"]},
            )
            yield per_partition(context, result, _day_results(name, days)) if keys else result

    with duckdb.get_connection() as conn:
        if not table_exists(conn, FEATURES_TABLE):
            yield from recorded({spec.name: (_no_table(), {}) for spec in QUALITY_SPECS})
            return
        # The naive recomputation (DuckDB, which releases the GIL) runs on its own cursor while the rules'
        # day records are written (Python): a backfill's hundreds of records cost the time of one of them.
        with conn.cursor() as cursor, ThreadPoolExecutor(1, thread_name_prefix="naive-recompute") as pool:
            naive = pool.submit(naive_results, cursor, keys, random.randrange(1_000_000))
            yield from recorded(rule_results(conn, keys))
            yield from recorded(naive.result())


def _day_results(name: str, days: dict[str, dict]) -> dict[str, dg.AssetCheckResult]:
    return {
        day: dg.AssetCheckResult(
            asset_key=transaction_features.key,
            check_name=name,
            passed=r["passed"],
            metadata={"business_dates": day, **r["metadata"]},
        )
        for day, r in days.items()
    }


FEATURE_CHECKS = [one_row_per_transaction, feature_quality]

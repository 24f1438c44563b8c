"""The feature definitions in Spark SQL: the window semantics of windows.py as RANGE frames over epoch
microseconds, the ratios and defaults of rows.py, the merchant-category snapshot of feature_inputs.sql.

Plain frames, no prefix sums or label events: a card window "n" is `RANGE BETWEEN n - 1 PRECEDING AND
CURRENT ROW` (times are whole microseconds, so (t - n, t] with every row at t), a delayed terminal window
is `RANGE BETWEEN 7d + n - 1 PRECEDING AND 7d PRECEDING`, and the known frauds of a terminal are a join of
each output row with the labelled transactions of its terminal reported by t. Pure SQL, no Python UDF:
executors need no Python.

`COLUMN_SQL` holds one expression per feature column over the view `feature_rows`; `select_features`
orders and types them as compute.COLUMNS, and fails on a column without an expression here, so a column
added to the DuckDB engine cannot be left out of this one unnoticed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR
LABEL_DELAY_DAYS = 7
CARD_LOOKBACK_DAYS = 30
WINDOW_LOOKBACK_DAYS = CARD_LOOKBACK_DAYS + LABEL_DELAY_DAYS
EPISODE_DAYS = 60  # a terminal's fraud episode and a card's known frauds: labelled transactions of 60 days
LOOKBACK_DAYS = max(WINDOW_LOOKBACK_DAYS, EPISODE_DAYS)  # the day files a run reads
CARD_WINDOWS = {
    "1h": US_PER_HOUR,
    "6h": 6 * US_PER_HOUR,
    "1d": US_PER_DAY,
    "7d": 7 * US_PER_DAY,
    "30d": 30 * US_PER_DAY,
}
# What feature_card_windows adds to a row.
CARD_RESULTS = (
    *(f"card_nb_tx_{w}" for w in CARD_WINDOWS),
    *(f"card_sum_{w}" for w in ("1d", "7d", "30d")),
    "card_sumsq_30d",
    "card_nb_terminals_1d",
    "card_nb_terminals_7d",
    "card_max_amount_before_30d",
    "card_nb_tx_older",
    "card_sum_older",
    "card_terminal_nb_tx_30d",
    "card_hour_band_nb_tx_30d",
)
TERMINAL_WINDOWS = {"1d": 1, "7d": 7, "14d": 14, "30d": 30}
HOUR_BAND_HOURS = 4  # the card's hour-of-day profile: local hours in bands 0-3, 4-7, ..., 20-23
RECENT_WINDOWS = {"7d": 7, "28d": 28}
SECONDS_30_DAYS = 30 * 86400.0
ZSCORE_CLIP = 20.0
CONSTANT_VAR, CONSTANT_REL_VAR = 1e-6, 1e-12  # constant amounts: rows.CONSTANT_VAR, rows.CONSTANT_REL_VAR
# DuckDB type of a table column -> Spark SQL type of the written Parquet (TIMESTAMP_NTZ: DuckDB reads it as
# a plain TIMESTAMP, no zone conversion).
SPARK_TYPES = {
    "BIGINT": "BIGINT",
    "INTEGER": "INT",
    "DOUBLE": "DOUBLE",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP_NTZ",
    "VARCHAR": "STRING",
}


def _card_frame(width_us: int, key: str = "") -> str:
    """(t - width, t] of the card (and of the same `key` value, if given), every row at t included."""
    partition = f"card_token, {key}" if key else "card_token"
    return f"(PARTITION BY {partition} ORDER BY us RANGE BETWEEN {width_us - 1} PRECEDING AND CURRENT ROW)"


def _share(part: str, whole: str) -> str:
    return f"CASE WHEN {whole} > 0 THEN {part} / {whole} ELSE 0.0 END"


def _flag(condition: str) -> str:
    return f"CAST(coalesce({condition}, false) AS INT)"


# (n_prev, sum_prev, mean_prev, var_prev) of rows.card_amount_stats, same operations in the same order;
# NULL where a divisor is 0 (ANSI mode raises on a division by zero, and Spark may evaluate a shared
# subexpression before the CASE that guards it).
_N_PREV = "(card_nb_tx_30d - 1)"
_SUM_PREV = "(card_sum_30d - tx_amount)"
_MEAN_PREV = f"({_SUM_PREV} / nullif({_N_PREV}, 0))"
_VAR_PREV = (
    f"((card_sumsq_30d - tx_amount * tx_amount - {_SUM_PREV} * {_SUM_PREV} / nullif({_N_PREV}, 0))"
    f" / nullif({_N_PREV} - 1, 0))"
)
_HAS_PREV = "prev_us IS NOT NULL"

COLUMN_SQL: dict[str, str] = {
    "transaction_id": "transaction_id",
    "business_date": "business_date",
    "tx_datetime": "tx_datetime",
    "card_token": "card_token",
    "terminal_id": "terminal_id",
    "tx_amount": "tx_amount",
    # dayofweek: 1 = Sunday, 7 = Saturday
    "is_weekend": "CAST(dayofweek(tx_datetime_local) IN (1, 7) AS INT)",
    "is_night": "CAST(hour(tx_datetime_local) <= 6 AS INT)",
    **{f"card_nb_tx_{w}": f"card_nb_tx_{w}" for w in CARD_WINDOWS},
    **{f"card_avg_amount_{w}": f"card_sum_{w} / card_nb_tx_{w}" for w in ("1d", "7d", "30d")},
    **{f"terminal_nb_tx_{w}": f"terminal_nb_tx_{w}" for w in TERMINAL_WINDOWS},
    **{f"terminal_risk_{w}": _share(f"known_delayed_{w}", f"terminal_nb_tx_{w}") for w in TERMINAL_WINDOWS},
    **{f"terminal_known_fraud_{w}": f"known_recent_{w}" for w in RECENT_WINDOWS},
    # no known fraud in 60 days: counts 0, days since the terminal's first and last one 60
    "terminal_known_fraud_60d": "coalesce(terminal_known, 0)",
    **{
        f"terminal_days_since_{end}_fraud_60d": (
            f"coalesce(CAST(us - terminal_{end}_us AS DOUBLE) / {US_PER_DAY}, CAST({EPISODE_DAYS} AS DOUBLE))"
        )
        for end in ("first", "last")
    },
    "card_known_fraud_60d": "coalesce(card_known, 0)",
    "card_amount_ratio_30d": (
        f"CASE WHEN {_N_PREV} > 0 AND {_SUM_PREV} > 0 THEN tx_amount / {_MEAN_PREV} ELSE 1.0 END"
    ),
    "card_amount_zscore_30d": (
        f"greatest(-{ZSCORE_CLIP}, least({ZSCORE_CLIP}, CASE WHEN {_N_PREV} >= 2 AND {_VAR_PREV} > "
        f"greatest({CONSTANT_VAR}, {CONSTANT_REL_VAR} * {_MEAN_PREV} * {_MEAN_PREV}) "
        f"THEN (tx_amount - {_MEAN_PREV}) / sqrt({_VAR_PREV}) ELSE 0.0 END))"
    ),
    "card_secs_since_prev_tx": f"CASE WHEN {_HAS_PREV} THEN (us - prev_us) / 1e6 ELSE {SECONDS_30_DAYS} END",
    **{f"card_nb_terminals_{w}": f"card_nb_terminals_{w}" for w in ("1d", "7d")},
    "card_amount_ratio_max_30d": (
        "CASE WHEN card_max_amount_before_30d > 0 THEN tx_amount / card_max_amount_before_30d ELSE 1.0 END"
    ),
    "card_amount_ratio_older_30d": (
        "CASE WHEN card_nb_tx_older > 0 AND card_sum_older > 0 "
        "THEN tx_amount / (card_sum_older / card_nb_tx_older) ELSE 1.0 END"
    ),
    "card_terminal_nb_tx_30d": "card_terminal_nb_tx_30d",
    "card_hour_band_share_30d": "card_hour_band_nb_tx_30d / card_nb_tx_30d",
    "dist_home_terminal": "hypot(home_x - x, home_y - y)",
    "dist_prev_terminal": f"CASE WHEN {_HAS_PREV} THEN hypot(x - prev_x, y - prev_y) ELSE 0.0 END",
    "mcc_nb_tx_30d": "coalesce(mcc_nb_tx_30d, 0)",
    "mcc_risk_30d": _share("coalesce(mcc_known_fraud_30d, 0)", "coalesce(mcc_nb_tx_30d, 0)"),
    "is_ecommerce": _flag("channel = 'ecommerce'"),
    "three_ds_failed": _flag("three_ds = 'N'"),
    "ecommerce_without_3ds": _flag("channel = 'ecommerce' AND coalesce(three_ds, '') NOT IN ('Y', 'A', 'N')"),
}


def _ts(day: dt.date) -> str:
    return f"TIMESTAMP_NTZ '{day.isoformat()} 00:00:00'"


def _versions(table: str, key: str) -> str:
    """The versions of reference `table` (SCD type 2) with the business dates each serves, as
    cleaned/reference.py `versions_serving`: its own [valid_from, valid_to), and for a key's earliest
    version every day before it too."""
    return f"""
            SELECT *, CASE WHEN valid_from IS NULL OR valid_from = min(valid_from) OVER (PARTITION BY {key})
                           THEN DATE '0001-01-01' ELSE valid_from END AS serves_from,
                   coalesce(valid_to, DATE '9999-12-31') AS serves_to
            FROM {table}"""


def _serving(alias: str) -> str:
    return f"t.business_date >= {alias}.serves_from AND t.business_date < {alias}.serves_to"


def views(dates: Sequence[dt.date]) -> dict[str, str]:
    """The views that lead to `feature_rows` (one row per output transaction with every window result),
    in creation order, for these output dates (validated dates: safe to inline). Expects the views
    `transactions`, `labels`, `cards`, `terminals` over the cleaned layer's exports."""
    first, last = min(dates), max(dates)
    read_from = first - dt.timedelta(days=WINDOW_LOOKBACK_DAYS)
    episode_from = first - dt.timedelta(days=EPISODE_DAYS)
    card_from = first - dt.timedelta(days=CARD_LOOKBACK_DAYS)
    out_to = last + dt.timedelta(days=1)
    output_dates = ", ".join(f"DATE '{d.isoformat()}'" for d in sorted(set(dates)))
    card_columns = ",\n".join(
        [f"count(*) OVER {_card_frame(width)} AS card_nb_tx_{w}" for w, width in CARD_WINDOWS.items()]
        + [f"sum(tx_amount) OVER {_card_frame(CARD_WINDOWS[w])} AS card_sum_{w}" for w in ("1d", "7d", "30d")]
        + [f"sum(tx_amount * tx_amount) OVER {_card_frame(CARD_WINDOWS['30d'])} AS card_sumsq_30d"]
        + [
            f"size(collect_set(terminal_id) OVER {_card_frame(CARD_WINDOWS[w])}) AS card_nb_terminals_{w}"
            for w in ("1d", "7d")
        ]
        + [
            f"count(*) OVER {_card_frame(CARD_WINDOWS['30d'], 'terminal_id')} AS card_terminal_nb_tx_30d",
            f"count(*) OVER {_card_frame(CARD_WINDOWS['30d'], f'local_hour DIV {HOUR_BAND_HOURS}')}"
            " AS card_hour_band_nb_tx_30d",
            # the largest amount in (t - 30d, t), strictly before t
            "max(tx_amount) OVER (PARTITION BY card_token ORDER BY us RANGE BETWEEN "
            f"{CARD_WINDOWS['30d'] - 1} PRECEDING AND 1 PRECEDING) AS card_max_amount_before_30d",
            # the older history (t - 30d, t - 7d]
            *(
                f"{agg} OVER (PARTITION BY card_token ORDER BY us RANGE BETWEEN {CARD_WINDOWS['30d'] - 1} "
                f"PRECEDING AND {CARD_WINDOWS['7d']} PRECEDING) AS {name}"
                for agg, name in (("count(*)", "card_nb_tx_older"), ("sum(tx_amount)", "card_sum_older"))
            ),
        ]
        # the latest transaction strictly before t within 30 days; of tied ones the largest id
        + [
            "max(named_struct('us', us, 'transaction_id', transaction_id, 'x', x, 'y', y)) OVER "
            f"(PARTITION BY card_token ORDER BY us RANGE BETWEEN {30 * US_PER_DAY} PRECEDING AND 1 PRECEDING)"
            " AS prev"
        ]
    )
    delay = LABEL_DELAY_DAYS * US_PER_DAY
    terminal_columns = ",\n".join(
        f"count(*) OVER (PARTITION BY terminal_id ORDER BY us RANGE BETWEEN {delay + n * US_PER_DAY - 1} "
        f"PRECEDING AND {delay} PRECEDING) AS terminal_nb_tx_{w}"
        for w, n in TERMINAL_WINDOWS.items()
    )
    known_columns = ",\n".join(
        [
            f"count_if(l.s > o.us - {delay + n * US_PER_DAY} AND l.s <= o.us - {delay}) AS known_delayed_{w}"
            for w, n in TERMINAL_WINDOWS.items()
        ]
        + [f"count_if(l.s > o.us - {n * US_PER_DAY}) AS known_recent_{w}" for w, n in RECENT_WINDOWS.items()]
    )
    card_results = ", ".join(f"cw.{c}" for c in CARD_RESULTS)
    terminal_results = ", ".join(f"tw.terminal_nb_tx_{w}" for w in TERMINAL_WINDOWS)
    known = [f"known_delayed_{w}" for w in TERMINAL_WINDOWS] + [f"known_recent_{w}" for w in RECENT_WINDOWS]
    # a row whose terminal has no known fraud in reach has no row in feature_known_frauds
    known_results = ", ".join(f"coalesce(kf.{k}, 0) AS {k}" for k in known)
    return {
        "feature_card_versions": _versions("cards", "card_token"),
        "feature_terminal_versions": _versions("terminals", "terminal_id"),
        # The read range: output rows have t in [first, out_to); windows reach 37 days back. Each row with
        # its card's and terminal's attributes as of its business date (point in time).
        "feature_inputs": f"""
            SELECT t.transaction_id, t.business_date, t.tx_datetime,
                   unix_micros(CAST(t.tx_datetime AS TIMESTAMP)) AS us, t.card_token, t.terminal_id,
                   t.tx_amount, t.tx_datetime_local,
                   hour(coalesce(t.tx_datetime_local, t.tx_datetime)) AS local_hour, t.channel, t.three_ds,
                   t.business_date IN ({output_dates}) AND t.tx_datetime >= {_ts(first)} AS is_output,
                   m.x, m.y, coalesce(m.mcc, 'unknown') AS mcc, h.home_x, h.home_y
            FROM transactions AS t
            LEFT JOIN feature_terminal_versions AS m ON m.terminal_id = t.terminal_id AND {_serving("m")}
            LEFT JOIN feature_card_versions AS h ON h.card_token = t.card_token AND {_serving("h")}
            WHERE t.business_date BETWEEN DATE '{read_from}' AND DATE '{last}'
              AND t.tx_datetime >= {_ts(read_from)} AND t.tx_datetime < {_ts(out_to)}
              AND t.card_token IS NOT NULL""",
        "feature_labels": f"""
            SELECT t.transaction_id, t.terminal_id, t.mcc, t.us AS s,
                   unix_micros(CAST(l.reported_at AS TIMESTAMP)) AS r,
                   t.business_date AS day, CAST(l.reported_at AS DATE) AS reported_day
            FROM feature_inputs AS t JOIN labels AS l ON l.transaction_id = t.transaction_id
            WHERE l.reported_at < {_ts(out_to)}""",
        "feature_card_windows": f"""
            SELECT transaction_id, {card_columns}
            FROM feature_inputs WHERE tx_datetime >= {_ts(card_from)}""",
        "feature_terminal_windows": f"""
            SELECT transaction_id, {terminal_columns}
            FROM feature_inputs""",
        # Each output row against its terminal's labelled transactions of (t - 37d, t) reported by t.
        "feature_known_frauds": f"""
            SELECT o.transaction_id, {known_columns}
            FROM feature_inputs AS o JOIN feature_labels AS l
              ON l.terminal_id = o.terminal_id AND l.s > o.us - {WINDOW_LOOKBACK_DAYS * US_PER_DAY}
                 AND l.s < o.us AND l.r <= o.us
            WHERE o.is_output
            GROUP BY o.transaction_id""",
        # The labelled transactions of the 60 days before the first output day, reported before its end.
        "feature_episode_labels": f"""
            SELECT t.terminal_id, t.card_token, unix_micros(CAST(t.tx_datetime AS TIMESTAMP)) AS s,
                   unix_micros(CAST(l.reported_at AS TIMESTAMP)) AS r
            FROM transactions AS t JOIN labels AS l ON l.transaction_id = t.transaction_id
            WHERE t.business_date BETWEEN DATE '{episode_from}' AND DATE '{last}'
              AND t.tx_datetime >= {_ts(episode_from)} AND l.reported_at < {_ts(out_to)}""",
        # Each output row against its terminal's and its card's labelled transactions of (t - 60d, t)
        # reported by t; the first and last of them only for the terminal, whose episode's age is a feature.
        **{
            f"feature_{entity}_episodes": f"""
            SELECT o.transaction_id, count(*) AS {entity}_known{ages}
            FROM feature_inputs AS o JOIN feature_episode_labels AS l
              ON l.{key} = o.{key} AND l.s > o.us - {EPISODE_DAYS * US_PER_DAY} AND l.s < o.us
                 AND l.r <= o.us
            WHERE o.is_output
            GROUP BY o.transaction_id"""
            for entity, key, ages in (
                ("terminal", "terminal_id", ", min(l.s) AS terminal_first_us, max(l.s) AS terminal_last_us"),
                ("card", "card_token", ""),
            )
        },
        # Daily snapshot per merchant category: its transactions of business days [D - 37, D - 8] and
        # those with a label reported before D.
        "feature_merchant_categories": f"""
            WITH out_days AS (SELECT explode(array({output_dates})) AS business_date),
            mcc_days AS (
                SELECT t.mcc, t.business_date AS day, count(*) AS n
                FROM feature_inputs AS t
                GROUP BY t.mcc, t.business_date),
            mcc_label_days AS (
                SELECT mcc, day, reported_day, count(*) AS n FROM feature_labels
                GROUP BY mcc, day, reported_day),
            mcc_counts AS (
                SELECT o.business_date, m.mcc, sum(m.n) AS mcc_nb_tx_30d
                FROM out_days AS o JOIN mcc_days AS m
                  ON m.day BETWEEN date_sub(o.business_date, 37) AND date_sub(o.business_date, 8)
                GROUP BY o.business_date, m.mcc),
            mcc_known AS (
                SELECT o.business_date, l.mcc, sum(l.n) AS known
                FROM out_days AS o JOIN mcc_label_days AS l
                  ON l.day BETWEEN date_sub(o.business_date, 37) AND date_sub(o.business_date, 8)
                     AND l.reported_day < o.business_date
                GROUP BY o.business_date, l.mcc)
            SELECT c.business_date, c.mcc, c.mcc_nb_tx_30d, coalesce(k.known, 0) AS mcc_known_fraud_30d
            FROM mcc_counts AS c
            LEFT JOIN mcc_known AS k ON k.business_date = c.business_date AND k.mcc = c.mcc""",
        "feature_rows": f"""
            SELECT o.*, {card_results}, {terminal_results}, {known_results},
                   ep.terminal_known, ep.terminal_first_us, ep.terminal_last_us, ec.card_known,
                   cw.prev.us AS prev_us, cw.prev.x AS prev_x, cw.prev.y AS prev_y,
                   mc.mcc_nb_tx_30d, mc.mcc_known_fraud_30d
            FROM (SELECT * FROM feature_inputs WHERE is_output) AS o
            JOIN feature_card_windows AS cw USING (transaction_id)
            JOIN feature_terminal_windows AS tw USING (transaction_id)
            LEFT JOIN feature_known_frauds AS kf USING (transaction_id)
            LEFT JOIN feature_terminal_episodes AS ep USING (transaction_id)
            LEFT JOIN feature_card_episodes AS ec USING (transaction_id)
            LEFT JOIN feature_merchant_categories AS mc
              ON mc.business_date = o.business_date AND mc.mcc = o.mcc""",
    }


def select_features(columns: Sequence[tuple[str, str]]) -> str:
    """The feature rows as the table's columns (name, DuckDB type), in table order."""
    missing = [c for c, _ in columns if c not in COLUMN_SQL]
    if missing:
        raise ValueError(f"no Spark SQL definition for feature column(s) {missing} (features/spark/sql.py)")
    typed = ",\n".join(f"CAST({COLUMN_SQL[c]} AS {SPARK_TYPES[t]}) AS {c}" for c, t in columns)
    return f"SELECT {typed} FROM feature_rows"

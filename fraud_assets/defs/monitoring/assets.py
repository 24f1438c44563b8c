"""Monitoring assets: drift of features and scores per business day, performance on matured labels.

Both read the warehouse tables other layers publish (docs/architecture.md), tolerate their absence (a fresh
platform has no scores yet) and write small tables whose numeric metadata the UI plots over time. Their
checks raise WARN/ERROR; the retraining trigger (defs/models/sensors.py) reads the same metadata.
"""

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.features.compute import BASELINE_COLUMNS, LABEL_DELAY_DAYS, WINDOW_LOOKBACK_DAYS
from fraud_assets.defs.monitoring.metrics import alert_precision, average_precision, psi, psi_status
from fraud_assets.defs.monitoring.thresholds import MATURITY_DAYS, PSI_ACT, PSI_WARN, TOP_K_CARDS
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.day_metadata import DAY_ROW_COUNT, spread_over_days
from fraud_assets.lib.metrics import CardPrecision, known_compromised_by
from fraud_assets.lib.partitions import business_date_partitions, dates_filter, day_batches
from fraud_assets.lib.registry import CHAMPION, EVENTS_TABLE, VERSIONS_TABLE, current_alias
from fraud_assets.lib.tables import (
    DRIFT_TABLE,
    FEATURES_TABLE,
    LABELS_TABLE,
    SCORES_TABLE,
    TRAINING_SET_TABLE,
    TRANSACTIONS_TABLE,
)
from fraud_assets.lib.warehouse import ensure_schema, replace_partition, table_exists, table_metadata

OWNERS = ["team:fraud-data-science"]
PERFORMANCE_TABLE = "monitoring.model_performance"
BASELINE_FEATURES = BASELINE_COLUMNS  # the feature layer owns the baseline contract
# `is_weekend` is fixed by the calendar: one day is all-0 or all-1, so its day-vs-window PSI measures the
# weekday, not drift. It is left out; every other baseline feature is compared.
CALENDAR_FEATURES = ("is_weekend",)
DRIFT_FEATURES = tuple(f for f in BASELINE_FEATURES if f not in CALENDAR_FEATURES)
SCORE = "score"
WARMUP = "warmup"
MAX_REFERENCE_ROWS = 200_000  # PSI deciles are stable far below this; bounds memory on long windows
PER_DAY_REFERENCE_ROWS = 20_000  # a day's share of a window's reference (a handbook day has ~10,000 rows)

DRIFT_COLUMNS = {
    "business_date": "the business day compared (the partition)",
    "feature": "feature name, or `score` for the champion's score",
    "psi": "population stability index vs the reference window (0.1 warn, 0.25 act)",
    "status": "ok | warn | act | no_data (nothing to compare; for the score: no reference scores of the "
    "day's model version) | warmup (every reference day still inside the feature's lookback "
    "from the first day of history: its windows were not full yet, so a comparison would measure the "
    "history's length, not drift)",
    "reference_start": "first business date of the reference (training) window",
    "reference_end": "last business date of the reference window",
    "reference_rows": "rows in the reference sample",
    "current_rows": "rows on the compared day",
    "computed_at": "UTC time of computation",
}
DRIFT_TYPES = {
    "business_date": "DATE",
    "feature": "VARCHAR",
    "psi": "DOUBLE",
    "status": "VARCHAR",
    "reference_start": "DATE",
    "reference_end": "DATE",
    "reference_rows": "BIGINT",
    "current_rows": "BIGINT",
    "computed_at": "TIMESTAMP",
}
PERFORMANCE_COLUMNS = {
    "business_date": "scored day",
    "model_version": "model that produced the scores",
    "n_transactions": "scored transactions",
    "n_frauds": "transactions with a fraud report known at labels_as_of",
    "average_precision": "AP of the scores against known labels, over the transactions of cards not known "
    "compromised by the day's start (the gate's test population; NaN without both classes)",
    "card_precision_at_100": "Card Precision@100 (lib/metrics.py, the handbook's): frauded cards among the "
    "day's top-100 cards by score, cards already known compromised removed; per model version over its days",
    "alert_precision": "alert precision at the investigators' budget: share of the day's top-100 cards by "
    "score (none removed, as the alert queue ranks them) with a fraud known at labels_as_of",
    "matured": f"true once {MATURITY_DAYS} days of reports followed the day: the label is trusted",
    "labels_as_of": "latest report time in cleaned.labels (the data's 'now')",
    "computed_at": "UTC time of computation",
}
PERFORMANCE_TYPES = {
    "business_date": "DATE",
    "model_version": "VARCHAR",
    "n_transactions": "BIGINT",
    "n_frauds": "BIGINT",
    "average_precision": "DOUBLE",
    "card_precision_at_100": "DOUBLE",
    "alert_precision": "DOUBLE",
    "matured": "BOOLEAN",
    "labels_as_of": "TIMESTAMP",
    "computed_at": "TIMESTAMP",
}


def as_timestamps(df: pd.DataFrame) -> pd.DataFrame:
    """pandas' nanosecond datetimes as microseconds, which DuckDB stores as the declared TIMESTAMP (the
    catalog's and the UI's type) rather than TIMESTAMP_NS."""
    return df.astype({c: "datetime64[us]" for c in df.select_dtypes(include=["datetime64[ns]"]).columns})


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in conn.execute(f"DESCRIBE {table}").fetchall()]


def _reference_window(conn: duckdb.DuckDBPyConnection, latest: str) -> tuple[str | None, str | None]:
    """The days the champion was fitted on (`champion_window`), else the training set's, else every
    earlier day: drift compares a day with what the model that scores it learned from."""
    window = champion_window(conn)
    if window is not None and window[0] < latest:
        return window[0], min(window[1], (pd.Timestamp(latest) - pd.Timedelta(days=1)).date().isoformat())
    if table_exists(conn, TRAINING_SET_TABLE) and "business_date" in _columns(conn, TRAINING_SET_TABLE):
        lo, hi = conn.execute(
            f"SELECT CAST(min(business_date) AS VARCHAR), CAST(max(business_date) AS VARCHAR) "
            f"FROM {TRAINING_SET_TABLE} WHERE business_date < CAST(? AS DATE)",
            [latest],
        ).fetchone()
        if lo is not None:
            return lo, hi
    return conn.execute(
        f"SELECT CAST(min(business_date) AS VARCHAR), CAST(max(business_date) AS VARCHAR) "
        f"FROM {FEATURES_TABLE} WHERE business_date < CAST(? AS DATE)",
        [latest],
    ).fetchone()


class ReferenceRows:
    """The reference rows of drift windows, each day read once per run.

    A window's reference is the rows of its days with the MAX_REFERENCE_ROWS smallest hash(transaction_id):
    a deterministic sample that does not depend on which other days the run covers. Each day's rows (at
    most PER_DAY_REFERENCE_ROWS, again the smallest hashes) are read once and kept for the run, so a burst
    of days whose windows differ by a day (every earlier day; a training window ending before the day)
    reads each day once instead of scanning the whole window for every day. Days before the latest
    window's start are let go (windows only move forward over a run's sorted days; one asked for again is
    read again)."""

    def __init__(self, conn: duckdb.DuckDBPyConnection):
        self.conn = conn
        self.days: dict[tuple[str, str], pd.DataFrame] = {}
        self._history_start: pd.Timestamp | None = None

    def history_start(self) -> pd.Timestamp:
        """The first business day of the history, read once per run (a scan of a 100M-row column)."""
        if self._history_start is None:
            self._history_start = _history_start(self.conn)
        return self._history_start

    def window(self, table: str, cols: list[str], lo: str | None, hi: str) -> pd.DataFrame:
        if lo is None:
            lo = self.conn.execute(f"SELECT CAST(min(business_date) AS VARCHAR) FROM {table}").fetchone()[0]
            if lo is None:
                return pd.DataFrame(columns=cols)
        lo, hi = str(pd.Timestamp(lo).date()), str(pd.Timestamp(hi).date())  # a DATE or a TIMESTAMP's text
        days = [str(d.date()) for d in pd.date_range(lo, hi)]
        self._read(table, cols, [d for d in days if (table, d) not in self.days])
        for key in [k for k in self.days if k[0] == table and k[1] < lo]:
            del self.days[key]
        parts = [self.days[(table, d)] for d in days]
        if not parts:
            return pd.DataFrame(columns=cols)
        hashes = np.concatenate([p["_hash"].to_numpy() for p in parts])
        if len(hashes) > MAX_REFERENCE_ROWS:  # the cut on the hashes alone, then only the kept rows copied
            cut = np.partition(hashes, MAX_REFERENCE_ROWS - 1)[MAX_REFERENCE_ROWS - 1]
            parts = [p[p["_hash"].to_numpy() <= cut] for p in parts]
        rows = pd.concat(parts, ignore_index=True).head(MAX_REFERENCE_ROWS)
        return rows.drop(columns="_hash")

    def _read(self, table: str, cols: list[str], days: list[str]) -> None:
        if not days:
            return
        # Dates as DATE literals (validated by pandas above), never text: zone maps skip other days.
        listed = ", ".join(f"DATE '{d}'" for d in days)
        frame = self.conn.execute(
            f"SELECT {', '.join(cols)}, hash(transaction_id) AS _hash, "
            f"CAST(business_date AS VARCHAR) AS _day FROM {table} "
            f"WHERE business_date IN ({listed}) "
            "QUALIFY row_number() OVER (PARTITION BY business_date ORDER BY _hash) "
            f"<= {PER_DAY_REFERENCE_ROWS}"
        ).df()
        frame["business_date"] = pd.to_datetime(frame["business_date"])
        by_day = {day: part.drop(columns="_day") for day, part in frame.groupby("_day", sort=False)}
        for day in days:
            self.days[(table, day)] = by_day.get(day, frame.iloc[0:0].drop(columns="_day"))


def _day(conn, table: str, cols: list[str], day: str) -> pd.DataFrame:
    return conn.execute(
        f"SELECT {', '.join(cols)} FROM {table} WHERE business_date = CAST(? AS DATE)", [day]
    ).df()


def lookback_days(feature: str) -> int:
    """Days of history a drifted value needs to be complete: n for a card window of n days, n + the label
    delay for a terminal window (t - 7d - n, t - 7d], the windows' whole lookback for the score (the 60-day
    fraud episodes reach further, but only for the few rows near a known fraud: they do not set the score's
    distribution), 0 for per-transaction values. Only the drifted values (DRIFT_FEATURES, the score) have a
    rule here: a production feature's window is not read off its name (mcc_risk_30d looks back 37 days,
    terminal_known_fraud_7d 7), so another one fails rather than guess."""
    if feature == SCORE:
        return WINDOW_LOOKBACK_DAYS
    if feature not in DRIFT_FEATURES:
        raise ValueError(f"no lookback rule for {feature!r}: drift covers {DRIFT_FEATURES} and {SCORE!r}")
    window = re.fullmatch(r"(card|terminal)_\w+_(\d+)d", feature)
    if window is None:
        return 0
    n = int(window.group(2))
    return n + LABEL_DELAY_DAYS if window.group(1) == "terminal" else n


def _history_start(conn: duckdb.DuckDBPyConnection) -> pd.Timestamp:
    table = TRANSACTIONS_TABLE if table_exists(conn, TRANSACTIONS_TABLE) else FEATURES_TABLE
    return pd.Timestamp(conn.execute(f"SELECT min(business_date) FROM {table}").fetchone()[0])


def _compare(feature: str, ref: pd.DataFrame, cur: pd.DataFrame, start: pd.Timestamp) -> tuple:
    """(feature, psi, status, reference rows, current rows) over the reference days whose windows were
    full."""
    full = ref["business_date"].to_numpy() >= np.datetime64(start + pd.Timedelta(days=lookback_days(feature)))
    complete = ref[feature].to_numpy()[full]  # the one column: a frame filter would copy every column
    value = psi(pd.Series(complete), cur[feature]) if len(complete) else float("nan")
    status = psi_status(value) if len(complete) else WARMUP
    return feature, value, status, len(complete), len(cur)


def _score_drift(
    conn: duckdb.DuckDBPyConnection, reference: ReferenceRows, day: str, lo: str, hi: str, start: pd.Timestamp
) -> tuple:
    """The score's drift row: the day's scores against the reference window's scores of the SAME model
    version (another model's scores differ by calibration, not by population: a champion change alone
    would read as drift and request a retraining). When the window holds none of that version's scores
    (a new champion; a window never scored), the version's earlier scored days are the reference; with
    none, status `no_data` (PSI NULL)."""
    cols = ["business_date", SCORE, "model_version"]
    cur = _day(conn, SCORES_TABLE, [SCORE, "model_version"], day)
    versions = cur["model_version"].unique().tolist()

    def same_model(ref: pd.DataFrame) -> pd.DataFrame:
        return ref[ref["model_version"].isin(versions)]

    ref = same_model(reference.window(SCORES_TABLE, cols, lo, hi))
    if ref.empty and versions:
        [(first,)] = conn.execute(
            f"SELECT CAST(min(business_date) AS VARCHAR) FROM {SCORES_TABLE} "
            "WHERE business_date < CAST(? AS DATE) AND model_version IN (SELECT unnest(?::VARCHAR[]))",
            [day, versions],
        ).fetchall()
        if first is not None:
            before = str(pd.Timestamp(day).date() - pd.Timedelta(days=1))
            ref = same_model(reference.window(SCORES_TABLE, cols, first, before))
    if ref.empty:
        return SCORE, float("nan"), "no_data", 0, len(cur)
    return _compare(SCORE, ref, cur, start)


def compute_drift(
    conn: duckdb.DuckDBPyConnection, day: str, reference: ReferenceRows | None = None
) -> pd.DataFrame:
    """One row per feature (and the score): PSI of `day` against the reference window; no rows when the
    day has no features or nothing came before it. `reference` keeps the days' reference rows across the
    days of one run."""
    reference = ReferenceRows(conn) if reference is None else reference
    empty = pd.DataFrame(columns=list(DRIFT_COLUMNS))
    if not table_exists(conn, FEATURES_TABLE):
        return empty
    features = [c for c in DRIFT_FEATURES if c in _columns(conn, FEATURES_TABLE)]
    cur = _day(conn, FEATURES_TABLE, features, day)
    lo, hi = _reference_window(conn, day)
    if cur.empty or lo is None:
        return empty
    start = reference.history_start()
    ref = reference.window(FEATURES_TABLE, ["business_date", *features], lo, hi)
    rows = [_compare(f, ref, cur, start) for f in features]
    if table_exists(conn, SCORES_TABLE):
        rows.append(_score_drift(conn, reference, day, lo, hi, start))
    df = pd.DataFrame(rows, columns=["feature", "psi", "status", "reference_rows", "current_rows"])
    df.insert(0, "business_date", pd.Timestamp(day).date())
    df["reference_start"] = pd.Timestamp(lo).date()
    df["reference_end"] = pd.Timestamp(hi).date()
    df["computed_at"] = _now()
    return df[list(DRIFT_COLUMNS)]


def drift_summary(day: pd.DataFrame) -> dict[str, object]:
    """A day's drift figures, the metadata plotted over partitions and read by the retraining trigger."""
    scored = day.dropna(subset=["psi"])
    worst = scored.loc[scored["psi"].idxmax()] if not scored.empty else None
    summary: dict[str, object] = {
        "current_business_date": str(day["business_date"].iloc[0]),
        "reference_window": f"{day['reference_start'].iloc[0]} .. {day['reference_end'].iloc[0]}",
        "max_psi": float(worst["psi"]) if worst is not None else float("nan"),
        "max_psi_feature": str(worst["feature"]) if worst is not None else "",
        "features_warn": int((day["status"] == "warn").sum()),
        "features_act": int((day["status"] == "act").sum()),
        # The score's own figure is `score_psi` below: a `psi_score` beside it was the same plot twice.
        **{f"psi_{r.feature}": float(r.psi) for r in day.itertuples() if r.feature != SCORE},
    }
    if SCORE in set(day["feature"]):
        summary["score_psi"] = float(day.loc[day["feature"] == SCORE, "psi"].iloc[0])
    return summary


def drift_check(df: pd.DataFrame, trained_through: str | None = None) -> dg.AssetCheckResult:
    """Judges `df`, the rows of the days after the training set (`trained_through`, its last day)."""
    measured = df.dropna(subset=["psi"])
    if measured.empty:
        # Say why nothing was judged: the asset's own metadata may show a high PSI on a training day.
        note = (
            f"not judged: in the champion's training set (through {trained_through}); drift is judged on "
            "the days after it"
            if trained_through is not None and df.empty
            else "nothing to compare yet"
        )
        return dg.AssetCheckResult(check_name="psi_below_thresholds", passed=True, metadata={"note": note})
    worst = measured.loc[measured["psi"].idxmax()]
    max_psi = float(worst["psi"])
    passed = max_psi < PSI_WARN
    n_warn, n_act = int((measured["status"] == "warn").sum()), int((measured["status"] == "act").sum())
    day = pd.Timestamp(worst["business_date"]).date().isoformat()
    # The description is what an alert says: which day, the worst feature, how many features drifted.
    description = (
        f"{day}: {worst['feature']} PSI {max_psi:.3f} (warn >= {PSI_WARN}, act >= {PSI_ACT}); "
        f"{n_act} feature(s) at act, {n_warn} at warn"
    )
    return dg.AssetCheckResult(
        check_name="psi_below_thresholds",
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR if max_psi >= PSI_ACT else dg.AssetCheckSeverity.WARN,
        metadata={
            "business_date": day,
            "max_psi": max_psi,
            "max_psi_feature": str(worst["feature"]),
            "features_warn": n_warn,
            "features_act": n_act,
        },
        description=None if passed else description,
    )


@dg.asset(
    key=["monitoring", "feature_drift"],
    group_name="monitoring",
    metadata=column_schema_metadata(DRIFT_TYPES, descriptions=DRIFT_COLUMNS),
    owners=OWNERS,
    kinds={"duckdb", "python"},
    code_version="2",
    pool="duckdb",
    partitions_def=business_date_partitions,
    # A burst of days is one run: each day's reference rows are read once for every window that holds it.
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[
        dg.AssetKey(["features", "transaction_features"]),
        dg.AssetKey(["scoring", "transaction_scores"]),
        dg.AssetKey(["models", "training_set"]),
    ],
    description=(
        "Population stability index (PSI) of each handbook baseline feature (but the calendar's is_weekend) "
        "and of the champion's score, "
        "one business day (partition) vs the training window (reference deciles). For data scientists and "
        "the retraining trigger: 0.1 = warn, 0.25 = act. One row per (day, feature). Metadata `max_psi`, "
        "`score_psi` and `psi_<feature>` (each day's own, also when one run measures many days) plot over "
        "partitions."
    ),
)
def feature_drift(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    days = sorted(context.partition_keys)
    with duckdb.get_connection() as conn:
        reference = ReferenceRows(conn)
        measured = [compute_drift(conn, day, reference) for day in days]
        measured = [df for df in measured if not df.empty]
        df = pd.concat(measured, ignore_index=True) if measured else pd.DataFrame(columns=list(DRIFT_COLUMNS))
        if measured:
            replace_partition(conn, DRIFT_TABLE, df, "business_date", days)
            by_day = {str(m["business_date"].iloc[0]): drift_summary(m) for m in measured}
            extra = {"drift_days": len(measured), **by_day[max(by_day)]}
            md = table_metadata(
                conn, DRIFT_TABLE, descriptions=DRIFT_COLUMNS, extra=extra, partitions=len(days)
            )
            # A burst's days each carry their own figures (the plots over partitions, the retraining
            # trigger's per-day reading), not the latest day's.
            md = spread_over_days(
                context, md, by_day, {k for summary in by_day.values() for k in summary}, conn=conn
            )
        else:
            context.log.info("no features yet: nothing to compare")
            md = {"note": "no features or no reference window yet"}
    return dg.MaterializeResult(metadata=md)


def champion_window(conn: duckdb.DuckDBPyConnection) -> tuple[str, str, str] | None:
    """The champion's first and last fitted days and its last validation day (the model that scores is
    fold 0's: fitted on train_start..train_end, validated on test_start..test_end), from its registry
    record; None without a champion. models.training_set holds the latest training run's days, a waiting
    challenger's, so it speaks for the champion only when the registry has none."""
    if not (table_exists(conn, EVENTS_TABLE) and table_exists(conn, VERSIONS_TABLE)):
        return None
    champion = current_alias(conn, CHAMPION)
    row = conn.execute(
        f"SELECT train_start, train_end, test_end FROM {VERSIONS_TABLE} WHERE model_version = ?", [champion]
    ).fetchone()
    if row is None or None in row:
        return None
    first, last_fitted, last = (pd.Timestamp(d).date().isoformat() for d in row)
    return first, last_fitted, last


def trained_through(conn: duckdb.DuckDBPyConnection) -> str | None:
    """The last business day of the champion's training set (None without one): the days up to it are
    in-sample, judged neither for drift nor for decay (`champion_window`; without a registered champion,
    the training set's last day)."""
    window = champion_window(conn)
    if window is not None:
        return window[2]
    if not table_exists(conn, TRAINING_SET_TABLE) or "business_date" not in _columns(
        conn, TRAINING_SET_TABLE
    ):
        return None
    last = conn.execute(f"SELECT max(business_date) FROM {TRAINING_SET_TABLE}").fetchone()[0]
    return None if last is None else pd.Timestamp(last).date().isoformat()


def after_training(conn: duckdb.DuckDBPyConnection, df: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """The rows of days the champion's training set did not hold, and its last day: drift is a warning
    about data the models have not seen (a burst re-measured at bootstrap would otherwise alert on the
    training days, each compared with the few days before it)."""
    last = None if df.empty else trained_through(conn)
    if last is None:
        return df, None
    return df[pd.to_datetime(df["business_date"]) > pd.Timestamp(last)], last


def known_compromised_since(conn: duckdb.DuckDBPyConnection) -> pd.Series:
    """Card token -> time of its first fraud report: from then on the card is known compromised (the
    point-in-time rule of the training set's test days), so gate and monitoring remove the same cards."""
    return (
        conn.execute(f"SELECT card_token, min(reported_at) AS t FROM {LABELS_TABLE} GROUP BY card_token")
        .df()
        .set_index("card_token")["t"]
    )


def not_known_compromised(day_rows: pd.DataFrame, known_since: pd.Series, day) -> pd.DataFrame:
    """The rows of `day` whose card was not known compromised by the day's start: the gate's test
    population (models/training_set), on which AP is measured everywhere. The later frauds of known cards,
    most of a simulated day's, are found from the card's known frauds: left in, AP is a different and far
    higher figure than the gate's (0.85 against 0.71 on a simulated week)."""
    known = known_compromised_by(known_since, day)
    return day_rows[~day_rows["card_token"].isin(known)] if len(known) else day_rows


# Scored days [?, ?]: a transaction is fraud as known now iff it has a report (cleaned.labels keeps the
# earliest). The date range on both tables lets their zone maps skip the other days.
BATCH_PERFORMANCE_SQL = f"""
SELECT s.business_date, s.model_version, s.score, t.card_token,
       (l.transaction_id IS NOT NULL)::INTEGER AS is_fraud
FROM {SCORES_TABLE} s
JOIN {TRANSACTIONS_TABLE} t USING (transaction_id)
LEFT JOIN (SELECT DISTINCT transaction_id FROM {LABELS_TABLE}) l USING (transaction_id)
WHERE s.business_date BETWEEN ? AND ? AND t.business_date BETWEEN ? AND ?
"""
PERFORMANCE_BATCH_ROWS = 2_000_000


def day_batch_frames(
    conn: duckdb.DuckDBPyConnection,
    table: str,
    sql: str,
    max_rows: int,
    first: str | None = None,
    last: str | None = None,
) -> Iterator[pd.DataFrame]:
    """`sql` (parameters: first and last day of a batch, twice) over the days of `table` (those in
    [`first`, `last`] when given), in increasing batches of whole days holding about `max_rows` of its
    rows: monitoring's memory stays bounded at a network's volume, and a metric that follows days in order
    (Card Precision) sees them in order."""
    span = "".join(
        f" AND business_date {op} CAST('{pd.Timestamp(d).date()}' AS DATE)"
        for op, d in ((">=", first), ("<=", last))
        if d is not None
    )
    counts = dict(
        conn.execute(
            f"SELECT business_date, count(*) FROM {table} WHERE business_date IS NOT NULL{span} GROUP BY 1"
        ).fetchall()
    )
    for batch in day_batches(sorted(counts), counts, max_rows):
        yield conn.execute(sql, [batch[0], batch[-1], batch[0], batch[-1]]).df()


def versions_of(
    conn: duckdb.DuckDBPyConnection, days: list[str], table: str = SCORES_TABLE
) -> tuple[list[str], str | None]:
    """The model versions that scored `days` in `table` (the champion's scores or the challenger's shadow
    scores), and the first day any of them scored there: Card Precision follows a version over its scored
    days in order, so a day's figure needs the version's earlier days."""
    versions = [
        v
        for (v,) in conn.execute(
            f"SELECT DISTINCT model_version FROM {table} WHERE {dates_filter(days)}"
        ).fetchall()
    ]
    if not versions:
        return [], None
    [(first,)] = conn.execute(
        f"SELECT CAST(min(business_date) AS VARCHAR) FROM {table} "
        "WHERE model_version IN (SELECT unnest(?::VARCHAR[]))",
        [versions],
    ).fetchall()
    return versions, first


def compute_performance(conn: duckdb.DuckDBPyConnection, days: list[str] | None = None) -> pd.DataFrame:
    """Per scored day (of `days`; None: every day) and model version: AP, Card Precision@100 and alert
    precision against labels known now. Card Precision follows each version over its scored days in order
    (a card it detected on one day is removed from its later days), as the gate follows a candidate over
    its test days: the versions of `days` are read from their first scored day, and only `days` kept, so a
    day's figure is the same whichever days its run covers."""
    needed = (SCORES_TABLE, LABELS_TABLE, TRANSACTIONS_TABLE)
    if not all(table_exists(conn, t) for t in needed):
        return pd.DataFrame(columns=list(PERFORMANCE_COLUMNS))
    first = last = versions = None
    if days is not None:
        versions, first = versions_of(conn, days)
        if not versions:
            return pd.DataFrame(columns=list(PERFORMANCE_COLUMNS))
        last = max(days)
    wanted = None if days is None else {pd.Timestamp(d).date() for d in days}
    as_of = conn.execute(f"SELECT max(reported_at) FROM {LABELS_TABLE}").fetchone()[0]
    known_since = known_compromised_since(conn)
    trackers: dict[str, CardPrecision] = {}
    rows = []
    batches = day_batch_frames(conn, SCORES_TABLE, BATCH_PERFORMANCE_SQL, PERFORMANCE_BATCH_ROWS, first, last)
    for scored in batches:
        if versions is not None:
            scored = scored[scored["model_version"].isin(versions)]
        for (ts, version), part in scored.groupby(["business_date", "model_version"], sort=True):
            day = pd.Timestamp(ts).date()
            cp = trackers.setdefault(
                version, CardPrecision(TOP_K_CARDS, label_col="is_fraud", known_since=known_since)
            )
            card_precision = cp.day(day, part)  # every day of the version, in order: it carries detections
            if wanted is not None and day not in wanted:
                continue
            fresh = not_known_compromised(part, known_since, day)
            rows.append(
                {
                    "business_date": day,
                    "model_version": str(version),
                    "n_transactions": len(part),
                    "n_frauds": int(part["is_fraud"].sum()),
                    "average_precision": average_precision(fresh["is_fraud"], fresh["score"]),
                    "card_precision_at_100": card_precision,
                    "alert_precision": alert_precision(part, "score", TOP_K_CARDS, label_col="is_fraud"),
                    "matured": as_of is not None
                    and pd.Timestamp(day) + pd.Timedelta(days=MATURITY_DAYS + 1) <= pd.Timestamp(as_of),
                    "labels_as_of": as_of,
                    "computed_at": _now(),
                }
            )
    return pd.DataFrame(rows, columns=list(PERFORMANCE_COLUMNS))


def performance_summary(df: pd.DataFrame) -> dict[str, object]:
    matured = df[df["matured"].astype(bool)].dropna(subset=["average_precision"]) if len(df) else df
    if matured.empty:
        return {"n_matured_days": 0}
    matured = matured.sort_values("business_date")
    last = matured.iloc[-1]
    recent = matured.tail(7)
    return {
        "n_matured_days": int(matured["business_date"].nunique()),
        "latest_matured_business_date": pd.Timestamp(last["business_date"]).date().isoformat(),
        "latest_matured_ap": float(last["average_precision"]),
        "latest_matured_cp_at_100": float(last["card_precision_at_100"]),
        "mean_ap_last_7_matured_days": float(recent["average_precision"].mean()),
        "mean_cp_at_100_last_7_matured_days": float(recent["card_precision_at_100"].mean()),
    }


def _days_of_reports(day: str, as_of) -> float:
    """Days of chargeback reports after `day` ended, as of the latest report (0 while the day is the
    latest; NaN without any label): the day is matured from MATURITY_DAYS on."""
    if as_of is None or pd.isna(as_of):
        return float("nan")
    after = pd.Timestamp(as_of) - pd.Timestamp(day) - pd.Timedelta(days=1)
    return max(0.0, after / pd.Timedelta(days=1))


def performance_day_figures(df: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Each day's figures, the metadata the UI plots over partitions: the day's served model (the version
    that scored most of its transactions) and its AP, CP@100, alert precision and label maturity."""
    figures: dict[str, dict[str, object]] = {}
    for ts, rows in df.groupby("business_date", sort=True):
        day = pd.Timestamp(ts).date().isoformat()  # a DATE read back by DuckDB is a Timestamp
        row = rows.sort_values(["n_transactions", "model_version"], ascending=[False, True]).iloc[0]
        as_of = row["labels_as_of"]
        figures[day] = {
            DAY_ROW_COUNT: len(rows),
            "business_date": day,
            "model_version": str(row["model_version"]),
            "n_transactions": int(row["n_transactions"]),
            "n_frauds": int(row["n_frauds"]),
            "average_precision": float(row["average_precision"]),
            "card_precision_at_100": float(row["card_precision_at_100"]),
            "alert_precision": float(row["alert_precision"]),
            # Days of reports after the day ended: the labels are trusted (matured) from MATURITY_DAYS on.
            "label_maturity_days": _days_of_reports(day, as_of),
            "matured": bool(row["matured"]),
        }
    return figures


def ensure_declared_table(conn: duckdb.DuckDBPyConnection, table: str, types: dict[str, str]) -> None:
    """`table` with its declared column `types` (a day without rows still replaces its rows; a table
    written before a column was added gets it, empty, until its days are computed again)."""
    ensure_schema(conn, table)
    columns = ", ".join(f"{c} {t}" for c, t in types.items())
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
    present = set(_columns(conn, table))
    for column, type_ in types.items():
        if column not in present:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {type_}")


@dg.asset(
    key=["monitoring", "model_performance"],
    group_name="monitoring",
    metadata=column_schema_metadata(PERFORMANCE_TYPES, descriptions=PERFORMANCE_COLUMNS),
    owners=OWNERS,
    kinds={"duckdb", "python", "scikit-learn"},
    code_version="3",
    pool="duckdb",
    partitions_def=business_date_partitions,
    # A range of days (make pipeline, a late chargeback file's days) is one pass over the versions' days.
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[
        dg.AssetKey(["scoring", "transaction_scores"]),
        dg.AssetKey(["cleaned", "labels"]),
        dg.AssetKey(["cleaned", "transactions"]),
    ],
    description=(
        "Model performance per scored day (partition) and model version on the labels known now: average "
        f"precision, Card Precision@{TOP_K_CARDS} as the gate computes it (lib/metrics.py: known-compromised "
        "cards removed, top cards by score that had fraud) and alert precision. A day is `matured` once "
        f"{MATURITY_DAYS} days of chargeback reports followed it; only matured days are trusted. Each day's "
        "figures are its partition's metadata (`average_precision`, `card_precision_at_100`, "
        "`alert_precision`, `label_maturity_days`), plotted over partitions; a day is computed when it is "
        "scored and again when labels of its transactions or of earlier days arrive "
        "(performance_labels_sensor). Days up to the last day of the champion's training set "
        "(`champion_training_set_through`: fitted or validated on) are not out-of-sample: their figures "
        "flatter the model: neither the check nor the retraining trigger's figures "
        "(`n_matured_days`, `mean_ap_last_7_matured_days`, `latest_matured_*`: every stored day after them) "
        "count them."
    ),
)
def model_performance(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
    days = sorted(context.partition_keys)
    with duckdb.get_connection() as conn:
        df = compute_performance(conn, days)
        if df.empty and not table_exists(conn, PERFORMANCE_TABLE):
            context.log.info("no scores with labels yet")
            md = {"note": "no scored days with labels yet", "n_matured_days": 0}
            return dg.MaterializeResult(metadata=spread_over_days(context, md, {}, []))
        ensure_declared_table(conn, PERFORMANCE_TABLE, PERFORMANCE_TYPES)
        replace_partition(conn, PERFORMANCE_TABLE, as_timestamps(df), "business_date", days)
        # The trigger's figures span every stored out-of-sample day (the latest matured day is rarely one
        # of the run's): a fitted or validation day's AP flatters the champion and would hide decay.
        through = trained_through(conn)
        stored = conn.execute(f"SELECT * FROM {PERFORMANCE_TABLE}").df()
        if through is not None:
            stored = stored[pd.to_datetime(stored["business_date"]) > pd.Timestamp(through)]
        summary = performance_summary(stored)
        summary = {**summary, **({"champion_training_set_through": through} if through else {})}
        by_day = performance_day_figures(df)
        extra = {**summary, **(by_day[max(by_day)] if by_day else {})}
        md = table_metadata(
            conn,
            PERFORMANCE_TABLE,
            descriptions=PERFORMANCE_COLUMNS,
            where=dates_filter(days),
            extra=extra,
            partitions=len(days),
        )
        md = spread_over_days(
            context, md, by_day, {k for figures in by_day.values() for k in figures}, conn=conn
        )
    return dg.MaterializeResult(metadata=md)

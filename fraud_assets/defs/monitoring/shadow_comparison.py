"""`monitoring/shadow_comparison`: champion vs challenger on the same live days.

Per shadow-scored day: the PSI between the two models' scores (how differently they see the day; needs
no labels), and once the day's labels have matured, for each model the average precision, Card
Precision@100 (lib/metrics.py, the handbook's definition) and alert precision at the investigators'
budget (the share of the top-`budget` cards of the day that had a fraud). Partitioned by business date
like the other monitors: each day's figures are its partition's metadata, which the UI plots per day;
approvers read the whole comparison of a challenger through the evidence pack.
"""

# No `from __future__ import annotations`: Dagster resolves the config type from the annotation.
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from fraud_assets.defs.monitoring.assets import (
    as_timestamps,
    day_batch_frames,
    ensure_declared_table,
    known_compromised_since,
    not_known_compromised,
    versions_of,
)
from fraud_assets.defs.monitoring.metrics import alert_precision, average_precision, psi
from fraud_assets.defs.monitoring.thresholds import MATURITY_DAYS, TOP_K_CARDS
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.day_metadata import DAY_ROW_COUNT, spread_over_days
from fraud_assets.lib.metrics import CardPrecision
from fraud_assets.lib.partitions import business_date_partitions, dates_filter
from fraud_assets.lib.tables import LABELS_TABLE, SCORES_TABLE, SHADOW_TABLE
from fraud_assets.lib.warehouse import replace_partition, table_exists, table_metadata

OWNERS = ["team:fraud-data-science"]
COMPARISON_TABLE = "monitoring.shadow_comparison"
MODELS = ("champion", "challenger")
METRICS = ("ap", "cp_at_100", "alert_precision")

COLUMNS: list[tuple[str, str, str]] = [
    ("business_date", "DATE", "shadow-scored day"),
    ("challenger_version", "VARCHAR", "model awaiting approval that shadow-scored the day"),
    ("champion_version", "VARCHAR", "model whose scores served the day (scoring.transaction_scores)"),
    ("n_transactions", "BIGINT", "transactions scored by both"),
    ("n_frauds", "BIGINT", "of them with a fraud report known at labels_as_of"),
    ("matured", "BOOLEAN", f"true once {MATURITY_DAYS} days of reports followed the day"),
    ("score_psi", "DOUBLE", "PSI of the challenger's scores against the champion's (no labels needed)"),
    *[
        (f"{m}_{metric}", "DOUBLE", f"{m}'s {label} on the day (matured days only, else empty)")
        for m in MODELS
        for metric, label in (
            ("ap", "average precision over cards not known compromised by the day's start"),
            ("cp_at_100", "Card Precision@100"),
            ("alert_precision", "alert precision at the investigators' budget"),
        )
    ],
    ("budget", "BIGINT", "investigators' budget: cards reviewed per day"),
    ("labels_as_of", "TIMESTAMP", "latest report time in cleaned.labels"),
    ("computed_at", "TIMESTAMP", "UTC time of computation"),
]
TYPES = {c: t for c, t, _ in COLUMNS}
DESCRIPTIONS = {c: d for c, _, d in COLUMNS}
# Each day's own figures (its partition's metadata, plotted per day).
DAY_FIGURES = (
    "challenger_version",
    "n_transactions",
    "matured",
    "score_psi",
    *(f"{m}_{metric}" for m in MODELS for metric in METRICS),
)

# The two models' scores of the shadow-scored transactions of days [?, ?], with the label known now. The
# date range on both score tables lets their zone maps skip the other days.
PAIRED_SQL = f"""
SELECT s.business_date, s.model_version AS challenger_version, c.model_version AS champion_version,
       s.card_token, c.score AS champion_score, s.score AS challenger_score,
       (l.transaction_id IS NOT NULL)::INTEGER AS label
FROM {SHADOW_TABLE} s
JOIN {SCORES_TABLE} c USING (transaction_id)
LEFT JOIN (SELECT DISTINCT transaction_id FROM {LABELS_TABLE}) l USING (transaction_id)
WHERE s.business_date BETWEEN ? AND ? AND c.business_date BETWEEN ? AND ?
"""
SHADOW_BATCH_ROWS = 2_000_000


class ShadowComparisonConfig(dg.Config):
    budget: int = Field(default=TOP_K_CARDS, description="Cards investigators review per day (alert queue).")


def _day_row(
    day: pd.DataFrame, fresh: pd.DataFrame, matured: bool, budget: int, card_precision: dict[str, float]
) -> dict[str, object]:
    """One day's comparison; `fresh`: its rows of cards not known compromised, where AP is measured."""
    row: dict[str, object] = {
        "n_transactions": len(day),
        "n_frauds": int(day["label"].sum()),
        "matured": matured,
        "score_psi": psi(day["champion_score"], day["challenger_score"]),
    }
    for m in MODELS:
        col = f"{m}_score"
        if matured:
            values = (
                average_precision(fresh["label"], fresh[col]),
                card_precision[m],
                alert_precision(day, col, budget),
            )
        else:
            values = (float("nan"),) * 3
        row.update({f"{m}_{metric}": v for metric, v in zip(METRICS, values, strict=True)})
    return row


def compute_shadow_comparison(conn, budget: int = TOP_K_CARDS, days: list[str] | None = None) -> pd.DataFrame:
    """One row per shadow-scored day (of `days`; None: every day) and (challenger, champion) pair. Card
    Precision follows each model of each pair over the pair's days in order (a card detected on one day is
    removed from the later days): the challengers of `days` are read from their first shadow-scored day,
    and only `days` kept, so a day's figures are the same whichever days its run covers."""
    columns = [c for c, _, _ in COLUMNS]
    if not all(table_exists(conn, t) for t in (SHADOW_TABLE, SCORES_TABLE, LABELS_TABLE)):
        return pd.DataFrame(columns=columns)
    first = last = challengers = None
    if days is not None:
        challengers, first = versions_of(conn, days, SHADOW_TABLE)
        if not challengers:
            return pd.DataFrame(columns=columns)
        last = max(days)
    wanted = None if days is None else {pd.Timestamp(d).date() for d in days}
    as_of = conn.execute(f"SELECT max(reported_at) FROM {LABELS_TABLE}").fetchall()[0][0]
    known_since = known_compromised_since(conn)
    trackers: dict[tuple, dict[str, CardPrecision]] = {}
    keys = ["business_date", "challenger_version", "champion_version"]
    rows = []
    for paired in day_batch_frames(conn, SHADOW_TABLE, PAIRED_SQL, SHADOW_BATCH_ROWS, first, last):
        if challengers is not None:
            paired = paired[paired["challenger_version"].isin(challengers)]
        for (ts, challenger, champion), part in paired.groupby(keys, sort=True, dropna=False):
            day = pd.Timestamp(ts).date()
            cps = trackers.setdefault(
                (challenger, champion),
                {
                    m: CardPrecision(
                        TOP_K_CARDS, score_col=f"{m}_score", label_col="label", known_since=known_since
                    )
                    for m in MODELS
                },
            )
            card_precision = {m: cps[m].day(day, part) for m in MODELS}  # every day: it carries detections
            if wanted is not None and day not in wanted:
                continue
            matured = as_of is not None and pd.Timestamp(day) + pd.Timedelta(
                days=MATURITY_DAYS + 1
            ) <= pd.Timestamp(as_of)
            rows.append(
                {
                    "business_date": day,
                    "challenger_version": challenger,
                    "champion_version": champion,
                    **_day_row(
                        part,
                        not_known_compromised(part, known_since, day),
                        bool(matured),
                        budget,
                        card_precision,
                    ),
                    "budget": budget,
                    "labels_as_of": as_of,
                    "computed_at": datetime.now(UTC).replace(tzinfo=None),
                }
            )
    return pd.DataFrame(rows, columns=columns).sort_values(keys, kind="stable", ignore_index=True)


def day_figures(df: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Each day's figures, the metadata the UI plots over partitions: the day's challenger and its
    comparison. A day holds one challenger (shadow scoring replaces a day's rows); the sort only makes the
    pick deterministic. `.item()`: plain Python values, so a numpy bool stays a bool in metadata."""
    figures: dict[str, dict[str, object]] = {}
    for ts, rows in df.groupby("business_date", sort=True):
        row = rows.sort_values("challenger_version").iloc[-1]
        figures[pd.Timestamp(ts).date().isoformat()] = {
            DAY_ROW_COUNT: len(rows),
            **{k: row[k].item() if hasattr(row[k], "item") else row[k] for k in DAY_FIGURES},
        }
    return figures


def _mean(values: pd.Series) -> float:
    finite = pd.to_numeric(values, errors="coerce").dropna()
    return float(finite.mean()) if len(finite) else float("nan")


def summarise(df: pd.DataFrame) -> dict[str, float | int | str]:
    """Days, matured days, mean of each metric per model and the challenger's mean lead, mean PSI."""
    if df.empty:
        return {"shadow_days": 0, "matured_days": 0}
    matured = df[df["matured"].astype(bool)]
    out: dict[str, float | int | str] = {
        "shadow_days": int(df["business_date"].nunique()),
        "matured_days": int(matured["business_date"].nunique()),
        "first_day": str(df["business_date"].min()),
        "last_day": str(df["business_date"].max()),
        "mean_score_psi": _mean(df["score_psi"]),
    }
    for metric in METRICS:
        for m in MODELS:
            out[f"{m}_{metric}_mean"] = _mean(matured[f"{m}_{metric}"])
        out[f"challenger_lead_{metric}"] = out[f"challenger_{metric}_mean"] - out[f"champion_{metric}_mean"]
    return out


def shadow_summary(conn, model_version: str) -> dict[str, float | int | str]:
    """The comparison so far for one challenger (read from monitoring.shadow_comparison)."""
    if not table_exists(conn, COMPARISON_TABLE):
        return {"shadow_days": 0, "matured_days": 0}
    df = conn.execute(f"SELECT * FROM {COMPARISON_TABLE} WHERE challenger_version = ?", [model_version]).df()
    return summarise(df)


@dg.asset(
    key=["monitoring", "shadow_comparison"],
    group_name="monitoring",
    owners=OWNERS,
    kinds={"duckdb", "python", "scikit-learn"},
    code_version="3",
    pool="duckdb",
    partitions_def=business_date_partitions,
    # A range of days (make pipeline, a late chargeback file's days) is one pass over the pairs' days.
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[
        dg.AssetKey(["scoring", "shadow_scores"]),
        dg.AssetKey(["scoring", "transaction_scores"]),
        dg.AssetKey(["cleaned", "labels"]),
    ],
    metadata=column_schema_metadata(COLUMNS),
    description=(
        "Champion vs challenger on the same live days, for the people who approve a model: per shadow-"
        "scored day (partition) the PSI between the two models' scores and, once labels matured, each "
        "model's average precision, Card Precision@100 and alert precision at the investigators' budget. "
        "Each day's figures are its partition's metadata (`score_psi`, `champion_ap`, `challenger_ap`, "
        "`champion_cp_at_100`, ...), plotted per day; a day no challenger shadow-scored is an empty "
        "partition. Computed when the day is scored and again when labels of its transactions or of "
        "earlier days arrive (performance_labels_sensor). Read by the evidence pack of an approval "
        "(models/champion); metadata also carries the latest challenger's means and lead over all its days."
    ),
)
def shadow_comparison(
    context: dg.AssetExecutionContext, config: ShadowComparisonConfig, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    days = sorted(context.partition_keys)
    with duckdb.get_connection() as conn:
        df = compute_shadow_comparison(conn, config.budget, days)
        if df.empty and not table_exists(conn, COMPARISON_TABLE):
            context.log.info("no shadow-scored day yet")
            md = {"shadow_days": 0, "note": "no challenger shadow-scored yet"}
            return dg.MaterializeResult(metadata=spread_over_days(context, md, {}, []))
        ensure_declared_table(conn, COMPARISON_TABLE, TYPES)
        replace_partition(conn, COMPARISON_TABLE, as_timestamps(df), "business_date", days)
        # The approvers' summary spans every stored day of the latest challenger, not only the run's days.
        stored = conn.execute(f"SELECT * FROM {COMPARISON_TABLE}").df()
        extra: dict[str, object] = {"shadow_days": 0, "matured_days": 0}
        if len(stored):
            challenger = str(
                stored.sort_values(["business_date", "challenger_version"]).iloc[-1]["challenger_version"]
            )
            extra = {
                "challenger": challenger,
                **summarise(stored[stored["challenger_version"] == challenger]),
            }
        by_day = day_figures(df)
        extra |= by_day[max(by_day)] if by_day else {}
        md = table_metadata(
            conn,
            COMPARISON_TABLE,
            descriptions=DESCRIPTIONS,
            where=dates_filter(days),
            extra=extra,
            partitions=len(days),
        )
        md = spread_over_days(context, md, by_day, DAY_FIGURES, conn=conn)
    return dg.MaterializeResult(metadata=md)

"""The monitoring layer's checks, partitioned like their assets: each business day is judged on its own.

A check declared beside a partitioned asset without partitions is listed per day by the UI as never
executed; these read the rows the run wrote for its days and record each day's own verdict, in a range run
too (`per_partition`'s `per_day`: the range's worst day is the one evaluation the alert sensor reads).
Neither blocks anything: they warn people and feed no downstream asset.
"""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.monitoring.assets import (
    PERFORMANCE_TABLE,
    after_training,
    drift_check,
    feature_drift,
    model_performance,
    performance_day_figures,
    trained_through,
)
from fraud_assets.defs.monitoring.thresholds import MATURITY_DAYS, ap_floor
from fraud_assets.lib.contracts import per_partition
from fraud_assets.lib.partitions import business_date_partitions, dates_filter
from fraud_assets.lib.tables import DRIFT_TABLE
from fraud_assets.lib.warehouse import table_exists

PSI_CHECK = "psi_below_thresholds"
AP_CHECK = "matured_ap_above_floor"
RECENT_MATURED_DAYS = 7  # the mean a WARN compares with the floor


def _worst(results: dict[str, dg.AssetCheckResult], passed: dg.AssetCheckResult) -> dg.AssetCheckResult:
    """The range's verdict: its worst day (ERROR before WARN, then the latest), else `passed`."""
    failed = [
        (r.severity == dg.AssetCheckSeverity.ERROR, day, r) for day, r in results.items() if not r.passed
    ]
    return max(failed, key=lambda f: f[:2])[2] if failed else passed


@dg.asset_check(
    asset=feature_drift,
    name=PSI_CHECK,
    partitions_def=business_date_partitions,
    pool="duckdb",
    description=(
        "Each day's PSI of every feature and of the score (vs the training window) is below 0.1: WARN from "
        "0.1, ERROR from 0.25 (the retraining trigger acts at 0.25). Days inside the champion's training "
        "set are not judged."
    ),
)
def psi_below_thresholds(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    days = sorted(context.partition_keys)
    with duckdb.get_connection() as conn:
        rows = (
            conn.execute(
                f"SELECT business_date, feature, psi, status FROM {DRIFT_TABLE} WHERE {dates_filter(days)}"
            ).df()
            if table_exists(conn, DRIFT_TABLE)
            else pd.DataFrame(columns=["business_date", "feature", "psi", "status"])
        )
        rows["day"] = pd.to_datetime(rows["business_date"]).dt.strftime("%Y-%m-%d")
        unseen, through = after_training(conn, rows)
    measured = set(rows["day"])
    per_day = {
        day: drift_check(unseen[unseen["day"] == day], through if day in measured else None) for day in days
    }
    overall = drift_check(unseen, through)
    return per_partition(context, overall, per_day)


def judge_day(day: str, figures: dict[str, object] | None, recent_ap: float) -> dg.AssetCheckResult:
    """A day's performance verdict: ERROR when its matured AP is below the floor, WARN when the mean AP of
    the latest matured days up to it (`recent_ap`) is within 0.1 of the floor; a day whose labels are not
    matured yet passes with a note (it is judged again when its later labels come)."""
    floor = ap_floor()
    if figures is None:
        return dg.AssetCheckResult(passed=True, metadata={"business_date": day, "note": "no scores yet"})
    maturity = float(figures["label_maturity_days"])
    base = {"business_date": day, "label_maturity_days": maturity, "ap_floor": floor}
    ap = float(figures["average_precision"])
    if not figures["matured"] or ap != ap:
        note = (
            f"not judged: labels not matured ({maturity:.1f} of {MATURITY_DAYS} days of reports)"
            if not figures["matured"]
            else "not judged: no AP (the day has one class only)"
        )
        return dg.AssetCheckResult(passed=True, metadata={**base, "note": note})
    md = {**base, "average_precision": ap, f"mean_ap_last_{RECENT_MATURED_DAYS}_matured_days": recent_ap}
    if ap < floor:
        description = f"{day}: matured-label AP {ap:.3f} < floor {floor}"
        severity, passed = dg.AssetCheckSeverity.ERROR, False
    elif recent_ap < floor + 0.1:
        mean_of = f"mean AP of the last {RECENT_MATURED_DAYS} matured days"
        description = f"{day}: {mean_of} {recent_ap:.3f} < {floor + 0.1:.2f}"
        severity, passed = dg.AssetCheckSeverity.WARN, False
    else:
        description, severity, passed = None, dg.AssetCheckSeverity.WARN, True
    return dg.AssetCheckResult(passed=passed, severity=severity, metadata=md, description=description)


def _none_judged(days: int, in_sample: int, trained_through: str | None) -> str:
    """Why a run judged none of its days: a bootstrap champion whose training set holds every day it
    scored leaves nothing out of sample, which is not the same as labels still maturing."""
    reasons = []
    if in_sample:
        reasons.append(f"{in_sample} inside the champion's training set (through {trained_through})")
    if days > in_sample:
        reasons.append(f"{days - in_sample} without matured labels or scores")
    return "no day judged: " + ", ".join(reasons)


@dg.asset_check(
    asset=model_performance,
    name=AP_CHECK,
    partitions_def=business_date_partitions,
    pool="duckdb",
    description=(
        "The day's AP on matured labels is at least the floor (FRAUD_AP_FLOOR, default 0.3): ERROR below "
        "it (the retraining trigger acts), WARN when the mean AP of the 7 latest matured days up to it is "
        "within 0.1 of it. A day whose labels have not matured passes with a note and is judged when it is "
        "recomputed as its labels arrive; a day inside the champion's training set passes with a note "
        "(in-sample, and the first days of a history lack the features' lookback: no sign of decay)."
    ),
)
def matured_ap_above_floor(
    context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    days = sorted(context.partition_keys)
    with duckdb.get_connection() as conn:
        stored = (
            conn.execute(
                f"SELECT * FROM {PERFORMANCE_TABLE} WHERE business_date <= CAST(? AS DATE)", [days[-1]]
            ).df()
            if table_exists(conn, PERFORMANCE_TABLE)
            else pd.DataFrame()
        )
        in_sample_until = trained_through(conn)
    figures = performance_day_figures(stored) if len(stored) else {}
    matured_ap = {d: f["average_precision"] for d, f in figures.items() if f["matured"]}
    matured_ap = {d: ap for d, ap in sorted(matured_ap.items()) if ap == ap}  # NaN: one class only
    per_day = {}
    for day in days:
        recent = [ap for d, ap in matured_ap.items() if d <= day][-RECENT_MATURED_DAYS:]
        if in_sample_until is not None and day <= in_sample_until:
            per_day[day] = dg.AssetCheckResult(
                passed=True,
                metadata={
                    "business_date": day,
                    "note": f"not judged: inside the champion's training set (through {in_sample_until})",
                },
            )
            continue
        per_day[day] = judge_day(day, figures.get(day), sum(recent) / len(recent) if recent else float("nan"))
    judged = [d for d in days if "note" not in per_day[d].metadata]
    in_sample = [d for d in days if in_sample_until is not None and d <= in_sample_until]
    passed = dg.AssetCheckResult(
        passed=True,
        metadata={
            "days_judged": len(judged),
            "days_in_training_set": len(in_sample),
            **({"note": _none_judged(len(days), len(in_sample), in_sample_until)} if not judged else {}),
        },
    )
    overall = per_day[days[0]] if len(days) == 1 else _worst(per_day, passed)
    return per_partition(context, overall, per_day)

"""Checks of the scoring tables, run inside the asset's own step.

Each scoring asset declares its checks as `check_specs` and yields their results after its
materialisation (`lib.table_checks.run_checks`, the machinery of every table step): a landed day's run
from file to alert queue gains no step, and so no process start or connection, for them.

Which block: the scores feed the alert queue, so what makes them wrong data blocks (the contract: one
probability per transaction with its model version; the reconciliation: every transaction of the day
scored exactly once), and a failed blocking check fails the scoring step, so the day's queue is not built
from them. Scores that are all equal are the champion's honest output on that day (a tree model gives a
small day's few rows the same leaf), so `scores_vary` warns. The queue is the end of the line: its checks
block too, which fails the run and pages the on-call through the failed-check alert, since investigators
work from it.
"""

import dagster as dg

from fraud_assets.defs.scoring.common import ALERTS_TABLE, SCORES_TABLE
from fraud_assets.defs.scoring.schemas import ScoresModel
from fraud_assets.lib.reconciliation import transaction_rows, transaction_rows_by_day
from fraud_assets.lib.table_checks import (
    Counts,
    DayResults,
    TableCheck,
    TableScope,
    contract,
    counts_by_day,
    judged_by_day,
    pan_scan,
)


def _scored_result(figures: tuple[int, int, int, int]) -> dg.AssetCheckResult:
    duplicates, missing, extra, rows = figures
    return dg.AssetCheckResult(
        passed=duplicates == 0 and missing == 0 and extra == 0,
        metadata={
            "scored_rows": int(rows),
            "duplicate_scores": int(duplicates),
            "transactions_not_scored": int(missing),
            "scores_without_transaction": int(extra),
        },
    )


def _scored_once(scope: TableScope) -> dg.AssetCheckResult | DayResults:
    """Each day reconciled on its own (one grouped query): in a range, a day with a missing score fails
    alone and the range's result fails with it."""
    if scope.partition_keys is None:
        return _scored_result(transaction_rows(scope.conn, SCORES_TABLE, "TRUE"))
    by_day = transaction_rows_by_day(scope.conn, SCORES_TABLE, scope.partition_keys)
    per_day = {day: _scored_result(figures) for day, figures in by_day.items()}
    overall = _scored_result(tuple(map(sum, zip(*by_day.values(), strict=True))))
    return DayResults(overall._replace(passed=all(r.passed for r in per_day.values())), per_day)


def _scores_vary(scope: TableScope) -> dg.AssetCheckResult | DayResults:
    days, _ = scope.filter()
    constant = [
        str(day)
        for (day,) in scope.conn.execute(
            f"SELECT business_date FROM {SCORES_TABLE} WHERE {days or 'TRUE'} GROUP BY 1 "
            "HAVING count(*) > 1 AND min(score) = max(score) ORDER BY 1"
        ).fetchall()
    ]
    overall = dg.AssetCheckResult(
        passed=not constant,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "days_with_one_score_for_all": len(constant),
            "first_such_days": dg.MetadataValue.text(", ".join(constant[:5]) or "none"),
        },
    )
    if scope.partition_keys is None:
        return overall
    per_day = {
        day: dg.AssetCheckResult(
            passed=day not in constant,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"days_with_one_score_for_all": int(day in constant)},
        )
        for day in scope.partition_keys
    }
    return DayResults(overall, per_day)


SCORES_CHECKS = [
    contract(ScoresModel),
    TableCheck(
        "every_transaction_scored_once",
        "Reconciliation for the partition: every transaction of the business date in cleaned.transactions "
        "has exactly one score in {table} (none missing, none extra, no transaction_id scored twice anywhere "
        "in the table). Counts in metadata. Blocking: the alert queue is not built from an incomplete or "
        "doubled day.",
        _scored_once,
    ),
    TableCheck(
        "scores_vary",
        "Warns (not blocking) when every transaction of a business date got the same score (a day of two "
        "rows or more): a champion that cannot tell transactions apart, or features that reached it "
        "empty; the day's queue is then ranked by card token alone. Scores outside [0, 1] fail the "
        "contract.",
        _scores_vary,
        blocking=False,
    ),
]


BUDGET_COUNTS = [
    "most_alerts_in_a_day",
    "days_over_budget",
    "cards_alerted_twice_in_a_day",
    "days_with_rank_gaps",
    "alerts_above_a_higher_score",
]


def _within_budget(top_k: int):
    def judge(c: Counts) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(
            passed=not any(c[n] for n in BUDGET_COUNTS[1:]), metadata={"top_k": top_k, **c}
        )

    def run(scope: TableScope) -> dg.AssetCheckResult | DayResults:
        days, _ = scope.filter()
        rows = scope.conn.execute(
            f"""
            WITH a AS (SELECT business_date, alert_rank, card_token, score,
                              lag(score) OVER (PARTITION BY business_date ORDER BY alert_rank) AS above
                       FROM {ALERTS_TABLE} WHERE {days or "TRUE"}),
                 d AS (SELECT business_date, count(*) AS n, count(DISTINCT card_token) AS cards,
                              count(DISTINCT alert_rank) AS ranks, min(alert_rank) AS lo,
                              max(alert_rank) AS hi,
                              count(*) FILTER (WHERE score > above) AS unordered
                       FROM a GROUP BY business_date)
            SELECT {scope.day()}, max(n), count(*) FILTER (WHERE n > ?), sum(n - cards),
                   count(*) FILTER (WHERE NOT (lo = 1 AND hi = n AND ranks = n)), sum(unordered)
            FROM d GROUP BY 1
            """,
            [top_k],
        ).fetchall()
        by_day = counts_by_day(scope, rows, BUDGET_COUNTS)
        return judged_by_day(scope, by_day, judge, BUDGET_COUNTS, combine={"most_alerts_in_a_day": max})

    return run


POINT_COUNTS = ["alerts", "alerts_without_score", "alerts_unlike_their_score"]


def _pointing(c: Counts) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=c["alerts_without_score"] == 0 and c["alerts_unlike_their_score"] == 0, metadata=dict(c)
    )


def _point_to_scores(scope: TableScope) -> dg.AssetCheckResult | DayResults:
    days, _ = scope.filter("a.business_date")
    scored_days, _ = scope.filter("s.business_date")
    # The scores' own day filter first: its zone maps keep the probe to the run's days.
    scores = (
        f"SELECT 1 FROM {SCORES_TABLE} s WHERE {scored_days or 'TRUE'} "
        "AND s.transaction_id = a.transaction_id AND s.business_date = a.business_date "
        "AND s.model_version = a.model_version"
    )
    same = f"{scores} AND s.card_token = a.card_token AND s.score = a.score"
    rows = scope.conn.execute(
        f"""
        SELECT {scope.day("a.business_date")}, count(*), count(*) FILTER (WHERE NOT EXISTS ({scores})),
               count(*) FILTER (WHERE EXISTS ({scores}) AND NOT EXISTS ({same}))
        FROM {ALERTS_TABLE} a WHERE {days or "TRUE"} GROUP BY 1
        """
    ).fetchall()
    return judged_by_day(scope, counts_by_day(scope, rows, POINT_COUNTS), _pointing, POINT_COUNTS)


def alerts_checks(top_k: int = 100) -> list[TableCheck]:
    """The queue's checks; `within_budget` judges the run's `top_k` (the declared specs are built with
    the default: names and descriptions do not depend on it)."""
    return [
        TableCheck(
            "within_budget",
            "The queue within the investigators' budget, per business date: at most top_k alerts (the "
            "run's config), one per card, ranked 1..n without gap, a lower rank never above a higher "
            "score. Counts in metadata. Blocking.",
            _within_budget(top_k),
        ),
        TableCheck(
            "alerts_point_to_scores",
            "Every alert of the partition points to a score of scoring.transaction_scores: the same "
            "transaction, business date and model version, with the same card and score. Counts in "
            "metadata. Blocking: an investigator is never sent to a transaction the champion did not score.",
            _point_to_scores,
        ),
        pan_scan(),
    ]

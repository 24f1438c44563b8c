"""Raw checks: per table one step (lib/table_checks.py) with its contract, its PAN-leak scan and its
landed = raw reconciliation; the register's step adds the rejected-files alarm."""

import dagster as dg
import pandas as pd

from fraud_assets.defs.raw import assets as raw_assets
from fraud_assets.defs.raw import schemas
from fraud_assets.lib.table_checks import (
    Counts,
    DayResults,
    TableCheck,
    TableScope,
    contract,
    counts_by_day,
    judged_by_day,
    pan_scan,
    table_checks,
    with_failing_days,
)
from fraud_assets.lib.warehouse import table_exists

ASSETS = {
    raw_assets.file_register: "raw.file_register",
    raw_assets.authorizations: "raw.authorizations",
    raw_assets.chargebacks: "raw.chargebacks",
    raw_assets.cardholders: "raw.cardholders",
    raw_assets.merchants: "raw.merchants",
    raw_assets.fx_rates: "raw.fx_rates",
}


# Each rejected file with the ingested file of the same source, feed and business date that came after
# it (a later landing date; on the same one, a later registration, or a name that sorts after it, the
# `_002` re-send convention), if any: what the producer re-sent in its place.
REJECTED_SQL = """
SELECT r.source_file, r.reason,
       (SELECT min(g.source_file) FROM raw.file_register g
        WHERE g.status = 'ingested' AND g.source = r.source AND g.feed = r.feed
          AND g.business_date = r.business_date
          AND (g.landing_date > r.landing_date
               OR (g.landing_date = r.landing_date AND (g.registered_at > r.registered_at
                   OR (g.registered_at = r.registered_at AND g.source_file > r.source_file))))
       ) AS resent_as
FROM raw.file_register r WHERE r.status = 'rejected' ORDER BY 1
"""
NAMED_IN_DESCRIPTION = 5


def _named(items: list[str], sep: str) -> str:
    """The first NAMED_IN_DESCRIPTION of `items` joined by `sep`, and how many more: what an alert says."""
    more = len(items) - NAMED_IN_DESCRIPTION
    return sep.join(items[:NAMED_IN_DESCRIPTION]) + (f" and {more} more" if more > 0 else "")


def _rejected_files(scope: TableScope) -> dg.AssetCheckResult:
    rejected = scope.conn.execute(REJECTED_SQL).df()
    open_ = rejected[rejected["resent_as"].isna()]
    names = [f"{f} ({r})" for f, r in zip(open_["source_file"], open_["reason"], strict=True)]
    return dg.AssetCheckResult(
        passed=open_.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        # What an alert says: which files, why (names are stored masked).
        description=None
        if open_.empty
        else f"{len(open_)} rejected landing file(s) not re-sent: " + _named(names, ", "),
        metadata={
            "rejected_files": dg.MetadataValue.int(len(rejected)),
            "rejected_not_resent": dg.MetadataValue.int(len(open_)),
            "rejections": dg.MetadataValue.md(
                rejected.fillna("").to_markdown(index=False) if len(rejected) else "_none_"
            ),
        },
    )


no_rejected_files = TableCheck(
    "no_rejected_files",
    "Fails (ERROR, not blocking) while a rejected landing file (unreadable, empty, over a cap, a symlink, "
    "wrongly typed, unrecognised name...: docs/landing-zone.md lists the reasons) has not been re-sent: "
    "the other files flow on, and the failure stays visible until the producer re-sends a good file (an "
    "ingested file of the same source, feed and business date that came after it). Its description names "
    "the files; metadata lists every rejected file with its reason and the file re-sent in its place.",
    _rejected_files,
    blocking=False,
)


LANDED_COUNTS = ["rows_landed", "rows_raw"]


def landed_vs_raw(scope: TableScope, source: str) -> dict[str, Counts]:
    """Each day's (rows landed per the register's ingested files, rows in raw.<source>), in one grouped
    query (one group without partitions)."""
    where, params = scope.filter()
    filt = f" AND {where}" if where else ""
    day = scope.day()
    raw_rows = (
        f"SELECT {day} AS day, count(*) AS n FROM raw.{source} WHERE {where or 'TRUE'} GROUP BY 1"
        if table_exists(scope.conn, f"raw.{source}")
        else "SELECT NULL AS day, 0 AS n WHERE FALSE"
    )
    rows = scope.conn.execute(
        f"""
        WITH l AS (SELECT {day} AS day, sum(rows_landed) AS n FROM raw.file_register
                   WHERE status = 'ingested' AND source = ?{filt} GROUP BY 1),
             r AS ({raw_rows})
        SELECT day, l.n, r.n FROM l FULL JOIN r USING (day)
        """,
        [source, *params, *params],
    ).fetchall()
    return counts_by_day(scope, rows, LANDED_COUNTS)


def _landed_result(c: Counts) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=c["rows_landed"] == c["rows_raw"],
        metadata={**c, "difference": c["rows_raw"] - c["rows_landed"]},
    )


def landed_rows_reconcile(source: str, description: str) -> TableCheck:
    """Rows landed in the ingested `source` files (of the run's business dates) = rows in raw.<source>,
    each business date on its own."""

    def run(scope: TableScope) -> dg.AssetCheckResult | DayResults:
        return judged_by_day(scope, landed_vs_raw(scope, source), _landed_result, LANDED_COUNTS)

    return TableCheck("landed_rows_reconcile", description, run, requires_table=False)


def _reconcile(source: str) -> TableCheck:
    if source == "authorizations":
        return landed_rows_reconcile(
            source,
            "Reconciliation for the partition: rows landed in the ingested authorisation files of this "
            "business date (raw.file_register.rows_landed) = rows in raw.authorizations. Blocking: a lost "
            "or doubled line must not reach cleaning. Both counts in metadata.",
        )
    return landed_rows_reconcile(
        source,
        f"Reconciliation: rows landed in every ingested {source} file = rows in raw.{source}. "
        "Blocking. Both counts in metadata.",
    )


# A feed's day is short when it holds less than this share of the feed's median day over the week
# before: a missing or cut file, not the week's ordinary swing (weekends run ~30 % below weekdays). A day
# with no rows of a feed is short whatever its size; a share is judged only for a feed of at least
# MIN_BASELINE_ROWS a day (below it, the days' own swings are larger than any cut).
SHORT_DAY_SHARE = 0.5
MIN_BASELINE_ROWS = 50
BASELINE_DAYS = 7
# Per run day and feed seen in the week before it: the day's rows and that week's median day.
_FEED_DAYS_SQL = f"""
WITH days AS (SELECT unnest(?::DATE[]) AS business_date),
counts AS (
    SELECT business_date, feed, count(*) AS n FROM raw.authorizations
    WHERE business_date BETWEEN CAST(? AS DATE) - {BASELINE_DAYS} AND CAST(? AS DATE)
    GROUP BY ALL
),
baseline AS (
    SELECT d.business_date, c.feed, median(c.n) AS median_rows
    FROM days d JOIN counts c
        ON c.business_date >= d.business_date - {BASELINE_DAYS} AND c.business_date < d.business_date
    GROUP BY ALL
)
SELECT strftime(b.business_date, '%Y-%m-%d') AS business_date, b.feed, coalesce(c.n, 0) AS rows,
    b.median_rows
FROM baseline b LEFT JOIN counts c USING (business_date, feed)
ORDER BY 1, 2
"""


def _feed_volumes(scope: TableScope) -> dg.AssetCheckResult | DayResults:
    days = scope.partition_keys
    if days is None:
        days = [
            r[0]
            for r in scope.conn.execute(
                "SELECT DISTINCT strftime(business_date, '%Y-%m-%d') FROM raw.authorizations ORDER BY 1"
            ).fetchall()
        ]
    if not days:
        return dg.AssetCheckResult(passed=True, metadata={"note": "no business date to judge"})
    feed_days = scope.conn.execute(_FEED_DAYS_SQL, [sorted(days), min(days), max(days)]).df()
    overall = _volumes_result(feed_days)
    if scope.one_verdict:
        return overall
    # Each day on its own feeds (one query: the baselines of every day of the range are computed at once).
    per_day = {day: _volumes_result(feed_days[feed_days["business_date"] == day]) for day in days}
    return with_failing_days(overall, per_day)


def _volumes_result(feed_days: pd.DataFrame) -> dg.AssetCheckResult:
    below = feed_days["rows"] < SHORT_DAY_SHARE * feed_days["median_rows"]
    short = feed_days[(feed_days["rows"] == 0) | (below & (feed_days["median_rows"] >= MIN_BASELINE_ROWS))]
    cases = [
        f"{r.feed} on {r.business_date}: {r.rows:,} rows (median {r.median_rows:,.0f} over the "
        f"{BASELINE_DAYS} days before)"
        for r in short.itertuples()
    ]
    return dg.AssetCheckResult(
        passed=short.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=None if short.empty else "Short feed day(s): " + _named(cases, "; "),
        metadata={
            "short_feed_days": dg.MetadataValue.int(len(short)),
            "feed_days_judged": dg.MetadataValue.int(len(feed_days)),
            "short": dg.MetadataValue.md(short.to_markdown(index=False) if len(short) else "_none_"),
        },
    )


feed_volumes = TableCheck(
    "feed_volumes",
    "Warns (not blocking) when a processor feed's business date holds no rows, or less than half the rows "
    f"of that feed's median day over the {BASELINE_DAYS} days before (a feed of at least "
    f"{MIN_BASELINE_ROWS} rows a day): a file that has not arrived "
    "(a late or lost file), or one cut short. The rest of the day flows on and is scored; the warning "
    "clears when the missing rows land and the day is ingested again. A feed with no rows in the week "
    "before is not expected. Its description names the feeds and days; metadata lists each short one.",
    _feed_volumes,
    blocking=False,
)


def _checks(asset: dg.AssetsDefinition, table: str) -> list[TableCheck]:
    checks = [contract(schemas.CONTRACTS[table]), pan_scan()]
    if asset is raw_assets.file_register:
        return [*checks, no_rejected_files]
    if asset is raw_assets.authorizations:
        return [*checks, _reconcile("authorizations"), feed_volumes]
    return [*checks, _reconcile(asset.key.path[-1])]


RAW_CHECKS = [table_checks(asset, table, _checks(asset, table)) for asset, table in ASSETS.items()]

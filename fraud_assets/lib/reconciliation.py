"""A per-transaction table against the cleaned transactions of the same business dates: the check that
each transaction has exactly one row (features, scores)."""

import duckdb

from fraud_assets.lib.partitions import dates_filter
from fraud_assets.lib.tables import TRANSACTIONS_TABLE


def transaction_rows(conn: duckdb.DuckDBPyConnection, table: str, days: str) -> tuple[int, int, int, int]:
    """(duplicate rows, transactions without a row, rows without a transaction, rows) of `table` over the
    business dates `days` selects (a SQL filter on `business_date`). A duplicate is a second row of a
    transaction anywhere in the table, another day's run included."""
    # One full outer join for missing and extra rows; the rest of the table is probed only for the ids of
    # these days.
    duplicates, missing, extra, rows = conn.execute(
        f"""
        WITH t AS (SELECT transaction_id, business_date FROM {table} WHERE {days}),
             c AS (SELECT transaction_id, business_date FROM {TRANSACTIONS_TABLE} WHERE {days}),
             joined AS (SELECT t.transaction_id AS t_id, c.transaction_id AS c_id
                        FROM t FULL OUTER JOIN c USING (transaction_id, business_date))
        SELECT (SELECT count(*) - count(DISTINCT transaction_id) FROM t)
                   + (SELECT count(*) FROM {table}
                      WHERE NOT ({days}) AND transaction_id IN (SELECT transaction_id FROM t)),
               count(*) FILTER (WHERE t_id IS NULL),
               count(*) FILTER (WHERE c_id IS NULL),
               count(t_id)
        FROM joined
        """
    ).fetchone()
    return int(duplicates), int(missing), int(extra), int(rows)


def transaction_rows_by_day(
    conn: duckdb.DuckDBPyConnection, table: str, days: list[str]
) -> dict[str, tuple[int, int, int, int]]:
    """`transaction_rows` of each business date of `days` (ISO dates), in one query: a day's duplicates are
    its transactions' second rows, in that day or anywhere else in the table."""
    dates = dates_filter(days)
    found = conn.execute(
        f"""
        WITH t AS (SELECT transaction_id, business_date FROM {table} WHERE {dates}),
             c AS (SELECT transaction_id, business_date FROM {TRANSACTIONS_TABLE} WHERE {dates}),
             joined AS (SELECT business_date, t.transaction_id AS t_id, c.transaction_id AS c_id
                        FROM t FULL OUTER JOIN c USING (transaction_id, business_date)),
             ids AS (SELECT DISTINCT transaction_id, business_date FROM t),
             elsewhere AS (SELECT ids.business_date, count(*) AS n FROM ids JOIN {table} AS o
                           ON o.transaction_id = ids.transaction_id AND o.business_date <> ids.business_date
                           GROUP BY 1),
             within AS (SELECT business_date, count(*) - count(DISTINCT transaction_id) AS n
                        FROM t GROUP BY 1),
             counts AS (SELECT business_date, count(*) FILTER (WHERE t_id IS NULL) AS missing,
                               count(*) FILTER (WHERE c_id IS NULL) AS extra, count(t_id) AS rows
                        FROM joined GROUP BY 1)
        SELECT CAST(business_date AS VARCHAR), coalesce(within.n, 0) + coalesce(elsewhere.n, 0),
               missing, extra, rows
        FROM counts LEFT JOIN within USING (business_date) LEFT JOIN elsewhere USING (business_date)
        """
    ).fetchall()
    by_day = {day: (int(d), int(m), int(e), int(r)) for day, d, m, e, r in found}
    return {day: by_day.get(day, (0, 0, 0, 0)) for day in days}

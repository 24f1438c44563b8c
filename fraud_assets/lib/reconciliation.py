"""A per-transaction table against the cleaned transactions of the same business dates: the check that
each transaction has exactly one row (features, scores)."""

import duckdb

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

"""Contract validation: pandera on pandas frames (the former check) vs the same contract in DuckDB.

Builds raw.authorizations and cleaned.transactions at handbook size (183 days, ~1.77M rows; `--quick`:
10 days) with DuckDB from `range()` - valid rows shaped like the real tables - and validates every
partition of each table, side by side in one process:
  - pandas: read 16 days at a time into pandas and `model.validate(df, lazy=True)` (the former check);
  - engine: `evaluate(compile_contract(model))` over the whole range in DuckDB (the check now).
The engine is timed as the median of 3 runs; the pandas path once (it takes tens of seconds). Wall
time and process CPU time are both reported: on a shared machine the CPU ratio is the steadier one.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import pandera.errors

from fraud_assets.defs.cleaned.schemas import TransactionsModel
from fraud_assets.defs.raw.schemas import COLUMNS, RawAuthorizationsModel
from fraud_assets.lib.contract_sql import compile_contract, evaluate

ROWS_PER_DAY = 9_700
PANDAS_DAYS_PER_BATCH = 16
ENGINE_REPEATS = 3

# One row per i: day = i / ROWS_PER_DAY; every value satisfies both contracts.
_BASE = """
SELECT i AS transaction_id,
       DATE '2018-04-01' + CAST(i // {per_day} AS INTEGER) AS business_date,
       CAST(DATE '2018-04-01' + CAST(i // {per_day} AS INTEGER) AS TIMESTAMP)
           + to_seconds(i % 86400) AS tx_datetime,
       sha256(CAST(i % 5000 AS VARCHAR)) AS card_token,
       CAST(400000 + i % 5000 AS VARCHAR) AS pan_bin,
       lpad(CAST(i % 10000 AS VARCHAR), 4, '0') AS pan_last4,
       i % 10000 AS terminal_id,
       5.0 + (i % 9000) / 100.0 AS tx_amount,
       ['EUR', 'USD', 'GBP'][1 + i % 3] AS currency,
       [1.0, 1.1, 0.9][1 + i % 3] AS fx_rate,
       ['card_present', 'ecommerce'][1 + i % 2] AS channel,
       CASE WHEN i % 2 = 1 THEN ['Y', 'N', 'A', 'U'][1 + i % 4] END AS three_ds,
       ['acq_a', 'acq_b'][1 + i % 2] AS feed,
       'authorizations/' || CAST(DATE '2018-04-01' + CAST(i // {per_day} AS INTEGER) AS VARCHAR)
           || '/' || ['acq_a', 'acq_b'][1 + i % 2] || '.csv.gz' AS source_file,
       1 + i // 2 % ({per_day} // 2 + 1) AS row_number
FROM range({rows}) r(i)
"""


def _build(conn: duckdb.DuckDBPyConnection, days: int) -> None:
    base = _BASE.format(per_day=ROWS_PER_DAY, rows=days * ROWS_PER_DAY)
    conn.execute("CREATE SCHEMA IF NOT EXISTS cleaned; CREATE SCHEMA IF NOT EXISTS raw")
    conn.execute(
        f"""CREATE TABLE cleaned.transactions AS SELECT transaction_id, CAST(business_date AS DATE)
        AS business_date, tx_datetime, tx_datetime AS tx_datetime_local, card_token, pan_bin, pan_last4,
        terminal_id, tx_amount, tx_amount * fx_rate AS amount_original, currency, fx_rate, channel,
        three_ds, feed, source_file, row_number FROM ({base})"""
    )
    raw = {
        "transaction_id": "CAST(transaction_id AS VARCHAR)",
        "tx_datetime": "strftime(tx_datetime, '%Y-%m-%dT%H:%M:%S')",
        "terminal_id": "CAST(terminal_id AS VARCHAR)",
        "amount": "CAST(tx_amount AS VARCHAR)",
        "pan_valid": "TRUE",
        "pan_masked": "pan_bin || '******' || pan_last4",
        "message_type": "'0100'",
        "file_sha256": "sha256(source_file)",
        "landing_date": "CAST(business_date AS DATE) + 1",
        "ingested_at": "CAST(business_date AS TIMESTAMP) + INTERVAL 1 DAY",
        "business_date": "CAST(business_date AS DATE)",
    }
    as_is = {"card_token", "pan_bin", "pan_last4", "currency", "channel", "three_ds", "feed", "source_file"}
    as_is |= {"row_number"}
    values = {c: raw.get(c, c if c in as_is else "NULL") for c, _ in COLUMNS["raw.authorizations"]}
    select = ", ".join(f"CAST({values[c]} AS {t}) AS {c}" for c, t in COLUMNS["raw.authorizations"])
    conn.execute(f"CREATE TABLE raw.authorizations AS SELECT {select} FROM ({base})")


def _pandas_seconds(
    conn: duckdb.DuckDBPyConnection, model, table: str, days: list[str]
) -> tuple[float, float, int]:
    started, cpu, failures = time.perf_counter(), time.process_time(), 0
    for start in range(0, len(days), PANDAS_DAYS_PER_BATCH):
        df = conn.execute(
            f"SELECT * FROM {table} WHERE CAST(business_date AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))",
            [days[start : start + PANDAS_DAYS_PER_BATCH]],
        ).df()
        try:
            model.validate(df, lazy=True)
        except pandera.errors.SchemaErrors as exc:
            failures += len(exc.failure_cases)
    return time.perf_counter() - started, time.process_time() - cpu, failures


def _engine_seconds(
    conn: duckdb.DuckDBPyConnection, model, table: str, days: list[str]
) -> tuple[float, float, int]:
    contract, times, cpus, failures = compile_contract(model), [], [], 0
    for _ in range(ENGINE_REPEATS):
        started, cpu = time.perf_counter(), time.process_time()
        report = evaluate(
            conn, contract, table, "CAST(business_date AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))", [days]
        )
        times.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
        failures = sum(n for _, _, n in report.failures)
    return statistics.median(times), statistics.median(cpus), failures


def _row(metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"bench": "contracts", "metric": metric, "value": value, "unit": unit, "note": note}


def run(args) -> list[dict]:
    days = 10 if args.quick else 183
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        conn = duckdb.connect(str(Path(tmp) / "contracts.duckdb"))
        _build(conn, days)
        keys = [
            str(r[0])
            for r in conn.execute(
                "SELECT DISTINCT business_date FROM raw.authorizations ORDER BY 1"
            ).fetchall()
        ]
        for table, model in (
            ("raw.authorizations", RawAuthorizationsModel),
            ("cleaned.transactions", TransactionsModel),
        ):
            n = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            old, old_cpu, old_failures = _pandas_seconds(conn, model, table, keys)
            new, new_cpu, new_failures = _engine_seconds(conn, model, table, keys)
            note = f"{n:,} rows, {days} days; failure cases pandas {old_failures}, engine {new_failures}"
            rows += [
                _row(f"{table} pandas s", round(old, 2), "s", note),
                _row(f"{table} engine s", round(new, 2), "s", f"median of {ENGINE_REPEATS}"),
                _row(f"{table} speed-up", round(old / new, 1), "x", "wall time"),
                _row(f"{table} pandas cpu s", round(old_cpu, 2), "s", "process CPU, all threads"),
                _row(f"{table} engine cpu s", round(new_cpu, 2), "s", "process CPU, all threads"),
                _row(f"{table} cpu ratio", round(old_cpu / new_cpu, 1), "x", "less work, whatever the load"),
                _row(f"{table} engine rows/s", int(n / new), "rows/s"),
            ]
        conn.close()
    return rows

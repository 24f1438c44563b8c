"""Notebook access (docs/notebooks.md): data scientists query while the platform writes, and neither
side ever sees a lock error. The snippet in the docs is the code under test."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from fraud_assets.lib import warehouse
from fraud_assets.notebook import (
    _SNAPSHOTS,
    close,
    connect,
    exported_tables,
    refresh,
    tables,
    warehouse_read_only,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "notebooks.md"
ROWS_PER_DAY = 400
DAYS = [f"2018-04-{d:02d}" for d in range(1, 9)]

# A stand-in for the daemon: one process that keeps rewriting partitions and a reference table, each
# write in its own short connection as DuckDBResource does inside a step. Exit code 0 = no error.
WRITER = textwrap.dedent(
    """
    import sys, time
    import duckdb
    from fraud_assets.lib import warehouse

    path, rounds, days = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
    rows = int(sys.argv[4])
    for r in range(rounds):
        for day in days:
            with duckdb.connect(path) as con:
                sql = f'''
                    SELECT ({r} * 1000000 + i)::BIGINT AS transaction_id, DATE '{day}' AS business_date,
                           (i % 97 + 1)::DOUBLE AS tx_amount, {r} AS write_round
                    FROM range({rows}) t(i)'''
                warehouse.replace_partition(con, "cleaned.transactions", sql, "business_date", [day])
                cards = f"SELECT 'tok' || i AS card_token, {r} AS write_round FROM range(50) t(i)"
                warehouse.replace_table(con, "cleaned.cards", cards)
        print(f"round {r} done", flush=True)
    """
)


def notebook_snippet() -> str:
    """The python block that follows the `notebook-snippet` marker in docs/notebooks.md."""
    text = DOCS.read_text()
    match = re.search(r"<!-- notebook-snippet:.*?-->\s*```python\n(.*?)```", text, re.S)
    assert match, "docs/notebooks.md lost its marked notebook snippet"
    return match.group(1)


def write_world(data_dir: Path, days: list[str], rows: int = ROWS_PER_DAY, round_: int = 0) -> None:
    """Write partitions and a reference table in this process, as one short-lived writer would."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        for day in days:
            sql = f"""
                SELECT ({round_} * 1000000 + i)::BIGINT AS transaction_id, DATE '{day}' AS business_date,
                       (i % 97 + 1)::DOUBLE AS tx_amount, {round_} AS write_round
                FROM range({rows}) t(i)"""
            warehouse.replace_partition(con, "cleaned.transactions", sql, "business_date", [day])
        warehouse.replace_table(
            con,
            "cleaned.cards",
            f"SELECT 'tok' || i AS card_token, {round_} AS write_round FROM range(50) t(i)",
        )


def test_docs_snippet_queries_while_a_writer_keeps_writing_without_lock_errors(data_dir, capsys):
    write_world(data_dir, DAYS[:2])  # the snippet needs the table to exist
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            str(data_dir / "warehouse.duckdb"),
            "6",
            ",".join(DAYS),
            str(ROWS_PER_DAY),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    snippet = compile(notebook_snippet(), str(DOCS), "exec")
    queries, seen_days = 0, set()
    try:
        while writer.poll() is None or queries < 3:
            namespace: dict[str, object] = {}
            exec(snippet, namespace)  # noqa: S102 - the documented snippet is the code under test
            daily = namespace["daily"]
            # Atomic exports: a partition is always complete, never half-rewritten.
            assert set(daily["transactions"]) == {ROWS_PER_DAY}, daily
            seen_days |= {str(d)[:10] for d in daily["business_date"]}
            close(namespace["con"])
            queries += 1
    finally:
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, f"the writer failed while notebooks read:\n{err}"
    assert "round 5 done" in out
    assert queries >= 3
    # Each connect() in the snippet sees the partitions written before it.
    assert seen_days > set(DAYS[:2])
    assert "cleaned.transactions" in capsys.readouterr().out  # the snippet's tables() listing


def test_connect_exposes_each_exported_table_under_its_warehouse_name(data_dir):
    write_world(data_dir, DAYS[:3])
    con = connect(data_dir)
    views = {
        f"{s}.{t}"
        for s, t in con.sql("SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    }
    assert {"cleaned.transactions", "cleaned.cards"} <= views
    assert con.execute("SELECT count(*) FROM cleaned.transactions").fetchone()[0] == 3 * ROWS_PER_DAY
    assert con.execute("SELECT count(*) FROM cleaned.cards").fetchone()[0] == 50


def test_partition_filter_reads_only_the_matching_files(data_dir):
    write_world(data_dir, DAYS[:4])
    con = connect(data_dir)
    plan = "".join(
        str(v)
        for _, v in con.sql(
            "EXPLAIN SELECT count(*) FROM cleaned.transactions WHERE business_date = DATE '2018-04-02'"
        ).fetchall()
    )
    assert "Scanning Files: 1/4" in plan
    assert (
        con.execute("SELECT typeof(business_date) FROM cleaned.transactions LIMIT 1").fetchone()[0] == "DATE"
    )


def test_a_connection_keeps_reading_its_snapshot_while_the_platform_rewrites_the_exports(data_dir):
    write_world(data_dir, DAYS[:2], round_=1)
    con = connect(data_dir)
    write_world(data_dir, DAYS[:3], round_=2)
    got = con.execute("SELECT count(DISTINCT business_date), max(write_round) FROM cleaned.transactions")
    assert got.fetchone() == (2, 1)


def test_refresh_brings_in_partitions_written_after_connect(data_dir):
    write_world(data_dir, DAYS[:1], round_=1)
    con = connect(data_dir)
    write_world(data_dir, DAYS[:3], round_=2)
    refresh(con, data_dir)
    got = con.execute("SELECT count(DISTINCT business_date), min(write_round) FROM cleaned.transactions")
    assert got.fetchone() == (3, 2)


def test_close_removes_the_snapshot_and_leaves_the_exports(data_dir):
    write_world(data_dir, DAYS[:1])
    con = connect(data_dir)
    snapshot = _SNAPSHOTS[id(con)]
    assert any(snapshot.rglob("data.parquet"))
    close(con)
    assert not snapshot.exists()
    assert len(exported_tables(data_dir)) == 2


def test_refresh_adds_tables_created_after_connect(data_dir):
    con = connect(data_dir)
    assert exported_tables(data_dir) == []
    write_world(data_dir, DAYS[:1])
    assert refresh(con, data_dir) == ["cleaned.cards", "cleaned.transactions"]
    assert con.execute("SELECT count(*) FROM cleaned.cards").fetchone()[0] == 50


def test_tables_lists_partitioning_file_counts_and_export_time(data_dir):
    write_world(data_dir, DAYS[:2])
    listing = tables(data_dir).set_index("table")
    assert listing.loc["cleaned.transactions", "partitioned"]
    assert listing.loc["cleaned.transactions", "files"] == 2
    assert not listing.loc["cleaned.cards", "partitioned"]
    assert listing["last_export_utc"].notna().all()


def test_connect_never_opens_the_warehouse_file_so_a_writer_is_not_blocked(data_dir):
    write_world(data_dir, DAYS[:1])
    con = connect(data_dir)
    con.sql("SELECT count(*) FROM cleaned.transactions").fetchall()
    # While the notebook connection stays open, a writer still gets the file at once.
    started = time.monotonic()
    write_world(data_dir, DAYS[1:2])
    assert time.monotonic() - started < 30
    paths = [r[0] for r in con.sql("SELECT path FROM duckdb_databases() WHERE path IS NOT NULL").fetchall()]
    assert not any("warehouse.duckdb" in p for p in paths)


def test_an_open_read_only_warehouse_connection_blocks_writers(data_dir):
    """Why the docs keep the read-only alternative short-lived."""
    write_world(data_dir, DAYS[:1])
    with warehouse_read_only(data_dir) as wh:
        assert wh.execute("SELECT count(*) FROM cleaned.transactions").fetchone()[0] == ROWS_PER_DAY
        attempt = subprocess.run(
            [sys.executable, "-c", f"import duckdb; duckdb.connect({str(data_dir / 'warehouse.duckdb')!r})"],
            capture_output=True,
            text=True,
        )
    assert attempt.returncode != 0
    assert "lock" in attempt.stderr.lower()


def test_read_only_connection_refuses_writes(data_dir):
    write_world(data_dir, DAYS[:1])
    with warehouse_read_only(data_dir) as wh, pytest.raises(duckdb.Error):
        wh.execute("DELETE FROM cleaned.transactions")


def test_views_read_a_partition_written_before_a_column_was_added(data_dir):
    write_world(data_dir, DAYS[:1])
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        con.execute("ALTER TABLE cleaned.transactions ADD COLUMN channel VARCHAR")
        warehouse.replace_partition(
            con,
            "cleaned.transactions",
            "SELECT 9::BIGINT AS transaction_id, DATE '2018-04-09' AS business_date, 'ecommerce' AS channel",
            "business_date",
            ["2018-04-09"],
        )
    nb = connect(data_dir)
    got = nb.sql(
        "SELECT business_date, count(channel) FROM cleaned.transactions GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert [r[1] for r in got] == [0, 1]

"""lib/warehouse.transaction: the one BEGIN / COMMIT / ROLLBACK every writer of the warehouse uses."""

from __future__ import annotations

import duckdb
import pytest

from fraud_assets.lib.warehouse import transaction


@pytest.fixture
def conn(tmp_path):
    c = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    c.execute("CREATE TABLE t (v INTEGER)")
    yield c
    c.close()


def test_a_block_that_ends_is_committed(conn):
    with transaction(conn):
        conn.execute("INSERT INTO t VALUES (1)")
    other = conn.cursor()  # another connection sees only committed rows
    assert other.execute("SELECT v FROM t").fetchall() == [(1,)]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_block_that_fails_is_rolled_back_and_the_error_raised(conn, error):
    def write_then_fail():
        with transaction(conn):
            conn.execute("INSERT INTO t VALUES (2)")
            conn.execute("DROP TABLE t")
            raise error

    with pytest.raises(type(error)):
        write_then_fail()
    assert conn.execute("SELECT count(*) FROM t").fetchall() == [(0,)]
    with transaction(conn):  # the connection is usable again: nothing was left open
        conn.execute("INSERT INTO t VALUES (3)")
    assert conn.execute("SELECT v FROM t").fetchall() == [(3,)]


def test_a_commit_that_fails_raises_its_own_error_not_the_rollbacks(conn):
    """DuckDB ends a transaction whose COMMIT failed; a ROLLBACK after it would raise "no transaction is
    active" and hide why the write failed."""
    conn.execute("CREATE TABLE k (v INTEGER PRIMARY KEY)")
    mine, other = conn.cursor(), conn.cursor()

    def write_a_key_another_writer_takes_first():
        with transaction(mine):
            mine.execute("INSERT INTO k VALUES (1)")
            with transaction(other):
                other.execute("INSERT INTO k VALUES (1)")

    with pytest.raises(duckdb.TransactionException, match="Failed to commit"):
        write_a_key_another_writer_takes_first()
    assert conn.execute("SELECT count(*) FROM k").fetchall() == [(1,)]
    with transaction(mine):  # the cursor is usable again
        mine.execute("INSERT INTO k VALUES (2)")

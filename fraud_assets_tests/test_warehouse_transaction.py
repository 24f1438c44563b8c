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

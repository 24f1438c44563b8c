"""lib/warehouse.replace_partition's Parquet exports: one file per partition, written in one pass; its
batched form (replace_partition_batches) writes the same way."""

from __future__ import annotations

import io
import weakref
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from fraud_assets.lib.warehouse import replace_partition, replace_partition_batches

SOURCE = """SELECT range AS id, DATE '2018-04-01' + CAST(range % 3 AS INTEGER) AS business_date,
                   range * 1.5 AS amount
            FROM range(30)"""


@pytest.fixture
def conn(tmp_path: Path):
    c = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield c
    c.close()


def _export_dir(tmp_path: Path) -> Path:
    return tmp_path / "exports" / "demo" / "events"


def test_each_partition_is_exported_to_its_own_file_with_the_table_types(conn, tmp_path):
    keys = ["2018-04-01", "2018-04-02", "2018-04-03"]
    assert replace_partition(conn, "demo.events", SOURCE, "business_date", keys) == 30
    for key in keys:
        f = _export_dir(tmp_path) / f"business_date={key}" / "data.parquet"
        rows = conn.execute(
            f"SELECT count(*), min(CAST(business_date AS VARCHAR)), max(CAST(business_date AS VARCHAR)), "
            f"any_value(typeof(business_date)) FROM read_parquet('{f}', hive_partitioning = false)"
        ).fetchone()
        assert rows == (10, key, key, "DATE")
    assert not [p for p in _export_dir(tmp_path).iterdir() if p.name.startswith(".")]  # no staging left


def test_a_partition_without_rows_is_exported_as_an_empty_file(conn, tmp_path):
    replace_partition(conn, "demo.events", SOURCE, "business_date", ["2018-04-01", "2018-04-09"])
    f = _export_dir(tmp_path) / "business_date=2018-04-09" / "data.parquet"
    assert conn.execute(f"SELECT count(*) FROM read_parquet('{f}')").fetchone()[0] == 0


def test_rewriting_one_partition_leaves_the_other_files_alone(conn, tmp_path):
    replace_partition(conn, "demo.events", SOURCE, "business_date", ["2018-04-01", "2018-04-02"])
    other = _export_dir(tmp_path) / "business_date=2018-04-02" / "data.parquet"
    before = other.stat().st_mtime_ns
    replace_partition(
        conn, "demo.events", SOURCE.replace("range * 1.5", "range * 2.0"), "business_date", ["2018-04-01"]
    )
    assert other.stat().st_mtime_ns == before
    f = _export_dir(tmp_path) / "business_date=2018-04-01" / "data.parquet"
    assert conn.execute(f"SELECT max(amount) FROM read_parquet('{f}')").fetchone()[0] == 27 * 2.0


def test_a_partition_key_cannot_inject_sql(conn):
    replace_partition(conn, "demo.events", SOURCE, "business_date", ["2018-04-01"])
    before = conn.execute("SELECT count(*) FROM demo.events").fetchone()[0]
    with pytest.raises(duckdb.ConversionException):
        replace_partition(conn, "demo.events", SOURCE, "business_date", ["2018-04-01') OR (1=1"])
    assert conn.execute("SELECT count(*) FROM demo.events").fetchone()[0] == before  # nothing deleted


def _arrow(amount_scale: float):
    return duckdb.sql(SOURCE.replace("range * 1.5", f"range * {amount_scale}")).to_arrow_table()


def test_an_arrow_source_is_exported_per_partition_as_the_sql_one_is(conn, tmp_path):
    keys = ["2018-04-01", "2018-04-02", "2018-04-03", "2018-04-09"]
    assert replace_partition(conn, "demo.events", _arrow(1.5), "business_date", keys) == 30
    for key, rows in zip(keys, (10, 10, 10, 0), strict=True):
        f = _export_dir(tmp_path) / f"business_date={key}" / "data.parquet"
        read = f"read_parquet('{f}', hive_partitioning = false)"
        assert conn.execute(f"SELECT count(*) FROM {read}").fetchone() == (rows,)
    every = f"read_parquet('{_export_dir(tmp_path)}/*/data.parquet', hive_partitioning = false)"
    types = conn.execute(f"DESCRIBE SELECT * FROM {every}").fetchall()
    assert {r[0]: r[1] for r in types}["business_date"] == "DATE"
    assert not [p for p in _export_dir(tmp_path).iterdir() if p.name.startswith(".")]  # no staging left


def test_an_arrow_write_that_rolls_back_publishes_no_file(conn, tmp_path):
    """The Parquet files of an Arrow source are written beside the transaction; they replace the exports
    only once it committed."""
    conn.execute("CREATE SCHEMA demo")
    conn.execute(
        "CREATE TABLE demo.events (id BIGINT, business_date DATE, amount DOUBLE CHECK (amount < 50))"
    )
    replace_partition(conn, "demo.events", _arrow(1.5), "business_date", ["2018-04-01"])
    f = _export_dir(tmp_path) / "business_date=2018-04-01" / "data.parquet"
    before, table = f.read_bytes(), conn.execute("SELECT * FROM demo.events ORDER BY id").fetchall()
    with pytest.raises(duckdb.ConstraintException):
        replace_partition(conn, "demo.events", _arrow(2.0), "business_date", ["2018-04-01"])
    assert f.read_bytes() == before
    assert conn.execute("SELECT * FROM demo.events ORDER BY id").fetchall() == table
    assert not [p for p in _export_dir(tmp_path).iterdir() if p.name.startswith(".")]  # no staging left


EVENTS_COLUMNS = [("id", "BIGINT"), ("business_date", "DATE"), ("amount", "DOUBLE")]


def _day_batches(conn, days: list[str]):
    """Batches built from the connection being written, one day each (as scoring reads its features)."""
    for day in days:
        yield conn.execute(f"SELECT * FROM ({SOURCE}) WHERE business_date = DATE '{day}'").df()


def test_batches_replace_the_partitions_and_export_them_as_one_source_would(conn, tmp_path):
    keys = ["2018-04-01", "2018-04-02", "2018-04-03"]
    replace_partition(conn, "demo.events", SOURCE, "business_date", keys)
    whole = conn.execute("SELECT * FROM demo.events ORDER BY id").fetchall()
    files = {k: (_export_dir(tmp_path) / f"business_date={k}" / "data.parquet").read_bytes() for k in keys}
    conn.execute("DELETE FROM demo.events WHERE id < 10")  # stale rows the replacement must remove
    n = replace_partition_batches(
        conn, "demo.events", EVENTS_COLUMNS, _day_batches(conn, keys), "business_date", keys
    )
    assert n == 30
    assert conn.execute("SELECT * FROM demo.events ORDER BY id").fetchall() == whole
    for k in keys:
        exported = pd.read_parquet(_export_dir(tmp_path) / f"business_date={k}" / "data.parquet")
        assert sorted(exported["id"]) == sorted(pd.read_parquet(io.BytesIO(files[k]))["id"])


def test_no_batch_creates_the_declared_table_and_empty_partition_files(conn, tmp_path):
    assert (
        replace_partition_batches(conn, "demo.events", EVENTS_COLUMNS, [], "business_date", ["2018-04-01"])
        == 0
    )
    assert conn.execute("DESCRIBE demo.events").fetchall()[1][:2] == ("business_date", "DATE")
    empty = pd.read_parquet(_export_dir(tmp_path) / "business_date=2018-04-01" / "data.parquet")
    assert empty.empty
    assert list(empty.columns) == ["id", "business_date", "amount"]


def test_a_batch_that_fails_part_way_leaves_each_day_whole(conn, tmp_path):
    """Each batch is its own transaction: the days written before the failure hold their new rows, the
    failing day and the later ones their previous rows and files; no day holds a mix."""
    keys = ["2018-04-01", "2018-04-02", "2018-04-03"]
    # The previous rows, told apart from the new by their amount.
    previous = f"SELECT id, business_date, CAST(-1 AS DOUBLE) AS amount FROM ({SOURCE})"
    replace_partition(conn, "demo.events", previous, "business_date", keys)
    f = _export_dir(tmp_path) / "business_date=2018-04-03" / "data.parquet"
    exported = f.read_bytes()

    def failing():
        yield from _day_batches(conn, keys[:2])
        raise RuntimeError("model failed on the third day")

    with pytest.raises(RuntimeError, match="third day"):
        replace_partition_batches(conn, "demo.events", EVENTS_COLUMNS, failing(), "business_date", keys)
    by_day = conn.execute(
        "SELECT CAST(business_date AS VARCHAR), count(*), min(amount) >= 0, max(amount) >= 0 "
        "FROM demo.events GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert by_day == [
        ("2018-04-01", 10, True, True),
        ("2018-04-02", 10, True, True),
        ("2018-04-03", 10, False, False),
    ]
    assert f.read_bytes() == exported


def test_a_day_no_batch_holds_is_emptied_and_a_day_outside_the_run_refused(conn, tmp_path):
    keys = ["2018-04-01", "2018-04-02", "2018-04-03"]
    replace_partition(conn, "demo.events", SOURCE, "business_date", keys)
    n = replace_partition_batches(
        conn, "demo.events", EVENTS_COLUMNS, _day_batches(conn, keys[:1]), "business_date", keys[:2]
    )
    assert n == 10
    counts = conn.execute(
        "SELECT CAST(business_date AS VARCHAR), count(*) FROM demo.events GROUP BY 1 ORDER BY 1"
    )
    assert counts.fetchall() == [("2018-04-01", 10), ("2018-04-03", 10)]  # 04-02: in the run, no rows now
    empty = pd.read_parquet(_export_dir(tmp_path) / "business_date=2018-04-02" / "data.parquet")
    assert empty.empty
    with pytest.raises(ValueError, match="outside the run"):
        replace_partition_batches(
            conn, "demo.events", EVENTS_COLUMNS, _day_batches(conn, keys[2:]), "business_date", keys[:1]
        )
    assert conn.execute("SELECT count(*) FROM demo.events").fetchone()[0] == 20


def test_a_day_split_over_two_batches_is_refused_before_its_second_part_is_written(conn, tmp_path):
    """Its first part would stand committed alone (the day's previous rows gone, half its new ones)."""
    keys = ["2018-04-01", "2018-04-02"]
    replace_partition(conn, "demo.events", SOURCE, "business_date", keys)
    day = conn.execute(f"SELECT * FROM ({SOURCE}) WHERE business_date = DATE '2018-04-01'").df()
    halves = [day.iloc[:5], day.iloc[5:]]
    with pytest.raises(ValueError, match="an earlier batch wrote"):
        replace_partition_batches(conn, "demo.events", EVENTS_COLUMNS, halves, "business_date", keys)


def test_only_date_partitions_are_written_in_batches(conn):
    conn.execute("CREATE SCHEMA demo")
    conn.execute("CREATE TABLE demo.stamped (id BIGINT, business_date TIMESTAMP)")
    with pytest.raises(ValueError, match="TIMESTAMP"):
        replace_partition_batches(
            conn, "demo.stamped", [("id", "BIGINT"), ("business_date", "TIMESTAMP")], [], "business_date", []
        )


def test_each_batch_is_released_once_written(conn, tmp_path):
    """Memory holds one batch, whatever the range: a DataFrame registered inside an open transaction
    stays referenced by DuckDB until COMMIT (a 100M-row backfill of scores in one transaction ran out of
    memory so)."""
    keys = [f"2018-04-{d:02d}" for d in range(1, 7)]
    written = []

    def batches():
        for i, key in enumerate(keys):
            if i >= 2:
                assert written[i - 2]() is None, f"batch {i - 2} still referenced while batch {i} is built"
            frame = pd.DataFrame({"id": [i], "business_date": [pd.Timestamp(key).date()], "amount": [1.0]})
            written.append(weakref.ref(frame))
            yield frame

    n = replace_partition_batches(conn, "demo.events", EVENTS_COLUMNS, batches(), "business_date", keys)
    assert n == 6

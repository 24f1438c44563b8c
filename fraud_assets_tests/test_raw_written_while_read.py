"""A landing file written in place while the platform reads it (time of check / time of use): what gets
stored is only ever bytes the register judged, and the file is judged again next time.

A producer (or an attacker with write access to its own drop folder) can rewrite a file without
renaming it; the inode stays, so handing DuckDB `/dev/fd/N` does not protect against it. Each test
rewrites the file at the worst moment through a hook on the function that reads it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraud_assets.defs.raw import register as register_module
from fraud_assets.defs.raw import snapshots, text_reader
from fraud_assets.defs.raw.assets import build_register
from fraud_assets.lib.pan import contains_pan
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

CARDHOLDERS = f"cardholders/{s.DAY}/cardholders_{s.DAY}.parquet"


def hostile_snapshot(size: int | None = None) -> bytes:
    """A cardholders snapshot with a card number as customer_id (the register refuses it), padded by a
    column the platform does not read to `size` bytes when given."""
    pad = 0
    for _ in range(16):
        table = pa.table({"customer_id": [int(s.PANS[1])], "pan": [s.PANS[1]], "note": ["x" * pad]})
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="none", write_statistics=False, store_schema=False)
        data = buf.getvalue()
        if size is None or len(data) == size:
            return data
        pad = max(0, pad + size - len(data))
    raise AssertionError("could not pad the snapshot to the size asked")


def rewrite_in_place(path: Path, content: bytes, keep_mtime: bool = False) -> None:
    """New content under the same inode (no rename), the mtime set back when asked."""
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.truncate(0)
        fh.write(content)
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def materialise(data_dir: Path, *keys: str) -> dg.ExecuteInJobResult:
    defs = s.defs_for(data_dir)
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys]),
        resources=build_resources(data_dir, TEST_PAN_KEY),
        partition_key=s.DAY if "raw/authorizations" in keys else None,
        raise_on_error=False,
    )


def failure_of(result: dg.ExecuteInJobResult) -> str:
    return " ".join(
        e.step_failure_data.error.message
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data
    )


def rows_of(data_dir: Path, table: str) -> pd.DataFrame:
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        exists = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema || '.' || table_name = ?",
            [table],
        ).fetchone()[0]
        return conn.execute(f"SELECT * FROM {table}").df() if exists else pd.DataFrame()


def test_a_snapshot_rewritten_in_place_while_raw_reads_it_stores_nothing(data_dir, monkeypatch):
    """The register judged the snapshot; then, after raw/cardholders checked its hash and before DuckDB
    read it, it was rewritten with a card number as customer_id: that card must not reach the table."""
    s.write_reference(data_dir)
    assert materialise(data_dir, "raw/file_register").success
    path = data_dir / "landing" / CARDHOLDERS
    select = snapshots.snapshot_select

    def rewritten_first(conn, engine_path, feed):
        rewrite_in_place(path, hostile_snapshot())
        return select(conn, engine_path, feed)

    monkeypatch.setattr(snapshots, "snapshot_select", rewritten_first)
    result = materialise(data_dir, "raw/cardholders")
    assert "written to while it was read" in failure_of(result)
    stored = rows_of(data_dir, "raw.cardholders")
    assert not contains_pan(stored.astype(str).to_csv())


def test_an_authorisation_file_rewritten_in_place_while_raw_reads_it_stores_nothing(data_dir, monkeypatch):
    s.write_reference(data_dir)
    path = s.write_acq_a(data_dir, [s.a_row(1)])
    assert materialise(data_dir, "raw/file_register").success
    stage_rows = text_reader.stage_rows

    def rewritten_first(*args, **kwargs):
        rewrite_in_place(path, path.read_bytes().replace(b"10.00", b"99.00"))
        return stage_rows(*args, **kwargs)

    monkeypatch.setattr(text_reader, "stage_rows", rewritten_first)
    result = materialise(data_dir, "raw/authorizations")
    assert "written to while it was read" in failure_of(result)
    assert "99.00" not in set(rows_of(data_dir, "raw.authorizations").get("amount", []))


@pytest.mark.parametrize("keep_mtime", [False, True])
def test_a_snapshot_rewritten_while_the_register_reads_it_is_judged_again(data_dir, monkeypatch, keep_mtime):
    """Rewritten after the register's scan but before its hash (same size, mtime set back): a verdict on
    the old bytes must not vouch for the new ones; the next register judges the new bytes."""
    s.write_reference(data_dir)
    path = data_dir / "landing" / CARDHOLDERS
    scan = register_module.scan_snapshot

    def rewritten_after(engine_path, feed, limits):
        verdict = scan(engine_path, feed, limits)
        if feed == "cardholders":
            rewrite_in_place(path, hostile_snapshot(path.stat().st_size), keep_mtime=keep_mtime)
        return verdict

    monkeypatch.setattr(register_module, "scan_snapshot", rewritten_after)
    first = build_register(data_dir / "landing", None).set_index("source_file")
    assert (first.loc[CARDHOLDERS, "status"], first.loc[CARDHOLDERS, "reason"]) == (
        "rejected",
        "unreadable_file",
    )
    monkeypatch.setattr(register_module, "scan_snapshot", scan)
    again = build_register(data_dir / "landing", first.reset_index()).set_index("source_file")
    assert again.loc[CARDHOLDERS, "reason"] == "pan_outside_pan_column"


def test_an_engine_error_on_bytes_written_while_read_is_reported_without_them(data_dir, monkeypatch):
    """Bytes the register never judged (not UTF-8, with a card number) make DuckDB fail quoting the
    line ("Original Line: ..."): the run's error, kept in the event log, must not hold it."""
    s.write_reference(data_dir)
    path = s.write(data_dir, f"authorizations/{s.LANDED}/acq_a_{s.DAY}.csv", s.csv_text([s.a_row(1)]))
    assert materialise(data_dir, "raw/file_register").success
    stage_rows = text_reader.stage_rows

    def rewritten_first(*args, **kwargs):
        rewrite_in_place(path, path.read_bytes() + f"2,{s.PANS[1]},\xff bad\n".encode("latin-1"))
        return stage_rows(*args, **kwargs)

    monkeypatch.setattr(text_reader, "stage_rows", rewritten_first)
    result = materialise(data_dir, "raw/authorizations")
    assert "written to while it was read" in failure_of(result)
    assert not contains_pan(repr(result.all_events))


def test_an_engine_error_quoting_a_card_number_is_reported_masked(data_dir, monkeypatch):
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(1)])
    assert materialise(data_dir, "raw/file_register").success

    def failing(*args, **kwargs):
        raise duckdb.InvalidInputException(f"CSV Error on Line: 2\nOriginal Line: 2,{s.PANS[1]},x")

    monkeypatch.setattr(text_reader, "stage_rows", failing)
    result = materialise(data_dir, "raw/authorizations")
    assert "InvalidInputException" in failure_of(result)
    assert not contains_pan(repr(result.all_events))

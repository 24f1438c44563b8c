"""Clear card numbers are staged in memory only: not in the warehouse's spill files, which DuckDB writes
beside the database once a memory limit is reached and which a killed run leaves behind."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from fraud_assets.defs.raw import assets as raw_assets
from fraud_assets.defs.raw import ingest
from fraud_assets.defs.raw.limits import ReaderLimits
from fraud_assets.defs.raw.register import build_register
from fraud_assets.lib.pan import Tokenizer
from fraud_assets.lib.token_keys import ensure_token_key
from fraud_assets.resources import LandingZone
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

ROWS = 300_000
SIXTEEN_DIGITS = re.compile(rb"(?<![0-9])[0-9]{16}(?![0-9])")


def _clear_pans_on_disk(data_dir: Path, pans: set[str]) -> dict[str, int]:
    """Files outside the landing zone holding any of `pans` in clear, with how many."""
    found = {}
    for path in data_dir.rglob("*"):
        if path.is_file() and "landing" not in path.relative_to(data_dir).parts:
            hits = {m.decode() for m in SIXTEEN_DIGITS.findall(path.read_bytes())} & pans
            if hits:
                found[str(path.relative_to(data_dir))] = len(hits)
    return found


def test_staged_card_numbers_never_reach_the_warehouse_spill_files(data_dir: Path, monkeypatch):
    pans = {s.make_pan(serial=i) for i in range(ROWS)}
    rows = [s.a_row(i, pan=pan) for i, pan in enumerate(sorted(pans))]
    s.write_acq_a(data_dir, rows)
    landing = data_dir / "landing"
    # A warehouse far smaller than the staged rows: it spills whatever its connection holds.
    conn = duckdb.connect(str(data_dir / "warehouse.duckdb"), config={"memory_limit": "160MB"})
    conn.execute("CREATE SCHEMA raw")
    raw_assets.write_frame(conn, "raw.file_register", build_register(landing, None, limits=ReaderLimits()))
    tokenizer = Tokenizer(TEST_PAN_KEY)
    ensure_token_key(conn, tokenizer, "raw.authorizations")
    seen: list[dict[str, int]] = []
    write = raw_assets.replace_partition

    def looking(cur, table, source, column, keys):  # once the chunk's rows are written
        written = write(cur, table, source, column, keys)
        seen.append(_clear_pans_on_disk(data_dir, pans))
        return written

    monkeypatch.setattr(raw_assets, "replace_partition", looking)
    counts = raw_assets.ingest_authorizations(conn, LandingZone(root=str(landing)), tokenizer, [s.DAY])
    conn.close()
    assert counts["acq_a"] == ROWS
    assert seen == [{}]
    assert _clear_pans_on_disk(data_dir, pans) == {}


def test_a_chunk_too_large_for_memory_fails_with_a_reason_instead_of_spilling(data_dir: Path, monkeypatch):
    monkeypatch.setenv("FRAUD_DUCKDB_MEMORY_LIMIT", "8MB")
    with pytest.raises(MemoryError, match="FRAUD_RAW_STAGE_MAX_ROWS"), ingest.staging() as stage:
        stage.execute("CREATE TABLE t AS SELECT repeat('4539148803436467', 20) AS v FROM range(200000)")

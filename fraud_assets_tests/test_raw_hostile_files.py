"""Files a careless or hostile producer drops into the landing zone: each is refused with its own
reason in raw.file_register, in bounded memory, and never stops the register (issue 13, findings 3,
6, 7, 9 and 10)."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import resource
import time
import tracemalloc
import zlib

import pytest

from fraud_assets.defs.raw.assets import build_register
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

GOOD_CSV = s.csv_text([s.a_row(1), s.a_row(2)])
FOLDER = "authorizations/2018-04-02"


def register(data_dir, **kwargs):
    return build_register(data_dir / "landing", None, **kwargs).set_index("source_file")


def verdict(data_dir, rel, **kwargs):
    row = register(data_dir, **kwargs).loc[rel]
    return row["status"], row["reason"], int(row["rows_landed"])


def gzip_bomb(size: int, line: bytes) -> bytes:
    """A gzip stream of `size` bytes of `line` repeated, built without holding them in memory."""
    out = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = line * (1 << 20)
    parts = [out.compress(block) for _ in range(size // len(block))]
    return b"".join(parts) + out.flush()


@pytest.mark.parametrize("line", [b"1,2,3\n", b"\n"])
def test_a_gzip_bomb_is_rejected_in_bounded_memory(data_dir, line):
    """Finding 6: 400 MB of decompressed text from a few hundred KB is a bomb; the register streams
    it and stops at the ratio cap instead of inflating it."""
    s.write(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv.gz", gzip_bomb(400 << 20, line))
    tracemalloc.start()
    try:
        result = verdict(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv.gz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result == ("rejected", "compression_ratio_too_high", 0)
    assert peak < 32 << 20


@pytest.mark.parametrize(
    ("limit", "content", "reason"),
    [
        ({"max_decompressed_bytes": 1000}, GOOD_CSV * 20, "too_large"),
        ({"max_file_bytes": 100}, GOOD_CSV * 20, "too_large"),
        ({"max_rows": 10}, GOOD_CSV + "\n".join(GOOD_CSV.splitlines()[1:]) * 10, "too_many_rows"),
        ({"max_line_bytes": 200}, GOOD_CSV + "9," + "x" * 300 + "\n", "line_too_long"),
    ],
)
def test_a_file_over_a_cap_is_rejected_with_the_caps_reason(data_dir, limit, content, reason):
    from fraud_assets.defs.raw.limits import ReaderLimits

    s.write(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv", content)
    assert verdict(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv", limits=ReaderLimits(**limit)) == (
        "rejected",
        reason,
        0,
    )


def test_bare_carriage_return_line_ends_are_a_rejection_not_a_crash(data_dir):
    """Finding 7: old Mac line ends made the csv module raise inside the register."""
    s.write(
        data_dir, f"{FOLDER}/acq_a_2018-04-01.csv.gz", gzip.compress(GOOD_CSV.replace("\n", "\r").encode())
    )
    s.write_acq_a(data_dir, [s.a_row(3)], name="acq_a_2018-04-01_002.csv.gz")
    reg = register(data_dir)
    assert reg.loc[f"{FOLDER}/acq_a_2018-04-01.csv.gz", "reason"] == "bare_carriage_return"
    assert reg.loc[f"{FOLDER}/acq_a_2018-04-01_002.csv.gz", "status"] == "ingested"


def test_crlf_line_ends_are_read_like_lf(data_dir):
    s.write(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv", GOOD_CSV.replace("\n", "\r\n"))
    assert verdict(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv") == ("ingested", None, 2)


def test_a_header_over_128_kib_is_a_rejection_not_a_crash(data_dir):
    """Finding 7: a header field over the csv module's 128 KiB limit raised inside the register."""
    header = ",".join(s.A_HEADER) + ",x" + "y" * (130 << 10)
    s.write(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv.gz", gzip.compress(f"{header}\n1,2\n".encode()))
    assert verdict(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv.gz") == ("rejected", "header_too_long", 0)


@pytest.mark.parametrize(
    "rel",
    [
        "authorizations/9999-12-31/acq_a_2018-04-01.csv.gz",
        "authorizations/0001-01-01/acq_a_2018-04-01.csv.gz",
        "authorizations/2018-04-02/acq_a_9999-12-31.csv.gz",
        "authorizations/2018-04-02/acq_a_0001-01-01.csv.gz",
    ],
)
def test_a_date_outside_the_window_is_a_rejection_not_a_crash(data_dir, rel):
    """Finding 7: year 9999 or 0001 passed the date check and broke pandas timestamps later."""
    s.write(data_dir, rel, gzip.compress(GOOD_CSV.encode()))
    reg = build_register(data_dir / "landing", None)
    row = reg.set_index("source_file").loc[rel]
    assert (row["status"], row["reason"]) == ("rejected", "date_out_of_range")
    assert row["business_date"] is None or row["business_date"] != row["business_date"]


def test_a_symlink_to_a_file_outside_the_landing_zone_is_refused_and_not_read(data_dir, tmp_path):
    """Finding 9: a link to a file outside was followed and ingested."""
    outside = tmp_path / "secret.csv"
    outside.write_text(GOOD_CSV)
    link = data_dir / "landing" / FOLDER / "acq_a_2018-04-01.csv"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    status, reason, rows = verdict(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv")
    assert (status, reason, rows) == ("rejected", "not_a_regular_file", 0)


def test_a_symlinked_directory_is_refused_and_not_descended_into(data_dir, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "acq_a_2018-04-01.csv").write_text(GOOD_CSV)
    (data_dir / "landing" / "authorizations").mkdir(parents=True)
    (data_dir / "landing" / FOLDER).symlink_to(outside, target_is_directory=True)
    reg = register(data_dir)
    assert list(reg.index) == [FOLDER]
    assert reg.loc[FOLDER, "reason"] == "not_a_regular_file"


def test_a_fifo_is_refused_without_blocking_the_register(data_dir):
    (data_dir / "landing" / FOLDER).mkdir(parents=True)
    os.mkfifo(data_dir / "landing" / FOLDER / "acq_a_2018-04-01.csv")
    assert verdict(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv") == ("rejected", "not_a_regular_file", 0)


@pytest.mark.parametrize("char", ["\x85", "\x9b", "\u2028", "\u202e"], ids=["nel", "csi", "ls", "rlo"])
def test_a_name_with_a_c1_control_a_line_separator_or_a_bidi_override_is_unrecognised(data_dir, char):
    rel = f"{FOLDER}/acq_a_2018-04-01_x{char}INFO forged.csv"
    s.write(data_dir, rel, GOOD_CSV)
    [(status, reason)] = register(data_dir)[["status", "reason"]].itertuples(index=False)
    assert (status, reason) == ("rejected", "unrecognised_name")


def test_a_name_with_a_trailing_newline_is_unrecognised(data_dir):
    """Finding 10: `$` accepted a trailing newline."""
    s.write(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv\n", GOOD_CSV)
    reg = register(data_dir)
    assert reg["reason"].tolist() == ["unrecognised_name"]


def test_a_card_number_in_the_file_name_is_rejected_and_stored_masked(data_dir):
    """Finding 3 (register side): the name is producer input, stored and shown masked."""
    pan = s.PANS[1]
    s.write_acq_a(data_dir, [s.a_row(1)], name=f"acq_a_2018-04-01_{pan}.csv.gz")
    s.write(data_dir, f"authorizations/{pan}/acq_a_2018-04-01.csv.gz", gzip.compress(GOOD_CSV.encode()))
    reg = build_register(data_dir / "landing", None)
    assert set(reg["reason"]) == {"pan_in_file_name"}
    assert not any(pan in name for name in reg["source_file"])
    assert all(f"{pan[:6]}******{pan[-4:]}" in name for name in reg["source_file"])


def masked_twin(pan: str) -> str:
    """Another Luhn-valid PAN with the same BIN and last 4 (so the same masked form)."""
    from fraud_assets.lib.pan import luhn_valid

    for a in "0123456789":
        for b in "0123456789":
            twin = pan[:6] + a + b + pan[8:]
            if twin != pan and luhn_valid(twin):
                return twin
    raise AssertionError("no twin")


def test_names_that_mask_alike_stay_distinct_rows(data_dir):
    for pan in (s.PANS[1], masked_twin(s.PANS[1])):
        s.write_acq_a(data_dir, [s.a_row(1)], name=f"acq_a_2018-04-01_{pan}.csv.gz")
    reg = build_register(data_dir / "landing", None)
    assert len(reg) == 2
    assert reg["source_file"].is_unique


def test_a_name_with_undecodable_bytes_is_unrecognised_and_stored_escaped(data_dir):
    folder = data_dir / "landing" / FOLDER
    folder.mkdir(parents=True)
    with open(os.path.join(os.fsencode(folder), b"acq_a_2018-04-01_\xff.csv"), "wb") as fh:
        fh.write(GOOD_CSV.encode())
    reg = build_register(data_dir / "landing", None)
    assert reg["reason"].tolist() == ["unrecognised_name"]
    assert reg["source_file"].tolist() == [f"{FOLDER}/acq_a_2018-04-01_\\xff.csv"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (gzip.compress(GOOD_CSV.encode()) + b"\x00\x00\x00\x00", "corrupt_gzip"),
        (gzip.compress(GOOD_CSV.encode()) + b"garbage", "corrupt_gzip"),
        (gzip.compress(GOOD_CSV.encode())[:-8] + b"\x00" * 8, "corrupt_gzip"),
        (
            gzip.compress(GOOD_CSV.encode())[:3] + b"\x10" + gzip.compress(GOOD_CSV.encode())[4:],
            "unsupported_gzip",
        ),
    ],
)
def test_gzip_the_engine_would_read_otherwise_is_refused(data_dir, content, reason):
    s.write(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv.gz", content)
    assert verdict(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv.gz")[:2] == ("rejected", reason)


def test_concatenated_gzip_members_are_one_file(data_dir):
    lines = GOOD_CSV.splitlines(keepends=True)
    content = gzip.compress("".join(lines[:2]).encode()) + gzip.compress("".join(lines[2:]).encode())
    s.write(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv.gz", content)
    assert verdict(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv.gz") == ("ingested", None, 2)


def test_a_header_naming_a_column_twice_is_rejected(data_dir):
    header = ",".join([*s.A_HEADER, "amount"])
    s.write(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv", f"{header}\n" + "1," * 10 + "2\n")
    assert verdict(data_dir, f"{FOLDER}/acq_a_2018-04-01.csv") == ("rejected", "duplicate_columns", 0)


def test_an_unexpected_error_on_one_file_refuses_that_file_and_the_others_go_on(data_dir, monkeypatch):
    from fraud_assets.defs.raw import register as reg_module

    s.write_acq_a(data_dir, [s.a_row(1)])
    s.write_acq_a(data_dir, [s.a_row(2)], name="acq_a_2018-04-01_002.csv.gz")
    real = reg_module.inspect_file

    def flaky(root, lf, limits):
        if lf.relative.endswith("_002.csv.gz"):
            raise RuntimeError("bug")
        return real(root, lf, limits)

    monkeypatch.setattr(reg_module, "inspect_file", flaky)
    reg = register(data_dir)
    assert reg.loc[f"{FOLDER}/acq_a_2018-04-01_002.csv.gz", "reason"] == "unreadable_file"
    assert reg.loc[f"{FOLDER}/acq_a_2018-04-01.csv.gz", "status"] == "ingested"


def test_a_file_rewritten_in_place_with_its_mtime_set_back_is_read_again(data_dir):
    """Same size, inode and mtime: only the ctime tells, which a producer cannot set."""
    rel = f"{FOLDER}/acq_a_2018-04-01.csv"
    path = s.write(data_dir, rel, s.csv_text([s.a_row(1)]))
    first = build_register(data_dir / "landing", None)
    st = path.stat()
    time.sleep(0.05)  # file clocks tick in scheduler jiffies (up to 10 ms)
    with path.open("r+b") as fh:  # same inode, same length: only the transaction id differs
        fh.write(s.csv_text([s.a_row(2)]).encode())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns, path.stat().st_ino) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    )
    again = build_register(data_dir / "landing", first)
    assert again["file_sha256"].tolist() != first["file_sha256"].tolist()


def test_a_day_whose_only_file_was_refused_is_an_empty_day_not_a_failed_run(data_dir):
    """raw/authorizations, cleaning and every check of a day with nothing ingested succeed, empty."""
    s.write_reference(data_dir)
    s.write(data_dir, f"authorizations/{s.LANDED}/acq_a_{s.DAY}.csv", b"")  # refused: empty_file
    assert all(r.success for r in s.run_pipeline(data_dir, raise_on_error=False))
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        rows = conn.execute("SELECT count(*) FROM raw.authorizations").fetchone()[0]
        reason = conn.execute("SELECT reason FROM raw.file_register WHERE feed = 'acq_a'").fetchone()
    assert (rows, reason) == (0, ("empty_file",))


def test_more_files_than_the_soft_open_file_limit_are_read_together(data_dir):
    """A chunk of a large network's days is thousands of files; many systems start processes at 1,024
    descriptors. The reader raises its soft limit (up to the hard one) instead of failing the chunk."""
    from fraud_assets.defs.raw.files import pinned

    for i in range(40):
        s.write_acq_a(data_dir, [s.a_row(i)], name=f"acq_a_{s.DAY}_part{i}.csv.gz")
    rows = list(build_register(data_dir / "landing", None).itertuples(index=False))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 10, hard))
        with pinned(data_dir / "landing", rows) as paths:
            assert len(paths) == 40
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_unchanged_files_are_not_read_again(data_dir, monkeypatch):
    from fraud_assets.defs.raw import register as reg_module

    s.write_acq_a(data_dir, [s.a_row(1)])
    first = build_register(data_dir / "landing", None, now=dt.datetime(2020, 1, 1))

    def fail(*args, **kwargs):
        raise AssertionError("an unchanged file was read again")

    monkeypatch.setattr(reg_module, "inspect_file", fail)
    again = build_register(data_dir / "landing", first, now=dt.datetime(2021, 1, 1))
    assert again.drop(columns="registered_at").equals(first.drop(columns="registered_at"))


def test_a_register_from_before_the_ctime_was_recorded_reads_nothing_again(data_dir, monkeypatch):
    from fraud_assets.defs.raw import register as reg_module

    s.write_acq_a(data_dir, [s.a_row(1)])
    first = build_register(data_dir / "landing", None).drop(columns="file_ctime_ns")
    monkeypatch.setattr(reg_module, "inspect_file", lambda *a, **k: pytest.fail("read again"))
    again = build_register(data_dir / "landing", first)
    assert again["file_ctime_ns"].notna().all()  # recorded from now on


def test_a_hostile_landing_zone_leaves_raw_standing_and_no_card_number_in_clear(data_dir, tmp_path):
    """Every hostile file beside good ones: every raw run succeeds, the good rows are all there, and
    no card number of the input is in any raw table (any column type), export or event."""
    import dagster as dg
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fraud_assets.resources import build_resources
    from fraud_assets_tests.conftest import TEST_PAN_KEY

    pans = list(s.PANS.values())
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(1), s.a_row(2, terminal_id=pans[2]), f"3,{pans[0]},broken"])
    s.write_acq_b(data_dir, [s.b_row(10), '{"card_number": "' + pans[1] + '"'])
    hostile = {
        "acq_a_2018-04-01_bomb.csv.gz": gzip_bomb(64 << 20, b"\n"),
        "acq_a_2018-04-01_cr.csv": GOOD_CSV.replace("\n", "\r"),
        "acq_a_2018-04-01_header.csv": ",".join(s.A_HEADER) + ",x" + "y" * (130 << 10) + "\n1\n",
        f"acq_a_2018-04-01_{pans[0]}.csv": GOOD_CSV,
        "acq_a_2018-04-01.csv\n": GOOD_CSV,
        "acq_a_2018-04-01_padded.csv.gz": gzip.compress(GOOD_CSV.encode()) + b"\x00" * 8,
    }
    for name, content in hostile.items():
        s.write(data_dir, f"{FOLDER}/{name}", content)
    s.write(data_dir, "authorizations/9999-12-31/acq_a_2018-04-01.csv", GOOD_CSV)
    outside = tmp_path / "outside.csv"
    outside.write_text(s.csv_text([s.a_row(99, pan=pans[2])]))
    (data_dir / "landing" / FOLDER / "acq_a_2018-04-01_link.csv").symlink_to(outside)
    cards = pa.table({"customer_id": [int(p) for p in pans], "pan": pans})
    pq.write_table(cards, data_dir / "landing" / f"cardholders/{s.DAY}/cardholders_{s.DAY}_pan_ids.parquet")
    pq.write_table(
        pa.Table.from_pandas(s.TERMINALS.assign(x="n/a")),
        data_dir / "landing" / f"merchants/{s.DAY}/merchants_{s.DAY}_bad.parquet",
    )

    instance = dg.DagsterInstance.ephemeral()
    defs = s.defs_for(data_dir)
    every = [*defs.assets, *defs.asset_checks]
    resources = build_resources(data_dir, TEST_PAN_KEY)
    results = [
        dg.materialize(
            every,
            selection=dg.AssetSelection.groups("raw") - dg.AssetSelection.assets(["raw", "authorizations"]),
            resources=resources,
            instance=instance,
        ),
        dg.materialize(
            every,
            selection=dg.AssetSelection.assets(["raw", "authorizations"]),
            partition_key=s.DAY,
            resources=resources,
            instance=instance,
        ),
    ]
    assert all(r.success for r in results)
    with resources["duckdb"].get_connection() as conn:
        raw = conn.execute("SELECT * FROM raw.authorizations ORDER BY feed, row_number").df()
        dumps = [
            conn.execute(f"SELECT * FROM raw.{t}").df().astype(str).to_csv()
            for (t,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'raw'"
            ).fetchall()
        ]
        rejected = conn.execute(
            "SELECT count(*) FROM raw.file_register WHERE status = 'rejected'"
        ).fetchone()[0]
    assert raw["transaction_id"].tolist() == ["1", "2", None, "10", None]
    assert rejected == len(hostile) + 4
    dumps += [pd.read_parquet(p).astype(str).to_csv() for p in (data_dir / "exports").rglob("*.parquet")]
    dumps += [repr(e) for r in results for e in r.all_events]
    text = "\n".join(dumps)
    assert not [p for p in pans if p in text]


def test_a_folder_that_cannot_be_listed_is_one_refused_entry(data_dir, monkeypatch):
    from fraud_assets.lib import landing as landing_module

    s.write_acq_a(data_dir, [s.a_row(1)])
    locked = data_dir / "landing" / "authorizations" / "2018-04-03"
    locked.mkdir()
    real = os.scandir

    def scandir(path):
        if os.fspath(path) == os.fspath(locked):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(landing_module.os, "scandir", scandir)
    reg = register(data_dir)
    assert reg.loc["authorizations/2018-04-03", "reason"] == "unreadable_file"
    assert reg.loc[f"{FOLDER}/acq_a_2018-04-01.csv.gz", "status"] == "ingested"


@pytest.mark.parametrize(
    ("high", "card_shaped"),
    [(int(s.make_pan("453914", 1, 13)) * 10**6, True), (1 << 63, False)],
    ids=["19-digits-holding-a-card-number", "top-bit-set"],
)
def test_a_landing_zone_on_a_filesystem_with_64_bit_inode_numbers_is_ingested(
    data_dir, monkeypatch, high, card_shaped
):
    """CephFS, Lustre, XFS (inode64) or overlayfs with xino give inode numbers of 13 to 19 digits, most of
    them holding a Luhn-valid run: the register's blocking no_clear_pan check refused its own inode
    column. With the top bit set, the number did not fit the register's BIGINT and the register failed.
    Either stopped every ingestion."""
    from fraud_assets.lib import landing as ln
    from fraud_assets.lib.pan_leaks import has_pan

    root = str(data_dir / "landing")
    real_fstat, real_parse = os.fstat, ln.parse

    def wide(st: os.stat_result) -> os.stat_result:
        fields = {f: getattr(st, f) for f in ("st_atime_ns", "st_mtime_ns", "st_ctime_ns", "st_blksize")}
        fields |= {f: getattr(st, f) for f in ("st_atime", "st_mtime", "st_ctime", "st_blocks")}
        head = (st.st_mode, high + st.st_ino % 10**6, *tuple(st)[2:10])
        return os.stat_result(head, fields)

    def fstat(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        return wide(st) if os.readlink(f"/proc/self/fd/{fd}").startswith(root) else st

    def parse(root_, path, st=None):
        return real_parse(root_, path, wide(st or path.lstat()))

    monkeypatch.setattr(os, "fstat", fstat)
    monkeypatch.setattr(ln, "parse", parse)
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(1), s.a_row(2)])
    assert all(r.success for r in s.run_pipeline(data_dir, raise_on_error=False))
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        inodes = [i for (i,) in conn.execute("SELECT file_inode FROM raw.file_register").fetchall()]
        rows = conn.execute("SELECT count(*) FROM cleaned.transactions").fetchone()[0]
    assert rows == 2
    assert all(has_pan(str(i)) for i in inodes) == card_shaped


def test_a_sparse_file_whose_size_reads_as_a_card_number_is_refused_and_stops_nothing(data_dir):
    """`truncate -s 4539140000012` makes an empty file of a card-shaped size: the register recorded it
    (too_large) and its blocking no_clear_pan check refused its own file_size column, for every run."""
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(1)])
    sparse = s.write(data_dir, f"{FOLDER}/acq_a_{s.DAY}_002.csv", b"")
    os.truncate(sparse, int(s.make_pan("453914", 1, 13)))
    assert all(r.success for r in s.run_pipeline(data_dir, raise_on_error=False))
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        reason = conn.execute("SELECT reason FROM raw.file_register WHERE source_file LIKE '%_002.csv'")
        assert reason.fetchone() == ("too_large",)
        assert conn.execute("SELECT count(*) FROM cleaned.transactions").fetchone() == (1,)


def test_a_file_stamped_after_2262_is_ingested_and_stops_nothing(data_dir):
    """A modification time after 2262 (a wrong clock, `touch -d 2400-01-01`) does not fit the register's
    BIGINT nanoseconds: raw/file_register failed, and with it every ingestion, until the file was gone."""
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(1)])
    late = s.write(data_dir, f"{FOLDER}/acq_a_{s.DAY}_002.csv", s.csv_text([s.a_row(2)]))
    year_2400 = int(dt.datetime(2400, 1, 1, tzinfo=dt.UTC).timestamp()) * 10**9
    os.utime(late, ns=(year_2400, year_2400))
    if late.stat().st_mtime_ns < 2**63:
        pytest.skip("this filesystem cannot stamp a file after 2262")
    assert all(r.success for r in s.run_pipeline(data_dir, raise_on_error=False))
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        assert conn.execute("SELECT count(*) FROM cleaned.transactions").fetchone() == (2,)

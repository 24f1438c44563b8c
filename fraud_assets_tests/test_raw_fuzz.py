"""Fuzzing the door: random bytes, random gzip, mutated CSV / JSON Lines / Parquet, random names.

Whatever lands, no exception escapes a file's handling, memory stays bounded, and every line of an
ingested file is one raw row (parsed, or malformed with a reason) while a refused file carries a
reason from the catalogue; no card number of the input is read back in clear. The budget comes from
the hypothesis profile in FRAUD_HYPOTHESIS_PROFILE: `ci` (default, a few seconds per test, in `make
test`) or `bench` (`make bench` runs this module with it).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tracemalloc
import zlib
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.defs.raw import ingest, reasons
from fraud_assets.defs.raw.limits import ReaderLimits
from fraud_assets.defs.raw.register import build_register, inspect_file
from fraud_assets.lib.landing import discover
from fraud_assets.lib.pan import Tokenizer
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

_COMMON = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}
settings.register_profile("ci", max_examples=15, derandomize=True, **_COMMON)
settings.register_profile("bench", max_examples=300, **_COMMON)
PROFILE = settings.get_profile(os.environ.get("FRAUD_HYPOTHESIS_PROFILE", "ci"))
TOK = Tokenizer(TEST_PAN_KEY)
# Small caps so that hypothesis reaches them; memory must stay far below what a file could cost.
LIMITS = ReaderLimits(
    max_rows=400, max_line_bytes=8 << 10, max_header_bytes=2 << 10, max_decompressed_bytes=1 << 20
)
PEAK_BYTES = 48 << 20
TABLE_OF_FEED = {
    "acq_a": "raw.authorizations",
    "acq_b": "raw.authorizations",
    "chargebacks": "raw.chargebacks",
    "fx_rates": "raw.fx_rates",
    "cardholders": "raw.cardholders",
    "merchants": "raw.merchants",
}
NAMES = {
    "acq_a": ("authorizations", ["csv", "csv.gz"]),
    "acq_b": ("authorizations", ["jsonl", "jsonl.gz"]),
    "chargebacks": ("chargebacks", ["csv"]),
    "fx_rates": ("fx_rates", ["csv"]),
    "merchants": ("merchants", ["parquet"]),
    "cardholders": ("cardholders", ["parquet"]),
}
PANS = list(s.PANS.values())

# Text a messy or hostile producer could send, with the characters that break naive readers.
NASTY = st.sampled_from(
    ['"', ",", "\r", "\n", "\r\n", "\x00", "\ufeff", "\u00a0", "\u0663", "\\", "{", "}", "[", " ", "\t"]
)
FIELD = st.one_of(
    st.sampled_from(["", "0", "-1", "12,50", "EUR", "null", "2018-04-01T12:00:00Z", *PANS]),
    st.text(max_size=12),
    st.builds(
        lambda p, sep: sep.join([p[:4], p[4:8], p[8:12], p[12:]]),
        st.sampled_from(PANS),
        st.sampled_from([" ", "-", "."]),
    ),
)


def _csv(header: list[str], rows: list[dict]) -> bytes:
    buf = io.StringIO()
    w = __import__("csv").DictWriter(buf, fieldnames=header, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """`data` with a few random edits: inserted nasty text or bytes, deleted or duplicated ranges."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, len(out)))
        kind = draw(st.sampled_from(["nasty", "bytes", "delete", "dup"]))
        if kind == "nasty":
            out[pos:pos] = draw(NASTY).encode()
        elif kind == "bytes":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del out[pos : pos + draw(st.integers(1, 40))]
        else:
            out[pos:pos] = out[pos : pos + draw(st.integers(1, 200))]
    return bytes(out)


@st.composite
def text_file(draw) -> tuple[str, str, bytes]:
    """(feed, extension, bytes) of a CSV or JSON Lines file, usually almost right."""
    feed = draw(st.sampled_from(["acq_a", "acq_b", "chargebacks", "fx_rates"]))
    ext = draw(st.sampled_from(NAMES[feed][1]))
    n = draw(st.integers(0, 6))
    if feed == "acq_b":
        values = st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), FIELD)
        objs = [draw(st.fixed_dictionaries({k: values for k in s.b_row(0)})) for _ in range(n)]
        data = "".join(json.dumps(o) + "\n" for o in objs).encode()
    else:
        header = {"acq_a": list(s.A_HEADER), "chargebacks": s.CB_HEADER}.get(
            feed, ["rate_date", "base_currency", "quote_currency", "rate"]
        )
        rows = [draw(st.fixed_dictionaries({c: FIELD for c in header})) for _ in range(n)]
        data = _csv(draw(st.permutations(header)), rows)
    data = draw(st.one_of(st.just(data), mutated(data), st.binary(max_size=300)))
    if ext.endswith("gz"):
        data = draw(gzipped(data))
    return feed, ext, data


@st.composite
def gzipped(draw, data: bytes) -> bytes:
    """`data` gzipped, sometimes in several members, sometimes truncated, corrupted or padded."""
    cut = draw(st.integers(0, len(data)))
    members = [data] if draw(st.booleans()) else [data[:cut], data[cut:]]
    out = b"".join(gzip.compress(m, mtime=0) for m in members)
    damage = draw(st.sampled_from(["none", "none", "truncate", "flip", "append", "flags"]))
    if damage == "truncate":
        out = out[: draw(st.integers(0, len(out)))]
    elif damage == "flip" and out:
        pos = draw(st.integers(0, len(out) - 1))
        out = out[:pos] + bytes([out[pos] ^ draw(st.integers(1, 255))]) + out[pos + 1 :]
    elif damage == "append":
        out += draw(st.binary(min_size=1, max_size=16))
    elif damage == "flags":
        out = out[:3] + bytes([draw(st.integers(0, 255))]) + out[4:]
    return out


def snapshot_column(kind: str, n: int) -> st.SearchStrategy[pa.Array]:
    """A column of `n` values of a random type family, card numbers and nulls included."""
    if kind == "text":
        return st.lists(FIELD, min_size=n, max_size=n).map(pa.array)
    if kind == "int":
        return st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n).map(
            lambda v: pa.array(v, pa.int64())
        )
    if kind == "uint":
        return st.lists(st.integers(0, 2**64 - 1), min_size=n, max_size=n).map(
            lambda v: pa.array(v, pa.uint64())
        )
    if kind == "float":
        return st.lists(st.floats(), min_size=n, max_size=n).map(lambda v: pa.array(v, pa.float64()))
    if kind == "pan":
        return st.just(pa.array([int(p) for p in (PANS * n)[:n]], pa.int64()))
    return st.just(pa.nulls(n))


@st.composite
def parquet_file(draw) -> tuple[str, str, bytes]:
    """(feed, 'parquet', bytes) of a snapshot with columns of random types, sometimes damaged."""
    feed = draw(st.sampled_from(["merchants", "cardholders"]))
    base = (
        s.TERMINALS
        if feed == "merchants"
        else pd.DataFrame(
            {
                "customer_id": [1, 2, 3],
                "pan": PANS,
                "home_x": [1.0, 2.0, 3.0],
                "home_y": [1.0, 2.0, 3.0],
                "home_country": ["FR", "JP", "US"],
                "issued_at": pd.to_datetime(["2017-01-01"] * 3).date,
            }
        )
    )
    table = pa.Table.from_pandas(base, preserve_index=False)
    for name in draw(st.lists(st.sampled_from(table.column_names), max_size=3, unique=True)):
        i = table.schema.get_field_index(name)
        choice = draw(st.sampled_from(["text", "int", "float", "pan", "null", "drop", "uint"]))
        if choice == "drop":
            table = table.remove_column(i)
            continue
        column = draw(snapshot_column(choice, table.num_rows))
        table = table.set_column(i, name, column)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    data = buf.getvalue()
    data = draw(st.one_of(st.just(data), st.just(data), mutated(data)))
    return feed, "parquet", data


def _land(root: Path, feed: str, ext: str, data: bytes, suffix: str = "") -> Path:
    source, _ = NAMES[feed]
    path = root / source / "2018-04-02" / f"{feed}_2018-04-01{suffix}.{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _read_back(root: Path, reg_row: pd.Series) -> pd.DataFrame:
    """The raw rows of one ingested file, read exactly as its asset reads them."""
    table = TABLE_OF_FEED[reg_row["feed"]]
    stage = (
        ingest.stage_snapshot_files
        if table in ("raw.cardholders", "raw.merchants")
        else ingest.stage_text_files
    )
    with duckdb.connect() as conn:
        sql = stage(conn, root, pd.DataFrame([reg_row]), table, TOK)
        return conn.execute(f"SELECT * FROM ({sql}) ORDER BY row_number").df()


def _expected_rows(ext: str, data: bytes) -> int:
    """An independent count of an accepted text file's data lines: decode all, split on LF."""
    raw = gzip.decompress(data) if ext.endswith("gz") else data
    text = raw.decode("utf-8").removeprefix("\ufeff")
    lines = [ln for ln in text.split("\n") if ln.strip(" \t\r\v\f")]
    return len(lines) - (1 if ext.startswith("csv") else 0)


def check_one_file(tmp: Path, feed: str, ext: str, data: bytes) -> None:
    root = tmp / "landing"
    _land(root, feed, ext, data)
    (lf,) = discover(root)
    tracemalloc.start()
    try:
        verdict = inspect_file(root, lf, LIMITS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES
    assert verdict.reason is None or verdict.reason in reasons.FILE_REASONS
    if verdict.reason is not None:
        assert verdict.rows == 0
        return
    reg = build_register(root, None, limits=LIMITS).iloc[0]
    assert reg["status"] == "ingested"
    assert reg["rows_landed"] == verdict.rows
    rows = _read_back(root, reg)
    assert len(rows) == verdict.rows
    assert rows["row_number"].tolist() == list(range(1, verdict.rows + 1))
    if ext != "parquet":
        assert verdict.rows == _expected_rows(ext, data)
        bad = rows["malformed_reason"].dropna()
        assert set(bad) <= set(reasons.LINE_REASONS)
        assert rows.loc[bad.index, "raw_line_masked"].notna().all()
    dump = rows.astype(str).to_csv()
    assert not [p for p in PANS if p in dump]


@settings(PROFILE)
@given(st.data())
def test_any_text_file_is_rows_or_a_reason(tmp_path_factory, data):
    feed, ext, content = data.draw(text_file())
    check_one_file(tmp_path_factory.mktemp("fuzz"), feed, ext, content)


@settings(PROFILE)
@given(st.data())
def test_any_parquet_snapshot_is_rows_or_a_reason(tmp_path_factory, data):
    feed, ext, content = data.draw(parquet_file())
    check_one_file(tmp_path_factory.mktemp("fuzz"), feed, ext, content)


@settings(PROFILE)
@given(
    feed=st.sampled_from(list(NAMES)),
    content=st.binary(max_size=2048),
)
def test_random_bytes_under_any_feed_name_are_rows_or_a_reason(tmp_path_factory, feed, content):
    for ext in NAMES[feed][1]:
        check_one_file(tmp_path_factory.mktemp("fuzz"), feed, ext, content)


@settings(PROFILE)
@given(
    names=st.lists(
        st.binary(min_size=1, max_size=40).filter(
            lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b"..")
        ),
        max_size=4,
        unique=True,
    )
)
def test_any_file_names_leave_the_register_standing_and_a_good_file_ingested(tmp_path_factory, names):
    root = tmp_path_factory.mktemp("fuzz") / "landing"
    good = s.write_acq_a(root.parent, [s.a_row(1)])
    folder = os.fsencode(good.parent)
    for name in names:
        if name.startswith(b".") or name.endswith((b".tmp", b".part")):
            continue
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(name)
    reg = build_register(root, None).set_index("source_file")
    assert reg.loc[good.relative_to(root).as_posix(), "status"] in ("ingested", "duplicate_file")
    assert reg.index.is_unique
    assert set(reg["reason"].dropna()) <= set(reasons.FILE_REASONS) | {
        r for r in reg["reason"].dropna() if r.startswith("same content as")
    }
    for name in reg.index:
        name.encode("utf-8")  # storable: no surrogates


def test_a_compressed_bomb_in_a_fuzzed_landing_zone_stays_within_memory(tmp_path):
    out = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(out.compress(b"\n" * (1 << 20)) for _ in range(64)) + out.flush()
    check_one_file(tmp_path, "acq_a", "csv.gz", bomb)

"""raw/authorizations read by the engine: one landed line, one raw row, numbered as in the file, PANs
gone, and exactly the bytes the register vouched for."""

from __future__ import annotations

import gzip
import json
import os

import dagster as dg
import duckdb
import pandas as pd
import pytest

from fraud_assets.defs.raw.assets import build_register, ingest_authorizations, write_frame
from fraud_assets.lib.pan import Tokenizer, contains_pan
from fraud_assets.resources import LandingZone
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

FOLDER = "authorizations/2018-04-02"


def ingest(data_dir) -> pd.DataFrame:
    """raw.authorizations of business date DAY after registering the landing zone."""
    conn = duckdb.connect(str(data_dir / "w.duckdb"))
    try:
        write_frame(conn, "raw.file_register", build_register(data_dir / "landing", None))
        ingest_authorizations(
            conn, LandingZone(root=str(data_dir / "landing")), Tokenizer(TEST_PAN_KEY), [s.DAY]
        )
        raw = conn.execute("SELECT * FROM raw.authorizations ORDER BY source_file, row_number").df()
        landed = conn.execute(
            "SELECT sum(rows_landed) FROM raw.file_register WHERE status = 'ingested'"
        ).fetchone()[0]
    finally:
        conn.close()
    assert len(raw) == landed
    return raw


def test_row_numbers_count_data_lines_from_one_skipping_the_header_and_blank_lines(data_dir):
    text = s.csv_text([s.a_row(1), s.a_row(2), s.a_row(3)]).splitlines()
    content = "\ufeff" + text[0] + "\r\n\r\n" + text[1] + "\n   \n\t\n" + text[2] + "\r\n" + text[3]
    s.write(data_dir, f"{FOLDER}/acq_a_{s.DAY}.csv", content)
    raw = ingest(data_dir)
    assert raw["row_number"].tolist() == [1, 2, 3]
    assert raw["transaction_id"].tolist() == ["1", "2", "3"]


def test_every_landed_line_is_one_row_and_a_broken_one_keeps_its_reason_and_a_masked_copy(data_dir):
    pan = s.PANS[1]
    lines = [s.a_row(1), f"2,{pan},oops", '"3,unclosed', "4," + "x" * 5000, s.a_row(5)]
    s.write_acq_a(data_dir, lines)
    s.write_acq_b(data_dir, [s.b_row(10), '{"card_number": "' + pan + '"', "[1, 2]", "null"])
    raw = ingest(data_dir).set_index(["feed", "row_number"])
    assert raw["malformed_reason"].to_dict() == {
        ("acq_a", 1): None,
        ("acq_a", 2): "wrong_field_count",
        ("acq_a", 3): "unparseable_csv",
        ("acq_a", 4): "line_too_long",
        ("acq_a", 5): None,
        ("acq_b", 1): None,
        ("acq_b", 2): "invalid_json",
        ("acq_b", 3): "not_a_json_object",
        ("acq_b", 4): "not_a_json_object",
    }
    broken = raw[raw["malformed_reason"].notna()]
    assert broken["raw_line_masked"].notna().all()
    assert broken["transaction_id"].isna().all()
    assert not broken["raw_line_masked"].map(contains_pan).any()
    assert broken.loc[("acq_a", 4), "raw_line_masked"].endswith("...[truncated]")


def digits_of(texts) -> str:
    return "".join(ch for text in texts for ch in text if ch.isdigit())


@pytest.mark.parametrize("cut", [1, 8, 15])
def test_a_card_cut_by_a_line_break_is_not_kept_whole_across_the_malformed_rows(data_dir, cut):
    """A quoted field (or a broken JSON string) spanning lines leaves each piece a malformed row of its
    own; neither piece alone is a card, but together they were all its digits in clear."""
    pan = s.make_pan(serial=987654321)
    middle = pan[cut : cut + 4] if cut < 12 else ""
    rest = pan[cut + len(middle) :]
    lines = [
        s.a_row(1),
        f'2,{s.DAY}T12:00:00Z,"{pan[:cut]}',
        *([middle] if middle else []),
        f'{rest}",1,9.00',
    ]
    s.write_acq_a(data_dir, lines)
    s.write_acq_b(data_dir, [s.b_row(10), '{"txn_ref": "11", "card_number": "' + pan[:cut], pan[cut:] + '"}'])
    raw = ingest(data_dir)
    for feed in ("acq_a", "acq_b"):
        kept = raw.loc[(raw["feed"] == feed) & raw["malformed_reason"].notna(), "raw_line_masked"].tolist()
        assert pan not in digits_of(kept)
        assert pan[6:12] not in digits_of(kept)  # at most the BIN and the last 4 stay readable


def test_digits_at_the_ends_of_neighbouring_malformed_lines_that_make_no_card_are_kept(data_dir):
    s.write_acq_a(data_dir, [s.a_row(1), "900000000002,oops,12345", "678,oops"])
    kept = ingest(data_dir).dropna(subset=["malformed_reason"])["raw_line_masked"].tolist()
    assert kept == ["900000000002,oops,12345", "678,oops"]


def test_quoted_csv_fields_are_split_per_rfc_4180(data_dir):
    header = ",".join(s.A_HEADER)
    line = f'1,2018-04-01T12:00:01Z,{s.PANS[1]},1,"12,50",EUR,card_present,"a""b",auth,'
    s.write(data_dir, f"{FOLDER}/acq_a_{s.DAY}.csv", f"{header}\n{line}\n")
    row = ingest(data_dir).iloc[0]
    assert (row["amount"], row["three_ds"], row["original_transaction_id"]) == ("12,50", 'a"b', "")


def test_json_values_are_kept_as_their_text(data_dir):
    obj = {**s.b_row(7), "amount_minor": 1e3, "tds": True, "orig_ref": {"a": [1]}, "term_id": None}
    s.write_acq_b(data_dir, [json.dumps(obj)])
    row = ingest(data_dir).iloc[0]
    assert (row["amount"], row["three_ds"], row["original_transaction_id"], row["terminal_id"]) == (
        "1000.0",
        "true",
        '{"a":[1]}',
        None,
    )


def test_a_file_read_in_parallel_keeps_every_line_in_its_place(data_dir, monkeypatch):
    from fraud_assets.defs.raw import ingest as raw_ingest

    # Small read buffers: the engine splits the file between threads.
    monkeypatch.setattr(raw_ingest, "READER_MAX_LINE_BYTES", 16 << 10)
    n = 60_000
    rows = [s.a_row(i, amount=f"{i}.00") for i in range(1, n + 1)]
    s.write(data_dir, f"{FOLDER}/acq_a_{s.DAY}.csv", s.csv_text(rows) * 1)
    raw = ingest(data_dir)
    assert len(raw) == n
    assert (raw["transaction_id"].astype(int) == raw["row_number"]).all()


def test_concatenated_gzip_members_are_read_whole(data_dir):
    text = s.csv_text([s.a_row(1), s.a_row(2)]).splitlines(keepends=True)
    content = gzip.compress("".join(text[:2]).encode()) + gzip.compress(text[2].encode())
    s.write(data_dir, f"{FOLDER}/acq_a_{s.DAY}.csv.gz", content)
    assert ingest(data_dir)["transaction_id"].tolist() == ["1", "2"]


def test_a_byte_order_mark_opening_each_gzip_member_is_ignored(data_dir):
    """A producer appending members written by a BOM-writing encoder: each member's first line opens
    with U+FEFF, which used to make a genuine row malformed (or its id invalid)."""
    bom = "\ufeff"
    text = s.csv_text([s.a_row(1), s.a_row(2)]).splitlines(keepends=True)
    members = [bom + "".join(text[:2]), bom + text[2]]
    s.write(data_dir, f"{FOLDER}/acq_a_{s.DAY}.csv.gz", b"".join(gzip.compress(m.encode()) for m in members))
    lines = [json.dumps(s.b_row(10)) + "\n", json.dumps(s.b_row(11)) + "\n"]
    s.write(
        data_dir,
        f"{FOLDER}/acq_b_{s.DAY}.jsonl.gz",
        b"".join(gzip.compress((bom + line).encode()) for line in lines),
    )
    raw = ingest(data_dir)
    assert raw["malformed_reason"].isna().all()
    assert raw["transaction_id"].tolist() == ["1", "2", "10", "11"]


def test_a_card_number_in_another_field_is_masked_and_cvv_is_dropped(data_dir):
    row = {**s.a_row(1, terminal_id=s.PANS[3]), "cvv": "123"}
    s.write(data_dir, f"{FOLDER}/acq_a_{s.DAY}.csv", s.csv_text([row], [*s.A_HEADER, "cvv"]))
    raw = ingest(data_dir)
    assert raw["terminal_id"].iloc[0] == s.PANS[3][:6] + "******" + s.PANS[3][-4:]
    assert "cvv" not in raw.columns
    assert not contains_pan(raw.astype(str).to_csv())


def test_a_card_written_across_a_json_escape_is_masked_though_its_decoded_value_holds_none(data_dir):
    """`\\u0037` is the digit 7: decoded, `\\u0037` + `8282...` is the card one digit short (14 digits, no
    card), which used to be stored in clear; read as written, the line holds the card."""
    amex = s.make_pan("378282", 1, 15)
    written = "\\u00" + amex  # the JSON text as the producer wrote it
    assert json.loads(f'"{written}"') == amex[1:]
    assert not contains_pan(amex[1:])

    def line(tid: int, **fields: str) -> str:
        obj = s.b_row(tid, **dict.fromkeys(fields, "@"))
        return json.dumps(obj).replace('"@"', '"' + written + '"', len(fields))

    nested = json.dumps(s.b_row(13, orig_ref={"a": ["@"]})).replace('"@"', f'"{written}"')
    accented = json.dumps(s.b_row(14, tds="caf\u00e9 " + s.PANS[1]))  # an ordinary escape beside a card
    s.write_acq_b(
        data_dir, [line(10, tds=1), line(11, card_number=1), line(12, tds=1, ccy=1), nested, accented]
    )
    raw = ingest(data_dir).set_index("transaction_id")
    stored = raw.astype(str).to_csv()
    assert amex[2:] not in stored  # neither the card nor the 14 digits decoding leaves of it
    assert raw.loc["10", "three_ds"] == "78282*****0016"  # the card's digits starred, BIN and last 4 shown
    assert raw.loc["12", ["three_ds", "currency"]].tolist() == ["78282*****0016"] * 2
    assert raw.loc["13", "original_transaction_id"] == '{"a":["**************"]}'
    assert raw.loc["14", "three_ds"] == "caf\u00e9 453914******0014"
    # The PAN field is the invalid card number as written: its BIN and last 4, as a CSV field reads it.
    assert raw.loc["11", ["pan_valid", "pan_masked"]].tolist() == [False, "378282*****0016"]
    assert raw.loc[["10", "12", "13", "14"], "pan_valid"].all()


def test_a_file_changed_since_it_was_registered_fails_the_asset_without_writing(data_dir):
    path = s.write_acq_a(data_dir, [s.a_row(1)])
    conn = duckdb.connect(str(data_dir / "w.duckdb"))
    try:
        write_frame(conn, "raw.file_register", build_register(data_dir / "landing", None))
        path.write_bytes(gzip.compress(s.csv_text([s.a_row(1), s.a_row(2)]).encode()))
        with pytest.raises(dg.Failure, match="changed since it was registered"):
            ingest_authorizations(
                conn, LandingZone(root=str(data_dir / "landing")), Tokenizer(TEST_PAN_KEY), [s.DAY]
            )
    finally:
        conn.close()


def test_a_registered_file_replaced_by_a_symlink_is_not_followed(data_dir, tmp_path):
    path = s.write_acq_a(data_dir, [s.a_row(1)])
    conn = duckdb.connect(str(data_dir / "w.duckdb"))
    try:
        write_frame(conn, "raw.file_register", build_register(data_dir / "landing", None))
        outside = tmp_path / "outside.csv.gz"
        outside.write_bytes(path.read_bytes())
        os.replace(path, tmp_path / "moved")
        path.symlink_to(outside)
        with pytest.raises(dg.Failure, match="can no longer be opened"):
            ingest_authorizations(
                conn, LandingZone(root=str(data_dir / "landing")), Tokenizer(TEST_PAN_KEY), [s.DAY]
            )
    finally:
        conn.close()

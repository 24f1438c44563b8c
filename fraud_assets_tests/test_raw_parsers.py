"""Splitting landed lines into raw rows: as received, one row per line, PAN gone, never a crash."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraud_assets.defs.cleaned.transform import REASONS, clean_authorizations
from fraud_assets.defs.raw import json_written, parsers
from fraud_assets.lib.pan import Tokenizer, contains_pan, unescape_digits
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

TOK = Tokenizer(TEST_PAN_KEY)


def test_csv_columns_are_found_by_name_in_any_order():
    header = list(reversed(s.A_HEADER))
    lines = s.csv_text([s.a_row(1)], header).splitlines()
    df = parsers.parse_authorizations(lines, "acq_a")
    assert df["transaction_id"].iloc[0] == "1"
    assert df["terminal_id"].iloc[0] == "1"


def test_a_line_with_the_wrong_field_count_is_kept_as_malformed_and_masked():
    lines = s.csv_text([s.a_row(1)]).splitlines() + [f"2,{s.PANS[1]},oops"]
    df = parsers.tokenise(parsers.parse_authorizations(lines, "acq_a"), TOK)
    bad = df.iloc[1]
    assert bad["malformed_reason"] == "wrong_field_count"
    assert bad["row_number"] == 2
    assert s.PANS[1] not in bad["raw_line_masked"]
    assert bad["transaction_id"] is None


def test_a_huge_line_is_malformed_and_truncated_after_masking():
    huge = s.PANS[1] + "," + "x" * 1_000_000
    df = parsers.parse_authorizations(s.csv_text([s.a_row(1)]).splitlines() + [huge], "acq_a")
    bad = df.iloc[1]
    assert bad["malformed_reason"] == "line_too_long"
    assert len(bad["raw_line_masked"]) < 400
    assert not contains_pan(bad["raw_line_masked"])


def test_acq_b_keys_are_renamed_by_the_declared_mapping_and_values_kept_as_text():
    df = parsers.parse_authorizations([json.dumps(s.b_row(5))], "acq_b")
    row = df.iloc[0]
    assert (row["transaction_id"], row["amount"], row["tx_datetime"], row["message_type"]) == (
        "5",
        "1300",
        "01/04/2018 21:00:00",
        "0100",
    )


def test_json_values_are_read_as_written_only_where_that_reading_holds_a_card():
    """The as-written reading of a JSON value (escapes decoded but `\\u`) stars the decoded digits of a
    card it finds, escaped separators (`\\t`, `\\/`) joining digits as they do decoded; values in which it
    finds none, and cards the decoded reading finds, are read as before."""
    amex = s.make_pan("378282", 1, 15)

    def line(tid: int, tds: str) -> str:
        return json.dumps(s.b_row(tid, tds="@")).replace('"@"', f'"{tds}"')

    lines = [
        line(1, f"\\u00{amex[:6]}\\t{amex[6:]}"),  # a tab escape inside the card
        line(2, f"\\u00{amex[:4]}\\/{amex[4:]}"),  # an escaped slash
        line(3, "Y")[:-1] + f', "tds": "\\u00{amex}"}}',  # a duplicate key: the engine reads the first
        line(4, "caf\\u00e9 \\u00e8"),  # escapes and no card
        line(5, "".join(f"\\u00{ord(c):x}" for c in s.PANS[1])),  # a card the decoded reading finds
        line(6, f"\\u00{amex}")[:-1] + ",}",  # a trailing comma, which the engine accepts
        json.dumps(s.b_row(7, orig_ref="@")).replace('"@"', f'{{"a": ["\\u00{amex[:6]}\\t{amex[6:]}"]}}'),
    ]
    df = parsers.tokenise(parsers.parse_authorizations(lines, "acq_b"), Tokenizer(TEST_PAN_KEY))
    assert df["three_ds"].tolist() == [
        "78282\t*****0016",
        "782/82*****0016",
        "Y",
        "caf\u00e9 \u00e8",
        "453914******0014",
        "78282*****0016",
        "Y",
    ]
    nested = df["original_transaction_id"].iloc[-1]  # an object: the engine's text of it, digits starred
    assert nested.startswith('{"a":')
    assert not any(c.isdigit() for c in nested)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(obj=st.dictionaries(st.text(max_size=8), _JSON_VALUES, max_size=6), ascii_only=st.booleans())
def test_both_ways_of_finding_a_json_lines_members_agree_with_the_json_decoder(obj, ascii_only):
    line = json.dumps(obj, ensure_ascii=ascii_only)
    found = json_written.members(line)
    assert found == json_written._members_scanned(line)
    assert {k: json.loads(v) for k, v in found} == obj


def test_a_json_line_that_is_not_an_object_is_malformed():
    df = parsers.parse_authorizations(["[1, 2]", "{nope"], "acq_b")
    assert df["malformed_reason"].tolist() == ["not_a_json_object", "invalid_json"]


def test_cvv_and_track_data_are_dropped():
    row = {**s.a_row(1), "cvv": "123", "track2": ";4539148803436467=2512?"}
    lines = s.csv_text([row], [*s.A_HEADER, "cvv", "track2"]).splitlines()
    df = parsers.tokenise(parsers.parse_authorizations(lines, "acq_a"), TOK)
    assert not {"cvv", "track2", "pan"} & set(df.columns)
    obj = {**s.b_row(1), "cvv2": "999", "track1": "%B4539..."}
    df_b = parsers.tokenise(parsers.parse_authorizations([json.dumps(obj)], "acq_b"), TOK)
    assert not {"cvv2", "track1", "pan", "card_number"} & set(df_b.columns)


def test_tokenising_replaces_the_pan_by_token_bin_and_last4():
    df = parsers.tokenise(parsers.parse_authorizations(s.csv_text([s.a_row(1)]).splitlines(), "acq_a"), TOK)
    row = df.iloc[0]
    assert (row["pan_bin"], row["pan_last4"], row["pan_valid"]) == (s.PANS[1][:6], s.PANS[1][-4:], True)
    assert row["card_token"] == TOK.token(s.PANS[1])
    assert s.PANS[1] not in df.astype(str).to_string()


# Field values a messy producer could send: the valid ones, near misses and junk.
FIELD = st.one_of(
    st.sampled_from(["", " ", "0", "-1", "12,50", "1e9", "EUR", "XXX", "0400", "CP", "null", '"', ",", "\\"]),
    st.text(max_size=30),
    st.integers(-(10**20), 10**20).map(str),
    st.just(s.PANS[1]),
)
A_ROW = st.fixed_dictionaries({c: FIELD for c in s.A_HEADER})
B_VALUE = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), FIELD)
B_ROW = st.one_of(
    st.fixed_dictionaries({k: B_VALUE for k in parsers.ACQ_B_MAPPING}),
    st.text(max_size=60),  # not JSON at all
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a_rows=st.lists(A_ROW, max_size=6), b_rows=st.lists(B_ROW, max_size=6))
def test_any_generated_rows_parse_and_clean_without_crash_and_balance(a_rows, b_rows):
    b_lines = [r if isinstance(r, str) else json.dumps(r) for r in b_rows]
    b_lines = [ln for ln in b_lines if ln.strip() and "\n" not in ln and "\r" not in ln]
    a_rows = [r for r in a_rows if not any(ch in v for v in r.values() for ch in "\r\n")]
    if not a_rows and not b_lines:
        return
    raw = s.raw_frame(a_rows, b_lines)
    assert len(raw) == len(a_rows) + len(b_lines)
    raw_text = raw.astype(str).to_string()
    assert s.PANS[1] not in raw_text
    terminals, fx = s.reference_frames()
    out = clean_authorizations(raw, terminals, fx)
    r = out.reconciliation
    assert int(r["raw_rows"].sum()) == len(raw)
    accounted = r["cleaned_rows"] + r["quarantined_rows"] + r["duplicates_removed"] + r["reversal_rows"]
    assert (r["raw_rows"] == accounted).all()
    assert set(out.quarantine["reason"]) <= set(REASONS)
    assert not out.quarantine["offending_value"].dropna().map(contains_pan).any()
    assert (out.transactions["tx_amount"] >= 0).all()  # 0.00 is a genuine authorisation


def test_scrub_leaves_file_hashes_intact_even_when_they_hold_a_luhn_valid_digit_run():
    import pandas as pd

    from fraud_assets.defs.raw import parsers
    from fraud_assets.lib.pan import contains_pan

    # sha256(b"338") happens to hold a Luhn-valid 13-digit run ("6234409593679").
    digest = "5d8f6cce532a7aeb57196be62344095936793400b3aeb3580d248b17d5518a86"
    assert contains_pan(digest)
    df = pd.DataFrame({"file_sha256": [digest], "merchant_note": ["card 4539 1488 0343 6467"]})
    out = parsers.scrub(df.copy())
    assert out.loc[0, "file_sha256"] == digest
    assert "4539 1488 0343 6467" not in out.loc[0, "merchant_note"]


def test_a_card_cut_across_two_lines_in_memory_is_masked_as_the_file_reader_masks_it():
    """parse_authorizations (tools, tests) runs the file reader's masking: a quoted field spanning two
    lines leaves two malformed rows, neither alone a card, together all its digits in clear."""
    pan = s.make_pan(serial=987654321)
    lines = [*s.csv_text([s.a_row(1)]).splitlines(), f'2,{s.DAY}T12:00:00Z,"{pan[:8]}', f'{pan[8:]}",1,9.00']
    kept = parsers.parse_authorizations(lines, "acq_a")["raw_line_masked"].dropna().tolist()
    digits = "".join(ch for line in kept for ch in line if ch.isdigit())
    assert len(kept) == 2
    assert pan not in digits
    assert pan[6:12] not in digits  # at most the BIN and the last 4 stay readable


def test_a_card_cut_across_two_lines_with_its_first_half_escaped_is_masked():
    """The pieces of a cut card are read decoded too: the escaped digits are starred, escape and all."""
    pan = s.make_pan(serial=987654321)
    escaped = "".join(f"\\u{ord(c):04x}" for c in pan[:8])
    lines = [*s.csv_text([s.a_row(1)]).splitlines(), f'2,{s.DAY}T12:00:00Z,"{escaped}', f'{pan[8:]}",1,9.00']
    kept = parsers.parse_authorizations(lines, "acq_a")["raw_line_masked"].dropna().tolist()
    digits = "".join(ch for line in kept for ch in unescape_digits(line) if ch.isdigit())
    assert len(kept) == 2
    assert pan not in digits
    assert pan[6:12] not in digits  # at most the BIN and the last 4 stay readable

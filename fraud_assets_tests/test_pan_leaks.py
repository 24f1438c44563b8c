"""The leak detector behind the blocking `no_clear_pan` checks (issue 13, findings 1 and 2): every column
of any type, card numbers in any shape `mask_pans` masks, counts per column and never a value."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest
from dagster_duckdb import DuckDBResource
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_assets.lib.pan import luhn_check_digit, mask_pans
from fraud_assets.lib.pan_leaks import (
    SHORT_TYPES,
    digit_groups,
    find_pan_leaks,
    has_pan,
    luhn_windows,
    pans_in,
    scan_expression,
)
from fraud_assets.lib.table_checks import pan_scan, table_checks
from fraud_assets_tests.raw_cleaned_support import hidden_shapes, make_pan, text_with_a_card_number

PAN = "4539148803436467"


@pytest.fixture
def conn(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as c:
        yield c


def test_a_pan_in_an_int64_column_is_a_leak(conn):
    conn.execute(f"CREATE TABLE t AS SELECT * FROM (VALUES (1::BIGINT), ({PAN}::BIGINT)) v(customer_id)")
    assert find_pan_leaks(conn, "t") == {"customer_id": 1}


def test_a_pan_in_a_float64_column_is_a_leak(conn):
    conn.execute(f"CREATE TABLE t AS SELECT * FROM (VALUES (1.5::DOUBLE), ({PAN}::DOUBLE)) v(pan)")
    assert find_pan_leaks(conn, "t") == {"pan": 1}


def test_a_pan_in_a_decimal_or_a_struct_or_a_list_is_a_leak(conn):
    conn.execute(
        f"CREATE TABLE t AS SELECT {PAN}::DECIMAL(19, 0) AS d, {{'a': '{PAN}'}} AS s, ['x', '{PAN}'] AS l"
    )
    assert find_pan_leaks(conn, "t") == {"d": 1, "s": 1, "l": 1}


def test_fractions_clocks_and_hashes_of_ours_are_not_leaks(conn):
    conn.execute(
        "CREATE TABLE t AS SELECT 45.39148803436467::DOUBLE AS x, 0.4539148803436467::DOUBLE AS psi, "
        f"1764694441123456789::BIGINT AS file_mtime_ns, '{PAN}' || repeat('0', 48) AS card_token, "
        f"repeat('0', 48) || '{PAN}' AS file_sha256"
    )
    assert find_pan_leaks(conn, "t") == {}


def test_a_registry_version_whose_clock_and_digest_read_as_a_card_number_is_not_a_leak(conn):
    # The alert queue carries the model version; this one was made by a test run and failed the scan.
    version = "lr-20261205T144740572584-0940b335"
    assert has_pan(version)
    conn.execute(
        "CREATE TABLE t AS SELECT ? AS model_version, ? AS champion_version, ? AS drivers",
        [version, version, f"tx_amount={PAN}"],
    )
    assert find_pan_leaks(conn, "t") == {"drivers": 1}


@pytest.mark.parametrize(
    "text",
    [f"{PAN} 12/26", "4539.1488.0343.6467", "4539/1488/0343/6467", "4539\t1488\t0343\t6467", f"99{PAN}77"]
    + [
        "4539\u00a01488\u00a00343\u00a06467",
        "4539  1488  0343  6467",
        "".join(chr(0x0660 + int(c)) for c in PAN),
        *hidden_shapes(PAN).values(),
    ],
    ids=[
        "expiry",
        "dots",
        "slashes",
        "tabs",
        "in-a-run",
        "nbsp",
        "double-spaces",
        "arabic-indic",
        *hidden_shapes(PAN),
    ],  # fmt: skip
)
def test_pans_the_old_pattern_missed_are_leaks(conn, text):
    conn.execute("CREATE TABLE t AS SELECT ? AS note", [text])
    assert find_pan_leaks(conn, "t") == {"note": 1}


@pytest.mark.parametrize(
    "text",
    [
        "4539|1488|0343|6467",
        "4539+1488+0343+6467",
        "4539\uff5c1488\uff5c0343\uff5c6467",
        "/pay?pan=4539%201488%200343%206467&x=1",
        "4539%C2%A01488%C2%A00343%C2%A06467",
        "".join(f"%{ord(c):02x}" for c in PAN),
    ],
    ids=["bars", "plus", "fullwidth-bars", "url-spaces", "url-nbsp", "url-digits"],
)
def test_pans_in_barred_or_url_encoded_text_are_leaks(conn, text):
    conn.execute("CREATE TABLE t AS SELECT ? AS note", [text])
    assert find_pan_leaks(conn, "t") == {"note": 1}


@pytest.mark.parametrize(
    "form",
    ["%{}", "%25{}", "\\u00{}", "\\x{}", "%5Cx{}"],
    ids=["percent", "percent-twice", "json", "bytes", "url-bytes"],
)
def test_a_card_whose_first_digits_complete_an_escape_is_a_leak(conn, form):
    """Decoded, `%37` is a 7 and the card one digit short: the detector reads the text as written too."""
    card = make_pan("378282", 1, 15)
    text = form.format(card)
    assert card in pans_in(text)
    conn.execute("CREATE TABLE t AS SELECT ? AS note", [text])
    assert find_pan_leaks(conn, "t") == {"note": 1}


@settings(max_examples=80, deadline=None, database=None, derandomize=True)
@given(st.lists(st.one_of(text_with_a_card_number(), st.text(max_size=40)), min_size=1, max_size=20))
def test_the_scan_pre_filter_passes_every_value_the_detector_finds(values):
    """`find_pan_leaks` reads in Python only what its SQL pre-filter lets through."""
    with duckdb.connect() as c:
        c.execute("CREATE TABLE t AS SELECT unnest(?::VARCHAR[]) AS note", [values])
        assert find_pan_leaks(c, "t") == ({"note": n} if (n := sum(map(has_pan, values))) else {})


def test_ampersands_of_ordinary_text_are_no_candidates_of_the_scan_pre_filter(conn):
    ordinary = ["M&amp;S Store 4539", "AT&T 2018-04-01", "Fish &amp; Chips &lt;Ltd&gt;", "Q&A", "x" * 20]
    text, prefilter = scan_expression("note", "VARCHAR")
    conn.execute("CREATE TABLE t AS SELECT unnest(?::VARCHAR[]) AS note", [ordinary])
    assert conn.execute(f"SELECT count(*) FROM t WHERE {prefilter}").fetchone() == (0,)


def test_a_landing_file_name_with_a_date_and_a_sequence_number_is_not_a_leak(conn):
    """Underscores end a group: a business date and a numeric suffix are two numbers, not a card."""
    conn.execute("CREATE TABLE t AS SELECT 'acq_a_2018-04-01_00000.csv.gz' AS source_file")  # 2018040100000
    assert find_pan_leaks(conn, "t") == {}


def test_masked_text_is_not_a_leak(conn):
    conn.execute("CREATE TABLE t AS SELECT ? AS note", [mask_pans(f"{PAN} 12/26 and {PAN}")])
    assert find_pan_leaks(conn, "t") == {}


def test_only_rows_matching_the_filter_are_scanned(conn):
    conn.execute(f"CREATE TABLE t AS SELECT * FROM (VALUES (1, '{PAN}'), (2, 'fine')) v(day, note)")
    assert find_pan_leaks(conn, "t", "day = ?", [2]) == {}
    assert find_pan_leaks(conn, "t", "day = ?", [1]) == {"note": 1}


EXTREMES = {
    "BOOLEAN": "true",
    "TINYINT": "-128",
    "SMALLINT": "-32768",
    "INTEGER": "-2147483648",
    "UTINYINT": "255",
    "USMALLINT": "65535",
    "UINTEGER": "4294967295",
    "DATE": "'5881580-07-10'",
    "TIME": "'23:59:59.999999'",
    "TIME WITH TIME ZONE": "'23:59:59.999999-15:59'",
    "TIMESTAMP": "'294247-01-10 04:00:54.775806'",
    "TIMESTAMP_S": "'294247-01-10 04:00:54'",
    "TIMESTAMP_MS": "'294247-01-10 04:00:54.775'",
    "TIMESTAMP_NS": "'2262-04-11 23:47:16.854775'",
    "TIMESTAMP WITH TIME ZONE": "'294247-01-09 04:00:54.775806+00'",
    "INTERVAL": "to_months(-2147483647) + to_days(-2147483647) + to_microseconds(-9223372036854775807)",
}


def test_the_types_the_scan_skips_cannot_hold_13_digits_in_a_group(conn):
    assert set(EXTREMES) == SHORT_TYPES
    for column_type, extreme in EXTREMES.items():
        text = conn.execute(f"SELECT CAST(CAST({extreme} AS {column_type}) AS VARCHAR)").fetchone()[0]
        assert max((len(g) for g in digit_groups(text)), default=0) < 13, text


def _card_with_a_valid_14_digit_prefix() -> str:
    """A test card (16 digits) whose first 14 digits pass Luhn too."""
    prefix = "4539148803436" + luhn_check_digit("4539148803436")
    body = prefix + "0"
    return body + luhn_check_digit(body)


def test_a_card_is_reported_once_not_again_as_a_valid_run_inside_it():
    card = _card_with_a_valid_14_digit_prefix()
    assert luhn_windows(card) >= {card, card[:14]}
    assert pans_in(f"card {card[:4]} {card[4:8]} {card[8:12]} {card[12:]} declined") == {card}
    assert pans_in(f"{card} and {PAN}") == {card, PAN}


def test_a_valid_run_alone_is_still_a_card():
    card = _card_with_a_valid_14_digit_prefix()
    assert pans_in(f"x {card[:14]} y") == {card[:14]}


@settings(max_examples=120, deadline=None, database=None, derandomize=True)
@given(st.one_of(text_with_a_card_number(), st.text(alphabet="0123456789 -/x", max_size=60)))
def test_every_valid_run_lies_inside_a_reported_card(text):
    """One card per card, and nothing the detector finds is lost: each Luhn-valid run of a group lies
    inside a window `pans_in` reports (so the scan flags what it flagged)."""
    reported = pans_in(text)
    assert bool(reported) == has_pan(text)
    for group in digit_groups(text):
        for run in luhn_windows(group):
            assert any(run in card for card in reported), run


def test_the_detector_reads_groups_of_any_script_and_separator():
    assert PAN in pans_in(f"x {PAN} 12/26")
    assert has_pan("4539\u200b1488\u200b0343\u200b6467")
    assert not has_pan("4539,1488,0343,6467")


def _table_asset(values_sql: str):
    @dg.asset(key=["test", "snapshot"])
    def snapshot(duckdb: DuckDBResource) -> None:
        with duckdb.get_connection() as c:
            c.execute("CREATE SCHEMA IF NOT EXISTS test")
            c.execute(f"CREATE OR REPLACE TABLE test.snapshot AS {values_sql}")

    return snapshot


def test_the_blocking_check_fails_on_a_pan_in_a_numeric_column_and_names_only_the_column(tmp_path):
    asset = _table_asset(
        f"SELECT * FROM (VALUES (1::BIGINT, 1.0::DOUBLE), ({PAN}::BIGINT, 2.0)) v(customer_id, x)"
    )
    check = table_checks(asset, "test.snapshot", [pan_scan()])
    result = dg.materialize(
        [asset, check],
        resources={"duckdb": DuckDBResource(database=str(tmp_path / "w.duckdb"))},
        raise_on_error=False,
    )
    [ev] = result.get_asset_check_evaluations()
    assert next(iter(check.check_specs)).blocking
    assert not ev.passed
    assert ev.metadata["leaking_columns"].value == "customer_id"
    assert ev.metadata["leaking_rows"].value == 1
    assert PAN not in repr(ev.metadata)

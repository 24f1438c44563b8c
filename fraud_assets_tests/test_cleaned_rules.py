"""Cleaning rules, one defect each, on hand-written raw rows (docs/landing-zone.md, "Defects")."""

from __future__ import annotations

import pandas as pd
import pytest

from fraud_assets.defs.cleaned.transform import clean_authorizations
from fraud_assets_tests import raw_cleaned_support as s


def clean(a_rows=(), b_rows=(), **kw):
    terminals, fx = s.reference_frames()
    return clean_authorizations(s.raw_frame(a_rows, b_rows, **kw), terminals, fx)


def only_reason(out) -> str:
    assert len(out.quarantine) == 1, out.quarantine
    return out.quarantine["reason"].iloc[0]


def test_a_valid_acq_a_row_becomes_one_eur_utc_transaction():
    out = clean([s.a_row(1)])
    tx = out.transactions.iloc[0]
    assert (tx["transaction_id"], tx["tx_amount"], tx["currency"], tx["channel"]) == (
        1,
        10.0,
        "EUR",
        "card_present",
    )
    assert tx["tx_datetime"] == pd.Timestamp("2018-04-01 12:00:01")
    assert tx["tx_datetime_local"] == pd.Timestamp("2018-04-01 14:00:01")  # Paris, summer time


def test_comma_decimal_amount_is_parsed():
    assert clean([s.a_row(1, amount="12,50")]).transactions["tx_amount"].iloc[0] == 12.5
    assert clean([s.a_row(1, amount="12,5")]).transactions["tx_amount"].iloc[0] == 12.5


def test_acq_b_minor_units_use_the_currency_exponent():
    jpy = clean(b_rows=[s.b_row(1, amount_minor=1300, ccy="JPY")]).transactions.iloc[0]
    usd = clean(
        b_rows=[s.b_row(2, amount_minor=1250, ccy="USD", term_id=2, local_time="01/04/2018 08:00:00")]
    ).transactions.iloc[0]
    assert jpy["amount_original"] == 1300.0
    assert jpy["tx_amount"] == pytest.approx(10.0)
    assert usd["amount_original"] == 12.5
    assert usd["tx_amount"] == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("currency", "minor", "major"),
    [
        ("XPF", 1193, 1193.0),  # CFP franc: no minor unit (French Pacific merchants)
        ("RWF", 10000, 10000.0),
        ("KMF", 4920, 4920.0),
        ("GNF", 90000, 90000.0),
        ("VUV", 1300, 1300.0),
        ("DJF", 1780, 1780.0),
        ("BIF", 3000, 3000.0),
        ("KWD", 3300, 3.3),
        ("CLF", 3000, 0.3),  # Unidad de Fomento: four decimals
        ("SEK", 11000, 110.0),
    ],
)
def test_acq_b_minor_units_follow_iso_4217_for_every_currency(currency, minor, major):
    terminals, _ = s.reference_frames()
    fx = pd.DataFrame({"rate_date": pd.to_datetime([s.DAY]), "quote_currency": [currency], "rate": [2.0]})
    raw = s.raw_frame(b_rows=[s.b_row(1, amount_minor=minor, ccy=currency)])
    tx = clean_authorizations(raw, terminals, fx).transactions.iloc[0]
    assert tx["amount_original"] == pytest.approx(major)
    assert tx["tx_amount"] == pytest.approx(major / 2.0)


def test_acq_b_is_mapped_to_canonical_columns_and_codes():
    tx = clean(b_rows=[s.b_row(7, chan="CP", tds="", msg="0100")]).transactions.iloc[0]
    assert (tx["transaction_id"], tx["terminal_id"], tx["channel"], tx["feed"]) == (
        7,
        3,
        "card_present",
        "acq_b",
    )
    assert pd.isna(tx["three_ds"])


def test_acq_b_dd_mm_local_time_is_converted_to_utc_through_the_terminal_zone():
    # 02/04 is 2 April (dd/mm), 08:30 in New York (EDT, UTC-4) = 12:30 UTC.
    tx = clean(b_rows=[s.b_row(1, term_id=2, ccy="USD", local_time="01/04/2018 08:30:00")]).transactions
    assert tx["tx_datetime"].iloc[0] == pd.Timestamp("2018-04-01 12:30:00")
    assert tx["tx_datetime_local"].iloc[0] == pd.Timestamp("2018-04-01 08:30:00")


def test_pan_with_spaces_or_dashes_gets_the_same_token_as_the_plain_pan():
    pan = s.PANS[1]
    spaced = " ".join(pan[i : i + 4] for i in range(0, 16, 4))
    dashed = "-".join(pan[i : i + 4] for i in range(0, 16, 4))
    out = clean([s.a_row(1), s.a_row(2, pan=spaced), s.a_row(3, pan=dashed)])
    assert out.transactions["card_token"].nunique() == 1
    assert len(out.transactions) == 3


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"terminal_id": ""}, "missing_terminal_id"),
        ({"terminal_id": "999"}, "unknown_terminal"),
        ({"amount": "-12.00"}, "negative_amount"),
        ({"amount": "-0.01"}, "negative_amount"),
        ({"amount": "9" * 400}, "invalid_amount"),  # overflows a double: not a number we can use
        ({"amount": "twelve"}, "invalid_amount"),
        ({"amount": "1,234"}, "invalid_amount"),  # a thousands separator, not 1.234: ambiguous
        ({"amount": "-1,234"}, "invalid_amount"),
        ({"pan": "4539148803436468"}, "invalid_pan"),
        ({"pan": "1234"}, "invalid_pan"),
        ({"currency": "XXX"}, "unknown_currency"),
        ({"tx_datetime": "2099-01-01T00:00:00Z"}, "future_timestamp"),
        ({"tx_datetime": "2018-04-03T10:00:00Z"}, "future_timestamp"),
        ({"tx_datetime": "2018-03-30T10:00:00Z"}, "outside_business_date"),
        ({"tx_datetime": "yesterday"}, "invalid_timestamp"),
        ({"transaction_id": "12a"}, "invalid_transaction_id"),
        ({"channel": "telepathy"}, "invalid_channel"),
        ({"three_ds": "Q"}, "invalid_three_ds"),
        ({"message_type": "refund"}, "invalid_message_type"),
        ({"message_type": "reversal"}, "missing_original_transaction_id"),
    ],
)
def test_bad_row_is_quarantined_with_its_reason(override, reason):
    out = clean([s.a_row(1, **override), s.a_row(2)])
    assert only_reason(out) == reason
    assert out.transactions["transaction_id"].tolist() == [2]


def test_an_amount_of_10_to_the_12_or_more_in_its_currency_or_in_eur_is_invalid():
    """No card payment is that large, and its double may print as a card number: "9" x 23 holds none,
    its double prints 99999999999999991611392, which holds one, and failed the blocking no_clear_pan
    check of cleaned/transactions (the day's features and scores waited on it)."""
    import duckdb

    from fraud_assets.lib.pan_leaks import find_pan_leaks

    out = clean(
        [
            s.a_row(1, amount="9" * 23),
            s.a_row(2, amount="900000000000", currency="GBP", terminal_id="5"),  # 1.125e12 EUR at 0.8
            s.a_row(3, amount="999999999999.99"),
        ],
        [s.b_row(4, amount_minor=int("9" * 23))],
    )
    assert out.quarantine["reason"].tolist() == ["invalid_amount"] * 3
    assert out.transactions["transaction_id"].tolist() == [3]
    with duckdb.connect() as conn:
        conn.register("t", out.transactions)
        assert find_pan_leaks(conn, "t") == {}


def test_a_zero_amount_authorisation_is_a_genuine_transaction():
    # Account verification and the first probe of card testing are authorised for 0.00.
    out = clean([s.a_row(1, amount="0.00"), s.a_row(2, amount="0")], [s.b_row(3, amount_minor=0)])
    assert out.quarantine.empty
    assert sorted(out.transactions["transaction_id"]) == [1, 2, 3]
    assert (out.transactions["tx_amount"] == 0).all()


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("transaction_id", "١٢٣", "invalid_transaction_id"),
        ("terminal_id", "١", "unknown_terminal"),
        ("original_transaction_id", "١٢٣", "missing_original_transaction_id"),
        ("amount", "١٠.00", "invalid_amount"),
    ],
)
def test_only_ascii_digits_make_a_number(column, value, reason):
    # Arabic-Indic "١٢٣" is 123 to Python's `\d` and int(): it must not supersede or reverse transaction
    # 123, nor "١" name terminal 1.
    row = {"amount": "999.00", column: value}
    if column == "original_transaction_id":
        row["message_type"] = "reversal"
    out = clean([s.a_row(123), s.a_row(7, **row)])
    assert out.transactions["transaction_id"].tolist() == [123]
    assert out.transactions["tx_amount"].tolist() == [10.0]
    assert out.quarantine[["reason", "offending_column"]].values.tolist() == [[reason, column]]


def test_a_leap_second_stays_on_its_business_date():
    # 23:59:60 UTC is 08:59:60 the next morning in Tokyo (processor B's local time).
    out = clean(
        [s.a_row(1, tx_datetime=f"{s.DAY}T23:59:60Z")], [s.b_row(2, local_time="02/04/2018 08:59:60")]
    )
    assert out.quarantine.empty
    assert out.transactions["tx_datetime"].tolist() == [pd.Timestamp(f"{s.DAY} 23:59:59")] * 2


def test_a_timestamp_in_year_9999_is_in_the_future():
    out = clean(
        [s.a_row(1, tx_datetime="9999-12-31T23:59:59Z")], [s.b_row(2, local_time="31/12/9999 23:59:59")]
    )
    assert out.quarantine["reason"].tolist() == ["future_timestamp"] * 2


def test_a_day_without_a_rate_converts_with_the_latest_earlier_rate_within_four_days():
    """Reference rates are not published at weekends and on holidays: a bank converts with the last
    published rate (Thursday's on Easter Monday), never with a later one, and not with a stale one."""
    usd = {"currency": "USD", "amount": "12.50"}
    for day, kept in (
        ("2018-04-03", True),
        ("2018-04-05", True),
        ("2018-04-06", False),
        ("2018-03-31", False),
    ):
        landed = (pd.Timestamp(day) + pd.Timedelta(days=1)).date().isoformat()
        out = clean([s.a_row(1, tx_datetime=f"{day}T12:00:00Z", **usd)], day=day, landed=landed)
        if kept:
            tx = out.transactions.iloc[0]
            assert (tx["fx_rate"], tx["tx_amount"]) == (1.25, 10.0), day
        else:
            assert only_reason(out) == "unknown_currency", day


def test_unknown_currency_in_acq_b_is_quarantined():
    assert only_reason(clean(b_rows=[s.b_row(1, ccy="ZZZ")])) == "unknown_currency"


def test_broken_json_line_is_quarantined_as_malformed_with_the_pan_masked():
    line = '{"txn_ref": "9", "card_number": "' + s.PANS[2] + '", '
    out = clean(b_rows=[line, s.b_row(1)])
    q = out.quarantine.iloc[0]
    assert q["reason"] == "malformed_line"
    assert s.PANS[2] not in q["offending_value"]
    assert s.PANS[2][:6] in q["offending_value"]
    assert s.PANS[2][-4:] in q["offending_value"]


def test_invalid_pan_offending_value_shows_at_most_bin_and_last4():
    bad = s.PANS[1][:-1] + str((int(s.PANS[1][-1]) + 1) % 10)
    q = clean([s.a_row(1, pan=bad)]).quarantine.iloc[0]
    assert q["offending_value"] == bad[:6] + "******" + bad[-4:]


def test_exact_retransmission_is_kept_once_and_counted():
    out = clean([s.a_row(1), s.a_row(1), s.a_row(2)])
    assert out.transactions["transaction_id"].tolist() == [1, 2]
    assert out.reconciliation["duplicates_removed"].iloc[0] == 1
    assert out.quarantine.empty


def test_a_differing_copy_of_a_transaction_is_quarantined_as_superseded():
    out = clean([s.a_row(1, amount="10.00"), s.a_row(1, amount="11.00")])
    assert len(out.transactions) == 1
    assert only_reason(out) == "superseded_by_correction"


def test_reversal_removes_itself_and_its_authorisation():
    out = clean([s.a_row(1), s.a_row(2, message_type="reversal", original_transaction_id=1), s.a_row(3)])
    assert out.transactions["transaction_id"].tolist() == [3]
    assert out.reconciliation["reversal_rows"].iloc[0] == 2
    assert out.quarantine.empty


def test_acq_b_reversal_code_0400_is_a_reversal():
    out = clean(b_rows=[s.b_row(1), s.b_row(2, msg="0400", orig_ref="1")])
    assert out.transactions.empty
    assert out.reconciliation["reversal_rows"].iloc[0] == 2


@pytest.mark.parametrize(
    "mismatch",
    [{"pan": s.PANS[2]}, {"amount": "2.50"}, {"currency": "USD"}],
    ids=["another_card", "partial_amount", "another_currency"],
)
def test_a_reversal_that_does_not_match_its_authorisation_does_not_erase_it(mismatch):
    # Another card's reversal naming the id, or a partial one: the authorisation stays, the reversal waits
    # in the quarantine for someone to look at it.
    out = clean([s.a_row(1), s.a_row(2, message_type="reversal", original_transaction_id=1, **mismatch)])
    assert out.transactions["transaction_id"].tolist() == [1]
    assert only_reason(out) == "orphan_reversal"
    assert out.reconciliation["reversal_rows"].iloc[0] == 0


def test_reversal_without_its_authorisation_is_quarantined_as_orphan():
    out = clean([s.a_row(2, message_type="reversal", original_transaction_id=77)])
    assert only_reason(out) == "orphan_reversal"


def test_every_raw_row_is_accounted_for():
    out = clean(
        [
            s.a_row(1),
            s.a_row(1),
            s.a_row(2, amount="-1"),
            s.a_row(3, message_type="reversal", original_transaction_id=4),
            s.a_row(4),
        ],
        [s.b_row(10), "not json"],
    )
    r = out.reconciliation.iloc[0]
    assert r["raw_rows"] == 7
    assert (
        r["raw_rows"]
        == r["cleaned_rows"] + r["quarantined_rows"] + r["duplicates_removed"] + r["reversal_rows"]
    )
    assert (r["cleaned_rows"], r["quarantined_rows"], r["duplicates_removed"], r["reversal_rows"]) == (
        2,
        2,
        1,
        2,
    )


def test_ambiguous_autumn_hour_is_read_as_summer_time():
    terminals, fx = s.reference_frames()
    raw = s.raw_frame(
        b_rows=[s.b_row(1, term_id=1, ccy="EUR", local_time="28/10/2018 02:30:00")],
        day="2018-10-28",
        landed="2018-10-29",
    )
    fx = fx.assign(rate_date=pd.Timestamp("2018-10-28"))
    tx = clean_authorizations(raw, terminals, fx).transactions
    assert tx["tx_datetime"].iloc[0] == pd.Timestamp("2018-10-28 00:30:00")

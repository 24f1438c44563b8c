"""Parquet snapshots (cardholders, merchants): wrong types are refused at the register and the last
good snapshot stays, a row the cleaned layer cannot use keeps its reason; a card number is never stored
in clear, whatever the column's type (issue 13, findings 1 and 8)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fraud_assets.defs.raw.assets import build_register
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY

LATER = "2018-04-05"


def write_snapshot(data_dir, source: str, table: pa.Table | pd.DataFrame, day: str = LATER) -> str:
    rel = f"{source}/{day}/{source}_{day}.parquet"
    path = data_dir / "landing" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table, preserve_index=False)
    pq.write_table(table, path)
    return rel


def reason_of(data_dir, rel: str):
    reg = build_register(data_dir / "landing", None).set_index("source_file")
    return reg.loc[rel, "status"], reg.loc[rel, "reason"]


def materialise_reference(data_dir) -> dg.ExecuteInJobResult:
    defs = s.defs_for(data_dir)
    keys = ["raw/file_register", "raw/cardholders", "raw/merchants"]
    return dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys]),
        resources=build_resources(data_dir, TEST_PAN_KEY),
    )


def table(data_dir, name: str) -> pd.DataFrame:
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        return conn.execute(f"SELECT * FROM {name}").df()


@pytest.mark.parametrize(
    ("column", "value"),
    [("terminal_id", "T0"), ("x", "n/a"), ("merchant_id", 1.5), ("timezone", 3)],
)
def test_a_merchants_snapshot_with_a_wrong_column_type_is_rejected(data_dir, column, value):
    """Finding 8: a value that does not fit its column's type refuses the file at the register."""
    rel = write_snapshot(data_dir, "merchants", s.TERMINALS.assign(**{column: value}))
    assert reason_of(data_dir, rel) == ("rejected", "wrong_types")


def test_a_cardholder_issue_date_that_is_not_a_date_is_rejected(data_dir):
    s.write_reference(data_dir)
    good = table_from_reference(data_dir, "cardholders")
    rel = write_snapshot(data_dir, "cardholders", good.assign(issued_at="yesterday"))
    assert reason_of(data_dir, rel) == ("rejected", "wrong_types")


ISSUE_DATES_PANDAS_CANNOT_HOLD = {
    "engine-infinity": pa.array([2**31 - 1], pa.date32()),
    "date32-minimum": pa.array([-(2**31)], pa.date32()),
    "date64-far-future": pa.array([2**62], pa.date64()),
    "year-9999": pa.array([dt.date(9999, 12, 31)], pa.date32()),
    "dotnet-default-0001-01-01": pa.array([dt.date(1, 1, 1)], pa.date32()),
    "timestamp-year-148108": pa.array([2**62], pa.timestamp("us")),
}


def _one_card(issued_at: pa.Array) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array([9], pa.int64()),
            "pan": [s.make_pan("453914", 9)],
            "home_x": [1.0],
            "home_y": [1.0],
            "home_country": ["FR"],
            "issued_at": issued_at,
        }
    )


@pytest.mark.parametrize("issued_at", list(ISSUE_DATES_PANDAS_CANNOT_HOLD), ids=str)
def test_a_cardholder_issue_date_pandas_cannot_hold_is_rejected(data_dir, issued_at):
    """A Parquet date beyond 1677-2262 failed the asset's preview (the engine's `infinity`) or the
    blocking raw contract (year 9999, 0001-01-01): raw/cardholders, which rebuilds from every snapshot,
    stayed broken for good."""
    rel = write_snapshot(data_dir, "cardholders", _one_card(ISSUE_DATES_PANDAS_CANNOT_HOLD[issued_at]))
    assert reason_of(data_dir, rel) == ("rejected", "wrong_types")


def test_after_snapshots_with_impossible_issue_dates_raw_cardholders_still_succeeds(data_dir):
    s.write_reference(data_dir)
    for day, name in [("2018-04-05", "engine-infinity"), ("2018-04-06", "year-9999")]:
        write_snapshot(data_dir, "cardholders", _one_card(ISSUE_DATES_PANDAS_CANNOT_HOLD[name]), day=day)
    assert materialise_reference(data_dir).success
    assert sorted(table(data_dir, "raw.cardholders")["customer_id"]) == [1, 2, 3]


def test_an_integer_too_large_for_the_column_is_rejected(data_dir):
    ids = pa.array([2**64 - 1, 1, 2, 3, 4], pa.uint64())
    rel = write_snapshot(
        data_dir, "merchants", pa.Table.from_pandas(s.TERMINALS).set_column(0, "terminal_id", ids)
    )
    assert reason_of(data_dir, rel) == ("rejected", "wrong_types")


def table_from_reference(data_dir, source: str) -> pd.DataFrame:
    return pd.read_parquet(next((data_dir / "landing" / source).rglob("*.parquet")))


def test_after_a_wrongly_typed_snapshot_raw_merchants_keeps_the_last_good_one_and_succeeds(data_dir):
    """Finding 8: the asset rebuilds from every ingested file, so a bad one used to break it for good."""
    s.write_reference(data_dir)
    write_snapshot(data_dir, "merchants", s.TERMINALS.assign(terminal_id="T0", x="n/a"))
    result = materialise_reference(data_dir)
    assert result.success
    merchants = table(data_dir, "raw.merchants")
    assert sorted(merchants["terminal_id"]) == [1, 2, 3, 4, 5]
    assert set(merchants["source_file"]) == {f"merchants/{s.DAY}/merchants_{s.DAY}.parquet"}


def one_terminal(column: str, value: str) -> pd.DataFrame:
    """The reference terminals with terminal 5's `column` set to `value`."""
    terminals = s.TERMINALS.copy()
    terminals.loc[terminals["terminal_id"] == 5, column] = value
    return terminals


def invalid_reasons(data_dir, rel: str) -> list:
    """The `invalid_reason` of each row of snapshot `rel` in its raw table, by row number."""
    assert reason_of(data_dir, rel) == ("ingested", None)
    assert materialise_reference(data_dir).success
    source = rel.split("/")[0]
    rows = table(data_dir, f"raw.{source}")
    rows = rows[rows["source_file"] == rel].sort_values("row_number")
    return [None if pd.isna(v) else v for v in rows["invalid_reason"]]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("timezone", "Mars/Olympus_Mons", "invalid_timezone"),
        ("timezone", "europe/london", "invalid_timezone"),
        ("mcc", "54111", "invalid_mcc"),
        ("currency", "", "invalid_currency"),
    ],
)
def test_a_merchants_value_the_terminals_contract_refuses_is_a_row_reason_not_a_rejected_file(
    data_dir, column, value, reason
):
    """One bad terminal no longer costs the snapshot's genuine rows: its row keeps its reason."""
    rel = write_snapshot(data_dir, "merchants", one_terminal(column, value))
    assert invalid_reasons(data_dir, rel) == [None, None, None, None, reason]


@pytest.mark.parametrize(
    ("source", "column", "value", "reason"),
    [
        ("merchants", "x", float("inf"), "invalid_position"),
        ("merchants", "y", -5e10, "invalid_position"),
        ("cardholders", "home_x", float("-inf"), "invalid_position"),
        ("cardholders", "home_y", float("nan"), None),
    ],
)
def test_an_infinite_position_is_a_row_reason_and_nan_reads_as_missing(
    data_dir, source, column, value, reason
):
    """A distance to an infinite position is infinite, and the models refuse any infinite input."""
    s.write_reference(data_dir)
    snapshot = table_from_reference(data_dir, source)
    snapshot.loc[0, column] = value
    rel = write_snapshot(data_dir, source, pa.Table.from_pandas(snapshot, preserve_index=False))
    assert invalid_reasons(data_dir, rel)[0] == reason


@pytest.mark.parametrize(
    ("source", "column", "reason"),
    [
        ("merchants", "timezone", "missing_timezone"),
        ("merchants", "terminal_id", "missing_terminal_id"),
        ("cardholders", "customer_id", "missing_customer_id"),
        ("cardholders", "pan", "missing_pan"),
    ],
)
def test_a_row_missing_a_required_value_keeps_its_reason(data_dir, source, column, reason):
    """cleaned/terminals and cleaned/cards cannot place such a row: it is quarantined, with a reason."""
    s.write_reference(data_dir)
    snapshot = pa.Table.from_pandas(table_from_reference(data_dir, source), preserve_index=False)
    at = snapshot.schema.get_field_index(column)
    values = snapshot.column(at).to_pylist()
    snapshot = snapshot.set_column(at, column, pa.array([None, *values[1:]], snapshot.schema.field(at).type))
    rel = write_snapshot(data_dir, source, snapshot)
    assert invalid_reasons(data_dir, rel) == [reason] + [None] * (len(values) - 1)


def test_a_snapshot_rejected_for_a_value_before_row_reasons_is_judged_again(data_dir):
    """A register row rejected `invalid_value` (a reason the door no longer gives a file) is read again,
    though the file is unchanged: its genuine rows are ingested."""
    rel = write_snapshot(data_dir, "merchants", one_terminal("timezone", "Mars/Olympus_Mons"))
    first = build_register(data_dir / "landing", None)
    first.loc[first["source_file"] == rel, ["status", "reason", "rows_landed"]] = [
        "rejected",
        "invalid_value",
        0,
    ]
    again = build_register(data_dir / "landing", first).set_index("source_file")
    assert (again.loc[rel, "status"], again.loc[rel, "reason"], again.loc[rel, "rows_landed"]) == (
        "ingested",
        None,
        5,
    )


def test_one_terminal_with_an_unknown_time_zone_stops_no_cleaning_and_its_version_before_stays(data_dir):
    """The terminals contract (blocking) accepts IANA zones only: a later snapshot with one bad zone used
    to be ingested, fail cleaned/terminals and with it every day's cleaning. Its row is quarantined and
    the terminal's version before it carries on."""
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(1), s.a_row(2, terminal_id="5", currency="GBP")])
    write_snapshot(data_dir, "merchants", one_terminal("timezone", "Mars/Olympus_Mons"), day=s.LANDED)
    results = s.run_pipeline(data_dir, raise_on_error=False)
    assert all(r.success for r in results)
    terminals = table(data_dir, "cleaned.terminals")
    assert terminals.loc[terminals["terminal_id"] == 5, "timezone"].tolist() == ["Europe/London"]
    assert sorted(table(data_dir, "cleaned.transactions")["transaction_id"]) == [1, 2]
    quarantined = table(data_dir, "cleaned.reference_quarantine")
    assert quarantined[["source", "reason", "offending_value"]].values.tolist() == [
        ["merchants", "invalid_timezone", "Mars/Olympus_Mons"]
    ]


@pytest.mark.parametrize("pan_type", [pa.int64(), pa.float64(), pa.decimal128(19, 0)])
def test_a_pan_column_of_a_numeric_type_is_tokenised(data_dir, pan_type):
    """Finding 1: a PAN typed int64/float64 used to be stored in clear."""
    s.write_reference(data_dir)
    pans = [int(p) for p in s.PANS.values()]
    values = [float(p) for p in pans] if pa.types.is_floating(pan_type) else pans
    good = table_from_reference(data_dir, "cardholders")
    snap = pa.Table.from_pandas(good, preserve_index=False)
    snap = snap.set_column(snap.schema.get_field_index("pan"), "pan", pa.array(values, pan_type))
    rel = write_snapshot(data_dir, "cardholders", snap)
    assert reason_of(data_dir, rel) == ("ingested", None)
    assert materialise_reference(data_dir).success
    cards = table(data_dir, "raw.cardholders")
    later = cards[cards["source_file"] == rel]
    assert later["pan_valid"].all()
    assert sorted(later["pan_last4"]) == sorted(p[-4:] for p in s.PANS.values())
    assert not any(p in cards.astype(str).to_csv() for p in s.PANS.values())


@pytest.mark.parametrize(
    ("source", "column", "as_type"),
    [
        ("cardholders", "customer_id", pa.int64()),
        ("cardholders", "home_x", pa.float64()),
        ("cardholders", "home_country", pa.string()),
        ("merchants", "merchant_id", pa.int64()),
        ("merchants", "mcc", pa.string()),
    ],
)
def test_a_card_number_in_another_snapshot_column_rejects_the_snapshot(data_dir, source, column, as_type):
    """Finding 1: a bank rejects a cardholder snapshot whose customer_id is a card number rather than
    guess which column holds what."""
    s.write_reference(data_dir)
    good = pa.Table.from_pandas(table_from_reference(data_dir, source), preserve_index=False)
    n = good.num_rows
    pan = s.PANS[2]
    raw = [pan] + [str(i) for i in range(1, n)]
    values = pa.array(
        raw
        if pa.types.is_string(as_type)
        else [float(v) if pa.types.is_floating(as_type) else int(v) for v in raw],
        as_type,
    )
    snap = good.set_column(good.schema.get_field_index(column), column, values)
    rel = write_snapshot(data_dir, source, snap)
    assert reason_of(data_dir, rel) == ("rejected", "pan_outside_pan_column")


def test_a_card_number_in_a_numbers_integral_part_rejects_the_snapshot(data_dir):
    """The leak check reads a number by its integral part: so does the door (4222222222222.5)."""
    s.write_reference(data_dir)
    good = pa.Table.from_pandas(table_from_reference(data_dir, "cardholders"), preserve_index=False)
    values = pa.array([4222222222222.5] + [float(i) for i in range(1, good.num_rows)], pa.float64())
    snap = good.set_column(good.schema.get_field_index("home_x"), "home_x", values)
    assert reason_of(data_dir, write_snapshot(data_dir, "cardholders", snap)) == (
        "rejected",
        "pan_outside_pan_column",
    )


def test_a_text_value_too_long_for_any_name_rejects_the_snapshot(data_dir):
    """A long value would only cost the card-number search (Python, per character), in time and memory."""
    terminals = s.TERMINALS.copy()
    terminals.loc[0, "timezone"] = "1" * 50_000
    rel = write_snapshot(data_dir, "merchants", terminals)
    assert reason_of(data_dir, rel) == ("rejected", "value_too_long")


@pytest.mark.parametrize("second", ["pan", "PAN", "Pan"])
def test_a_snapshot_naming_a_read_column_twice_is_rejected(data_dir, second):
    """The engine reads the first of two `pan` columns (names compare case-insensitively) and renames
    the second: the cards in it were dropped unseen, or the first could hold the card and the second not."""
    columns = [pa.array([1, 2], pa.int64()), pa.array(["", ""]), pa.array([s.PANS[1], s.PANS[2]])]
    snapshot = pa.Table.from_arrays(columns, names=["customer_id", "pan", second])
    rel = write_snapshot(data_dir, "cardholders", snapshot)
    assert reason_of(data_dir, rel) == ("rejected", "duplicate_columns")


def test_a_field_of_a_nested_column_may_share_a_read_columns_name(data_dir):
    nested = pa.array([{"pan": "x", "inner": {"customer_id": 1}}] * 3)
    good = pa.table({"customer_id": [1, 2, 3], "pan": list(s.PANS.values()), "extra": nested})
    rel = write_snapshot(data_dir, "cardholders", good)
    assert reason_of(data_dir, rel) == ("ingested", None)


def test_a_snapshot_without_a_required_column_is_rejected(data_dir):
    rel = write_snapshot(data_dir, "merchants", s.TERMINALS.drop(columns=["timezone"]))
    assert reason_of(data_dir, rel) == ("rejected", "missing_columns")


def test_a_file_that_is_not_parquet_is_unreadable(data_dir):
    rel = f"merchants/{LATER}/merchants_{LATER}.parquet"
    s.write(data_dir, rel, b"PAR1 not really")
    assert reason_of(data_dir, rel) == ("rejected", "unreadable_parquet")


def test_a_snapshot_over_the_row_cap_is_rejected(data_dir):
    from fraud_assets.defs.raw.limits import ReaderLimits

    rel = write_snapshot(data_dir, "merchants", s.TERMINALS)
    reg = build_register(data_dir / "landing", None, limits=ReaderLimits(max_rows=3)).set_index("source_file")
    assert reg.loc[rel, "reason"] == "too_many_rows"


def test_a_snapshot_whose_footer_is_over_its_cap_is_rejected_before_the_engine_parses_it(data_dir):
    """A footer is decoded whole, into ~20x its size (a 31 MB one of 500,000 column chunks took 530 MB
    and 6 s), before the caps on rows and row groups it declares can be looked at."""
    from fraud_assets.defs.raw.limits import KIB, ReaderLimits

    wide = pa.Table.from_pandas(s.TERMINALS, preserve_index=False)
    for i in range(1000):
        wide = wide.append_column(f"unread_{i}", pa.nulls(len(wide), pa.int8()))
    rel = write_snapshot(data_dir, "merchants", wide)
    limits = ReaderLimits(max_footer_bytes=64 * KIB)
    reg = build_register(data_dir / "landing", None, limits=limits).set_index("source_file")
    assert (reg.loc[rel, "status"], reg.loc[rel, "reason"]) == ("rejected", "too_large")


def test_a_compression_bomb_inside_a_snapshot_is_rejected(data_dir):
    """40 MB of one repeated value in about 100 KB: the text feeds' ratio cap holds for Parquet too,
    on the sizes the file declares, before its pages are inflated."""
    s.write_reference(data_dir)
    good = table_from_reference(data_dir, "cardholders")
    rows = 10_000
    bomb = pd.DataFrame(
        {
            "customer_id": range(rows),
            "pan": good["pan"].iloc[0],
            "home_country": "F" * 4000,
        }
    )
    rel = f"cardholders/{LATER}/cardholders_{LATER}.parquet"
    path = data_dir / "landing" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.Table.from_pandas(bomb, preserve_index=False), path, compression="zstd", use_dictionary=False
    )
    assert path.stat().st_size < 200_000
    assert reason_of(data_dir, rel) == ("rejected", "compression_ratio_too_high")


def test_millions_of_equal_rows_in_a_few_kilobytes_are_rejected(data_dir):
    """Run-length encoding declares 3 million equal rows in ~25 KB, so the declared size passes the
    ratio; each of them would still be a raw row (at the row cap, 200 million of them, rebuilt into
    raw/cardholders at every run)."""
    rows = 3_000_000
    equal = pa.table(
        {
            "customer_id": pa.array([1], pa.int64()).take(pa.array([0] * rows)),
            "pan": pa.array([s.PANS[1]]).take(pa.array([0] * rows)),
        }
    )
    rel = write_snapshot(data_dir, "cardholders", equal)
    assert (data_dir / "landing" / rel).stat().st_size < 100_000
    assert reason_of(data_dir, rel) == ("rejected", "compression_ratio_too_high")


def test_optional_columns_absent_from_a_snapshot_arrive_as_null(data_dir):
    write_snapshot(data_dir, "merchants", s.TERMINALS.drop(columns=["mcc", "x"]), day=s.DAY)
    assert materialise_reference(data_dir).success
    merchants = table(data_dir, "raw.merchants")
    assert merchants["mcc"].isna().all()
    assert merchants["x"].isna().all()
    assert merchants["row_number"].tolist() == [1, 2, 3, 4, 5]

"""features/transaction_features: definitions, point-in-time correctness, incremental runs, checks.

Small simulated worlds (handbook profile, every fraud known within 7 days) loaded straight into the
cleaned tables; hand-built rows where a boundary of a window is the point.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from fraud_assets.defs.features import compute
from fraud_assets.defs.features.assets import transaction_features
from fraud_assets.defs.features.checks import FEATURE_CHECKS
from fraud_assets.defs.features.compute import (
    BASELINE_COLUMNS,
    COUNT_COLUMNS,
    FEATURE_COLUMNS,
    LOOKBACK_DAYS,
    compute_features,
    write_features,
)
from fraud_assets.defs.features.reference import baseline_features
from fraud_assets.lib.pan import Tokenizer
from fraud_assets.lib.tables import FEATURES_TABLE as TABLE
from fraud_assets.resources import build_resources
from fraud_assets.simulator import SimConfig, generate_world
from fraud_assets.simulator.warehouse_loader import SCHEMAS, load_world_into_cleaned, settle
from fraud_assets_tests.conftest import TEST_PAN_KEY

START = dt.date(2018, 4, 1)


@pytest.fixture(scope="module")
def world():
    return generate_world(
        SimConfig(profile="handbook", days=70, customers=150, terminals=300, seed=7, handbook_labels=True)
    )


def _keys(conn: duckdb.DuckDBPyConnection) -> list[str]:
    rows = conn.execute("SELECT DISTINCT CAST(business_date AS VARCHAR) FROM cleaned.transactions").fetchall()
    return sorted(r[0] for r in rows)


@pytest.fixture
def warehouse(tmp_path: Path, world) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    load_world_into_cleaned(conn, world, Tokenizer(TEST_PAN_KEY))
    yield conn
    conn.close()


def _close(a: pd.Series, b: pd.Series, col: str) -> pd.Series:
    """Counts exact; other values to 1e-9 relative."""
    a, b = a.astype("float64").to_numpy(), b.astype("float64").to_numpy()
    if col in COUNT_COLUMNS:
        return pd.Series(a == b)
    return pd.Series(np.isclose(a, b, rtol=1e-9, atol=1e-12))


def _mismatches(left: pd.DataFrame, right: pd.DataFrame, columns) -> dict[str, int]:
    left, right = left.sort_index(), right.sort_index()
    assert list(left.index) == list(right.index)
    out = {c: int((~_close(left[c], right[c], c)).sum()) for c in columns}
    return {c: n for c, n in out.items() if n}


# ----------------------------------------------------------------------------------------------
# Definitions


@pytest.mark.parametrize("tuned", [False, True], ids=["plain", "tuned"])
def test_baseline_columns_equal_the_pandas_reference_on_the_handbook_profile(warehouse, tuned):
    features = compute_features(warehouse, _keys(warehouse)).set_index("transaction_id")
    tx = warehouse.execute("SELECT * FROM cleaned.transactions").df()
    labels = warehouse.execute("SELECT * FROM cleaned.labels").df()
    reference = baseline_features(tx, labels, tuned=tuned)
    assert len(features) == len(tx) > 5000
    assert features["terminal_risk_30d"].gt(0).any()  # the comparison covers known frauds
    assert _mismatches(features, reference, BASELINE_COLUMNS) == {}


def _hand_built(conn: duckdb.DuckDBPyConnection, rows: list[tuple], labels: list[tuple] = ()) -> None:
    """Cleaned tables from (id, tx_datetime, card, terminal, amount) rows and (id, reported_at) labels."""
    tx = pd.DataFrame(
        rows, columns=["transaction_id", "tx_datetime", "card_token", "terminal_id", "tx_amount"]
    )
    tx["tx_datetime"] = pd.to_datetime(tx["tx_datetime"])
    tx = tx.assign(
        business_date=tx["tx_datetime"].dt.normalize(),
        tx_datetime_local=tx["tx_datetime"],
        pan_bin="400000",
        pan_last4="0000",
        amount_original=tx["tx_amount"],
        currency="EUR",
        fx_rate=1.0,
        channel="card_present",
        three_ds=None,
        feed="acq_a",
        source_file="hand",
        row_number=range(len(tx)),
    )
    lab = pd.DataFrame(list(labels), columns=["transaction_id", "reported_at"])
    lab = lab.merge(tx[["transaction_id", "card_token", "tx_datetime"]], on="transaction_id")
    lab = lab.assign(reported_at=pd.to_datetime(lab["reported_at"]), chargeback_id="cb", reason_code="10.4")
    cards = pd.DataFrame({"card_token": sorted(tx["card_token"].unique())}).assign(
        pan_bin="400000",
        pan_last4="0000",
        customer_id=lambda d: range(len(d)),
        home_x=0.0,
        home_y=0.0,
        home_country="NL",
        valid_from=None,
        valid_to=None,
    )
    terms = pd.DataFrame({"terminal_id": sorted(tx["terminal_id"].unique())}).assign(
        merchant_id=1,
        mcc="5411",
        country="NL",
        currency="EUR",
        timezone="UTC",
        x=3.0,
        y=4.0,
        valid_from=None,
        valid_to=None,
    )
    conn.execute("CREATE SCHEMA IF NOT EXISTS cleaned")
    for name, frame in {"transactions": tx, "labels": lab, "cards": cards, "terminals": terms}.items():
        cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in SCHEMAS[name].items())
        settle(conn)
        conn.register("_frame", frame)
        conn.execute(f"CREATE OR REPLACE TABLE cleaned.{name} AS SELECT {cols} FROM _frame")
        conn.unregister("_frame")


def test_card_window_is_open_at_t_minus_n_and_includes_every_transaction_at_t():
    conn = duckdb.connect()
    _hand_built(
        conn,
        [
            (1, "2018-05-01 12:00:00", "A", 1, 10.0),  # exactly t - 1 day: outside (t - 1d, t]
            (2, "2018-05-01 12:00:01", "A", 1, 20.0),  # one second inside
            (3, "2018-05-02 12:00:00", "A", 2, 30.0),  # t
            (4, "2018-05-02 12:00:00", "A", 3, 60.0),  # same instant: included for both
        ],
    )
    f = compute_features(conn, ["2018-05-01", "2018-05-02"]).set_index("transaction_id")
    assert f.loc[3, "card_nb_tx_1d"] == f.loc[4, "card_nb_tx_1d"] == 3
    assert f.loc[3, "card_avg_amount_1d"] == pytest.approx((20 + 30 + 60) / 3)
    assert f.loc[3, "card_nb_tx_7d"] == 4
    assert f.loc[4, "card_nb_terminals_1d"] == 3
    # previous transaction = the latest strictly before t
    assert f.loc[3, "card_secs_since_prev_tx"] == f.loc[4, "card_secs_since_prev_tx"] == 86399


def test_amount_to_earlier_max_and_older_mean_terminal_novelty_and_hour_band_follow_their_windows():
    conn = duckdb.connect()
    _hand_built(
        conn,
        [
            (1, "2018-05-01 02:00:00", "A", 1, 100.0),  # 30 days before 4 exactly: outside its windows
            (2, "2018-05-10 12:00:00", "A", 1, 40.0),
            (3, "2018-05-31 01:00:00", "A", 2, 80.0),
            (4, "2018-05-31 02:00:00", "A", 1, 200.0),
            (5, "2018-05-31 02:00:00", "A", 1, 500.0),  # same instant as 4: not earlier, but in its counts
        ],
    )
    f = compute_features(conn, [f"2018-05-{d:02d}" for d in (1, 10, 31)]).set_index("transaction_id")
    assert f.loc[1, "card_amount_ratio_max_30d"] == 1.0  # no earlier transaction
    assert f.loc[4, "card_amount_ratio_max_30d"] == pytest.approx(200 / 80)
    assert f.loc[5, "card_amount_ratio_max_30d"] == pytest.approx(500 / 80)
    # older history (t - 30d, t - 7d]: only transaction 2; transaction 3 is within the last 7 days
    assert f.loc[4, "card_amount_ratio_older_30d"] == pytest.approx(200 / 40)
    assert f.loc[1, "card_amount_ratio_older_30d"] == 1.0
    assert f.loc[3, "card_terminal_nb_tx_30d"] == 1  # first visit to terminal 2
    assert f.loc[4, "card_terminal_nb_tx_30d"] == f.loc[5, "card_terminal_nb_tx_30d"] == 3  # 2, 4, 5
    # local hours 1, 2, 2 share the band 0-3; transaction 2 (12 h) does not
    assert f.loc[4, "card_hour_band_share_30d"] == pytest.approx(3 / 4)
    assert f.loc[2, "card_hour_band_share_30d"] == pytest.approx(1 / 2)


def test_weekend_night_and_hour_band_are_read_in_the_terminals_local_time():
    conn = duckdb.connect()
    _hand_built(
        conn,
        [
            (1, "2018-06-01 16:00:00", "A", 1, 10.0),  # Friday 16:00 UTC = Saturday 01:00 in Tokyo
            (2, "2018-06-02 02:00:00", "A", 1, 10.0),  # Saturday 02:00 UTC = 11:00 in Tokyo
            (3, "2018-06-02 15:30:00", "A", 1, 10.0),  # Saturday 15:30 UTC = Sunday 00:30 in Tokyo
        ],
    )
    conn.execute("UPDATE cleaned.transactions SET tx_datetime_local = tx_datetime + INTERVAL 9 HOUR")
    f = compute_features(conn, ["2018-06-01", "2018-06-02"]).set_index("transaction_id")
    assert f["is_weekend"].tolist() == [1, 1, 1]
    assert f["is_night"].tolist() == [1, 0, 1]
    # local bands 0-3, 8-11, 0-3 (in UTC they would be 16-19, 0-3, 12-15)
    assert f.loc[3, "card_hour_band_share_30d"] == pytest.approx(2 / 3)
    assert f.loc[2, "card_hour_band_share_30d"] == pytest.approx(1 / 2)


def test_amount_zscore_is_0_after_constant_amounts_however_large_and_follows_a_varied_history():
    conn = duckdb.connect()
    _hand_built(
        conn,
        [
            *[(i, f"2018-05-0{i} 12:00:00", "A", 1, 129438.26) for i in range(1, 5)],
            (5, "2018-05-06 12:00:00", "A", 1, 258876.52),  # twice the constant amount
            *[(10 + i, f"2018-05-0{i} 12:00:00", "B", 1, 10.0 * i) for i in range(1, 4)],
            (14, "2018-05-06 12:00:00", "B", 1, 40.0),
        ],
    )
    f = compute_features(conn, ["2018-05-06"]).set_index("transaction_id")
    # constant others: no spread to measure against, whatever the rounding of their sums of squares
    assert f.loc[5, "card_amount_zscore_30d"] == 0.0
    assert f.loc[14, "card_amount_zscore_30d"] == pytest.approx((40 - 20) / 10)


BRUTE_FORCE_COLUMNS = (
    "card_nb_tx_1h",
    "card_nb_tx_1d",
    "card_nb_tx_7d",
    "card_nb_terminals_1d",
    "card_nb_terminals_7d",
)


def _brute_force_card_windows(tx: pd.DataFrame) -> pd.DataFrame:
    """Card counts, sums and distinct terminals over (t - n, t] by a self-join: no windows, no packing."""
    pairs = tx.merge(tx, on="card_token", suffixes=("", "_x"))
    pairs = pairs[pairs["tx_datetime_x"] <= pairs["tx_datetime"]]
    age = pairs["tx_datetime"] - pairs["tx_datetime_x"]
    out = {}
    for n, name in (
        (pd.Timedelta(hours=1), "1h"),
        (pd.Timedelta(days=1), "1d"),
        (pd.Timedelta(days=7), "7d"),
    ):
        inside = pairs[age < n].groupby("transaction_id")
        out[f"card_nb_tx_{name}"] = inside.size()
        out[f"card_nb_terminals_{name}"] = inside["terminal_id_x"].nunique()
        out[f"sum_{name}"] = inside["tx_amount_x"].sum()
    return pd.DataFrame(out)


def test_distinct_terminals_equal_a_brute_force_count_with_repeats_ties_and_gaps_of_exactly_n():
    conn = duckdb.connect()
    rows = [
        (1, "2018-05-01 00:00:00", "A", 1, 10.0),
        (2, "2018-05-01 10:00:00", "A", 1, 11.0),  # repeat 10 h later
        (3, "2018-05-02 05:00:00", "A", 2, 12.0),
        (4, "2018-05-02 09:00:00", "A", 1, 13.0),  # repeat 23 h after 2: the pair straddles t - 1d
        (5, "2018-05-02 09:00:00", "A", 3, 14.0),  # same instant as 4
        (6, "2018-05-02 09:00:00", "A", 3, 15.0),  # same instant, same terminal
        (7, "2018-05-03 09:00:00", "A", 1, 16.0),  # exactly 1 day after 4
        (8, "2018-05-08 09:00:00", "A", 2, 17.0),  # 6 d 4 h after 3
        (9, "2018-05-09 09:00:00", "A", 3, 18.0),  # exactly 7 days after 5 and 6
        (10, "2018-05-09 09:00:01", "A", 1, 19.0),
        (11, "2018-05-09 09:00:00", "B", 1, 20.0),  # another card at the same terminal
    ]
    _hand_built(conn, rows)
    keys = [f"2018-05-{d:02d}" for d in range(1, 10)]
    got = compute_features(conn, keys).set_index("transaction_id")
    tx = conn.execute(
        "SELECT transaction_id, tx_datetime, card_token, terminal_id, tx_amount FROM cleaned.transactions"
    ).df()
    want = _brute_force_card_windows(tx)
    for col in BRUTE_FORCE_COLUMNS:
        assert got[col].to_dict() == want[col].to_dict(), col
    assert got.loc[4, "card_nb_terminals_1d"] == 3  # terminals 1 (visits 2 and 4), 2 and 3
    assert got.loc[7, "card_nb_terminals_1d"] == 1  # visit 4 is exactly 1 day back: outside


def test_card_windows_equal_a_brute_force_self_join_on_a_simulated_world(warehouse):
    got = compute_features(warehouse, _keys(warehouse)).set_index("transaction_id")
    tx = warehouse.execute(
        "SELECT transaction_id, tx_datetime, card_token, terminal_id, tx_amount FROM cleaned.transactions"
    ).df()
    want = _brute_force_card_windows(tx).loc[got.index]
    assert got["card_nb_terminals_7d"].gt(got["card_nb_terminals_1d"]).any()
    for col in BRUTE_FORCE_COLUMNS:
        assert (got[col] == want[col]).all(), col
    for n in ("1d", "7d"):  # exact fixed-point sums: the mean matches to 1e-12 relative
        assert np.allclose(
            got[f"card_avg_amount_{n}"], want[f"sum_{n}"] / want[f"card_nb_tx_{n}"], rtol=1e-12, atol=0
        )


def test_a_negative_amount_stops_the_run_instead_of_corrupting_the_exact_sums():
    conn = duckdb.connect()
    _hand_built(conn, [(1, "2018-05-01 12:00:00", "A", 1, 10.0), (2, "2018-05-01 13:00:00", "A", 1, -5.0)])
    with pytest.raises(ValueError, match="amounts must be finite, >= 0"):
        compute_features(conn, ["2018-05-01"])


def test_terminal_window_is_delayed_and_counts_a_fraud_only_once_reported():
    conn = duckdb.connect()
    rows = [
        (1, "2018-05-01 12:00:00", "A", 9, 10.0),  # t - 8d exactly: outside (t - 8d, t - 7d]
        (2, "2018-05-02 12:00:00", "B", 9, 10.0),  # t - 7d exactly: inside, fraud reported at t
        (3, "2018-05-02 13:00:00", "C", 9, 10.0),  # after t - 7d: not yet in the window
        (4, "2018-05-09 12:00:00", "D", 9, 10.0),  # t
        (5, "2018-04-20 12:00:00", "E", 9, 10.0),  # in the 30-day delayed window, reported after t
    ]
    labels = [(2, "2018-05-09 12:00:00"), (5, "2018-05-09 12:00:01")]
    _hand_built(conn, rows, labels)
    f = compute_features(conn, ["2018-05-09"]).set_index("transaction_id")
    assert f.loc[4, "terminal_nb_tx_1d"] == 1
    assert f.loc[4, "terminal_risk_1d"] == 1.0  # reported at exactly t: known
    assert f.loc[4, "terminal_nb_tx_30d"] == 3
    assert f.loc[4, "terminal_risk_30d"] == pytest.approx(1 / 3)  # transaction 5's report comes 1 s later


def test_terminal_known_fraud_counts_frauds_in_the_last_n_days_reported_by_t_without_delay():
    conn = duckdb.connect()
    t = "2018-05-29 12:00:00"
    rows = [
        (1, "2018-05-01 12:00:00", "A", 9, 10.0),  # exactly t - 28d: outside (t - 28d, t)
        (2, "2018-05-01 12:00:01", "B", 9, 10.0),  # one second inside, reported long ago
        (3, "2018-05-19 12:00:00", "C", 9, 10.0),  # t - 10d: in 28d, not in 7d
        (4, "2018-05-29 11:00:00", "D", 9, 10.0),  # t - 1h, reported at exactly t: known
        (5, "2018-05-27 12:00:00", "E", 9, 10.0),  # reported 1 s after t: not yet known
        (6, t, "F", 9, 10.0),  # t: the row itself, reported at t, is never counted
        (7, "2018-05-29 11:30:00", "G", 8, 10.0),  # another terminal
    ]
    labels = [
        (1, "2018-05-02 00:00:00"),
        (2, "2018-05-02 00:00:00"),
        (3, "2018-05-20 00:00:00"),
        (4, t),
        (5, "2018-05-29 12:00:01"),
        (6, t),
        (7, "2018-05-29 11:31:00"),
    ]
    _hand_built(conn, rows, labels)
    f = compute_features(conn, ["2018-05-29"]).set_index("transaction_id")
    assert f.loc[6, "terminal_known_fraud_28d"] == 3  # transactions 2, 3, 4
    assert f.loc[6, "terminal_known_fraud_7d"] == 1  # transaction 4
    assert f.loc[4, "terminal_known_fraud_28d"] == 3  # its window (05-01 11:00, 11:00) holds 1, 2 and 3


def test_fraud_episodes_count_the_terminal_and_card_frauds_of_60_days_reported_by_t():
    conn = duckdb.connect()
    t = "2018-06-30 12:00:00"
    rows = [
        (1, "2018-05-01 12:00:00", "A", 9, 10.0),  # exactly t - 60d: outside (t - 60d, t)
        (2, "2018-05-01 12:00:01", "B", 9, 10.0),  # one second inside: the episode's first known fraud
        (3, "2018-06-10 12:00:00", "C", 9, 10.0),  # t - 20d, reported long ago
        (4, "2018-06-25 12:00:00", "D", 9, 10.0),  # t - 5d, reported 1 s after t: not yet known
        (5, "2018-06-20 12:00:00", "F", 9, 10.0),  # t - 10d: the card's own earlier fraud, reported at t
        (6, t, "F", 9, 10.0),  # t: the row itself, reported at t, is never counted
        (7, "2018-06-29 12:00:00", "G", 8, 10.0),  # another terminal, another card
        (8, "2018-06-29 13:00:00", "H", 8, 10.0),  # a terminal with no known fraud before it
    ]
    labels = [
        (1, "2018-05-02 00:00:00"),
        (2, "2018-05-02 00:00:00"),
        (3, "2018-06-11 00:00:00"),
        (4, "2018-06-30 12:00:01"),
        (5, t),
        (6, t),
        (7, "2018-06-29 12:30:00"),
    ]
    _hand_built(conn, rows, labels)
    f = compute_features(conn, ["2018-06-29", "2018-06-30"]).set_index("transaction_id")
    assert f.loc[6, "terminal_known_fraud_60d"] == 3  # transactions 2, 3 and 5
    assert f.loc[6, "terminal_days_since_first_fraud_60d"] == pytest.approx(60 - 1 / 86400)
    assert f.loc[6, "terminal_days_since_last_fraud_60d"] == pytest.approx(10)
    assert f.loc[6, "card_known_fraud_60d"] == 1  # transaction 5
    assert f.loc[8, "terminal_known_fraud_60d"] == 1  # transaction 7, reported half an hour before
    assert f.loc[8, "terminal_days_since_first_fraud_60d"] == pytest.approx(1 / 24)
    assert f.loc[8, "card_known_fraud_60d"] == 0
    assert f.loc[7, "terminal_known_fraud_60d"] == 0  # no known fraud: 0 and 60 days
    assert (
        f.loc[7, "terminal_days_since_first_fraud_60d"]
        == f.loc[7, "terminal_days_since_last_fraud_60d"]
        == 60
    )


def _terminal_versions(conn: duckdb.DuckDBPyConnection, versions: list[tuple]) -> None:
    """cleaned.terminals from (terminal_id, mcc, x, y, valid_from, valid_to) versions."""
    terms = pd.DataFrame(versions, columns=["terminal_id", "mcc", "x", "y", "valid_from", "valid_to"]).assign(
        merchant_id=1, country="NL", currency="EUR", timezone="UTC"
    )
    cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in SCHEMAS["terminals"].items())
    settle(conn)
    conn.register("_frame", terms)
    conn.execute(f"CREATE OR REPLACE TABLE cleaned.terminals AS SELECT {cols} FROM _frame")
    conn.unregister("_frame")


def test_category_snapshot_counts_business_days_d_minus_37_to_d_minus_8_each_in_its_own_days_category():
    """The merchant-category snapshot of day D: the category's transactions of the business days
    [D - 37, D - 8], each in its terminal's category as of its own day, and the share reported before
    D 00:00 (known at every t of D)."""
    conn = duckdb.connect()
    rows = [
        (1, "2018-05-13 23:59:59", "A", 1, 10.0),  # D - 38: outside (read: the run starts a day earlier)
        (2, "2018-05-14 00:00:00", "B", 1, 10.0),  # D - 37: inside, reported at D 00:00 exactly: unknown
        (8, "2018-05-14 12:00:00", "H", 1, 10.0),  # D - 37: inside, reported long ago: known
        (3, "2018-06-12 23:59:59", "C", 1, 10.0),  # D - 8: inside, reported 1 µs before D: known
        (4, "2018-06-13 00:00:00", "D", 1, 10.0),  # D - 7: outside
        (5, "2018-05-15 12:00:00", "E", 2, 10.0),  # terminal 2 sold goods of category 5999 then
        (6, "2018-05-25 12:00:00", "F", 2, 10.0),  # and 5411 from 05-20: counted for 5411, known
        (7, "2018-06-01 12:00:00", "G", 3, 10.0),  # category 5999
        (10, "2018-06-20 09:00:00", "Z", 1, 10.0),  # D: category 5411
        (11, "2018-06-20 09:00:00", "Y", 2, 10.0),  # D: terminal 2 is 5411 now
        (12, "2018-06-20 09:00:00", "X", 3, 10.0),  # D: category 5999
    ]
    labels = [
        (1, "2018-05-14 00:00:00.000000"),
        (2, "2018-06-20 00:00:00.000000"),
        (8, "2018-05-20 00:00:00.000000"),
        (3, "2018-06-19 23:59:59.999999"),
        (4, "2018-06-14 00:00:00.000000"),
        (6, "2018-05-30 00:00:00.000000"),
    ]
    _hand_built(conn, rows, labels)
    _terminal_versions(
        conn,
        [
            (1, "5411", 0.0, 0.0, None, None),
            (2, "5999", 10.0, 0.0, "2018-04-01", "2018-05-20"),
            (2, "5411", 10.0, 0.0, "2018-05-20", None),
            (3, "5999", 0.0, 30.0, None, None),
        ],
    )
    f = compute_features(conn, ["2018-06-19", "2018-06-20"]).set_index("transaction_id")
    assert f.loc[[10, 11], "mcc_nb_tx_30d"].tolist() == [4, 4]  # transactions 2, 3, 6 and 8
    assert f.loc[[10, 11], "mcc_risk_30d"].tolist() == pytest.approx([3 / 4, 3 / 4])  # 3, 6 and 8
    assert f.loc[12, "mcc_nb_tx_30d"] == 2  # transactions 5 and 7
    assert f.loc[12, "mcc_risk_30d"] == 0.0


def test_previous_terminal_of_two_transactions_at_the_previous_instant_is_the_larger_ids():
    conn = duckdb.connect()
    rows = [
        (21, "2018-06-20 10:00:00", "A", 3, 10.0),
        (22, "2018-06-20 10:00:00", "A", 1, 10.0),  # same instant, larger id, smaller terminal id
        (23, "2018-06-20 11:00:00", "A", 2, 10.0),
    ]
    _hand_built(conn, rows)
    _terminal_versions(
        conn,
        [
            (1, "5411", 0.0, 0.0, None, None),
            (2, "5411", 10.0, 0.0, None, None),
            (3, "5411", 0.0, 30.0, None, None),
        ],
    )
    f = compute_features(conn, ["2018-06-20"]).set_index("transaction_id")
    assert f.loc[23, "dist_prev_terminal"] == 10.0  # from terminal 1 (transaction 22), not 3
    assert f.loc[[21, 22], "dist_prev_terminal"].tolist() == [0.0, 0.0]  # nothing strictly before them
    assert f.loc[23, "card_secs_since_prev_tx"] == 3600


# ----------------------------------------------------------------------------------------------
# Point in time and incremental runs


def _mutate_after(conn: duckdb.DuckDBPyConnection, t: str) -> None:
    """Change every transaction and label after t; add labels reported after t for earlier transactions."""
    conn.execute(
        f"DELETE FROM cleaned.transactions WHERE tx_datetime > TIMESTAMP '{t}' AND transaction_id % 3 = 0"
    )
    conn.execute(
        f"""UPDATE cleaned.transactions
            SET tx_amount = tx_amount * 7 + 1, terminal_id = (terminal_id + 17) % 300,
                channel = 'ecommerce', three_ds = 'N'
            WHERE tx_datetime > TIMESTAMP '{t}'"""
    )
    conn.execute(
        f"""INSERT INTO cleaned.transactions
            SELECT * REPLACE (transaction_id + 10000000 AS transaction_id,
                              tx_datetime + INTERVAL 1 SECOND AS tx_datetime, tx_amount + 500 AS tx_amount)
            FROM cleaned.transactions WHERE tx_datetime > TIMESTAMP '{t}'"""
    )
    conn.execute(f"DELETE FROM cleaned.labels WHERE reported_at > TIMESTAMP '{t}'")
    conn.execute(
        f"""INSERT INTO cleaned.labels
            SELECT transaction_id, card_token, tx_datetime, TIMESTAMP '{t}' + INTERVAL 1 SECOND,
                   'late', '10.4'
            FROM cleaned.transactions
            WHERE tx_datetime <= TIMESTAMP '{t}' AND transaction_id % 4 = 0
              AND transaction_id NOT IN (SELECT transaction_id FROM cleaned.labels)"""
    )


def _features_before(conn, keys, t) -> pd.DataFrame:
    f = compute_features(conn, keys)
    return f[f["tx_datetime"] <= pd.Timestamp(t)].set_index("transaction_id")


def test_features_at_t_do_not_change_when_everything_after_t_changes(warehouse):
    t = "2018-05-11 13:17:00"
    keys = _keys(warehouse)
    before = _features_before(warehouse, keys, t)
    _mutate_after(warehouse, t)
    after = _features_before(warehouse, keys, t)
    assert len(before) > 3000
    assert _mismatches(before, after, FEATURE_COLUMNS) == {}


def _mismatches_with_patched_sql(warehouse, monkeypatch, old: str, new: str) -> set[str]:
    """The leakage test run against the feature SQL with `old` replaced by `new` (a deliberate leak)."""
    render = compute.render_sql

    def leaky(keys):
        leaky_sql = render(keys).replace(old, new)
        assert leaky_sql != render(keys)
        return leaky_sql

    monkeypatch.setattr(compute, "render_sql", leaky)
    t = "2018-05-11 13:17:00"
    keys = _keys(warehouse)
    before = _features_before(warehouse, keys, t)
    _mutate_after(warehouse, t)
    after = _features_before(warehouse, keys, t)
    return _mismatches(before, after, FEATURE_COLUMNS)


def test_the_leakage_test_catches_a_feature_that_uses_labels_before_they_are_reported(warehouse, monkeypatch):
    # a label counts from the end of the delay, whenever it was reported
    leaked = _mismatches_with_patched_sql(
        warehouse, monkeypatch, "greatest(s + 7 * 86400000000, r) AS us", "s + 7 * 86400000000 AS us"
    )
    assert "terminal_risk_30d" in leaked


def test_the_leakage_test_catches_an_undelayed_count_that_uses_labels_before_they_are_reported(
    warehouse, monkeypatch
):
    # a recent fraud counts from its transaction on, whenever it was reported
    leaked = _mismatches_with_patched_sql(warehouse, monkeypatch, "greatest(s + 1, r)", "s + 1")
    assert "terminal_known_fraud_28d" in leaked


def test_the_leakage_test_catches_fraud_episodes_that_use_labels_before_they_are_reported(
    warehouse, monkeypatch
):
    leaked = _mismatches_with_patched_sql(warehouse, monkeypatch, "AND l.r <= o.us", "")
    assert {"terminal_known_fraud_60d", "terminal_days_since_first_fraud_60d", "card_known_fraud_60d"} <= set(
        leaked
    )


def test_definition_time_column_schema_is_the_materialised_table_schema(warehouse):
    write_features(warehouse, _keys(warehouse)[-3:])
    described = [(r[0], r[1]) for r in warehouse.execute(f"DESCRIBE {TABLE}").fetchall()]
    schema = transaction_features.specs_by_key[dg.AssetKey(["features", "transaction_features"])].metadata[
        "dagster/column_schema"
    ]
    assert [(c.name, c.type) for c in schema.columns] == described
    assert all(c.description for c in schema.columns)


def test_one_day_computed_alone_equals_the_same_day_of_a_full_backfill(warehouse):
    keys = _keys(warehouse)
    write_features(warehouse, keys)
    day = dt.date(2018, 6, 5)
    backfill = warehouse.execute(f"SELECT * FROM {TABLE} WHERE business_date = DATE '{day}'").df()
    # Only the lookback the day needs: drop everything older than LOOKBACK_DAYS (60) days before it.
    oldest = day - dt.timedelta(days=LOOKBACK_DAYS)
    assert warehouse.execute(
        f"DELETE FROM cleaned.transactions WHERE business_date < DATE '{oldest}'"
    ).fetchone()[0]
    written = write_features(warehouse, [day.isoformat()])
    alone = warehouse.execute(f"SELECT * FROM {TABLE} WHERE business_date = DATE '{day}'").df()
    assert written == len(backfill) > 0
    assert (
        _mismatches(backfill.set_index("transaction_id"), alone.set_index("transaction_id"), FEATURE_COLUMNS)
        == {}
    )


def test_features_do_not_depend_on_the_order_a_scan_returns_the_staged_rows_in(warehouse, monkeypatch):
    # With preserve_insertion_order off, DuckDB returns a SELECT without ORDER BY in any order.
    keys = _keys(warehouse)
    expected = compute_features(warehouse, keys)
    read = compute._arrays

    def any_order(conn, sql):
        arrays = read(conn, sql)
        if "ORDER BY" in sql:
            return arrays
        shuffled = np.random.default_rng(1).permutation(len(next(iter(arrays.values()))))
        return {name: values[shuffled] for name, values in arrays.items()}

    monkeypatch.setattr(compute, "_arrays", any_order)
    pd.testing.assert_frame_equal(compute_features(warehouse, keys), expected)


def test_a_backfill_written_in_several_passes_equals_one_pass(warehouse):
    keys = _keys(warehouse)
    write_features(warehouse, keys)
    one_pass = warehouse.execute(f"SELECT * FROM {TABLE} ORDER BY transaction_id").df()
    assert write_features(warehouse, keys, max_output_rows=1500) == len(one_pass)
    in_passes = warehouse.execute(f"SELECT * FROM {TABLE} ORDER BY transaction_id").df()
    assert len(compute.passes(warehouse, keys, 1500)) > 5
    pd.testing.assert_frame_equal(in_passes, one_pass)


def test_writing_a_day_replaces_only_that_partition(warehouse):
    keys = _keys(warehouse)
    write_features(warehouse, keys)
    per_day = dict(warehouse.execute(f"SELECT business_date, count(*) FROM {TABLE} GROUP BY ALL").fetchall())
    write_features(warehouse, ["2018-05-15"])
    write_features(warehouse, ["2018-05-15"])
    again = dict(warehouse.execute(f"SELECT business_date, count(*) FROM {TABLE} GROUP BY ALL").fetchall())
    assert again == per_day


def test_partition_keys_that_are_not_dates_are_refused(warehouse):
    with pytest.raises(ValueError, match="Invalid isoformat"):
        write_features(warehouse, ["2018-05-15'; DROP TABLE cleaned.transactions; --"])


# ----------------------------------------------------------------------------------------------
# The Dagster asset and its checks


def _instance_with_partitions(conn) -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    return instance


def _materialize(data_dir: Path, instance, start: str, end: str) -> dg.ExecuteInJobResult:
    return dg.materialize(
        [transaction_features, *FEATURE_CHECKS],
        instance=instance,
        resources=build_resources(data_dir, TEST_PAN_KEY),
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
        raise_on_error=False,
    )


def test_a_backfill_is_one_run_and_every_check_passes(data_dir, world):
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        load_world_into_cleaned(conn, world, Tokenizer(TEST_PAN_KEY))
        instance = _instance_with_partitions(conn)
        keys = _keys(conn)
    result = _materialize(data_dir, instance, keys[0], keys[-1])
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "one_row_per_transaction": True,
        "sampled_naive_recompute": True,
        "null_rates": True,
        "value_ranges": True,
    }
    mat = result.asset_materializations_for_node("features__transaction_features")
    assert {m.partition for m in mat} == set(keys)
    # The per-day copies leave out the column schema and lineage: the definition carries them once.
    # The run's figures (the range's rows, compute time) only on its last day: a copy on each would plot flat.
    assert [m.metadata["range_row_count"].value for m in mat if "range_row_count" in m.metadata] == [
        len(world.transactions)
    ]
    assert "range_row_count" in max(mat, key=lambda m: m.partition).metadata
    # Each day its own row count and figures (the plots over partitions), not the range's.
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        per_day = dict(
            conn.execute(
                f"SELECT CAST(business_date AS VARCHAR), count(*) FROM {TABLE} GROUP BY 1"
            ).fetchall()
        )
    assert len(set(per_day.values())) > 1
    assert {m.partition: m.metadata["dagster/partition_row_count"].value for m in mat} == per_day
    assert {m.partition: m.metadata["rows_written"].value for m in mat} == per_day
    assert not {"dagster/column_schema", "dagster/column_lineage"} & {k for m in mat for k in m.metadata}
    definition = transaction_features.specs_by_key[dg.AssetKey(["features", "transaction_features"])]
    assert {"dagster/column_schema", "dagster/column_lineage"} <= set(definition.metadata)
    # The blocking completeness check is recorded for every day of the range (scores gate on it per day).
    per_day = [e for e in result.get_asset_check_evaluations() if e.check_name == "one_row_per_transaction"]
    assert {e.partition for e in per_day if e.passed} == {*keys, None}
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        assert conn.execute(f"SELECT count(*) FROM {TABLE}").fetchall()[0][0] == len(world.transactions)


def test_the_sampled_recompute_fails_when_a_window_is_off_by_one(data_dir, world):
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        load_world_into_cleaned(conn, world, Tokenizer(TEST_PAN_KEY))
        write_features(conn, _keys(conn))
        conn.execute(f"UPDATE {TABLE} SET card_nb_tx_7d = card_nb_tx_7d + 1")
        instance = _instance_with_partitions(conn)
    checks = _run_checks(data_dir, instance, _keys_of(data_dir))
    assert checks["sampled_naive_recompute"].passed is False
    assert "card_nb_tx_7d" in checks["sampled_naive_recompute"].metadata["mismatched_columns"].value
    assert checks["one_row_per_transaction"].passed is True


def test_the_sampled_recompute_fails_on_a_null_where_a_value_belongs(data_dir, world):
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        load_world_into_cleaned(conn, world, Tokenizer(TEST_PAN_KEY))
        write_features(conn, _keys(conn))
        conn.execute(f"UPDATE {TABLE} SET card_avg_amount_7d = NULL")  # every sampled row, whatever the seed
        instance = _instance_with_partitions(conn)
    checks = _run_checks(data_dir, instance, _keys_of(data_dir))
    assert checks["sampled_naive_recompute"].passed is False
    assert (
        checks["sampled_naive_recompute"]
        .metadata["mismatched_columns"]
        .value.startswith("card_avg_amount_7d (")
    )


def test_null_and_range_checks_fail_on_the_days_that_break_them_only(data_dir, world):
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        load_world_into_cleaned(conn, world, Tokenizer(TEST_PAN_KEY))
        keys = _keys(conn)
        write_features(conn, keys)
        conn.execute(
            f"UPDATE {TABLE} SET card_avg_amount_7d = NULL, terminal_risk_7d = 1.5 WHERE transaction_id IN "
            f"(SELECT transaction_id FROM {TABLE} WHERE business_date = DATE '{keys[-1]}' LIMIT 3)"
        )
        instance = _instance_with_partitions(conn)
    broken = _run_checks(data_dir, instance, [keys[-1]])
    assert broken["null_rates"].passed is False
    assert broken["null_rates"].metadata["columns_over_threshold"].value == "card_avg_amount_7d"
    assert broken["value_ranges"].passed is False
    assert broken["value_ranges"].metadata["risks_are_shares"].value == 3
    assert broken["value_ranges"].metadata["rows_breaking_rules"].value == 3
    healthy = _run_checks(data_dir, instance, keys[:-1])
    assert healthy["null_rates"].passed is True
    assert healthy["value_ranges"].passed is True


def _keys_of(data_dir: Path) -> list[str]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        return _keys(conn)


def _run_checks(data_dir: Path, instance, keys: list[str]) -> dict[str, dg.AssetCheckEvaluation]:
    """The feature checks alone (no materialisation) for the partition range keys[0]..keys[-1]."""
    result = dg.materialize(
        [transaction_features.to_source_asset(), *FEATURE_CHECKS],
        instance=instance,
        resources=build_resources(data_dir, TEST_PAN_KEY),
        selection=dg.AssetSelection.checks(*FEATURE_CHECKS),
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
        raise_on_error=False,
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_the_completeness_check_judges_only_its_own_days(data_dir, world):
    """Partitioned like the asset: a day missing a row fails that day's check, not another day's (so one
    bad day does not hold back every day's scores), and a duplicate anywhere in the table fails the day
    whose transaction it duplicates."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        load_world_into_cleaned(conn, world, Tokenizer(TEST_PAN_KEY))
        keys = _keys(conn)
        write_features(conn, keys)
        lost = conn.execute(
            f"SELECT transaction_id FROM {TABLE} WHERE CAST(business_date AS VARCHAR) = ? LIMIT 1", [keys[-1]]
        ).fetchone()[0]
        conn.execute(f"DELETE FROM {TABLE} WHERE transaction_id = ?", [lost])
        doubled = conn.execute(
            f"SELECT transaction_id FROM {TABLE} WHERE CAST(business_date AS VARCHAR) = ? LIMIT 1", [keys[-2]]
        ).fetchone()[0]
        conn.execute(f"INSERT INTO {TABLE} SELECT * FROM {TABLE} WHERE transaction_id = ?", [doubled])
        instance = _instance_with_partitions(conn)

    last = _run_checks(data_dir, instance, [keys[-1]])["one_row_per_transaction"]
    assert last.passed is False
    assert last.metadata["missing_transactions"].value == 1
    assert last.metadata["duplicate_rows"].value == 0
    assert last.metadata["business_dates"].value == keys[-1]

    before = _run_checks(data_dir, instance, [keys[-2]])["one_row_per_transaction"]
    assert before.passed is False
    assert before.metadata["duplicate_rows"].value == 1
    assert before.metadata["missing_transactions"].value == 0

    first = _run_checks(data_dir, instance, keys[:-2])["one_row_per_transaction"]
    assert first.passed is True
    assert first.metadata["rows"].value > 0
    assert first.metadata["business_dates"].value == f"{keys[0]}..{keys[-3]} ({len(keys) - 2} days)"

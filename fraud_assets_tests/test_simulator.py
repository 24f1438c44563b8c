"""The simulated world: the handbook's process at any scale, its realistic extras, label delays, and
the determinism `--append-days` relies on. Small worlds only; full-size figures are in `make bench`."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fraud_assets.lib.pan import luhn_valid
from fraud_assets.simulator import SimConfig, generate_world
from fraud_assets.simulator import reference as ref
from fraud_assets.simulator.config import TAG_SCENARIO_2, rng
from fraud_assets.simulator.figures import PUBLISHED, expected_figures, observed_figures
from fraud_assets.simulator.world import (
    DAY_SECONDS,
    DELAY_MAX_S,
    EXTRA_ID_BASE,
    HANDBOOK_DELAY_MAX_S,
    SCENARIO_1_THRESHOLD,
    SCENARIO_2_DAYS,
    TRANSACTION_COLUMNS,
    World,
    make_customers,
    make_terminals,
)

SMALL = {"days": 40, "customers": 300, "terminals": 600}
# Large enough for tight bands, small enough to generate in a fraction of a second.
MEDIUM = {"days": 60, "customers": 1000, "terminals": 2000}


@pytest.fixture(scope="module")
def handbook_world():
    return generate_world(SimConfig(profile="handbook", **MEDIUM))


@pytest.fixture(scope="module")
def realistic_world():
    return generate_world(SimConfig(profile="realistic", **MEDIUM))


def _band(observed: float, expected: float, rel: float, poisson_sd: float = 4.0) -> bool:
    """Within a relative tolerance plus a few Poisson standard deviations (for small counts)."""
    return abs(observed - expected) <= rel * expected + poisson_sd * math.sqrt(max(expected, 1.0))


def test_transactions_have_the_documented_columns_and_types(realistic_world):
    tx = realistic_world.transactions
    assert tuple(tx.columns) == TRANSACTION_COLUMNS
    assert tx["transaction_id"].dtype == np.int64
    assert tx["transaction_id"].is_unique
    assert tx["transaction_id"].max() < EXTRA_ID_BASE  # extras' reserved range stays free
    assert pd.api.types.is_datetime64_dtype(tx["tx_datetime"])
    assert tx["tx_datetime"].dt.tz is None
    assert tx["tx_datetime"].is_monotonic_increasing
    assert set(tx["tx_fraud"].unique()) <= {0, 1}
    assert set(tx["tx_fraud_scenario"].unique()) <= {0, 1, 2, 3}
    assert ((tx["tx_fraud"] == 1) == (tx["tx_fraud_scenario"] > 0)).all()
    days = (tx["tx_datetime"].dt.normalize() - pd.Timestamp("2018-04-01")).dt.days
    assert days.between(0, MEDIUM["days"] - 1).all()


def test_handbook_transaction_count_and_fraud_scenarios_match_the_process_at_this_scale(handbook_world):
    """The handbook's fraud rate depends on scale (2 terminals and 3 customers a day whatever the
    population), so the bands come from the process's expectation for this world's own size."""
    obs, exp = observed_figures(handbook_world), expected_figures(handbook_world)
    assert _band(obs["transactions"], exp["transactions"], rel=0.02)
    assert _band(obs["scenario_counts"][1], exp["scenario_counts"][1], rel=0.10)
    # Scenario 2 hits whole terminals and 3 whole customers: their counts vary more than Poisson.
    assert _band(obs["scenario_counts"][2], exp["scenario_counts"][2], rel=0.15)
    assert _band(obs["scenario_counts"][3], exp["scenario_counts"][3], rel=0.15)
    assert abs(obs["fraud_rate"] - exp["fraud_rate"]) <= 0.15 * exp["fraud_rate"]
    for s in (1, 2, 3):
        assert abs(obs["scenario_share"][s] - exp["scenario_share"][s]) <= 0.05


def test_expected_figures_at_full_size_match_the_published_dataset():
    """The same expectation, evaluated at the handbook defaults, lands on the published figures
    (1,754,155 transactions, 0.84 % fraud) — so the scaled-down bands above test the right process."""
    full = SimConfig(profile="handbook")
    shell = World(full, make_customers(full), make_terminals(full), pd.DataFrame(), pd.DataFrame())
    exp = expected_figures(shell)
    assert abs(exp["transactions"] / PUBLISHED["transactions"] - 1) < 0.05
    assert abs(exp["fraud_rate"] / PUBLISHED["fraud_rate"] - 1) < 0.05


def test_scenario_one_flags_every_large_amount_and_nothing_else_unexplained(handbook_world):
    tx = handbook_world.transactions
    assert (tx.loc[tx["tx_fraud_scenario"] == 0, "tx_amount"] <= SCENARIO_1_THRESHOLD).all()
    assert (tx.loc[tx["tx_fraud_scenario"] == 1, "tx_amount"] > SCENARIO_1_THRESHOLD).all()


def test_scenario_two_compromises_the_drawn_terminals_for_28_days(handbook_world):
    cfg = handbook_world.config
    tx = handbook_world.transactions
    day = (tx["tx_datetime"] - pd.Timestamp(cfg.start_date)).dt.days.to_numpy()
    compromised = np.zeros(len(tx), dtype=bool)
    for d in range(cfg.days):
        terms = rng(cfg.seed, TAG_SCENARIO_2, d).choice(cfg.terminals, 2, replace=False)
        compromised |= tx["terminal_id"].isin(terms).to_numpy() & (day >= d) & (day < d + SCENARIO_2_DAYS)
    assert (tx.loc[compromised, "tx_fraud"] == 1).all()
    # Scenario 2 labels only compromised terminals (scenario 3 may override some of them).
    assert compromised[tx["tx_fraud_scenario"].to_numpy() == 2].all()


def test_scenario_three_multiplies_amounts_by_five(handbook_world):
    tx = handbook_world.transactions
    s3 = tx[tx["tx_fraud_scenario"] == 3]
    genuine = tx[tx["tx_fraud"] == 0]
    ratio = s3["tx_amount"].median() / genuine["tx_amount"].median()
    assert 3.5 < ratio < 6.5


def test_every_card_has_a_luhn_valid_pan_with_an_issuer_bin(realistic_world, handbook_world):
    for world in (realistic_world, handbook_world):
        pans = world.customers["pan"]
        assert pans.is_unique
        assert all(luhn_valid(p) and len(p) == 16 for p in pans)
        allowed = {b for r in ref.REGIONS for b in r.bins} | set(ref.HANDBOOK_BINS)
        assert set(pans.str[:6]) <= allowed
        merged = world.transactions.merge(world.customers[["customer_id", "pan"]], on="customer_id")
        assert (merged["pan_x"] == merged["pan_y"]).all()


def test_realistic_profile_carries_currency_channel_and_local_time(realistic_world):
    w = realistic_world
    tx = w.transactions.merge(w.terminals, on="terminal_id", suffixes=("", "_terminal"))
    assert (tx["currency"] == tx["currency_terminal"]).all()
    assert (tx["channel"] == tx["channel_terminal"]).all()
    assert set(tx["currency"]) == set(ref.CURRENCY_EXPONENT)
    assert ((tx["three_ds"] == "") == (tx["channel"] == "card_present")).all()
    assert set(tx.loc[tx["channel"] == "ecommerce", "three_ds"]) <= {"Y", "A", "U", "N"}
    # Local time is the UTC time seen from the terminal's zone.
    sample = tx.sample(2000, random_state=0)
    for zone, part in sample.groupby("timezone"):
        local = part["tx_datetime"].dt.tz_localize("UTC").dt.tz_convert(zone).dt.tz_localize(None)
        assert (local == part["tx_datetime_local"]).all(), zone
    # The handbook's time of day is local: local hours centre on noon in every zone.
    assert abs(tx["tx_datetime_local"].dt.hour.mean() - 11.5) < 0.5
    # amount_original = tx_amount * rate of the UTC business date, rounded to the minor unit.
    fx = w.fx_rates.assign(rate_date=lambda d: d["rate_date"].dt.normalize())
    tx = tx.assign(rate_date=tx["tx_datetime"].dt.normalize()).merge(
        fx, left_on=["rate_date", "currency"], right_on=["rate_date", "quote_currency"], how="left"
    )
    rate = tx["rate"].fillna(1.0)
    assert ((tx["currency"] == "EUR") == tx["rate"].isna()).all()
    half_unit = 0.5 * 10.0 ** -tx["currency"].map(ref.CURRENCY_EXPONENT)
    assert ((tx["amount_original"] - tx["tx_amount"] * rate).abs() <= half_unit + 1e-9).all()


def test_realistic_profile_keeps_the_handbook_process(handbook_world, realistic_world):
    """Same seed, same transactions (ids, customers, terminals, amounts, labels); only the clock
    moves to the terminal's zone, so a few rows cross the world's first or last UTC day."""
    h = handbook_world.transactions.set_index("transaction_id")
    r = realistic_world.transactions.set_index("transaction_id")
    common = h.index.intersection(r.index)
    assert len(common) > 0.97 * len(h)
    cols = ["customer_id", "terminal_id", "tx_amount", "tx_fraud", "tx_fraud_scenario"]
    pd.testing.assert_frame_equal(h.loc[common, cols], r.loc[common, cols])
    assert (h.loc[common, "tx_datetime"].dt.time == r.loc[common, "tx_datetime_local"].dt.time).all()


def test_handbook_profile_is_one_zone_one_currency_card_present(handbook_world):
    w = handbook_world
    assert set(w.terminals["timezone"]) == {"UTC"}
    tx = w.transactions
    assert set(tx["currency"]) == {"EUR"}
    assert set(tx["channel"]) == {"card_present"}
    assert (tx["three_ds"] == "").all()
    assert (tx["tx_datetime"] == tx["tx_datetime_local"]).all()
    assert (tx["amount_original"] == tx["tx_amount"]).all()
    assert w.fx_rates.empty


def test_realistic_label_delays_mostly_within_a_week_with_a_long_tail(realistic_world):
    tx = realistic_world.transactions
    fraud = tx[tx["tx_fraud"] == 1]
    assert tx.loc[tx["tx_fraud"] == 0, "reported_at"].isna().all()
    delay = (fraud["reported_at"] - fraud["tx_datetime"]).dt.total_seconds()
    assert (delay > 0).all()
    assert (delay <= DELAY_MAX_S).all()
    within_week = (delay <= 7 * DAY_SECONDS).mean()
    assert 0.65 < within_week < 0.87
    assert (delay > 30 * DAY_SECONDS).mean() > 0.01


def test_handbook_labels_arrive_within_seven_days():
    w = generate_world(SimConfig(profile="realistic", handbook_labels=True, **SMALL))
    fraud = w.transactions[w.transactions["tx_fraud"] == 1]
    delay = (fraud["reported_at"] - fraud["tx_datetime"]).dt.total_seconds()
    assert len(delay) > 0
    assert (delay > 0).all()
    assert (delay <= HANDBOOK_DELAY_MAX_S).all()
    assert delay.max() > 5 * DAY_SECONDS  # spread over the week, not all at once


@pytest.mark.parametrize("profile", ["handbook", "realistic"])
def test_a_longer_run_reproduces_the_first_days_exactly(profile):
    short = generate_world(SimConfig(profile=profile, **SMALL))
    long = generate_world(SimConfig(profile=profile, **{**SMALL, "days": SMALL["days"] + 17}))
    cut = pd.Timestamp("2018-04-01") + pd.Timedelta(days=SMALL["days"])
    head = long.transactions[long.transactions["tx_datetime"] < cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(short.transactions, head)
    pd.testing.assert_frame_equal(short.customers, long.customers)
    pd.testing.assert_frame_equal(short.terminals, long.terminals)
    pd.testing.assert_frame_equal(short.fx_rates, long.fx_rates.iloc[: len(short.fx_rates)])


def test_same_seed_same_world_and_another_seed_another_world():
    a = generate_world(SimConfig(profile="realistic", **SMALL))
    b = generate_world(SimConfig(profile="realistic", **SMALL))
    c = generate_world(SimConfig(profile="realistic", seed=1, **SMALL))
    pd.testing.assert_frame_equal(a.transactions, b.transactions)
    assert not a.customers["pan"].equals(c.customers["pan"])
    assert len(a.transactions) != len(c.transactions)


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="profile"):
        SimConfig(profile="banana")
    with pytest.raises(ValueError, match="unknown defect"):
        SimConfig(rates={"gremlins": 0.1})
    with pytest.raises(ValueError, match="within"):
        SimConfig(rates={"duplicate": 1.5})
    assert SimConfig(clean=True, rates={"duplicate": 0.5}).rate("duplicate") == 0.0
    with pytest.raises(ValueError, match="label modes"):
        SimConfig(handbook_labels=True, label_delay_days=7)
    with pytest.raises(ValueError, match="at least 1"):
        SimConfig(label_delay_days=0)
    with pytest.raises(ValueError, match="shards"):
        SimConfig(shards=0)
    with pytest.raises(ValueError, match="days x shards"):
        SimConfig(days=1000, shards=100)


@pytest.mark.parametrize("start", ["2018-03-20", "2018-10-22"])
def test_local_times_round_trip_to_utc_across_daylight_saving_changes(start):
    """acq_b carries naive local times: read in the terminal's zone (repeated autumn hour = first
    occurrence, spring gap shifted forward) they give back the UTC time, also on the change days."""
    w = generate_world(SimConfig(profile="realistic", start=start, days=20, customers=400, terminals=800))
    tx = w.transactions.merge(w.terminals[["terminal_id", "timezone"]], on="terminal_id")
    for zone, part in tx.groupby("timezone"):
        local = pd.DatetimeIndex(part["tx_datetime_local"])
        utc = local.tz_localize(zone, ambiguous=np.ones(len(part), dtype=bool), nonexistent="shift_forward")
        assert (utc.tz_convert("UTC").tz_localize(None) == pd.DatetimeIndex(part["tx_datetime"])).all(), zone

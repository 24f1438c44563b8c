"""The clean simulated world: customers, terminals, transactions with fraud labels, FX rates.

The transaction process is the Fraud Detection Handbook's (Le Borgne et al., chapter 3), vectorised:
customers and terminals uniform on a 100x100 grid; a customer uses the terminals within distance 5;
per day Poisson(mean_nb_tx_per_day) transactions, time of day int(N(12 h, 20000 s)) dropped when
outside the day, amount N(mean, mean/2) (negative: redrawn U(0, 2 mean)) rounded to cents, terminal
uniform among the customer's. Fraud scenarios in the handbook's order: (1) amount > 220; (2) each day
2 terminals compromised for 28 days; (3) each day 3 customers compromised for 14 days, a third of
their transactions (floor, drawn without replacement) become fraud with amount x5.

Streams: the draws of generation day g come from the stream (TAG_DAY, g) of the shard (cfg.rng), the
scenario events of day d from their own per-day streams; FX rates are the world's, one for all shards.
To keep the world a function of the day index, a run of N days generates 14 days beyond N (scenario 3
picks a third of a 14-day window; the realistic profile's local day N can still be UTC day N-1) and
keeps only what belongs to days 0..N-1. A world of several shards is that of one shard, `shards` times
over (config.SimConfig.shards), with disjoint ids and card numbers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fraud_assets.lib.settings import REPORTING_CURRENCY
from fraud_assets.simulator import reference as ref
from fraud_assets.simulator.config import (
    SHARD_ID_STRIDE,
    TAG_CARDS,
    TAG_CUSTOMERS,
    TAG_DAY,
    TAG_FX,
    TAG_MERCHANTS,
    TAG_SCENARIO_2,
    TAG_SCENARIO_3,
    TAG_TERMINALS,
    SimConfig,
    rng,
)

DAY_SECONDS = 86_400
RADIUS = 5.0
SCENARIO_1_THRESHOLD = 220.0
SCENARIO_2_TERMINALS, SCENARIO_2_DAYS = 2, 28
SCENARIO_3_CUSTOMERS, SCENARIO_3_DAYS, SCENARIO_3_FACTOR = 3, 14, 5.0
LOOKAHEAD_DAYS = SCENARIO_3_DAYS  # 13 for scenario 3's window + 1 for local day N landing on UTC day N-1

# Chargeback delay (realistic): log-normal, median 3 days, clipped to [10 minutes, 120 days]:
# about 76 % within a week, 3 % after 30 days.
DELAY_MEDIAN_S = 3 * DAY_SECONDS
DELAY_SIGMA = 1.2
DELAY_MIN_S = 600
DELAY_MAX_S = 120 * DAY_SECONDS
HANDBOOK_DELAY_MAX_S = 7 * DAY_SECONDS

# Real transaction ids are 1..(count); defects use the reserved range from here (see mess.py).
EXTRA_ID_BASE = 900_000_000_000

TRANSACTION_COLUMNS = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "pan",
    "terminal_id",
    "tx_amount",
    "tx_fraud",
    "tx_fraud_scenario",
    "reported_at",
    "currency",
    "amount_original",
    "channel",
    "three_ds",
    "tx_datetime_local",
    "feed",
)


@dataclass
class World:
    """The clean world of a run (ground truth). Nothing here is written to disk."""

    config: SimConfig
    customers: pd.DataFrame
    terminals: pd.DataFrame
    transactions: pd.DataFrame
    fx_rates: pd.DataFrame

    @property
    def start(self) -> dt.date:
        return self.config.start_date

    @property
    def last_day(self) -> dt.date:
        return self.start + dt.timedelta(days=self.config.days - 1)

    def day(self, index: int) -> dt.date:
        return self.start + dt.timedelta(days=index)


# ---------------------------------------------------------------------------------------------
# Customers, cards, terminals, merchants


def make_customers(cfg: SimConfig) -> pd.DataFrame:
    n = cfg.customers
    r = cfg.rng(TAG_CUSTOMERS)
    x = r.uniform(0, 100, n)
    y = r.uniform(0, 100, n)
    mean_amount = r.uniform(5, 100, n)
    mean_nb = r.uniform(0, 4, n)
    cards = cfg.rng(TAG_CARDS)
    u_bin = cards.random(n)
    # Each shard draws its account numbers from its own slice of the range: card numbers are unique
    # across shards by construction (one shard: the whole range).
    span = 10**9 // cfg.shards
    account = cfg.shard * span + cards.choice(span, size=n, replace=False)
    issued_days_before = cards.integers(30, 1500, n)
    if cfg.profile == "realistic":
        region = ref.region_index(x, y)
        country = np.array([ref.REGIONS[i].country for i in region], dtype=object)
        bins = np.empty(n, dtype=np.int64)
        for i, reg in enumerate(ref.REGIONS):
            mask = region == i
            choices = np.array([int(b) for b in reg.bins], dtype=np.int64)
            bins[mask] = choices[(u_bin[mask] * len(choices)).astype(np.int64)]
    else:
        country = np.full(n, ref.HANDBOOK_COUNTRY, dtype=object)
        choices = np.array([int(b) for b in ref.HANDBOOK_BINS], dtype=np.int64)
        bins = choices[(u_bin * len(choices)).astype(np.int64)]
    start = np.datetime64(cfg.start_date, "D")
    return pd.DataFrame(
        {
            "customer_id": cfg.shard * n + np.arange(n, dtype=np.int64),
            "pan": luhn_pans(bins, account),
            "home_x": x,
            "home_y": y,
            "home_country": country,
            "mean_amount": mean_amount,
            "std_amount": mean_amount / 2,
            "mean_nb_tx_per_day": mean_nb,
            "issued_at": (start - issued_days_before.astype("timedelta64[D]")).astype("datetime64[s]"),
        }
    )


def luhn_pans(bins: np.ndarray, account: np.ndarray) -> np.ndarray:
    """16-digit Luhn-valid PANs from 6-digit BINs and 9-digit account numbers: lib.pan's
    luhn_check_digit, vectorised over all cards at once."""
    partial = bins.astype(np.int64) * 10**9 + account.astype(np.int64)  # 15 digits
    digits = (partial[:, None] // (10 ** np.arange(15, dtype=np.int64))[None, :]) % 10  # rightmost first
    doubled = digits[:, 0::2] * 2
    total = (doubled - 9 * (doubled > 9)).sum(axis=1) + digits[:, 1::2].sum(axis=1)
    check = (10 - total % 10) % 10
    return (partial * 10 + check).astype(str).astype(object)


def make_terminals(cfg: SimConfig) -> pd.DataFrame:
    n = cfg.terminals
    r = cfg.rng(TAG_TERMINALS)
    x = r.uniform(0, 100, n)
    y = r.uniform(0, 100, n)
    m = cfg.rng(TAG_MERCHANTS)
    u_channel = m.random(n)
    u_order = m.random(n)
    u_size = m.geometric(0.5, size=n)
    if cfg.profile == "realistic":
        region = ref.region_index(x, y)
        ecommerce = u_channel < ref.ECOMMERCE_TERMINAL_SHARE
        merchant_idx = _group_into_merchants(region * 2 + ecommerce, u_order, u_size)
    else:
        region = None
        ecommerce = np.zeros(n, dtype=bool)
        merchant_idx = np.arange(n, dtype=np.int64)
    n_merchants = int(merchant_idx.max()) + 1
    u_mcc = m.random(n_merchants)
    u_feed = m.random(n_merchants)
    m_feed_b = u_feed < cfg.acq_b_share
    if cfg.profile == "realistic":
        m_ecom = np.zeros(n_merchants, dtype=bool)
        m_ecom[merchant_idx] = ecommerce
        m_mcc = np.where(m_ecom, _weighted(ref.MCC_ECOMMERCE, u_mcc), _weighted(ref.MCC_CARD_PRESENT, u_mcc))
        country = np.array([ref.REGIONS[i].country for i in region], dtype=object)
        currency = np.array([ref.REGIONS[i].currency for i in region], dtype=object)
        timezone = np.empty(n, dtype=object)
        for i, reg in enumerate(ref.REGIONS):
            mask = region == i
            timezone[mask] = ref.timezone_of(reg, x[mask])
    else:
        m_mcc = np.full(n_merchants, ref.HANDBOOK_MCC, dtype=object)
        country = np.full(n, ref.HANDBOOK_COUNTRY, dtype=object)
        currency = np.full(n, REPORTING_CURRENCY, dtype=object)
        timezone = np.full(n, ref.HANDBOOK_TIMEZONE, dtype=object)
    return pd.DataFrame(
        {
            "terminal_id": cfg.shard * n + np.arange(n, dtype=np.int64),
            "merchant_id": 100_001 + cfg.shard * n + merchant_idx,  # a shard has at most n merchants
            "mcc": m_mcc[merchant_idx],
            "country": country,
            "currency": currency,
            "timezone": timezone,
            "x": x,
            "y": y,
            "channel": np.where(ecommerce, "ecommerce", "card_present").astype(object),
            "feed": np.where(m_feed_b[merchant_idx], "acq_b", "acq_a").astype(object),
        }
    )


def _group_into_merchants(group: np.ndarray, u_order: np.ndarray, u_size: np.ndarray) -> np.ndarray:
    """Merchant index per terminal: terminals of one (country, channel) group, in random order, cut
    into runs of geometric length (a merchant owns 1, 2, 3, ... terminals)."""
    n = len(group)
    order = np.lexsort((u_order, group))
    starts = np.cumsum(u_size) - u_size
    is_start = np.zeros(n, dtype=bool)
    is_start[starts[starts < n]] = True
    g = group[order]
    is_start[1:] |= g[1:] != g[:-1]
    is_start[0] = True
    merchant_idx = np.empty(n, dtype=np.int64)
    merchant_idx[order] = np.cumsum(is_start) - 1
    return merchant_idx


def _weighted(table: tuple[tuple[str, float], ...], u: np.ndarray) -> np.ndarray:
    codes = np.array([c for c, _ in table], dtype=object)
    cum = np.cumsum([w for _, w in table])
    return codes[np.minimum(np.searchsorted(cum / cum[-1], u, side="right"), len(codes) - 1)]


def terminals_within_radius(customers: pd.DataFrame, terminals: pd.DataFrame, radius: float = RADIUS):
    """CSR lists of the terminals each customer uses (ascending terminal index, as the handbook's
    `np.where(dist < r)`): returns (offsets, counts, flat terminal indices).

    Terminals are bucketed into square cells of side `radius`, so each customer is compared with the
    terminals of its 3x3 neighbouring cells only."""
    cx, cy = customers["home_x"].to_numpy(), customers["home_y"].to_numpy()
    tx, ty = terminals["x"].to_numpy(), terminals["y"].to_numpy()
    n_c, n_t = len(cx), len(tx)
    side = int(np.ceil(100.0 / radius))

    def cell(v: np.ndarray) -> np.ndarray:
        return np.clip((v // radius).astype(np.int64), 0, side - 1)

    t_cell = cell(tx) * side + cell(ty)
    t_sorted = np.argsort(t_cell, kind="stable")
    bounds = np.searchsorted(t_cell[t_sorted], np.arange(side * side + 1))
    ci, cj = cell(cx), cell(cy)
    pair_c, pair_t = [], []
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            ni, nj = ci + di, cj + dj
            ok = (ni >= 0) & (ni < side) & (nj >= 0) & (nj < side)
            c_idx = np.flatnonzero(ok)
            k = ni[ok] * side + nj[ok]
            lo, hi = bounds[k], bounds[k + 1]
            size = hi - lo
            rep_c = np.repeat(c_idx, size)
            within = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
            pair_c.append(rep_c)
            pair_t.append(t_sorted[np.repeat(lo, size) + within])
    pc_, pt_ = np.concatenate(pair_c), np.concatenate(pair_t)
    # squared distance < r^2: the handbook's sqrt(.) < r without the square roots
    near = (cx[pc_] - tx[pt_]) ** 2 + (cy[pc_] - ty[pt_]) ** 2 < radius * radius
    key = np.sort(pc_[near] * n_t + pt_[near])
    flat = key % n_t
    counts = np.bincount(key // n_t, minlength=n_c).astype(np.int64)
    offsets = np.cumsum(counts) - counts
    return offsets, counts, flat


# ---------------------------------------------------------------------------------------------
# Transactions


def _generate_day(cfg: SimConfig, g: int, mean_amount, std_amount, mean_nb, offsets, counts, flat) -> dict:
    r = cfg.rng(TAG_DAY, g)
    n_tx = r.poisson(mean_nb)
    cust = np.repeat(np.arange(len(mean_nb), dtype=np.int64), n_tx)
    m = len(cust)
    secs = np.trunc(r.normal(DAY_SECONDS / 2, 20_000.0, m)).astype(np.int64)  # handbook: int(normal)
    amount = r.normal(mean_amount[cust], std_amount[cust])
    neg = amount < 0
    amount[neg] = r.uniform(0, 2 * mean_amount[cust[neg]])
    amount = np.round(amount, 2)
    u_terminal = r.random(m)
    z_delay = r.standard_normal(m)
    u_delay = r.random(m)
    u_3ds = r.random(m)
    keep = (secs > 0) & (secs < DAY_SECONDS) & (counts[cust] > 0)
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(secs[idx], kind="stable")]
    c = cust[idx]
    terminal = flat[offsets[c] + (u_terminal[idx] * counts[c]).astype(np.int64)]
    return {
        "day": np.full(len(idx), g, dtype=np.int64),
        "secs": secs[idx],
        "customer": c,
        "terminal": terminal,
        "amount": amount[idx],
        "z_delay": z_delay[idx],
        "u_delay": u_delay[idx],
        "u_3ds": u_3ds[idx],
    }


def _apply_scenarios(cfg: SimConfig, tx: dict, n_days: int) -> None:
    """Fraud labels in place, in the handbook's order: 1, then 2 (overrides), then 3 (overrides)."""
    amount, day = tx["amount"], tx["day"]
    fraud = (amount > SCENARIO_1_THRESHOLD).astype(np.int8)
    scenario = fraud.copy()

    # Scenario 2: all transactions of 2 random terminals for 28 days from the draw day.
    compromised = np.zeros((cfg.terminals, n_days + 1), dtype=np.int16)  # +1/-1 at window edges
    for d in range(n_days):
        terms = cfg.rng(TAG_SCENARIO_2, d).choice(cfg.terminals, SCENARIO_2_TERMINALS, replace=False)
        compromised[terms, d] += 1
        compromised[terms, min(d + SCENARIO_2_DAYS, n_days)] -= 1
    hit = np.cumsum(compromised, axis=1)[tx["terminal"], day] > 0
    fraud[hit] = 1
    scenario[hit] = 2

    # Scenario 3: a third of the transactions of 3 random customers over 14 days, amount x5. The
    # draws come first (they do not depend on the transactions); only the few customers ever drawn
    # need their transactions indexed.
    streams = [cfg.rng(TAG_SCENARIO_3, d) for d in range(n_days)]
    drawn = [r.choice(cfg.customers, SCENARIO_3_CUSTOMERS, replace=False) for r in streams]
    candidates = np.flatnonzero(np.isin(tx["customer"], np.unique(np.concatenate(drawn))))
    keys = tx["customer"][candidates] * n_days + day[candidates]
    order = candidates[np.argsort(keys, kind="stable")]  # (customer, day), transaction order within
    keys = np.sort(keys, kind="stable")
    for d, (r, custs) in enumerate(zip(streams, drawn, strict=True)):
        end = min(d + SCENARIO_3_DAYS, n_days)
        spans = [np.searchsorted(keys, [c * n_days + d, c * n_days + end]) for c in custs]
        window = np.sort(np.concatenate([order[lo:hi] for lo, hi in spans]))
        picked = window[r.choice(len(window), len(window) // 3, replace=False)]
        amount[picked] = np.round(amount[picked] * SCENARIO_3_FACTOR, 2)
        fraud[picked] = 1
        scenario[picked] = 3
    tx["fraud"], tx["scenario"] = fraud, scenario


def _to_utc(local: np.ndarray, tz_codes: np.ndarray, tz_names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local naive seconds -> (UTC, resolved local). Times in a spring-forward gap move forward; times
    in the repeated autumn hour are read as the first occurrence (daylight time)."""
    utc = local.copy()
    resolved = local.copy()
    for k, name in enumerate(tz_names):
        if name == "UTC":
            continue
        mask = tz_codes == k
        if not mask.any():
            continue
        idx = pd.DatetimeIndex(local[mask]).tz_localize(
            name, ambiguous=np.ones(int(mask.sum()), dtype=bool), nonexistent="shift_forward"
        )
        u = idx.tz_convert("UTC").tz_localize(None)
        utc[mask] = u.to_numpy().astype("datetime64[s]")
        resolved[mask] = idx.tz_localize(None).to_numpy().astype("datetime64[s]")
    return utc, resolved


def _label_delays(cfg: SimConfig, z: np.ndarray, u: np.ndarray) -> np.ndarray:
    if cfg.label_delay_days is not None:
        return np.full(len(z), cfg.label_delay_days * DAY_SECONDS, dtype=np.int64)
    if cfg.handbook_labels:
        return np.maximum(1, np.ceil(u * HANDBOOK_DELAY_MAX_S)).astype(np.int64)
    delay = np.exp(np.log(DELAY_MEDIAN_S) + DELAY_SIGMA * z)
    return np.clip(np.round(delay), DELAY_MIN_S, DELAY_MAX_S).astype(np.int64)


def make_fx_rates(cfg: SimConfig) -> pd.DataFrame:
    """Daily EUR-based rates: a geometric random walk per currency, one shock per day from its own
    stream (so day t's rate depends only on days 0..t)."""
    columns = ["rate_date", "base_currency", "quote_currency", "rate"]
    if cfg.profile != "realistic":
        dtypes = ["datetime64[s]", object, object, float]
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(columns, dtypes, strict=True)})
    quotes = list(ref.FX_START)
    shocks = np.stack([rng(cfg.seed, TAG_FX, d).standard_normal(len(quotes)) for d in range(cfg.days)])
    log_start = np.log(np.array([ref.FX_START[q] for q in quotes]))
    log_rate = log_start[None, :] + ref.FX_DAILY_VOL * np.cumsum(shocks, axis=0)
    rates = np.round(np.exp(log_rate), ref.FX_DECIMALS)
    dates = np.datetime64(cfg.start_date, "D") + np.arange(cfg.days).astype("timedelta64[D]")
    return pd.DataFrame(
        {
            "rate_date": np.repeat(dates, len(quotes)).astype("datetime64[s]"),
            "base_currency": REPORTING_CURRENCY,
            "quote_currency": np.tile(np.array(quotes, dtype=object), cfg.days),
            "rate": rates.ravel(),
        }
    )


def generate_world(cfg: SimConfig, progress: bool = False) -> World:
    """The clean world of `cfg` in memory (nothing is written)."""
    customers = make_customers(cfg)
    terminals = make_terminals(cfg)
    offsets, counts, flat = terminals_within_radius(customers, terminals)
    n_gen = cfg.days + LOOKAHEAD_DAYS
    mean_amount = customers["mean_amount"].to_numpy()
    std_amount = customers["std_amount"].to_numpy()
    mean_nb = customers["mean_nb_tx_per_day"].to_numpy()
    parts = [
        _generate_day(cfg, g, mean_amount, std_amount, mean_nb, offsets, counts, flat)
        for g in tqdm(
            range(n_gen), desc="simulating days", unit="day", disable=None if progress else True, leave=False
        )
    ]
    tx = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if len(tx["day"]) >= SHARD_ID_STRIDE:
        raise ValueError(f"a shard generates at most {SHARD_ID_STRIDE - 1:,} transactions: use more shards")
    tx["transaction_id"] = cfg.id_offset + np.arange(1, len(tx["day"]) + 1, dtype=np.int64)
    _apply_scenarios(cfg, tx, n_gen)

    term = tx["terminal"]
    tz_codes, tz_names = pd.factorize(terminals["timezone"].to_numpy())
    start = np.datetime64(cfg.start_date, "s")
    local = start + (tx["day"] * DAY_SECONDS + tx["secs"]).astype("timedelta64[s]")
    utc, local = _to_utc(local, tz_codes[term], np.asarray(tz_names))
    utc_day = (utc - start).astype("timedelta64[s]").astype(np.int64) // DAY_SECONDS
    sel = np.flatnonzero((utc_day >= 0) & (utc_day < cfg.days))
    # ids grow with the array order, so a stable sort on time breaks ties by id; the array is
    # nearly time-ordered already (day-major, local time within a day), which timsort exploits.
    sel = sel[np.argsort(utc[sel], kind="stable")]

    t = term[sel]
    amount = tx["amount"][sel]
    fraud = tx["fraud"][sel]
    utc_sel = utc[sel]
    fx = make_fx_rates(cfg)
    # Per-terminal codes, then one fancy index per column (object comparisons over millions of
    # rows would dominate the run time).
    currencies = list(ref.CURRENCY_EXPONENT)
    t_currency = pd.Categorical(terminals["currency"], categories=currencies).codes
    exponent = np.array([ref.CURRENCY_EXPONENT[c] for c in currencies], dtype=np.int64)
    rate = _rate_table(fx, cfg, currencies)[utc_day[sel], t_currency[t]]
    scale = 10.0 ** exponent[t_currency[t]]
    amount_original = np.round(amount * rate * scale) / scale

    delay = _label_delays(cfg, tx["z_delay"][sel], tx["u_delay"][sel])
    reported = np.where(fraud == 1, utc_sel + delay.astype("timedelta64[s]"), np.datetime64("NaT"))
    three_ds = np.full(len(sel), "", dtype=object)
    ecom = (terminals["channel"].to_numpy() == "ecommerce")[t]
    u3 = tx["u_3ds"][sel]
    for is_fraud, probs in ((0, ref.THREE_DS_GENUINE), (1, ref.THREE_DS_FRAUD)):
        mask = ecom & (fraud == is_fraud)
        cum = np.cumsum(probs)
        three_ds[mask] = ref.THREE_DS_CODES[np.minimum(np.searchsorted(cum, u3[mask], side="right"), 3)]

    transactions = pd.DataFrame(
        {
            "transaction_id": tx["transaction_id"][sel],
            "tx_datetime": utc_sel.astype("datetime64[ns]"),
            "customer_id": customers["customer_id"].to_numpy()[tx["customer"][sel]],
            "pan": customers["pan"].to_numpy()[tx["customer"][sel]],
            "terminal_id": terminals["terminal_id"].to_numpy()[t],
            "tx_amount": amount,
            "tx_fraud": fraud.astype(np.int64),
            "tx_fraud_scenario": tx["scenario"][sel].astype(np.int64),
            "reported_at": reported.astype("datetime64[ns]"),
            "currency": np.asarray(currencies, dtype=object)[t_currency[t]],
            "amount_original": amount_original,
            "channel": terminals["channel"].to_numpy()[t],
            "three_ds": three_ds,
            "tx_datetime_local": local[sel].astype("datetime64[ns]"),
            "feed": terminals["feed"].to_numpy()[t],
        },
        copy=False,  # the arrays are fresh; consolidating them into blocks would cost seconds
    )
    return World(cfg, customers, terminals, transactions, fx)


def _rate_table(fx: pd.DataFrame, cfg: SimConfig, currencies: list[str]) -> np.ndarray:
    """rate[day, currency index]: units per EUR (1 for EUR and in the handbook profile)."""
    table = np.ones((cfg.days, len(currencies)))
    if not fx.empty:
        quotes = list(ref.FX_START)
        wide = fx["rate"].to_numpy().reshape(cfg.days, len(quotes))
        for j, q in enumerate(quotes):
            table[:, currencies.index(q)] = wide[:, j]
    return table

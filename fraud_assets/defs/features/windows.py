"""Time windows over the transactions of a read range: the feature layer's window semantics, stated once.

Semantics (t = the transaction's tx_datetime, UTC, as integer microseconds):
  * window "n" of a card: the card's transactions with time in (t - n, t]: the current one and every other
    at exactly t included. Times are whole microseconds, so "> t - n" is ">= t - n + 1".
  * delayed window "n" of a terminal, d = 7 days: its transactions with time in (t - d - n, t - d].
  * a fraud label counts at t iff its reported_at <= t (cleaned.labels holds the earliest report). The known
    frauds of a window are counted from label events: a label j enters a counter at e_j and leaves it at
    f_j (feature_inputs.sql lists them), and the count at t is #{e_j <= t} - #{f_j <= t}. For the delayed
    window (t-d-n, t-d]: e_j = max(s_j + d, r_j), f_j = max(s_j + d + n, r_j) (s = transaction time, r =
    report time); for the undelayed window (t - n, t): e_j = max(s_j + 1 µs, r_j), f_j = max(s_j + n, r_j).
    A label whose transaction lies outside the window adds +1 -1 or 0 + 0, so feeding every label of the
    read range is exact.
  * the card's previous transaction: the latest strictly before t (of the tied ones, the one with the
    largest transaction_id).
  * the card's earlier maximum amount: the largest amount of its transactions in (t - 30d, t), strictly
    before t (a sparse table of running maxima: exact, no rounding).
  * the card's older window: its transactions in (t - 30d, t - 7d].
  * same-key windows of a card (terminal, local hour band): the card's transactions in (t - n, t] whose key
    equals the current row's, the current one and every other at exactly t included.

How: the physical floor. One sort per entity (rows ordered by entity, then time); every frame bound is a
binary search (`np.searchsorted`) over one monotone integer key (entity rank * span + time), a count is a
difference of two bounds and a sum a difference of two prefix sums. Amount sums are exact (`ExactSums`:
amounts rounded to 2^-50 EUR, summed as integers, one rounding at the end), never a difference of large
floats, so a value never depends on how much history a run read: one day alone equals the same day of a
backfill, bit for bit.
"""

from __future__ import annotations

import numpy as np

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR


class Frames:
    """Rows sorted by (group, time), groups dense integers: bounds of time frames by binary search, for
    the rows `at` (sorted positions; every row by default).

    `reach` is the farthest any frame looks back (microseconds): keys of two groups stay `span` apart
    so a search never crosses into the group before. When groups * span would not fit in 63 bits, the rows
    are searched in batches of consecutive groups."""

    def __init__(self, group: np.ndarray, time: np.ndarray, reach: int, at: np.ndarray | None = None):
        self.time = time
        n = len(time)
        self.at = np.arange(n) if at is None else at
        self.t0 = int(time.min()) if n else 0
        self.span = (int(time.max()) - self.t0 if n else 0) + reach + 1
        starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if n else np.zeros(0, dtype=np.int64)
        # the first row of each wanted row's group
        self.group_start = starts[np.searchsorted(starts, self.at, side="right") - 1]
        per_batch = max(1, (1 << 62) // self.span)
        cuts = np.arange(int(group[0]), int(group[-1]) + 1, per_batch) if n else np.zeros(1, dtype=np.int64)
        edges = [*np.searchsorted(group, cuts, side="left")[1:], n]
        self.batches = []  # (first row, keys of the batch's rows, wanted rows in the batch)
        lo = 0
        for hi in edges:
            wanted = self.at[np.searchsorted(self.at, lo) : np.searchsorted(self.at, hi)]
            if hi > lo and len(wanted):
                g = group[lo:hi].astype(np.int64)
                self.batches.append((lo, (g - g[0]) * self.span + (time[lo:hi] - self.t0), wanted - lo))
            lo = hi

    def through(self, offset: int) -> np.ndarray:
        """Per wanted row: the index just past the last row of its group with time <= t - offset (so offset
        0 counts every row at t, offset 1 stops before them)."""
        out = np.empty(len(self.at), dtype=np.int64)
        done = 0
        for lo, key, wanted in self.batches:
            out[done : done + len(wanted)] = lo + np.searchsorted(key, key[wanted] - offset, side="right")
            done += len(wanted)
        return out

    def window(self, prefix: np.ndarray, end: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Sum of a per-row quantity over [start, end), from its prefix sums (prefix[i] = sum of rows < i)."""
        return prefix[end] - prefix[start]


def prefix(values: np.ndarray) -> np.ndarray:
    """prefix[i] = sum of values[:i], length n + 1, in the values' dtype (unsigned wraps modulo 2^64)."""
    out = np.zeros(len(values) + 1, dtype=values.dtype)
    np.cumsum(values, out=out[1:])
    return out


class ExactSums:
    """Window sums of a non-negative quantity, exact to one final rounding.

    Each value is split into a coarse part (multiples of 2^-coarse_bits) and a fine part (multiples of
    2^-(coarse_bits + 30), the value's rounding); both are summed as unsigned 64-bit integers, whose modular
    prefix differences are exact for any window (coarse sums below 2^64 units, fine sums below 2^34 rows).
    The window sum is the two exact sums combined in one float addition."""

    FINE_BITS = 30

    def __init__(self, values: np.ndarray, coarse_bits: int, limit: float):
        if len(values) and not (np.isfinite(values).all() and values.min() >= 0 and values.max() < limit):
            raise ValueError(
                "transaction_features: amounts must be finite, >= 0 and below the exact-sum limit "
                f"({limit:g}, of the amounts or of their squares); the cleaned contract requires >= 0"
            )
        scaled = values * 2.0**coarse_bits
        coarse = np.floor(scaled)
        fine = np.rint((scaled - coarse) * 2.0**self.FINE_BITS)
        self.coarse, self.fine = prefix(coarse.astype(np.uint64)), prefix(fine.astype(np.uint64))
        self.coarse_unit = 2.0**-coarse_bits
        self.fine_unit = 2.0 ** -(coarse_bits + self.FINE_BITS)

    def over(self, end: np.ndarray, start: np.ndarray) -> np.ndarray:
        coarse = (self.coarse[end] - self.coarse[start]).astype(np.float64) * self.coarse_unit
        return coarse + (self.fine[end] - self.fine[start]).astype(np.float64) * self.fine_unit


WINDOWS = {
    "1h": US_PER_HOUR,
    "6h": 6 * US_PER_HOUR,
    "1d": US_PER_DAY,
    "7d": 7 * US_PER_DAY,
    "30d": 30 * US_PER_DAY,
}


HOUR_BAND_HOURS = 4  # the card's hour-of-day profile counts local hours in bands of 4: 0-3, 4-7, ..., 20-23


def card_windows(
    card: np.ndarray,
    time: np.ndarray,
    amount: np.ndarray,
    terminal: np.ndarray,
    local_hour: np.ndarray,
    at: np.ndarray,
) -> dict[str, np.ndarray]:
    """Card features of the rows `at` (sorted positions). Rows sorted by (card, time, transaction_id);
    cards and terminals dense integers."""
    frames = Frames(card, time, reach=30 * US_PER_DAY, at=at)
    end = frames.through(0)
    starts = {name: frames.through(width) for name, width in WINDOWS.items()}
    out: dict[str, np.ndarray] = {f"card_nb_tx_{name}": end - start for name, start in starts.items()}
    amounts = ExactSums(amount, coarse_bits=20, limit=2.0**43)
    for name in ("1d", "7d", "30d"):
        out[f"card_sum_{name}"] = amounts.over(end, starts[name])
    squares = ExactSums(amount * amount, coarse_bits=10, limit=2.0**53)
    out["card_sumsq_30d"] = squares.over(end, starts["30d"])
    # The card's older history, (t - 30d, t - 7d]: a compromise of the last 7 days (its frauds not reported
    # yet under a 7-day delay) has not inflated it.
    out["card_nb_tx_older"] = starts["7d"] - starts["30d"]
    out["card_sum_older"] = amounts.over(starts["7d"], starts["30d"])
    by_terminal = np.argsort(_pair(card, terminal), kind="stable")
    out.update(distinct_terminals(frames, card, terminal, end, starts, by_terminal))
    out["card_terminal_nb_tx_30d"] = same_key_counts(card, terminal, time, at, 30 * US_PER_DAY, by_terminal)
    band = local_hour.astype(np.int64) // HOUR_BAND_HOURS
    bands = 24 // HOUR_BAND_HOURS
    out["card_hour_band_nb_tx_30d"] = same_band_counts(frames, band, bands, end, starts["30d"])
    # Previous transaction: the row before the first one at t, if it belongs to the same card.
    first_at_t = frames.through(1)
    out["card_max_amount_before_30d"] = range_max(amount, starts["30d"], first_at_t)
    prev = np.maximum(first_at_t - 1, 0)
    gap = time[at] - time[prev]
    recent = (first_at_t > frames.group_start) & (gap <= 30 * US_PER_DAY)
    out["prev_gap_us"] = np.where(recent, gap, -1)
    out["prev_terminal"] = np.where(recent, terminal[prev], -1)
    out["prev_row"] = np.where(recent, prev, -1)  # its row: the reference data of its own date
    return out


def _pair(card: np.ndarray, key: np.ndarray) -> np.ndarray:
    return (card.astype(np.int64) << 32) | key.astype(np.int64)


def same_key_counts(
    card: np.ndarray, key: np.ndarray, time: np.ndarray, at: np.ndarray, width: int, order: np.ndarray
) -> np.ndarray:
    """Per row of `at`: the card's transactions in (t - width, t] with the row's key. `order` is the stable
    sort of the rows by (card, key): it keeps each (card, key) group in time order, so the group's frames
    are binary searches like the card's."""
    pair_sorted = _pair(card, key)[order]
    group = np.cumsum(np.r_[0, pair_sorted[1:] != pair_sorted[:-1]]) if len(order) else pair_sorted
    frames = Frames(group, time[order], reach=width)
    counts = np.empty(len(order), dtype=np.int64)
    counts[order] = frames.through(0) - frames.through(width)
    return counts[at]


def same_band_counts(
    card_frames: Frames, band: np.ndarray, n_bands: int, end: np.ndarray, start: np.ndarray
) -> np.ndarray:
    """Per row of the card frames: the card's rows in [start, end) whose band equals the row's, from one
    prefix count per band (rows sorted by card and time; a few bands, so no sort)."""
    counts = np.zeros((n_bands, len(band) + 1), dtype=np.int32)
    np.cumsum(band[None, :] == np.arange(n_bands)[:, None], axis=1, out=counts[:, 1:])
    own = band[card_frames.at]
    return counts[own, end] - counts[own, start]


def range_max(values: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """max(values[start:end]) per row (NaN where the range is empty), from a sparse table: level k holds
    the maxima of the 2^k values from each position, and a range is covered by two overlapping blocks."""
    length = end - start
    out = np.full(len(start), np.nan)
    longest = int(length.max()) if len(length) else 0
    level = values.astype(np.float64)
    k = 0
    while longest >= 1 << k:
        rows = np.flatnonzero((length >= 1 << k) & (length < 1 << (k + 1)))
        out[rows] = np.maximum(level[start[rows]], level[end[rows] - (1 << k)])
        if longest >= 1 << (k + 1):
            level = np.maximum(level[: len(level) - (1 << k)], level[1 << k :])
        k += 1
    return out


def distinct_terminals(
    frames: Frames,
    card: np.ndarray,
    terminal: np.ndarray,
    end: np.ndarray,
    starts: dict[str, np.ndarray],
    order: np.ndarray,
) -> dict[str, np.ndarray]:
    """Distinct terminals of the card in (t - n, t], n = 1d and 7d, without a distinct count.

    With prev/next the card's previous/next transaction at the same terminal (one stable sort by
    card and terminal keeps each pair's visits in time order):
        distinct_n(t) = sum over (t-n, t] of [next - s >= n or no next]
                      + sum over s <= t of ([next - s < n] - [s - prev < n])
    Each terminal of the window counts once, at its last visit up to t: its next visit is n or more later
    (first term), or within n but after t, a pair still open at t (second term: pairs opened minus pairs
    closed by t). The future next visits cancel, so the total depends only on rows <= t. `order` is the
    stable sort of the rows by (card, terminal)."""
    pair = _pair(card, terminal)
    pair_sorted, time_sorted = pair[order], frames.time[order]
    same = pair_sorted[1:] == pair_sorted[:-1]
    gap = np.diff(time_sorted)
    out = {}
    n = len(pair)
    for name in ("1d", "7d"):
        close = (same & (gap < WINDOWS[name])).astype(np.int64)
        near_prev, near_next = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        near_prev[order[1:]] = close
        near_next[order[:-1]] = close
        last_visit = frames.window(prefix(1 - near_next), end, starts[name])
        still_open = frames.window(prefix(near_next - near_prev), end, frames.group_start)
        out[f"card_nb_terminals_{name}"] = last_visit + still_open
    return out


DELAYED_WINDOWS = {"1d": 1, "7d": 7, "14d": 14, "30d": 30}  # terminal windows (t - 7d - n, t - 7d], n days
KNOWN_FRAUD_COUNTERS = (*(f"delayed_{w}" for w in DELAYED_WINDOWS), "recent_7d", "recent_28d")


def terminal_windows(
    terminal: np.ndarray,
    time: np.ndarray,
    event_terminal: np.ndarray,
    event_time: np.ndarray,
    event_deltas: dict[str, np.ndarray],
    at: np.ndarray,
) -> dict[str, np.ndarray]:
    """Terminal features of the transaction rows `at`, in that order (rows in any order, terminals dense
    integers), from the transactions and the label events (+1 when a label enters a counter, -1 when it
    leaves)."""
    n = len(time)
    # One stream of transactions and events sorted by (terminal, time): an event at t counts at t.
    group = np.r_[terminal, event_terminal]
    stream_time = np.r_[time, event_time]
    order = sort_by_group_and_time(group, stream_time, reach=37 * US_PER_DAY)
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    # The wanted transactions' stream positions in stream order, and each row of `at`'s place among them:
    # a mark per stream position and its running count, linear where a sort and a binary search are not.
    wanted_at = position[at]
    marked = np.zeros(len(order), dtype=bool)
    marked[wanted_at] = True
    wanted = np.flatnonzero(marked)
    back = (np.cumsum(marked) - 1)[wanted_at]
    frames = Frames(group[order], stream_time[order], reach=37 * US_PER_DAY, at=wanted)
    tx_through = prefix((order < n).astype(np.int64))
    tx_base = tx_through[frames.group_start]

    def before(offset: int) -> np.ndarray:
        """The terminal's transactions with time <= t - offset."""
        return tx_through[frames.through(offset)] - tx_base

    in_stream_order: dict[str, np.ndarray] = {}
    recent = before(7 * US_PER_DAY)
    for name, days in DELAYED_WINDOWS.items():
        in_stream_order[f"terminal_nb_tx_{name}"] = recent - before((7 + days) * US_PER_DAY)
    end = frames.through(0)
    events = position[n:]  # the label events' stream positions: a counter moves only there
    for counter in KNOWN_FRAUD_COUNTERS:
        delta = np.zeros(len(order), dtype=np.int64)
        delta[events] = event_deltas[counter]
        in_stream_order[f"known_{counter}"] = frames.window(prefix(delta), end, frames.group_start)
    return {name: values[back] for name, values in in_stream_order.items()}  # back to the order of `at`


def sort_by_group_and_time(group: np.ndarray, time: np.ndarray, reach: int) -> np.ndarray:
    """The permutation that sorts rows by (group, time): one integer sort of a composite key when it fits
    in 63 bits, else a two-key sort."""
    if not len(time):
        return np.arange(0)
    span = int(time.max()) - int(time.min()) + reach + 1
    if (int(group.max()) + 1) * span < 2**62:
        return np.argsort(group.astype(np.int64) * span + (time - time.min()))
    return np.lexsort((time, group))

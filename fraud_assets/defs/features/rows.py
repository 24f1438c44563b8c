"""From window results to feature values: the ratios, defaults and reference data of docs/features.md.

Every function takes per-row arrays (one row per output transaction) and returns per-row arrays; NaN
stands for SQL NULL (a card or terminal missing from the reference tables).
"""

from __future__ import annotations

import numpy as np

from fraud_assets.defs.features.windows import US_PER_DAY

SECONDS_30_DAYS = 30 * 86400.0
ZSCORE_CLIP = 20.0
# Amounts count as constant when their sample variance is at most 1e-6 EUR^2 or 1e-12 of their squared
# mean. The variance is a difference of sums of squares: on constant amounts its rounding leaves up to
# ~1e-15 of the squared mean (~1e-13 with Spark's float sums), above 1e-6 EUR^2 from ~30,000 EUR on, and
# an absolute bound alone then turns a constant history into a z-score of +-20.
CONSTANT_VAR, CONSTANT_REL_VAR = 1e-6, 1e-12


def share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """part / whole, 0 when whole is 0 (a risk with no transaction in its window)."""
    return np.where(whole > 0, part / np.maximum(whole, 1), 0.0)


def card_amount_stats(
    amount: np.ndarray, count_30d: np.ndarray, sum_30d: np.ndarray, sumsq_30d: np.ndarray
) -> dict[str, np.ndarray]:
    """The amount against the card's *other* transactions of (t - 30d, t]: ratio to their mean (1 if none)
    and z-score with their sample std (0 if fewer than 2 or constant), clipped: a card with near-constant
    amounts would otherwise give z-scores in the hundreds."""
    n_prev = count_30d - 1
    sum_prev = sum_30d - amount
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_prev = sum_prev / n_prev
        var_prev = (sumsq_30d - amount * amount - sum_prev * sum_prev / n_prev) / (n_prev - 1)
        ratio = np.where((n_prev > 0) & (sum_prev > 0), amount / mean_prev, 1.0)
        constant = var_prev <= np.maximum(CONSTANT_VAR, CONSTANT_REL_VAR * mean_prev * mean_prev)
        usable = (n_prev >= 2) & ~constant
        z = np.where(usable, (amount - mean_prev) / np.sqrt(np.where(usable, var_prev, 1.0)), 0.0)
    return {
        "card_amount_ratio_30d": ratio,
        "card_amount_zscore_30d": np.clip(z, -ZSCORE_CLIP, ZSCORE_CLIP),
    }


def mean_or_nan(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """total / count, NaN where count is 0."""
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def ratio_to(amount: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """amount / reference, 1 where there is no reference (NaN) or it is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(reference > 0, amount / reference, 1.0)


def previous_transaction(
    gap_us: np.ndarray, x: np.ndarray, y: np.ndarray, prev_x: np.ndarray, prev_y: np.ndarray
) -> dict[str, np.ndarray]:
    """Seconds since the card's previous transaction (30 days when none within 30 days) and the distance
    from its terminal (0 when none)."""
    has_prev = gap_us >= 0
    return {
        "card_secs_since_prev_tx": np.where(has_prev, gap_us / 1e6, SECONDS_30_DAYS),
        "dist_prev_terminal": np.where(has_prev, np.hypot(x - prev_x, y - prev_y), 0.0),
    }


def flags(packed: np.ndarray) -> dict[str, np.ndarray]:
    """The per-row flags feature_inputs.sql packs into one small integer, one bit each."""
    names = ("is_weekend", "is_night", "is_ecommerce", "three_ds_failed", "ecommerce_without_3ds")
    return {name: ((packed >> bit) & 1).astype(np.int32) for bit, name in enumerate(names)}


def episodes(ids: np.ndarray, t_us: np.ndarray, known: dict[str, np.ndarray], reach_us: int) -> dict:
    """The known frauds of the last `reach_us` of each row's terminal and card, from feature_episodes (one
    row per transaction that has any, sorted by transaction id): counts, and the days since the
    terminal's first and last one (`reach_us` in days where there is none)."""
    found = known["transaction_id"]
    at = np.searchsorted(found, ids)
    hit = at < len(found)
    hit[hit] = found[at[hit]] == ids[hit]
    at = at[hit]

    def column(name: str, default: np.ndarray | int) -> np.ndarray:
        out = np.broadcast_to(np.asarray(default, dtype=np.int64), ids.shape).copy()
        out[hit] = known[name][at]
        return out

    terminal_known = column("terminal_known", 0)
    none = t_us - reach_us  # no known fraud: as if the episode began and ended `reach_us` ago
    return {
        "terminal_known_fraud_60d": terminal_known,
        **{
            f"terminal_days_since_{end}_fraud_60d": (
                t_us - np.where(terminal_known > 0, column(f"terminal_{end}_us", none), none)
            )
            / US_PER_DAY
            for end in ("first", "last")
        },
        "card_known_fraud_60d": column("card_known", 0),
    }

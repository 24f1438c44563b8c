"""Business dates: one daily partition per UTC day from the first business date (lib/settings.py).

Calendar days, not a list of the days that happened to arrive: a day whose files never came is a
visible missing partition, backfills are date ranges, and lookbacks are partition mappings Dagster's
automation can follow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar

import dagster as dg

from fraud_assets.lib import settings

T = TypeVar("T")


def _business_date_partitions() -> dg.DailyPartitionsDefinition:
    last = settings.last_business_date()
    return dg.DailyPartitionsDefinition(
        start_date=settings.first_business_date().isoformat(),
        end_date=(last + dt.timedelta(days=1)).isoformat() if last else None,  # end is exclusive
        timezone="UTC",
    )


business_date_partitions = _business_date_partitions()


def consecutive_blocks(days: list[str]) -> list[list[str]]:
    """Sorted business dates cut into runs of consecutive days: a range run over a gap would write an
    empty partition for the missing day and hide it."""
    blocks: list[list[str]] = []
    previous: dt.date | None = None
    for key in sorted(set(days)):
        day = dt.date.fromisoformat(key)
        if previous is None or day - previous != dt.timedelta(days=1):
            blocks.append([])
        blocks[-1].append(key)
        previous = day
    return blocks


def day_batches(days: Sequence[T], rows: Mapping[T, int], max_rows: int) -> Iterator[list[T]]:
    """`days`, in their order, cut into batches of whole days that close once they hold `max_rows` rows:
    a reader of a range holds about `max_rows` rows whatever the range's length."""
    batch: list[T] = []
    held = 0
    for day in days:
        batch.append(day)
        held += rows.get(day, 0)
        if held >= max_rows:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def validate_keys(partition_keys: Sequence[str]) -> list[dt.date]:
    """Partition keys as dates; raises on anything that is not YYYY-MM-DD (keys reach SQL text)."""
    if not partition_keys:
        raise ValueError("no partition keys to compute")
    return sorted({dt.date.fromisoformat(k) for k in partition_keys})


def dates_filter(partition_keys: Sequence[str] | None, column: str = "business_date") -> str:
    """`column` within these business dates as typed literals (zone maps skip the other row groups);
    TRUE for None (an unpartitioned step: every day), FALSE for an empty list (no day: never widened to
    the whole table). Keys are validated dates, so the text is safe to inline."""
    if partition_keys is None:
        return "TRUE"
    if not partition_keys:
        return "FALSE"
    dates = validate_keys(partition_keys)
    listed = ", ".join(f"DATE '{d.isoformat()}'" for d in dates)
    return f"{column} BETWEEN DATE '{dates[0]}' AND DATE '{dates[-1]}' AND {column} IN ({listed})"


def day_span(days: list[str]) -> str:
    """Consecutive business dates as a run key, tag or message shows them: `2018-04-01 to 2018-04-05`.
    A word between the dates: two dates joined by punctuation read as one 16-digit number, which the
    card-number scan (and the alert sink's mask) would take for a PAN."""
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"

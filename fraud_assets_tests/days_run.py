"""How a test runs assets for some business days, as Dagster's own launches do: one day is a
partition key, several are one range run (a single-run backfill: the partition-range tags)."""

from __future__ import annotations

from collections.abc import Sequence

from fraud_assets.lib.runs import RANGE_END, RANGE_START


def days_run(days: Sequence[str], tags: dict[str, str] | None = None) -> dict:
    """Keyword arguments for `dg.materialize` (or `execute_in_process`) over `days`, with `tags` added."""
    if len(days) == 1:
        return {"partition_key": days[0], **({"tags": tags} if tags else {})}
    return {"tags": {RANGE_START: days[0], RANGE_END: days[-1], **(tags or {})}}

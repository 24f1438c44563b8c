"""Partitioning shared by every daily layer.

Business dates are *dynamic* partitions named `YYYY-MM-DD`: the landing sensor (and `make pipeline`)
adds a partition when a file for a new business date lands. Simulated and replayed data lives in the
past (the handbook world starts 2018-04-01), so a calendar partitioning ending "today" would show
thousands of empty days and confine eager automation to the latest calendar day; dynamic partitions
hold exactly the days that exist, and automation treats every one of them alike.
"""

from __future__ import annotations

import dagster as dg

BUSINESS_DATE = "business_date"
business_date_partitions = dg.DynamicPartitionsDefinition(name=BUSINESS_DATE)

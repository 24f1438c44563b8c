"""What one landing file may cost: the reader's caps, as named settings.

Memory is bounded whatever the file (text is streamed in chunks, Parquet read row group by row
group); the caps bound the time and disk a single file can take and turn a hostile file into a
rejection with a reason instead of an exhausted machine. Defaults fit a large processor's day file
(tens of millions of rows, tens of GB decompressed); a test or a small deployment sets its own.
They are the run config of raw/file_register (the launchpad shows and overrides them).
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30


class ReaderLimits(dg.Config):
    """Caps on one landing file; a file over any of them is rejected with the reason named here."""

    max_file_bytes: int = Field(default=16 * GIB, ge=1, description="size on disk (`too_large`)")
    max_decompressed_bytes: int = Field(
        default=64 * GIB,
        ge=1,
        description="text bytes after gzip, or Parquet uncompressed size (`too_large`)",
    )
    max_compression_ratio: int = Field(
        default=100,
        ge=2,
        description=(
            "decompressed / compressed bytes (`compression_ratio_too_high`); CSV and JSON Lines compress "
            "4-10x, a gzip bomb about 1000x"
        ),
    )
    max_rows: int = Field(
        default=200_000_000,
        ge=1,
        description="lines of a text file (blank and header included) or Parquet rows",
    )
    max_line_bytes: int = Field(
        default=MIB,
        ge=64,
        le=16 * MIB,
        description="bytes of a line (`line_too_long`); shorter ones over 4096 characters are malformed rows",
    )
    max_header_bytes: int = Field(
        default=64 * KIB, ge=64, description="bytes of a CSV header (`header_too_long`)"
    )
    max_row_group_bytes: int = Field(
        default=GIB, ge=1, description="uncompressed bytes of one Parquet row group (`too_large`)"
    )
    max_footer_bytes: int = Field(
        default=16 * MIB,
        ge=64,
        description=(
            "bytes of a Parquet footer (schema and row-group index: parsed whole, into ~20x its size in "
            "memory, before any cap on the data applies; `too_large`)"
        ),
    )


DEFAULT_LIMITS = ReaderLimits()
# Decompressed bytes a file may reach before the ratio cap applies: a small file's header alone can
# compress badly or very well.
RATIO_SLACK_BYTES = 16 * MIB

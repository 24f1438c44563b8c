"""Where a column's values come from: a producer's files, or the platform itself.

Previews in metadata mask producer values and show ours as they are: masking a model version
(`rf-20261202T135241551134-...`), a hash or a clock reading because its digits happen to pass Luhn
corrupts what an operator needs to read. The decision is by column, never by looking at the value:

- raw and cleaned tables hold producer values, except the columns the platform stamps on them
  (`PLATFORM_COLUMNS`: tokens, lineage, register bookkeeping);
- the layers after cleaned (`PLATFORM_SCHEMAS`) are computed by the platform, except the producer values
  they carry over from cleaned (`CARRIED_PRODUCER_COLUMNS`).

A column nobody declared is a producer column: forgetting one over-masks, it never leaks.
"""

from __future__ import annotations

PLATFORM_SCHEMAS = frozenset({"features", "models", "scoring", "monitoring", "platform"})

PLATFORM_COLUMNS = frozenset(
    {
        # tokens: derived from the PAN by ingestion (pan_masked is already masked)
        "card_token",
        "pan_bin",
        "pan_last4",
        "pan_valid",
        "pan_masked",
        # lineage stamped on every raw row
        "feed",
        "file_sha256",
        "landing_date",
        "business_date",
        "row_number",
        "ingested_at",
        "malformed_reason",
        # raw.file_register bookkeeping
        "status",
        "rows_landed",
        "registered_at",
        "file_size",
        "file_mtime_ns",
        "file_ctime_ns",
        # cleaned bookkeeping
        "quarantined_at",
        "offending_column",
    }
)

CARRIED_PRODUCER_COLUMNS = frozenset(
    {
        "transaction_id",
        "original_transaction_id",
        "chargeback_id",
        "customer_id",
        "terminal_id",
        "merchant_id",
        "tx_datetime",
        "tx_datetime_local",
        "tx_amount",
        "amount_original",
        "currency",
        "channel",
        "three_ds",
        "mcc",
        "country",
        "timezone",
        "x",
        "y",
        "home_x",
        "home_y",
        "home_country",
        "reason_code",
        "source_file",
        "offending_value",
    }
)

# Values the platform computes that hold long digit runs by nature, which the leak scan skips: hex
# digests (about 1 SHA-256 hex in 200 holds a Luhn-valid 13-digit run by chance) and the nanosecond
# clock of a file (19 digits: most pass Luhn somewhere), its inode number (13 digits and more on CephFS,
# Lustre, XFS with inode64 or overlayfs with xino) and its size as the filesystem reports it (a sparse
# file of any size costs a producer one `truncate`). Skipped by name, and only because these names are
# ours in every table: no producer column is ever stored under them.
LEAK_SCAN_EXEMPT_COLUMNS = frozenset(
    {
        "card_token",
        "file_sha256",
        "file_mtime_ns",
        "file_ctime_ns",
        "file_inode",
        "file_size",
        "artifact_sha256",
        "params_hash",
        "data_hash",
        "alert_id",
        "key_fingerprint",
        # the model registry's signatures and digests (lib/registry.py, defs/models/snapshots.py)
        "signature",
        "prev_signature",
        "key_id",
        "evidence_sha256",
        "labels_sha256",
        "parquet_sha256",
        # registry versions (models/candidates.py): family, the UTC time to the microsecond and a digest
        # prefix, e.g. `lr-20261205T144740572584-0940b335`, 16 digits across the dash, Luhn-valid here
        "model_version",
        "champion_version",
    }
)


def is_producer_column(table: str | None, column: str) -> bool:
    """True when `column` of `table` (`schema.name`) may hold producer input; True when unsure."""
    if column in PLATFORM_COLUMNS:
        return False
    schema = table.split(".")[0] if table else None
    if schema in PLATFORM_SCHEMAS:
        return column in CARRIED_PRODUCER_COLUMNS
    return True

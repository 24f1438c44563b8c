"""Raw assets: every landed file accounted for, rows as received, PAN tokenised at the door.

`raw/file_register` scans the landing zone (register.py: hash, name, caps, readability, re-sends) and
is the only asset that decides which files are ingested; the source assets read exactly the
register's `ingested` files (ingest.py), so a file refused there never half-enters the warehouse.
`ingested_at` is the moment the file was first registered (kept across re-runs), which makes
re-materialising a partition byte-identical.
"""

from collections.abc import Sequence

import dagster as dg
import pandas as pd
import pyarrow as pa
from dagster_duckdb import DuckDBResource
from duckdb import Error as EngineError
from duckdb import OutOfMemoryException

from fraud_assets.defs.raw import ingest
from fraud_assets.defs.raw.limits import ReaderLimits
from fraud_assets.defs.raw.register import build_register
from fraud_assets.defs.raw.schemas import COLUMN_DESCRIPTIONS, COLUMNS, CONTRACTS, select_sql
from fraud_assets.defs.raw.text_reader import LandingChanged
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.day_metadata import spread_table_over_days
from fraud_assets.lib.pan import mask_pans
from fraud_assets.lib.partitions import business_date_partitions, dates_filter
from fraud_assets.lib.token_keys import TOKEN_COLUMN, ensure_token_key
from fraud_assets.lib.warehouse import replace_partition, replace_table, table_exists, table_metadata
from fraud_assets.resources import LandingZone, PanTokenizer

OWNERS = ["team:fraud-data-science"]
GROUP = "raw"
# A backfill is one run; it writes this many business dates per transaction.
CHUNK_DAYS = 31
SNAPSHOT_SOURCES = ("cardholders", "merchants")
# Plotted per day, each day's own in a range run too (a day short of a processor's file shows as a dip).
AUTHORIZATIONS_DAY_FIGURES = {
    "rows_acq_a": "count(*) FILTER (WHERE feed = 'acq_a')",
    "rows_acq_b": "count(*) FILTER (WHERE feed = 'acq_b')",
    "malformed_lines": "count(malformed_reason)",
}


def _raw_asset(table: str, **kwargs):
    """`@dg.asset` for raw table `table` (`raw.<name>`) with the layer's standard: key, column schema,
    group, owners, kinds, code version and the DuckDB pool; `kwargs` add the rest."""
    return dg.asset(
        key=table.split("."),
        metadata=column_schema_metadata(
            COLUMNS[table], descriptions=COLUMN_DESCRIPTIONS, contract=CONTRACTS[table]
        ),
        group_name=GROUP,
        owners=OWNERS,
        kinds={"python", "duckdb"},
        code_version=kwargs.pop("code_version", "4"),
        pool="duckdb",
        **kwargs,
    )


@_raw_asset(
    "raw.file_register",
    description=(
        "Register of every entry in the landing zone, for the data engineers who answer 'did we get it?'. "
        "One row per file: source, feed, business and landing date, SHA-256, status (`ingested`, "
        "`rejected` with a reason such as truncated_gzip / too_large / wrong_types / pan_in_file_name / "
        "not_a_regular_file, or `duplicate_file` for a re-send of identical content) and the number of "
        "rows landed, which raw tables reconcile to. A path holding a card number is stored masked. "
        "Caps per file (bytes, rows, line and header length, compression ratio) are the run config. "
        "Incremental: unchanged files (size, mtime, inode, ctime) are not re-read."
    ),
)
def file_register(config: ReaderLimits, duckdb: DuckDBResource, landing: LandingZone) -> dg.MaterializeResult:
    table = "raw.file_register"
    with duckdb.get_connection() as conn:
        previous = conn.execute(f"SELECT * FROM {table}").df() if table_exists(conn, table) else None
        reg = build_register(landing.path, previous, limits=config)
        write_frame(conn, table, reg)
        by_status = reg["status"].value_counts().to_dict() if len(reg) else {}
        by_reason = (
            reg.loc[reg["status"] == "rejected", "reason"].value_counts().to_dict() if len(reg) else {}
        )
        md = table_metadata(
            conn,
            table,
            descriptions=COLUMN_DESCRIPTIONS,
            contract=CONTRACTS[table],
            extra={
                "files_ingested": int(by_status.get("ingested", 0)),
                "files_rejected": int(by_status.get("rejected", 0)),
                "files_duplicate": int(by_status.get("duplicate_file", 0)),
                "rejections_by_reason": dg.MetadataValue.json({str(k): int(v) for k, v in by_reason.items()}),
            },
        )
    return dg.MaterializeResult(metadata=md)


def write_frame(conn, table: str, df: pd.DataFrame, partition_keys: Sequence[str] | None = None) -> int:
    """Atomic write of `df` with the table's documented column types.

    Uses its own cursor: DuckDB 2 refuses to register a frame on a connection that still holds an
    unfinished result, and a cursor's view and transaction stay private to this write.
    """
    cur = conn.cursor()
    try:
        cur.register("_raw_frame", df)
        sql = select_sql(table, "_raw_frame")
        if partition_keys is None:
            return replace_table(cur, table, sql)
        return replace_partition(cur, table, sql, "business_date", partition_keys)
    finally:
        cur.close()


def _ingested_files(conn, source: str, business_dates: Sequence[str] | None = None) -> pd.DataFrame:
    if not table_exists(conn, "raw.file_register"):
        return pd.DataFrame(columns=[c for c, _ in COLUMNS["raw.file_register"]])
    sql = "SELECT * FROM raw.file_register WHERE status = 'ingested' AND source = ?"
    params: list[object] = [source]
    if business_dates is not None:
        sql += f" AND {dates_filter(business_dates)}"
    return conn.execute(sql + " ORDER BY business_date, source_file", params).df()


def _empty_select(table: str) -> str:
    nulls = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in COLUMNS[table])
    return f"SELECT {nulls} LIMIT 0"


def _staged_rows(landing: LandingZone, files: pd.DataFrame, table: str, tokenizer) -> pa.Table:
    """The raw rows of `files` for `table`: staged in a private in-memory database (ingest.staging), PANs
    tokenised and masked there, returned as Arrow holding tokens and masked text only."""
    snapshot = table.split(".")[1] in SNAPSHOT_SOURCES
    stage_files = ingest.stage_snapshot_files if snapshot else ingest.stage_text_files
    with ingest.staging() as stage:
        try:
            select = (
                _empty_select(table)
                if files.empty
                else stage_files(stage, landing.path, files, table, tokenizer)
            )
            rows = ingest.fetch_rows(stage, select)
        except LandingChanged as exc:
            raise dg.Failure(description=str(exc)) from None
        except OutOfMemoryException:
            raise
        except EngineError as exc:
            # The engine quotes the line it failed on ("Original Line: ..."): the run's error, kept in
            # the event log, holds it with card numbers masked and without the original exception.
            raise dg.Failure(
                description=f"reading the landed files failed: {type(exc).__name__}: {mask_pans(str(exc))}"
            ) from None
    return rows


def _rows_per_feed(rows: pa.Table) -> list[tuple[str, int, int]]:
    """(feed, rows, malformed lines) of staged authorisation rows."""
    counts = rows.group_by("feed").aggregate([("feed", "count"), ("malformed_reason", "count")])
    columns = [counts.column(c).to_pylist() for c in ("feed", "feed_count", "malformed_reason_count")]
    return list(zip(*columns, strict=True))


def _chunks(cur, keys: Sequence[str]) -> list[list[str]]:
    """`keys` in runs of at most CHUNK_DAYS days and, beyond its first day, ingest.STAGE_MAX_ROWS landed
    rows (the register's counts): a chunk is staged in memory at once."""
    rows = {}
    if keys and table_exists(cur, "raw.file_register"):
        rows = dict(
            cur.execute(
                "SELECT CAST(business_date AS VARCHAR), sum(rows_landed) FROM raw.file_register WHERE "
                f"status = 'ingested' AND source = 'authorizations' AND {dates_filter(keys)} GROUP BY ALL"
            ).fetchall()
        )
    chunks: list[list[str]] = []
    held = 0
    for key in keys:
        n = int(rows.get(key) or 0)
        if not chunks or len(chunks[-1]) >= CHUNK_DAYS or held + n > ingest.STAGE_MAX_ROWS:
            chunks.append([])
            held = 0
        chunks[-1].append(key)
        held += n
    return chunks


def ingest_authorizations(conn, landing: LandingZone, tokenizer, keys: Sequence[str]) -> dict[str, int]:
    """Write raw.authorizations for `keys` (each chunk of dates in one transaction); rows per feed."""
    counts: dict[str, int] = {"acq_a": 0, "acq_b": 0, "malformed": 0}
    cur = conn.cursor()
    try:
        for chunk in _chunks(cur, list(keys)):
            files = _ingested_files(cur, "authorizations", chunk)
            rows = _staged_rows(landing, files, "raw.authorizations", tokenizer)
            replace_partition(cur, "raw.authorizations", rows, "business_date", chunk)
            for feed, n, malformed in _rows_per_feed(rows):
                counts[feed] = counts.get(feed, 0) + int(n)
                counts["malformed"] += int(malformed)
    finally:
        cur.close()
    return counts


@_raw_asset(
    "raw.authorizations",
    deps=[file_register],
    partitions_def=business_date_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description=(
        "Card authorisations from both processors for one UTC business date, one row per landed line, "
        "for the cleaning layer and for audit. Columns carry canonical names (processor B's drifted keys "
        "mapped by the declared mapping) and values exactly as received (VARCHAR). The PAN is replaced at "
        "ingestion by `card_token` (HMAC-SHA256 keyed by FRAUD_PAN_KEY), `pan_bin`, `pan_last4`, "
        "`pan_valid` (and `pan_masked` for invalid ones); CVV/track data are dropped, a card number in "
        "another field is masked. Lines that do not split into fields keep `malformed_reason` and a "
        "masked copy of the line. Lineage: feed, source_file, file_sha256, landing_date, row_number, "
        "ingested_at. Read by DuckDB from the files raw/file_register marked `ingested`; a backfill is "
        "one run."
    ),
)
def authorizations(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBResource,
    landing: LandingZone,
    pan_tokenizer: PanTokenizer,
) -> dg.MaterializeResult:
    keys = list(context.partition_keys)
    tokenizer = pan_tokenizer.tokenizer()
    with duckdb.get_connection() as conn:
        ensure_token_key(conn, tokenizer, "raw.authorizations")
        counts = ingest_authorizations(conn, landing, tokenizer, keys)
        md = table_metadata(
            conn,
            "raw.authorizations",
            descriptions=COLUMN_DESCRIPTIONS,
            contract=CONTRACTS["raw.authorizations"],
            where=dates_filter(keys),
            partitions=len(keys),
            extra={
                "rows_acq_a": counts.get("acq_a", 0),
                "rows_acq_b": counts.get("acq_b", 0),
                "malformed_lines": counts["malformed"],
                "partitions_written": len(keys),
            },
        )
        md = spread_table_over_days(context, conn, "raw.authorizations", md, AUTHORIZATIONS_DAY_FIGURES)
    return dg.MaterializeResult(metadata=md)


def _reference_asset(source: str, what: str, for_whom: str, code_version: str = "4"):
    table = f"raw.{source}"

    @_raw_asset(
        table,
        code_version=code_version,
        deps=[file_register],
        description=(
            f"{what}, as received, rebuilt from every `ingested` {source} file in raw/file_register "
            f"(small), with lineage columns (feed, source_file, file_sha256, landing_date, row_number, "
            f"ingested_at, business_date); {for_whom}"
        ),
    )
    def _asset(
        duckdb: DuckDBResource, landing: LandingZone, pan_tokenizer: PanTokenizer
    ) -> dg.MaterializeResult:
        with duckdb.get_connection() as conn:
            tokenizer = pan_tokenizer.tokenizer()
            if any(c == TOKEN_COLUMN for c, _ in COLUMNS[table]):
                ensure_token_key(conn, tokenizer, table)
            cur = conn.cursor()
            try:
                files = _ingested_files(cur, source)
                replace_table(cur, table, _staged_rows(landing, files, table, tokenizer))
            finally:
                cur.close()
            md = table_metadata(
                conn,
                table,
                descriptions=COLUMN_DESCRIPTIONS,
                contract=CONTRACTS[table],
                extra={"files": len(files)},
            )
        return dg.MaterializeResult(metadata=md)

    return _asset


chargebacks = _reference_asset(
    "chargebacks",
    "Chargeback (fraud report) rows; the PAN is tokenised at ingestion",
    "the source of cleaned/labels.",
    code_version="5",
)
cardholders = _reference_asset(
    "cardholders",
    "Cardholder snapshots (one row per card; a customer may hold several); the PAN is tokenised at "
    "ingestion whatever its type",
    "the source of cleaned/cards. A snapshot with wrongly typed columns or a card number outside `pan` "
    "is rejected at the register, so the last good one stays; a row cleaned/cards cannot use (no "
    "customer id or card number, an infinite home) keeps its reason in `invalid_reason`.",
    code_version="5",
)
merchants = _reference_asset(
    "merchants",
    "Merchant and terminal snapshots (MCC, country, currency, IANA time zone, grid position)",
    "the source of cleaned/terminals and of the time zones that convert processor B's local times. A "
    "snapshot with wrongly typed columns is rejected at the register, so the last good one stays; a row "
    "with a time zone, MCC or currency the terminals contract refuses, an infinite position or no "
    "terminal id or zone keeps its reason in `invalid_reason` (cleaned/terminals quarantines it).",
    code_version="5",
)
fx_rates = _reference_asset(
    "fx_rates",
    "Daily EUR reference FX rates (units of quote currency per EUR)",
    "the source of cleaned/fx_rates.",
)
RAW_ASSETS = [file_register, authorizations, chargebacks, cardholders, merchants, fx_rates]


def _with_lineage(df: pd.DataFrame, reg_row) -> pd.DataFrame:
    """`df` with the lineage columns of register row `reg_row` (for frames built in memory)."""
    return df.assign(
        feed=reg_row.feed,
        source_file=reg_row.source_file,
        file_sha256=reg_row.file_sha256,
        landing_date=pd.Timestamp(reg_row.landing_date),
        ingested_at=pd.Timestamp(reg_row.registered_at),
        business_date=pd.Timestamp(reg_row.business_date),
    )

"""Raw assets: every landed file accounted for, rows as received, PAN tokenised at the door.

`raw/file_register` scans the landing zone (hash, name, readability, re-sends) and is the only asset
that decides which files are ingested; the source assets read exactly the register's `ingested`
files, so a file refused there never half-enters the warehouse. `ingested_at` is the moment the file
was first registered (kept across re-runs), which makes re-materialising a partition byte-identical.
"""

import datetime as dt
from collections.abc import Sequence

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from fraud_assets.defs.raw import landing as lz
from fraud_assets.defs.raw import parsers
from fraud_assets.defs.raw.schemas import COLUMNS, select_sql
from fraud_assets.lib import landing as landing_names
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.partitions import business_date_partitions
from fraud_assets.lib.token_keys import TOKEN_COLUMN, ensure_token_key
from fraud_assets.lib.warehouse import replace_partition, replace_table, table_exists, table_metadata
from fraud_assets.resources import LandingZone, PanTokenizer

OWNERS = ["team:fraud-data-science"]
GROUP = "raw"
# A backfill is one run; it writes this many business dates per transaction to bound memory.
CHUNK_DAYS = 31


def _raw_asset(table: str, **kwargs):
    """`@dg.asset` for raw table `table` (`raw.<name>`) with the layer's standard: key, column schema,
    group, owners, kinds, code version and the DuckDB pool; `kwargs` add the rest."""
    return dg.asset(
        key=table.split("."),
        metadata=column_schema_metadata(COLUMNS[table]),
        group_name=GROUP,
        owners=OWNERS,
        kinds={"python", "duckdb"},
        code_version="1",
        pool="duckdb",
        **kwargs,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def build_register(root, previous: pd.DataFrame | None, now: dt.datetime | None = None) -> pd.DataFrame:
    """The register frame for the landing zone under `root`.

    Files unchanged since the previous register (same path, size, mtime) keep their hash, verdict and
    `registered_at` without being re-read. Among readable files with identical content the first
    registered (then earliest landing date, then name) is `ingested`; the others are `duplicate_file`.
    """
    now = now or _now()
    prev = {}
    if previous is not None and len(previous):
        prev = {r.source_file: r for r in previous.itertuples(index=False)}
    rows = []
    for lf in lz.discover(root):
        st = lf.path.stat()
        old = prev.get(lf.source_file)
        if old is not None and old.file_size == st.st_size and old.file_mtime_ns == st.st_mtime_ns:
            digest, reason, n, registered_at = (
                old.file_sha256,
                old.reason if old.status == "rejected" else None,
                int(old.rows_landed),
                old.registered_at,
            )
        else:
            data = lf.path.read_bytes()
            digest = lz.sha256(data)
            n, reason = (0, lf.name_error) if lf.name_error else lz.readable_rows(lf, data)
            registered_at = old.registered_at if old is not None and old.file_sha256 == digest else now
        rows.append(
            {
                "source": lf.source,
                "feed": lf.feed,
                "source_file": lf.source_file,
                "file_sha256": digest,
                "landing_date": lf.landing_day,
                "business_date": lf.business_day,
                "status": "rejected" if reason else "ingested",
                "reason": reason,
                "rows_landed": n,
                "registered_at": pd.Timestamp(registered_at),
                "file_size": st.st_size,
                "file_mtime_ns": st.st_mtime_ns,
            }
        )
    reg = pd.DataFrame(rows, columns=[c for c, _ in COLUMNS["raw.file_register"]])
    if reg.empty:
        return reg
    order = reg.assign(_ld=reg["landing_date"].astype(str)).sort_values(
        ["registered_at", "_ld", "source_file"]
    )
    readable = order[order["status"] == "ingested"]
    first = readable.groupby("file_sha256")["source_file"].transform("first")
    dup = readable.index[first != readable["source_file"]]
    reg.loc[dup, "status"] = "duplicate_file"
    reg.loc[dup, "reason"] = "same content as " + first[first != readable["source_file"]]
    return reg


@_raw_asset(
    "raw.file_register",
    description=(
        "Register of every file in the landing zone, for the data engineers who answer 'did we get it?'. "
        "One row per file: source, feed, business and landing date, SHA-256, status (`ingested`, "
        "`rejected` with a reason such as truncated_gzip / wrong_encoding / header_only / empty_file / "
        "unrecognised_name, or `duplicate_file` for a re-send of identical content) and the number of "
        "rows landed, which raw tables reconcile to. Incremental: unchanged files are not re-read."
    ),
)
def file_register(duckdb: DuckDBResource, landing: LandingZone) -> dg.MaterializeResult:
    table = "raw.file_register"
    with duckdb.get_connection() as conn:
        previous = conn.execute(f"SELECT * FROM {table}").df() if table_exists(conn, table) else None
        reg = build_register(landing.path, previous)
        write_frame(conn, table, reg)
        by_status = reg["status"].value_counts().to_dict() if len(reg) else {}
        by_reason = (
            reg.loc[reg["status"] == "rejected", "reason"].value_counts().to_dict() if len(reg) else {}
        )
        md = table_metadata(
            conn,
            table,
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
    sql = "SELECT * FROM raw.file_register WHERE status = 'ingested' AND source = ?"
    params: list[object] = [source]
    if business_dates is not None:
        sql += " AND CAST(business_date AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))"
        params.append(list(business_dates))
    if not table_exists(conn, "raw.file_register"):
        return pd.DataFrame(columns=[c for c, _ in COLUMNS["raw.file_register"]])
    return conn.execute(sql + " ORDER BY business_date, source_file", params).df()


def _read_checked(landing: LandingZone, reg_row) -> bytes:
    data = (landing.path / reg_row.source_file).read_bytes()
    if lz.sha256(data) != reg_row.file_sha256:
        # The register vouched for other bytes; ingesting these would break the reconciliation.
        raise dg.Failure(
            description=f"{reg_row.source_file} changed since it was registered: re-run raw/file_register",
        )
    return data


def _with_lineage(df: pd.DataFrame, reg_row) -> pd.DataFrame:
    return df.assign(
        feed=reg_row.feed,
        source_file=reg_row.source_file,
        file_sha256=reg_row.file_sha256,
        landing_date=pd.Timestamp(reg_row.landing_date),
        ingested_at=pd.Timestamp(reg_row.registered_at),
        business_date=pd.Timestamp(reg_row.business_date),
    )


def read_text_file(landing: LandingZone, reg_row, columns: tuple[str, ...], tokenizer) -> pd.DataFrame:
    """A registered CSV/JSONL file as raw rows with lineage; its PAN column (if any) tokenised.

    With `tokenizer=None` the clear `pan` column is left for the caller to tokenise a whole chunk
    at once (distinct cards are tokenised once per chunk, not once per file)."""
    lines, reason = lz.decode_text(_read_checked(landing, reg_row), _ext(reg_row))
    if lines is None:  # the register said readable: the bytes are the same, so this cannot happen
        raise dg.Failure(description=f"{reg_row.source_file}: {reason}")
    if reg_row.feed in ("acq_a", "acq_b"):
        df = parsers.parse_authorizations(lines, reg_row.feed)
    else:
        df = parsers.split_csv(lines, columns)
    if tokenizer is not None:
        df = parsers.tokenise(df, tokenizer) if "pan" in df.columns else parsers.scrub(df)
    return _with_lineage(df, reg_row)


def _ext(reg_row) -> str:
    # An `ingested` file passed the naming contract, so its name parses.
    return landing_names.parse_name(reg_row.source_file.rsplit("/", 1)[-1]).ext


def ingest_authorizations(conn, landing: LandingZone, tokenizer, keys: Sequence[str]) -> dict[str, int]:
    """Write raw.authorizations for `keys` (each chunk of dates in one transaction); rows per feed."""
    files = _ingested_files(conn, "authorizations", keys)
    counts: dict[str, int] = {"acq_a": 0, "acq_b": 0, "malformed": 0}
    for start in range(0, len(keys), CHUNK_DAYS):
        chunk = list(keys[start : start + CHUNK_DAYS])
        chunk_files = files[files["business_date"].astype(str).str[:10].isin(chunk)]
        frames = [read_text_file(landing, r, parsers.AUTH_COLUMNS, None) for r in chunk_files.itertuples()]
        cols = [c for c, _ in COLUMNS["raw.authorizations"]]
        if frames:
            df = parsers.tokenise(pd.concat(frames, ignore_index=True), tokenizer)[cols]
        else:
            df = pd.DataFrame(columns=cols)
        for feed, n in df["feed"].value_counts().items():
            counts[str(feed)] = counts.get(str(feed), 0) + int(n)
        counts["malformed"] += int(df["malformed_reason"].notna().sum())
        write_frame(conn, "raw.authorizations", df, partition_keys=chunk)
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
        "`pan_valid` (and `pan_masked` for invalid ones); CVV/track data are dropped. Lines that do not "
        "split into fields keep `malformed_reason` and a masked copy of the line. Lineage: feed, "
        "source_file, file_sha256, landing_date, row_number, ingested_at. Reads only the files "
        "raw/file_register marked `ingested`; a backfill is one run."
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
            where="CAST(business_date AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))",
            params=[keys],
            extra={
                "rows_acq_a": counts.get("acq_a", 0),
                "rows_acq_b": counts.get("acq_b", 0),
                "malformed_lines": counts["malformed"],
                "partitions_written": len(keys),
            },
        )
    return dg.MaterializeResult(metadata=md)


def _reference_frame(conn, landing: LandingZone, source: str, tokenizer) -> pd.DataFrame:
    table = f"raw.{source}"
    cols = [c for c, _ in COLUMNS[table]]
    frames = []
    for r in _ingested_files(conn, source).itertuples():
        if r.source_file.endswith(".parquet"):
            df, reason = lz.read_parquet(_read_checked(landing, r))
            if df is None:
                raise dg.Failure(description=f"{r.source_file}: {reason}")
            df = df.reset_index(drop=True)
            df.insert(0, "row_number", range(1, len(df) + 1))
            if "pan" in df.columns:
                df = parsers.tokenise(df, tokenizer)
            else:
                df = parsers.scrub(df)
            for c in cols:  # optional columns absent from a snapshot arrive as NULL
                if c not in df.columns:
                    df[c] = None
            frames.append(_with_lineage(df, r)[cols])
        else:
            columns = parsers.CHARGEBACK_COLUMNS if source == "chargebacks" else parsers.FX_COLUMNS
            frames.append(read_text_file(landing, r, columns, tokenizer)[cols])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _reference_asset(source: str, what: str, for_whom: str):
    table = f"raw.{source}"

    @_raw_asset(
        table,
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
            df = _reference_frame(conn, landing, source, tokenizer)
            write_frame(conn, table, df)
            files = int(df["source_file"].nunique()) if len(df) else 0
            md = table_metadata(conn, table, extra={"files": files})
        return dg.MaterializeResult(metadata=md)

    return _asset


chargebacks = _reference_asset(
    "chargebacks",
    "Chargeback (fraud report) rows; the PAN is tokenised at ingestion",
    "the source of cleaned/labels.",
)
cardholders = _reference_asset(
    "cardholders",
    "Cardholder snapshots (one card per customer); the PAN is tokenised at ingestion",
    "the source of cleaned/cards.",
)
merchants = _reference_asset(
    "merchants",
    "Merchant and terminal snapshots (MCC, country, currency, IANA time zone, grid position)",
    "the source of cleaned/terminals and of the time zones that convert processor B's local times.",
)
fx_rates = _reference_asset(
    "fx_rates",
    "Daily EUR reference FX rates (units of quote currency per EUR)",
    "the source of cleaned/fx_rates.",
)

RAW_ASSETS = [file_register, authorizations, chargebacks, cardholders, merchants, fx_rates]

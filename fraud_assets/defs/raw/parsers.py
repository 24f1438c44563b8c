"""The landed text feeds: their canonical columns, and lines turned into raw rows as received.

Raw keeps values as received (VARCHAR): typing, units, time zones and currency are the cleaned layer's
job. Every landed line is one raw row: a line that does not split into the feed's fields keeps
`malformed_reason` and a masked copy of the line. The split itself runs in DuckDB (text_reader.py);
`parse_authorizations` and `tokenise` here run the same SQL over lines held in memory, for tests and
tools that start from text rather than files.
"""

from __future__ import annotations

import functools

import duckdb
import pandas as pd

from fraud_assets.lib.pan import Tokenizer, mask_pans, unescape_digits

# Canonical authorisation columns (acq_a names), in table order; `pan` never reaches a table.
AUTH_COLUMNS = (
    "transaction_id",
    "tx_datetime",
    "pan",
    "terminal_id",
    "amount",
    "currency",
    "channel",
    "three_ds",
    "message_type",
    "original_transaction_id",
)
# The declared column mapping of processor B's drifted schema (docs/landing-zone.md).
ACQ_B_MAPPING = {
    "txn_ref": "transaction_id",
    "local_time": "tx_datetime",
    "card_number": "pan",
    "term_id": "terminal_id",
    "amount_minor": "amount",
    "ccy": "currency",
    "chan": "channel",
    "tds": "three_ds",
    "msg": "message_type",
    "orig_ref": "original_transaction_id",
}
CHARGEBACK_COLUMNS = (
    "chargeback_id",
    "transaction_id",
    "pan",
    "tx_datetime",
    "reported_at",
    "reason_code",
    "amount",
    "currency",
)
FX_COLUMNS = ("rate_date", "base_currency", "quote_currency", "rate")
# Columns a CSV feed's header must carry (order free, names exact); acq_a carries the whole canonical
# schema the reader reads.
REQUIRED_COLUMNS = {
    "acq_a": AUTH_COLUMNS,
    "chargebacks": ("chargeback_id", "transaction_id", "pan", "tx_datetime", "reported_at", "reason_code"),
    "fx_rates": ("rate_date", "quote_currency", "rate"),
    "cardholders": ("customer_id", "pan"),
    "merchants": ("terminal_id", "merchant_id", "timezone"),
}
# The columns each text feed yields, and for JSON Lines the key each comes from.
TEXT_COLUMNS = {
    "acq_a": AUTH_COLUMNS,
    "acq_b": tuple(ACQ_B_MAPPING.values()),
    "chargebacks": CHARGEBACK_COLUMNS,
    "fx_rates": FX_COLUMNS,
}
JSON_KEYS = {"acq_b": ACQ_B_MAPPING}
TOKEN_COLUMNS = ("card_token", "pan_bin", "pan_last4", "pan_valid", "pan_masked")
# A legitimate authorisation line is ~150 characters; a longer one is junk and is not split.
MAX_LINE_CHARS = 4096
RAW_LINE_KEEP = 256  # characters of a malformed line kept (after masking) for investigators
# Characters a card number with separators can span at most (19 digits, 18 gaps of up to 3): a line
# cut this far beyond RAW_LINE_KEEP still holds, whole, every PAN that starts before the cut.
PAN_SPAN_CHARS = 19 + 18 * 3
TRUNCATED = "...[truncated]"


@functools.cache
def _memory_engine() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB for rows built in memory (no temp directory: nothing spills to disk); each
    call works in a cursor of its own, whose temp tables no other call sees."""
    return duckdb.connect(config={"temp_directory": ""})


def mask_line(line: str) -> str:
    """A malformed line as kept for investigators: masked first, truncated second (truncating first
    could leave half a PAN unmasked). Only a head is masked (`mask_pans`: read as written and decoded):
    one long enough that, masked and decoded, it still reaches PAN_SPAN_CHARS past the kept part -
    masking shortens text (a PAN's separators go) and so does decoding (a digit is one character, not
    six), and a card cut at the head's end, left clear, must fall beyond the cut."""
    size = want = RAW_LINE_KEEP + PAN_SPAN_CHARS
    while True:
        masked = mask_pans(line[:size])
        decoded = len(unescape_digits(masked))
        if decoded >= want or size >= len(line):
            break
        size += max(want - decoded, size)  # at least doubles: escaped digits are up to ten characters each
    if len(masked) <= RAW_LINE_KEEP and size >= len(line):
        return masked
    # The cut may end an escape early, and an HTML reference then reads as another character (`&#553`, a
    # letter, cut to `&#55`, a 7).
    return mask_pans(masked[:RAW_LINE_KEEP]) + TRUNCATED


def parse_authorizations(lines: list[str], feed: str) -> pd.DataFrame:
    """Canonical rows of one authorisation file's lines (CSV: the header first), `pan` still clear:
    call `tokenise` next. Same SQL as the file reader, over lines held in memory."""
    from fraud_assets.defs.raw import text_reader, tokens

    with _memory_engine().cursor() as conn:
        df = text_reader.split_in_memory(conn, lines, feed).drop(columns="raw_line")
        # The file reader's masking, cut cards included: a card split over two malformed lines is one
        # card whether its lines came from a file or from memory.
        tokens.stage_masked_lines(conn, text_reader.ROWS_TABLE, across_lines=True)
        line = tokens.kept_line_sql("r.raw_line", "ml.raw_line_masked")
        kept = conn.execute(
            f"SELECT {line} FROM {text_reader.ROWS_TABLE} r LEFT JOIN {tokens.MASKED_LINES_TABLE} ml "
            "ON ml.raw_line = r.raw_line ORDER BY r.row_number"
        ).fetchall()
    masked = [line for (line,) in kept]
    return df.assign(raw_line_masked=pd.Series(masked, index=df.index, dtype=object))


def tokenise(df: pd.DataFrame, tokenizer: Tokenizer, pan_column: str = "pan") -> pd.DataFrame:
    """The frame with its clear PAN column replaced by the token columns and any PAN-shaped value in
    other text columns masked (the engine's rules, for frames built in memory)."""
    from fraud_assets.defs.raw import tokens

    with _memory_engine().cursor() as conn:
        return tokens.tokenise_frame(conn, df, tokenizer, pan_column)


def scrub(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with PAN-shaped values masked in its producer text columns (hash columns left)."""
    from fraud_assets.defs.raw import tokens

    with _memory_engine().cursor() as conn:
        return tokens.scrub_frame(conn, df)

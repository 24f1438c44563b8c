"""Why the raw layer refuses a landing file or keeps a landed line as malformed: the one catalogue.

A file is refused whole (status `rejected` in raw.file_register, nothing of it ingested) for one of
FILE_REASONS; a line of an ingested file that does not split into fields is still one raw row, with
one of LINE_REASONS in `malformed_reason` and a masked copy of the line. docs/landing-zone.md lists
both; a test keeps the three in step.
"""

from __future__ import annotations

from fraud_assets.lib.landing import (
    REJECT_DATE,
    REJECT_NAME,
    REJECT_NOT_REGULAR,
    REJECT_PAN_IN_NAME,
    REJECT_UNREADABLE,
)

# Path and name (decided before the content is read).
UNRECOGNISED_NAME = REJECT_NAME
PAN_IN_FILE_NAME = REJECT_PAN_IN_NAME
DATE_OUT_OF_RANGE = REJECT_DATE
NOT_A_REGULAR_FILE = REJECT_NOT_REGULAR
UNREADABLE_FILE = REJECT_UNREADABLE
# Size caps (defs/raw/limits.py).
TOO_LARGE = "too_large"
COMPRESSION_RATIO = "compression_ratio_too_high"
TOO_MANY_ROWS = "too_many_rows"
LINE_TOO_LONG_FILE = "line_too_long"
HEADER_TOO_LONG = "header_too_long"
# Bytes.
EMPTY_FILE = "empty_file"
NOT_GZIP = "not_gzip"
TRUNCATED_GZIP = "truncated_gzip"
CORRUPT_GZIP = "corrupt_gzip"
UNSUPPORTED_GZIP = "unsupported_gzip"
BINARY_CONTENT = "binary_content"
WRONG_ENCODING = "wrong_encoding"
BARE_CARRIAGE_RETURN = "bare_carriage_return"
# Header and columns.
HEADER_ONLY = "header_only"
MISSING_COLUMNS = "missing_columns"
DUPLICATE_COLUMNS = "duplicate_columns"
# Parquet snapshots.
UNREADABLE_PARQUET = "unreadable_parquet"
WRONG_TYPES = "wrong_types"
PAN_OUTSIDE_PAN_COLUMN = "pan_outside_pan_column"
VALUE_TOO_LONG = "value_too_long"

FILE_REASONS: dict[str, str] = {
    UNRECOGNISED_NAME: "path or name outside the naming contract (also: undecodable bytes in the name)",
    PAN_IN_FILE_NAME: "a card number in the path; the path is stored and shown masked",
    DATE_OUT_OF_RANGE: "landing or business date outside 2000-01-01..2099-12-31",
    NOT_A_REGULAR_FILE: "a symlink (to a file or a directory), FIFO, socket or device: never opened",
    UNREADABLE_FILE: "the file or its folder cannot be opened or read (permissions, I/O error), or was "
    "written to while the register read it",
    TOO_LARGE: "over max_file_bytes on disk or max_decompressed_bytes once decompressed, or a Parquet row "
    "group or footer over its cap",
    COMPRESSION_RATIO: "decompresses to more than max_compression_ratio times its size (a gzip bomb)",
    TOO_MANY_ROWS: "more than max_rows lines (or Parquet rows)",
    LINE_TOO_LONG_FILE: "a line longer than max_line_bytes",
    HEADER_TOO_LONG: "a CSV header longer than max_header_bytes",
    EMPTY_FILE: "no bytes, or only blank lines",
    NOT_GZIP: "a .gz name without the gzip magic bytes",
    TRUNCATED_GZIP: "the gzip stream ends before its end marker",
    CORRUPT_GZIP: "gzip data, checksum or length wrong, or bytes after the last gzip member",
    UNSUPPORTED_GZIP: "a gzip member with flags other than FNAME/FEXTRA or a method other than deflate",
    BINARY_CONTENT: "NUL bytes in a text feed",
    WRONG_ENCODING: "not UTF-8",
    BARE_CARRIAGE_RETURN: "a carriage return not followed by a line feed (old Mac line ends)",
    HEADER_ONLY: "a CSV header and no data line",
    MISSING_COLUMNS: "the CSV header or Parquet schema lacks a required column",
    DUPLICATE_COLUMNS: "a read column named twice in the CSV header or the Parquet schema (any case)",
    UNREADABLE_PARQUET: "not a Parquet file the engine can read",
    WRONG_TYPES: "a Parquet column of the wrong type, or a value that does not fit the column's type",
    PAN_OUTSIDE_PAN_COLUMN: "a Luhn-valid card number in a Parquet column other than `pan`",
    VALUE_TOO_LONG: "a Parquet text value longer than 4,096 characters (names, codes, zones are far shorter)",
}

# Line reasons (raw.<table>.malformed_reason).
LINE_TOO_LONG = "line_too_long"
WRONG_FIELD_COUNT = "wrong_field_count"
UNPARSEABLE_CSV = "unparseable_csv"
INVALID_JSON = "invalid_json"
NOT_A_JSON_OBJECT = "not_a_json_object"

LINE_REASONS: dict[str, str] = {
    LINE_TOO_LONG: "a line over 4096 characters",
    WRONG_FIELD_COUNT: "a CSV line with more or fewer fields than the header",
    UNPARSEABLE_CSV: "a CSV line whose quoting breaks RFC 4180 (a quote inside an unquoted field, an "
    "unclosed quote)",
    INVALID_JSON: "a JSON Lines line that is not JSON",
    NOT_A_JSON_OBJECT: "a JSON Lines line that is JSON but not an object",
}

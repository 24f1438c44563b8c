"""A hand-written landing zone, per docs/landing-zone.md, for raw/cleaned tests, and a runner.

Tiny and explicit: five terminals in five time zones/currencies, three cards, one business date.
Tests add the defective rows/files they are about on top of it.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import pandas as pd
from hypothesis import strategies as st

from fraud_assets.defs import cleaned, raw
from fraud_assets.defs.raw.parsers import AUTH_COLUMNS
from fraud_assets.lib.pan import luhn_check_digit
from fraud_assets.resources import build_resources
from fraud_assets_tests.conftest import TEST_PAN_KEY

DAY = "2018-04-01"
LANDED = "2018-04-02"


def hidden_shapes(pan: str) -> dict[str, str]:
    """`pan` written the ways a producer's text can hide it from a plain digit search (test id -> text):
    invisible marks or fillers between its digits, keycaps, JSON, URL and HTML escapes, each also escaped
    twice as a JSON encoder run twice, a URL encoded twice or an export HTML-escaping twice writes them."""

    def grouped(separator: str) -> str:
        return separator.join(pan[i : i + 4] for i in range(0, len(pan), 4))

    return {
        "grapheme-joiner": "\u034f".join(pan),
        "variation-selector": "\ufe0f".join(pan),
        "keycaps": "".join(f"{c}\ufe0f\u20e3" for c in pan),
        "hangul-filler": "\u3164".join(pan),
        "braille-blank": "\u2800".join(pan),
        "four-zero-width-spaces": ("\u200b" * 4).join(pan),
        "escape-characters": ("\x1b" * 5).join(pan),
        "json-escaped": "".join(f"\\u{ord(c):04x}" for c in pan),
        "json-escaped-surrogates": json.dumps("".join(chr(0x1D7CE + int(c)) for c in pan))[1:-1],
        "url-encoded": grouped("%20"),
        "json-escaped-twice": "".join(f"\\\\u{ord(c):04x}" for c in pan),
        "url-encoded-twice": "".join(f"%25{ord(c):02X}" for c in pan),
        "url-nbsp-twice": grouped("%25C2%25A0"),
        "html-decimal": "".join(f"&#{ord(c)};" for c in pan),
        "html-hex": "".join(f"&#x{ord(c):x};" for c in pan),
        "html-nbsp": grouped("&nbsp;"),
        "html-dash-references": grouped(" &ndash; "),
        "html-escaped-twice": "".join(f"&amp;#{ord(c)};" for c in pan),
        "html-nbsp-escaped-twice": grouped("&amp;nbsp;"),
        # HTML5 reads a numeric reference without its `;`, a legacy name without it, `&AMP;` as `&amp;`
        "html-decimal-no-semicolon": "".join(f"&#{ord(c)}" for c in pan),
        "html-hex-no-semicolon": "".join(f"&#x{ord(c):x}" for c in pan),
        "html-legacy-nbsp": grouped("&nbsp"),
        "html-escaped-twice-upper-case": "".join(f"&AMP;#{ord(c)};" for c in pan),
        # bytes (Python's repr, C, JavaScript), code points (JavaScript, Rust, Swift), each escaped twice
        "hex-escaped": "".join(f"\\x{ord(c):02x}" for c in pan),
        "hex-escaped-twice": "".join(f"\\\\x{ord(c):02x}" for c in pan),
        "hex-nbsp": grouped("\\xc2\\xa0"),
        "code-point-escaped": "".join(f"\\u{{{ord(c):x}}}" for c in pan),
        "code-point-escaped-twice": "".join(f"\\\\u{{{ord(c):x}}}" for c in pan),
        # a JSON body put in a URL: its backslashes percent-escaped, once or twice
        "url-encoded-json": "".join(f"%5Cu{ord(c):04x}" for c in pan),
        "url-encoded-hex": "".join(f"%5Cx{ord(c):02x}" for c in pan),
        "url-encoded-json-twice": "".join(f"%255Cu{ord(c):04x}" for c in pan),
        # the card in clear after `\u03`: with its first two digits, the JSON escape of a combining mark
        # (U+0300-U+036F, for a card starting 1-6), so decoded alone it reads two digits short
        "escape-begins-card": f"\\u03{pan}",
    }


def make_pan(prefix: str = "453914", serial: int = 1, length: int = 16) -> str:
    body = prefix + str(serial).zfill(length - len(prefix) - 1)
    return body + luhn_check_digit(body)


PANS = {1: make_pan(serial=1), 2: make_pan("520000", 2), 3: make_pan("411111", 3)}
TERMINALS = pd.DataFrame(
    {
        "terminal_id": [1, 2, 3, 4, 5],
        "merchant_id": [10, 20, 30, 40, 50],
        "mcc": ["5411", "5812", "5999", "4111", "5732"],
        "country": ["FR", "US", "JP", "IS", "GB"],
        "currency": ["EUR", "USD", "JPY", "EUR", "GBP"],
        "timezone": ["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC", "Europe/London"],
        "x": [1.0, 2.0, 3.0, 4.0, 5.0],
        "y": [5.0, 4.0, 3.0, 2.0, 1.0],
    }
)
FX = {"USD": "1.25", "JPY": "130.0", "GBP": "0.8"}
A_HEADER = AUTH_COLUMNS  # the acq_a header: the parser's canonical columns


def a_row(tid: int, **kw) -> dict[str, str]:
    """A valid acq_a row (EUR, Paris terminal, 12:00 UTC) with overrides."""
    row = {
        "transaction_id": str(tid),
        "tx_datetime": f"{DAY}T12:00:{tid % 60:02d}Z",
        "pan": PANS[1],
        "terminal_id": "1",
        "amount": "10.00",
        "currency": "EUR",
        "channel": "card_present",
        "three_ds": "",
        "message_type": "auth",
        "original_transaction_id": "",
    }
    row.update({k: str(v) for k, v in kw.items()})
    return row


def b_row(tid: int, **kw) -> dict[str, object]:
    """A valid acq_b object (Tokyo terminal, JPY minor units = yen, local time) with overrides."""
    row: dict[str, object] = {
        "txn_ref": str(tid),
        "local_time": "01/04/2018 21:00:00",  # = 12:00 UTC in Tokyo
        "card_number": PANS[2],
        "term_id": 3,
        "amount_minor": 1300,
        "ccy": "JPY",
        "chan": "ECOM",
        "tds": "Y",
        "msg": "0100",
        "orig_ref": None,
    }
    row.update(kw)
    return row


def csv_text(rows: Sequence[dict[str, str] | str], header: Sequence[str] = A_HEADER) -> str:
    """CSV with a header; a `str` row is written as a raw (possibly broken) line."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(header), lineterminator="\n")
    w.writeheader()
    for row in rows:
        if isinstance(row, str):
            buf.write(row + "\n")
        else:
            w.writerow(row)
    return buf.getvalue()


def write(data_dir: Path, rel: str, content: bytes | str) -> Path:
    p = data_dir / "landing" / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    return p


def write_acq_a(data_dir: Path, rows, name: str = f"acq_a_{DAY}.csv.gz", landed: str = LANDED) -> Path:
    return write(data_dir, f"authorizations/{landed}/{name}", gzip.compress(csv_text(rows).encode()))


def write_acq_b(data_dir: Path, rows, name: str = f"acq_b_{DAY}.jsonl.gz", landed: str = LANDED) -> Path:
    lines = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    return write(data_dir, f"authorizations/{landed}/{name}", gzip.compress(lines.encode()))


def write_reference(data_dir: Path, day: str = DAY) -> None:
    """Merchants, cardholders and FX rates for `day` (no chargeback file: `write_chargebacks`)."""
    root = data_dir / "landing"
    for src, df in (
        ("merchants", TERMINALS),
        (
            "cardholders",
            pd.DataFrame(
                {
                    "customer_id": list(PANS),
                    "pan": list(PANS.values()),
                    "home_x": [1.0, 2.0, 3.0],
                    "home_y": [1.0, 2.0, 3.0],
                    "home_country": ["FR", "JP", "US"],
                    "issued_at": pd.to_datetime(["2017-01-01"] * 3).date,
                }
            ),
        ),
    ):
        p = root / src / day / f"{src}_{day}.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(p, index=False)
    fx_rows = [
        {"rate_date": day, "base_currency": "EUR", "quote_currency": c, "rate": r} for c, r in FX.items()
    ]
    write(
        data_dir,
        f"fx_rates/{day}/fx_rates_{day}.csv",
        csv_text(fx_rows, ["rate_date", "base_currency", "quote_currency", "rate"]),
    )


CB_HEADER = [
    "chargeback_id",
    "transaction_id",
    "pan",
    "tx_datetime",
    "reported_at",
    "reason_code",
    "amount",
    "currency",
]


def write_chargebacks(data_dir: Path, rows: Sequence[dict[str, str]], day: str) -> Path:
    return write(data_dir, f"chargebacks/{day}/chargebacks_{day}.csv", csv_text(rows, CB_HEADER))


def defs_for(data_dir: Path) -> dg.Definitions:
    return dg.Definitions.merge(
        raw.defs, cleaned.defs, dg.Definitions(resources=build_resources(data_dir, TEST_PAN_KEY))
    )


RAW_REFS = ["raw/file_register", "raw/chargebacks", "raw/cardholders", "raw/merchants", "raw/fx_rates"]
LABELS = "cleaned/labels"
CLEANED_REFS = ["cleaned/terminals", "cleaned/cards", "cleaned/fx_rates", LABELS]
TX_STEP = ["cleaned/transactions", "cleaned/quarantine", "cleaned/reconciliation"]


def run_pipeline(
    data_dir: Path,
    keys: Sequence[str] = (DAY,),
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
) -> list[dg.ExecuteInJobResult]:
    """Materialise raw + cleaned (with their checks) for `keys`, the way a run would: unpartitioned
    assets first, then the partitioned ones as one range run, then the labels (judged against the
    cleaned transactions)."""
    instance = instance or dg.DagsterInstance.ephemeral()
    defs = defs_for(data_dir)
    graph = defs.get_repository_def().asset_graph
    every = [*defs.assets, *defs.asset_checks]

    def sel(keys_: list[str]) -> dg.AssetSelection:
        return dg.AssetSelection.assets(*[dg.AssetKey.from_user_string(k) for k in keys_])

    del graph
    results = []
    results.append(
        dg.materialize(
            every,
            selection=sel(RAW_REFS) | sel([k for k in CLEANED_REFS if k != LABELS]),
            resources=build_resources(data_dir, TEST_PAN_KEY),
            instance=instance,
            raise_on_error=raise_on_error,
        )
    )
    tags = (
        {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
        if len(keys) > 1
        else {}
    )
    results.append(
        dg.materialize(
            every,
            selection=sel(["raw/authorizations", *TX_STEP]),
            resources=build_resources(data_dir, TEST_PAN_KEY),
            instance=instance,
            partition_key=keys[0] if len(keys) == 1 else None,
            tags=tags,
            raise_on_error=raise_on_error,
        )
    )
    results.append(
        dg.materialize(
            every,
            selection=sel([LABELS]),
            resources=build_resources(data_dir, TEST_PAN_KEY),
            instance=instance,
            raise_on_error=raise_on_error,
        )
    )
    return results


def raw_frame(a_rows=(), b_rows=(), day: str = DAY, landed: str = LANDED) -> pd.DataFrame:
    """raw.authorizations rows for the given acq_a / acq_b rows, built exactly as the raw asset
    builds them but without files or DuckDB (for fast rule tests)."""
    from collections import namedtuple

    from fraud_assets.defs.raw import parsers
    from fraud_assets.defs.raw.assets import _with_lineage
    from fraud_assets.defs.raw.schemas import COLUMNS
    from fraud_assets.lib.pan import Tokenizer

    Reg = namedtuple("Reg", "feed source_file file_sha256 landing_date registered_at business_date")
    tok = Tokenizer(TEST_PAN_KEY)
    frames = []
    for feed, rows in (("acq_a", a_rows), ("acq_b", b_rows)):
        if not rows:
            continue
        if feed == "acq_a":
            lines = [ln for ln in csv_text(rows).split("\n") if ln.strip()]
        else:
            lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
            lines = [ln for ln in lines if ln.strip()]
        df = parsers.tokenise(parsers.parse_authorizations(lines, feed), tok)
        reg = Reg(feed, f"authorizations/{landed}/{feed}_{day}.x", "0" * 64, landed, "2026-01-01", day)
        frames.append(_with_lineage(df, reg))
    cols = [c for c, _ in COLUMNS["raw.authorizations"]]
    return pd.concat(frames, ignore_index=True)[cols]


def reference_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(terminals, fx) as cleaned.terminals / cleaned.fx_rates hold them for the tiny world."""
    fx = pd.DataFrame(
        {
            "rate_date": pd.to_datetime([DAY] * len(FX)),
            "quote_currency": list(FX),
            "rate": [float(v) for v in FX.values()],
        }
    )
    return TERMINALS[["terminal_id", "timezone"]], fx


# Separators and digits of other scripts a producer's card number may come with (fraud_assets.lib.pan).
SEPARATORS = [" ", "\u00a0", "\u2007", "\t", "-", "\u2212", ".", "/", "\u00ad", "\u200b", "  "]
SEPARATORS += ["\u034f", "\ufe0f", "\ufe0f\u20e3", "\u3164"]  # invisible marks, keycaps, a filler
SEPARATORS += ["|", "+", "%20", "%2D", "%C2%A0"]  # bars, a URL or form body
SEPARATORS += ["&nbsp;", "&#160;", "&ndash;", "&amp;nbsp;", "%2520", "%25C2%25A0"]  # HTML, escaped twice
SEPARATORS += ["&nbsp", "&#160", "&AMP;nbsp;", "\\x20", "\\xc2\\xa0", "\\u{a0}", "%5Cx20"]  # HTML5, bytes
# Escapes of a digit: JSON, URL, HTML (HTML5 reads `&#52` too), bytes, code points, and each escaped twice.
ESCAPES = ["\\u{:04x}", "%{:02X}", "&#{};", "&#x{:x};", "\\\\u{:04x}", "%25{:02X}", "&amp;#{};"]
ESCAPES += ["&#{}", "&AMP;#{};", "\\x{:02x}", "\\\\x{:02x}", "\\u{{{:x}}}", "%5Cu{:04x}", "%255Cx{:02x}"]
SCRIPTS = [0x30, 0x660, 0x6F0, 0x966, 0xFF10]
# Escapes of a combining mark (U+0300-U+036F) but for their last two hex digits: the first two digits of a
# card starting 1-6 (all of PANS) written after one complete it, and decoded alone it is two digits short.
MARK_ESCAPE_HEADS = ["\\u03", "\\\\u03", "%5Cu03", "%255Cu03"]


@st.composite
def text_with_a_card_number(draw) -> str:
    pan = draw(st.sampled_from(list(PANS.values())))
    zero = draw(st.sampled_from(SCRIPTS))
    digits = [chr(zero + int(d)) for d in pan]
    escape = draw(st.sampled_from(["", *ESCAPES]))  # for some digits
    if zero != 0x30 and "{:02" in escape:
        escape = ""  # byte escapes (`%`, `\\x`) of non-ASCII digits are UTF-8 byte runs: not drawn here
    digits = [escape.format(ord(d)) if escape and draw(st.booleans()) else d for d in digits]
    if zero == 0x30 and not escape and draw(st.booleans()):  # an escape's hex digits begin the card
        digits = [draw(st.sampled_from(MARK_ESCAPE_HEADS)) + pan[:2], *digits[2:]]
    body = digits[0] + "".join(draw(st.sampled_from(["", *SEPARATORS])) + d for d in digits[1:])
    return draw(st.text(max_size=8)) + body + draw(st.sampled_from(["", " 12/26", "99", "x"]))

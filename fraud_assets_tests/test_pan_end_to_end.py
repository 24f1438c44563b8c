"""Card numbers in the shapes the old masking pattern missed (issue 13, finding 2) leave no trace in a
deployment after raw and cleaned ran over them: not in DuckDB, the exports, DAGSTER_HOME or the
instance's runs, event logs and cursors."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd

from fraud_assets.lib.pan import Tokenizer
from fraud_assets.lib.pan_scan import scan_deployment
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY


def dotted(pan: str) -> str:
    return ".".join(pan[i : i + 4] for i in range(0, len(pan), 4))


def run_and_scan(data_dir, home, pans: set[str] | None = None) -> list[str]:
    """Raw and cleaned run on an on-disk instance at `home` (every run succeeds, every PAN-leak check
    passes); what a scan of the deployment for the input's cards (`pans`, default `s.PANS`) finds."""
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        results = s.run_pipeline(data_dir, instance=instance, raise_on_error=False)
        assert all(r.success for r in results)
        assert all(
            e.passed
            for r in results
            for e in r.get_asset_check_evaluations()
            if e.check_name.endswith("no_clear_pan")
        )
        pans = pans or set(s.PANS.values())
        return [str(f) for f in scan_deployment(data_dir, home, instance=instance, pans=pans)]
    finally:
        instance.dispose()


def test_no_card_number_of_the_input_is_left_anywhere(tmp_path, data_dir):
    home = tmp_path / "home"
    home.mkdir()
    s.write_reference(data_dir)
    s.write_acq_a(
        data_dir,
        [
            s.a_row(1),
            s.a_row(2, three_ds=dotted(s.PANS[2])),  # a producer's column mix-up, keyed in with dots
            f"3,{s.PANS[3]} 12/26,broken",  # a malformed line: PAN followed by its expiry
            s.a_row(4, terminal_id=f"{s.PANS[1]}\t1"),  # quarantined with its offending value
            s.a_row(5, amount="".join(chr(0x0660 + int(c)) for c in s.PANS[2])),  # Arabic-Indic digits
            s.a_row(6, three_ds=s.hidden_shapes(s.PANS[3])["html-escaped-twice"]),  # an HTML export
            s.a_row(7, currency=s.hidden_shapes(s.PANS[1])["url-nbsp-twice"]),  # a form body encoded twice
        ],
    )
    # A JSON encoder run twice, in a line cut short (kept as its text) and in a field.
    twice = s.hidden_shapes(s.PANS[2])["json-escaped-twice"]
    s.write_acq_b(
        data_dir, [s.b_row(10), '{"txn_ref": "11", "card_number": "' + twice, s.b_row(12, tds=twice)]
    )
    assert run_and_scan(data_dir, home) == []
    assert scan_deployment(data_dir, pans=set(s.PANS.values()), include=("landing",))  # the scan sees them


# Escapes HTML5 parsers, byte and code-point escapes, and URLs holding a JSON body read as digits.
ESCAPED_SHAPES = [
    "html-decimal-no-semicolon",
    "html-hex-no-semicolon",
    "html-legacy-nbsp",
    "html-escaped-twice-upper-case",
    "hex-escaped",
    "hex-escaped-twice",
    "hex-nbsp",
    "code-point-escaped",
    "url-encoded-json",
    "url-encoded-hex",
    "url-encoded-json-twice",
]


def _warehouse_and_exports_text(data_dir) -> str:
    """Every value of every DuckDB table (raw, cleaned, quarantine...) and of every Parquet export."""
    blobs = []
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        tables = conn.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()
        for schema, table in tables:
            blobs.append(conn.execute(f'SELECT * FROM "{schema}"."{table}"').df().astype(str).to_csv())
    blobs += [pd.read_parquet(p).astype(str).to_csv() for p in (data_dir / "exports").rglob("*.parquet")]
    return "\n".join(blobs)


def test_cards_in_html5_byte_and_url_encoded_escapes_leave_no_trace(tmp_path, data_dir):
    home = tmp_path / "home"
    home.mkdir()
    s.write_reference(data_dir)
    escaped = {name: s.hidden_shapes(s.PANS[1 + i % 3])[name] for i, name in enumerate(ESCAPED_SHAPES)}
    a_rows, b_rows = [s.a_row(1)], [s.b_row(100)]
    for i, text in enumerate(escaped.values()):
        a_rows.append(s.a_row(10 + i, three_ds=text))  # a producer's column mix-up
        a_rows.append(s.a_row(30 + i, pan=text))  # the card number itself, escaped
        a_rows.append(f"{50 + i},{text},broken")  # a malformed line, quarantined with its text
        b_rows.append(s.b_row(110 + i, tds=text))  # a JSON field
        b_rows.append('{"txn_ref": "' + str(130 + i) + '", "card_number": "' + text)  # a line cut short
    s.write_acq_a(data_dir, a_rows)
    s.write_acq_b(data_dir, b_rows)
    assert run_and_scan(data_dir, home) == []
    # Whatever the detector reads: no escaped card is kept as written anywhere in the warehouse or exports.
    text = _warehouse_and_exports_text(data_dir)
    assert "453914******" in text  # masked where it stood
    assert [name for name, shape in escaped.items() if shape in text] == []
    # and a card number sent escaped is the card it stands for
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        tokens = conn.execute(
            "SELECT transaction_id, card_token FROM raw.authorizations "
            "WHERE TRY_CAST(transaction_id AS INT) BETWEEN 30 AND 49"
        ).fetchall()
    tokenizer = Tokenizer(TEST_PAN_KEY)
    expected = {str(30 + i): tokenizer.token(s.PANS[1 + i % 3]) for i in range(len(escaped))}
    assert dict(tokens) == expected


def test_a_card_whose_first_digits_complete_an_escape_leaves_no_trace(tmp_path, data_dir):
    """`%37` decodes to a 7: read decoded alone, `%378282...` is the card one digit short and would be
    stored in clear (or 14 of its 15 digits). Texts are read as written too."""
    home = tmp_path / "home"
    home.mkdir()
    s.write_reference(data_dir)
    amex = s.make_pan("378282", 1, 15)
    forms = {amex: [f"%{amex}", f"\\u00{amex}", f"\\x{amex}"], s.PANS[1]: [f"\\u03{s.PANS[1]}"]}
    a_rows, b_rows = [s.a_row(1)], [s.b_row(100)]
    for i, text in enumerate(text for texts in forms.values() for text in texts):
        a_rows.append(s.a_row(10 + i, three_ds=text))  # a producer's column mix-up
        a_rows.append(s.a_row(30 + i, pan=text))  # the card number itself
        a_rows.append(f"{50 + i},{text},broken")  # a malformed line, quarantined with its text
        b_rows.append(s.b_row(110 + i, tds=text))  # a JSON field
        b_rows.append('{"txn_ref": "' + str(130 + i) + '", "card_number": "' + text)  # a line cut short
    s.write_acq_a(data_dir, a_rows)
    s.write_acq_b(data_dir, b_rows)
    assert run_and_scan(data_dir, home, pans=set(forms)) == []
    text = _warehouse_and_exports_text(data_dir)
    assert "%378282*****0016" in text  # masked where it stood
    assert [card for card in forms if card[2:] in text] == []


def test_a_card_written_across_a_json_escape_in_a_valid_line_leaves_no_trace(tmp_path, data_dir):
    """In a valid acq_b line, `"\\u0037" + "8282..."` decodes to the card one digit short (14 digits, no
    card) before the door could mask it; as written, the line holds the card. Neither the card nor its
    remainder reaches raw, cleaned or the exports, in a free-text field or in the PAN field."""
    home = tmp_path / "home"
    home.mkdir()
    s.write_reference(data_dir)
    amex = s.make_pan("378282", 1, 15)
    written = '"\\u00' + amex + '"'  # the JSON text as written: a valid JSON string
    in_tds = json.dumps(s.b_row(110, tds="@")).replace('"@"', written)
    in_pan = json.dumps(s.b_row(111)).replace(f'"{s.PANS[2]}"', written)
    s.write_acq_a(data_dir, [s.a_row(1), s.a_row(2, pan=written[1:-1])])  # the same text in a CSV field
    s.write_acq_b(data_dir, [s.b_row(100), in_tds, in_pan])
    assert run_and_scan(data_dir, home, pans={amex}) == []
    text = _warehouse_and_exports_text(data_dir)
    assert amex[2:] not in text  # neither the card nor the 14 digits its decoded value holds
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        masked = conn.execute(
            "SELECT feed, transaction_id, pan_masked FROM raw.authorizations WHERE NOT pan_valid ORDER BY 1"
        ).fetchall()
    # The card number as written, an invalid PAN whatever its form: its BIN and last 4, JSON as CSV.
    assert masked == [("acq_a", "2", "378282*****0016"), ("acq_b", "111", "378282*****0016")]

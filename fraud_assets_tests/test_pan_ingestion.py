"""The clear PAN stops at ingestion: tokenised with the FRAUD_PAN_KEY, masked wherever it strays."""

from __future__ import annotations

import functools
import hashlib
import hmac
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud_assets.defs.raw import parsers
from fraud_assets.lib.pan import Tokenizer, contains_pan, luhn_check_digit
from fraud_assets.lib.pan_leaks import pans_in
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY


def test_the_token_is_the_hmac_sha256_of_the_normalised_pan_keyed_by_the_env_key(data_dir):
    raw = s.raw_frame([s.a_row(1, pan=" ".join([s.PANS[1][:4], s.PANS[1][4:]]))])
    expected = hmac.new(TEST_PAN_KEY.encode(), s.PANS[1].encode(), hashlib.sha256).hexdigest()
    assert raw["card_token"].iloc[0] == expected


def test_the_deployed_tokenizer_reads_its_key_from_the_environment(data_dir):
    resource = build_resources(data_dir)["pan_tokenizer"]
    with dg.build_resources({"pan_tokenizer": resource}) as res:
        assert res.pan_tokenizer.tokenizer().token(s.PANS[1]) == Tokenizer(TEST_PAN_KEY).token(s.PANS[1])


def test_another_key_gives_other_tokens():
    a = Tokenizer(TEST_PAN_KEY).token(s.PANS[1])
    b = Tokenizer("another-key-of-sufficient-length").token(s.PANS[1])
    assert a != b


def test_an_invalid_pan_keeps_only_a_masked_form_and_no_token():
    wrong_luhn = s.PANS[1][:-1] + str((int(s.PANS[1][-1]) + 3) % 10)
    raw = s.raw_frame([s.a_row(1, pan=wrong_luhn), s.a_row(2, pan="12345")])
    assert raw["card_token"].isna().all()
    assert not raw["pan_valid"].any()
    assert raw["pan_masked"].tolist() == [wrong_luhn[:6] + "******" + wrong_luhn[-4:], "*****"]


@pytest.mark.parametrize(
    "separator",
    ["", "\u034f", "\ufe0f", "|", "%20", "&nbsp;", "%2520", "&amp;nbsp;"],
    ids=["plain", "grapheme-joiner", "selector", "bar", "url", "html", "url-twice", "html-twice"],
)
def test_a_pan_arriving_in_another_field_is_masked_in_raw(separator):
    raw = s.raw_frame([s.a_row(1, three_ds=separator.join(s.PANS[3]), currency=separator.join(s.PANS[2]))])
    assert not contains_pan(raw.astype(str).to_string())
    assert not pans_in(raw.astype(str).to_string())


def test_a_malformed_line_is_masked_before_it_is_truncated():
    line = "x" * (parsers.RAW_LINE_KEEP - 8) + s.PANS[1] + "," + "y" * 5000
    kept = parsers.mask_line(line)
    assert s.PANS[1][:8] not in kept[parsers.RAW_LINE_KEEP - 8 :]
    assert not contains_pan(kept)


def test_a_card_cut_by_the_masked_head_does_not_shift_into_the_kept_part():
    """Masking shortens text (a PAN's separators go): characters from beyond the masked head move into
    the kept part, and a card cut at the head's end, its digits clear there, must not move with them."""
    spread = ("\u200b" * 3).join(s.PANS[1])  # 61 characters, masked to 16
    victim = next(
        p + luhn_check_digit(p) for n in range(1, 10_000) if not contains_pan(p := "5" + f"{n:014d}")
    )
    prefix = "{" + ",".join(f'"x{i}":"{spread}"' for i in range(2)) + ',"note":"'
    head = parsers.RAW_LINE_KEEP + parsers.PAN_SPAN_CHARS
    line = prefix + "a" * (head - 15 - len(prefix)) + victim + '"'  # 15 of its digits inside the head
    kept = parsers.mask_line(line)
    assert victim[:13] not in kept
    assert not contains_pan(kept)


@pytest.mark.parametrize("form", ["%{}", "\\u00{}", "\\x{}"], ids=["percent", "json", "bytes"])
def test_a_card_whose_first_digits_complete_an_escape_is_masked_in_a_malformed_line(form):
    """Decoded, `%37` is a 7 and the card one digit short: the line is masked as written first."""
    card = s.make_pan("378282", 1, 15)
    for line in [f"2,{form.format(card)},broken", "x" * 300 + f",{form.format(card)}" + "y" * 5000]:
        kept = parsers.mask_line(line)
        assert card[1:] not in kept
        assert not contains_pan(kept)
        assert not pans_in(kept)
    assert parsers.mask_line(f"2,{form.format(card)},broken") == f"2,{form.format('378282*****0016')},broken"


def test_a_malformed_line_cut_inside_an_html_reference_keeps_no_card():
    """`&#523` is a letter; cut to `&#52` by the truncation, it would be a 4, the last digit of a card."""
    line = "x" * (parsers.RAW_LINE_KEEP - 19) + s.PANS[1][:15] + f"&#{48 + int(s.PANS[1][15])}3" + "y" * 500
    assert not contains_pan(line)
    kept = parsers.mask_line(line)
    assert not contains_pan(kept)
    assert not pans_in(kept)


def test_a_card_in_json_escapes_in_a_malformed_line_is_masked_in_the_kept_copy():
    escaped = "".join(f"\\u{ord(c):04x}" for c in s.PANS[1])
    raw = s.raw_frame(b_rows=['{"txn_ref": "9", "card_number": "' + escaped + '"'])  # no closing brace
    [kept] = raw["raw_line_masked"].dropna().tolist()
    assert not pans_in(kept)
    assert "453914" in kept  # masked where it stood, BIN and last 4 kept


@pytest.mark.parametrize(
    "shape", ["json-escaped-twice", "url-encoded-twice", "html-decimal", "html-escaped-twice"]
)
def test_a_card_in_escapes_in_a_field_or_a_malformed_line_is_masked(shape):
    escaped = s.hidden_shapes(s.PANS[1])[shape]
    raw = s.raw_frame(
        [s.a_row(1, three_ds=escaped), f"2,{escaped},broken"],
        b_rows=['{"txn_ref": "9", "card_number": "' + escaped + '"'],  # no closing brace
    )
    assert not pans_in(raw.astype(str).to_csv())
    assert raw["three_ds"].dropna().tolist() == [s.PANS[1][:6] + "******" + s.PANS[1][-4:]]
    assert len(raw["raw_line_masked"].dropna()) == 2


def test_no_pan_in_tables_event_log_or_compute_logs_of_an_on_disk_instance(tmp_path, data_dir):
    home = tmp_path / "home"
    home.mkdir()
    s.write_reference(data_dir)
    s.write_acq_a(data_dir, [s.a_row(1), s.a_row(2, pan=s.PANS[2] + "0"), f"3,{s.PANS[3]},broken"])
    s.write_acq_b(data_dir, [s.b_row(10), '{"card_number": "' + s.PANS[1] + '"'])
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        results = s.run_pipeline(data_dir, instance=instance, raise_on_error=False)
        assert all(r.success for r in results)
        blobs = [repr(e) for r in results for e in r.all_events]
        for run in instance.get_runs():
            blobs += [repr(e) for e in instance.all_logs(run.run_id)]
    finally:
        instance.dispose()
    with build_resources(data_dir, TEST_PAN_KEY)["duckdb"].get_connection() as conn:
        for schema, table in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall():
            blobs.append(conn.execute(f"SELECT * FROM {schema}.{table}").df().astype(str).to_csv())
    blobs += [p.read_bytes().decode("utf-8", "replace") for p in Path(home).rglob("*") if p.is_file()]
    blobs += [pd.read_parquet(p).astype(str).to_csv() for p in (data_dir / "exports").rglob("*.parquet")]
    text = "\n".join(blobs)
    assert len(text) > 10_000
    assert not [p for p in s.PANS.values() if p in text]


@functools.cache
def _engine():
    import duckdb

    return duckdb.connect()


@settings(max_examples=80, deadline=None, database=None, derandomize=True)
@given(st.lists(st.one_of(s.text_with_a_card_number(), st.text(max_size=40)), min_size=1, max_size=20))
def test_the_engine_prefilter_passes_every_value_mask_pans_would_change(values):
    """The SQL pre-filter decides which values go through `mask_pans`: it must never drop one."""
    import duckdb

    from fraud_assets.defs.raw.tokens import may_hold_pan
    from fraud_assets.lib.pan import mask_pans

    with duckdb.connect() as conn:
        passed = conn.execute(
            f"SELECT {may_hold_pan('v')} FROM unnest(?::VARCHAR[]) t(v)", [values]
        ).fetchall()
    missed = [v for v, (ok,) in zip(values, passed, strict=True) if mask_pans(v) != v and not ok]
    assert missed == []


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("453914******0014", "453914******0014"),  # masked by the producer: BIN and last 4 kept
        ("4539 14XX XXXX 0014", "453914******0014"),
        ("453914-•••-•••-0014", "453914******0014"),
        ("4539148803436468", "453914******6468"),  # a mistyped PAN (Luhn fails): BIN and last 4 only
        ("".join(f"&#{ord(c)};" for c in "4539148803436468"), "453914******6468"),  # as HTML references
        ("XXXX-XXXX-XXXX-0014", "*******************"),  # no BIN shown: nothing of it is kept
        ("45391******0014", "***************"),  # 5 + 4 digits is no PAN shape
        ("", None),
    ],
)
def test_an_invalid_or_producer_masked_pan_shows_at_most_its_bin_and_last4(sent, shown):
    from fraud_assets.defs.raw.tokens import masked_invalid_pan

    assert masked_invalid_pan(sent) == shown
    assert not pans_in(shown or "")

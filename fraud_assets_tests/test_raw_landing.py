"""The file register: every landing file accounted for, unreadable ones refused with a reason."""

from __future__ import annotations

import datetime as dt
import gzip

import pytest

from fraud_assets.defs.raw.assets import build_register
from fraud_assets_tests import raw_cleaned_support as s

GOOD_CSV = s.csv_text([s.a_row(1), s.a_row(2)])


def register(data_dir, previous=None):
    reg = build_register(data_dir / "landing", previous)
    return reg.set_index("source_file")


def test_a_good_file_is_ingested_with_its_row_count_and_dates(data_dir):
    s.write_acq_a(data_dir, [s.a_row(1), s.a_row(2)])
    row = register(data_dir).iloc[0]
    assert (row["status"], row["rows_landed"], row["feed"]) == ("ingested", 2, "acq_a")
    assert (row["business_date"], row["landing_date"]) == (dt.date(2018, 4, 1), dt.date(2018, 4, 2))


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("acq_a_2018-04-01.csv.gz", b"", "empty_file"),
        ("acq_a_2018-04-01.csv.gz", gzip.compress(GOOD_CSV.encode(), mtime=0)[:-30], "truncated_gzip"),
        ("acq_a_2018-04-01.csv.gz", b"\x89PNG\r\n\x1a\n" + bytes(range(64)), "not_gzip"),
        ("acq_a_2018-04-01.csv", b"\x00\x01\x02junk\x00" * 20, "binary_content"),
        (
            "acq_a_2018-04-01.csv",
            GOOD_CSV.replace("auth", "autorisation \xe9").encode("latin-1"),
            "wrong_encoding",
        ),
        (
            "acq_a_2018-04-01.csv.gz",
            gzip.compress(GOOD_CSV.splitlines()[0].encode() + b"\n", mtime=0),
            "header_only",
        ),
        ("acq_a_2018-04-01.csv.gz", gzip.compress(b"foo,bar\n1,2\n", mtime=0), "missing_columns"),
        ("acq_a_2018-04-01.jsonl.gz", gzip.compress(b"\n\n", mtime=0), "unrecognised_name"),
        ("acq_c_2018-04-01.csv.gz", gzip.compress(GOOD_CSV.encode(), mtime=0), "unrecognised_name"),
        ("acq_a_2018-13-01.csv.gz", gzip.compress(GOOD_CSV.encode(), mtime=0), "unrecognised_name"),
        ("acq_b_2018-04-01.jsonl.gz", gzip.compress(b"  \n", mtime=0), "empty_file"),
    ],
)
def test_an_unreadable_file_is_rejected_with_a_reason(data_dir, name, content, reason):
    s.write(data_dir, f"authorizations/2018-04-02/{name}", content)
    row = register(data_dir).iloc[0]
    assert (row["status"], row["reason"], row["rows_landed"]) == ("rejected", reason, 0)


def test_a_file_outside_the_layout_is_rejected_as_unrecognised(data_dir):
    s.write(data_dir, "authorizations/acq_a_2018-04-01.csv", GOOD_CSV)
    s.write(data_dir, "refunds/2018-04-02/refunds_2018-04-01.csv", GOOD_CSV)
    assert set(register(data_dir)["reason"]) == {"unrecognised_name"}


def test_files_still_being_written_are_ignored(data_dir):
    for name in (".acq_a_2018-04-01.csv.gz", "acq_a_2018-04-01.csv.gz.tmp", "acq_a_2018-04-01.csv.gz.part"):
        s.write(data_dir, f"authorizations/2018-04-02/{name}", b"partial")
    assert register(data_dir).empty


def test_a_resent_file_with_identical_content_is_a_duplicate_of_the_first(data_dir):
    s.write_acq_a(data_dir, [s.a_row(1)])
    s.write_acq_a(data_dir, [s.a_row(1)], name="acq_a_2018-04-01_resend.csv.gz", landed="2018-04-03")
    reg = register(data_dir)
    first = "authorizations/2018-04-02/acq_a_2018-04-01.csv.gz"
    resend = "authorizations/2018-04-03/acq_a_2018-04-01_resend.csv.gz"
    assert reg.loc[first, "status"] == "ingested"
    assert reg.loc[resend, "status"] == "duplicate_file"
    assert first in reg.loc[resend, "reason"]


def test_a_file_with_new_content_for_the_same_date_is_ingested_too(data_dir):
    s.write_acq_a(data_dir, [s.a_row(1)])
    s.write_acq_a(data_dir, [s.a_row(2)], name="acq_a_2018-04-01_002.csv.gz")
    assert set(register(data_dir)["status"]) == {"ingested"}


def test_unchanged_files_keep_their_registration_time(data_dir):
    s.write_acq_a(data_dir, [s.a_row(1)])
    first = build_register(data_dir / "landing", None, now=dt.datetime(2020, 1, 1))
    again = build_register(data_dir / "landing", first, now=dt.datetime(2021, 1, 1))
    assert again["registered_at"].tolist() == first["registered_at"].tolist()


def test_the_landing_contract_lists_every_reason_and_cap():
    """Every reason a file is refused, a line kept malformed, a snapshot row set aside, or a transaction,
    chargeback or FX row quarantined, and every reader cap: a producer reads them in one document."""
    from pathlib import Path

    from fraud_assets.defs.cleaned.reference import REFERENCE_REASONS
    from fraud_assets.defs.cleaned.transform import REASONS
    from fraud_assets.defs.raw.limits import ReaderLimits
    from fraud_assets.defs.raw.reasons import FILE_REASONS, LINE_REASONS
    from fraud_assets.defs.raw.snapshots import ROW_REASONS

    text = (Path(__file__).parents[1] / "docs" / "landing-zone.md").read_text()
    row_reasons = [r for reasons in ROW_REASONS.values() for r in reasons]
    named = [*FILE_REASONS, *LINE_REASONS, *row_reasons, *REASONS, *REFERENCE_REASONS]
    named += list(ReaderLimits.model_fields)
    assert [n for n in named if f"`{n}`" not in text] == []

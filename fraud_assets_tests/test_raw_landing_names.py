"""The landing naming rules (fraud_assets.lib.landing), the single implementation every layer uses."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path

import pytest

from fraud_assets.lib import landing as ln

TREE = [
    "authorizations/2018-04-01/acq_a_2018-04-01.csv.gz",
    "authorizations/2018-04-03/acq_b_2018-04-01_resend.jsonl.gz",
    "authorizations/2018-04-02/acq_a_2018-04-02.csv",
    "authorizations/2018-04-02/acq_b_2018-04-02.csv.gz",  # B never sends CSV
    "authorizations/2018-04-02/acq_c_2018-04-02.csv.gz",  # unknown feed
    "authorizations/2018-04-02/acq_a_2018-02-30.csv.gz",  # no such date
    "authorizations/2018-13-02/acq_a_2018-04-02.csv.gz",  # bad landing folder
    "authorizations/acq_a_2018-04-02.csv.gz",  # no landing folder
    "authorizations/2018-04-02/.acq_a_2018-04-02.csv.gz.tmp",  # in flight: invisible
    "chargebacks/2018-04-05/chargebacks_2018-04-05.csv",
    "chargebacks/2018-04-05/fx_rates_2018-04-05.csv",  # feed of another source
    "fx_rates/2018-04-01/fx_rates_2018-04-01.csv",
    "merchants/2018-04-01/merchants_2018-04-01.parquet",
    "misc/2018-04-01/acq_a_2018-04-01.csv.gz",  # not a source
]
RECOGNISED = {
    "authorizations/2018-04-01/acq_a_2018-04-01.csv.gz",
    "authorizations/2018-04-03/acq_b_2018-04-01_resend.jsonl.gz",
    "authorizations/2018-04-02/acq_a_2018-04-02.csv",
    "chargebacks/2018-04-05/chargebacks_2018-04-05.csv",
    "fx_rates/2018-04-01/fx_rates_2018-04-01.csv",
    "merchants/2018-04-01/merchants_2018-04-01.parquet",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for rel in TREE:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rel.encode())
    return tmp_path


def test_built_names_parse_back_to_their_parts():
    name = ln.file_name("acq_b", dt.date(2018, 4, 1), suffix="002")
    assert name == "acq_b_2018-04-01_002.jsonl.gz"
    assert ln.parse_name(name, "authorizations") == ln.FileName("acq_b", "2018-04-01", "002", "jsonl.gz")
    assert ln.file_name("fx_rates", "2018-04-01") == "fx_rates_2018-04-01.csv"
    assert ln.relative_path("fx_rates", dt.date(2018, 4, 2), "x.csv") == "fx_rates/2018-04-02/x.csv"


@pytest.mark.parametrize(("feed", "ext"), [("acq_c", None), ("acq_a", "jsonl.gz"), ("cardholders", "csv")])
def test_a_name_outside_the_contract_cannot_be_built(feed, ext):
    with pytest.raises(ValueError, match="unknown feed|would not follow"):
        ln.file_name(feed, "2018-04-01", ext=ext)


def test_only_contract_paths_are_recognised_and_the_rest_are_unrecognised_name(root):
    found = {f.relative: f for f in ln.discover(root)}
    assert not any(ln.is_in_flight(Path(r).name) for r in found)
    assert {r for r, f in found.items() if f.recognised} == RECOGNISED
    assert {f.name_error for f in found.values() if not f.recognised} == {ln.REJECT_NAME}
    assert found["misc/2018-04-01/acq_a_2018-04-01.csv.gz"].source is None


def test_a_late_resend_keeps_its_business_date_and_landing_date(root):
    f = ln.parse(root, root / "authorizations/2018-04-03/acq_b_2018-04-01_resend.jsonl.gz")
    assert (f.business_day, f.landing_day, f.suffix, f.ext) == (
        dt.date(2018, 4, 1),
        dt.date(2018, 4, 3),
        "resend",
        "jsonl.gz",
    )


def test_business_dates_come_from_recognised_authorisation_files_only(root):
    assert ln.business_dates_in_landing(root) == ["2018-04-01", "2018-04-02"]


def test_scan_lists_recognised_files_in_arrival_order(root):
    rels = [f.relative for f in ln.scan(root, ["authorizations"])]
    assert rels == [
        "authorizations/2018-04-01/acq_a_2018-04-01.csv.gz",
        "authorizations/2018-04-02/acq_a_2018-04-02.csv",
        "authorizations/2018-04-03/acq_b_2018-04-01_resend.jsonl.gz",
    ]


def test_a_file_hash_is_the_sha256_of_its_bytes(root, monkeypatch):
    monkeypatch.setattr(ln, "HASH_BLOCK", 3)
    p = root / TREE[0]
    [f] = [f for f in ln.scan(root, ["authorizations"]) if f.relative == TREE[0]]
    assert (
        ln.content_identity(root, f, max_bytes=1 << 20)
        == hashlib.sha256(p.read_bytes()).hexdigest()
        == ln.sha256_bytes(p.read_bytes())
    )


def test_a_cursor_from_before_the_ctime_was_recorded_knows_its_files_and_adopts_their_ctime(root):
    [f] = [f for f in ln.scan(root, ["authorizations"]) if f.relative == TREE[0]]
    cursor = ln.LandingCursor(files={f.source_file: [f.size, f.mtime_ns, "0" * 64]})
    assert cursor.is_known(f)
    assert cursor.files[f.source_file][3] == f.ctime_ns


def test_the_sensor_does_not_read_what_the_register_refuses_unread(root, tmp_path):
    """Over the size cap, or a FIFO swapped in after the listing: a stand-in identity from the name,
    size and clocks, at once (the register then records why), never a read that blocks or runs long."""
    [f] = [f for f in ln.scan(root, ["authorizations"]) if f.relative == TREE[0]]
    content = ln.content_identity(root, f, max_bytes=1 << 20)
    assert ln.content_identity(root, f, max_bytes=f.size - 1) not in (content, None)
    (root / f.relative).unlink()
    os.mkfifo(root / f.relative)
    assert ln.content_identity(root, f, max_bytes=1 << 20) != content  # did not block on the FIFO


def test_sensors_are_offered_only_well_named_regular_files(tmp_path: Path):
    """What scan() returns is what sensors launch runs for: never a link or a date outside the window.
    A well-formed name holding a card number is offered (the sensors keep names masked) so that the
    register records its refusal at once."""
    from fraud_assets_tests.raw_cleaned_support import PANS

    good = "authorizations/2018-04-02/acq_a_2018-04-01.csv"
    for rel in (
        good,
        f"authorizations/2018-04-02/acq_a_2018-04-01_{PANS[1]}.csv",
        "authorizations/9999-04-02/acq_a_2018-04-01.csv",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / "authorizations/2018-04-02/acq_b_2018-04-01.jsonl").symlink_to(tmp_path / good)
    pan_named = f"authorizations/2018-04-02/acq_a_2018-04-01_{PANS[1]}.csv"
    assert [f.relative for f in ln.scan(tmp_path)] == [good, pan_named]
    assert ln.parse(tmp_path, tmp_path / pan_named).name_error == "pan_in_file_name"

"""Producer text in the markdown metadata the UI renders (table previews, contract failure samples) is
shown as text: never an image fetched from the producer's server, a link under a name of its choosing,
or markdown that escapes its table cell."""

from __future__ import annotations

import dagster as dg
from markdown_it import MarkdownIt

from fraud_assets.lib.contracts import validate_frame
from fraud_assets.lib.markdown import escape_cell
from fraud_assets.lib.warehouse import PREVIEW_ROWS
from fraud_assets.resources import build_resources
from fraud_assets_tests import raw_cleaned_support as s
from fraud_assets_tests.conftest import TEST_PAN_KEY
from fraud_assets_tests.test_contract_sql import Payments, broken

IMAGE = "![status](https://producer.example/pixel.png?viewer=1)"
LINK = "[Re-run the day here](https://producer.example/login)"
HOSTILE = [
    IMAGE,
    LINK,
    f"Y\n\n{IMAGE}",  # a line break ends the table: what follows is any markdown
    f"Y | {LINK}",  # a cell separator opens a cell of the producer's own
    "<img src=https://producer.example/pixel.png>",
    "Y\u2028<https://producer.example/login>",
]


def rendered(markdown: str) -> str:
    """HTML of `markdown` as a CommonMark renderer with GFM tables draws it."""
    return MarkdownIt("commonmark").enable("table").render(markdown)


def assert_plain_table(markdown: str, rows: int) -> None:
    html = rendered(markdown)
    assert "<img" not in html
    assert "<a " not in html
    assert html.count("<tr>") == rows + 1  # the header and one row per value, nothing outside the table
    assert "<table>" in html
    assert html.split("</table>")[1].strip() == ""


def test_hostile_producer_values_in_a_raw_preview_render_as_plain_cells(data_dir):
    s.write_reference(data_dir)
    s.write_acq_b(data_dir, [s.b_row(i + 1, tds=text) for i, text in enumerate(HOSTILE)])
    defs = s.defs_for(data_dir)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.assets(
            dg.AssetKey.from_user_string("raw/file_register"),
            dg.AssetKey.from_user_string("raw/authorizations"),
        ),
        resources=build_resources(data_dir, TEST_PAN_KEY),
        partition_key=s.DAY,
    )
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "raw/authorizations"
    ]
    preview = event.materialization.metadata["preview"].value
    assert "pixel.png" in preview  # the hostile values are shown, as text
    assert_plain_table(preview, min(len(HOSTILE), PREVIEW_ROWS))


def test_hostile_values_in_contract_failure_samples_render_as_plain_cells():
    passed, md = validate_frame(Payments, broken(note=[IMAGE, f"ok\n\n{LINK}", "ok!"]))
    assert not passed
    samples = md["failure_samples"].value
    assert "pixel.png" in samples
    html = rendered(samples)
    assert "<img" not in html
    assert "<a " not in html
    assert html.split("</table>")[1].strip() == ""


def test_an_escaped_cell_renders_as_the_text_itself():
    for text in ["4539 **** 1234", "a\\|b", "x & y; &amp;", "`code`", "1 < 2 > 0", "[not a link]"]:
        html = rendered(f"| v |\n|---|\n| {escape_cell(text)} |\n")
        cell = html.split("<td>")[1].split("</td>")[0]
        assert cell == text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_a_preview_shows_a_date_column_as_dates_and_a_timestamp_as_timestamps(tmp_path):
    import duckdb

    from fraud_assets.lib.warehouse import table_metadata

    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
        conn.execute(
            "CREATE TABLE t AS SELECT DATE '2026-10-21' AS business_date, "
            "TIMESTAMP '2026-10-21 00:00:00' AS tx_datetime"
        )
        preview = table_metadata(conn, "t")["preview"].value
    row = preview.splitlines()[-1]
    assert "| 2026-10-21 " in row
    assert "2026-10-21 00:00:00" in row  # the timestamp keeps its time
    assert row.count("00:00:00") == 1


def test_a_table_built_from_rows_is_the_one_pandas_to_markdown_writes():
    import datetime as dt

    import pandas as pd

    from fraud_assets.lib.markdown import markdown_table

    df = pd.DataFrame(
        {
            "n": [1, 22, 333],
            "x": [1.5, float("nan"), -0.0],
            "when": pd.to_datetime(["2018-04-01", "2018-04-02", None]),
            "day": [dt.date(2018, 4, 1), None, dt.date(2018, 4, 3)],
            "text": ["a|b", "![i](u)", "\n"],
        }
    )
    for frame in (df, df.astype(object)):
        shown = frame.astype(str).map(escape_cell)
        assert markdown_table(frame) == shown.to_markdown(index=False)

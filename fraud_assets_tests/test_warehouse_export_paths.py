"""Parquet exports land beside the warehouse whatever the data directory is called."""

from __future__ import annotations

import duckdb
import pandas as pd

from fraud_assets.lib.warehouse import replace_partition, replace_table


def test_exports_work_under_a_data_dir_whose_name_holds_a_quote(tmp_path):
    data_dir = tmp_path / "o'brien's data"
    data_dir.mkdir()
    dates = pd.to_datetime(["2018-04-01", "2018-04-02"]).date
    rows = pd.DataFrame({"business_date": dates, "n": [1, 2]})
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        replace_table(conn, "cleaned.whole", rows)
        replace_partition(conn, "cleaned.daily", rows, "business_date", ["2018-04-01", "2018-04-02"])
    exports = data_dir / "exports" / "cleaned"
    assert pd.read_parquet(exports / "whole" / "data.parquet")["n"].tolist() == [1, 2]
    day = pd.read_parquet(exports / "daily" / "business_date=2018-04-02" / "data.parquet")
    assert day["n"].tolist() == [2]

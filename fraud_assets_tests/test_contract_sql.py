"""Contracts in DuckDB: the SQL compiled from a pandera model finds what pandera's own pandas validation
finds - the same (column, check) failures, counted the same - and every project model compiles.

The pandas side is `model.validate(df, lazy=True)` itself, run on the very frames the engine gets."""

import importlib
import inspect
import pkgutil

import duckdb
import pandas as pd
import pandera.errors
import pandera.pandas as pa
import pytest
from pandera.typing import Series

import fraud_assets.defs
from fraud_assets.lib.contract_sql import (
    MAX_FAILURE_SAMPLES,
    SAMPLE_CHARS,
    SQL_TWIN,
    UntranslatableContract,
    compile_contract,
    evaluate,
    evaluate_by_day,
    str_matches_sql,
)
from fraud_assets.lib.contracts import validate_frame

DAY = pd.Timestamp("2018-04-01")
_SQL_TYPE = {"int": "BIGINT", "float": "DOUBLE", "str": "VARCHAR", "datetime": "TIMESTAMP", "bool": "BOOLEAN"}


class Payments(pa.DataFrameModel):
    """Every built-in rule the translator knows, on one table."""

    payment_id: Series[int] = pa.Field(unique=True, ge=0)
    booked_at: Series[pd.Timestamp]
    card_bin: Series[str] = pa.Field(str_matches=r"^\d{6}$")
    currency: Series[str] = pa.Field(isin=["EUR", "USD"], str_length={"min_value": 3, "max_value": 3})
    channel: Series[str] = pa.Field(nullable=True, notin=["test"], str_startswith="c")
    note: Series[str] = pa.Field(nullable=True, str_contains="ok", str_endswith="!")
    amount: Series[float] = pa.Field(gt=0, lt=10_000)
    fee: Series[float] = pa.Field(nullable=True, in_range={"min_value": 0, "max_value": 5})
    tries: Series[int] = pa.Field(le=3, ne=2)
    version: Series[int] = pa.Field(eq=1)
    refunded: Series[pd.BooleanDtype] = pa.Field(nullable=True)
    file: Series[str]
    line: Series[int]

    @pa.dataframe_check(error="fee below amount", statistics={SQL_TWIN: "fee IS NULL OR fee < amount"})
    def fee_below_amount(cls, df: pd.DataFrame) -> pd.Series:
        return df["fee"].isna() | (df["fee"] < df["amount"])

    @pa.dataframe_check(statistics={SQL_TWIN: "tries <= version + 2"})
    def few_tries(cls, df: pd.DataFrame) -> pd.Series:
        return df["tries"] <= df["version"] + 2

    class Config:
        strict = True
        coerce = True
        unique = ["file", "line"]


def good_rows(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "payment_id": range(n),
            "booked_at": [DAY] * n,
            "card_bin": ["453914"] * n,
            "currency": ["EUR"] * n,
            "channel": ["card"] * n,
            "note": ["ok!"] * n,
            "amount": [10.0] * n,
            "fee": [1.0] * n,
            "tries": [1] * n,
            "version": [1] * n,
            "refunded": pd.array([False] * n, dtype="boolean"),
            "file": ["a.csv"] * n,
            "line": range(1, n + 1),
        }
    )


def broken(**changes: list) -> pd.DataFrame:
    df = good_rows(len(next(iter(changes.values()))))
    for column, values in changes.items():
        df[column] = values
    return df


BROKEN_FRAMES = {
    "valid": good_rows(),
    "nulls": broken(card_bin=["453914", None, None], booked_at=[DAY, pd.NaT, DAY], amount=[1.0, None, 2.0]),
    "duplicate_ids": broken(payment_id=[7, 7, 8]),
    "duplicate_file_lines": broken(line=[1, 1, 2]),
    "duplicates_with_nulls": broken(file=[None, None, "a.csv"], line=[1, 1, 1]),
    "patterns": broken(card_bin=["45391", "4539145", "12345x"], currency=["EURO", "GBP", "EUR"]),
    "strings": broken(channel=["test", "web", None], note=["ok", "nope!", "ok!"]),
    "bounds": broken(amount=[0.0, 10_000.0, -1.0], fee=[-0.5, 5.0, 9.0], payment_id=[-1, 0, 1]),
    "not_equal_and_equal": broken(tries=[2, 3, 4], version=[1, 2, 1]),
    "custom_checks": broken(fee=[4.0, 3.0, 2.0], amount=[3.0, 3.0, 3.0], tries=[3, 0, 3]),
    "uncoercible_text": broken(line=["1", "two", "3.5"]),
    "extra_column": good_rows().assign(comment="hello"),
    "missing_column": good_rows().drop(columns=["fee"]),
    "missing_column_of_no_custom_check": good_rows().drop(columns=["channel"]),
}


def pandas_failures(model: type[pa.DataFrameModel], df: pd.DataFrame) -> dict[tuple[str, str], int]:
    try:
        model.validate(df, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        fc = exc.failure_cases
        return {(str(c), str(k)): int(n) for (c, k), n in fc.groupby(["column", "check"]).size().items()}
    return {}


def engine_failures(model: type[pa.DataFrameModel], df: pd.DataFrame) -> dict[tuple[str, str], int]:
    with duckdb.connect() as conn:
        conn.register("frame", df)
        conn.execute("CREATE TABLE t AS SELECT * FROM frame")
        report = evaluate(conn, compile_contract(model), "t")
    return {(c, k): n for c, k, n in report.failures}


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("case", list(BROKEN_FRAMES))
def test_the_engine_finds_the_failures_pandera_finds_on_pandas(case):
    df = BROKEN_FRAMES[case]
    expected = pandas_failures(Payments, df)
    found = engine_failures(Payments, df)
    assert set(found) == set(expected)
    assert found == expected


def test_a_value_that_cannot_take_the_column_type_is_a_coercion_failure():
    found = engine_failures(Payments, BROKEN_FRAMES["uncoercible_text"])
    assert found == {("line", "coerce_dtype('int64')"): 2, ("line", "dtype('int64')"): 2}


def test_a_null_in_a_typed_column_is_reported_once_as_not_nullable():
    # pandas reads a null integer as a float NaN and also reports a failed int coercion; the engine
    # reports the null once.
    df = broken(payment_id=pd.array([1, None, 3], dtype="Int64"))
    assert engine_failures(Payments, df) == {("payment_id", "not_nullable"): 1}


def test_failure_samples_name_the_row_and_mask_card_numbers():
    df = broken(note=["card 4539148803436467", "ok!", "ok!"])
    passed, md = validate_frame(Payments, df)
    assert not passed
    samples = md["failure_samples"].value
    assert "4539148803436467" not in samples
    assert "str_contains" in samples


def _project_models() -> list[type[pa.DataFrameModel]]:
    models = []
    for info in pkgutil.walk_packages(fraud_assets.defs.__path__, "fraud_assets.defs."):
        if info.name.endswith(".schemas"):
            module = importlib.import_module(info.name)
            models += [
                obj
                for obj in vars(module).values()
                if inspect.isclass(obj)
                and issubclass(obj, pa.DataFrameModel)
                and obj.__module__ == module.__name__
            ]
    return models


def test_every_project_contract_compiles_and_runs_on_its_own_column_types():
    models = _project_models()
    assert len(models) >= 10
    with duckdb.connect() as conn:
        for model in models:
            contract = compile_contract(model)  # raises for a custom check without its SQL twin
            cols = ", ".join(f'"{c.name}" {_SQL_TYPE[c.kind]}' for c in contract.columns)
            conn.execute(f"CREATE OR REPLACE TABLE t ({cols})")
            report = evaluate(conn, contract, "t")  # binds every twin, compiles every regex (RE2)
            assert report.passed, (model.__name__, report.failures)


def test_a_custom_check_without_an_sql_twin_does_not_compile():
    class NoTwin(pa.DataFrameModel):
        a: Series[int]

        @pa.dataframe_check
        def positive(cls, df: pd.DataFrame) -> pd.Series:
            return df["a"] > 0

    with pytest.raises(UntranslatableContract, match="positive.*no SQL twin"):
        compile_contract(NoTwin)


def test_a_custom_column_check_does_not_compile():
    class Custom(pa.DataFrameModel):
        a: Series[int] = pa.Field()

        @pa.check("a")
        def even(cls, s: pd.Series) -> pd.Series:
            return s % 2 == 0

    with pytest.raises(UntranslatableContract, match="even"):
        compile_contract(Custom)


HEX = "ab" * 32
TS = pd.Timestamp("2018-04-01 10:00:00")


def _transactions(**changes) -> pd.DataFrame:
    row = {
        "transaction_id": 1,
        "business_date": DAY,
        "tx_datetime": TS,
        "tx_datetime_local": TS,
        "card_token": HEX,
        "pan_bin": "453914",
        "pan_last4": "6467",
        "terminal_id": 3,
        "tx_amount": 10.0,
        "amount_original": 11.0,
        "currency": "USD",
        "fx_rate": 1.1,
        "channel": "ecommerce",
        "three_ds": "Y",
        "feed": "acq_a",
        "source_file": "authorizations/2018-04-01/acq_a.csv",
        "row_number": 1,
    }
    return pd.DataFrame([row, {**row, "transaction_id": 2, "row_number": 2, **changes}])


def _labels(**changes) -> pd.DataFrame:
    row = {
        "transaction_id": 1,
        "card_token": HEX,
        "tx_datetime": TS,
        "reported_at": TS + pd.Timedelta(days=3),
        "chargeback_id": "cb1",
        "reason_code": "10.4",
    }
    return pd.DataFrame([row, {**row, "transaction_id": 2, "tx_datetime": None, **changes}])


def _reconciliation(**changes) -> pd.DataFrame:
    row = {
        "business_date": DAY,
        "raw_rows": 10,
        "cleaned_rows": 6,
        "quarantined_rows": 2,
        "duplicates_removed": 1,
        "reversal_rows": 1,
    }
    return pd.DataFrame([row, {**row, "business_date": DAY + pd.Timedelta(days=1), **changes}])


def _file_register(**changes) -> pd.DataFrame:
    row = {
        "source": "authorizations",
        "feed": "acq_a",
        "source_file": "authorizations/2018-04-01/acq_a.csv",
        "file_sha256": HEX,
        "landing_date": DAY,
        "business_date": DAY,
        "status": "ingested",
        "reason": None,
        "rows_landed": 3,
        "registered_at": TS,
        "file_size": 100,
        "file_mtime_ns": 1,
        "file_inode": 7,
        "file_ctime_ns": 1,
    }
    other = {**row, "source_file": "b.csv", "status": "rejected", "reason": "empty", **changes}
    return pd.DataFrame([row, other])


def _raw_authorizations(**changes) -> pd.DataFrame:
    from fraud_assets.defs.raw.schemas import COLUMNS

    row = {c: None for c, _ in COLUMNS["raw.authorizations"]}
    row |= {
        "transaction_id": "1",
        "feed": "acq_a",
        "source_file": "authorizations/2018-04-01/acq_a.csv",
        "file_sha256": HEX,
        "landing_date": DAY,
        "row_number": 1,
        "ingested_at": TS,
        "business_date": DAY,
    }
    malformed = {"transaction_id": None, "malformed_reason": "too_few_fields", "raw_line_masked": "1;2"}
    return pd.DataFrame([row, {**row, "row_number": 2, **malformed, **changes}])


def _twin_cases():
    from fraud_assets.defs.cleaned import schemas as cleaned
    from fraud_assets.defs.raw import schemas as raw

    return {
        "transaction_on_another_day": (
            cleaned.TransactionsModel,
            _transactions(tx_datetime=TS + pd.Timedelta(days=1)),
        ),
        "amount_not_in_eur": (cleaned.TransactionsModel, _transactions(tx_amount=12.0)),
        "label_reported_before_transaction": (
            cleaned.LabelsModel,
            _labels(tx_datetime=TS, reported_at=TS - pd.Timedelta(hours=1)),
        ),
        "reconciliation_off_by_one": (cleaned.ReconciliationModel, _reconciliation(raw_rows=11)),
        "ingested_file_with_a_reason": (raw.FileRegisterModel, _file_register(status="ingested")),
        "rejected_file_without_a_reason": (raw.FileRegisterModel, _file_register(reason=None)),
        "malformed_line_with_parsed_fields": (
            raw.RawAuthorizationsModel,
            _raw_authorizations(transaction_id="9"),
        ),
        "malformed_line_without_its_text": (
            raw.RawAuthorizationsModel,
            _raw_authorizations(raw_line_masked=None),
        ),
    }


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("case", list(_twin_cases()))
def test_each_sql_twin_fails_the_rows_its_pandas_check_fails(case):
    model, broken_frame = _twin_cases()[case]
    valid_frame = broken_frame.iloc[:1]
    assert engine_failures(model, valid_frame) == pandas_failures(model, valid_frame) == {}
    custom = {name for name, _ in compile_contract(model).frame_checks}
    found = engine_failures(model, broken_frame)
    assert found == pandas_failures(model, broken_frame)
    assert {check for _, check in found} & custom


@pytest.mark.parametrize("pattern", [r"^[0-9a-f]{16}$", r"^\d{6}$", r"^[A-Z]{3}$", r"^[a-c9]{1,3}$"])
def test_a_character_class_pattern_checked_without_regex_agrees_with_the_regex(pattern):
    values = [
        "",
        "abc",
        "ABC",
        "AB",
        "ABCD",
        "ÀBC",
        "AB\n",
        "ABC\n",
        "123456",
        "12٣456",
        " 12345",
        "c9",
        "a" * 16,
    ]
    values += ["0123456789abcdef", "0123456789abcdeF", "9c", "0123456789abcdef0"]
    fast = str_matches_sql("v", pattern)
    assert "regexp" not in fast
    with duckdb.connect() as conn:
        rows = conn.execute(
            f"SELECT v, {fast}, regexp_matches(v, ?) FROM unnest(?::VARCHAR[]) AS u(v)",
            [f"^(?:{pattern})", values],
        ).fetchall()
    assert [(v, a) for v, a, _ in rows] == [(v, b) for v, _, b in rows]


def test_a_long_value_is_sampled_short_and_a_card_number_at_the_cut_is_still_masked():
    pan = "4539148803436467"
    note = "x" * (SAMPLE_CHARS - 8) + pan + "y" * 5000
    _, md = validate_frame(Payments, broken(note=[note, "ok!", "ok!"]))
    samples = md["failure_samples"].value
    assert pan[:8] not in samples
    assert "y" * 100 not in samples


class Dated(pa.DataFrameModel):
    """A day's rows: ids unique over what is validated, amounts positive, fee below amount."""

    business_date: Series[pd.Timestamp]
    row_id: Series[int] = pa.Field(unique=True)
    amount: Series[float] = pa.Field(gt=0)
    fee: Series[float]

    @pa.dataframe_check(statistics={SQL_TWIN: "fee < amount"})
    def fee_below_amount(cls, df: pd.DataFrame) -> pd.Series:
        return df["fee"] < df["amount"]


def test_a_contract_judged_by_day_counts_each_days_failures_in_the_same_scans():
    """Day 1 sound; day 2 a negative amount (whose fee is then above it: the custom check too); day 3 repeats
    a day-1 id (a duplicate of both days: uniqueness holds over the range). The range's report is
    `evaluate`'s."""
    days = ["2018-04-01", "2018-04-02", "2018-04-03", "2018-04-04"]
    with duckdb.connect() as conn:
        conn.execute(
            "CREATE TABLE t AS SELECT * FROM (VALUES "
            "(DATE '2018-04-01', 1, 5.0, 1.0), (DATE '2018-04-01', 2, 5.0, 1.0), "
            "(DATE '2018-04-02', 3, -5.0, 1.0), (DATE '2018-04-02', 4, 5.0, 1.0), "
            "(DATE '2018-04-03', 1, 5.0, 1.0)) v(business_date, row_id, amount, fee)"
        )
        contract = compile_contract(Dated)
        overall, by_day = evaluate_by_day(conn, contract, "t", "business_date", days=days)
        whole = evaluate(conn, contract, "t")

    def failures(report) -> dict[tuple[str, str], int]:
        return {(c, chk): n for c, chk, n in report.failures}

    assert failures(overall) == failures(whole)
    assert overall.rows == whole.rows == 5
    assert {d: r.rows for d, r in by_day.items()} == dict(zip(days, [2, 2, 1, 0], strict=True))
    assert failures(by_day[days[0]]) == {("row_id", "field_uniqueness"): 1}
    assert failures(by_day[days[1]]) == {
        ("amount", "greater_than(0)"): 1,
        **{(c, "fee_below_amount"): 1 for c in ("business_date", "row_id", "amount", "fee")},
    }
    assert failures(by_day[days[2]]) == {("row_id", "field_uniqueness"): 1}
    assert by_day[days[3]].passed
    assert set(by_day[days[1]].samples["check"]) <= {"greater_than(0)", "fee_below_amount"}


def test_each_day_of_a_range_shows_its_own_failure_samples_however_many_another_day_has():
    days = ["2018-04-01", "2018-04-02"]
    with duckdb.connect() as conn:
        conn.execute(
            "CREATE TABLE t AS SELECT DATE '2018-04-01' AS business_date, i AS row_id, -1.0 AS amount, "
            "0.0 AS fee FROM range(50) r(i) "
            "UNION ALL SELECT DATE '2018-04-02', 100, -1.0, 0.0"
        )
        overall, by_day = evaluate_by_day(conn, compile_contract(Dated), "t", "business_date", days=days)
    assert len(by_day[days[1]].samples) >= 1  # its one negative amount, not crowded out by day 1's 50
    assert set(by_day[days[1]].samples["index"]) <= {"50"}  # rowid of its row
    assert len(by_day[days[0]].samples) <= MAX_FAILURE_SAMPLES
    assert len(overall.samples) <= MAX_FAILURE_SAMPLES

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
from fraud_assets.lib.contract_sql import SQL_TWIN, UntranslatableContract, compile_contract, evaluate
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

"""Every asset explains itself, and lineage changes are reviewed.

The standard (fraud_assets.cli.catalog.asset_problems) applies to whatever assets the code location
defines, so a new asset meets it the day it lands. The asset-graph snapshot
(fraud_assets_tests/snapshots/asset_graph.json) changes only on purpose: regenerate it with `make docs`
(or `FRAUD_UPDATE_SNAPSHOTS=1 pytest fraud_assets_tests/test_asset_specs.py`) and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from fraud_assets.cli import catalog
from fraud_assets.definitions import defs
from fraud_assets.defs.cleaned import assets as cleaned_assets
from fraud_assets.lib.catalog_metadata import column_schema_metadata
from fraud_assets.lib.code_references import with_code_references

GRAPH = catalog.asset_graph(defs)
ASSET_KEYS = sorted(catalog.key_str(k) for k in GRAPH.get_all_asset_keys())
CHECK_KEYS = sorted(GRAPH.asset_check_keys, key=lambda k: (catalog.key_str(k.asset_key), k.name))
TEAM = ["team:fraud-data-science"]
SCHEMA = {
    "dagster/column_schema": dg.TableSchema(
        columns=[dg.TableColumn("transaction_id", "BIGINT", description="The transaction.")]
    )
}


def _node(asset_def: dg.AssetsDefinition | dg.AssetSpec, code_references: bool = True):
    d = dg.Definitions(assets=[asset_def])
    if code_references:
        d = with_code_references(d)
    return catalog.asset_graph(d).get(next(iter(catalog.asset_graph(d).get_all_asset_keys())))


@pytest.mark.parametrize("asset", ASSET_KEYS)
def test_asset_has_description_owners_group_kinds_code_version_and_column_schema(asset):
    problems = catalog.asset_problems(GRAPH.get(dg.AssetKey.from_user_string(asset)))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("check", CHECK_KEYS, ids=lambda k: f"{catalog.key_str(k.asset_key)}:{k.name}")
def test_asset_check_has_a_description(check):
    assert not catalog.check_problems(GRAPH, check)


def test_the_walk_is_not_vacuous_it_sees_the_layer_assets():
    groups = {GRAPH.get(dg.AssetKey.from_user_string(k)).group_name for k in ASSET_KEYS}
    assert {"raw", "cleaned"} <= groups


def test_asset_graph_matches_the_committed_snapshot():
    expected = catalog.render_snapshot(defs)
    if os.environ.get("FRAUD_UPDATE_SNAPSHOTS") == "1":
        catalog.SNAPSHOT_PATH.parent.mkdir(parents=True, exist_ok=True)
        catalog.SNAPSHOT_PATH.write_text(expected)
    committed = catalog.SNAPSHOT_PATH.read_text() if catalog.SNAPSHOT_PATH.exists() else ""
    assert committed == expected, (
        "The asset graph (keys, deps, groups, partitioning, automation) changed. If intended, run "
        "`make docs` and commit fraud_assets_tests/snapshots/asset_graph.json with the change."
    )


# The standard itself: each rule catches the gap it names.


def test_standard_accepts_a_fully_described_asset():
    @dg.asset(
        key_prefix="cleaned",
        group_name="cleaned",
        description="Clean things for data scientists.",
        owners=TEAM,
        kinds={"duckdb"},
        code_version="1",
        metadata=SCHEMA,
    )
    def things(): ...

    assert catalog.asset_problems(_node(things)) == []


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("description", "no description"),
        ("owners", "lack team:fraud-data-science"),
        ("group_name", "no group"),
        ("kinds", "no kinds"),
        ("code_version", "no code_version"),
        ("metadata", "no column schema"),
    ],
)
def test_standard_flags_an_asset_missing_an_attribute(missing, message):
    attrs = {
        "description": "Clean things.",
        "owners": TEAM,
        "group_name": "cleaned",
        "kinds": {"duckdb"},
        "code_version": "1",
        "metadata": SCHEMA,
    }
    del attrs[missing]

    @dg.asset(key_prefix="cleaned", **attrs)
    def things(): ...

    problems = catalog.asset_problems(_node(things))
    assert len(problems) == 1
    assert message in problems[0]


def test_standard_flags_an_asset_without_code_references():
    @dg.asset(
        key_prefix="cleaned",
        group_name="cleaned",
        description="d",
        owners=TEAM,
        kinds={"duckdb"},
        code_version="1",
        metadata=SCHEMA,
    )
    def things(): ...

    problems = catalog.asset_problems(_node(things, code_references=False))
    assert len(problems) == 1
    assert "no code references" in problems[0]


def test_standard_flags_each_column_without_a_description():
    @dg.asset(
        key_prefix="cleaned",
        group_name="cleaned",
        description="d",
        owners=TEAM,
        kinds={"duckdb"},
        code_version="1",
        metadata=column_schema_metadata(
            [("transaction_id", "BIGINT", "The transaction."), ("tx_amount", "DOUBLE"), ("fx_rate", "DOUBLE")]
        ),
    )
    def things(): ...

    problems = catalog.asset_problems(_node(things))
    assert len(problems) == 1
    assert "columns without a description: tx_amount, fx_rate" in problems[0]


def test_code_references_point_at_the_file_that_defines_the_asset_relative_to_the_repository():
    node = GRAPH.get(dg.AssetKey(["cleaned", "transactions"]))
    assert catalog.code_reference_paths(node) == ["fraud_assets/defs/cleaned/assets.py"]


@pytest.mark.parametrize("name", ["cards", "terminals", "fx_rates", "labels"])
def test_a_cleaned_reference_table_links_first_to_the_call_that_defines_it_with_its_sql(name):
    # The four tables share one factory function; the UI's source link must also reach each one's SQL.
    refs = GRAPH.get(dg.AssetKey(["cleaned", name])).metadata[catalog.CODE_REFERENCES_KEY].code_references
    defining_file = Path(cleaned_assets.__file__).resolve()
    source = defining_file.read_text().splitlines()
    first = refs[0]
    assert Path(first.file_path).resolve() == defining_file
    assert source[first.line_number - 1].startswith(f"{name} = _reference_asset(")
    assert len(refs) == 2  # and the factory's function, as Dagster records every asset's


def test_code_references_link_to_the_configured_git_repository_and_branch():
    from fraud_assets.definitions import LAYERS
    from fraud_assets.resources import build_resources

    linked = with_code_references(
        dg.Definitions.merge(*(layer.defs for layer in LAYERS), dg.Definitions(resources=build_resources())),
        git_url="https://github.com/example/fraud_assets",
        git_branch="release",
    )
    graph = catalog.asset_graph(linked)
    urls = {
        catalog.key_str(key): [
            r.url for r in graph.get(key).metadata[catalog.CODE_REFERENCES_KEY].code_references
        ]
        for key in graph.get_all_asset_keys()
    }
    assert set(urls) == set(ASSET_KEYS)
    [url] = urls["features/transaction_features"]
    assert url.startswith(
        "https://github.com/example/fraud_assets/tree/release/fraud_assets/defs/features/assets.py#L"
    )


def test_standard_flags_a_dep_that_no_layer_defines():
    @dg.asset(
        key=["scoring", "scores"],
        deps=[dg.AssetKey(["features", "missing"])],
        group_name="scoring",
        description="d",
        owners=TEAM,
        kinds={"duckdb"},
        code_version="1",
        metadata=SCHEMA,
    )
    def scores(): ...

    graph = catalog.asset_graph(dg.Definitions(assets=[scores]))
    problems = catalog.asset_problems(graph.get(dg.AssetKey(["features", "missing"])))
    assert problems
    assert "no layer defines it" in problems[0]


def test_standard_flags_a_check_without_description():
    @dg.asset(key_prefix="raw", group_name="raw")
    def things(): ...

    @dg.asset_check(asset=things)
    def rows_present():
        return dg.AssetCheckResult(passed=True)

    @dg.asset_check(asset=things, description="At least one row arrived.")
    def described():
        return dg.AssetCheckResult(passed=True)

    problems = catalog.spec_problems(dg.Definitions(assets=[things], asset_checks=[rows_present, described]))
    assert "check raw/things:rows_present: no description" in problems
    assert not any("described" in p for p in problems)


def test_column_schema_metadata_helper_meets_the_column_schema_rule():
    @dg.asset(
        key_prefix="cleaned",
        group_name="cleaned",
        description="d",
        owners=TEAM,
        kinds={"duckdb"},
        code_version="1",
        metadata=column_schema_metadata(
            [("transaction_id", "BIGINT"), ("tx_amount", "DOUBLE", "EUR")],
            descriptions={"transaction_id": "id"},
        ),
    )
    def things(): ...

    node = _node(things)
    assert catalog.asset_problems(node) == []
    columns = catalog.column_schema_of(node).columns
    assert [(c.name, c.type, c.description) for c in columns] == [
        ("transaction_id", "BIGINT", "id"),
        ("tx_amount", "DOUBLE", "EUR"),
    ]

"""The code location loads and keeps its contract: layer = group = key prefix, modern API only."""

from __future__ import annotations

import subprocess
import sys

import dagster as dg

from fraud_assets.definitions import defs


def test_definitions_resolve_into_a_repository():
    repo = defs.get_repository_def()
    assert {"duckdb", "pan_tokenizer", "landing", "model_store"} <= set(defs.resources)
    for key in repo.asset_graph.get_all_asset_keys():
        node = repo.asset_graph.get(key)
        if node.is_materializable:
            assert key.path[0] == node.group_name, f"{key} is not in the group its prefix names"


def test_dagster_yaml_limits_duckdb_writers_to_one(tmp_path):
    from fraud_assets.cli.dagster_home import write_dagster_yaml

    path = write_dagster_yaml(tmp_path / "home")
    instance = dg.DagsterInstance.from_config(str(path.parent))
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    assert "telemetry:\n  enabled: false" in path.read_text()


def test_loading_the_code_location_does_not_import_the_model_libraries():
    # Every run's worker process loads the definitions: scikit-learn, skops and matplotlib cost seconds
    # of CPU there and only training, scoring and monitoring steps use them (imported on use).
    code = (
        "import sys, fraud_assets.definitions; "
        "print(','.join(m for m in ('sklearn', 'skops', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == ""

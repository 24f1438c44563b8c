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


def test_a_run_that_uses_the_model_store_imports_the_model_libraries_from_its_start(tmp_path):
    # A landed day's run scores after its raw, cleaned and feature steps: its worker imports skops and
    # scikit-learn (~3 s) beside them, started when the model store resource is set up for the run.
    code = (
        "import sys, dagster as dg\n"
        "from fraud_assets.lib import model_io\n"
        "from fraud_assets.resources import ModelStore\n"
        "assert 'sklearn' not in sys.modules\n"
        f"store = ModelStore(root={str(tmp_path)!r}, signing_key='k' * 32)\n"
        "@dg.asset\n"
        "def first_step(model_store: ModelStore) -> None:\n"
        "    assert model_io._warm_up is not None and model_io._warm_up.name == 'model-libraries'\n"
        "dg.materialize([first_step], resources={'model_store': store})\n"
        "model_io.model_libraries_ready()\n"
        "print('sklearn.ensemble' in sys.modules and 'skops.io' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip().splitlines()[-1] == "True"

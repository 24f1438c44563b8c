"""The data catalog, generated from the Definitions: `docs/catalog.md` and the asset-graph snapshot.

    python -m fraud_assets.cli.catalog --write   # regenerate both (what `make docs` runs)
    python -m fraud_assets.cli.catalog --check   # exit 1 when either committed file is stale

The catalog lists every asset with its description, group, owners, kinds, partitioning, deps, column
schema and checks, so a data scientist finds a table without opening the code. The snapshot
(`fraud_assets_tests/snapshots/asset_graph.json`) records keys, deps, groups, partitioning and
automation so a lineage change shows up in review. `spec_problems` is the asset standard every layer
meets (tested by fraud_assets_tests/test_asset_specs.py).

Output depends only on the code, never on the environment or the clock: everything is sorted and no
absolute path or timestamp is rendered, so the committed files are stable across machines.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from fraud_assets.lib import settings
from fraud_assets.lib.catalog_metadata import COLUMN_LINEAGE_KEY, COLUMN_SCHEMA_KEY

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG_PATH = REPO_ROOT / "docs" / "catalog.md"
SNAPSHOT_PATH = REPO_ROOT / "fraud_assets_tests" / "snapshots" / "asset_graph.json"

OWNER = "team:fraud-data-science"
KIND_TAG_PREFIX = "dagster/kind/"
CODE_REFERENCES_KEY = "dagster/code_references"
CLASSIFICATION_TAGS = ("pci", "pii")  # fraud_assets/lib/classification.py


def load_defs() -> dg.Definitions:
    # Imported lazily so `--help` works and tests can pass their own Definitions.
    from fraud_assets.definitions import defs

    return defs


def asset_graph(defs: dg.Definitions):
    return defs.get_repository_def().asset_graph


def key_str(key: dg.AssetKey) -> str:
    return key.to_user_string()


def kinds_of(node) -> list[str]:
    return sorted(t[len(KIND_TAG_PREFIX) :] for t in (node.tags or {}) if t.startswith(KIND_TAG_PREFIX))


def column_schema_of(node) -> dg.TableSchema | None:
    value = (node.metadata or {}).get(COLUMN_SCHEMA_KEY)
    if isinstance(value, dg.TableSchemaMetadataValue):
        return value.schema
    return value if isinstance(value, dg.TableSchema) else None


def _type_cell(column: dg.TableColumn) -> str:
    """The column's type with its contract's constraints, as the UI shows them beside it."""
    c = column.constraints
    parts = [column.type, *(["not null"] if not c.nullable else []), *(["unique"] if c.unique else [])]
    return ", ".join([*parts, *(f"`{o}`" for o in c.other)])


def column_lineage_of(node) -> dict[str, list[tuple[str, str]]]:
    """`{column: [(upstream asset, upstream column), ...]}` from the definition's column lineage."""
    value = (node.metadata or {}).get(COLUMN_LINEAGE_KEY)
    lineage = value.value if isinstance(value, dg.TableColumnLineageMetadataValue) else value
    if not isinstance(lineage, dg.TableColumnLineage):
        return {}
    return {
        column: [(key_str(d.asset_key), d.column_name) for d in deps]
        for column, deps in lineage.deps_by_column.items()
    }


def _from_cell(sources: list[tuple[str, str]]) -> str:
    """`asset`: columns, per upstream asset."""
    by_asset: dict[str, list[str]] = {}
    for asset, column in sources:
        by_asset.setdefault(asset, []).append(column)
    return "; ".join(f"`{a}`: {', '.join(cols)}" for a, cols in by_asset.items())


def describe_partitioning(partitions_def: dg.PartitionsDefinition | None) -> str:
    if partitions_def is None:
        return "unpartitioned"
    if isinstance(partitions_def, dg.DynamicPartitionsDefinition):
        return f"dynamic {partitions_def.name}"
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        # Without its dates: they are settings (FRAUD_FIRST_BUSINESS_DATE), and the catalog renders code only.
        daily = partitions_def.cron_schedule == "0 0 * * *"
        period = "daily" if daily else f"cron `{partitions_def.cron_schedule}`"
        return f"{period} business_date ({partitions_def.timezone})"
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        dims = ", ".join(
            f"{d.name}: {describe_partitioning(d.partitions_def)}" for d in partitions_def.partitions_defs
        )
        return f"multi ({dims})"
    return f"{type(partitions_def).__name__}: {partitions_def}"


def describe_condition(condition: dg.AutomationCondition | None) -> str | None:
    """The condition's label, or its operator tree where a composed condition has no label."""
    if condition is None:
        return None
    label = condition.get_label()
    if label:
        return label
    children = list(condition.children)
    if not children:
        return condition.name
    return f"{condition.name}({', '.join(describe_condition(c) or '' for c in children)})"


def describe_freshness(policy: object) -> str | None:
    if policy is None:
        return None
    fail_window = getattr(policy, "fail_window", None)
    if fail_window is not None:
        warn = getattr(policy, "warn_window", None)
        text = f"fail when older than {_duration(fail_window.to_timedelta())}"
        return text + (f", warn after {_duration(warn.to_timedelta())}" if warn is not None else "")
    cron = getattr(policy, "deadline_cron", None)
    if cron is not None:
        return f"cron deadline `{cron}` ({getattr(policy, 'timezone', 'UTC')})"
    return type(policy).__name__


def _duration(td) -> str:
    hours = td.total_seconds() / 3600
    if hours % 24 == 0:
        return f"{int(hours // 24)} days" if hours != 24 else "1 day"
    return f"{hours:g} hours"


def code_reference_paths(node) -> list[str]:
    """Source files relative to the repository, from local references or git links alike, without line
    numbers: the catalog changes when an asset moves to another file, not when code above it grows."""
    refs = (node.metadata or {}).get(CODE_REFERENCES_KEY)
    paths = set()
    for ref in getattr(refs, "code_references", None) or []:
        if isinstance(ref, dg.UrlCodeReference):
            # <git url>/tree/<branch>/<path>#L<line> (GitHub) or <git url>/-/tree/<branch>/<path> (GitLab)
            marker = f"/tree/{settings.git_branch()}/"
            if marker in ref.url:
                paths.add(ref.url.split(marker, 1)[1].split("#", 1)[0])
        elif isinstance(ref, dg.LocalFileCodeReference):
            path = Path(ref.file_path).resolve()
            paths.add(path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else path.name)
    return sorted(paths)


@dataclass(frozen=True)
class CheckInfo:
    name: str
    asset: str
    description: str | None
    blocking: bool


def checks_by_asset(graph) -> dict[str, list[CheckInfo]]:
    out: dict[str, list[CheckInfo]] = {}
    for check_key in graph.asset_check_keys:
        spec = graph.get_check_spec(check_key)
        info = CheckInfo(
            name=check_key.name,
            asset=key_str(check_key.asset_key),
            description=(spec.description or "").strip() or None,
            blocking=bool(spec.blocking),
        )
        out.setdefault(info.asset, []).append(info)
    return {k: sorted(v, key=lambda c: c.name) for k, v in out.items()}


def asset_nodes(graph) -> list:
    return sorted((graph.get(k) for k in graph.get_all_asset_keys()), key=lambda n: key_str(n.key))


# ---------------------------------------------------------------------------------------------------
# The standard every asset and check meets.


def asset_problems(node) -> list[str]:
    """What a data scientist would miss about one asset, one line per gap; empty means compliant.

    Materialisable assets need a description, owners (including the team), a group other than
    `default`, kinds, code references, a code_version and a column schema in their definition metadata
    with a description for every column.
    External (observed or source) assets need the same minus code_version and column schema.
    """
    name = key_str(node.key)
    if not node.is_materializable and not node.description and not node.owners and not node.tags:
        return [f"{name}: is a dep of another asset but no layer defines it (a typo, or not built yet)"]
    problems = []
    if not (node.description or "").strip():
        problems.append(f"{name}: no description")
    if OWNER not in (node.owners or []):
        problems.append(f"{name}: owners {list(node.owners or [])} lack {OWNER}")
    if not node.group_name or node.group_name == "default":
        problems.append(f"{name}: no group (in 'default')")
    if not kinds_of(node):
        problems.append(f"{name}: no kinds")
    if node.is_materializable:
        if not code_reference_paths(node):
            problems.append(
                f"{name}: no code references (fraud_assets/definitions.py applies with_code_references to "
                "every asset of the code location)"
            )
        if not node.code_version:
            problems.append(f"{name}: no code_version")
        schema = column_schema_of(node)
        if schema is None or not schema.columns:
            problems.append(
                f"{name}: no column schema in the asset's definition metadata (a MaterializeResult only "
                "describes one materialisation): metadata=column_schema_metadata(COLUMNS) from "
                "fraud_assets.lib.catalog_metadata"
            )
        undescribed = [
            c.name for c in (schema.columns if schema else []) if not (c.description or "").strip()
        ]
        if undescribed:
            problems.append(
                f"{name}: columns without a description: {', '.join(undescribed)} (describe them where the "
                "layer declares its columns, passed as column_schema_metadata(..., descriptions=...))"
            )
    return problems


def check_problems(graph, check_key: dg.AssetCheckKey) -> list[str]:
    if (graph.get_check_spec(check_key).description or "").strip():
        return []
    return [f"check {key_str(check_key.asset_key)}:{check_key.name}: no description"]


def spec_problems(defs: dg.Definitions) -> list[str]:
    """The asset standard over a whole code location: every asset and every check (tested)."""
    graph = asset_graph(defs)
    problems = [p for node in asset_nodes(graph) for p in asset_problems(node)]
    for check_key in sorted(graph.asset_check_keys, key=lambda k: (key_str(k.asset_key), k.name)):
        problems += check_problems(graph, check_key)
    return problems


# ---------------------------------------------------------------------------------------------------
# Asset-graph snapshot (reviewed like code: a lineage change shows up as a diff).


def graph_snapshot(defs: dg.Definitions) -> dict[str, object]:
    graph = asset_graph(defs)
    checks = checks_by_asset(graph)
    assets = {}
    for node in asset_nodes(graph):
        name = key_str(node.key)
        assets[name] = {
            "group": node.group_name,
            "deps": sorted(key_str(k) for k in node.parent_keys),
            "partitioning": describe_partitioning(node.partitions_def),
            "automation_condition": describe_condition(node.automation_condition),
            "materializable": bool(node.is_materializable),
            "checks": [c.name for c in checks.get(name, [])],
        }
    return {"assets": assets}


def render_snapshot(defs: dg.Definitions) -> str:
    return json.dumps(graph_snapshot(defs), indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------------------------------------------
# Markdown catalog.


def _cell(text: object) -> str:
    """One markdown table cell: no line breaks, pipes escaped."""
    return " ".join(str(text or "").split()).replace("|", "\\|")


def _anchor(name: str) -> str:
    return name.replace("/", "").lower()


def _render_asset(node, checks: list[CheckInfo]) -> list[str]:
    name = key_str(node.key)
    lines = [f"### `{name}`", ""]
    description = (node.description or "").strip()
    lines += [description if description else "_No description._", ""]
    facts = [
        ("Table", f"`{'.'.join(node.key.path)}`" if len(node.key.path) == 2 else "—"),
        ("Group", f"`{node.group_name}`"),
        ("Owners", ", ".join(f"`{o}`" for o in sorted(node.owners or [])) or "—"),
        ("Kinds", ", ".join(f"`{k}`" for k in kinds_of(node)) or "—"),
        (
            "Classification",
            ", ".join(f"`{t}={(node.tags or {})[t]}`" for t in CLASSIFICATION_TAGS if t in (node.tags or {})),
        ),
        ("Code version", f"`{node.code_version}`" if node.code_version else "—"),
        ("Partitioning", describe_partitioning(node.partitions_def)),
        (
            "Depends on",
            ", ".join(f"[`{key_str(k)}`](#{_anchor(key_str(k))})" for k in sorted(node.parent_keys)),
        ),
        ("Used by", ", ".join(f"[`{key_str(k)}`](#{_anchor(key_str(k))})" for k in sorted(node.child_keys))),
        ("Automation", f"`{describe_condition(node.automation_condition)}`"),
        ("Freshness", describe_freshness(node.freshness_policy)),
        ("Source", ", ".join(f"`{p}`" for p in code_reference_paths(node))),
    ]
    if not node.is_materializable:
        facts.insert(1, ("Type", "external (not materialised by this platform)"))
    lines += ["| | |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in facts if v and v != "`None`"]
    lines.append("")
    schema = column_schema_of(node)
    if schema is not None and schema.columns:
        lineage = column_lineage_of(node)
        if lineage:
            lines += [
                "**Columns**",
                "",
                "| column | type | description | computed from |",
                "|---|---|---|---|",
            ]
            lines += [
                f"| `{c.name}` | {_cell(_type_cell(c))} | {_cell(c.description)} "
                f"| {_cell(_from_cell(lineage.get(c.name, [])))} |"
                for c in schema.columns
            ]
        else:
            lines += ["**Columns**", "", "| column | type | description |", "|---|---|---|"]
            lines += [
                f"| `{c.name}` | {_cell(_type_cell(c))} | {_cell(c.description)} |" for c in schema.columns
            ]
        lines.append("")
        if schema.constraints and schema.constraints.other:
            lines += [f"Table constraints: {_cell('; '.join(schema.constraints.other))}", ""]
    if checks:
        lines += ["**Checks**", "", "| check | blocking | description |", "|---|---|---|"]
        lines += [
            f"| `{c.name}` | {'yes' if c.blocking else 'no'} | {_cell(c.description) or '—'} |"
            for c in checks
        ]
        lines.append("")
    return lines


def render_catalog(defs: dg.Definitions) -> str:
    graph = asset_graph(defs)
    checks = checks_by_asset(graph)
    nodes = asset_nodes(graph)
    groups: dict[str, list] = {}
    for node in nodes:
        groups.setdefault(node.group_name or "default", []).append(node)
    # Layer order (the flow of data), then any other group alphabetically.
    try:
        from fraud_assets.definitions import LAYERS

        order = [layer.__name__.rsplit(".", 1)[-1] for layer in LAYERS]
    except ImportError:
        order = []
    group_names = [g for g in order if g in groups] + sorted(g for g in groups if g not in order)

    n_checks = sum(len(v) for v in checks.values())
    lines = [
        "# Data catalog",
        "",
        "<!-- Generated by `make docs` (python -m fraud_assets.cli.catalog --write) from the Definitions."
        " Do not edit by hand: fraud_assets_tests/test_catalog.py fails when this file is stale. -->",
        "",
        f"{len(nodes)} assets in {len(groups)} groups, {n_checks} asset checks. Each asset `<layer>/<name>` "
        "is the DuckDB table `<layer>.<name>` in `$FRAUD_DATA_DIR/warehouse.duckdb`; query it from a "
        "notebook with `fraud_assets.notebook.connect()` (docs/notebooks.md). Layer conventions: "
        "docs/architecture.md.",
        "",
    ]
    if not nodes:
        lines += ["_No assets are defined yet._", ""]
    lines += ["## Contents", ""]
    for g in group_names:
        links = ", ".join(f"[`{key_str(n.key)}`](#{_anchor(key_str(n.key))})" for n in groups[g])
        lines.append(f"- **{g}**: {links}")
    lines.append("")
    for g in group_names:
        lines += [f"## {g}", ""]
        for node in groups[g]:
            lines += _render_asset(node, checks.get(key_str(node.key), []))

    # Names from the Definitions as declared: resolving every job is `dg check defs`' business.
    jobs = sorted(j.name for j in (defs.jobs or []) if not j.name.startswith("__"))
    sensors = sorted(defs.sensors or [], key=lambda s: s.name)
    schedules = sorted(defs.schedules or [], key=lambda s: s.name)
    if jobs or sensors or schedules:
        lines += ["## Jobs, sensors and schedules", ""]
        lines += [f"- job `{j}`" for j in jobs]
        for s in sensors:
            status = s.default_status.value.lower() if s.default_status else "stopped"
            desc = _cell(s.description)
            lines.append(f"- sensor `{s.name}` (default {status})" + (f": {desc}" if desc else ""))
        for s in schedules:
            desc = _cell(s.description)
            lines.append(f"- schedule `{s.name}` `{s.cron_schedule}`" + (f": {desc}" if desc else ""))
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------------


def generated_files(defs: dg.Definitions) -> dict[Path, str]:
    return {CATALOG_PATH: render_catalog(defs), SNAPSHOT_PATH: render_snapshot(defs)}


def stale_files(defs: dg.Definitions) -> dict[Path, str]:
    """Generated files whose committed content differs, with a unified diff for each."""
    out = {}
    for path, text in generated_files(defs).items():
        current = path.read_text() if path.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{path.relative_to(REPO_ROOT)} (committed)",
                tofile=f"{path.relative_to(REPO_ROOT)} (from the Definitions)",
            )
            out[path] = "".join(diff)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate docs/catalog.md and the snapshot")
    mode.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale")
    args = parser.parse_args(argv)
    defs = load_defs()
    if args.write:
        for path, text in generated_files(defs).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() or path.read_text() != text:
                path.write_text(text)
                print(f"wrote {path.relative_to(REPO_ROOT)}")
            else:
                print(f"{path.relative_to(REPO_ROOT)} is current")
        return 0
    stale = stale_files(defs)
    for path, diff in stale.items():
        print(f"{path.relative_to(REPO_ROOT)} is stale; run `make docs`.\n{diff}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

"""Every asset points at the code that builds it, so the UI's "Code" link answers "how is this made?".

`with_code_references(defs)` is applied once to the whole code location (fraud_assets/definitions.py):
Dagster records the file and line of each asset's function, and, when `FRAUD_GIT_URL` is set, turns them
into links to that repository at `FRAUD_GIT_BRANCH` (paths relative to the repository root).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from fraud_assets.lib import settings

REPO_ROOT = Path(__file__).resolve().parents[2]
# Any file at a known place in the repository anchors the mapping of local paths to repository paths.
_ANCHOR = "pyproject.toml"


def repository_path_mapping() -> dg.AnchorBasedFilePathMapping:
    return dg.AnchorBasedFilePathMapping(
        local_file_anchor=REPO_ROOT / _ANCHOR, file_anchor_path_in_repository=_ANCHOR
    )


def with_code_references(
    defs: dg.Definitions, git_url: str | None = None, git_branch: str | None = None
) -> dg.Definitions:
    """`defs` with code references on every asset; linked to git when a URL is given or configured."""
    assets = dg.with_source_code_references(list(defs.assets or []))
    url = git_url or settings.git_url()
    if url:
        assets = dg.link_code_references_to_git(
            assets,
            git_url=url,
            git_branch=git_branch or settings.git_branch(),
            file_path_mapping=repository_path_mapping(),
        )
    return dg.Definitions(
        assets=assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        sensors=defs.sensors,
        schedules=defs.schedules,
        resources=defs.resources,
        executor=defs.executor,
        loggers=defs.loggers,
        metadata=defs.metadata,
    )

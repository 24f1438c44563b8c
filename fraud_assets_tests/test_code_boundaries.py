"""The two boundaries anyone can check with grep (docs/architecture.md): Dagster's internals are reached
through lib/dagster_compat.py alone, so a Dagster upgrade has one module to review and one set of tests
that pin it; and lib/ depends on nothing in defs/, so a helper never drags an asset's module along."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "fraud_assets"
COMPAT = PACKAGE / "lib" / "dagster_compat.py"


def _files_matching(root: Path, pattern: str) -> list[str]:
    regex = re.compile(pattern)
    return sorted(
        str(path.relative_to(PACKAGE.parent))
        for path in root.rglob("*.py")
        if regex.search(path.read_text(encoding="utf-8"))
    )


def test_only_the_compat_module_names_dagster_internals():
    # The same text match as `grep -rn "dagster\._" fraud_assets`: comments and strings count too.
    assert _files_matching(PACKAGE, r"dagster\._") == [str(COMPAT.relative_to(PACKAGE.parent))]


def test_lib_imports_nothing_from_defs():
    assert _files_matching(PACKAGE / "lib", r"(from|import) fraud_assets\.defs") == []

"""Who launched a run, as far as the platform can tell (docs/governance.md, "What is authenticated").

Dagster OSS authenticates nobody: a run launched from the UI carries the `dagster/user` tag only when a
deployment sets it (Dagster+, or a proxy that injects it). Without it the platform falls back to a
configured identity (`FRAUD_OPERATOR`, for command-line operators) and then to the operating-system
user of the process. The four-eyes rule compares these names; it is as strong as the identity behind
them, which is why a production deployment puts authentication in front of the UI.
"""

from __future__ import annotations

import getpass
import os
import unicodedata
from collections.abc import Mapping

USER_TAG = "dagster/user"
OPERATOR_ENV = "FRAUD_OPERATOR"
_VIA_TAGS = (
    ("dagster/sensor_name", "sensor"),
    ("dagster/schedule_name", "schedule"),
    ("dagster/backfill", "backfill"),
)


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def run_launcher(tags: Mapping[str, str]) -> tuple[str, str]:
    """(identity, how it was established) for a run with these tags."""
    user = (tags.get(USER_TAG) or "").strip()
    if user:
        return user, f"run tag {USER_TAG}"
    launched_via = next((f"{label} {tags[tag]}" for tag, label in _VIA_TAGS if tags.get(tag)), "")
    suffix = f", launched by {launched_via}" if launched_via else ""
    configured = os.environ.get(OPERATOR_ENV, "").strip()
    if configured:
        return configured, f"${OPERATOR_ENV}{suffix}"
    return os_user(), f"operating-system user{suffix}"


def normalise(identity: str | None) -> str:
    """One form for the spellings of a name that read alike: compatibility forms folded (NFKC: full-width
    letters, ligatures), invisible format characters dropped (zero-width spaces and joiners, direction
    marks), whitespace runs collapsed, case folded. Four eyes compares names: `dana` and its full-width or
    zero-width-spaced spellings are one person in the audit trail, so they are one identity here."""
    text = unicodedata.normalize("NFKC", identity or "")
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFKC", " ".join(text.split()).casefold())


def same_identity(a: str | None, b: str | None) -> bool:
    return bool(normalise(a)) and normalise(a) == normalise(b)

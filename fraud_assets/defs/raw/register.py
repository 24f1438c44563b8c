"""The file register: every entry of the landing zone with its verdict, one bad file never stopping
the rest.

Each entry is judged on its own (`inspect_file`): path rules first (lib/landing.py: name, dates, PAN
in the name, not a regular file), then the content, streamed under the caps of `ReaderLimits`
(text_scan.py for CSV / JSON Lines, snapshots.py for Parquet). Whatever goes wrong with one file
becomes that file's `reason`; `build_register` also turns an unexpected error into `unreadable_file`
(logged by type, never by content) rather than failing the asset. Unchanged entries (same size, mtime,
inode and ctime) keep their verdict without being read again.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from fraud_assets.defs.raw import reasons as r
from fraud_assets.defs.raw.files import engine_path, sha256_fd
from fraud_assets.defs.raw.limits import DEFAULT_LIMITS, ReaderLimits
from fraud_assets.defs.raw.parsers import REQUIRED_COLUMNS, TEXT_COLUMNS
from fraud_assets.defs.raw.schemas import COLUMNS
from fraud_assets.defs.raw.snapshots import scan_snapshot
from fraud_assets.defs.raw.text_scan import scan_text
from fraud_assets.lib.landing import (
    LandingFile,
    NotRegularFile,
    clock_ns,
    discover,
    inode_number,
    open_regular,
)

log = logging.getLogger(__name__)
# The hash recorded for an entry whose content is never read (not a regular file, over the size cap).
NO_CONTENT_SHA256 = hashlib.sha256(b"").hexdigest()
_NOT_REGULAR_ERRNOS = {errno.ELOOP, errno.ENOTDIR, errno.ENXIO, errno.EISDIR}


@dataclass(frozen=True)
class Verdict:
    sha256: str
    reason: str | None
    rows: int
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int

    @classmethod
    def unread(cls, lf: LandingFile, reason: str) -> Verdict:
        """A refusal decided without reading the file, with the stats of its listing."""
        return cls(NO_CONTENT_SHA256, reason, 0, lf.size, lf.mtime_ns, lf.inode, lf.ctime_ns)


def _csv_reason(feed: str, header: tuple[str, ...] | None, lines: int) -> str | None:
    if header is None or set(REQUIRED_COLUMNS.get(feed, ())) - set(header):
        return r.MISSING_COLUMNS
    read = [h for h in header if h in TEXT_COLUMNS[feed]]
    if len(read) != len(set(read)):
        return r.DUPLICATE_COLUMNS
    return r.HEADER_ONLY if lines == 1 else None


def _judge_content(fd: int, lf: LandingFile, size: int, limits: ReaderLimits) -> tuple[str, str | None, int]:
    """(sha256, reason, rows landed) of a well-named regular file."""
    if size == 0:
        return NO_CONTENT_SHA256, r.EMPTY_FILE, 0
    if size > limits.max_file_bytes:
        return NO_CONTENT_SHA256, r.TOO_LARGE, 0
    if lf.ext == "parquet":
        snap = scan_snapshot(engine_path(fd), lf.feed, limits)
        return sha256_fd(fd), snap.reason, snap.rows
    csv = lf.ext.startswith("csv")
    with os.fdopen(os.dup(fd), "rb") as fh:
        scan = scan_text(fh, gz=lf.ext.endswith("gz"), csv=csv, limits=limits)
    if scan.reason:
        return scan.sha256, scan.reason, 0
    if scan.lines == 0:
        return scan.sha256, r.EMPTY_FILE, 0
    if csv:
        reason = _csv_reason(lf.feed, scan.header, scan.lines)
        return scan.sha256, reason, 0 if reason else scan.lines - 1
    return scan.sha256, None, scan.lines


def inspect_file(root: Path, lf: LandingFile, limits: ReaderLimits = DEFAULT_LIMITS) -> Verdict:
    """The register's verdict on one landing entry. Raises only on a bug (build_register catches)."""
    if lf.reason in (r.NOT_A_REGULAR_FILE, r.UNREADABLE_FILE):
        return Verdict.unread(lf, lf.reason)
    try:
        fd = open_regular(root, lf.relative)
    except NotRegularFile:
        return Verdict.unread(lf, r.NOT_A_REGULAR_FILE)
    except OSError as exc:
        reason = r.NOT_A_REGULAR_FILE if exc.errno in _NOT_REGULAR_ERRNOS else r.UNREADABLE_FILE
        return Verdict.unread(lf, reason)
    try:
        st = os.fstat(fd)
        if lf.name_error:
            sha, reason, rows = sha256_fd(fd), lf.name_error, 0
        else:
            sha, reason, rows = _judge_content(fd, lf, st.st_size, limits)
        # A write during the reading (which moves the ctime, even when the mtime is set back) leaves a
        # verdict on bytes the hash may not be of: refused now, judged again at the next register (the
        # stats recorded are those from before, which the file no longer has).
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        ):
            sha, reason, rows = NO_CONTENT_SHA256, r.UNREADABLE_FILE, 0
    except OSError:
        return Verdict.unread(lf, r.UNREADABLE_FILE)
    finally:
        os.close(fd)
    mtime, ctime = clock_ns(st.st_mtime_ns), clock_ns(st.st_ctime_ns)
    return Verdict(sha, reason, rows, st.st_size, mtime, inode_number(st), ctime)


def _safe_inspect(root: Path, lf: LandingFile, limits: ReaderLimits) -> Verdict:
    try:
        return inspect_file(root, lf, limits)
    except Exception as exc:  # noqa: BLE001 - one file must never stop the register
        log.warning("register: %s refused as unreadable_file after %s", lf.source_file, type(exc).__name__)
        return Verdict.unread(lf, r.UNREADABLE_FILE)


def _display_names(entries: list[LandingFile]) -> list[str]:
    """`source_file` of each entry: its display path, made unique (` (2)`, ...) where two masked or
    escaped paths coincide."""
    seen: dict[str, int] = {}
    names = []
    for lf in entries:
        name = lf.source_file
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return names


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def _unchanged(old, lf: LandingFile) -> bool:
    """Size, mtime, inode and ctime as registered: a producer can set a file's mtime back after
    rewriting it in place, not its ctime. A row registered before the ctime was recorded is judged on
    the other three (the next register records the ctime): an upgrade does not re-read the zone."""
    if old is None:
        return False
    if old.status == "rejected" and old.reason not in r.FILE_REASONS:
        return False  # not a file reason (a row-level one, from an older register): judged again
    stats = [getattr(old, c, None) for c in ("file_size", "file_mtime_ns", "file_inode", "file_ctime_ns")]
    if any(v is None or pd.isna(v) for v in stats[:3]):
        return False
    current = (lf.size, lf.mtime_ns, lf.inode, lf.ctime_ns)
    if stats[3] is None or pd.isna(stats[3]):
        return tuple(int(v) for v in stats[:3]) == current[:3]
    return tuple(int(v) for v in stats) == current


def build_register(
    root: Path,
    previous: pd.DataFrame | None,
    now: dt.datetime | None = None,
    limits: ReaderLimits = DEFAULT_LIMITS,
) -> pd.DataFrame:
    """The register frame for the landing zone under `root`.

    Entries unchanged since the previous register (same path, size, mtime, inode, ctime) keep their hash,
    verdict and `registered_at` without being read again. Among readable files with identical content
    the first registered (then earliest landing date, then name) is `ingested`; the others are
    `duplicate_file`.
    """
    now = now or _now()
    prev = {}
    if previous is not None and len(previous):
        prev = {row.source_file: row for row in previous.itertuples(index=False)}
    entries = discover(Path(root))
    rows = []
    for lf, name in zip(entries, _display_names(entries), strict=True):
        old = prev.get(name)
        if _unchanged(old, lf):
            v = Verdict(
                old.file_sha256,
                old.reason if old.status == "rejected" else None,
                int(old.rows_landed),
                lf.size,
                lf.mtime_ns,
                lf.inode,
                lf.ctime_ns,
            )
            registered_at = old.registered_at
        else:
            v = _safe_inspect(Path(root), lf, limits)
            registered_at = old.registered_at if old is not None and old.file_sha256 == v.sha256 else now
        rows.append(
            {
                "source": lf.source,
                "feed": lf.feed,
                "source_file": name,
                "file_sha256": v.sha256,
                "landing_date": lf.landing_day,
                "business_date": lf.business_day,
                "status": "rejected" if v.reason else "ingested",
                "reason": v.reason,
                "rows_landed": v.rows,
                "registered_at": pd.Timestamp(registered_at),
                "file_size": v.size,
                "file_mtime_ns": v.mtime_ns,
                "file_inode": v.inode,
                "file_ctime_ns": v.ctime_ns,
            }
        )
    reg = pd.DataFrame(rows, columns=[c for c, _ in COLUMNS["raw.file_register"]])
    if reg.empty:
        return reg
    order = reg.assign(_ld=reg["landing_date"].astype(str)).sort_values(
        ["registered_at", "_ld", "source_file"]
    )
    readable = order[order["status"] == "ingested"]
    first = readable.groupby("file_sha256")["source_file"].transform("first")
    dup = readable.index[first != readable["source_file"]]
    reg.loc[dup, "status"] = "duplicate_file"
    reg.loc[dup, "reason"] = "same content as " + first[first != readable["source_file"]]
    return reg

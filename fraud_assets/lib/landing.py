"""The landing zone as ingestion, sensors, CLIs and the simulator see it (docs/landing-zone.md): the
naming rules, one `LandingFile`, and the landing sensor's cursor.

`landing/<source>/<landing-date>/<feed>_<business-date>[_<suffix>].<ext>`; files being written (names
starting with `.` or ending in `.tmp`/`.part`) are invisible until renamed. Only names, paths, sizes and
a file's SHA-256 live here; reading a file's content is the raw layer's job.

Names are producer input: a name is matched in full (no trailing newline slips through), dates are
ASCII and inside a fixed window, a name that carries a card number is refused and only ever shown
masked, and nothing but a regular file is ever opened (a symlink, even to a directory, is refused and
not followed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fraud_assets.lib.pan import mask_pans

AUTHORIZATIONS = "authorizations"
CHARGEBACKS = "chargebacks"
REFERENCE_SOURCES = ("cardholders", "merchants", "fx_rates")
SOURCES = (AUTHORIZATIONS, CHARGEBACKS, *REFERENCE_SOURCES)
INPUT_SOURCES = (CHARGEBACKS, *REFERENCE_SOURCES)  # what a day reads besides its authorisations
FEEDS = {
    AUTHORIZATIONS: ("acq_a", "acq_b"),
    CHARGEBACKS: ("chargebacks",),
    "cardholders": ("cardholders",),
    "merchants": ("merchants",),
    "fx_rates": ("fx_rates",),
}
# Allowed extensions per feed (no leading dot), the delivered one first; authorisation feeds may
# arrive uncompressed too.
EXTENSIONS = {
    "acq_a": ("csv.gz", "csv"),
    "acq_b": ("jsonl.gz", "jsonl"),
    "chargebacks": ("csv",),
    "cardholders": ("parquet",),
    "merchants": ("parquet",),
    "fx_rates": ("csv",),
}
# Lazy feed and suffix so the date and the extension anchor the split; the suffix is free text
# without control characters (C0, DEL, C1), line or paragraph separators, or bidirectional overrides
# (which make a name display as another). Matched with fullmatch: `$` would accept a trailing newline.
FILE_NAME = re.compile(
    r"(?P<feed>[a-z][a-z0-9_]*?)_(?P<business_date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:_(?P<suffix>[^/\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]+?))?"
    r"\.(?P<ext>csv\.gz|jsonl\.gz|csv|jsonl|parquet)"
)
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Landing and business dates must fall in this window: a year 0001 or 9999 folder is a producer error
# (and out of range for pandas timestamps downstream), not a day to create a partition for.
EARLIEST_DATE = dt.date(2000, 1, 1)
LATEST_DATE = dt.date(2099, 12, 31)

REJECT_NAME = "unrecognised_name"
REJECT_PAN_IN_NAME = "pan_in_file_name"
REJECT_DATE = "date_out_of_range"
REJECT_NOT_REGULAR = "not_a_regular_file"
REJECT_UNREADABLE = "unreadable_file"


def _escaped(relative: str) -> str:
    # os.scandir hands undecodable name bytes over as surrogates, which no table or log can hold.
    return relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def display_path(relative: str) -> str:
    """A producer-supplied path as it may be stored or shown: undecodable bytes escaped (`\\xff`),
    card numbers masked. The clear path stays in memory only, to open the file."""
    return mask_pans(_escaped(relative))


@dataclass(frozen=True)
class LandingFile:
    """One entry under the landing root. Name fields are None where the path breaks the contract;
    `reason` says why the entry is refused before its content is read (None: a well-named file)."""

    path: Path
    relative: str  # relative to the landing root, forward slashes; clear: never store or log it
    source: str | None  # None outside the five source folders
    landing_date: str | None  # YYYY-MM-DD
    feed: str | None
    business_date: str | None  # YYYY-MM-DD
    ext: str | None  # without the dot: csv, csv.gz, jsonl, jsonl.gz, parquet
    suffix: str | None = None
    reason: str | None = None
    pan_in_name: bool = False  # the path holds a card number: the register refuses the file
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    ctime_ns: int = 0

    @property
    def recognised(self) -> bool:
        return self.reason is None and None not in (
            self.source,
            self.landing_date,
            self.feed,
            self.business_date,
            self.ext,
        )

    @property
    def name_error(self) -> str | None:
        """The register's rejection reason for the path, None when it follows the contract."""
        if self.reason is not None:
            return self.reason
        if self.pan_in_name:
            return REJECT_PAN_IN_NAME
        return None if self.recognised else REJECT_NAME

    @property
    def source_file(self) -> str:
        """The path as raw.file_register stores it (= `display_path(relative)`)."""
        return display_path(self.relative)

    @property
    def landing_day(self) -> dt.date | None:
        return dt.date.fromisoformat(self.landing_date) if self.landing_date else None

    @property
    def business_day(self) -> dt.date | None:
        return dt.date.fromisoformat(self.business_date) if self.business_date else None


@dataclass(frozen=True)
class FileName:
    feed: str
    business_date: str
    suffix: str | None
    ext: str


def is_in_flight(name: str) -> bool:
    """Files still being written (contract: atomic rename) are not there yet."""
    return name.startswith(".") or name.endswith((".tmp", ".part"))


def _date(text: str) -> dt.date | None:
    if not DATE.fullmatch(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _valid_date(text: str) -> bool:
    return _date(text) is not None


def in_date_window(text: str) -> bool:
    day = _date(text)
    return day is not None and EARLIEST_DATE <= day <= LATEST_DATE


def parse_name(name: str, source: str | None = None) -> FileName | None:
    """The parts of a file name, or None when it breaks the contract (for `source` when given: the
    feed must be one of the source's and the extension one of the feed's)."""
    m = FILE_NAME.fullmatch(name)
    if m is None or not _valid_date(m["business_date"]):
        return None
    feed, ext = m["feed"], m["ext"]
    if feed not in EXTENSIONS or ext not in EXTENSIONS[feed]:
        return None
    if source is not None and feed not in FEEDS.get(source, ()):
        return None
    return FileName(feed, m["business_date"], m["suffix"], ext)


def file_name(
    feed: str, business_date: dt.date | str, suffix: str | None = None, ext: str | None = None
) -> str:
    """`<feed>_<business-date>[_<suffix>].<ext>`; `ext` defaults to the feed's delivered extension."""
    if feed not in EXTENSIONS:
        raise ValueError(f"unknown feed {feed!r}")
    ext = (ext or EXTENSIONS[feed][0]).lstrip(".")
    date = business_date.isoformat() if isinstance(business_date, dt.date) else str(business_date)
    name = f"{feed}_{date}{f'_{suffix}' if suffix else ''}.{ext}"
    if parse_name(name) != FileName(feed, date, suffix or None, ext):
        raise ValueError(f"{name!r} would not follow the landing contract")
    return name


def relative_path(source: str, landing_date: dt.date | str, name: str) -> str:
    """`<source>/<landing-date>/<name>`, relative to the landing root."""
    date = landing_date.isoformat() if isinstance(landing_date, dt.date) else str(landing_date)
    return f"{source}/{date}/{name}"


def parse(root: Path, path: Path, st: os.stat_result | None = None) -> LandingFile:
    """Classify `path` (under `root`) against the naming contract; never raises on a bad name or a
    vanished file. `st` is the entry's lstat when the caller already has it."""
    rel = path.relative_to(root).as_posix()
    if st is None:
        try:
            st = path.lstat()
        except OSError:
            st = None
    stats = (
        {
            "size": st.st_size,
            "mtime_ns": clock_ns(st.st_mtime_ns),
            "inode": inode_number(st),
            "ctime_ns": clock_ns(st.st_ctime_ns),
        }
        if st
        else {}
    )
    parts = rel.split("/")
    source = parts[0] if parts[0] in SOURCES else None

    escaped = _escaped(rel)
    pan = mask_pans(escaped) != escaped

    def refused(reason: str) -> LandingFile:
        return LandingFile(path, rel, source, None, None, None, None, reason=reason, pan_in_name=pan, **stats)

    if st is None:
        return refused(REJECT_UNREADABLE)
    if not stat.S_ISREG(st.st_mode):
        return refused(REJECT_NOT_REGULAR)
    name = parse_name(parts[2], source) if len(parts) == 3 else None
    if escaped != rel or source is None or name is None or not _valid_date(parts[1]):
        return refused(REJECT_PAN_IN_NAME if pan else REJECT_NAME)
    if not (in_date_window(parts[1]) and in_date_window(name.business_date)):
        return refused(REJECT_DATE)
    # A well-formed name with a card number in it is still offered to the sensors (they store names
    # masked), so that the register runs and records the refusal at once.
    return LandingFile(
        path,
        rel,
        source,
        parts[1],
        name.feed,
        name.business_date,
        name.ext,
        name.suffix,
        pan_in_name=pan,
        **stats,
    )


def _walk(root: Path) -> Iterable[LandingFile]:
    """Every entry under `root` that is not a directory, without following symlinks: a symlinked
    directory is one refused entry, never descended into. An unlistable directory is one entry."""
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            if folder != root:
                yield dataclasses.replace(parse(root, folder), reason=REJECT_UNREADABLE)
            continue
        for entry in entries:
            if is_in_flight(entry.name):
                continue
            path = Path(entry.path)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                yield parse(root, path)
                continue
            if stat.S_ISDIR(st.st_mode):
                stack.append(path)
            else:
                yield parse(root, path, st)


def discover(root: Path) -> list[LandingFile]:
    """Every visible entry under the landing root, recognised or not, sorted by path (the register's
    view: a stray file is recorded with its reason, not ignored). The root itself may be a symlink (a
    deployment may mount the landing zone elsewhere); nothing under it is followed."""
    if not root.is_dir():
        return []
    return sorted(_walk(root), key=lambda f: f.relative)


def list_files(root: Path, source: str | None = None) -> list[LandingFile]:
    """Every visible entry of the five sources (or of one), recognised or not, sorted by path."""
    wanted = (source,) if source else SOURCES
    return [f for f in discover(root) if f.relative.split("/", 1)[0] in wanted]


def scan(root: Path, sources: Iterable[str] = SOURCES) -> list[LandingFile]:
    """Recognised files of `sources` only, in arrival order (landing date, then path): what a sensor
    may launch runs for."""
    wanted = set(sources)
    found = [f for f in discover(root) if f.recognised and f.source in wanted]
    return sorted(found, key=lambda f: (f.landing_date, f.relative))


def business_dates_in_landing(root: Path) -> list[str]:
    """Sorted business dates that have at least one authorisation file."""
    return sorted({f.business_date for f in list_files(root, AUTHORIZATIONS) if f.recognised})


# O_NONBLOCK: opening a FIFO swapped in after the listing must not hang the register.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def open_regular(root: Path, relative: str) -> int:
    """A read-only descriptor of the regular file `relative` under `root`, reached without following
    any symlink on the way (each folder opened from the previous one with O_NOFOLLOW), so a path
    swapped for a link after it was listed is refused, not followed. OSError when it is not there,
    not reachable that way, or not a regular file (`NotRegularFile`)."""
    parts = relative.split("/")
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        for part in parts[:-1]:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder)
            os.close(folder)
            folder = child
        fd = os.open(parts[-1], _OPEN_FLAGS, dir_fd=folder)
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(relative)
    return fd


class NotRegularFile(OSError):
    """The path names something other than a regular file."""


def clock_ns(ns: int) -> int:
    """A file's mtime or ctime in ns as the register stores it (BIGINT): clamped to what a signed 64-bit
    integer holds (1677-2262). A file stamped later (`touch -d 2500-01-01`; ext4 keeps up to 2446)
    reads as the latest instant; its ctime, which only the kernel sets, still tells a rewrite."""
    return max(-(2**63), min(ns, 2**63 - 1))


def inode_number(st: os.stat_result) -> int:
    """A file's inode number as the register stores it (BIGINT): its low 63 bits. Some filesystems set
    the top bit of a 64-bit number (overlayfs with xino, NFS file ids); the number only tells a file
    replaced in place from the one registered, with its size and times."""
    return st.st_ino & (2**63 - 1)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


HASH_BLOCK = 4 << 20


def sha256_fd(fd: int) -> str:
    """Content identity of an open landing file (a re-send is the same hash under another name)."""
    h = hashlib.sha256()
    offset = 0
    while block := os.pread(fd, HASH_BLOCK, offset):
        h.update(block)
        offset += len(block)
    return h.hexdigest()


def content_identity(root: Path, f: LandingFile, max_bytes: int) -> str:
    """The SHA-256 of a landed file, read the way the register reads it (no symlink followed, never a
    FIFO or device, nothing over `max_bytes`). A file the register will refuse unread gets a stand-in
    from its name, size and clocks instead, so its run still launches and the register records why."""
    try:
        fd = open_regular(root, f.relative)
    except OSError:
        fd = None
    if fd is not None:
        try:
            if os.fstat(fd).st_size <= max_bytes:
                return sha256_fd(fd)
        except OSError:
            pass
        finally:
            os.close(fd)
    unread = f"unread\n{f.source_file}\n{f.size}\n{f.mtime_ns}\n{f.ctime_ns}"
    return hashlib.sha256(unread.encode()).hexdigest()


# ---- The landing sensor's cursor -------------------------------------------------------------------------

CURSOR_VERSION = 1


@dataclass
class LandingCursor:
    """What the landing sensor has handled: path as stored (`LandingFile.source_file`, card numbers
    masked) -> [size, mtime_ns, sha256, ctime_ns]. A file is new when its path is unknown or its size,
    mtime or ctime changed (a producer can set an mtime back, not a ctime); only new files are hashed.
    Two names that mask alike share an entry: at worst a file is hashed again and recognised by its
    content.

    `owed`: input source -> [run key, time recorded] of the last run handed its files (or asked to build
    its assets again), until a run with that key created after that time has materialised them: the
    sensor then knows they hold every file it was sent. A cursor from before `owed` existed owes every
    input source to no run, so the next landed day builds them all once."""

    files: dict[str, list]
    owed: dict[str, list] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | None) -> LandingCursor:
        if not raw:
            return cls(files={})
        data = json.loads(raw)
        if data.get("v") != CURSOR_VERSION:
            return cls(files={})  # run keys are content hashes: starting over launches nothing twice
        # Keys pass the mask whatever wrote them: the cursor never holds a card number.
        files = {display_path(k): v for k, v in data["files"].items()}
        owed = data["owed"] if "owed" in data else {s: ["", 0.0] for s in INPUT_SOURCES}
        return cls(files=files, owed=dict(owed))

    def serialize(self) -> str:
        data = {"v": CURSOR_VERSION, "files": self.files, "owed": self.owed}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def is_known(self, f: LandingFile) -> bool:
        seen = self.files.get(f.source_file)
        if seen is None or seen[:2] != [f.size, f.mtime_ns]:
            return False
        if len(seen) == 3:  # recorded before the ctime was: adopted, so an upgrade re-reads nothing
            seen.append(f.ctime_ns)
        return seen[3] == f.ctime_ns

    def seen_hashes(self, source: str) -> set[str]:
        prefix = f"{source}/"
        return {v[2] for k, v in self.files.items() if k.startswith(prefix)}

    def record(self, f: LandingFile, sha: str) -> None:
        self.files[f.source_file] = [f.size, f.mtime_ns, sha, f.ctime_ns]


@dataclass(frozen=True)
class NewFile:
    file: LandingFile
    sha256: str
    resent: bool  # identical content already handled under another name


def new_files(
    root: Path,
    cursor: LandingCursor,
    max_bytes: int,
    sources: Iterable[str] = SOURCES,
    later: Callable[[LandingFile], bool] = lambda f: False,
) -> list[NewFile]:
    """Well-named files not in the cursor, each hashed once (`content_identity`); a hash already
    handled for the source (or twice in this batch) marks a re-send. Files `later` says are not due
    yet are neither hashed nor returned (a file dated years ahead is not read on every tick)."""
    out: list[NewFile] = []
    seen: dict[str, set[str]] = {}
    for f in scan(root, sources):
        if cursor.is_known(f) or later(f):
            continue
        sha = content_identity(root, f, max_bytes)
        known = seen.setdefault(f.source, cursor.seen_hashes(f.source))
        out.append(NewFile(f, sha, resent=sha in known))
        known.add(sha)
    return out


def content_key(shas: Iterable[str]) -> str:
    """One file: its SHA-256. Several files handled together: the SHA-256 of their sorted hashes."""
    ordered = sorted(set(shas))
    if len(ordered) == 1:
        return ordered[0]
    return hashlib.sha256("\n".join(ordered).encode()).hexdigest()

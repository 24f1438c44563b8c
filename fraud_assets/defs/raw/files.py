"""Opening registered landing files for the engine: the bytes read are the bytes the register vouched
for.

Each file is opened without following symlinks (`open_regular`), checked against its register row
(size, mtime, inode, SHA-256) and handed to DuckDB as `/dev/fd/N`, which reopens that very inode:
a file renamed or replaced after the check is not what gets read. A file written in place keeps its
inode, so DuckDB would read the new bytes: its status (size, mtime, ctime) is taken again once the
reading is done, and a write since the check (which always moves the ctime) fails the read.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from fraud_assets.defs.raw.text_reader import LandingChanged
from fraud_assets.lib.landing import clock_ns, inode_number, open_regular, sha256_fd


def engine_path(fd: int) -> str:
    return f"/dev/fd/{fd}"


# Descriptors kept free beside the pinned files (the warehouse, its WAL and spill files, logs, sockets).
FD_HEADROOM = 256


def make_room_for(n: int) -> None:
    """Raise this process's open-file limit (the soft one, up to the hard one) so that `n` more files
    fit: a chunk of a large network's days is thousands of files, and many systems start processes at
    1,024. Raises when even the hard limit is too low, naming it (not a misleading file error)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + FD_HEADROOM
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    if hard != resource.RLIM_INFINITY and hard < want:
        raise RuntimeError(
            f"{n} landing files are read together but this process may open at most {hard} files "
            "(hard RLIMIT_NOFILE, `ulimit -Hn`): raise it for the run workers"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _status(fd: int) -> tuple[int, int, int, int]:
    st = os.fstat(fd)
    return st.st_size, clock_ns(st.st_mtime_ns), clock_ns(st.st_ctime_ns), inode_number(st)


@contextmanager
def pinned(root: Path, rows: Sequence) -> Iterator[list[str]]:
    """Engine paths of the register `rows` (`source_file`, `file_size`, `file_mtime_ns`, `file_inode`,
    `file_sha256`), open for the duration; LandingChanged when a file is not as registered, or was
    written to while the body read it (checked when the body ends, and when it fails)."""
    make_room_for(len(rows))
    with ExitStack() as stack:
        paths, checked = [], []
        for row in rows:
            try:
                fd = open_regular(root, row.source_file)
            except OSError as exc:
                raise LandingChanged(f"{row.source_file} can no longer be opened ({exc.strerror})") from None
            stack.callback(os.close, fd)
            # Taken before hashing, so a write during the hash is caught at the end too.
            status = _status(fd)
            same = (status[0], status[1], status[3]) == (row.file_size, row.file_mtime_ns, row.file_inode)
            if not same or sha256_fd(fd) != row.file_sha256:
                raise LandingChanged(
                    f"{row.source_file} changed since it was registered: re-run raw/file_register"
                )
            paths.append(engine_path(fd))
            checked.append((row.source_file, fd, status))
        try:
            yield paths
        except Exception:
            # The engine's error on bytes the register never judged may quote them (a card number in
            # "Original Line: ..."): a file written to meanwhile is the reason, the error is dropped.
            _check_unchanged(checked)
            raise
        _check_unchanged(checked)


def _check_unchanged(checked: list[tuple[str, int, tuple]]) -> None:
    for source_file, fd, status in checked:
        if _status(fd) != status:
            raise LandingChanged(
                f"{source_file} was written to while it was read: re-run raw/file_register"
            ) from None

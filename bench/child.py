"""One side of a benchmark in its own process: its peak memory is its own, and a side that runs out of
memory is a figure ("out of memory"), not the end of the benchmark."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that over exec from the parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cap_memory(gb: float) -> None:
    """Cap this process's address space at `gb` GiB: beyond it allocations raise MemoryError."""
    limit = int(gb * 1024**3)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_child(module: str, args: list[str], timeout: float = 4 * 3600) -> dict:
    """`python -m module *args`, which prints its result as its last JSON line; a side killed (by the
    OOM killer) or crashed gives {"failed": True, ...} rather than failing the whole benchmark."""
    cmd = [sys.executable, "-m", module, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"failed": True, "returncode": proc.returncode, "stderr": proc.stderr[-500:]}
    return json.loads(lines[-1])
